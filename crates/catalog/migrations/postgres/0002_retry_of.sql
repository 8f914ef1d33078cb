-- AWS semantics: a FAILED job is final; a retry is a new job that names the one it retries. The
-- "once per backup" rule now holds for first jobs only, and each failed job is retried at most once.
ALTER TABLE copy_jobs ADD COLUMN retry_of TEXT;
DROP INDEX copy_jobs_backup_once;
CREATE UNIQUE INDEX copy_jobs_backup_once
    ON copy_jobs (service, source_region, destination_region, backup_name)
    WHERE kind = 'backup' AND retry_of IS NULL;
CREATE UNIQUE INDEX copy_jobs_retry_once ON copy_jobs (retry_of) WHERE retry_of IS NOT NULL;

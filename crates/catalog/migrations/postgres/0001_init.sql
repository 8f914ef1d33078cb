-- Times are Unix epoch milliseconds (UTC) in BIGINT columns on both backends, so the same runtime
-- queries and the same row decoding work on SQLite and PostgreSQL.

CREATE TABLE services (
    name               TEXT PRIMARY KEY,
    engine             TEXT NOT NULL CHECK (engine IN ('pg', 'mysql')),
    cloud              TEXT NOT NULL,
    plan               TEXT NOT NULL,
    user_config        TEXT NOT NULL DEFAULT '{}',
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    deleted_at         BIGINT,
    regions_changed_at BIGINT
);

-- No foreign key to services: the index is rebuilt from the stores in any order, and secondary
-- backups outlive the deletion of their service.
CREATE TABLE backups (
    service      TEXT NOT NULL,
    region       TEXT NOT NULL,
    backup_name  TEXT NOT NULL,
    backup_time  BIGINT NOT NULL,
    data_size    BIGINT NOT NULL,
    stored_size  BIGINT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('primary', 'secondary')),
    committed_at BIGINT NOT NULL,
    PRIMARY KEY (service, region, backup_name)
);

CREATE TABLE copy_jobs (
    copy_job_id              TEXT PRIMARY KEY,
    service                  TEXT NOT NULL,
    kind                     TEXT NOT NULL CHECK (kind IN ('backup', 'logs')),
    source_region            TEXT NOT NULL,
    destination_region       TEXT NOT NULL,
    backup_name              TEXT NOT NULL,
    destination_backup_name  TEXT NOT NULL,
    state                    TEXT NOT NULL
        CHECK (state IN ('CREATED', 'RUNNING', 'COMPLETED', 'FAILED', 'PARTIAL')),
    status_message           TEXT,
    creation_date            BIGINT NOT NULL,
    start_date               BIGINT,
    completion_date          BIGINT,
    backup_size_in_bytes     BIGINT,
    bytes_transferred        BIGINT NOT NULL DEFAULT 0,
    chunks_total             BIGINT,
    chunks_copied            BIGINT NOT NULL DEFAULT 0,
    attempts                 BIGINT NOT NULL DEFAULT 0,
    next_attempt_at          BIGINT,
    created_by               TEXT NOT NULL CHECK (created_by IN ('plan', 'on-demand', 'event')),
    created_by_backup_job_id TEXT,
    lease_owner              TEXT,
    lease_expires_at         BIGINT
);
-- The same backup event delivered twice must not create a second job.
CREATE UNIQUE INDEX copy_jobs_backup_once
    ON copy_jobs (service, source_region, destination_region, backup_name) WHERE kind = 'backup';
CREATE INDEX copy_jobs_by_state ON copy_jobs (state, creation_date);
CREATE INDEX copy_jobs_by_creation ON copy_jobs (creation_date);

CREATE TABLE lag_samples (
    service                 TEXT NOT NULL,
    destination_region      TEXT NOT NULL,
    sampled_at              BIGINT NOT NULL,
    backup_lag_seconds      DOUBLE PRECISION,
    wal_lag_seconds         DOUBLE PRECISION,
    bytes_pending           BIGINT,
    latest_recoverable_time BIGINT
);
CREATE INDEX lag_samples_by_time ON lag_samples (service, sampled_at);

-- "C" collation: segment names are compared byte-wise to keep the watermark monotonic whatever
-- the database's locale.
CREATE TABLE wal_watermarks (
    service            TEXT NOT NULL,
    destination_region TEXT NOT NULL,
    timeline           BIGINT NOT NULL,
    last_segment       TEXT COLLATE "C" NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (service, destination_region)
);

CREATE TABLE events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    service TEXT,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX events_by_service ON events (service, id);

CREATE TABLE leader_leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

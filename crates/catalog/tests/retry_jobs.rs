#![allow(clippy::unwrap_used, clippy::expect_used)]
//! AWS semantics for copy jobs: a FAILED job is final; its retry is a new job naming it.

mod common;

use std::time::Duration;

use btar_catalog::{CreatedBy, JobKind, JobOutcome, JobState, NewCopyJob};
use common::TestDb;

const LEASE: Duration = Duration::from_secs(60);

on_both_backends!(a_final_failure_is_retried_once_by_a_new_job);

async fn a_final_failure_is_retried_once_by_a_new_job(db: &TestDb) {
    let catalog = db.open().await;
    let new = NewCopyJob {
        service: "pg1".into(),
        kind: JobKind::Backup,
        source_region: "local-a".into(),
        destination_region: "local-b".into(),
        backup_name: "b1".into(),
        destination_backup_name: None,
        created_by: CreatedBy::Event,
        created_by_backup_job_id: None,
        backup_size_in_bytes: Some(1000),
    };
    let (job, created) = catalog.create_copy_job(&new).await.unwrap();
    assert!(created && job.retry_of.is_none());
    // Not final yet: no retry job.
    assert!(catalog.create_retry_job(&job).await.is_err());

    let c = catalog.claim_copy_job("w", LEASE).await.unwrap().unwrap();
    let failed = catalog
        .finish_copy_job(
            &c.lease,
            &JobOutcome::Failed {
                message: "destination lost".into(),
                retryable: false,
            },
        )
        .await
        .unwrap();
    assert!(failed.next_attempt_at.is_none());

    let (retry, created) = catalog.create_retry_job(&failed).await.unwrap();
    assert!(created);
    assert_ne!(retry.copy_job_id, failed.copy_job_id);
    assert_eq!(retry.retry_of.as_deref(), Some(failed.copy_job_id.as_str()));
    assert_eq!(retry.state, JobState::Created);
    assert_eq!(retry.creation_date, db.clock_now());
    assert_eq!(retry.backup_name, "b1");
    // A second reconcile (or a second scheduler) gets the same retry.
    let (again, created) = catalog.create_retry_job(&failed).await.unwrap();
    assert!(!created);
    assert_eq!(again.copy_job_id, retry.copy_job_id);
    // The backup event delivered again still finds the first job, not a third.
    let (first, created) = catalog.create_copy_job(&new).await.unwrap();
    assert!(!created);
    assert_eq!(first.copy_job_id, failed.copy_job_id);
    assert_eq!(
        catalog
            .describe_copy_job(&failed.copy_job_id)
            .await
            .unwrap()
            .state,
        JobState::Failed
    );
    // The retry is claimable like any new job.
    let c = catalog.claim_copy_job("w", LEASE).await.unwrap().unwrap();
    assert_eq!(c.job.copy_job_id, retry.copy_job_id);
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use btar_catalog::{
    CatalogError, CatalogOptions, CopyJobFilter, CreatedBy, JobKind, JobOutcome, JobProgress,
    JobState, NewCopyJob,
};
use chrono::TimeDelta;
use common::TestDb;

const LEASE: Duration = Duration::from_secs(60);

fn backup_job(backup: &str, destination: &str) -> NewCopyJob {
    NewCopyJob {
        service: "pg1".into(),
        kind: JobKind::Backup,
        source_region: "local-a".into(),
        destination_region: destination.into(),
        backup_name: backup.into(),
        destination_backup_name: None,
        created_by: CreatedBy::Event,
        created_by_backup_job_id: Some(format!("bj-{backup}")),
        backup_size_in_bytes: Some(1000),
    }
}

on_both_backends!(
    concurrent_claimers_never_share_a_job,
    expired_lease_is_reclaimed_and_old_owner_fenced,
    failed_jobs_retry_with_backoff_until_attempts_run_out,
    job_creation_is_idempotent_per_backup,
    listing_filters_and_describe,
);

async fn concurrent_claimers_never_share_a_job(db: &TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    for i in 0..50 {
        a.create_copy_job(&backup_job(&format!("b{i:03}"), "local-b"))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for t in 0..8 {
        let catalog = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{t}");
            let mut claimed = Vec::new();
            while let Some(c) = catalog.claim_copy_job(&owner, LEASE).await.unwrap() {
                assert_eq!(c.lease.owner, owner);
                claimed.push(c.job.copy_job_id);
            }
            claimed
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 50, "every job claimed exactly once in total");
    assert_eq!(distinct.len(), 50, "no job claimed twice");

    let running = a
        .list_copy_jobs(&CopyJobFilter {
            state: Some(JobState::Running),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 50);
    assert!(
        running
            .iter()
            .all(|j| j.attempts == 1 && j.lease_owner.is_some())
    );
    assert!(a.claim_copy_job("late", LEASE).await.unwrap().is_none());
}

async fn expired_lease_is_reclaimed_and_old_owner_fenced(db: &TestDb) {
    let catalog = db.open().await;
    let (job, _) = catalog
        .create_copy_job(&backup_job("b1", "local-b"))
        .await
        .unwrap();

    let mut first = catalog.claim_copy_job("w1", LEASE).await.unwrap().unwrap();
    assert_eq!(first.job.copy_job_id, job.copy_job_id);
    assert_eq!(first.job.state, JobState::Running);
    assert_eq!(first.lease.attempt, 1);

    // Within the lease nobody else gets it, and heartbeats keep it.
    db.clock.advance(TimeDelta::seconds(50));
    assert!(catalog.claim_copy_job("w2", LEASE).await.unwrap().is_none());
    let progress = JobProgress {
        bytes_transferred: Some(400),
        chunks_copied: Some(4),
        ..Default::default()
    };
    catalog
        .heartbeat(&mut first.lease, LEASE, &progress)
        .await
        .unwrap();
    db.clock.advance(TimeDelta::seconds(50));
    assert!(catalog.claim_copy_job("w2", LEASE).await.unwrap().is_none());

    // w1 goes silent past its lease: w2 takes over.
    db.clock.advance(TimeDelta::seconds(61));
    let mut second = catalog.claim_copy_job("w2", LEASE).await.unwrap().unwrap();
    assert_eq!(second.job.copy_job_id, job.copy_job_id);
    assert_eq!(second.lease.attempt, 2);
    assert_eq!(
        second.job.bytes_transferred, 400,
        "progress survives the takeover"
    );

    let err = catalog
        .heartbeat(&mut first.lease, LEASE, &JobProgress::default())
        .await;
    assert!(
        matches!(err, Err(CatalogError::LeaseLost { .. })),
        "{err:?}"
    );
    let err = catalog
        .finish_copy_job(&first.lease, &JobOutcome::Completed(JobProgress::default()))
        .await;
    assert!(
        matches!(err, Err(CatalogError::LeaseLost { .. })),
        "{err:?}"
    );

    catalog
        .heartbeat(&mut second.lease, LEASE, &JobProgress::default())
        .await
        .unwrap();
    let done = catalog
        .finish_copy_job(
            &second.lease,
            &JobOutcome::Completed(JobProgress {
                bytes_transferred: Some(1000),
                chunks_copied: Some(10),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.bytes_transferred, 1000);
    assert_eq!(done.completion_date, Some(db.clock_now()));
    assert!(done.lease_owner.is_none());

    // A finished job is no longer anyone's to touch.
    let err = catalog
        .heartbeat(&mut second.lease, LEASE, &JobProgress::default())
        .await;
    assert!(
        matches!(err, Err(CatalogError::LeaseLost { .. })),
        "{err:?}"
    );
    db.clock.advance(TimeDelta::hours(1));
    assert!(catalog.claim_copy_job("w3", LEASE).await.unwrap().is_none());
}

async fn failed_jobs_retry_with_backoff_until_attempts_run_out(db: &TestDb) {
    let catalog = db
        .open_with(CatalogOptions {
            max_attempts: 3,
            retry_base: Duration::from_secs(30),
            ..Default::default()
        })
        .await;
    catalog
        .create_copy_job(&backup_job("b1", "local-b"))
        .await
        .unwrap();
    let fail = JobOutcome::Failed {
        message: "destination unavailable".into(),
        retryable: true,
    };

    let c = catalog.claim_copy_job("w", LEASE).await.unwrap().unwrap();
    let failed = catalog.finish_copy_job(&c.lease, &fail).await.unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(
        failed.status_message.as_deref(),
        Some("destination unavailable")
    );
    assert_eq!(
        failed.next_attempt_at,
        Some(db.clock_now() + TimeDelta::seconds(30))
    );

    db.clock.advance(TimeDelta::seconds(29));
    assert!(
        catalog.claim_copy_job("w", LEASE).await.unwrap().is_none(),
        "not due yet"
    );
    db.clock.advance(TimeDelta::seconds(1));
    let c = catalog.claim_copy_job("w", LEASE).await.unwrap().unwrap();
    assert_eq!(c.lease.attempt, 2);
    assert!(c.job.completion_date.is_none());
    let failed = catalog.finish_copy_job(&c.lease, &fail).await.unwrap();
    assert_eq!(
        failed.next_attempt_at,
        Some(db.clock_now() + TimeDelta::seconds(60)),
        "doubled"
    );

    // The third and last attempt dies silently: once its lease expires the job fails for good.
    db.clock.advance(TimeDelta::seconds(60));
    let c = catalog.claim_copy_job("w", LEASE).await.unwrap().unwrap();
    assert_eq!(c.lease.attempt, 3);
    db.clock.advance(TimeDelta::seconds(61));
    assert!(catalog.claim_copy_job("w", LEASE).await.unwrap().is_none());
    let job = catalog.describe_copy_job(&c.job.copy_job_id).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 3);
    assert!(job.next_attempt_at.is_none());

    // A non-retryable failure is final on the first attempt.
    catalog
        .create_copy_job(&backup_job("b2", "local-b"))
        .await
        .unwrap();
    let c = catalog.claim_copy_job("w", LEASE).await.unwrap().unwrap();
    let failed = catalog
        .finish_copy_job(
            &c.lease,
            &JobOutcome::Failed {
                message: "no key for local-b".into(),
                retryable: false,
            },
        )
        .await
        .unwrap();
    assert!(failed.next_attempt_at.is_none());
    db.clock.advance(TimeDelta::days(1));
    assert!(catalog.claim_copy_job("w", LEASE).await.unwrap().is_none());
}

async fn job_creation_is_idempotent_per_backup(db: &TestDb) {
    let catalog = db.open().await;
    let (first, created) = catalog
        .create_copy_job(&backup_job("b1", "local-b"))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.state, JobState::Created);
    assert_eq!(first.destination_backup_name, "b1");
    assert_eq!(first.attempts, 0);

    db.clock.advance(TimeDelta::seconds(5));
    let (again, created) = catalog
        .create_copy_job(&backup_job("b1", "local-b"))
        .await
        .unwrap();
    assert!(!created, "same event twice");
    assert_eq!(again, first);

    let (other, created) = catalog
        .create_copy_job(&backup_job("b1", "local-c"))
        .await
        .unwrap();
    assert!(created, "another destination is another job");
    assert_ne!(other.copy_job_id, first.copy_job_id);

    assert_eq!(
        catalog
            .list_copy_jobs(&CopyJobFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );

    let mut same_region = backup_job("b2", "local-a");
    same_region.destination_region = "local-a".into();
    let err = catalog.create_copy_job(&same_region).await;
    assert!(matches!(err, Err(CatalogError::Invalid { .. })), "{err:?}");
}

async fn listing_filters_and_describe(db: &TestDb) {
    let catalog = db.open().await;
    let t0 = db.clock_now();
    let (j1, _) = catalog
        .create_copy_job(&backup_job("b1", "local-b"))
        .await
        .unwrap();
    db.clock.advance(TimeDelta::minutes(10));
    let (j2, _) = catalog
        .create_copy_job(&backup_job("b2", "local-c"))
        .await
        .unwrap();
    db.clock.advance(TimeDelta::minutes(10));
    let mut other_service = backup_job("b3", "local-b");
    other_service.service = "pg2".into();
    let (j3, _) = catalog.create_copy_job(&other_service).await.unwrap();
    let c = catalog.claim_copy_job("w", LEASE).await.unwrap().unwrap();
    assert_eq!(c.job.copy_job_id, j1.copy_job_id, "oldest first");

    let ids = |jobs: Vec<btar_catalog::CopyJob>| -> Vec<String> {
        jobs.into_iter().map(|j| j.copy_job_id).collect()
    };
    let all = catalog
        .list_copy_jobs(&CopyJobFilter::default())
        .await
        .unwrap();
    assert_eq!(
        ids(all),
        [
            j3.copy_job_id.as_str(),
            j2.copy_job_id.as_str(),
            j1.copy_job_id.as_str()
        ],
        "newest first"
    );

    let by = |f: CopyJobFilter| {
        let catalog = catalog.clone();
        async move { ids(catalog.list_copy_jobs(&f).await.unwrap()) }
    };
    assert_eq!(
        by(CopyJobFilter {
            state: Some(JobState::Running),
            ..Default::default()
        })
        .await,
        [j1.copy_job_id.as_str()]
    );
    assert_eq!(
        by(CopyJobFilter {
            state: Some(JobState::Created),
            ..Default::default()
        })
        .await,
        [j3.copy_job_id.as_str(), j2.copy_job_id.as_str()]
    );
    assert_eq!(
        by(CopyJobFilter {
            destination_region: Some("local-b".into()),
            ..Default::default()
        })
        .await,
        [j3.copy_job_id.as_str(), j1.copy_job_id.as_str()]
    );
    assert_eq!(
        by(CopyJobFilter {
            service: Some("pg2".into()),
            ..Default::default()
        })
        .await,
        [j3.copy_job_id.as_str()]
    );
    assert_eq!(
        by(CopyJobFilter {
            created_after: Some(t0 + TimeDelta::minutes(5)),
            created_before: Some(t0 + TimeDelta::minutes(15)),
            ..Default::default()
        })
        .await,
        [j2.copy_job_id.as_str()]
    );
    assert_eq!(
        by(CopyJobFilter {
            destination_region: Some("local-b".into()),
            service: Some("pg1".into()),
            state: Some(JobState::Running),
            limit: Some(1),
            ..Default::default()
        })
        .await,
        [j1.copy_job_id.as_str()]
    );
    assert_eq!(
        by(CopyJobFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .len(),
        2
    );

    let described = catalog
        .describe_copy_job(j2.copy_job_id.as_str())
        .await
        .unwrap();
    assert_eq!(described, j2);
    assert_eq!(described.created_by, CreatedBy::Event);
    assert_eq!(described.created_by_backup_job_id.as_deref(), Some("bj-b2"));
    assert_eq!(described.backup_size_in_bytes, Some(1000));
    let err = catalog.describe_copy_job("01NOPE").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), "copy job `01NOPE` not found");
}

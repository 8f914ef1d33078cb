#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Copies that must not stop for good: a store outage of a few seconds is retried, a copy that
//! failed for good is retried by a new job naming it (AWS: FAILED is final), and a damaged WAL
//! segment a backup does not need is reported on its own instead of failing the copy.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use btar_catalog::{Catalog, CatalogOptions, CopyJobFilter, EventFilter, JobState, SystemClock};
use btar_control::BackupState;
use btar_control::ControlPlane;
use btar_engine_pg::backup::PgMeta;
use btar_format::{BackupWriter, Location, WriterOptions, backup_name_at};
use btar_region::{CancellationToken, RegionConfig};
use btar_testkit::{PatternReader, S3Server, fs_region};
use chrono::{TimeDelta, Utc};

mod common;

const SVC: &str = "orders";
const SEG: u64 = 16 << 20;

async fn control(dir: &Path, home: RegionConfig, options: CatalogOptions) -> ControlPlane {
    let away = fs_region("away", &dir.join("away"));
    control_with(dir, home, away, options).await
}

async fn control_with(
    dir: &Path,
    home: RegionConfig,
    away: RegionConfig,
    options: CatalogOptions,
) -> ControlPlane {
    let cfg = common::daily_plan_config(SVC, vec![home, away], &["away"], true);
    let url = format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display());
    let catalog = Catalog::open_with(&url, options, Arc::new(SystemClock))
        .await
        .unwrap();
    ControlPlane::with_catalog(cfg, common::engines(), catalog, CancellationToken::new())
        .await
        .unwrap()
}

/// Commits a backup in the home region; with `wal`, it records that it needs segments
/// `wal.0..=wal.1` (timeline 1).
async fn backup(cp: &ControlPlane, wal: Option<(u64, u64)>) -> String {
    let region = cp.config().open_region("home", cp.cancel_token()).unwrap();
    let loc = Location::create(&region, SVC, "pg", None).await.unwrap();
    let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
    let entry = writer
        .write_file("base/1/16384", 0o600, PatternReader::new(1 << 20, 7))
        .await
        .unwrap();
    let at = Utc::now();
    let name = backup_name_at(at);
    let meta = match wal {
        None => serde_json::Value::Null,
        Some((a, b)) => serde_json::to_value(PgMeta {
            pg_version: 150000,
            system_identifier: "7000000000000000001".into(),
            timeline: 1,
            start_lsn: format!("0/{a:X}000028"),
            stop_lsn: format!("0/{b:X}000100"),
            start_wal: segment(a),
            stop_wal: segment(b),
            wal_segment_size: SEG,
            backup_start_time: at - TimeDelta::seconds(5),
            backup_stop_time: at,
            tablespace_map: None,
        })
        .unwrap(),
    };
    let mut m = writer.finish(&name, at, vec![entry], meta).await.unwrap();
    m.completed_at = at;
    loc.commit_manifest(&m).await.unwrap();
    name
}

fn segment(n: u64) -> String {
    format!("00000001000000000000{n:04X}")
}

/// Issue 10, item 9: the source region (S3) stops answering for a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_retried_and_a_final_failure_is_retried_by_a_new_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start();
    let cp = control(dir.path(), s3.region("home", "home-bucket"), fast_retries()).await;
    outage_is_retried_then_copied_by_a_new_job(&cp, &mut s3, "source").await;
}

/// Issue 10, item 9: the destination region (S3) stops answering for a while. Its copy jobs are
/// retried like a source outage's; FAILED is final, and the copy is made by a new job naming the
/// failed one once the destination is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_outage_is_retried_and_the_copy_completes_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start();
    let home = fs_region("home", &dir.path().join("home"));
    let away = s3.region("away", "away-bucket");
    let cp = control_with(dir.path(), home, away, fast_retries()).await;
    outage_is_retried_then_copied_by_a_new_job(&cp, &mut s3, "destination").await;
}

/// Two attempts per job, retried after 200 ms: an outage runs through a job's life in a second.
fn fast_retries() -> CatalogOptions {
    CatalogOptions {
        max_attempts: 2,
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(1),
        ..Default::default()
    }
}

/// A backup's copy while `s3` (the `side` of the copy: source or destination) is stopped: the job
/// fails retryably, then for good on its last attempt; once `s3` is back, one new job naming the
/// failed one makes the copy, which lists in the destination, and the failed job stays FAILED.
async fn outage_is_retried_then_copied_by_a_new_job(
    cp: &ControlPlane,
    s3: &mut S3Server,
    side: &str,
) {
    let b = backup(cp, Some((1, 1))).await;
    let home = cp.location(SVC, "home").await.unwrap();
    home.put_log("00000001", &segment(1), vec![1; 4096].into())
        .await
        .unwrap();
    assert_eq!(cp.queue_missing_copies().await.unwrap(), 1);

    s3.stop();
    let runs = cp.drain_copy_jobs().await.unwrap();
    assert_eq!(runs.len(), 1);
    let first = runs[0].job.clone();
    assert_eq!(first.state, JobState::Failed, "{first:?}");
    assert!(
        first.next_attempt_at.is_some(),
        "an unreachable {side} is retryable: {first:?}"
    );
    // object_store reports a refused connection as `Generic`: the region calls it unavailable.
    let msg = first.status_message.clone().unwrap_or_default();
    assert!(msg.contains("store unavailable"), "{msg}");
    // The last attempt fails too: the job is FAILED for good.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = cp.drain_copy_jobs().await.unwrap();
    assert_eq!(runs.len(), 1);
    let first = runs[0].job.clone();
    assert_eq!((first.state, first.attempts), (JobState::Failed, 2));
    assert!(
        first.next_attempt_at.is_none(),
        "FAILED is final: {first:?}"
    );

    // Back up again: the reconcile pass queues a new job naming the failed one, once its backoff
    // has passed, and only one.
    s3.restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cp.queue_missing_copies().await.unwrap(), 1);
    assert_eq!(cp.queue_missing_copies().await.unwrap(), 0);
    let runs = cp.drain_copy_jobs().await.unwrap();
    assert_eq!(runs.len(), 1);
    let retry = runs[0].job.clone();
    assert_eq!(retry.state, JobState::Completed, "{retry:?}");
    assert_eq!(retry.retry_of.as_deref(), Some(first.copy_job_id.as_str()));
    assert_eq!(retry.backup_name, b);
    // The failed job stays as it was.
    let old = cp
        .catalog()
        .describe_copy_job(&first.copy_job_id)
        .await
        .unwrap();
    assert_eq!(old.state, JobState::Failed);
    // The copy is really in the destination: it lists there.
    let view = cp.backups_view(SVC).await.unwrap();
    assert_eq!(
        view.backups[0].additional_regions[0].status,
        BackupState::Completed
    );
    let away = cp.location(SVC, "away").await.unwrap();
    assert!(away.list_backups().await.unwrap().contains(&b));
    assert_eq!(cp.queue_missing_copies().await.unwrap(), 0);
    let jobs = cp
        .catalog()
        .list_copy_jobs(&CopyJobFilter::default())
        .await
        .unwrap();
    assert_eq!(jobs.len(), 2);
}

/// Writes segments `1..=5` into the home location, then damages segment `bad` on disk.
async fn archive_with_damage(cp: &ControlPlane, dir: &Path, bad: u64) {
    let loc = cp.location(SVC, "home").await.unwrap();
    for n in 1..=5 {
        loc.put_log("00000001", &segment(n), vec![n as u8; 4096].into())
            .await
            .unwrap();
    }
    let path = dir
        .join("home")
        .join(loc.log_key("00000001", &segment(bad)));
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

/// Issue 10, item 10.
#[tokio::test]
async fn a_damaged_segment_the_backup_does_not_need_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(
        dir.path(),
        fs_region("home", &dir.path().join("home")),
        CatalogOptions::default(),
    )
    .await;
    let b = backup(&cp, Some((3, 4))).await;
    archive_with_damage(&cp, dir.path(), 1).await;
    assert_eq!(cp.queue_missing_copies().await.unwrap(), 1);
    let runs = cp.drain_copy_jobs().await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].job.state, JobState::Completed, "{:?}", runs[0].job);
    let away = cp.location(SVC, "away").await.unwrap();
    assert_eq!(away.list_backups().await.unwrap(), vec![b]);
    for n in 2..=5 {
        assert!(
            away.get_log("00000001", &segment(n))
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        away.get_log("00000001", &segment(1))
            .await
            .unwrap()
            .is_none()
    );
    let events = cp
        .catalog()
        .list_events(&EventFilter {
            service: Some(SVC.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let damaged: Vec<_> = events.iter().filter(|e| e.kind == "log_damaged").collect();
    assert_eq!(damaged.len(), 1, "{events:?}");
    assert!(damaged[0].message.contains(&segment(1)));
}

/// Issue 10, item 10: a damaged segment inside the backup's range still fails its copy.
#[tokio::test]
async fn a_damaged_segment_the_backup_needs_fails_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(
        dir.path(),
        fs_region("home", &dir.path().join("home")),
        CatalogOptions::default(),
    )
    .await;
    backup(&cp, Some((3, 4))).await;
    archive_with_damage(&cp, dir.path(), 4).await;
    assert_eq!(cp.queue_missing_copies().await.unwrap(), 1);
    let runs = cp.drain_copy_jobs().await.unwrap();
    let job = &runs[0].job;
    assert_eq!(job.state, JobState::Failed);
    let msg = job.status_message.clone().unwrap_or_default();
    assert!(msg.contains(&segment(4)) && msg.contains("needs"), "{msg}");
    let away = cp.location(SVC, "away").await.unwrap();
    assert!(away.list_backups().await.unwrap().is_empty());
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The control plane's copy jobs and retention against real stores (filesystem regions and an S3
//! endpoint that is down): one destination failing leaves the others unaffected, a keyless
//! destination fails at once with a clear message, and each location expires backups by its own
//! retention — also after the service is deleted.

use std::path::Path;

use btar_catalog::{Catalog, CopyJobFilter, JobState};
use btar_control::ControlPlane;
use btar_format::{BackupWriter, Location, WriterOptions, backup_name_at};
use btar_region::{CancellationToken, Region, RegionConfig};
use btar_testkit::{PatternReader, fs_region};
use chrono::{TimeDelta, Utc};

mod common;

const SVC: &str = "orders";

fn regions(dir: &Path) -> Vec<RegionConfig> {
    let mut down = fs_region("down", &dir.join("unused"));
    down.provider = "minio".into();
    // An S3 endpoint nobody listens on, retried once: "a store that is down".
    down.url = "s3://gone".into();
    for (k, v) in [
        (
            "aws_endpoint",
            format!("http://127.0.0.1:{}", btar_testkit::free_port()),
        ),
        ("aws_allow_http", "true".into()),
        ("aws_access_key_id", "k".into()),
        ("aws_secret_access_key", "secretsecret".into()),
        ("aws_region", "us-east-1".into()),
    ] {
        down.options.insert(k.into(), v);
    }
    down.retry.max_attempts = 1;
    let mut nokey = fs_region("nokey", &dir.join("nokey"));
    nokey.key = None;
    vec![
        fs_region("home", &dir.join("home")),
        fs_region("away", &dir.join("away")),
        down,
        nokey,
    ]
}

async fn control(dir: &Path, additional: &[&str]) -> ControlPlane {
    let cfg = common::daily_plan_config(SVC, regions(dir), additional, true);
    let url = format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display());
    let catalog = Catalog::open(&url).await.unwrap();
    ControlPlane::with_catalog(cfg, common::engines(), catalog, CancellationToken::new())
        .await
        .unwrap()
}

/// Commits a backup of `size` bytes whose completion time is `age` ago.
async fn backup(cp: &ControlPlane, age: TimeDelta, size: u64, seed: u64) -> String {
    let region = cp.config().open_region("home", cp.cancel_token()).unwrap();
    let loc = Location::create(&region, SVC, "pg", None).await.unwrap();
    let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
    let entry = writer
        .write_file("base/1/16384", 0o600, PatternReader::new(size, seed))
        .await
        .unwrap();
    let at = Utc::now() - age;
    let name = backup_name_at(at);
    let mut m = writer
        .finish(&name, at, vec![entry], serde_json::Value::Null)
        .await
        .unwrap();
    m.completed_at = at;
    loc.commit_manifest(&m).await.unwrap();
    name
}

async fn names(cp: &ControlPlane, region: &str) -> Vec<String> {
    let r: Region = cp.config().open_region(region, cp.cancel_token()).unwrap();
    Location::open(&r, SVC)
        .await
        .unwrap()
        .list_backups()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failing_destination_leaves_the_others_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path(), &["away", "down", "nokey"]).await;
    let b = backup(&cp, TimeDelta::zero(), 3 << 20, 1).await;
    assert_eq!(cp.queue_missing_copies().await.unwrap(), 3);
    let runs = cp.drain_copy_jobs().await.unwrap();
    assert_eq!(runs.len(), 3);
    let job = |dst: &str| {
        runs.iter()
            .find(|r| r.job.destination_region == dst)
            .unwrap()
            .job
            .clone()
    };

    let away = job("away");
    assert_eq!(away.state, JobState::Completed, "{away:?}");
    assert!(away.bytes_transferred > 0);
    assert_eq!(names(&cp, "away").await, vec![b.clone()]);

    // The store that is down: FAILED with a message naming it, retried later with backoff.
    let down = job("down");
    assert_eq!(down.state, JobState::Failed);
    let msg = down.status_message.clone().unwrap_or_default();
    assert!(msg.contains("down"), "{msg}");
    assert!(
        down.next_attempt_at.is_some(),
        "a store outage is retried: {down:?}"
    );

    // No key: refused before any byte moves, and not retried (an operator must act).
    let nokey = job("nokey");
    assert_eq!(nokey.state, JobState::Failed);
    let msg = nokey.status_message.clone().unwrap_or_default();
    assert!(msg.contains("nokey") && msg.contains("key"), "{msg}");
    assert!(nokey.next_attempt_at.is_none(), "{nokey:?}");
    assert!(!dir.path().join("nokey").join("btar").exists());

    let failed = cp
        .catalog()
        .list_copy_jobs(&CopyJobFilter {
            state: Some(JobState::Failed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 2);
    // Nothing more is due now: the outage's retry waits for its backoff.
    assert!(cp.drain_copy_jobs().await.unwrap().is_empty());
}

#[tokio::test]
async fn each_location_keeps_its_own_retention_even_after_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path(), &["away"]).await;
    let old = backup(&cp, TimeDelta::days(40), 1 << 20, 1).await;
    let middle = backup(&cp, TimeDelta::days(20), 1 << 20, 2).await;
    let newest = backup(&cp, TimeDelta::hours(1), 1 << 20, 3).await;
    // Copy all three (the scheduler would only queue the newest for an empty destination).
    let src = cp.location(SVC, "home").await.unwrap();
    let dst_region = cp.config().open_region("away", cp.cancel_token()).unwrap();
    let dst = btar_replicator::create_destination(&src, &dst_region)
        .await
        .unwrap();
    for b in [&old, &middle, &newest] {
        btar_replicator::copy_backup(&src, &dst, b, &Default::default(), &|_| {})
            .await
            .unwrap();
    }

    // Deleting the service stops nothing but new copies: retention still runs by its plan.
    cp.catalog().delete_service(SVC).await.unwrap();
    cp.apply_retention().await.unwrap();
    // Primary: 7 days (the newest backup is kept whatever its age). Secondary: 30 days.
    assert_eq!(names(&cp, "home").await, vec![newest.clone()]);
    assert_eq!(
        names(&cp, "away").await,
        vec![middle.clone(), newest.clone()]
    );

    // Chunks younger than the grace period stay, so what remains is intact in both locations.
    for region in ["home", "away"] {
        let loc = cp.location(SVC, region).await.unwrap();
        let report = btar_format::verify::verify(&loc, None, 4).await.unwrap();
        assert!(report.is_clean(), "{region}: {report:?}");
    }
}

/// A pack altered in the primary fails its copy job — FAILED, final, the message naming the
/// object — and the destination shows no copy.
#[tokio::test]
async fn a_tampered_source_pack_fails_the_job_and_is_not_propagated() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path(), &["away"]).await;
    backup(&cp, TimeDelta::zero(), 2 << 20, 5).await;
    let chunks: Vec<_> = btar_testkit::files_under(&dir.path().join("home"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".pack"))
        .collect();
    let victim = &chunks[chunks.len() / 2];
    let mut raw = std::fs::read(victim).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x80;
    std::fs::write(victim, raw).unwrap();
    let id = victim.file_name().unwrap().to_string_lossy().to_string();

    cp.queue_missing_copies().await.unwrap();
    let runs = cp.drain_copy_jobs().await.unwrap();
    let job = &runs[0].job;
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let msg = job.status_message.clone().unwrap_or_default();
    assert!(msg.contains(&id) && msg.contains("home"), "{msg}");
    assert!(
        job.next_attempt_at.is_none(),
        "damage is not retried: {job:?}"
    );
    let away = cp.location(SVC, "away").await.unwrap();
    assert!(away.list_backups().await.unwrap().is_empty());
    assert!(
        !btar_testkit::files_under(&dir.path().join("away"))
            .iter()
            .any(|p| p.ends_with(&id))
    );
}

/// The catalog is an index: a new, empty one is rebuilt from the stores.
#[tokio::test]
async fn the_backups_index_is_rebuilt_from_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path(), &["away"]).await;
    let b = backup(&cp, TimeDelta::zero(), 1 << 20, 9).await;
    cp.queue_missing_copies().await.unwrap();
    cp.drain_copy_jobs().await.unwrap();

    cp.catalog().close().await;
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    // Same config (same region keys), new catalog.
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("catalog.db").display()
    );
    let fresh = ControlPlane::with_catalog(
        cp.config().clone(),
        common::engines(),
        Catalog::open(&url).await.unwrap(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(
        fresh
            .catalog()
            .list_backups(SVC, None)
            .await
            .unwrap()
            .is_empty()
    );
    let indexed = fresh.rebuild_backups_index().await.unwrap();
    assert_eq!(
        indexed,
        vec![
            (SVC.into(), "home".into(), 1),
            (SVC.into(), "away".into(), 1)
        ]
    );
    let rows = fresh.catalog().list_backups(SVC, None).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.backup_name == b));
}

fn packs_under(root: &Path) -> Vec<std::path::PathBuf> {
    btar_testkit::files_under(root)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".pack"))
        .collect()
}

/// Garbage collection under a running backup: a retention pass that expires an old backup and
/// collects its packs while a backup is being written — that backup referencing the newest
/// backup's packs and having uploaded packs of its own, not yet named by any manifest — deletes
/// nothing the backup needs. It commits afterwards and restores byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_collecting_packs_during_a_backup_spares_what_it_uses() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let cp = control(dir.path(), &[]).await;
    let old = backup(&cp, TimeDelta::days(30), 2 << 20, 1).await;
    let newest = backup(&cp, TimeDelta::days(1), 2 << 20, 2).await;
    // Every object so far is older than the grace period: unreferenced, it would be collected.
    common::age_files(&home, 5);
    let before = packs_under(&home).len();
    let home_loc = cp.location(SVC, "home").await.unwrap();
    let old_packs = home_loc.read_manifest(&old).await.unwrap().packs;
    let kept_packs = home_loc.read_manifest(&newest).await.unwrap().packs;

    let region = cp.config().open_region("home", cp.cancel_token()).unwrap();
    let loc = Location::open(&region, SVC).await.unwrap();
    let writer = BackupWriter::new(
        loc.clone(),
        WriterOptions {
            pack_size: 1 << 20,
            ..WriterOptions::default()
        },
    );
    // The newest backup's file again (all its blocks referenced where they are), then new data
    // (several packs uploaded, the last one still filling).
    let same = writer
        .write_file("base/1/16384", 0o600, PatternReader::new(2 << 20, 2))
        .await
        .unwrap();
    let fresh = writer
        .write_file("base/1/16385", 0o600, PatternReader::new(8 << 20, 3))
        .await
        .unwrap();
    let uploaded = packs_under(&home).len() - before;
    assert!(uploaded >= 1, "{uploaded} packs uploaded before the pass");

    let expired = cp.apply_retention().await.unwrap();
    assert!(
        expired.iter().any(|e| e.region == "home" && e.chunks >= 1),
        "{expired:?}"
    );
    assert_eq!(names(&cp, "home").await, vec![newest.clone()]);
    assert!(!names(&cp, "home").await.contains(&old));
    for id in &old_packs {
        assert!(!home_loc.has_pack(id).await.unwrap(), "expired pack kept");
    }
    for id in &kept_packs {
        assert!(
            home_loc.has_pack(id).await.unwrap(),
            "the newest backup's pack collected"
        );
    }

    let at = Utc::now();
    let m = writer
        .finish(
            &backup_name_at(at),
            at,
            vec![same, fresh],
            serde_json::Value::Null,
        )
        .await
        .unwrap();
    loc.commit_manifest(&m).await.unwrap();
    for (entry, seed, len) in [(&m.files[0], 2, 2u64 << 20), (&m.files[1], 3, 8 << 20)] {
        let mut sink = btar_testkit::HashWriter::default();
        btar_format::FileReader::new(loc.clone(), 4)
            .write_to(&m, entry, &mut sink, &|_| {})
            .await
            .unwrap();
        let mut src = PatternReader::new(len, seed);
        tokio::io::copy(&mut src, &mut tokio::io::sink())
            .await
            .unwrap();
        assert_eq!(sink.hasher.finalize(), src.digest(), "{}", entry.path);
    }
    let report = btar_format::verify::verify(&loc, None, 4).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

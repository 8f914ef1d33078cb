#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Kept means visible (DESIGN.md invariant 8): backups stay listed, with their expiry, after their
//! region is removed from `additional_backup_regions`, after their service is deleted, and beside a
//! damaged neighbour; retention still reaches them; a deleted service stays deleted.

use std::path::Path;

use btar_catalog::Catalog;
use btar_control::BackupState;
use btar_control::{BackupsView, Config, ControlPlane, ServiceCreate};
use btar_engine::Target;
use btar_engine_pg::backup::PgMeta;
use btar_engine_pg::restore;
use btar_format::{BackupWriter, Location, WriterOptions, backup_name_at, layout};
use btar_region::CancellationToken;
use btar_testkit::{PatternReader, fs_region};
use chrono::{TimeDelta, Utc};

mod common;

const SVC: &str = "orders";

fn config(dir: &Path, additional: &[&str]) -> Config {
    common::daily_plan_config(
        SVC,
        vec![
            fs_region("home", &dir.join("home")),
            fs_region("away", &dir.join("away")),
        ],
        additional,
        false,
    )
}

async fn catalog(dir: &Path) -> Catalog {
    let url = format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display());
    Catalog::open(&url).await.unwrap()
}

async fn control(dir: &Path, additional: &[&str]) -> ControlPlane {
    ControlPlane::with_catalog(
        config(dir, additional),
        common::engines(),
        catalog(dir).await,
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// Commits a PostgreSQL-shaped backup in the home region whose completion was `age` ago.
async fn backup(cp: &ControlPlane, age: TimeDelta, seed: u64) -> String {
    let region = cp.config().open_region("home", cp.cancel_token()).unwrap();
    let loc = Location::create(&region, SVC, "pg", None).await.unwrap();
    let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
    let entry = writer
        .write_file("base/1/16384", 0o600, PatternReader::new(1 << 20, seed))
        .await
        .unwrap();
    let at = Utc::now() - age;
    let name = backup_name_at(at);
    let meta = PgMeta {
        pg_version: 150000,
        system_identifier: "7000000000000000001".into(),
        timeline: 1,
        start_lsn: format!("0/{:X}000028", seed),
        stop_lsn: format!("0/{:X}000100", seed),
        start_wal: format!("0000000100000000000000{seed:02X}"),
        stop_wal: format!("0000000100000000000000{seed:02X}"),
        wal_segment_size: 16 << 20,
        backup_start_time: at - TimeDelta::seconds(5),
        backup_stop_time: at,
        tablespace_map: None,
    };
    let mut m = writer
        .finish(&name, at, vec![entry], serde_json::to_value(meta).unwrap())
        .await
        .unwrap();
    m.completed_at = at;
    loc.commit_manifest(&m).await.unwrap();
    name
}

/// Copies the named backups home → away, as the copy worker would, and indexes them.
async fn copy(cp: &ControlPlane, names: &[&String]) {
    let src = cp.location(SVC, "home").await.unwrap();
    let dst_region = cp.config().open_region("away", cp.cancel_token()).unwrap();
    let dst = btar_replicator::create_destination(&src, &dst_region)
        .await
        .unwrap();
    for b in names {
        btar_replicator::copy_backup(&src, &dst, b, &Default::default(), &|_| {})
            .await
            .unwrap();
    }
    cp.rebuild_backups_index().await.unwrap();
}

fn entry<'a>(view: &'a BackupsView, name: &str) -> &'a btar_control::BackupEntry {
    view.backups
        .iter()
        .find(|b| b.backup_name == name)
        .unwrap_or_else(|| panic!("{name} not listed: {view:#?}"))
}

fn away(e: &btar_control::BackupEntry) -> &btar_control::LocationStatus {
    e.additional_regions
        .iter()
        .find(|a| a.region == "away")
        .unwrap_or_else(|| panic!("away not listed for {}: {e:#?}", e.backup_name))
}

async fn names(cp: &ControlPlane, region: &str) -> Vec<String> {
    cp.location(SVC, region)
        .await
        .unwrap()
        .list_backups()
        .await
        .unwrap()
}

/// Issue 10, item 4.
#[tokio::test]
async fn a_removed_region_stays_listed_and_expires_by_its_own_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path(), &["away"]).await;
    let ancient = backup(&cp, TimeDelta::days(40), 1).await;
    let old = backup(&cp, TimeDelta::days(20), 2).await;
    let new = backup(&cp, TimeDelta::hours(1), 3).await;
    copy(&cp, &[&ancient, &old, &new]).await;

    cp.catalog()
        .update_additional_regions(SVC, &[])
        .await
        .unwrap();
    let view = cp.backups_view(SVC).await.unwrap();
    let ranges: Vec<&str> = view
        .pitr
        .additional_regions
        .iter()
        .map(|r| r.region.as_str())
        .collect();
    assert_eq!(ranges, ["away"], "{view:#?}");
    let r = &view.pitr.additional_regions[0];
    assert!(r.paused && r.pitr_range_start.is_some() && r.pitr_range_end.is_some());
    assert!(
        r.pause_reason
            .as_deref()
            .unwrap()
            .contains("removed from additional_backup_regions")
    );
    for b in [&ancient, &old, &new] {
        let a = away(entry(&view, b));
        assert_eq!(a.status, BackupState::Completed, "{a:?}");
        assert!(a.paused);
        // No new copies arrive, so even the newest expires with its retention there.
        let e = entry(&view, b);
        let want = e.backup_time + TimeDelta::days(30);
        assert_eq!(a.expires_at, Some(want), "{b}");
    }
    // In the primary, the newest is kept whatever its age: no expiry shown for it.
    assert_eq!(entry(&view, &new).expires_at, None);
    assert_eq!(
        entry(&view, &old).expires_at,
        Some(entry(&view, &old).backup_time + TimeDelta::days(7))
    );

    // Retention reaches the removed region: 30 days there, 7 in the primary.
    cp.apply_retention().await.unwrap();
    assert_eq!(names(&cp, "away").await, vec![old.clone(), new.clone()]);
    assert_eq!(names(&cp, "home").await, vec![new.clone()]);
    let view = cp.backups_view(SVC).await.unwrap();
    let listed: Vec<&str> = view
        .backups
        .iter()
        .map(|b| b.backup_name.as_str())
        .collect();
    assert_eq!(listed, [old.as_str(), new.as_str()]);
    // Gone from the primary, kept (and listed) in the secondary.
    assert_eq!(entry(&view, &old).status, BackupState::Expired);
    assert_eq!(away(entry(&view, &old)).status, BackupState::Completed);
}

/// Issue 10, item 5.
#[tokio::test]
async fn a_deleted_services_backups_are_listed_until_retention() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path(), &["away"]).await;
    let old = backup(&cp, TimeDelta::days(3), 1).await;
    let new = backup(&cp, TimeDelta::hours(1), 2).await;
    copy(&cp, &[&old, &new]).await;
    cp.delete_service(SVC).await.unwrap();

    let view = cp.backups_view(SVC).await.unwrap();
    assert!(view.deleted_at.is_some());
    let listed: Vec<&str> = view
        .backups
        .iter()
        .map(|b| b.backup_name.as_str())
        .collect();
    assert_eq!(listed, [old.as_str(), new.as_str()]);
    for b in [&old, &new] {
        let e = entry(&view, b);
        assert_eq!(e.status, BackupState::Completed);
        assert_eq!(e.expires_at, Some(e.backup_time + TimeDelta::days(7)));
        let a = away(e);
        assert_eq!(a.status, BackupState::Completed);
        assert_eq!(a.expires_at, Some(e.backup_time + TimeDelta::days(30)));
        assert!(a.pause_reason.as_deref().unwrap().contains("deleted"));
    }
    assert!(view.pitr.primary_region.paused);
    // Other routes keep treating the service as gone.
    assert!(cp.get_service_view(SVC).await.is_err());
    assert!(cp.backups_view("never-existed").await.is_err());
}

/// Issue 10, item 6.
#[tokio::test]
async fn a_deleted_service_declared_in_the_config_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path(), &["away"]).await;
    cp.delete_service(SVC).await.unwrap();
    let deleted_at = cp
        .catalog()
        .get_service_of_record(SVC)
        .await
        .unwrap()
        .deleted_at;
    assert!(deleted_at.is_some());

    // The next CLI command opens the control plane with the same config.
    let again = control(dir.path(), &["away"]).await;
    assert!(
        again.catalog().get_service(SVC).await.is_err(),
        "resurrected"
    );
    assert!(again.list_services().await.unwrap().is_empty());
    let record = again.catalog().get_service_of_record(SVC).await.unwrap();
    assert_eq!(record.deleted_at, deleted_at);

    // An explicit create still brings the name back.
    again
        .create_service(ServiceCreate {
            name: SVC.into(),
            service_type: "pg".into(),
            cloud: "home".into(),
            plan: String::new(),
            user_config: serde_json::json!({}),
        })
        .await
        .unwrap();
    assert!(again.catalog().get_service(SVC).await.is_ok());
}

/// Flips one byte in the middle of a stored object.
fn flip(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// Issue 10, item 7.
#[tokio::test]
async fn one_damaged_manifest_is_reported_and_hides_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path(), &[]).await;
    let first = backup(&cp, TimeDelta::hours(3), 1).await;
    let middle = backup(&cp, TimeDelta::hours(2), 2).await;
    let last = backup(&cp, TimeDelta::hours(1), 3).await;
    flip(&dir.path().join("home").join(layout::manifest(SVC, &middle)));

    let view = cp.backups_view(SVC).await.unwrap();
    let listed: Vec<(&str, &str)> = view
        .backups
        .iter()
        .map(|b| (b.backup_name.as_str(), b.status.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (first.as_str(), "COMPLETED"),
            (middle.as_str(), "DAMAGED"),
            (last.as_str(), "COMPLETED")
        ]
    );
    let reason = entry(&view, &middle).reason.clone().unwrap();
    assert!(reason.contains(&middle), "{reason}");
    assert!(view.pitr.primary_region.pitr_range_end.is_some());

    // Restore choices: the newest is served; the damaged one is skipped and said so, or refused
    // when named.
    let loc = cp.location(SVC, "home").await.unwrap();
    let (w, backups, _) = restore::window(&loc).await.unwrap();
    assert_eq!(w.backups, vec![first.clone(), last.clone()]);
    let (m, _) = restore::choose(&w, &backups, &Target::Latest, None, SVC).unwrap();
    assert_eq!(m.backup_name, last);
    let between = entry(&view, &middle).backup_time + TimeDelta::minutes(30);
    let (m, _) = restore::choose(&w, &backups, &Target::Time(between), None, SVC).unwrap();
    assert_eq!(m.backup_name, first);
    let skipped = restore::skipped_damaged(&w, &m.backup_name, &Target::Time(between));
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].backup_name, middle);
    let err = restore::choose(&w, &backups, &Target::Latest, Some(&middle), SVC).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");

    // Retention is not blocked either (and keeps the damaged backup for an operator).
    cp.apply_retention().await.unwrap();
    assert_eq!(names(&cp, "home").await.len(), 3);
}

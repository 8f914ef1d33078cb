#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Repacking in the retention pass, on a filesystem region: a pack the kept backups barely use is
//! rewritten into a new pack and the backups naming it point there; the old pack stays a grace
//! period after the repack (not after it was written), and goes only when no backup names it —
//! also when a backup written during the repack took it as its dedupe base.

use std::path::Path;

use btar_control::ControlPlane;
use btar_format::{BackupWriter, FileEntry, Location, Manifest, PackId, WriterOptions};
use btar_format::{backup_name_at, verify};
use btar_region::CancellationToken;
use btar_testkit::{PatternReader, fs_region};
use chrono::{DateTime, TimeDelta, Utc};

mod common;

const SVC: &str = "orders";
const MIB: u64 = 1 << 20;

/// (path, bytes, seed) of a file of pattern data.
type Spec = (&'static str, u64, u64);

/// The largest file: when the first backup expires, the pack it fills is 20 % live.
const BIG: Spec = ("base/1/16384", 4 * MIB, 1);
/// Kept by every later backup.
const SMALL: Spec = ("base/1/16385", MIB, 9);

async fn control(dir: &Path) -> ControlPlane {
    let regions = vec![fs_region("home", &dir.join("home"))];
    let cfg = common::daily_plan_config(SVC, regions, &[], true);
    let url = format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display());
    let catalog = btar_catalog::Catalog::open(&url).await.unwrap();
    ControlPlane::with_catalog(cfg, common::engines(), catalog, CancellationToken::new())
        .await
        .unwrap()
}

async fn home(cp: &ControlPlane) -> Location {
    let region = cp.config().open_region("home", cp.cancel_token()).unwrap();
    Location::create(&region, SVC, "pg", None).await.unwrap()
}

async fn write(w: &BackupWriter, files: &[Spec]) -> Vec<FileEntry> {
    let mut out = Vec::new();
    for (path, len, seed) in files {
        let r = PatternReader::new(*len, *seed);
        out.push(w.write_file(path, 0o600, r).await.unwrap());
    }
    out
}

async fn commit(loc: &Location, w: BackupWriter, files: Vec<FileEntry>, age: TimeDelta) -> String {
    let at = Utc::now() - age;
    let name = backup_name_at(at);
    let mut m = w
        .finish(&name, at, files, serde_json::Value::Null)
        .await
        .unwrap();
    m.completed_at = at;
    loc.commit_manifest(&m).await.unwrap();
    name
}

/// Commits a backup of `files` completed `age` ago.
async fn backup(cp: &ControlPlane, age: TimeDelta, files: &[Spec]) -> String {
    let loc = home(cp).await;
    let w = BackupWriter::new(loc.clone(), WriterOptions::default());
    let entries = write(&w, files).await;
    commit(&loc, w, entries, age).await
}

/// Every file of backup `name` restores to its pattern, and the location verifies clean.
async fn assert_restores(loc: &Location, name: &str, files: &[Spec]) -> Manifest {
    let m = loc.read_manifest(name).await.unwrap();
    for (path, len, seed) in files {
        let entry = m.files.iter().find(|f| f.path == *path).unwrap();
        let mut sink = btar_testkit::HashWriter::default();
        btar_format::FileReader::new(loc.clone(), 4)
            .write_to(&m, entry, &mut sink, &|_| {})
            .await
            .unwrap();
        let mut src = PatternReader::new(*len, *seed);
        tokio::io::copy(&mut src, &mut tokio::io::sink())
            .await
            .unwrap();
        assert_eq!(sink.hasher.finalize(), src.digest(), "{name}: {path}");
    }
    let report = verify::verify(loc, None, 4).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    m
}

async fn start() -> (tempfile::TempDir, ControlPlane, Location) {
    let dir = tempfile::tempdir().unwrap();
    let cp = control(dir.path()).await;
    let loc = home(&cp).await;
    (dir, cp, loc)
}

struct Two {
    old: String,
    newest: String,
    /// The one pack both name.
    first: Vec<PackId>,
}

/// An old backup of [`BIG`] and [`SMALL`], and a recent one of [`SMALL`] only, sharing one pack
/// that is 20 % live once the old one expires; every object written long ago, so only a repack's
/// marker can hold the pack back.
async fn two_backups(cp: &ControlPlane, loc: &Location, root: &Path) -> Two {
    let old = backup(cp, TimeDelta::days(30), &[BIG, SMALL]).await;
    let newest = backup(cp, TimeDelta::days(1), &[SMALL]).await;
    let first: Vec<PackId> = loc.read_manifest(&newest).await.unwrap().packs;
    assert_eq!(first, loc.read_manifest(&old).await.unwrap().packs);
    common::age_files(root, 5);
    Two { old, newest, first }
}

fn markers(root: &Path) -> usize {
    btar_testkit::files_under(root)
        .iter()
        .filter(|p| p.to_string_lossy().contains(".superseded-"))
        .count()
}

/// A retention pass at `now` in which `expiring` (an old backup committed just before) expires,
/// so that the pass collects and repacks.
async fn pass(cp: &ControlPlane, now: DateTime<Utc>, expiring: &str) -> btar_control::Expired {
    let out = cp.apply_retention_at(now).await.unwrap();
    let e = out.into_iter().find(|e| e.region == "home").unwrap();
    assert_eq!(e.backups, vec![expiring.to_string()], "{e:?}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mostly_dead_pack_is_repacked_and_goes_a_grace_period_after() {
    let (dir, cp, loc) = start().await;
    let root = dir.path().join("home");
    let Two { old, newest, first } = two_backups(&cp, &loc, &root).await;
    let t0 = Utc::now();

    let e = pass(&cp, t0, &old).await;
    assert_eq!(e.repacked.packs_superseded, 1, "{e:?}");
    assert_eq!(e.repacked.manifests_rewritten, 1, "{e:?}");
    assert!(e.repacked.dead_bytes >= 4 * MIB, "{e:?}");
    let m = assert_restores(&loc, &newest, &[SMALL]).await;
    assert!(m.packs.iter().all(|p| !first.contains(p)), "{:?}", m.packs);
    assert!(loc.has_pack(&first[0]).await.unwrap(), "collected at once");
    assert_eq!(markers(&root), 1);

    // A day later (an old backup expiring so that the pass collects): within the grace period.
    let mid = backup(&cp, TimeDelta::days(20), &[("base/1/1", 8192, 3)]).await;
    let e = pass(&cp, t0 + TimeDelta::days(1), &mid).await;
    assert_eq!(e.repacked.packs_superseded, 0, "{e:?}");
    assert!(
        loc.has_pack(&first[0]).await.unwrap(),
        "collected within the grace"
    );

    let mid = backup(&cp, TimeDelta::days(20), &[("base/1/2", 8192, 4)]).await;
    let e = pass(&cp, t0 + TimeDelta::days(3), &mid).await;
    assert!(
        !loc.has_pack(&first[0]).await.unwrap(),
        "kept past the grace: {e:?}"
    );
    assert_eq!(markers(&root), 0, "marker left behind");
    assert_restores(&loc, &newest, &[SMALL]).await;
}

/// Garbage collection with a backup under way: the backup takes the newest backup's pack as its
/// dedupe base, a pass repacks that pack, the backup commits naming it. The pack stays while the
/// backup is kept (repacked again by the next pass, and collected only a grace period after that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_written_during_a_repack_keeps_the_pack_it_uses() {
    let (dir, cp, loc) = start().await;
    let root = dir.path().join("home");
    let Two { old, newest, first } = two_backups(&cp, &loc, &root).await;
    let t0 = Utc::now();

    let fresh: Spec = ("base/1/16386", 2 * MIB, 5);
    let w = BackupWriter::new(loc.clone(), WriterOptions::default());
    let entries = write(&w, &[SMALL, fresh]).await;
    let e = pass(&cp, t0, &old).await;
    assert_eq!(e.repacked.packs_superseded, 1, "{e:?}");
    let during = commit(&loc, w, entries, TimeDelta::zero()).await;
    let m = assert_restores(&loc, &during, &[SMALL, fresh]).await;
    assert!(m.packs.contains(&first[0]), "{:?}", m.packs);

    // Past the grace of the first repack: the pack is named again, so it stays (and is repacked
    // once more, for the backup that took it).
    let mid = backup(&cp, TimeDelta::days(20), &[("base/1/1", 8192, 3)]).await;
    let second = t0 + TimeDelta::hours(60);
    let e = pass(&cp, second, &mid).await;
    assert!(
        loc.has_pack(&first[0]).await.unwrap(),
        "collected under a backup: {e:?}"
    );
    assert_eq!(e.repacked.packs_superseded, 1, "{e:?}");
    assert_restores(&loc, &during, &[SMALL, fresh]).await;
    assert_restores(&loc, &newest, &[SMALL]).await;

    let mid = backup(&cp, TimeDelta::days(20), &[("base/1/2", 8192, 4)]).await;
    pass(&cp, second + TimeDelta::hours(60), &mid).await;
    assert!(!loc.has_pack(&first[0]).await.unwrap());
    assert_eq!(markers(&root), 0);
    assert_restores(&loc, &during, &[SMALL, fresh]).await;
    assert_restores(&loc, &newest, &[SMALL]).await;
}

/// `repack_live_percent = 0` turns repacking off: the pass only collects.
#[tokio::test]
async fn repacking_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let regions = vec![fs_region("home", &dir.path().join("home"))];
    let mut cfg = common::daily_plan_config(SVC, regions, &[], true);
    cfg.storage.repack_live_percent = 0;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("catalog.db").display()
    );
    let catalog = btar_catalog::Catalog::open(&url).await.unwrap();
    let cp = ControlPlane::with_catalog(cfg, common::engines(), catalog, CancellationToken::new())
        .await
        .unwrap();
    let old = backup(&cp, TimeDelta::days(30), &[BIG, SMALL]).await;
    backup(&cp, TimeDelta::days(1), &[SMALL]).await;
    common::age_files(&dir.path().join("home"), 5);
    let e = pass(&cp, Utc::now(), &old).await;
    assert_eq!(e.repacked, Default::default(), "{e:?}");
    assert_eq!(markers(&dir.path().join("home")), 0);
}

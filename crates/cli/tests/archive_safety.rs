#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Nothing acknowledged may be lost (issue 10, items 1–3 and 13): `wal-push` into a vanished region
//! fails instead of starting a new location there; `wal-fetch` exits 1 only for "not archived";
//! every write to a filesystem region is fsynced before it is acknowledged; a root-run CLI leaves
//! objects the region's owner can still manage, and a permission error is not retried.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use btar_testkit::describe;
use common::{Backend, SVC, World};

fn seg_name(i: u32) -> String {
    format!("0000000100000000000000{i:02X}")
}

fn push(w: &World, p: &Path) -> std::process::Output {
    w.btar(&["wal-push", "--service", SVC, p.to_str().unwrap()])
}

fn fetch(w: &World, name: &str) -> std::process::Output {
    let dest = w.dir.sub("fetched").join("RECOVERYXLOG");
    w.btar(&["wal-fetch", "--service", SVC, name, dest.to_str().unwrap()])
}

/// The `file://` region's mount point is unmounted (the bare directory below stays, writable):
/// `wal-push` must fail, write nothing there, and succeed again once the region is back.
#[test]
fn wal_push_into_an_unmounted_filesystem_region_fails() {
    let w = World::new(Backend::Fs);
    w.register();
    let mount = w.dir.path().join("store-home");
    assert!(push(&w, &w.wal_segment(&seg_name(1), 1)).status.success());

    let real = w.dir.path().join("store-home.real");
    std::fs::rename(&mount, &real).unwrap();
    std::fs::create_dir(&mount).unwrap();
    btar_testkit::hand_over(&mount);
    for i in 2..=4 {
        let out = push(&w, &w.wal_segment(&seg_name(i), i as u8));
        assert!(
            !out.status.success(),
            "acknowledged into a bare mount point: {}",
            describe(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no btar location") && err.contains("mount point"),
            "{err}"
        );
    }
    // Nor does a backup start a new location there: the catalog recorded the one created at
    // registration (the backup is refused before it even connects to the database).
    let err = w.btar_err(&["backup", "create", SVC]);
    assert!(err.contains("is missing although the catalog"), "{err}");
    assert!(
        btar_testkit::files_under(&mount).is_empty(),
        "nothing may be written at the bare mount point"
    );

    // "Remount": PostgreSQL's retries now succeed, and every segment is in the real location.
    std::fs::remove_dir(&mount).unwrap();
    std::fs::rename(&real, &mount).unwrap();
    for i in 2..=4 {
        let out = push(&w, &w.wal_segment(&seg_name(i), i as u8));
        assert!(out.status.success(), "{}", describe(&out));
    }
    for i in 1..=4 {
        let out = fetch(&w, &seg_name(i));
        assert!(out.status.success(), "{}: {}", seg_name(i), describe(&out));
    }
}

/// A catalog that does not know the service (a new one, or the old one lost) beside a region whose
/// mount point is gone: reading commands register the config's services but create no location,
/// so the next `wal-push` fails instead of archiving into a new location at the bare mount point.
#[test]
fn no_command_but_an_explicit_one_creates_a_location_where_the_catalog_knows_none() {
    let w = World::new(Backend::Fs);
    w.register();
    assert!(push(&w, &w.wal_segment(&seg_name(1), 1)).status.success());
    let dir = w.config.parent().unwrap();
    for f in std::fs::read_dir(dir).unwrap().flatten() {
        if f.file_name()
            .to_string_lossy()
            .starts_with("btar-catalog.db")
        {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    let mount = w.dir.path().join("store-home");
    std::fs::rename(&mount, w.dir.path().join("store-home.real")).unwrap();
    std::fs::create_dir(&mount).unwrap();
    btar_testkit::hand_over(&mount);
    for args in [
        &["service", "get", SVC][..],
        &["service", "list"],
        &["backup", "list", SVC],
    ] {
        let _ = w.btar(args);
    }
    let out = push(&w, &w.wal_segment(&seg_name(2), 2));
    assert!(
        !out.status.success(),
        "acknowledged into a location a reading command created at the bare mount point: {}",
        describe(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("btar service init"), "{err}");
    assert!(
        btar_testkit::files_under(&mount).is_empty(),
        "a reading command wrote at the bare mount point: {:?}",
        btar_testkit::files_under(&mount)
    );
}

/// `wal-fetch` keeps the location's descriptor locally (`[wal_fetch] cache_descriptor`, on by
/// default), so it no longer reads it from the store. Once the mount point is gone, a segment it
/// cannot find must not be answered "not archived" (exit 1: PostgreSQL would end recovery and
/// promote, short of its target): the location is checked first, and its absence stops recovery.
#[test]
fn wal_fetch_from_a_vanished_region_does_not_answer_not_archived_from_the_cached_descriptor() {
    let w = World::new(Backend::Fs);
    w.register();
    for i in 1..=2 {
        assert!(
            push(&w, &w.wal_segment(&seg_name(i), i as u8))
                .status
                .success()
        );
    }
    // Caches the descriptor.
    let out = fetch(&w, &seg_name(1));
    assert!(out.status.success(), "{}", describe(&out));

    let mount = w.dir.path().join("store-home");
    std::fs::rename(&mount, w.dir.path().join("store-home.real")).unwrap();
    std::fs::create_dir(&mount).unwrap();
    btar_testkit::hand_over(&mount);
    for i in [2, 3] {
        // Segment 2 is archived (the prefetcher may have spooled it: delivered, or refused, but
        // never "not archived"); segment 3 never was, yet from here nobody can tell.
        let out = fetch(&w, &seg_name(i));
        let code = out.status.code().unwrap_or(0);
        assert!(
            code == 0 && i == 2 || code > 125,
            "segment {i}: exit {code} from a vanished location: {}",
            describe(&out)
        );
        if code != 0 {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("location itself is gone"), "{err}");
        }
    }
}

/// A backup into a region whose location vanished does not start a new one there once the catalog
/// has indexed backups of it; neither does a copy into a secondary that vanished.
#[test]
fn backups_and_copies_do_not_restart_a_vanished_location() {
    let w = World::with_cluster(Backend::Fs);
    common::mark(w.pg(), "one");
    w.backup();
    for (store, what) in [("store-home", "backup"), ("store-away", "copy")] {
        let mount = w.dir.path().join(store);
        let real = w.dir.path().join(format!("{store}.real"));
        std::fs::rename(&mount, &real).unwrap();
        std::fs::create_dir(&mount).unwrap();
        btar_testkit::hand_over(&mount);
        let out = w.btar(&["--output", "json", "backup", "create", SVC]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), describe(&out));
        assert!(
            text.contains("is missing although the catalog lists"),
            "{what}: {text}"
        );
        let manifests: Vec<_> = btar_testkit::files_under(&mount)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".manifest"))
            .collect();
        assert!(manifests.is_empty(), "{what}: {manifests:?}");
        std::fs::remove_dir_all(&mount).unwrap();
        std::fs::rename(&real, &mount).unwrap();
    }
}

/// The same on S3: the bucket deleted, or the config pointing at a wrong prefix.
#[test]
fn wal_push_into_a_missing_bucket_or_prefix_fails() {
    let w = World::new(Backend::S3);
    w.register();
    let s3 = w.s3.as_ref().unwrap();
    assert!(push(&w, &w.wal_segment(&seg_name(1), 1)).status.success());

    // A wrong prefix in the region's URL: an empty place inside an existing bucket.
    let mut regions = w.regions.clone();
    regions[0].url = format!("{}/wrong-prefix", regions[0].url.trim_end_matches('/'));
    let moved = w.dir.path().join("btar-moved.toml");
    common::write_config_file(&moved, &regions, "host=127.0.0.1 port=1");
    let out = common::btar_with(
        &moved,
        &[
            "wal-push",
            "--service",
            SVC,
            w.wal_segment(&seg_name(2), 2).to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no btar location"));

    // The bucket deleted (s3s-fs keeps one directory per bucket).
    std::fs::remove_dir_all(s3.bucket_dir("home-bucket")).unwrap();
    let out = push(&w, &w.wal_segment(&seg_name(3), 3));
    assert!(!out.status.success(), "{}", describe(&out));
    // And wal-fetch from it stops recovery rather than ending it.
    let out = fetch(&w, &seg_name(1));
    assert!(out.status.code().unwrap_or(0) > 125, "{}", describe(&out));
}

/// PostgreSQL ends recovery (and promotes) on any restore_command exit code from 1 to 125. Only
/// "not in the archive" may exit 1; every failure of btar's own must stop recovery.
#[test]
fn wal_fetch_exits_1_only_when_a_file_is_not_archived() {
    let w = World::new(Backend::Fs);
    w.register();
    let dest = w.dir.sub("f").join("RECOVERYXLOG");
    let dest = dest.to_str().unwrap();
    let not_archived = seg_name(9);

    let out = fetch(&w, &not_archived);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));

    let malformed = w.dir.path().join("malformed.toml");
    std::fs::write(&malformed, "[[region]\nname = ").unwrap();
    let broken = w.dir.path().join("broken-region.toml");
    std::fs::write(
        &broken,
        "[[region]]\nname = \"home\"\nprovider = \"local\"\nurl = \"ftp://x\"\n",
    )
    .unwrap();
    let absent = w.dir.path().join("absent.toml");
    // A config PostgreSQL's restore_command names that is gone, malformed or invalid.
    for (what, config) in [
        ("missing config", &absent),
        ("malformed config", &malformed),
        ("invalid region", &broken),
    ] {
        let out = common::btar_with(
            config,
            &["wal-fetch", "--service", SVC, &not_archived, dest],
        );
        let code = out.status.code().unwrap_or(0);
        assert!(
            code > 125,
            "{what}: exit {code} would end recovery early: {}",
            describe(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&*config.to_string_lossy()),
            "{what}: names the config: {}",
            describe(&out)
        );
    }
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "unknown service",
            vec!["--service".into(), "no-such-service".into()],
        ),
        (
            "unknown region",
            vec![
                "--service".into(),
                SVC.into(),
                "--region".into(),
                "nowhere".into(),
            ],
        ),
        (
            "service without location",
            vec![
                "--service".into(),
                "ghost".into(),
                "--region".into(),
                "home".into(),
            ],
        ),
        ("unknown flag", vec!["--bogus".into()]),
    ];
    for (what, extra) in cases {
        let mut args: Vec<String> = vec!["wal-fetch".into()];
        args.extend(extra);
        args.extend([not_archived.clone(), dest.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.btar(&args);
        let code = out.status.code().unwrap_or(0);
        assert!(
            code > 125,
            "{what}: exit {code} would end recovery early: {}",
            describe(&out)
        );
    }
    // Missing arguments: clap's usage error, with the code that stops recovery.
    let out = w.btar(&["wal-fetch", &not_archived]);
    assert!(out.status.code().unwrap_or(0) > 125, "{}", describe(&out));
    // Help is not a failure.
    assert_eq!(w.btar(&["wal-fetch", "--help"]).status.code(), Some(0));
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The strace log of `btar ARGS` (and its threads): its fsync/fdatasync calls, with `-y` naming
/// each descriptor's path.
fn traced_syncs(w: &World, args: &[&str]) -> String {
    let log = w.dir.path().join(format!("strace-{}.log", rand_suffix()));
    let mut c = btar_testkit::as_db_user("strace");
    c.args(["-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_btar"))
        .arg("--config")
        .arg(&w.config)
        .args(args);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", describe(&out));
    std::fs::read_to_string(&log).unwrap_or_default()
}

/// Counts fsync/fdatasync calls of `btar ARGS` (and its threads).
fn fsyncs(w: &World, args: &[&str]) -> usize {
    traced_syncs(w, args)
        .lines()
        // With threads, a call can be split into "fsync(… <unfinished …>" and "<… fsync resumed>) = 0".
        .filter(|l| l.contains("sync") && l.contains("= 0"))
        .count()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A power loss after PostgreSQL recycles a segment must not lose it: the file and its directory
/// entry are fsynced before `wal-push` returns (and likewise every object of a backup).
#[test]
fn writes_to_filesystem_regions_are_fsynced_before_they_are_acknowledged() {
    if !strace_available() {
        eprintln!("SKIPPED: strace not installed (.ci/run installs it)");
        return;
    }
    let w = World::with_cluster(Backend::Fs);
    let seg = w.wal_segment(&seg_name(0x20), 5);
    // The file, its directory, and the new timeline directory above it.
    let n = fsyncs(&w, &["wal-push", "--service", SVC, seg.to_str().unwrap()]);
    assert!(n >= 2, "wal-push fsynced {n} times");
    // A backup: every pack, its index and the manifest, each with its directory.
    let n = fsyncs(&w, &["backup", "create", SVC, "--no-copy"]);
    // Only the backup's own objects: PostgreSQL's archiver (not traced) adds WAL meanwhile.
    let objects = btar_testkit::files_under(&w.dir.path().join("store-home"))
        .into_iter()
        .filter(|p| {
            let p = p.to_string_lossy();
            p.contains("/packs/") || p.ends_with(".manifest")
        })
        .count();
    assert!(objects > 2);
    assert!(
        n >= objects,
        "backup create fsynced {n} times for {objects} objects"
    );
}

/// The directories under `root` that `btar ARGS` fsynced (`strace -y` names each descriptor).
fn dirs_fsynced_under(w: &World, root: &Path, args: &[&str]) -> Vec<String> {
    let root = root.to_string_lossy().into_owned();
    traced_syncs(w, args)
        .lines()
        .filter_map(|l| {
            let path = l
                .split_once("sync(")?
                .1
                .split_once('<')?
                .1
                .split_once('>')?
                .0;
            (path.starts_with(&root) && Path::new(path).is_dir()).then(|| path.to_string())
        })
        .collect()
}

/// Retention deletes a backup's manifest before the objects only it used: after a power loss the
/// manifest must not be back without them, so a delete is acknowledged only once the directory
/// that held the object is fsynced.
#[test]
fn deletes_from_filesystem_regions_are_fsynced_before_they_are_acknowledged() {
    if !strace_available() {
        eprintln!("SKIPPED: strace not installed (.ci/run installs it)");
        return;
    }
    let w = World::with_cluster(Backend::Fs);
    let older = w.backup();
    w.backup();
    let home = w.dir.path().join("store-home");
    let synced = dirs_fsynced_under(
        &w,
        &home,
        &["backup", "delete", SVC, &older, "--region", "home"],
    );
    assert!(
        synced.iter().any(|d| d.ends_with("/backups")),
        "deleting the manifest fsynced no backups directory: {synced:?}"
    );
}

fn is_root() -> bool {
    btar_region::effective_uid() == Some(0)
}

fn uid_of(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().uid()
}

/// Root runs the CLI beside a server that runs as the database user: what root writes is handed to
/// the region's owner, so the server's next write into the same directories still works.
#[test]
fn a_root_run_cli_leaves_objects_the_region_owner_can_manage() {
    if !is_root() || btar_testkit::db_user().is_none() {
        eprintln!("SKIPPED: needs root and a database user to hand over to");
        return;
    }
    let w = World::new(Backend::Fs);
    w.register();
    let store = w.dir.path().join("store-home");
    let owner = uid_of(&store);
    assert_ne!(
        owner, 0,
        "the harness hands the region to the database user"
    );
    let seg = w.wal_segment(&seg_name(0x30), 3);
    let out = Command::new(env!("CARGO_BIN_EXE_btar"))
        .arg("--config")
        .arg(&w.config)
        .args(["wal-push", "--service", SVC, seg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "as root: {}", describe(&out));
    let created: Vec<PathBuf> = btar_testkit::files_under(&store);
    assert!(!created.is_empty());
    for p in &created {
        assert_eq!(
            uid_of(p),
            owner,
            "{} is not the region owner's",
            p.display()
        );
        assert_eq!(
            uid_of(p.parent().unwrap()),
            owner,
            "{}",
            p.parent().unwrap().display()
        );
    }
    // The owner (as the server would) writes the next segment into the same directory.
    let out = push(&w, &w.wal_segment(&seg_name(0x31), 4));
    assert!(
        out.status.success(),
        "as the region owner: {}",
        describe(&out)
    );
}

/// A region the user may not write to fails at once with "access denied", not after a round of
/// retries reported as an outage.
#[test]
fn permission_denied_is_permanent_not_retried() {
    if !is_root() || btar_testkit::db_user().is_none() {
        eprintln!("SKIPPED: needs root to make a region another user's");
        return;
    }
    let w = World::new(Backend::Fs);
    w.register();
    let logs = w.dir.path().join("store-home/btar/v1/services").join(SVC);
    // The service directory now belongs to root and is closed to others.
    std::os::unix::fs::chown(&logs, Some(0), Some(0)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = push(&w, &w.wal_segment(&seg_name(0x40), 6));
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("access denied"), "{err}");
    assert!(
        !err.contains("attempt"),
        "a permission error is not retried: {err}"
    );
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Cross-region copy end to end through the `btar` binary: a real PostgreSQL under pgbench load, its
//! backups copied to an additional region as they commit and its WAL shipped there, then restores
//! and forks from the secondary location — with the primary store stopped for the fork.

mod common;

use std::time::Duration;

use btar_testkit::{PgCluster, S3Server, TestDir, fs_region};
use common::{Backend, SVC, World, mark, marks};

fn utc_now(pg: &PgCluster) -> String {
    pg.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
}

fn copy_of(created: &serde_json::Value) -> &serde_json::Value {
    let copies = created["copies"].as_array().expect("copies");
    assert_eq!(copies.len(), 1, "{created}");
    let job = &copies[0]["job"];
    assert_eq!(job["state"], "COMPLETED", "{created}");
    assert_eq!(job["destination_region"], "away");
    job
}

/// Two buckets on the S3 server: the secondary restores to the same data as the primary at the same
/// target time — from the full backup, and from an incremental in a chain of three — and an
/// incremental copy ships a small fraction of the first.
#[test]
fn secondary_restores_what_the_primary_restores() {
    let w = World::with_cluster(Backend::S3);
    let pg = w.pg();
    pg.pgbench(&["-i", "-s", "4", "-q"]);
    mark(pg, "before-b1");
    let first = w.btar_json(&["backup", "create", SVC]);
    let first_bytes = copy_of(&first)["bytes_transferred"].as_i64().unwrap();

    mark(pg, "after-b1");
    let at_target = pg.fingerprint();
    std::thread::sleep(Duration::from_millis(1100));
    let target = utc_now(pg);
    std::thread::sleep(Duration::from_millis(1100));
    // A small change: 5 transactions (random pages in a 60 MB database).
    pg.pgbench(&["-t", "5", "-n"]);
    mark(pg, "before-b2");

    let second = w.btar_json(&["backup", "create", SVC]);
    let second_bytes = copy_of(&second)["bytes_transferred"].as_i64().unwrap();
    // Format v2 ships the changed 8 KiB pages, not whole 256 KiB chunks (v1 shipped ~1/5 here).
    assert!(
        second_bytes * 20 < first_bytes,
        "incremental copy shipped {second_bytes} bytes, the first {first_bytes}"
    );
    assert!(
        second["new_objects"].as_u64().unwrap() <= 4,
        "an incremental is a pack or two: {second}"
    );
    pg.pgbench(&["-c", "2", "-T", "2", "-n"]);
    mark(pg, "after-b2");
    let at_target2 = pg.fingerprint();
    let target2_marks = marks(pg);
    std::thread::sleep(Duration::from_millis(1100));
    let target2 = utc_now(pg);
    std::thread::sleep(Duration::from_millis(1100));
    pg.pgbench(&["-t", "5", "-n"]);
    mark(pg, "before-b3");
    // The third backup: an incremental on an incremental, in both regions.
    let third = w.btar_json(&["backup", "create", SVC]);
    copy_of(&third);
    // WAL written under concurrent load after the last backup reaches the secondary too.
    pg.pgbench(&["-c", "2", "-T", "3", "-n"]);
    mark(pg, "after-b3");
    let latest = pg.fingerprint();
    let latest_marks = marks(pg);
    pg.switch_and_archive();

    // WAL reaches the secondary through a replication pass (no server runs here).
    let pass = w.btar_json(&["replicate"]);
    let logs = &pass["logs"][0];
    assert_eq!(logs["destination_region"], "away", "{pass}");
    assert!(logs["error"].is_null(), "{pass}");

    let listed = w.btar_json(&["backup", "list", SVC]);
    for b in listed["backups"].as_array().unwrap() {
        assert_eq!(
            b["additional_regions"][0]["status"], "COMPLETED",
            "{listed}"
        );
    }
    assert!(listed["pitr"]["additional_regions"][0]["pitr_range_end"].is_string());

    let (r, report) = w.restore(
        "secondary-pitr",
        &["--region", "away", "--target-time", &target],
    );
    assert_eq!(report["restore"]["region"], "away");
    assert_eq!(r.fingerprint(), at_target);
    assert_eq!(marks(&r), vec!["before-b1", "after-b1"]);
    drop(r);
    let (r, _) = w.restore("primary-pitr", &["--target-time", &target]);
    assert_eq!(r.fingerprint(), at_target);
    drop(r);
    // From the secondary, onto the second backup (whose unchanged pages live in the first's
    // packs there) and the WAL after it.
    let (r, _) = w.restore(
        "secondary-pitr-incremental",
        &["--region", "away", "--target-time", &target2],
    );
    assert_eq!(r.fingerprint(), at_target2);
    assert_eq!(marks(&r), target2_marks);
    drop(r);

    let (r, _) = w.restore("secondary-latest", &["--region", "away"]);
    assert_eq!(r.fingerprint(), latest);
    assert_eq!(marks(&r), latest_marks);
    drop(r);

    let jobs = w.btar_json(&[
        "copy-jobs",
        "list",
        "--state",
        "completed",
        "--destination",
        "away",
    ]);
    assert_eq!(jobs["copy_jobs"].as_array().unwrap().len(), 3, "{jobs}");
    let id = jobs["copy_jobs"][0]["copy_job_id"].as_str().unwrap();
    let one = w.btar_json(&["copy-jobs", "describe", id]);
    assert_eq!(one["copy_job_id"], id);
    let err = w.btar_err(&["copy-jobs", "describe", "no-such-job"]);
    assert!(err.contains("no-such-job"), "{err}");

    let report = w.btar_json(&["report", SVC, "--period", "hour"]);
    let away = &report["metrics"]["away"];
    assert!(
        !away["backup_lag_seconds"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(
        !away["wal_lag_seconds"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let err = w.btar_err(&["report", SVC, "--period", "decade"]);
    assert!(err.contains("decade"), "{err}");
}

/// S3 primary, filesystem secondary. With the S3 server stopped, a fork from the secondary holds
/// every transaction committed before the last replicated segment.
#[test]
fn fork_from_secondary_with_the_primary_down() {
    let dir = TestDir::new();
    let s3 = S3Server::start();
    let regions = vec![
        s3.region("home", "home-bucket"),
        fs_region("away", &dir.sub("store-away")),
    ];
    let config = dir.path().join("btar.toml");
    let mut w = World {
        dir,
        s3: Some(s3),
        regions,
        config,
        pg: None,
    };
    let archive = format!("{} wal-push --service {SVC} %p", w.btar_prefix());
    let pg = PgCluster::init(&w.dir, "source", Some(&archive));
    w.write_config(&pg.conninfo());
    w.pg = Some(pg);
    let pg = w.pg();

    pg.pgbench(&["-i", "-s", "2", "-q"]);
    let created = w.btar_json(&["backup", "create", SVC]);
    copy_of(&created);
    mark(pg, "after-backup");
    pg.pgbench(&["-t", "200", "-n"]);
    mark(pg, "last-replicated");
    let expected = pg.fingerprint();
    let expected_marks = marks(pg);
    pg.switch_and_archive();
    let pass = w.btar_json(&["replicate"]);
    assert!(
        pass["logs"][0]["logs_copied"].as_u64().unwrap() >= 1,
        "{pass}"
    );
    // Written after the last replicated segment: must not be in the fork.
    mark(pg, "never-replicated");

    w.s3.as_mut().unwrap().stop();
    let fork_dir = w.dir.path().join("fork");
    let fd = fork_dir.display().to_string();
    let forked = w.btar_json(&[
        "fork",
        SVC,
        "--source",
        "secondary",
        "--name",
        "orders-fork",
        "--data-dir",
        &fd,
    ]);
    let port = btar_testkit::conninfo_port(forked["conninfo"].as_str().unwrap());
    let fork = PgCluster::adopt(&fork_dir, port);
    assert_eq!(forked["source_location"], "secondary", "{forked}");
    assert_eq!(forked["cloud"], "away");
    assert_eq!(fork.fingerprint(), expected);
    assert_eq!(marks(&fork), expected_marks);

    // A restore that names no location falls back to the secondary while the primary is down.
    let (r, report) = w.restore("fallback", &[]);
    assert_eq!(report["restore"]["region"], "away", "{report}");
    assert_eq!(r.fingerprint(), expected);
    drop(r);

    // The fork is a service of its own, at home in the secondary's region, archiving there.
    let svc = w.btar_json(&["service", "get", "orders-fork"]);
    assert_eq!(svc["cloud_name"], "away", "{svc}");
    let taken = w.btar_json(&["backup", "create", "orders-fork"]);
    assert_eq!(taken["region"], "away");

    // Forking from a region that holds no copy is refused.
    let err = w.btar_err(&["fork", SVC, "--source", "nowhere", "--name", "x"]);
    assert!(err.contains("nowhere"), "{err}");
}

/// A replicator killed mid-copy leaves no manifest in the destination; once its lease runs out the
/// next pass finishes the copy, and the copy restores to the source's data.
#[test]
fn killed_copy_resumes_and_never_shows_a_half_copy() {
    let w = World::with_cluster(Backend::Fs);
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    text.push_str("\n[server]\ncopy_lease_seconds = 3\n");
    std::fs::write(&w.config, text).unwrap();
    // 1 MiB packs, so the copy writes several and can be killed between two of them.
    w.set_storage("pack_size_mib = 1");
    let pg = w.pg();
    pg.pgbench(&["-i", "-s", "12", "-q"]);
    let expected = pg.fingerprint();
    let taken = w.btar_json(&["backup", "create", SVC, "--no-copy"]);
    assert_eq!(taken["copies"].as_array().unwrap().len(), 0);
    pg.switch_and_archive();

    let away = w.dir.path().join("store-away");
    let manifests = || {
        btar_testkit::files_under(&away)
            .iter()
            .filter(|p| p.to_string_lossy().contains("/backups/"))
            .count()
    };
    // Complete packs: each is written before its index.
    let packs = || {
        btar_testkit::files_under(&away)
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".idx"))
            .count()
    };
    let mut child = btar_testkit::as_db_user(env!("CARGO_BIN_EXE_btar"))
        .arg("--config")
        .arg(&w.config)
        .arg("replicate")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while packs() < 2 {
        assert!(std::time::Instant::now() < deadline, "copy never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "copy finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL the process group member: no chance to clean up.
    let _ = std::process::Command::new("pkill")
        .args(["-KILL", "-f", &format!("{} replicate", w.config.display())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    let partial = packs();
    assert_eq!(manifests(), 0, "a killed copy must not be visible");
    let running = w.btar_json(&["copy-jobs", "list", "--state", "running"]);
    assert_eq!(
        running["copy_jobs"].as_array().unwrap().len(),
        1,
        "{running}"
    );

    std::thread::sleep(Duration::from_secs(4)); // the dead worker's lease runs out
    let pass = w.btar_json(&["replicate"]);
    let job = &pass["copies"][0]["job"];
    assert_eq!(job["state"], "COMPLETED", "{pass}");
    assert_eq!(job["attempts"], 2, "{pass}");
    let outcome = &pass["copies"][0]["outcome"];
    // The packs the killed copy left are reused: at least a block per pack it completed.
    assert!(
        outcome["chunks_already_present"].as_u64().unwrap() >= partial as u64,
        "the resumed copy should reuse the packs already shipped: {pass}"
    );
    assert_eq!(manifests(), 1);
    let verified = w.btar_json(&["verify", SVC, "--region", "away"]);
    assert_eq!(
        verified["damaged"].as_array().map_or(0, Vec::len),
        0,
        "{verified}"
    );
    let (r, _) = w.restore("from-away", &["--region", "away"]);
    assert_eq!(r.fingerprint(), expected);
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Restores an operator can run and re-run (issue 10, items 17 and 18): `--start` without `--port`
//! picks a free port instead of the backup's (the running source's); a restore whose recovery fails
//! in `wal-fetch` says btar's reason, not PostgreSQL's "command not found" for exit 127, and leaves a
//! directory the same command can be run into again.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::path::Path;
use std::time::{Duration, Instant};

use btar_testkit::{PgCluster, describe};
use common::{Backend, SVC, World, mark, marks};

#[test]
fn restore_start_without_port_picks_a_free_one() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    mark(pg, "before");
    w.backup();
    pg.switch_and_archive();
    let data_dir = w.dir.path().join("restored");
    let dd = data_dir.to_str().unwrap();
    let out = w.btar(&[
        "--output",
        "json",
        "restore",
        SVC,
        "--data-dir",
        dd,
        "--start",
        "--set",
        "listen_addresses=127.0.0.1",
        "--promote-timeout",
        "120s",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let port = v["port"].as_u64().unwrap_or_default() as u16;
    // Adopt before asserting, so a failed assertion still stops the server.
    let restored = (port != 0).then(|| PgCluster::adopt(&data_dir, port));
    assert!(out.status.success(), "restore: {}", describe(&out));
    assert_ne!(port, pg.port, "took the source's port");
    assert_ne!(port, 5432);
    assert_eq!(marks(restored.as_ref().unwrap()), vec!["before"]);
}

#[test]
fn failed_recovery_names_btars_reason_and_the_retry_works() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    mark(pg, "before");
    w.backup();
    pg.switch_and_archive();
    // Damage every archived WAL file: recovery's first wal-fetch fails (exit 127).
    let logs: Vec<_> = btar_testkit::files_under(&w.dir.path().join("store-home"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/logs/"))
        .collect();
    assert!(!logs.is_empty());
    for f in &logs {
        let mut bytes = std::fs::read(f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(f, bytes).unwrap();
    }
    let data_dir = w.dir.path().join("restored");
    let dd = data_dir.to_str().unwrap();
    let args = [
        "restore",
        SVC,
        "--data-dir",
        dd,
        "--start",
        "--set",
        "listen_addresses=127.0.0.1",
        "--promote-timeout",
        "120s",
    ];
    let err = w.btar_err(&args);
    assert!(
        err.contains("btar: error: wal-fetch"),
        "btar's reason is missing: {err}"
    );
    assert!(!err.contains("command not found"), "{err}");
    assert!(err.contains("can be run again"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec!["btar-restore.log"]);
    assert!(!data_dir.join("postmaster.pid").exists());

    // The same directory takes the next attempt (without --start it needs no WAL).
    let v = w.btar_json(&["restore", SVC, "--data-dir", dd]);
    assert!(v["restore"]["bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(data_dir.join("PG_VERSION").exists());
}

/// Starts `btar ARGS` and SIGKILLs it once `ready` holds (polled every millisecond); `false` if it
/// finished first.
fn kill_when(w: &World, args: &[&str], ready: impl Fn() -> bool) -> bool {
    let mut child = crash::spawn_btar(w, args);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready() {
            let killed = crash::btar_pid(&child).is_some_and(crash::sigkill);
            let _ = child.kill();
            let _ = child.wait();
            return killed;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("btar {args:?} neither finished nor got ready in 2 minutes");
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// A restore SIGKILLed while it writes the data directory (item 17) leaves a partial directory; the
/// next restore into that directory finishes instead of refusing "exists and is not empty".
#[test]
fn a_restore_killed_while_writing_is_finished_by_a_retry() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    // Enough data that the restore takes a while to write.
    pg.psql("CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 400000) g");
    mark(pg, "before");
    w.backup();
    pg.switch_and_archive();
    let data_dir = w.dir.path().join("restored");
    let dd = data_dir.to_str().unwrap();
    let args = ["restore", SVC, "--data-dir", dd];
    let killed = kill_when(&w, &args, || {
        let names = entries(&data_dir);
        names.iter().any(|n| n == "base") && names.iter().any(|n| n == "global")
    });
    assert!(killed, "the restore finished before it could be killed");
    assert!(!entries(&data_dir).is_empty());

    // The harness's restore: the same directory, started and promoted.
    let (restored, _) = w.restore("restored", &[]);
    assert_eq!(marks(&restored), vec!["before"]);
    let names = entries(&data_dir);
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("btar-restore.") && n != "btar-restore.log"),
        "btar's marker outlived the restore: {names:?}"
    );
}

/// A restore SIGKILLed after it started the server cannot tell whether that server was used, so
/// the retry refuses the directory, but says what happened and how to go on.
#[test]
fn a_restore_killed_after_starting_the_server_is_refused_with_the_way_out() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    mark(pg, "before");
    w.backup();
    mark(pg, "after");
    pg.switch_and_archive();
    let data_dir = w.dir.path().join("restored");
    let dd = data_dir.to_str().unwrap();
    let port = btar_testkit::free_port().to_string();
    // Recovery holds the commit after the backup for an hour, so btar waits for promotion.
    let args = [
        "restore",
        SVC,
        "--data-dir",
        dd,
        "--start",
        "--port",
        &port,
        "--set",
        "listen_addresses=127.0.0.1",
        "--set",
        "recovery_min_apply_delay=1h",
    ];
    let killed = kill_when(&w, &args, || data_dir.join("postmaster.pid").exists());
    // Adopt before asserting, so the left-over server is stopped whatever happens.
    let server = PgCluster::adopt(&data_dir, port.parse().unwrap());
    assert!(killed, "the restore finished before it could be killed");

    let err = w.btar_err(&args);
    assert!(err.contains(dd), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(err.contains("pg_ctl stop"), "{err}");
    assert!(err.contains("another --data-dir"), "{err}");
    assert!(
        data_dir.join("PG_VERSION").exists(),
        "the refusal removed files"
    );
    drop(server);

    // Following the advice works.
    std::fs::remove_dir_all(&data_dir).unwrap();
    let v = w.btar_json(&["restore", SVC, "--data-dir", dd]);
    assert!(v["restore"]["bytes"].as_u64().unwrap() > 0, "{v}");
}

/// A directory btar did not write is refused with what to do instead.
#[test]
fn a_foreign_non_empty_directory_is_refused_with_the_way_out() {
    let w = World::with_cluster(Backend::Fs);
    w.backup();
    let data_dir = w.dir.sub("occupied");
    std::fs::write(data_dir.join("notes.txt"), "mine").unwrap();
    btar_testkit::hand_over(&data_dir);
    let err = w.btar_err(&["restore", SVC, "--data-dir", data_dir.to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
    assert!(err.contains("another --data-dir"), "{err}");
    assert_eq!(entries(&data_dir), vec!["notes.txt"]);
}

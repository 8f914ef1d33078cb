#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Restores an operator can run and re-run (issue 10, items 17 and 18): `--start` without `--port`
//! picks a free port instead of the backup's (the running source's); a restore whose recovery fails
//! in `wal-fetch` says btar's reason, not PostgreSQL's "command not found" for exit 127, and leaves a
//! directory the same command can be run into again.

mod common;

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

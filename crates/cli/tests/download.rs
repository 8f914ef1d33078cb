#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `btar backup download` (Alibaba's backup set download): a PostgreSQL backup written out as a data
//! directory with the WAL it needs in pg_wal starts under plain `pg_ctl` — no btar, no archive — and
//! holds the source's rows as of the backup. A non-empty target directory is refused.

mod common;

use btar_engine_pg::cluster;
use btar_testkit::{PgCluster, as_db_user, describe, free_port, run_ok};
use common::{Backend, SVC, World, mark, marks};

#[test]
fn a_downloaded_backup_starts_under_plain_postgresql_with_the_sources_rows() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    w.pg().pgbench(&["-i", "-s", "1", "-q"]);
    mark(pg, "in-the-backup");
    let backup = w.backup();
    mark(pg, "after-the-backup");

    let to = w.dir.path().join("downloaded");
    let d = w.btar_json(&[
        "backup",
        "download",
        SVC,
        &backup,
        "--region",
        "away",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(!d["logs"].as_array().unwrap().is_empty(), "{d}");
    assert!(to.join("backup_label").exists() && to.join("pg_wal").is_dir());
    assert!(
        !to.join("recovery.signal").exists(),
        "a download points at no archive"
    );

    // Plain PostgreSQL, archiving off (the source's archive_command is in its config).
    let port = free_port();
    let bin = cluster::bin_dir(None).unwrap();
    let opts = format!("-c port={port} -c listen_addresses=127.0.0.1 -c archive_mode=off");
    let log = w.dir.path().join("downloaded.log");
    run_ok(as_db_user(bin.join("pg_ctl")).args([
        "-D",
        to.to_str().unwrap(),
        "-o",
        &opts,
        "-l",
        log.to_str().unwrap(),
        "-w",
        "start",
    ]));
    let started = PgCluster::adopt(&to, port);
    assert_eq!(marks(&started), vec!["in-the-backup"]);
    let rows = started.psql("SELECT count(*) FROM pgbench_accounts");
    assert_eq!(rows, "100000");
    drop(started);

    // Into a directory that holds something: refused, nothing written.
    let out = w.btar(&[
        "backup",
        "download",
        SVC,
        &backup,
        "--region",
        "home",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}

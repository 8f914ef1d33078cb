#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Bad input for the PostgreSQL agent: each failure says what to fix and leaves no manifest behind.

mod common;

use btar_testkit::PgCluster;
use common::{Backend, SVC, World, mark};

#[test]
fn backup_refuses_unreachable_server_and_leaves_nothing() {
    let w = World::new(Backend::Fs);
    let err = w.btar_err(&["backup", "create", SVC]);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains("port=1"), "error names the server: {err}");
    assert!(w.backup_names().is_empty());
}

#[test]
fn backup_refuses_archive_mode_off() {
    let w = World::new(Backend::Fs);
    let pg = PgCluster::init(&w.dir, "noarchive", None);
    w.write_config(&pg.conninfo());
    let err = w.btar_err(&["backup", "create", SVC]);
    assert!(err.contains("archive_mode"), "{err}");
    assert!(err.contains("archive_command"), "says what to set: {err}");
    assert!(w.backup_names().is_empty());
}

#[test]
fn backup_refuses_unprivileged_role() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    pg.psql("CREATE ROLE weak LOGIN");
    w.write_config(&pg.conninfo().replace("user=postgres", "user=weak"));
    let err = w.btar_err(&["backup", "create", SVC]);
    assert!(err.contains("weak"), "names the role: {err}");
    assert!(
        err.contains("GRANT") || err.contains("superuser"),
        "says what to fix: {err}"
    );
    assert!(w.backup_names().is_empty());
}

#[test]
fn restore_refuses_targets_outside_the_window() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    mark(pg, "one");
    w.backup();
    pg.switch_and_archive();
    let dd = w.dir.path().join("never");
    let dd = dd.to_str().unwrap();
    let err = w.btar_err(&[
        "restore",
        SVC,
        "--data-dir",
        dd,
        "--target-time",
        "2001-01-01 00:00:00",
    ]);
    assert!(err.contains("recoverable window"), "{err}");
    assert!(err.contains(".."), "gives the window: {err}");
    let err = w.btar_err(&[
        "restore",
        SVC,
        "--data-dir",
        dd,
        "--target-time",
        "2999-01-01T00:00:00Z",
    ]);
    assert!(err.contains("recoverable window"), "{err}");
    let err = w.btar_err(&[
        "restore",
        SVC,
        "--data-dir",
        dd,
        "--target-time",
        "yesterday-ish",
    ]);
    assert!(err.contains("not a time"), "{err}");
    assert!(
        !std::path::Path::new(dd).join("PG_VERSION").exists(),
        "nothing restored"
    );
}

#[test]
fn restore_refuses_a_gap_in_the_wal_archive() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    mark(pg, "one");
    w.backup();
    let mut gone = String::new();
    for i in 0..3 {
        mark(pg, &format!("seg{i}"));
        let seg = pg.switch_and_archive();
        if i == 1 {
            gone = seg;
        }
    }
    // Delete one archived segment from the store, as a careless lifecycle rule would.
    let store = w.dir.path().join("store-home");
    let victim = btar_testkit::files_under(&store)
        .into_iter()
        .find(|p| p.ends_with(&gone))
        .expect("segment object on disk");
    std::fs::remove_file(&victim).unwrap();
    let dd = w.dir.path().join("gap");
    let err = w.btar_err(&["restore", SVC, "--data-dir", dd.to_str().unwrap()]);
    assert!(err.contains(&gone), "names the missing segment: {err}");
}

#[test]
fn config_errors_are_one_clear_line() {
    let w = World::new(Backend::Fs);
    let err = w.btar_err(&["backup", "create", "nosuch"]);
    assert!(
        err.contains("unknown service `nosuch`") && err.contains(SVC),
        "{err}"
    );
    let err = w.btar_err(&["restore", SVC, "--data-dir", "/tmp/x", "--region", "mars"]);
    assert!(err.contains("unknown region `mars`"), "{err}");
    let bad = w.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[region]]\nname = \"x\"\nprovider = \"local\"\nurl = \"ftp://nope\"\n",
    )
    .unwrap();
    let out = common::btar_with(&bad, &["backup", "list", SVC]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ftp"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

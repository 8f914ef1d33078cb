#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `wal-push` / `wal-fetch` as PostgreSQL calls them: idempotent on identical content, loud on a
//! different one, and "not found" distinguishable from "archive unreadable".

mod common;

use common::{Backend, World};

fn wal_push_and_fetch(backend: Backend) {
    let w = World::new(backend);
    w.register();
    let name = "000000010000000000000042";
    let p = w.wal_segment(name, 1);
    let ps = p.to_str().unwrap();
    for _ in 0..2 {
        let out = w.btar(&["wal-push", "--service", common::SVC, ps]);
        assert!(out.status.success(), "{}", btar_testkit::describe(&out));
    }
    let fetched = w.dir.sub("fetch").join("RECOVERYXLOG");
    let fs = fetched.to_str().unwrap();
    let out = w.btar(&["wal-fetch", "--service", common::SVC, name, fs]);
    assert!(out.status.success(), "{}", btar_testkit::describe(&out));
    assert_eq!(std::fs::read(&fetched).unwrap(), std::fs::read(&p).unwrap());

    // Same name, different bytes: must fail and keep the archived copy.
    let other = w.wal_segment(name, 2);
    let out = w.btar(&[
        "wal-push",
        "--service",
        common::SVC,
        other.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(name) && err.contains("different"), "{err}");
    let out = w.btar(&["wal-fetch", "--service", common::SVC, name, fs]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(&fetched).unwrap()[0],
        1,
        "archived copy unchanged"
    );

    // Not archived: exit 1 (PostgreSQL's "end of archive").
    let out = w.btar(&[
        "wal-fetch",
        "--service",
        common::SVC,
        "000000010000000000000043",
        fs,
    ]);
    assert_eq!(out.status.code(), Some(1));
    // Not a WAL name at all: a clear error, not a panic.
    let out = w.btar(&["wal-push", "--service", common::SVC, "/etc/hostname"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hostname"));
}

#[test]
fn wal_push_and_fetch_on_filesystem() {
    wal_push_and_fetch(Backend::Fs);
}

#[test]
fn wal_push_and_fetch_on_s3() {
    wal_push_and_fetch(Backend::S3);
}

/// The archive unreachable must not look like "end of WAL" to PostgreSQL (which would promote early).
#[test]
fn wal_fetch_with_store_down_is_not_end_of_archive() {
    let mut w = World::new(Backend::S3);
    w.register();
    let p = w.wal_segment("000000010000000000000001", 3);
    let out = w.btar(&["wal-push", "--service", common::SVC, p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", btar_testkit::describe(&out));
    let fetched = w.dir.sub("f2").join("x");
    // Fetched once while the store is up: the location's descriptor is now cached, so the request
    // below needs the store only for the segment — and must still not take its absence for "no
    // such segment".
    let out = w.btar(&[
        "wal-fetch",
        "--service",
        common::SVC,
        "000000010000000000000001",
        fetched.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", btar_testkit::describe(&out));
    w.s3.as_mut().unwrap().stop();
    let out = w.btar(&[
        "wal-fetch",
        "--service",
        common::SVC,
        "000000010000000000000001",
        fetched.to_str().unwrap(),
    ]);
    assert!(
        out.status.code().unwrap_or(0) > 125,
        "{}",
        btar_testkit::describe(&out)
    );
}

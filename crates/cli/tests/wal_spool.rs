#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `wal-fetch` through its spool (issue 12, item 5): after a segment is fetched, a background
//! prefetcher brings the next ones (across a log-id rollover), later requests are delivered from
//! the spool, a spooled file that was damaged on the local disk is never delivered but fetched from
//! the store again, a cached descriptor that is garbage is read again, and "not archived" still
//! exits 1.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use btar_testkit::describe;
use common::{Backend, SVC, World};

/// Consecutive segments across the rollover from log id 0 to 1.
const NAMES: [&str; 5] = [
    "0000000100000000000000FE",
    "0000000100000000000000FF",
    "000000010000000100000000",
    "000000010000000100000001",
    "000000010000000100000002",
];
const NOT_ARCHIVED: &str = "000000010000000100000003";

fn spool_dir(w: &World) -> PathBuf {
    let root = w.dir.path().join("btar-spool");
    std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("home--{SVC}--")))
        })
        .expect("a spool for the service's home region")
}

fn hits(w: &World) -> Vec<String> {
    std::fs::read_to_string(spool_dir(w).join("hits"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn wait_spooled(w: &World, name: &str) -> PathBuf {
    let p = spool_dir(w).join("files").join(name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{name} never spooled");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

fn spooled_fetch(backend: Backend) {
    let w = World::new(backend);
    w.register();
    let mut segments = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let p = w.wal_segment(name, i as u8 + 1);
        let out = w.btar(&["wal-push", "--service", SVC, p.to_str().unwrap()]);
        assert!(out.status.success(), "{}", describe(&out));
        segments.push(std::fs::read(&p).unwrap());
    }
    let dest = w.dir.sub("restore").join("RECOVERYXLOG");
    let fetch = |i: usize| {
        let out = w.btar(&[
            "wal-fetch",
            "--service",
            SVC,
            NAMES[i],
            dest.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(
            std::fs::read(&dest).unwrap() == segments[i],
            "{} delivered wrong bytes",
            NAMES[i]
        );
    };

    // The first request goes to the store; the following ones come from the spool.
    fetch(0);
    wait_spooled(&w, NAMES[1]);
    fetch(1);
    assert_eq!(hits(&w), [NAMES[1]]);

    // Damaged on the local disk — flipped, then cut short: detected, fetched again, exact.
    let flipped = wait_spooled(&w, NAMES[2]);
    let mut b = std::fs::read(&flipped).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&flipped, b).unwrap();
    fetch(2);
    let cut = wait_spooled(&w, NAMES[3]);
    let len = std::fs::metadata(&cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    fetch(3);
    assert_eq!(hits(&w), [NAMES[1]], "damaged files are not delivered");

    // A cached descriptor that is garbage is read again from the store.
    std::fs::write(spool_dir(&w).join("service.json"), b"{not json").unwrap();
    fetch(4);
    // Files before the one asked for are gone from the spool.
    let left: Vec<String> = std::fs::read_dir(spool_dir(&w).join("files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(
        left.iter().all(|n| n.as_str() > NAMES[4]),
        "pruned: {left:?}"
    );

    // The end of the archive is still exit 1, spool or not.
    let out = w.btar(&[
        "wal-fetch",
        "--service",
        SVC,
        NOT_ARCHIVED,
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    // A history file is fetched directly and starts no prefetching.
    let out = w.btar(&[
        "wal-fetch",
        "--service",
        SVC,
        "00000002.history",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

#[test]
fn wal_fetch_spool_on_filesystem() {
    spooled_fetch(Backend::Fs);
}

#[test]
fn wal_fetch_spool_on_s3() {
    spooled_fetch(Backend::S3);
}

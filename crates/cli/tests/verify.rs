#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `btar verify` on a real PostgreSQL backup in a filesystem region: a flipped byte in one pack and a
//! deleted pack are both reported by object key, with a non-zero exit; a clean location exits 0.

mod common;

use common::{Backend, SVC, World, mark};

fn pack_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut packs: Vec<_> = btar_testkit::files_under(root)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".pack"))
        .collect();
    packs.sort();
    packs
}

#[test]
fn verify_reports_a_flipped_byte_and_a_deleted_pack() {
    let w = World::with_cluster(Backend::Fs);
    w.set_storage("pack_size_mib = 1");
    // A few MB stored: several 1 MiB packs.
    w.pg().pgbench(&["-i", "-s", "3", "-q"]);
    mark(w.pg(), "x");
    w.backup();
    let clean = w.btar_json(&["verify", SVC, "--region", "home"]);
    assert_eq!(clean["damaged"].as_array().unwrap().len(), 0, "{clean}");
    assert!(clean["packs_checked"].as_u64().unwrap() >= 3, "{clean}");

    let store = w.dir.path().join("store-home");
    let chunks = pack_files(&store);
    let (flipped, deleted) = (&chunks[chunks.len() / 3], &chunks[2 * chunks.len() / 3]);
    let mut bytes = std::fs::read(flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(flipped, bytes).unwrap();
    std::fs::remove_file(deleted).unwrap();

    let out = w.btar(&["--output", "json", "verify", SVC, "--region", "home"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        btar_testkit::describe(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap().to_string())
            .collect()
    };
    let rel = |p: &std::path::Path| {
        p.strip_prefix(&store)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    assert_eq!(keys("damaged"), vec![rel(flipped)]);
    assert_eq!(keys("missing"), vec![rel(deleted)]);

    let text = w.btar(&["verify", SVC, "--region", "home"]);
    let s = String::from_utf8_lossy(&text.stdout);
    assert!(s.contains("DAMAGED") && s.contains("MISSING"), "{s}");
}

/// Every object of a location can be sound while its WAL archive has a hole: verify must say so
/// (restore refuses to cross it), naming the missing segment, with the damage exit code.
#[test]
fn verify_reports_a_missing_wal_segment() {
    let w = World::with_cluster(Backend::Fs);
    let pg = w.pg();
    mark(pg, "one");
    let backup = w.backup();
    let mut segments = Vec::new();
    for i in 0..4 {
        mark(pg, &format!("seg{i}"));
        segments.push(pg.switch_and_archive());
    }
    let clean = w.btar(&["verify", SVC, "--region", "home"]);
    assert!(clean.status.success(), "{}", btar_testkit::describe(&clean));

    let gone = &segments[1];
    w.delete_archived("home", gone);

    let out = w.btar(&["--output", "json", "verify", SVC, "--region", "home"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        btar_testkit::describe(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing = v["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{v}");
    assert!(
        missing[0]["key"].as_str().unwrap().ends_with(gone.as_str()),
        "{v}"
    );
    assert!(
        missing[0]["reason"].as_str().unwrap().contains("WAL gap"),
        "{v}"
    );
    // Checking that one backup alone sees the gap on its path too.
    let one = w.btar(&["verify", SVC, "--region", "home", "--backup", &backup]);
    assert_eq!(
        one.status.code(),
        Some(2),
        "{}",
        btar_testkit::describe(&one)
    );
}

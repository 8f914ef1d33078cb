#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `btar check` (AWS BKP-004, pgBackRest's `check`) on a real PostgreSQL service with a daily plan
//! and a copy in a second filesystem region: it passes after a backup and its copy; 31 days later
//! (time injected) the copy and the primary backup are too old; a WAL segment deleted from the
//! primary location is a hole named by the check. Failures exit 4, with every result in JSON.

mod common;

use chrono::{TimeDelta, Utc};
use common::{SVC, World, mark};

/// `btar check` as JSON, with its exit code.
fn check(w: &World, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["--output", "json", "check", SVC];
    args.extend_from_slice(extra);
    let out = w.btar(&args);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", btar_testkit::describe(&out)));
    (out.status.code().unwrap(), v)
}

/// The status of `rule` in `region`.
fn status(v: &serde_json::Value, rule: &str, region: &str) -> String {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule && r["region"] == region)
        .unwrap_or_else(|| panic!("no {rule} for {region}: {v}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn check_passes_then_names_an_old_copy_a_late_backup_and_a_wal_hole() {
    let w = World::with_planned_cluster("check-source", "schedule = \"0 3 * * *\"", "");
    let pg = w.pg();
    mark(pg, "one");
    w.backup();

    let (code, v) = check(&w, &[]);
    assert_eq!(code, 0, "{v}");
    for (rule, region) in [
        ("copy_recent", "away"),
        ("backup_fresh", "home"),
        ("log_gap_free", "home"),
        ("log_gap_free", "away"),
    ] {
        assert_eq!(status(&v, rule, region), "PASS", "{rule} {region}: {v}");
    }
    assert_eq!(v["failed"], 0, "{v}");

    let later = (Utc::now() + TimeDelta::days(31)).to_rfc3339();
    let (code, v) = check(&w, &["--now", &later]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(status(&v, "copy_recent", "away"), "FAIL", "{v}");
    assert_eq!(status(&v, "backup_fresh", "home"), "FAIL", "{v}");
    assert_eq!(status(&v, "log_gap_free", "home"), "PASS", "{v}");

    // A hole in the primary's WAL archive after the backup.
    let mut segments = Vec::new();
    for i in 0..3 {
        mark(pg, &format!("seg{i}"));
        segments.push(pg.switch_and_archive());
    }
    let gone = &segments[1];
    w.delete_archived("home", gone);
    let (code, v) = check(&w, &[]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(status(&v, "log_gap_free", "home"), "FAIL", "{v}");
    let hole = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "log_gap_free" && r["region"] == "home")
        .unwrap()["detail"]
        .to_string();
    assert!(hole.contains(gone.as_str()), "{hole}");
    assert_eq!(status(&v, "copy_recent", "away"), "PASS", "{v}");

    let text = w.btar(&["check", SVC]);
    let s = String::from_utf8_lossy(&text.stdout);
    assert!(s.contains("FAIL log_gap_free orders in home"), "{s}");
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Lifecycle without the server, on a real PostgreSQL and filesystem regions: `btar expire
//! --dry-run` prints the plan and changes nothing; `btar expire` then removes exactly the objects
//! that plan named; `btar backup delete` refuses a location's newest backup unless forced and
//! removes an older one, after which the newest still restores.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{TimeDelta, Utc};
use common::{SVC, World, mark, marks};

/// Every object under a filesystem store, as keys relative to it.
fn objects(store: &Path) -> BTreeSet<String> {
    btar_testkit::files_under(store)
        .into_iter()
        .map(|p| {
            p.strip_prefix(store)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Whether `backup list` shows `name` as COMPLETED in the primary location `home`.
fn in_home(listed: &serde_json::Value, name: &str) -> bool {
    listed["backups"].as_array().unwrap().iter().any(|b| {
        b["backup_name"] == name && b["storage_location"] == "home" && b["status"] == "COMPLETED"
    })
}

fn planned() -> World {
    World::with_planned_cluster(
        "lifecycle-source",
        "schedule = \"0 3 * * *\"\nretention_days = 7",
        "",
    )
}

#[test]
fn expire_dry_run_changes_nothing_and_expire_removes_exactly_the_plan() {
    let w = planned();
    let pg = w.pg();
    mark(pg, "a");
    let first = w.backup();
    pg.pgbench(&["-i", "-s", "1", "-q"]);
    mark(pg, "b");
    let second = w.backup();
    let home = w.dir.path().join("store-home");
    let before = objects(&home);
    // Eight days on: the first backup is past its 7 days, the second is the newest and stays.
    let later = (Utc::now() + TimeDelta::days(8)).to_rfc3339();

    let dry = w.btar_json(&[
        "expire",
        SVC,
        "--region",
        "home",
        "--dry-run",
        "--now",
        &later,
    ]);
    let plan = &dry["plan"][0];
    assert_eq!(plan["dry_run"], true, "{dry}");
    assert_eq!(plan["backups"], serde_json::json!([first]), "{dry}");
    assert_eq!(objects(&home), before, "a dry run deleted something");
    let planned: BTreeSet<String> = plan["log_keys"]
        .as_array()
        .unwrap()
        .iter()
        .chain(plan["chunk_keys"].as_array().unwrap())
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(!plan["log_keys"].as_array().unwrap().is_empty(), "{dry}");

    let done = w.btar_json(&["expire", SVC, "--region", "home", "--now", &later]);
    assert_eq!(
        done["expired"][0]["backups"],
        serde_json::json!([first]),
        "{done}"
    );
    assert_eq!(
        done["plan"], dry["plan"],
        "the plan changed between the two runs"
    );
    let removed: BTreeSet<String> = before.difference(&objects(&home)).cloned().collect();
    let manifest = format!("btar/v1/services/{SVC}/backups/{first}.manifest");
    let mut expected = planned.clone();
    expected.insert(manifest);
    assert_eq!(removed, expected, "{done}");
    // Gone from home; its copy in `away` keeps its own 30 days and stays listed there.
    let listed = w.btar_json(&["backup", "list", SVC]);
    assert!(
        !in_home(&listed, &first) && in_home(&listed, &second),
        "{listed}"
    );

    // The newest backup still restores, with its rows.
    let (restored, _) = w.restore("after-expire", &[]);
    assert_eq!(marks(&restored), marks(pg));
}

#[test]
fn backup_delete_refuses_the_newest_unless_forced_and_leaves_the_rest_restorable() {
    let w = World::with_cluster(common::Backend::Fs);
    let pg = w.pg();
    mark(pg, "a");
    let first = w.backup();
    mark(pg, "b");
    let second = w.backup();

    let out = w.btar(&[
        "--output", "json", "backup", "delete", SVC, &second, "--region", "home",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        btar_testkit::describe(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("conflict") && err.contains("--force"), "{err}");

    let gone = w.btar_json(&["backup", "delete", SVC, &first, "--region", "home"]);
    assert_eq!(gone["was_newest"], false, "{gone}");
    let listed = w.btar_json(&["backup", "list", SVC]);
    assert!(
        !in_home(&listed, &first) && in_home(&listed, &second),
        "{listed}"
    );
    let out = w.btar(&["backup", "delete", SVC, &first, "--region", "home"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "deleting twice: {}",
        btar_testkit::describe(&out)
    );

    let (restored, _) = w.restore("after-delete", &["--region", "home"]);
    assert_eq!(marks(&restored), marks(pg));
}

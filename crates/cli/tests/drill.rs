#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Restore drills on a real PostgreSQL: a drill from the secondary restores the latest backup on a
//! free port, runs the validation query and is SUCCESSFUL; one whose query returns no row is
//! FAILED (exit 3) and raises an alert; both are recorded and listed, the scratch directories and
//! servers are gone afterwards, and the source database is untouched. A `[[drill]]` schedule runs
//! once per slot.

mod common;

use common::{Backend, SVC, World, mark, marks};

fn scratch_dirs() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("btar-drill-{SVC}-")))
        .collect()
}

#[test]
fn a_drill_restores_validates_records_and_cleans_up() {
    let w = World::with_cluster(Backend::Fs);
    mark(w.pg(), "a");
    let backup = w.backup();
    let before = scratch_dirs();

    // A `[[drill]]` schedule is due once per slot: every minute here, and no drill ran yet, so the
    // first `drill due` runs it (SUCCESSFUL) and the next, in the same minute, finds nothing due.
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    text.push_str(&format!(
        "\n[[drill]]\nservice = \"{SVC}\"\nschedule = \"* * * * *\"\nregion = \"away\"\n\
         query = \"SELECT count(*) FROM marks HAVING count(*) = 1\"\ntimeout_minutes = 2\n"
    ));
    std::fs::write(&w.config, text).unwrap();
    // Not at the very end of a minute, so both calls fall in the same slot.
    let sec = chrono::Utc::now().timestamp() % 60;
    if sec > 45 {
        std::thread::sleep(std::time::Duration::from_secs((61 - sec) as u64));
    }
    let first = w.btar_json(&["drill", "due"]);
    let ran = first["drills"].as_array().unwrap();
    assert_eq!(ran.len(), 1, "{first}");
    assert_eq!(ran[0]["state"], "SUCCESSFUL", "{first}");
    let again = w.btar_json(&["drill", "due"]);
    assert_eq!(again["drills"].as_array().unwrap().len(), 0, "{again}");

    let ok = w.btar(&[
        "--output",
        "json",
        "drill",
        "run",
        SVC,
        "--region",
        "away",
        "--query",
        "SELECT tag FROM marks WHERE tag = 'a'",
        "--timeout",
        "120s",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", btar_testkit::describe(&ok));
    let r: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(r["state"], "SUCCESSFUL", "{r}");
    assert_eq!(r["region"], "away", "{r}");
    assert_eq!(r["backup"], backup.as_str(), "{r}");
    assert!(r["message"].as_str().unwrap().contains("\"a\""), "{r}");
    assert!(r["duration_seconds"].as_f64().unwrap() > 0.0, "{r}");

    let bad = w.btar(&[
        "--output",
        "json",
        "drill",
        "run",
        SVC,
        "--query",
        "SELECT 1 FROM marks WHERE tag = 'nope'",
        "--timeout",
        "120s",
    ]);
    assert_eq!(
        bad.status.code(),
        Some(3),
        "{}",
        btar_testkit::describe(&bad)
    );
    let r: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(r["state"], "FAILED", "{r}");
    assert!(r["message"].as_str().unwrap().contains("no row"), "{r}");

    let listed = w.btar_json(&["drill", "list", SVC]);
    let states: Vec<&str> = listed["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["FAILED", "SUCCESSFUL", "SUCCESSFUL"], "{listed}");

    // Cleaned up: no scratch directory left, no server on one.
    assert_eq!(scratch_dirs(), before);
    let running = std::process::Command::new("pgrep")
        .args(["-f", &format!("btar-drill-{SVC}-")])
        .output()
        .unwrap();
    assert!(
        running.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&running.stdout)
    );
    // The source is untouched.
    assert_eq!(marks(w.pg()), vec!["a"]);

    // The failed drill is an alert condition.
    let sent = w.btar_json(&["alerts", "evaluate"]);
    assert!(
        sent["sent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "drill_failed" && n["status"] == "firing"),
        "{sent}"
    );
}

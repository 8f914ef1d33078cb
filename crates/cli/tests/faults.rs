#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every job completes on flaky stores: both regions (a filesystem and the S3 server) fail 5 % of
//! their calls (a reset, a `503 Slow Down`, or a 300 ms hang then a timeout) and add latency (region
//! option `btar_faults`), and backups,
//! archiving, copies, log shipping, verify and a restore from the secondary still succeed, exactly.

mod common;

use btar_region::FAULTS_OPTION;
use btar_testkit::{PgCluster, S3Server, TestDir, fs_region};
use common::{SVC, World, mark, marks};

const FAULTS: &str = "rate=0.05,after=0.5,latency_ms=2,stall_ms=300,concurrency=8,seed=7";

fn flaky_world() -> World {
    let dir = TestDir::new();
    let s3 = S3Server::start();
    let mut regions = vec![
        fs_region("home", &dir.sub("store-home")),
        s3.region("away", "away-bucket"),
    ];
    for r in &mut regions {
        r.options.insert(FAULTS_OPTION.into(), FAULTS.into());
        // btar's default retries (6 attempts), not the harness's quick 3: at a 5 % fault rate three
        // faults in a row on one of a run's thousands of calls is likely, six is not (1.6e-8 a call).
        r.retry = Default::default();
    }
    let config = dir.path().join("btar.toml");
    let mut w = World {
        dir,
        s3: Some(s3),
        regions,
        config,
        pg: None,
    };
    // archive_command runs btar with the same config: wal-push meets the faults too.
    let archive = format!("{} wal-push --service {SVC} %p", w.btar_prefix());
    let pg = PgCluster::init(&w.dir, "source", Some(&archive));
    w.write_config(&pg.conninfo());
    w.pg = Some(pg);
    w
}

fn only_copy_completed(v: &serde_json::Value) {
    let copies = v["copies"].as_array().expect("copies");
    assert_eq!(copies.len(), 1, "{v}");
    assert_eq!(copies[0]["job"]["state"], "COMPLETED", "{v}");
}

#[test]
fn every_job_completes_with_five_percent_faults() {
    let w = flaky_world();
    let pg = w.pg();
    pg.pgbench(&["-i", "-s", "2", "-q"]);
    mark(pg, "before-b1");

    // A backup with its inline copy; -vv shows the injected faults being retried.
    let out = w.btar(&["--output", "json", "-vv", "backup", "create", SVC]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", btar_testkit::describe(&out));
    assert!(
        log.contains("injected fault"),
        "no fault was injected: the test would prove nothing"
    );
    only_copy_completed(&serde_json::from_slice(&out.stdout).unwrap());

    // Several segments archived through wal-push.
    for i in 0..4 {
        pg.pgbench(&["-t", "50", "-n"]);
        mark(pg, &format!("seg-{i}"));
        pg.switch_and_archive();
    }

    // A backup whose copy is left to a replication pass, which also ships the log.
    pg.pgbench(&["-t", "50", "-n"]);
    let taken = w.btar_json(&["backup", "create", SVC, "--no-copy"]);
    assert_eq!(taken["copies"].as_array().unwrap().len(), 0, "{taken}");
    let pass = w.btar_json(&["replicate"]);
    only_copy_completed(&pass);
    // The copy shipped the WAL its backup needs; a log pass ships what came after.
    let mut last = String::new();
    for i in 0..3 {
        pg.pgbench(&["-t", "50", "-n"]);
        mark(pg, &format!("after-b2-{i}"));
        last = pg.switch_and_archive();
    }
    let expected = pg.fingerprint();
    let expected_marks = marks(pg);
    let pass = w.btar_json(&["replicate", "--service", SVC]);
    let logs = &pass["logs"][0];
    assert!(logs["error"].is_null(), "{pass}");
    assert!(logs["logs_copied"].as_u64().unwrap() >= 1, "{pass}");
    let watermark = &logs["watermarks"][0];
    assert!(watermark["first_missing"].is_null(), "a gap: {pass}");
    assert!(
        watermark["watermark"].as_str().unwrap() >= last.as_str(),
        "the secondary lacks {last}: {pass}"
    );

    for region in ["home", "away"] {
        let v = w.btar_json(&["verify", SVC, "--region", region]);
        assert_eq!(v["damaged"].as_array().map_or(0, Vec::len), 0, "{v}");
    }
    let listed = w.btar_json(&["backup", "list", SVC]);
    let backups = listed["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{listed}");
    for b in backups {
        assert_eq!(
            b["additional_regions"][0]["status"], "COMPLETED",
            "{listed}"
        );
    }

    // restore_command (wal-fetch) reads the flaky secondary too.
    let (r, report) = w.restore("from-away", &["--region", "away"]);
    assert_eq!(report["restore"]["region"], "away", "{report}");
    assert_eq!(r.fingerprint(), expected);
    assert_eq!(marks(&r), expected_marks);
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The streamer (issue 14) with real parts: a PostgreSQL cluster, `btar log-stream` as a process,
//! filesystem regions. A disaster (primary location deleted, PostgreSQL stopped `-m immediate`)
//! seconds after the last commit, then a restore from the secondary: every commit made before the
//! streamed point is there, nothing that was not committed, and no segment switch was needed. The
//! streamer killed -9 resumes from its slot; a secondary that cannot be written catches up.

mod common;
#[path = "common/crash.rs"]
mod crash_kit;
#[path = "common/streamer.rs"]
mod streamer;

use std::time::Duration;

use btar_testkit::{PgCluster, describe};
use common::{Backend, SVC, World};
use streamer::Streamer;

/// Waits until every location holds the server's WAL up to `lsn` (text, `X/Y`).
fn wait_streamed(s: &Streamer, lsn: &str, regions: usize) {
    let want = parse_lsn(lsn);
    s.wait_for(
        |v| {
            v["event"] == "progress"
                && v["positions"].as_array().is_some_and(|ps| {
                    ps.len() == regions
                        && ps
                            .iter()
                            .all(|p| p["position"].as_str().map(parse_lsn).unwrap_or(0) >= want)
                })
        },
        Duration::from_secs(30),
    );
}

fn parse_lsn(s: &str) -> u64 {
    btar_engine_pg::restore::parse_lsn(s).unwrap_or(0)
}

/// A world whose service has a backup in both locations and a `ticks` table.
fn world() -> World {
    world_on(Backend::Fs)
}

fn world_on(backend: Backend) -> World {
    let w = World::with_cluster(backend);
    w.pg().psql("CREATE TABLE ticks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    w.backup();
    let pass = w.btar_json(&["replicate"]);
    assert!(pass["logs"][0]["error"].is_null(), "{pass}");
    w
}

fn tick(pg: &PgCluster, id: i32) {
    pg.psql(&format!("INSERT INTO ticks (id) VALUES ({id})"));
}

fn current_lsn(pg: &PgCluster) -> String {
    pg.psql("SELECT pg_current_wal_flush_lsn()")
}

/// The disaster: the primary location gone, the server stopped as by a power cut.
fn disaster(w: &mut World) {
    let home = match &w.s3 {
        Some(s3) => s3.bucket_dir("home-bucket"),
        None => w.dir.path().join("store-home"),
    };
    std::fs::remove_dir_all(home).expect("delete the primary location");
    w.pg.as_mut().expect("cluster").crash();
}

fn ids(pg: &PgCluster) -> Vec<i32> {
    let s = pg.psql("SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM ticks");
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().unwrap())
        .collect()
}

#[test]
fn a_fork_from_the_secondary_recovers_what_was_streamed_before_the_disaster() {
    let mut w = world();
    let s = Streamer::start(&w.config, SVC, &[]);
    for id in 1..=30 {
        tick(w.pg(), id);
        std::thread::sleep(Duration::from_millis(100));
    }
    let lsn = current_lsn(w.pg());
    wait_streamed(&s, &lsn, 2);
    // The lag report's stream positions and the window of the secondary reach the streamed point.
    let listed = w.btar_json(&["backup", "list", SVC]);
    let last_commit = w.pg().psql("SELECT max(at) FROM ticks");
    disaster(&mut w);
    drop(s);
    let end = listed["pitr"]["additional_regions"][0]["pitr_range_end"]
        .as_str()
        .expect("secondary window")
        .to_string();
    let (r, report) = w.restore("from-away", &["--region", "away"]);
    assert_eq!(report["restore"]["region"], "away");
    // Every commit made before the streamed point, in order, and nothing else: no segment switch
    // and no archive_command run brought these rows (the segment never filled).
    assert_eq!(ids(&r), (1..=30).collect::<Vec<_>>());
    let recovered = r.psql("SELECT max(at) FROM ticks");
    assert_eq!(recovered, last_commit);
    let newer = r.psql(&format!(
        "SELECT '{end}'::timestamptz >= '{last_commit}'::timestamptz"
    ));
    assert_eq!(
        newer, "t",
        "secondary window ends at {end}, last commit {last_commit}"
    );
}

#[test]
fn streamed_wal_on_s3_regions_serves_a_fork_after_the_disaster() {
    let mut w = world_on(Backend::S3);
    let s = Streamer::start(&w.config, SVC, &[]);
    for id in 1..=10 {
        tick(w.pg(), id);
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_streamed(&s, &current_lsn(w.pg()), 2);
    disaster(&mut w);
    drop(s);
    let (r, _) = w.restore("from-away", &["--region", "away"]);
    assert_eq!(ids(&r), (1..=10).collect::<Vec<_>>());
}

#[test]
fn a_killed_streamer_resumes_from_its_slot_and_a_blocked_secondary_catches_up() {
    let mut w = world();
    let mut s = Streamer::start(&w.config, SVC, &[]);
    for id in 1..=5 {
        tick(w.pg(), id);
    }
    wait_streamed(&s, &current_lsn(w.pg()), 2);
    s.kill();
    // While it is down the slot keeps the WAL on the server.
    for id in 6..=10 {
        tick(w.pg(), id);
    }
    let slot = w
        .pg()
        .psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'btar_orders'");
    assert_eq!(slot, "1");
    // The secondary cannot be written for a while: the streamer keeps the primary current and
    // retries the secondary.
    let s = Streamer::start(&w.config, SVC, &[]);
    let away = w.dir.path().join("store-away");
    set_mode(&away, 0o000);
    for id in 11..=15 {
        tick(w.pg(), id);
    }
    let lsn = current_lsn(w.pg());
    s.wait_for(
        |v| {
            v["event"] == "progress"
                && v["positions"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p["primary"] == true
                            && p["position"].as_str().map(parse_lsn).unwrap_or(0) >= parse_lsn(&lsn)
                    }) && ps
                        .iter()
                        .any(|p| p["primary"] == false && p["error"].is_string())
                })
        },
        Duration::from_secs(30),
    );
    set_mode(&away, 0o700);
    wait_streamed(&s, &lsn, 2);
    disaster(&mut w);
    drop(s);
    let (r, _) = w.restore("from-away", &["--region", "away"]);
    assert_eq!(ids(&r), (1..=15).collect::<Vec<_>>());
}

#[test]
fn a_dropped_slot_is_reported_as_a_gap_and_made_anew() {
    let mut w = world();
    let s = Streamer::start(&w.config, SVC, &[]);
    tick(w.pg(), 1);
    wait_streamed(&s, &current_lsn(w.pg()), 2);
    // An operator drops the slot: its walsender first, then the slot, before the streamer is back.
    w.pg().psql(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'btar_orders'; \
         SELECT pg_sleep(0.2); SELECT pg_drop_replication_slot('btar_orders')",
    );
    let gap = s.wait_for(|v| v["event"] == "gap", Duration::from_secs(30));
    assert!(gap["reason"].as_str().unwrap().contains("dropped"), "{gap}");
    s.wait_for(|v| v["event"] == "started", Duration::from_secs(30));
    // Streaming goes on from the new slot: what is committed now reaches the secondary.
    tick(w.pg(), 2);
    wait_streamed(&s, &current_lsn(w.pg()), 2);
    disaster(&mut w);
    drop(s);
    let (r, _) = w.restore("from-away", &["--region", "away"]);
    assert_eq!(ids(&r), vec![1, 2]);
}

#[test]
fn synchronous_commits_return_only_once_stored_in_the_primary_location() {
    let mut w = world();
    let mut s = Streamer::start(&w.config, SVC, &["--synchronous"]);
    w.pg()
        .psql("ALTER SYSTEM SET synchronous_standby_names = 'btar_orders'");
    w.pg().psql("SELECT pg_reload_conf()");
    for id in 1..=5 {
        tick(w.pg(), id);
    }
    // The moment the last commit returned: everything dies, nothing more is stored anywhere.
    s.kill();
    w.pg.as_mut().expect("cluster").crash();
    let (r, _) = w.restore("from-home", &[]);
    assert_eq!(ids(&r), (1..=5).collect::<Vec<_>>());
    drop(r);
    // Without the streamer a commit waits (here until psql gives up).
    w.pg.as_mut().expect("cluster").start();
    let out = std::process::Command::new("timeout")
        .args(["3", "psql", "-XAtq", "-h", "127.0.0.1", "-p"])
        .arg(w.pg().port.to_string())
        .args([
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "INSERT INTO ticks (id) VALUES (6)",
        ])
        .output()
        .expect("run psql");
    assert_eq!(
        out.status.code(),
        Some(124),
        "the commit returned without the streamer: {}",
        describe(&out)
    );
}

#[test]
fn a_role_without_replication_is_refused_with_the_fix() {
    let w = World::with_cluster(Backend::Fs);
    w.pg().psql("CREATE ROLE plain LOGIN");
    w.backup();
    w.write_config(&format!(
        "host=127.0.0.1 port={} user=plain dbname=postgres",
        w.pg().port
    ));
    let out = w.btar(&["log-stream", "--service", SVC]);
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ALTER ROLE plain REPLICATION"), "{err}");
}

fn set_mode(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The binlog streamer (issue 13: seconds-level RPO for MariaDB) with real parts: a MariaDB started
//! by the harness, `btar log-follow` and `btar log-stream` as processes, filesystem regions `home`
//! and `away`. Transactions committed 100 ms apart, a rotation in the middle, then a disaster
//! seconds after the last commit (the follower, the streamer and the server killed, the primary
//! location deleted): a restore from `away` holds every committed transaction, from the streamed
//! tail of the binlog file the server was still writing. A streamer killed -9 resumes where the
//! locations are and tails superseded by the archive are deleted. Both receivers carry on across a
//! restart of the server.

mod common;
#[path = "common/crash.rs"]
mod crash_kit;
#[path = "common/mysql_world.rs"]
mod mysql_world;
#[path = "common/streamer.rs"]
mod streamer;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use btar_testkit::{MariaDb, db_user, describe, files_under};
use common::btar_with;
use mysql_world::{SVC, fingerprint, restore_from_away, two_regions};
use streamer::Streamer;

/// `btar log-follow` for the service, run directly (as the database user when we are root) so that
/// killing it kills btar itself. Killed when dropped.
struct Follower(Child);

impl Follower {
    fn start(config: &Path, log: PathBuf) -> Self {
        let mut c = Command::new(env!("CARGO_BIN_EXE_btar"));
        c.arg("--config")
            .arg(config)
            .args(["log-follow", "--service", SVC])
            .env_remove("BTAR_CONFIG")
            .env_remove("RUST_LOG");
        if let Some((_, uid, gid)) = db_user() {
            c.uid(uid).gid(gid);
        }
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        Self(
            c.stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Keys of the region stored under `root` that end with `suffix`.
fn keys_ending(root: &Path, suffix: &str) -> Vec<String> {
    files_under(root)
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.ends_with(suffix))
        .collect()
}

fn streamed_pieces(root: &Path, name: &str) -> usize {
    files_under(root)
        .iter()
        .filter(|p| {
            p.to_string_lossy()
                .contains(&format!("stream/binlog/{name}/"))
        })
        .count()
}

/// Waits until every location's position is the server's (nothing of the binlog left to store):
/// how long that took.
fn wait_caught_up(s: &Streamer, regions: usize, server_file: &str) -> Duration {
    let t = Instant::now();
    s.wait_for(
        |v| {
            v["event"] == "progress"
                && v["positions"].as_array().is_some_and(|ps| {
                    ps.len() == regions
                        && ps.iter().all(|p| {
                            p["bytes_behind"] == 0
                                && p["server_position"]
                                    .as_str()
                                    .is_some_and(|x| x.starts_with(server_file))
                                && p["error"].is_null()
                        })
                })
        },
        Duration::from_secs(30),
    );
    t.elapsed()
}

/// A source with the `shop.items` table, backed up into both regions.
fn backed_up() -> (btar_testkit::TestDir, MariaDb, PathBuf) {
    let (dir, src, config) = two_regions();
    src.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB; \
         INSERT INTO shop.items VALUES (0, 'before the backup')",
    );
    let backup = btar_with(&config, &["backup", "create", SVC]);
    assert!(backup.status.success(), "backup: {}", describe(&backup));
    (dir, src, config)
}

#[test]
fn a_fork_from_the_secondary_holds_every_transaction_streamed_before_the_disaster() {
    let t0 = Instant::now();
    let (dir, mut src, config) = backed_up();
    let (home, away) = (dir.path().join("store-home"), dir.path().join("store-away"));

    let _follower = Follower::start(&config, dir.path().join("follow.log"));
    let mut s = Streamer::start(&config, SVC, &[]);
    for i in 1..=20 {
        src.sql(&format!(
            "INSERT INTO shop.items VALUES ({i}, 'committed {i}')"
        ));
        if i == 10 {
            // Archived by the follower; shipped to away by a replicator pass.
            src.sql("FLUSH BINARY LOGS");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let last_commit = Instant::now();
    let took = wait_caught_up(&s, 2, "binlog.000002");
    eprintln!(
        "both locations held the last commit {:?} after it ({:?} after the wait began)",
        last_commit.elapsed(),
        took
    );
    assert!(
        streamed_pieces(&away, "binlog.000002") > 0,
        "no streamed tail of the open binlog in away"
    );
    let replicated = btar_with(&config, &["replicate"]);
    assert!(replicated.status.success(), "{}", describe(&replicated));
    assert!(!keys_ending(&away, "logs/binlog/binlog.000001").is_empty());
    // The tail of a file archived in a location is deleted there (the writer looks every 10 s).
    let t = Instant::now();
    while streamed_pieces(&away, "binlog.000001") > 0 || streamed_pieces(&home, "binlog.000001") > 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the tail of archived binlog.000001 was not deleted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let want = fingerprint(&src);

    // The disaster: no process left to rotate or archive anything, and no primary location.
    s.kill();
    drop(_follower);
    src.stop();
    std::fs::remove_dir_all(&home).unwrap();
    assert!(
        keys_ending(&away, "logs/binlog/binlog.000002").is_empty(),
        "the open file was archived: the test would not show the tail"
    );

    let (restored, out, _) = restore_from_away(dir.path(), &config, "restored", &[]);
    assert!(out.status.success(), "restore: {}", describe(&out));
    assert_eq!(fingerprint(&restored), want);
    assert_eq!(restored.sql("SELECT MAX(id) FROM shop.items"), "20");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reached = v["restore"]["reached"]["lsn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reached.starts_with("binlog.000002:"), "{v}");
    eprintln!("whole test in {:?}", t0.elapsed());
}

#[test]
fn a_killed_streamer_resumes_and_the_secondary_catches_up() {
    let (dir, src, config) = backed_up();
    let away = dir.path().join("store-away");

    let mut s = Streamer::start(&config, SVC, &[]);
    src.sql("INSERT INTO shop.items VALUES (1, 'one')");
    wait_caught_up(&s, 2, "binlog.000001");
    let before = streamed_pieces(&away, "binlog.000001");
    s.kill();
    src.sql("INSERT INTO shop.items VALUES (2, 'while the streamer was down')");

    // The locations' tails are where the new run starts: only what is new is stored.
    let s = Streamer::start(&config, SVC, &[]);
    src.sql("INSERT INTO shop.items VALUES (3, 'after')");
    let last_commit: i64 = src.sql("SELECT UNIX_TIMESTAMP()").parse().unwrap();
    wait_caught_up(&s, 2, "binlog.000001");
    assert!(streamed_pieces(&away, "binlog.000001") > before);
    let want = fingerprint(&src);
    drop(s);

    // Nothing archived at all: the restore replays the backup's binlog from its tail.
    assert!(keys_ending(&away, "logs/binlog/binlog.000001").is_empty());
    let (restored, out, _) = restore_from_away(dir.path(), &config, "restored", &[]);
    assert!(out.status.success(), "restore: {}", describe(&out));
    assert_eq!(fingerprint(&restored), want);

    // The window of away ends at the streamed point, not at the backup: at the second of the last
    // commit (binlog events are stamped in whole seconds).
    let listed: serde_json::Value = serde_json::from_slice(
        &btar_with(&config, &["--output", "json", "backup", "list", SVC]).stdout,
    )
    .unwrap();
    let end = listed["pitr"]["additional_regions"][0]["pitr_range_end"]
        .as_str()
        .unwrap_or_else(|| panic!("no window for away: {listed}"));
    let end = chrono::DateTime::parse_from_rfc3339(end)
        .unwrap()
        .timestamp();
    assert!(
        end >= last_commit,
        "away's window ends at {end}, before the last commit at {last_commit}"
    );
}

/// A production server restarts (a package upgrade, a reboot): both receivers lose their
/// connection, start again once it is back, and carry on in the new binlog file it begins; nothing
/// is skipped, and a restore from the secondary after a disaster holds every commit.
#[test]
fn the_follower_and_the_streamer_carry_on_across_a_server_restart() {
    let (dir, mut src, config) = backed_up();
    let (home, away) = (dir.path().join("store-home"), dir.path().join("store-away"));
    let follow_log = dir.path().join("follow.log");
    let follower = Follower::start(&config, follow_log.clone());
    let mut s = Streamer::start(&config, SVC, &[]);
    for i in 1..=5 {
        src.sql(&format!(
            "INSERT INTO shop.items VALUES ({i}, 'before the restart')"
        ));
    }
    wait_caught_up(&s, 2, "binlog.000001");

    src.restart();
    for i in 6..=10 {
        src.sql(&format!(
            "INSERT INTO shop.items VALUES ({i}, 'after the restart')"
        ));
    }
    s.wait_for(|v| v["event"] == "interrupted", Duration::from_secs(30));
    s.wait_for(
        |v| v["event"] == "started" && v["from"].as_str().is_some_and(|f| f.starts_with("binlog.")),
        Duration::from_secs(60),
    );
    wait_caught_up(&s, 2, "binlog.000002");
    // The file the restart closed is archived by the follower, which was interrupted too.
    let t = Instant::now();
    while keys_ending(&home, "logs/binlog/binlog.000001").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "binlog.000001 not archived after the restart; the follower said: {}",
            std::fs::read_to_string(&follow_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let said = std::fs::read_to_string(&follow_log).unwrap_or_default();
    assert!(said.contains("interrupted"), "{said}");
    let replicated = btar_with(&config, &["replicate"]);
    assert!(replicated.status.success(), "{}", describe(&replicated));
    let want = fingerprint(&src);

    s.kill();
    drop(follower);
    src.stop();
    std::fs::remove_dir_all(&home).unwrap();
    let (restored, out, _) = restore_from_away(dir.path(), &config, "restored", &[]);
    assert!(out.status.success(), "restore: {}", describe(&out));
    assert_eq!(fingerprint(&restored), want);
    assert_eq!(
        restored.sql("SELECT COUNT(*) FROM shop.items WHERE id BETWEEN 1 AND 10"),
        "10"
    );
    // Nothing missing in between: the secondary's archive has no hole.
    let verified = btar_with(&config, &["verify", SVC, "--region", "away"]);
    assert!(verified.status.success(), "verify: {}", describe(&verified));
    assert!(!keys_ending(&away, "logs/binlog/binlog.000001").is_empty());
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A secondary that holds only part of a file (it could not be written while the server moved on,
/// and the streamer restarted past that file once the primary archived it) holds the next file's
/// tail too. A restore from it must stop where that partial file ends, never replay the next file
/// over the hole; once the archived file is shipped there, it holds everything.
#[test]
fn a_restore_stops_at_a_partial_tail_and_never_replays_past_its_hole() {
    let (dir, src, config) = backed_up();
    let away = dir.path().join("store-away");
    let mut s = Streamer::start(&config, SVC, &[]);
    for i in 1..=3 {
        src.sql(&format!("INSERT INTO shop.items VALUES ({i}, 'in both')"));
    }
    wait_caught_up(&s, 2, "binlog.000001");
    let in_both = fingerprint(&src);

    // away cannot be written: the rest of binlog.000001 and all of binlog.000002 reach home only.
    set_mode(&away, 0o000);
    for i in 4..=6 {
        src.sql(&format!("INSERT INTO shop.items VALUES ({i}, 'home only')"));
    }
    src.sql("FLUSH BINARY LOGS");
    for i in 7..=9 {
        src.sql(&format!("INSERT INTO shop.items VALUES ({i}, 'next file')"));
    }
    s.wait_for(
        |v| {
            v["event"] == "progress"
                && v["positions"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .any(|p| p["primary"] == false && p["error"].is_string())
                })
        },
        Duration::from_secs(30),
    );
    // The primary archives binlog.000001; a new streamer starts after it, at binlog.000002.
    let closed = src.data_dir.join("binlog.000001");
    let pushed = btar_with(
        &config,
        &["wal-push", "--service", SVC, closed.to_str().unwrap()],
    );
    assert!(pushed.status.success(), "{}", describe(&pushed));
    s.kill();
    set_mode(&away, 0o700);
    let s = Streamer::start(&config, SVC, &[]);
    wait_caught_up(&s, 2, "binlog.000002");
    assert!(streamed_pieces(&away, "binlog.000002") > 0);
    let want = fingerprint(&src);
    drop(s);

    let (restored, out, _) = restore_from_away(dir.path(), &config, "partial", &[]);
    assert!(out.status.success(), "restore: {}", describe(&out));
    assert_eq!(
        fingerprint(&restored),
        in_both,
        "replayed past the end of away's partial binlog.000001"
    );
    drop(restored);

    // The archived file shipped there: away holds everything.
    let replicated = btar_with(&config, &["replicate"]);
    assert!(replicated.status.success(), "{}", describe(&replicated));
    let (restored, out, _) = restore_from_away(dir.path(), &config, "whole", &[]);
    assert!(out.status.success(), "restore: {}", describe(&out));
    assert_eq!(fingerprint(&restored), want);
}

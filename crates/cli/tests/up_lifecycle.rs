#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `btar up` beside other programs (issue 10, item 19): a taken API port fails at once, before
//! initdb; a new setup picks free ports when the defaults are taken; SIGTERM and SIGINT (Ctrl-C) stop
//! the PostgreSQL and the forks that this run started. Item 13: a fork run by root beside it leaves
//! the directories it creates to the user `btar up` runs as.

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

mod common;
#[path = "common/crash.rs"]
mod crash;

use btar_testkit::{TestDir, as_db_user, describe};

fn running(data_dir: &Path) -> bool {
    data_dir.join("postmaster.pid").exists()
}

#[test]
fn busy_listen_address_fails_before_initdb() {
    let dir = TestDir::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let t = Instant::now();
    let out = as_db_user(env!("CARGO_BIN_EXE_btar"))
        .args(["up", "--dir", data.to_str().unwrap(), "--listen", &addr])
        .env_remove("BTAR_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("--listen"), "{err}");
    assert!(
        !data.join("pg").join("PG_VERSION").exists(),
        "initdb ran before the address was checked"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[test]
fn up_takes_free_ports_and_stops_what_it_started_on_sigterm() {
    let dir = TestDir::new();
    // The defaults may be free or not on this machine: hold them so the new config must move.
    let held_api = std::net::TcpListener::bind("127.0.0.1:7480").ok();
    let held_notify = std::net::UdpSocket::bind("127.0.0.1:7481").ok();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap().to_string();
    let common::UpServing {
        child: mut up,
        port,
        line: serving,
        lines: _lines,
    } = common::up_serving(&["--dir", &d]);
    assert_ne!(port, 7480, "{serving}");
    let cfg = std::fs::read_to_string(data.join("btar.toml")).unwrap();
    assert!(!cfg.contains("127.0.0.1:7481"), "{cfg}");
    let pg = data.join("pg");
    assert!(running(&pg));

    let c = data.join("btar.toml");
    // While it serves, its WAL streamer reports both locations (the lag report's `streamed`).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = as_db_user(env!("CARGO_BIN_EXE_btar"))
            .args(["--config", c.to_str().unwrap(), "--output", "json"])
            .args(["report", "demo", "--period", "hour"])
            .output()
            .unwrap();
        assert!(out.status.success(), "report: {}", describe(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut regions: Vec<&str> = report["streamed"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["region"].as_str()).collect())
            .unwrap_or_default();
        regions.sort();
        if regions == ["local-away", "local-home"] {
            break;
        }
        assert!(Instant::now() < deadline, "no stream positions: {report}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // A fork made while btar up serves is stopped with it.
    let out = as_db_user(env!("CARGO_BIN_EXE_btar"))
        .args([
            "--config",
            c.to_str().unwrap(),
            "--output",
            "json",
            "fork",
            "demo",
        ])
        .args(["--source", "secondary", "--name", "demo-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "fork: {}", describe(&out));
    let fork = data.join("forks").join("demo-copy");
    assert!(running(&fork));

    let stopped = Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while up.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "btar up did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let still: Vec<_> = [&pg, &fork].into_iter().filter(|d| running(d)).collect();
    // Leave nothing running if the assertion fails.
    for d in &still {
        btar_testkit::stop_data_dir(d);
    }
    assert!(still.is_empty(), "still running after SIGTERM: {still:?}");
    drop((held_api, held_notify));
}

/// `btar --config CONFIG --output json fork demo --name NAME`, as root when `as_root` (the tests run
/// as root) or else as the database user, as the server itself would.
fn fork(config: &Path, name: &str, as_root: bool) -> Output {
    // Bounded: a fork that cannot reach its server waits an hour for promotion.
    let mut cmd = if as_root {
        Command::new("timeout")
    } else {
        as_db_user("timeout")
    };
    cmd.args(["120", env!("CARGO_BIN_EXE_btar")])
        .arg("--config")
        .arg(config)
        .args(["--output", "json", "fork", "demo", "--name", name])
        .output()
        .unwrap()
}

/// Sends `signal` to the `btar up` process (not to `runuser`, which passes SIGTERM on but not
/// SIGINT; a terminal's Ctrl-C reaches btar itself) and waits for it to exit; then stops (and returns) whichever of
/// `data_dirs` still runs a server, so a failed assertion leaves nothing running.
fn stop_up(up: &mut Child, signal: &str, data_dirs: &[&Path]) -> Vec<String> {
    let pid = crash::btar_pid(up).unwrap_or_else(|| up.id());
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while up.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = up.kill();
            let _ = up.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let still: Vec<_> = data_dirs.iter().filter(|d| running(d)).collect();
    for d in &still {
        btar_testkit::stop_data_dir(d);
    }
    still.iter().map(|d| d.display().to_string()).collect()
}

/// Ctrl-C (SIGINT) stops `btar up` as SIGTERM does: its PostgreSQL and the forks it started stop.
#[test]
fn up_stops_what_it_started_on_sigint() {
    let dir = TestDir::new();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap().to_string();
    let common::UpServing { child: mut up, .. } = common::up_serving(&["--dir", &d]);
    let pg = data.join("pg");
    let fork_dir = data.join("forks").join("demo-copy");
    let out = fork(&data.join("btar.toml"), "demo-copy", false);
    let forked = out.status.success() && running(&fork_dir);
    let still = stop_up(&mut up, "INT", &[&pg, &fork_dir]);
    assert!(forked, "fork: {}", describe(&out));
    assert!(still.is_empty(), "still running after SIGINT: {still:?}");
}

/// Root runs `btar fork` beside a `btar up` that runs as the database user: the `forks` directory
/// it creates belongs to the owner of the data directory, so the server (or that user's CLI) can
/// create the next fork there.
#[test]
fn a_root_run_fork_beside_up_leaves_the_forks_directory_to_its_owner() {
    use std::os::unix::fs::MetadataExt;
    if btar_testkit::db_user().is_none() {
        eprintln!("SKIPPED: needs root and a database user");
        return;
    }
    let dir = TestDir::new();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap().to_string();
    let common::UpServing { child: mut up, .. } = common::up_serving(&["--dir", &d]);
    let config = data.join("btar.toml");
    let forks = data.join("forks");
    let by_root = fork(&config, "by-root", true);
    let uid = |p: &Path| std::fs::metadata(p).map(|m| m.uid()).ok();
    let (owner, forks_owner) = (uid(&data), uid(&forks));
    let by_owner = fork(&config, "by-owner", false);
    let still = stop_up(
        &mut up,
        "TERM",
        &[
            &data.join("pg"),
            &forks.join("by-root"),
            &forks.join("by-owner"),
        ],
    );
    assert!(
        by_root.status.success(),
        "fork as root: {}",
        describe(&by_root)
    );
    assert_ne!(
        owner,
        Some(0),
        "btar up hands its directory to the database user"
    );
    assert_eq!(
        forks_owner,
        owner,
        "{} is not the data directory owner's",
        forks.display()
    );
    assert!(
        by_owner.status.success(),
        "fork as the data directory's owner: {}",
        describe(&by_owner)
    );
    assert!(still.is_empty(), "still running after SIGTERM: {still:?}");
}

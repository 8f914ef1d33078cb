#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `btar up --engine mysql` (issue 13): the embedded default with a MariaDB of its own. The first
//! run installs a MariaDB on a free loopback port under the directory (root reachable only with
//! the generated password), takes a backup and copies it to the secondary region. Serving, it
//! follows the binlog (a rotated file reaches both regions within seconds) and streams the open
//! file, and a fork from the secondary holds the rows written since the rotation too. SIGTERM stops the MariaDB, the fork and
//! the binlog receiver it started. A directory set up for one engine refuses the other.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use btar_testkit::{MariaDb, TestDir, as_db_user, describe, files_under, processes_with};
use common::{UpServing, btar_json_without_config as btar, up_serving};

/// `port=N` out of a `host=… port=N user=…` description.
fn port_of(described: &str) -> u16 {
    described
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {described}"))
}

fn copied(v: &serde_json::Value) {
    let copies = v["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 1, "{v}");
    assert_eq!(copies[0]["job"]["state"], "COMPLETED", "{v}");
    assert_eq!(copies[0]["job"]["destination_region"], "local-away", "{v}");
}

fn archived_in(region: &Path, name: &str) -> bool {
    files_under(region).iter().any(|p| {
        p.to_string_lossy()
            .ends_with(&format!("logs/binlog/{name}"))
    })
}

/// How far the streamed tail of binlog file `name` in a region reaches (the furthest piece end;
/// keys name their byte range in hexadecimal).
fn streamed_in(region: &Path, name: &str) -> u64 {
    let dir = format!("stream/binlog/{name}/");
    files_under(region)
        .iter()
        .filter_map(|p| {
            let p = p.to_string_lossy();
            let range = p.split_once(&dir)?.1;
            u64::from_str_radix(range.split_once('-')?.1, 16).ok()
        })
        .max()
        .unwrap_or(0)
}

fn mariadbd_running(data_dir: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(data_dir.join("mariadbd.pid")) else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

#[test]
fn up_mysql_backs_up_follows_the_binlog_to_both_regions_and_stops_what_it_started() {
    let dir = TestDir::new();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap().to_string();
    let first = btar(&["up", "--engine", "mysql", "--dir", &d, "--no-serve"]);
    assert_eq!(first["engine"], "mysql", "{first}");
    assert!(first["backup"]["backup_name"].is_string(), "{first}");
    copied(&first);
    let mysql_dir = data.join("mysql");
    // Stopped at the end whatever happens (the server outlives `--no-serve` by design).
    let port = port_of(first["server"].as_str().unwrap());
    let mut db = MariaDb::adopt(&mysql_dir, port);
    assert!(mariadbd_running(&mysql_dir));

    // Root only with the generated password; the secrets are private.
    let password = std::fs::read_to_string(data.join("mysql-password")).unwrap();
    let refused = db.try_sql_as_root(None, "SELECT 1").unwrap_err();
    assert!(refused.contains("Access denied"), "{refused}");
    let sql = |q: &str| db.try_sql_as_root(Some(&password), q).unwrap();
    assert_eq!(sql("SELECT 1"), "1");
    assert_eq!(
        sql("SELECT @@bind_address, @@log_bin, @@binlog_format"),
        "127.0.0.1\t1\tROW"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("mysql-password")), 0o600);
    let cfg = std::fs::read_to_string(data.join("btar.toml")).unwrap();
    assert!(
        cfg.contains("engine = \"mysql\"") && !cfg.contains(password.trim()),
        "{cfg}"
    );

    // The directory keeps its engine.
    let out = as_db_user(env!("CARGO_BIN_EXE_btar"))
        .args(["up", "--engine", "pg", "--dir", &d, "--no-serve"])
        .env_remove("BTAR_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was set up for MySQL/MariaDB"), "{err}");

    sql("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, v TEXT)");
    sql("INSERT INTO shop.items VALUES (1, 'before serving'), (2, 'still before')");
    // Stopped, so that the serving run below starts it, and so stops it again on SIGTERM (a
    // server it found running is not its to stop).
    db.stop();
    assert!(!mariadbd_running(&mysql_dir));

    // Serving: API, replicator and the binlog follower.
    let UpServing {
        child: mut up,
        port: api_port,
        line: serving,
        lines,
    } = up_serving(&["--dir", &d]);
    let db = MariaDb::adopt(&mysql_dir, port);
    let sql = |q: &str| db.try_sql_as_root(Some(&password), q).unwrap();
    assert!(
        serving.contains("the binlog is streamed")
            && serving.contains("archived as each file closes"),
        "{serving}"
    );
    // The rest of the output (follower events) is read so btar never blocks on a full pipe.
    let said = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    sql("INSERT INTO shop.items VALUES (3, 'while serving')");
    let closed = sql("SHOW MASTER STATUS")
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    sql("FLUSH BINARY LOGS");
    let (home, away) = (
        data.join("regions").join("local-home"),
        data.join("regions").join("local-away"),
    );
    let t = Instant::now();
    while !(archived_in(&home, &closed) && archived_in(&away, &closed)) {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = up.kill();
            panic!(
                "{closed} not in both regions within 30 s (home: {}, away: {}); btar up said: {:?}",
                archived_in(&home, &closed),
                archived_in(&away, &closed),
                said.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{closed} in both regions {:?} after the rotation",
        t.elapsed()
    );
    let receiver = format!("--port={}", db.port);
    assert_eq!(
        processes_with(&["mariadb-binlog", &receiver]).len(),
        2,
        "not one follower and one streamer receiving while serving"
    );
    // The file now being written reaches both regions as a streamed tail, without a rotation.
    sql("INSERT INTO shop.items VALUES (4, 'in the open file')");
    let status = sql("SHOW MASTER STATUS");
    let mut status = status.split('\t');
    let open = status.next().unwrap().to_string();
    let written: u64 = status.next().unwrap().parse().unwrap();
    let t = Instant::now();
    while streamed_in(&home, &open).min(streamed_in(&away, &open)) < written {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = up.kill();
            panic!("no streamed tail of {open} in both regions within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{open} streamed to both regions within {:?}", t.elapsed());

    // A fork from the secondary, made while btar up serves, holds the rows of the rotated file.
    let c = data.join("btar.toml");
    let c = c.to_str().unwrap();
    let forked = btar(&[
        "-c",
        c,
        "fork",
        "demo",
        "--source",
        "secondary",
        "--name",
        "demo-dr",
    ]);
    assert_eq!(forked["cloud"], "local-away", "{forked}");
    let fork_dir = Path::new(forked["data_dir"].as_str().unwrap()).to_path_buf();
    let fork = MariaDb::adopt(&fork_dir, port_of(forked["conninfo"].as_str().unwrap()));
    assert_eq!(
        fork.try_sql_as_root(Some(&password), "SELECT COUNT(*), MAX(v) FROM shop.items")
            .unwrap(),
        "4\twhile serving"
    );

    // The API answers with the token `btar up` wrote.
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let response = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", api_port)).unwrap();
        write!(
            s,
            "GET /v1/project/p/service/demo/backups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            token.trim()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // SIGTERM (as root, `up` is runuser, which passes it on): the MariaDB, the fork and the
    // binlog receiver this run started all stop.
    let stopped = Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let t = Instant::now();
    while up.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "btar up did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !mariadbd_running(&mysql_dir),
        "the demo's MariaDB still runs"
    );
    assert!(!mariadbd_running(&fork_dir), "the fork still runs");
    assert!(
        processes_with(&["mariadb-binlog", &receiver]).is_empty(),
        "a binlog receiver outlived btar up"
    );
    let said = said.join().unwrap();
    assert!(
        said.iter()
            .any(|l| l.contains(&format!("archived {closed}"))),
        "{said:?}"
    );
}

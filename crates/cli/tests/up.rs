#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The README's flow, end to end: `btar up` sets up the embedded default, takes the first backup and
//! copies it to the secondary region; a row written afterwards is backed up and copied, shows in the
//! lag report, and reads back from a fork made from the secondary location; the API served by
//! `btar up` answers with the token it wrote. A second `btar up` reuses everything.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btar_testkit::{PgCluster, TestDir, as_db_user, conninfo_port, describe};

fn btar(args: &[&str]) -> serde_json::Value {
    // Every command as the database user, as an operator of the embedded default would run them (the
    // data directory, catalog and keys belong to that user).
    common::btar_json_without_config(args)
}

/// psql over TCP as `postgres`, with or without the password `btar up` generated; never prompts.
fn psql_tcp(port: u16, password: Option<&str>, sql: &str) -> Result<String, String> {
    let mut c = Command::new("psql");
    c.args([
        "-X",
        "-w",
        "-q",
        "-A",
        "-t",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
    ])
    .args(["-d", "postgres", "-p", &port.to_string(), "-c", sql])
    .env("PGPASSFILE", "/dev/null")
    .env_remove("PGPASSWORD")
    .stdin(Stdio::null());
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    let out = c.output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(describe(&out))
    }
}

fn copied(v: &serde_json::Value) {
    let copies = v["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 1, "{v}");
    assert_eq!(copies[0]["job"]["state"], "COMPLETED", "{v}");
    assert_eq!(copies[0]["job"]["destination_region"], "local-away", "{v}");
}

/// A minimal HTTP/1.1 GET on loopback (the API test in btar-control covers the routes in depth).
fn http_get(port: u16, path: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[test]
fn readme_flow_up_write_backup_copy_report_fork() {
    let dir = TestDir::new();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let first = btar(&["up", "--dir", d, "--no-serve"]);
    let conninfo = first["postgres"].as_str().unwrap().to_string();
    let port = conninfo_port(&conninfo);
    let pg = PgCluster::adopt(&data.join("pg"), port);
    assert!(first["backup"]["backup_name"].is_string(), "{first}");
    copied(&first);

    // Only the password (TCP) or the server's own OS user (socket) reach the superuser: any local
    // user could otherwise read the region keys and the API token with pg_read_file.
    let password = std::fs::read_to_string(data.join("pg-password")).unwrap();
    let refused = psql_tcp(port, None, "SELECT 1").unwrap_err();
    assert!(refused.contains("password"), "{refused}");
    let sql = |q: &str| psql_tcp(port, Some(&password), q).unwrap();
    assert_eq!(sql("SELECT 1"), "1");
    let socket = conninfo
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("host="))
        .unwrap();
    if btar_testkit::db_user().is_some() {
        // We are root; the server runs as `postgres`. Another local user is not let in over the
        // socket. (Root is, as the server's own user: it can read the data directory anyway, and a
        // root-run `btar fork` waits for its fork through that socket.)
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--", "psql", "-X", "-w", "-h", socket, "-p"])
            .arg(port.to_string())
            .args(["-U", "postgres", "-d", "postgres", "-c", "SELECT 1"])
            .env("PGPASSFILE", "/dev/null")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "another local user connected over the socket"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("pg-password")), 0o600);

    sql("CREATE TABLE t (v text); INSERT INTO t VALUES ('written after up')");
    let cfg = data.join("btar.toml");
    let c = cfg.to_str().unwrap();
    let second = btar(&["--config", c, "backup", "create", "demo"]);
    assert_ne!(second["backup_name"], first["backup"]["backup_name"]);
    copied(&second);
    sql("SELECT pg_switch_wal()");

    // Again: same cluster, same keys, a new backup that reuses almost every chunk.
    let again = btar(&["up", "--dir", d, "--no-serve"]);
    assert_eq!(again["postgres"].as_str().unwrap(), conninfo);
    assert!(
        again["backup"]["new_chunks"].as_u64().unwrap() < 50,
        "{again}"
    );

    let listed = btar(&["--config", c, "backup", "list", "demo"]);
    let backups = listed["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 3);
    assert!(
        backups
            .iter()
            .all(|b| b["additional_regions"][0]["status"] == "COMPLETED"),
        "{listed}"
    );

    let report = btar(&["--config", c, "report", "demo", "--period", "day"]);
    let lag = &report["metrics"]["local-away"]["backup_lag_seconds"];
    assert!(!lag.as_array().unwrap().is_empty(), "{report}");

    let forked = btar(&[
        "--config",
        c,
        "fork",
        "demo",
        "--source",
        "secondary",
        "--name",
        "demo-dr",
    ]);
    let fork = PgCluster::adopt(
        std::path::Path::new(forked["data_dir"].as_str().unwrap()),
        conninfo_port(forked["conninfo"].as_str().unwrap()),
    );
    assert_eq!(forked["cloud"], "local-away", "{forked}");
    assert_eq!(
        psql_tcp(fork.port, Some(&password), "SELECT v FROM t").unwrap(),
        "written after up"
    );
    drop(fork);

    // `btar up` serving: the API answers with the token it wrote, and refuses a wrong one.
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    let mut cmd = as_db_user(env!("CARGO_BIN_EXE_btar"));
    cmd.args(["--config", c, "server", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::null());
    let server = common::ServerProcess::spawn(cmd);
    let port = server.port;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let r = http_get(port, "/v1/project/p/service/demo/backups", token.trim());
        if r.0 == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (wrong, _) = http_get(port, "/v1/copy-jobs", "not-the-token-at-all");
    drop(server);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["backups"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(wrong, 403);
    drop(pg);
}

//! The continuous binlog archive (issue 13): `btar log-follow` against a real MariaDB started by the
//! harness. Closed binlog files reach the primary location within seconds of `FLUSH BINARY LOGS`;
//! btar killed with SIGKILL takes its `mariadb-binlog` with it, and the next start resumes from the
//! archive's watermark with no gap; `verify` passes and a restore holds exactly the rows as of the
//! last rotation. A purged file is named as a gap; a PostgreSQL service and an account without the
//! replication privilege are refused with the reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use btar_region::RegionConfig;
use btar_testkit::{
    MariaDb, TestDir, db_user, describe, files_under, free_port, fs_region, processes_with,
};
use common::btar_with;

const SVC: &str = "shop";

fn write_config(path: &Path, region: &RegionConfig, port: u16, user: &str) {
    let text = format!(
        "{}\n[[service]]\nname = \"{SVC}\"\nengine = \"mysql\"\ncloud = \"home\"\n\n[service.mysql]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\n\n[[service]]\nname = \"orders\"\nengine = \"pg\"\ncloud = \"home\"\n\n[service.pg]\nconninfo = \"host=127.0.0.1 port=1 user=postgres dbname=postgres\"\n",
        toml::to_string(&serde_json::json!({ "region": [region] })).unwrap()
    );
    std::fs::write(path, text).unwrap();
}

/// A `btar log-follow` process, run directly (as the database user when we are root) so that
/// killing it kills btar itself. Killed when dropped.
struct Follower {
    child: Child,
    log: PathBuf,
}

impl Follower {
    fn start(config: &Path, log: PathBuf) -> Self {
        let mut c = Command::new(env!("CARGO_BIN_EXE_btar"));
        c.arg("--config")
            .arg(config)
            .args(["-v", "log-follow", "--service", SVC]);
        c.env_remove("BTAR_CONFIG").env_remove("RUST_LOG");
        if let Some((_, uid, gid)) = db_user() {
            c.uid(uid).gid(gid);
        }
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = c
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Rows and checksum of the test table: equal iff the same data.
fn fingerprint(db: &MariaDb) -> String {
    db.sql("SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, ':', v))), 0) FROM shop.items")
}

/// Whether binlog file `name` is archived in the filesystem region stored under `home`.
fn is_archived(home: &std::path::Path, name: &str) -> bool {
    files_under(home).iter().any(|p| {
        p.to_string_lossy()
            .ends_with(&format!("logs/binlog/{name}"))
    })
}

#[test]
fn the_binlog_follower_archives_rotated_files_and_resumes_after_kill_9_without_a_gap() {
    let t0 = Instant::now();
    let dir = TestDir::new();
    let home = dir.sub("store-home");
    let region = fs_region("home", &home);
    let src = MariaDb::start(&dir, "source");
    let config = dir.path().join("btar.toml");
    write_config(&config, &region, src.port, "root");
    let archived = |name: &str| is_archived(&home, name);
    let wait_archived = |names: &[&str], f: &Follower| {
        let t = Instant::now();
        while !names.iter().all(|n| archived(n)) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{names:?} not archived within 10 s; follower said:\n{}",
                f.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{names:?} archived {:?} after the flush", t.elapsed());
    };

    // A PostgreSQL service has nothing to follow.
    let out = btar_with(&config, &["log-follow", "--service", "orders"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "PostgreSQL archives its log with archive_command (wal-push); nothing to follow"
        ),
        "{err}"
    );

    src.sql(
        "CREATE DATABASE shop; CREATE DATABASE seq; CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB; \
         INSERT INTO shop.items SELECT seq, CONCAT('item-', seq) FROM seq.seq_1_to_500",
    );
    // The base backup creates the location; its consistent point is in binlog.000001.
    let backup = btar_with(&config, &["backup", "create", SVC]);
    assert!(backup.status.success(), "backup: {}", describe(&backup));

    let mut f = Follower::start(&config, dir.path().join("follow-1.log"));
    src.sql("INSERT INTO shop.items SELECT seq, CONCAT('a-', seq) FROM seq.seq_501_to_900");
    src.sql("FLUSH BINARY LOGS");
    src.sql("UPDATE shop.items SET v = 'updated' WHERE id % 7 = 0");
    src.sql("FLUSH BINARY LOGS");
    wait_archived(&["binlog.000001", "binlog.000002"], &f);
    assert!(!archived("binlog.000003"), "the open file was archived");
    let spool = dir.path().join("btar-binlog-shop");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&spool).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the spool is not private");

    // kill -9: mariadb-binlog goes with btar; its partial file stays in the spool.
    let receiver = |f: &Follower| {
        let _ = f;
        processes_with(&["mariadb-binlog", "--stop-never", spool.to_str().unwrap()])
    };
    assert_eq!(receiver(&f).len(), 1, "{}", f.output());
    f.kill9();
    let t = Instant::now();
    while !receiver(&f).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "mariadb-binlog outlived btar: {:?}",
            receiver(&f)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_output = f.output();
    drop(f);
    assert!(
        !first_output.contains("password"),
        "a password in the output: {first_output}"
    );

    // Written while nothing follows, rotated; then one more change in the open file.
    src.sql("DELETE FROM shop.items WHERE id % 11 = 0; INSERT INTO shop.items VALUES (9001, 'while down')");
    src.sql("FLUSH BINARY LOGS");
    let mut f = Follower::start(&config, dir.path().join("follow-2.log"));
    wait_archived(&["binlog.000003"], &f);
    assert!(!archived("binlog.000004"), "the open file was archived");
    assert_eq!(receiver(&f).len(), 1, "{}", f.output());

    // mariadb-binlog itself ends (as on a server restart): btar starts it again, from the file it
    // was receiving, and the next rotation arrives.
    let pid = |cmd: &str| -> String {
        let all = std::fs::read_dir("/proc").unwrap().flatten();
        all.filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ") == cmd)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .unwrap()
    };
    let before = receiver(&f);
    let killed = Command::new("kill")
        .args(["-KILL", &pid(&before[0])])
        .status()
        .unwrap();
    assert!(killed.success());
    src.sql("INSERT INTO shop.items VALUES (9003, 'after the receiver restarted')");
    src.sql("FLUSH BINARY LOGS");
    let at_last_flush = fingerprint(&src);
    src.sql("INSERT INTO shop.items VALUES (9002, 'in the open file')");
    wait_archived(&["binlog.000004"], &f);
    let out = f.output();
    assert!(out.contains("interrupted"), "{out}");
    assert_eq!(receiver(&f).len(), 1, "{out}");

    // SIGTERM: the receiver is stopped and btar exits 0.
    let term = Command::new("kill")
        .args(["-TERM", &f.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = f.child.wait().unwrap();
    assert!(status.success(), "{status}: {}", f.output());
    assert!(receiver(&f).is_empty(), "{:?}", receiver(&f));
    eprintln!("first run:\n{first_output}\nsecond run:\n{}", f.output());
    drop(f);
    eprintln!("follower part done at {:?}", t0.elapsed());

    // No hole in the archive; a restore to latest holds exactly the rows as of the last rotation.
    let verified = btar_with(
        &config,
        &["--output", "json", "verify", SVC, "--region", "home"],
    );
    assert!(verified.status.success(), "verify: {}", describe(&verified));
    let data_dir = dir.path().join("restored");
    let port = free_port();
    let out = btar_with(
        &config,
        &[
            "--output",
            "json",
            "restore",
            SVC,
            "--region",
            "home",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--start",
            "--port",
            &port.to_string(),
            "--set",
            "bind-address=127.0.0.1",
            "--promote-timeout",
            "60s",
        ],
    );
    let restored = MariaDb::adopt(&data_dir, port);
    assert!(out.status.success(), "restore: {}", describe(&out));
    assert_eq!(fingerprint(&restored), at_last_flush);
    assert_eq!(
        restored.sql("SELECT COUNT(*) FROM shop.items WHERE id = 9002"),
        "0"
    );
    eprintln!("whole test in {:?}", t0.elapsed());
}

/// Binlog files the archive lacks, purged from the server while nothing followed: the restart names
/// the hole and follows from the oldest file the server has; `verify` then reports the hole.
#[test]
fn a_binlog_purged_before_it_was_archived_is_named_as_a_gap() {
    let dir = TestDir::new();
    let home = dir.sub("store-home");
    let region = fs_region("home", &home);
    let src = MariaDb::start(&dir, "source");
    let config = dir.path().join("btar.toml");
    write_config(&config, &region, src.port, "root");
    let archived = |name: &str| is_archived(&home, name);
    let wait_archived = |name: &str, f: &Follower| {
        let t = Instant::now();
        while !archived(name) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{name} not archived within 10 s; follower said:\n{}",
                f.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    src.sql("CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(64))");
    let backup = btar_with(&config, &["backup", "create", SVC]);
    assert!(backup.status.success(), "backup: {}", describe(&backup));
    let mut f = Follower::start(&config, dir.path().join("follow-1.log"));
    src.sql("INSERT INTO shop.items VALUES (1, 'one'); FLUSH BINARY LOGS");
    wait_archived("binlog.000001", &f);
    f.kill9();
    drop(f);

    src.sql("INSERT INTO shop.items VALUES (2, 'two'); FLUSH BINARY LOGS");
    src.sql("INSERT INTO shop.items VALUES (3, 'three'); FLUSH BINARY LOGS");
    // The killed receiver's dump thread holds its file until the server notices the connection is
    // gone; PURGE skips a file in use.
    let t = Instant::now();
    loop {
        src.sql("PURGE BINARY LOGS TO 'binlog.000003'");
        if src.sql("SHOW BINARY LOGS").starts_with("binlog.000003") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "binlog.000002 never purged"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let f = Follower::start(&config, dir.path().join("follow-2.log"));
    wait_archived("binlog.000003", &f);
    let out = f.output();
    assert!(
        out.contains("binlog.000002..binlog.000002")
            && out.contains("following from binlog.000003"),
        "{out}"
    );
    drop(f);
    let verified = btar_with(
        &config,
        &["--output", "json", "verify", SVC, "--region", "home"],
    );
    assert!(
        !verified.status.success(),
        "verify missed the hole: {}",
        describe(&verified)
    );
    assert!(
        describe(&verified).contains("binlog.000002"),
        "{}",
        describe(&verified)
    );

    // An account that may list the binlog but not replicate it: refused at once, naming the grant.
    src.sql("CREATE USER 'mon'@'%'; GRANT BINLOG MONITOR ON *.* TO 'mon'@'%'");
    write_config(&config, &region, src.port, "mon");
    let t = Instant::now();
    let out = btar_with(&config, &["log-follow", "--service", SVC]);
    let err = describe(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("needs REPLICATION SLAVE"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

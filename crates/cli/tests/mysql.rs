//! MySQL/MariaDB through the CLI (issue 13, first slice): a real MariaDB started by the harness,
//! `btar backup create` (mariadb-backup's xbstream into the home region, copied to `away`), a binlog
//! file through `wal-push`/`wal-fetch`, `btar restore --region away --start` on another port with
//! the rows of the backup's consistent point, a time target outside the window refused, and a
//! flipped byte in a chunk of the secondary refused on restore. Point-in-time restore by binlog
//! replay from the secondary: to a time, to latest, to a binlog position and to a GTID
//! (`--target-lsn`), refusals outside the window and across a gap.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/mysql_world.rs"]
mod mysql_world;

use std::path::Path;
use std::time::Instant;

use btar_testkit::{MariaDb, TestDir, describe, files_under, free_port, fs_region, processes_with};
use common::btar_with;

use mysql_world::{SVC, fingerprint, restore_from_away, two_regions, write_config};

/// `btar --output json ARGS` through `run`, its JSON answer.
fn json_of(args: &[&str], run: impl FnOnce(&[&str]) -> std::process::Output) -> serde_json::Value {
    let mut a = vec!["--output", "json"];
    a.extend_from_slice(args);
    let out = run(&a);
    assert!(out.status.success(), "btar {args:?}: {}", describe(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    json_of(args, |a| btar_with(config, a))
}

/// The stderr of a run that must have failed.
fn refused(out: &std::process::Output, what: &str) -> String {
    assert!(!out.status.success(), "{what}: {}", describe(out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn mariadb_backup_copies_and_restores_from_the_secondary() {
    let dir = TestDir::new();
    let regions = vec![
        fs_region("home", &dir.sub("store-home")),
        fs_region("away", &dir.sub("store-away")),
    ];
    let t = Instant::now();
    let src = MariaDb::start(&dir, "source");
    eprintln!("source MariaDB up in {:?}", t.elapsed());
    let config = dir.path().join("btar.toml");
    write_config(&config, &regions, src.port);
    src.sql(
        "CREATE DATABASE shop; CREATE DATABASE seq; CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB; \
         INSERT INTO shop.items SELECT seq, CONCAT('item-', seq * 7) FROM seq.seq_1_to_5000",
    );
    let at_backup = fingerprint(&src);
    assert!(at_backup.starts_with("5000\t"), "{at_backup}");

    let t = Instant::now();
    let created = json(&config, &["backup", "create", SVC]);
    eprintln!("backup create (incl. copy) in {:?}", t.elapsed());
    let name = created["backup_name"].as_str().unwrap().to_string();
    let copies = created["copies"].as_array().expect("copies");
    assert_eq!(copies.len(), 1, "{created}");
    assert_eq!(copies[0]["job"]["state"], "COMPLETED", "{created}");
    assert_eq!(copies[0]["job"]["destination_region"], "away", "{created}");

    // Written after the backup: not part of its consistent point.
    src.sql("INSERT INTO shop.items VALUES (900001, 'after the backup')");
    assert_ne!(fingerprint(&src), at_backup);

    // One binlog file through the archive hook and back.
    src.sql("FLUSH BINARY LOGS");
    let binlog = src.data_dir.join("binlog.000001");
    let pushed = btar_with(
        &config,
        &["wal-push", "--service", SVC, binlog.to_str().unwrap()],
    );
    assert!(pushed.status.success(), "wal-push: {}", describe(&pushed));
    let fetched = dir.sub("fetched").join("binlog.000001");
    let got = btar_with(
        &config,
        &[
            "wal-fetch",
            "--service",
            SVC,
            "binlog.000001",
            fetched.to_str().unwrap(),
        ],
    );
    assert!(got.status.success(), "wal-fetch: {}", describe(&got));
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(&binlog).unwrap()
    );

    // Restore from the secondary on another port.
    let restore = |sub: &str, extra: &[&str]| restore_from_away(dir.path(), &config, sub, extra);
    let t = Instant::now();
    let (restored, out, _) = restore("restored", &[]);
    eprintln!("restore --start from away in {:?}", t.elapsed());
    assert!(out.status.success(), "restore: {}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["restore"]["region"], "away", "{report}");
    assert_eq!(report["restore"]["backup"], name.as_str(), "{report}");
    assert_eq!(fingerprint(&restored), at_backup);
    assert_eq!(
        restored.sql("SELECT COUNT(*) FROM shop.items WHERE id = 900001"),
        "0"
    );
    drop(restored);
    // Its directory is not empty now: a second restore there is refused, saying how to go on.
    let (_none, out, _) = restore("restored", &[]);
    let err = refused(&out, "restore into a used directory");
    assert!(
        err.contains("not empty") && err.contains("choose another --data-dir"),
        "{err}"
    );

    // A server that will not start: the error says why, the directory keeps only the server's
    // log, and the same request without the bad setting then succeeds there.
    let (_none, out, data_dir) = restore("retried", &["--set", "no-such-option=1"]);
    let err = refused(&out, "bad setting started");
    assert!(err.contains("no-such-option"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["btar-restore.err"]);
    let (again, out, _) = restore("retried", &[]);
    assert!(out.status.success(), "retry: {}", describe(&out));
    assert_eq!(fingerprint(&again), at_backup);
    drop(again);

    // A time before the backup is outside the recoverable window: refused, naming the window.
    let (_none, out, _) = restore("by-time", &["--target-time", "2026-01-01T00:00:00Z"]);
    let err = refused(&out, "time target before the backup restored");
    assert!(err.contains("outside the recoverable window"), "{err}");
    assert!(err.contains(" .. "), "{err}");

    // The secondary verifies clean; a list shows the backup in both locations.
    json(&config, &["verify", SVC, "--region", "away"]);
    let listed = json(&config, &["backup", "list", SVC]);
    assert_eq!(
        listed["backups"][0]["backup_name"],
        name.as_str(),
        "{listed}"
    );
    assert_eq!(
        listed["backups"][0]["additional_regions"][0]["status"], "COMPLETED",
        "{listed}"
    );

    // A flipped byte in one pack of the secondary: verify reports it, and the restore refuses it
    // and leaves the directory empty.
    let chunks: Vec<_> = files_under(&dir.path().join("store-away"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".pack"))
        .collect();
    assert!(!chunks.is_empty());
    let victim = &chunks[chunks.len() / 2];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(victim, bytes).unwrap();
    let verified = btar_with(&config, &["verify", SVC, "--region", "away"]);
    assert!(
        !verified.status.success(),
        "verify missed it: {}",
        describe(&verified)
    );
    let (_none, out, data_dir) = restore("tampered", &[]);
    let err = refused(&out, "tampered restore").to_lowercase();
    assert!(err.contains("damaged") || err.contains("tampered"), "{err}");
    let left = std::fs::read_dir(&data_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        left,
        0,
        "a failed restore left files in {}",
        data_dir.display()
    );
}

/// `btar` run directly (not through `runuser`), so that killing the child kills btar itself. Every
/// run of the test that uses it goes this way, so all files in the regions have one owner.
fn direct(config: &Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_btar"));
    c.arg("--config").arg(config).args(args);
    c.env_remove("BTAR_CONFIG").env_remove("RUST_LOG");
    c
}

fn direct_json(config: &Path, args: &[&str]) -> serde_json::Value {
    json_of(args, |a| direct(config, a).output().unwrap())
}

/// btar killed (SIGKILL) while mariadb-backup streams into the home region: no backup is listed,
/// mariadb-backup does not linger, and the next run completes.
#[test]
fn a_killed_mariadb_backup_leaves_nothing_visible_and_the_next_run_completes() {
    let (dir, src, config) = two_regions();
    src.sql(
        "CREATE DATABASE shop; CREATE DATABASE seq; CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB; \
         INSERT INTO shop.items SELECT seq, REPEAT(MD5(seq), 3) FROM seq.seq_1_to_600000",
    );
    let mut child = direct(&config, &["backup", "create", SVC])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Complete packs (each is written before its index).
    let packs = || {
        files_under(&dir.path().join("store-home"))
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".idx"))
            .count()
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while packs() < 3 {
        assert!(
            Instant::now() < deadline,
            "the backup never started streaming"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup finished before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let listed = direct_json(&config, &["backup", "list", SVC]);
    assert_eq!(
        listed["backups"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    let port = format!("--port={}", src.port);
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !processes_with(&["mariadb-backup", &port]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "mariadb-backup outlived btar: {:?}",
            processes_with(&["mariadb-backup", &port])
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let created = direct_json(&config, &["backup", "create", SVC]);
    assert_eq!(
        created["copies"][0]["job"]["state"], "COMPLETED",
        "{created}"
    );
    let listed = direct_json(&config, &["backup", "list", SVC]);
    assert_eq!(
        listed["backups"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

/// `CHECKSUM TABLE` and the row count/CRC fingerprint: equal iff the same data.
fn state(db: &MariaDb) -> (String, String) {
    (db.sql("CHECKSUM TABLE shop.items"), fingerprint(db))
}

/// Point-in-time restore from the secondary by binlog replay. Two backups; writes between them and
/// after; the state at a time T between the two backups recorded (with more than a second of quiet
/// either side: binlog times have one-second resolution); every closed binlog pushed with
/// `wal-push` and shipped by `btar replicate`. Restoring to T from `away` uses the first backup and
/// replays up to T; restoring to latest uses the second and replays to the end of the archive.
/// Disaster: with the source stopped and the primary location deleted, a fork from `away` holds
/// every archived transaction and none after. Targets outside the window and a missing binlog file
/// in the middle are refused, naming them.
#[test]
fn mariadb_point_in_time_restore_from_the_secondary_by_binlog_replay() {
    use std::time::Duration;
    let (dir, src, config) = two_regions();
    src.sql(
        "CREATE DATABASE shop; CREATE DATABASE seq; CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB; \
         INSERT INTO shop.items SELECT seq, CONCAT('item-', seq * 7) FROM seq.seq_1_to_2000",
    );
    let first = json(&config, &["backup", "create", SVC]);
    let first = first["backup_name"].as_str().unwrap().to_string();
    let at_first = state(&src);

    // After the first backup, before T: in binlog.000001, then a new file.
    src.sql(
        "INSERT INTO shop.items SELECT seq, CONCAT('a-', seq) FROM seq.seq_2001_to_3000; \
         UPDATE shop.items SET v = 'updated-a' WHERE id % 10 = 0; DELETE FROM shop.items WHERE id % 17 = 0",
    );
    src.sql("FLUSH BINARY LOGS");
    std::thread::sleep(Duration::from_millis(1500));
    let target = chrono::Utc::now();
    let at_target = state(&src);
    std::thread::sleep(Duration::from_millis(1500));

    // After T: in binlog.000002, a second backup, more in binlog.000003.
    src.sql(
        "INSERT INTO shop.items SELECT seq, CONCAT('b-', seq) FROM seq.seq_3001_to_4000; \
         UPDATE shop.items SET v = 'updated-b' WHERE id % 3 = 0",
    );
    let second = json(&config, &["backup", "create", SVC]);
    let second = second["backup_name"].as_str().unwrap().to_string();
    src.sql("INSERT INTO shop.items VALUES (900002, 'after the second backup')");
    src.sql("FLUSH BINARY LOGS");
    src.sql("DELETE FROM shop.items WHERE id BETWEEN 100 AND 199; INSERT INTO shop.items VALUES (900003, 'last')");
    src.sql("FLUSH BINARY LOGS");
    let last = state(&src);
    // Each restore below holds changes only binlog replay can bring.
    assert_ne!(at_target, at_first);
    assert_ne!(last, at_target);

    // Every closed binlog into the archive (binlog.000004 is the open one), then to `away`.
    for n in 1..=3 {
        let path = src.data_dir.join(format!("binlog.00000{n}"));
        let out = btar_with(
            &config,
            &["wal-push", "--service", SVC, path.to_str().unwrap()],
        );
        assert!(out.status.success(), "wal-push {n}: {}", describe(&out));
    }
    // The window ends at the last archived event (read from the file), not when the file reached
    // `away`.
    std::thread::sleep(Duration::from_millis(1500));
    let before_ship = chrono::Utc::now();
    let shipped = json(&config, &["replicate"]);
    eprintln!("replicate: {shipped}");
    let away_log = |name: &str| {
        files_under(&dir.path().join("store-away"))
            .into_iter()
            .find(|p| {
                p.to_string_lossy()
                    .ends_with(&format!("logs/binlog/{name}"))
            })
    };
    assert!(away_log("binlog.000003").is_some(), "{shipped}");
    let listed = json(&config, &["backup", "list", SVC]);
    let end = listed["pitr"]["additional_regions"][0]["pitr_range_end"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no window end for away: {listed}"));
    assert!(end > target && end < before_ship, "{listed}");

    let restore = |sub: &str, extra: &[&str]| restore_from_away(dir.path(), &config, sub, extra);
    let report = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "restore: {}", describe(out));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // To T, from the secondary: the first backup and the binlogs up to T.
    let t = Instant::now();
    let target_s = target.to_rfc3339();
    let (at_t, out, _) = restore("to-target", &["--target-time", &target_s]);
    eprintln!("restore to T from away in {:?}", t.elapsed());
    let r = report(&out);
    assert_eq!(r["restore"]["region"], "away", "{r}");
    assert_eq!(r["restore"]["backup"], first.as_str(), "{r}");
    assert!(
        r["restore"]["reached"]["lsn"]
            .as_str()
            .is_some_and(|l| l.starts_with("binlog.000002:")),
        "{r}"
    );
    let last_commit = r["restore"]["reached"]["last_commit_time"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("no last commit: {r}"));
    assert!(last_commit < target, "{r}");
    assert_eq!(state(&at_t), at_target);
    drop(at_t);

    // To latest: the second backup and every archived binlog after it.
    let t = Instant::now();
    let (latest, out, _) = restore("to-latest", &[]);
    eprintln!("restore to latest from away in {:?}", t.elapsed());
    let r = report(&out);
    assert_eq!(r["restore"]["backup"], second.as_str(), "{r}");
    assert_eq!(state(&latest), last);
    drop(latest);

    // Fork & restore from the secondary to T: the same point, a new service.
    let fork_dir = dir.path().join("fork");
    let fork_port = free_port();
    let forked = json(
        &config,
        &[
            "fork",
            SVC,
            "--name",
            "shop-dr",
            "--source",
            "secondary",
            "--target-time",
            &target_s,
            "--data-dir",
            fork_dir.to_str().unwrap(),
            "--port",
            &fork_port.to_string(),
        ],
    );
    let fork = MariaDb::adopt(&fork_dir, fork_port);
    eprintln!("fork: {forked}");
    assert_eq!(state(&fork), at_target, "{forked}");
    drop(fork);

    // Disaster: a change the archive never got (in the open binlog), then the source server stopped
    // and the primary location destroyed. A fork from the secondary to latest holds every
    // transaction up to the last archived binlog event, and none after.
    src.sql("INSERT INTO shop.items VALUES (900004, 'never archived')");
    assert_ne!(state(&src), last);
    let mut src = src;
    src.stop();
    std::fs::remove_dir_all(dir.path().join("store-home")).unwrap();
    let dr_dir = dir.path().join("dr");
    let dr_port = free_port();
    let dr = json(
        &config,
        &[
            "fork",
            SVC,
            "--name",
            "shop-dr2",
            "--source",
            "secondary",
            "--data-dir",
            dr_dir.to_str().unwrap(),
            "--port",
            &dr_port.to_string(),
        ],
    );
    let dr_db = MariaDb::adopt(&dr_dir, dr_port);
    assert_eq!(state(&dr_db), last, "{dr}");
    drop(dr_db);

    // Outside the window, before the first backup and after the archive: refused, naming it; the
    // directory is left empty.
    let (start, end) = (
        (target - chrono::Duration::hours(1)).to_rfc3339(),
        (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
    );
    for (sub, t) in [("too-early", &start), ("too-late", &end)] {
        let (_none, out, data_dir) = restore(sub, &["--target-time", t]);
        let err = refused(&out, sub);
        eprintln!("{sub}: {err}");
        assert!(err.contains("outside the recoverable window"), "{err}");
        assert!(err.contains("away") && err.contains(" .. "), "{err}");
        assert_eq!(
            std::fs::read_dir(&data_dir).map(|d| d.count()).unwrap_or(0),
            0
        );
    }

    // binlog.000002 lost from the secondary's archive: neither T nor latest can be reached.
    std::fs::remove_file(away_log("binlog.000002").unwrap()).unwrap();
    // `verify` names the hole, for the location and for the backup whose own file it is.
    for extra in [vec![], vec!["--backup", second.as_str()]] {
        let mut args = vec!["--output", "json", "verify", SVC, "--region", "away"];
        args.extend(extra);
        let out = btar_with(&config, &args);
        assert_eq!(out.status.code(), Some(2), "verify: {}", describe(&out));
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.contains("logs/binlog/binlog.000002"), "{report}");
    }
    for (sub, extra) in [
        ("gap-target", vec!["--target-time", &target_s]),
        ("gap-latest", vec![]),
    ] {
        let (_none, out, data_dir) = restore(sub, &extra);
        let err = refused(&out, sub);
        eprintln!("{sub}: {err}");
        assert!(
            err.contains("binlog.000002") && err.contains("missing"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(&data_dir).map(|d| d.count()).unwrap_or(0),
            0
        );
    }
}

/// Restores to a binlog position and to a GTID (`--target-lsn`) from the secondary. After a backup,
/// three transactions: T1 in binlog.000001, then T2 and T3 in binlog.000002; the position (`SHOW
/// MASTER STATUS`) and `@@gtid_binlog_pos` recorded between T2 and T3. Both targets restore exactly
/// T1 and T2, replaying across two files and cutting the second; a position inside T2 (its commit
/// event) restores T1 only; a file that is not archived, a
/// position past the end of an archived file, one that is no event boundary, and a GTID past the
/// archive are refused, naming what is wrong.
#[test]
fn mariadb_restores_to_a_binlog_position_and_to_a_gtid_from_the_secondary() {
    let (dir, src, config) = two_regions();
    src.sql(
        "CREATE DATABASE shop; CREATE DATABASE seq; CREATE TABLE shop.items (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB; \
         INSERT INTO shop.items SELECT seq, CONCAT('item-', seq) FROM seq.seq_1_to_100",
    );
    let t = Instant::now();
    let backup = json(&config, &["backup", "create", SVC]);
    eprintln!("backup create (incl. copy) in {:?}", t.elapsed());
    let backup = backup["backup_name"].as_str().unwrap().to_string();
    let at_backup = fingerprint(&src);

    // T1, a rotation, T2: the targets; then T3, after them.
    src.sql("INSERT INTO shop.items SELECT seq, 't1' FROM seq.seq_1001_to_1010");
    let after_t1 = fingerprint(&src);
    src.sql("FLUSH BINARY LOGS");
    src.sql("INSERT INTO shop.items SELECT seq, 't2' FROM seq.seq_2001_to_2010");
    let status = src.sql("SHOW MASTER STATUS");
    let mut f = status.split('\t');
    let position = format!("{}:{}", f.next().unwrap(), f.next().unwrap());
    assert!(position.starts_with("binlog.000002:"), "{status}");
    let gtid = src.sql("SELECT @@gtid_binlog_pos");
    // T2's commit event: a position inside T2.
    let events = src.sql("SHOW BINLOG EVENTS IN 'binlog.000002'");
    let xid = events
        .lines()
        .rfind(|l| l.split('\t').nth(2) == Some("Xid"))
        .and_then(|l| l.split('\t').nth(1))
        .unwrap_or_else(|| panic!("no Xid event: {events}"));
    let inside_t2 = format!("binlog.000002:{xid}");
    let after_t2 = fingerprint(&src);
    src.sql("INSERT INTO shop.items SELECT seq, 't3' FROM seq.seq_3001_to_3010");
    src.sql("FLUSH BINARY LOGS");
    assert!(after_t2.starts_with("120\t"), "{after_t2}");
    assert_ne!(fingerprint(&src), after_t2);
    assert_ne!(after_t1, after_t2);
    assert_ne!(at_backup, after_t1);
    eprintln!("target: {position}, GTID {gtid}");

    for n in 1..=2 {
        let path = src.data_dir.join(format!("binlog.00000{n}"));
        let out = btar_with(
            &config,
            &["wal-push", "--service", SVC, path.to_str().unwrap()],
        );
        assert!(out.status.success(), "wal-push {n}: {}", describe(&out));
    }
    json(&config, &["replicate"]);

    let restore = |sub: &str, target: &str| {
        let t = Instant::now();
        let r = restore_from_away(dir.path(), &config, sub, &["--target-lsn", target]);
        eprintln!("restore --target-lsn {target} in {:?}", t.elapsed());
        r
    };

    // To the position, then to the GTID: T1 and T2, not T3; both reach the same point.
    for (sub, target) in [("to-position", &position), ("to-gtid", &gtid)] {
        let (restored, out, _) = restore(sub, target);
        assert!(out.status.success(), "{sub}: {}", describe(&out));
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["restore"]["region"], "away", "{r}");
        assert_eq!(r["restore"]["backup"], backup.as_str(), "{r}");
        assert_eq!(r["restore"]["reached"]["lsn"], position.as_str(), "{r}");
        assert_eq!(fingerprint(&restored), after_t2, "{sub}");
        assert_eq!(
            restored.sql("SELECT COUNT(*) FROM shop.items WHERE v = 't3'"),
            "0"
        );
        drop(restored);
    }
    // Inside T2 (before its commit event): T2 is not committed, T1 is.
    let (restored, out, _) = restore("inside-t2", &inside_t2);
    assert!(out.status.success(), "inside T2: {}", describe(&out));
    assert_eq!(fingerprint(&restored), after_t1);
    drop(restored);

    // Refusals, each before anything is written, naming what is wrong.
    let (file, pos) = position.split_once(':').unwrap();
    let past = format!("{file}:{}", pos.parse::<u64>().unwrap() + 100_000_000);
    let inside = format!("{file}:{}", pos.parse::<u64>().unwrap() + 1);
    let (domain_server, seq) = gtid.rsplit_once('-').unwrap();
    let beyond = format!("{domain_server}-{}", seq.parse::<u64>().unwrap() + 1000);
    for (sub, target, want) in [
        (
            "not-archived",
            "binlog.000009:4",
            vec!["binlog.000003", "not archived", "away"],
        ),
        (
            "past-end",
            past.as_str(),
            vec!["past the end of binlog.000002"],
        ),
        (
            "no-boundary",
            inside.as_str(),
            vec!["not an event boundary"],
        ),
        (
            "gtid-beyond",
            beyond.as_str(),
            vec![beyond.as_str(), "not in the binlog archived", "away"],
        ),
        ("not-a-target", "0/3000060", vec!["FILE:POS", "D-S-N"]),
        (
            "other-family",
            "mysql-bin.000002:4",
            vec!["no binlog file of this service", "binlog.NNNNNN"],
        ),
    ] {
        let (_none, out, data_dir) = restore(sub, target);
        let err = refused(&out, sub);
        eprintln!("{sub}: {err}");
        for w in want {
            assert!(err.contains(w), "{sub}: `{w}` not in {err}");
        }
        assert_eq!(
            std::fs::read_dir(&data_dir).map(|d| d.count()).unwrap_or(0),
            0
        );
    }

    // binlog.000003 archived, binlog.000002 lost from the secondary: a position in 000003 is behind
    // the gap, refused naming the missing file.
    src.sql("INSERT INTO shop.items VALUES (4001, 't4')");
    src.sql("FLUSH BINARY LOGS");
    let path = src.data_dir.join("binlog.000003");
    let out = btar_with(
        &config,
        &["wal-push", "--service", SVC, path.to_str().unwrap()],
    );
    assert!(out.status.success(), "wal-push 3: {}", describe(&out));
    json(&config, &["replicate"]);
    let lost = files_under(&dir.path().join("store-away"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("logs/binlog/binlog.000002"))
        .unwrap();
    std::fs::remove_file(lost).unwrap();
    let (_none, out, _) = restore("behind-gap", "binlog.000003:4");
    let err = refused(&out, "behind-gap");
    eprintln!("behind-gap: {err}");
    assert!(
        err.contains("binlog.000002") && err.contains("missing"),
        "{err}"
    );
}

/// A restore drill of a MariaDB service from the secondary: the server restored on a free port
/// answers the validation query with the source's rows; a query that returns nothing is FAILED
/// (exit 3); either way no restored server is left running.
#[test]
fn a_mariadb_drill_restores_validates_and_cleans_up() {
    let (_dir, src, config) = two_regions();
    src.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY) ENGINE=InnoDB; \
         INSERT INTO shop.items VALUES (1), (2), (3)",
    );
    json(&config, &["backup", "create", SVC]);

    let r = json(
        &config,
        &[
            "drill",
            "run",
            SVC,
            "--region",
            "away",
            "--query",
            "SELECT COUNT(*) FROM shop.items",
            "--timeout",
            "120s",
        ],
    );
    assert_eq!(r["state"], "SUCCESSFUL", "{r}");
    assert!(
        r["message"].as_str().unwrap().ends_with("returned 3"),
        "{r}"
    );

    let out = btar_with(
        &config,
        &[
            "--output",
            "json",
            "drill",
            "run",
            SVC,
            "--query",
            "SELECT id FROM shop.items WHERE id = 99",
            "--timeout",
            "120s",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["state"], "FAILED", "{r}");
    assert!(processes_with(&["mariadbd", "btar-drill-"]).is_empty());
    assert_eq!(src.sql("SELECT COUNT(*) FROM shop.items"), "3");
}

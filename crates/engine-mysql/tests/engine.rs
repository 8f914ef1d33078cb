//! The MySQL/MariaDB engine behind the engine trait, without the CLI: the binlog archive (push,
//! idempotent re-push, fetch, gaps by the numbered-file watermark) and a server without binary
//! logging refused before any backup is committed; a time target past the archived binlog refused;
//! the backup a binlog position or GTID target restores, and such targets refused.
#![allow(clippy::unwrap_used)]

use btar_engine::{
    AgentSettings, BackupOptions, Engine, EngineError, NoProgress, RestoreRequest, Target,
};
use btar_engine_mysql::MysqlEngine;
use btar_format::{BackupWriter, Location, LogPut, WriterOptions};
use btar_region::{CancellationToken, Region};
use btar_testkit::{MariaDb, TestDir, memory_region};

async fn location() -> Location {
    let region = Region::open(&memory_region("home"), CancellationToken::new()).unwrap();
    Location::create(&region, "shop", "mysql", None)
        .await
        .unwrap()
}

#[tokio::test]
async fn binlog_files_are_archived_fetched_and_gaps_named() {
    let loc = location().await;
    let dir = tempfile::tempdir().unwrap();
    for n in [1u8, 2, 4] {
        let p = dir.path().join(format!("binlog.00000{n}"));
        std::fs::write(&p, vec![n; 5000]).unwrap();
        let pushed = MysqlEngine.push_log(&loc, &p).await.unwrap();
        assert_eq!(
            (pushed.timeline.as_str(), pushed.put),
            ("binlog", LogPut::Stored)
        );
    }
    // The archive hook retries after a crash: the same content again is fine.
    let again = MysqlEngine
        .push_log(&loc, &dir.path().join("binlog.000002"))
        .await
        .unwrap();
    assert_eq!(again.put, LogPut::AlreadyPresent);
    // An index file is not a binlog.
    let index = dir.path().join("binlog.index");
    std::fs::write(&index, "./binlog.000001\n").unwrap();
    assert!(matches!(
        MysqlEngine.push_log(&loc, &index).await,
        Err(EngineError::Invalid(_))
    ));

    let dest = dir.path().join("fetched");
    assert!(
        MysqlEngine
            .fetch_log(&loc, "binlog.000002", &dest)
            .await
            .unwrap()
    );
    assert_eq!(std::fs::read(&dest).unwrap(), vec![2u8; 5000]);
    assert!(
        !MysqlEngine
            .fetch_log(&loc, "binlog.000003", &dest)
            .await
            .unwrap()
    );

    let gaps = MysqlEngine.log_gaps(&loc, None).await.unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(
        gaps[0].key.ends_with("logs/binlog/binlog.000003"),
        "{gaps:?}"
    );
    assert!(gaps[0].reason.contains("binlog.000002"), "{gaps:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_binary_logging_is_refused_before_any_backup() {
    let dir = TestDir::new();
    let db = MariaDb::start_with(&dir, "nobinlog", false);
    let loc = location().await;
    let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
    let settings = AgentSettings(serde_json::json!({"host": "127.0.0.1", "port": db.port}));
    MysqlEngine.check_settings(&settings).unwrap();
    let err = MysqlEngine
        .backup(&writer, &settings, BackupOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("log_bin"), "{err}");
    assert!(loc.list_backups().await.unwrap().is_empty());
    assert_eq!(writer.stats().snapshot().logical_bytes, 0);

    // An unreachable server is a retryable failure, not a refusal.
    let gone =
        AgentSettings(serde_json::json!({"host": "127.0.0.1", "port": btar_testkit::free_port()}));
    let err = MysqlEngine
        .backup(&writer, &gone, BackupOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

/// The manifest records the binlog position and GTID of the backup's consistent point: with no
/// writes during the backup, exactly what the server reports as its binlog head. Taken by an account
/// with a password.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_records_its_consistent_point_in_the_manifest() {
    let dir = TestDir::new();
    let db = MariaDb::start(&dir, "source");
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1), (2), (3)");
    let head = db.sql("SHOW MASTER STATUS");
    let gtid = db.sql("SELECT @@gtid_binlog_pos");
    // A backup account with a password that needs quoting: it reaches the tools through a
    // private option file, never their command line.
    db.sql(r#"SET sql_log_bin = 0; CREATE USER 'bk'@'127.0.0.1' IDENTIFIED BY 'p w"\\x#1'; GRANT ALL ON *.* TO 'bk'@'127.0.0.1'"#);
    let loc = location().await;
    let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
    let settings = AgentSettings(serde_json::json!({
        "host": "127.0.0.1", "port": db.port, "user": "bk", "password": "p w\"\\x#1"
    }));
    let wrong = AgentSettings(serde_json::json!({
        "host": "127.0.0.1", "port": db.port, "user": "bk", "password": "p w\"x#1"
    }));
    let denied = MysqlEngine
        .backup(&writer, &wrong, BackupOptions::default(), &NoProgress)
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("Access denied"), "{denied}");
    let m = MysqlEngine
        .backup(&writer, &settings, BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        loc.list_backups().await.unwrap(),
        vec![m.backup_name.clone()]
    );
    assert_eq!(m.engine, "mysql");
    // The stream's files, each its own entry (pages at their offsets), not one stream entry.
    let paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    for p in [
        "ibdata1",
        "shop/t.frm",
        "xtrabackup_checkpoints",
        "backup-my.cnf",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    // A table created shortly before the backup comes as `t.new`, renamed by --prepare.
    assert!(
        paths.contains(&"shop/t.ibd") || paths.contains(&"shop/t.new"),
        "{paths:?}"
    );
    assert!(
        !paths.contains(&btar_engine_mysql::STREAM_FILE),
        "{paths:?}"
    );
    let ibdata = m.files.iter().find(|f| f.path == "ibdata1").unwrap();
    assert!(ibdata.size > 1 << 20, "{:?}", ibdata.size);
    let meta = btar_engine_mysql::MysqlMeta::of(&m).unwrap();
    assert_eq!(meta.stream_file, None);
    let mut f = head.split('\t');
    assert_eq!(Some(meta.binlog.file.as_str()), f.next(), "{head}");
    assert_eq!(
        f.next().and_then(|p| p.parse().ok()),
        Some(meta.binlog.position),
        "{head}"
    );
    assert_eq!(meta.binlog.gtid.as_deref(), Some(gtid.as_str()));
    let point = MysqlEngine.backup_point(&m).unwrap();
    assert_eq!(point.stop, meta.binlog.to_string());
    let (window, backups) = MysqlEngine.window(&loc).await.unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!(window.latest, Some(meta.backup_stop_time));
}

fn request(target: Target, data_dir: &std::path::Path) -> RestoreRequest {
    RestoreRequest {
        target,
        backup: None,
        data_dir: data_dir.to_path_buf(),
        btar: "btar".into(),
        archive: None,
        port: None,
        loopback_only: true,
        settings: vec![],
        start: false,
        agent: None,
        parallel: 2,
        promote_timeout: std::time::Duration::from_secs(30),
    }
}

/// Between two backups with no binlog archived, a time is not recoverable: changes before it may sit
/// in the binlog not archived yet, so the restore refuses it rather than restoring the older backup
/// short. Once the closed binlog is archived, the same target is planned (and, without a server to
/// replay into, asks for `--start`). Nothing is written to the restore directory either time.
#[tokio::test(flavor = "multi_thread")]
async fn a_time_past_the_archived_binlog_is_refused_until_the_binlog_is_archived() {
    let dir = TestDir::new();
    let db = MariaDb::start(&dir, "source");
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1)");
    let loc = location().await;
    let settings = AgentSettings(serde_json::json!({"host": "127.0.0.1", "port": db.port}));
    let backup = || async {
        let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
        MysqlEngine
            .backup(&writer, &settings, BackupOptions::default(), &NoProgress)
            .await
            .unwrap()
    };
    backup().await;
    db.sql("INSERT INTO shop.t VALUES (2)");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let target = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    backup().await;
    let (window, _) = MysqlEngine.window(&loc).await.unwrap();
    assert!(window.earliest < Some(target) && Some(target) < window.latest);

    let out = tempfile::tempdir().unwrap();
    let data_dir = out.path().join("restored");
    let req = request(Target::Time(target), &data_dir);
    let err = MysqlEngine
        .restore(&loc, &req, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Invalid(_)), "{err}");
    assert!(
        err.to_string().contains("binlog.000001") && err.to_string().contains("not archived"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&data_dir).unwrap().count(), 0);

    db.sql("FLUSH BINARY LOGS");
    MysqlEngine
        .push_log(&loc, &db.data_dir.join("binlog.000001"))
        .await
        .unwrap();
    let err = MysqlEngine
        .restore(&loc, &req, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--start"), "{err}");
    assert_eq!(std::fs::read_dir(&data_dir).unwrap().count(), 0);
}

/// Replay reaches the restored server as btar reached the source: an account with a password (in
/// a private option file, never on a command line). Latest = the backup plus the archived binlog.
#[tokio::test(flavor = "multi_thread")]
async fn replay_into_the_restored_server_uses_the_sources_account_and_password() {
    let dir = TestDir::new();
    let db = MariaDb::start(&dir, "source");
    db.sql(r#"CREATE USER 'bk'@'127.0.0.1' IDENTIFIED BY 'p w"\\x#1'; GRANT ALL ON *.* TO 'bk'@'127.0.0.1';
              CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1), (2)"#);
    let settings = AgentSettings(serde_json::json!({
        "host": "127.0.0.1", "port": db.port, "user": "bk", "password": "p w\"\\x#1"
    }));
    let loc = location().await;
    let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
    MysqlEngine
        .backup(&writer, &settings, BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    db.sql(
        "INSERT INTO shop.t VALUES (3), (4); DELETE FROM shop.t WHERE id = 1; FLUSH BINARY LOGS",
    );
    MysqlEngine
        .push_log(&loc, &db.data_dir.join("binlog.000001"))
        .await
        .unwrap();
    let data_dir = dir.path().join("restored");
    let port = btar_testkit::free_port();
    let req = RestoreRequest {
        start: true,
        port: Some(port),
        agent: Some(settings.clone()),
        ..request(Target::Latest, &data_dir)
    };
    let out = MysqlEngine.restore(&loc, &req, &NoProgress).await;
    let restored = MariaDb::adopt(&data_dir, port);
    let out = out.unwrap();
    let reached = out.reached.unwrap();
    assert!(reached.lsn.starts_with("binlog.000001:"), "{reached:?}");
    assert!(reached.last_commit_time.is_some(), "{reached:?}");
    // The account's password is not kept in what a fork would register.
    assert!(out.agent.is_some_and(|a| a.0.get("password").is_none()));
    assert_eq!(
        restored.sql("SELECT GROUP_CONCAT(id ORDER BY id) FROM shop.t"),
        "2,3,4"
    );
}

/// InnoDB pages at their own offsets: after a few rows of a 20,000-row table change, the next backup
/// stores the changed pages and the redo log copied during the backup, not the table again (stored as
/// one stream, every page after the first change would shift and be new).
#[tokio::test]
async fn an_incremental_backup_stores_changed_pages_only() {
    let dir = TestDir::new();
    let db = MariaDb::start(&dir, "source");
    db.sql(
        "SET SESSION max_recursive_iterations = 100000; \
         CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO shop.t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) \
         SELECT n, REPEAT(MD5(n), 6) FROM s; \
         FLUSH TABLES shop.t FOR EXPORT; UNLOCK TABLES",
    );
    let settings = AgentSettings(serde_json::json!({"host": "127.0.0.1", "port": db.port}));
    let loc = location().await;
    let backup = || async {
        let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
        MysqlEngine
            .backup(&writer, &settings, BackupOptions::default(), &NoProgress)
            .await
            .unwrap()
    };
    let full = backup().await;
    // Flushed, so the change is in the table's pages and not only in the redo log.
    db.sql(
        "UPDATE shop.t SET v = 'changed' WHERE id IN (5, 5000, 15000); \
         FLUSH TABLES shop.t FOR EXPORT; UNLOCK TABLES",
    );
    let incr = backup().await;
    let table = |m: &btar_format::Manifest| {
        m.files
            .iter()
            .find(|f| f.path == "shop/t.ibd" || f.path == "shop/t.new")
            .unwrap()
            .clone()
    };
    let size = table(&full).size;
    assert!(size >= 4 << 20, "{size}");
    // Blocks of the table the incremental stored anew: those in packs the full backup did not have.
    let before: std::collections::HashSet<_> = full.packs.iter().collect();
    let new_blocks: u32 = table(&incr)
        .extents
        .iter()
        .filter(|e| !before.contains(&incr.packs[e.pack() as usize]))
        .map(|e| e.count())
        .sum();
    let blocks = size.div_ceil(8192);
    eprintln!(
        "table: {blocks} blocks, {new_blocks} new in the incremental; whole backups: full {} B stored, \
         incremental {} B ({} new blocks of {}, most of them the redo log copied during the backup)",
        full.stats.new_stored_bytes,
        incr.stats.new_stored_bytes,
        incr.stats.new_chunks,
        incr.stats.chunk_refs
    );
    // Three rows on three pages of 16 KiB, plus the pages InnoDB updates alongside (page headers,
    // the index root): a few dozen blocks at most, not the table again.
    assert!(
        (1..=40).contains(&new_blocks),
        "{new_blocks} of {blocks} blocks new"
    );
}

/// Which backup a position or GTID target restores, and the targets refused before anything is
/// written: two backups (A in binlog.000001, B in binlog.000002), transactions in two GTID domains
/// after B. Without `--start`, a planned target that needs replay asks for it, naming the backup
/// chosen; the GTID of B's own point restores B with nothing to replay; refusals name the oldest
/// backup's point, or the transaction that makes a GTID list no state of the binlog.
#[tokio::test(flavor = "multi_thread")]
async fn position_and_gtid_targets_choose_the_backup_before_them() {
    let dir = TestDir::new();
    let db = MariaDb::start(&dir, "source");
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY); INSERT INTO shop.t VALUES (1)");
    let loc = location().await;
    let settings = AgentSettings(serde_json::json!({"host": "127.0.0.1", "port": db.port}));
    let backup = || async {
        let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
        let m = MysqlEngine
            .backup(&writer, &settings, BackupOptions::default(), &NoProgress)
            .await
            .unwrap();
        m.backup_name
    };
    let first = backup().await;
    let gtid_a = db.sql("SELECT @@gtid_binlog_pos");
    db.sql("INSERT INTO shop.t VALUES (2)");
    let status = db.sql("SHOW MASTER STATUS");
    let mut f = status.split('\t');
    let pos_1 = format!("{}:{}", f.next().unwrap(), f.next().unwrap());
    let gtid_1 = db.sql("SELECT @@gtid_binlog_pos");
    db.sql("FLUSH BINARY LOGS");
    let second = backup().await;
    // Domain 0 twice, then domain 1: `0-1-N,1-1-1` with N the first of the two is no state.
    db.sql("INSERT INTO shop.t VALUES (3)");
    let d0_first = db.sql("SELECT @@gtid_binlog_pos");
    db.sql("INSERT INTO shop.t VALUES (4)");
    db.sql("SET SESSION gtid_domain_id = 1; INSERT INTO shop.t VALUES (5)");
    let last = db.sql("SELECT @@gtid_binlog_pos");
    db.sql("FLUSH BINARY LOGS");
    for n in 1..=2 {
        MysqlEngine
            .push_log(&loc, &db.data_dir.join(format!("binlog.00000{n}")))
            .await
            .unwrap();
    }
    eprintln!("A at {gtid_a}, T at {pos_1} {gtid_1}; {d0_first}; end {last}");

    let out = tempfile::tempdir().unwrap();
    let data_dir = out.path().join("restored");
    let try_target = |t: String| {
        let (loc, req) = (&loc, request(Target::Position(t.clone()), &data_dir));
        async move {
            let err = MysqlEngine
                .restore(loc, &req, &NoProgress)
                .await
                .unwrap_err();
            assert!(matches!(err, EngineError::Invalid(_)), "{err}");
            eprintln!("{t}: {err}");
            err.to_string()
        }
    };
    // Planned (and asking for --start) from the backup before the target.
    for (t, from) in [
        (pos_1.clone(), &first),
        (last.clone(), &second),
        ("binlog.000002:4".to_string(), &first),
    ] {
        let err = try_target(t.clone()).await;
        assert!(
            err.contains(&format!("backup `{from}`")) && err.contains("--start"),
            "{t}: {err}"
        );
    }
    // The GTID of B's own point: B itself, with nothing to replay (so no --start needed).
    let at_b = out.path().join("at-b");
    let done = MysqlEngine
        .restore(
            &loc,
            &request(Target::Position(gtid_1.clone()), &at_b),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(done.backup, second);
    // Before the oldest backup's point: refused, naming it.
    let (dom_srv, seq) = gtid_a.rsplit_once('-').unwrap();
    let before_a = format!("{dom_srv}-{}", seq.parse::<u64>().unwrap() - 1);
    for t in [before_a, "binlog.000001:4".to_string()] {
        let err = try_target(t.clone()).await;
        assert!(
            err.contains("precedes") && err.contains(&first) && err.contains(&gtid_a),
            "{t}: {err}"
        );
    }
    // A list the binlog never was at.
    let (_, seq) = d0_first.rsplit_once('-').unwrap();
    let err = try_target(format!("{d0_first},1-1-1")).await;
    let next = format!("0-1-{}", seq.parse::<u64>().unwrap() + 1);
    assert!(
        err.contains("no state the binlog passed through") && err.contains(&next),
        "{err}"
    );
    // A server id the binlog does not have at that sequence number.
    let err = try_target(gtid_1.replace("0-1-", "0-7-")).await;
    assert!(err.contains("is not in the binlog"), "{err}");
    assert_eq!(
        std::fs::read_dir(&data_dir).map(|d| d.count()).unwrap_or(0),
        0
    );
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! PostgreSQL end to end: base backup under load, continuous WAL archive, restore to latest and to a
//! time between two backups — against the local filesystem and the S3 server. Assertions are on data:
//! fingerprints of the pgbench tables and which `marks` rows exist.

mod common;

use std::time::Duration;

use common::{Backend, World, mark, marks};

fn pitr_between_two_backups(backend: Backend) {
    let w = World::with_cluster(backend);
    let pg = w.pg();
    pg.pgbench(&["-i", "-s", "2", "-q"]);
    mark(pg, "before-b1");

    // Backup 1 under concurrent writes.
    let mut load = pg
        .pgbench_cmd(&["-c", "2", "-T", "6", "-n"])
        .spawn()
        .expect("pgbench");
    std::thread::sleep(Duration::from_millis(500));
    let b1 = w.backup();
    assert!(load.wait().expect("pgbench").success());

    mark(pg, "after-b1");
    let at_target = pg.fingerprint();
    // Segments one after another before the target, so that the recovery to it asks for several
    // in a row and gets the later ones from wal-fetch's spool.
    for _ in 0..3 {
        pg.psql("CREATE TABLE IF NOT EXISTS filler (x int); INSERT INTO filler VALUES (1)");
        pg.switch_and_archive();
    }
    std::thread::sleep(Duration::from_millis(1100));
    let target = pg.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(1100));

    pg.pgbench(&["-t", "200", "-n"]);
    mark(pg, "before-b2");
    let b2 = w.backup();
    assert_ne!(b1, b2);
    mark(pg, "after-b2");
    pg.pgbench(&["-t", "100", "-n"]);
    let latest = pg.fingerprint();
    let latest_marks = marks(pg);
    pg.switch_and_archive();

    assert_eq!(w.backup_names(), vec![b1.clone(), b2.clone()]);

    // Latest: every committed row, through backup 2 and the archived WAL after it.
    let (r, report) = w.restore("restore-latest", &[]);
    assert_eq!(report["restore"]["backup"], b2.as_str());
    assert_eq!(r.fingerprint(), latest);
    assert_eq!(marks(&r), latest_marks);
    drop(r);

    // A time between the two backups: backup 1 plus WAL replay up to the target, nothing after —
    // with segments delivered from the spool, checked there, and the same rows.
    let hits_before = w.spool_hits().len();
    let (r, report) = w.restore("restore-pitr", &["--target-time", &target]);
    assert!(
        w.spool_hits().len() > hits_before,
        "the recovery got no segment from the spool"
    );
    assert_eq!(report["restore"]["backup"], b1.as_str(), "{report}");
    assert_eq!(r.fingerprint(), at_target);
    assert_eq!(marks(&r), vec!["before-b1", "after-b1"]);
    let writable = r.psql("SELECT NOT pg_is_in_recovery()");
    assert_eq!(writable, "t", "restored server must be promoted");
}

#[test]
fn pitr_between_two_backups_on_filesystem() {
    pitr_between_two_backups(Backend::Fs);
}

#[test]
fn pitr_between_two_backups_on_s3() {
    pitr_between_two_backups(Backend::S3);
}

/// Restore, promote, keep archiving on the new timeline, back up the fork, and restore that timeline.
#[test]
fn timeline_switch_then_restore_new_timeline() {
    let mut w = World::with_cluster(Backend::Fs);
    {
        let pg = w.pg();
        pg.pgbench(&["-i", "-s", "1", "-q"]);
        mark(pg, "tl1");
        w.backup();
        mark(pg, "tl1-after-backup");
        pg.switch_and_archive();
    }
    // The old primary is retired; its replacement archives into the same service.
    w.pg.as_mut().unwrap().stop();
    let (r, report) = w.restore("tl2", &["--archive"]);
    let tl = report["restore"]["reached"]["timeline"].as_u64().unwrap();
    assert!(tl >= 2, "promotion must start a new timeline: {report}");
    assert_eq!(marks(&r), vec!["tl1", "tl1-after-backup"]);

    mark(&r, "tl2");
    w.write_config(&r.conninfo());
    let b = w.backup();
    mark(&r, "tl2-after-backup");
    r.pgbench(&["-t", "50", "-n"]);
    let want = r.fingerprint();
    r.switch_and_archive();

    let (r2, report) = w.restore("tl3", &[]);
    assert_eq!(report["restore"]["backup"], b.as_str());
    assert!(
        report["restore"]["reached"]["timeline"].as_u64().unwrap() > tl,
        "{report}"
    );
    assert_eq!(
        marks(&r2),
        vec!["tl1", "tl1-after-backup", "tl2", "tl2-after-backup"]
    );
    assert_eq!(r2.fingerprint(), want);
}

//! The plan from plain facts: no store, no clock.

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

fn ago(days: i64) -> DateTime<Utc> {
    now() - TimeDelta::days(days)
}

fn receiving(keep_days: u32) -> Policy {
    Policy {
        keep_days,
        receiving: true,
    }
}

fn retired(keep_days: u32) -> Policy {
    Policy {
        keep_days,
        receiving: false,
    }
}

/// A sound backup completed `days` ago, started an hour earlier at log `first`, naming `chunks`.
fn backup(name: &str, days: i64, first: u64, chunks: &[u8]) -> ListedBackup {
    let completed_at = ago(days);
    ListedBackup::Sound(BackupFacts {
        name: name.into(),
        completed_at,
        first_log: Some(FirstLog {
            position: first,
            started_at: completed_at - TimeDelta::hours(1),
        }),
        chunks: chunks.iter().map(|&n| chunk_id(n)).collect(),
    })
}

fn damaged(name: &str) -> ListedBackup {
    ListedBackup::Damaged { name: name.into() }
}

/// A segment of timeline 1 at `position`, archived `days` ago.
fn seg(position: u64, days: i64) -> LogFact {
    seg_on("00000001", position, days)
}

fn seg_on(timeline: &str, position: u64, days: i64) -> LogFact {
    LogFact {
        timeline: timeline.into(),
        name: format!("{timeline}{position:016X}"),
        position: Some(position),
        last_modified: ago(days),
    }
}

/// A log file outside the sequence (history, backup label, partial segment).
fn outside(name: &str, days: i64) -> LogFact {
    LogFact {
        timeline: "00000001".into(),
        name: name.into(),
        position: None,
        last_modified: ago(days),
    }
}

fn chunk_id(n: u8) -> ChunkId {
    ChunkId::from_bytes([n; 32])
}

fn chunk(n: u8, age: TimeDelta) -> ChunkFact {
    ChunkFact {
        key: format!("chunks/{n:02x}"),
        id: chunk_id(n),
        last_modified: now() - age,
        superseded: None,
    }
}

/// The marker a repack left beside pack `n`, `age` ago.
fn marker(n: u8, age: TimeDelta) -> ChunkFact {
    ChunkFact {
        key: format!("packs/{n:02x}.superseded"),
        superseded: Some(now() - age),
        ..chunk(n, age)
    }
}

/// [`plan`] at [`now`], checked against [`needs`]: a listing it says is not needed changes nothing.
fn run(
    policy: Policy,
    backups: &[ListedBackup],
    logs: &[LogFact],
    chunks: &[ChunkFact],
) -> RetentionPlan {
    let p = plan(backups, logs, chunks, policy, now());
    let n = needs(backups, policy, now());
    assert!(n.logs || p.logs.is_empty(), "{n:?} {p:#?}");
    assert!(n.chunks || p.chunks.is_empty(), "{n:?} {p:#?}");
    p
}

fn deleted(p: &RetentionPlan) -> Vec<&str> {
    p.backups.iter().map(|b| b.name.as_str()).collect()
}

fn deleted_logs(p: &RetentionPlan) -> Vec<&str> {
    p.logs.iter().map(|l| l.name.as_str()).collect()
}

fn names(logs: &[LogFact]) -> Vec<&str> {
    logs.iter().map(|l| l.name.as_str()).collect()
}

fn kept_reason(p: &RetentionPlan, name: &str) -> KeepReason {
    p.kept.iter().find(|k| k.name == name).unwrap().reason
}

#[test]
fn the_newest_backup_is_kept_while_receiving_even_when_expired() {
    let backups = [backup("b1", 40, 1, &[]), backup("b2", 30, 5, &[])];
    let p = run(receiving(7), &backups, &[], &[]);
    assert_eq!(deleted(&p), ["b1"]);
    assert_eq!(
        p.backups[0].reason,
        Reason::Expired {
            completed_at: ago(40),
            keep_days: 7
        }
    );
    assert_eq!(kept_reason(&p, "b2"), KeepReason::NewestWhileReceiving);
}

#[test]
fn a_retired_location_expires_its_newest_then_every_log() {
    let backups = [backup("b1", 40, 1, &[]), backup("b2", 30, 5, &[])];
    let logs = [
        outside("00000002.history", 50),
        seg(1, 45),
        seg(7, 1),
        outside("000000010000000000000008.partial", 1),
    ];
    let p = run(retired(7), &backups, &logs, &[]);
    assert_eq!(deleted(&p), ["b1", "b2"]);
    assert_eq!(
        p.backups[1].reason,
        Reason::LocationRetired {
            completed_at: ago(30),
            keep_days: 7
        }
    );
    assert!(p.kept.is_empty());
    // Even logs after the last backup, and files outside the sequence (after the segments).
    assert_eq!(
        deleted_logs(&p),
        [
            "000000010000000000000001",
            "000000010000000000000007",
            "000000010000000000000008.partial",
            "00000002.history",
        ]
    );
    assert!(p.logs.iter().all(|l| l.reason == Reason::NoBackupLeft));
}

#[test]
fn a_retired_location_keeps_a_backup_until_its_own_period_ends() {
    let backups = [backup("b1", 40, 1, &[]), backup("b2", 3, 5, &[])];
    let p = run(retired(7), &backups, &[seg(1, 45)], &[]);
    assert_eq!(deleted(&p), ["b1"]);
    assert_eq!(
        kept_reason(&p, "b2"),
        KeepReason::WithinPeriod {
            expires_at: ago(3) + TimeDelta::days(7)
        }
    );
}

#[test]
fn a_backup_exactly_at_the_end_of_its_period_is_kept() {
    let backups = [backup("b1", 7, 1, &[]), backup("b2", 1, 5, &[])];
    let p = run(receiving(7), &backups, &[], &[]);
    assert!(p.backups.is_empty(), "{p:#?}");
    let a_second_later = plan(
        &backups,
        &[],
        &[],
        receiving(7),
        now() + TimeDelta::seconds(1),
    );
    assert_eq!(deleted(&a_second_later), ["b1"]);
}

#[test]
fn logs_are_kept_back_to_the_oldest_kept_backup() {
    // b2, the oldest kept, starts at position 10, 20 days and an hour ago.
    let backups = [
        backup("b1", 40, 1, &[]),
        backup("b2", 20, 10, &[]),
        backup("b3", 1, 20, &[]),
    ];
    let logs: Vec<LogFact> = (1..=9)
        .map(|p| seg(p, 35))
        .chain((10..=19).map(|p| seg(p, 15)))
        .chain((20..=22).map(|p| seg(p, 1)))
        .collect();
    let p = run(receiving(30), &backups, &logs, &[]);
    assert_eq!(deleted(&p), ["b1"]);
    assert_eq!(deleted_logs(&p), names(&logs[..9]));
    let why = Reason::LogBeforeOldestKept {
        oldest_kept: "b2".into(),
    };
    assert!(p.logs.iter().all(|l| l.reason == why), "{p:#?}");
}

#[test]
fn a_log_goes_only_when_before_the_oldest_kept_backup_by_position_and_by_time() {
    let backups = [backup("b1", 40, 1, &[]), backup("b2", 20, 10, &[])];
    let logs = [
        seg(4, 35),  // before in both: deleted
        seg(5, 10),  // before in position, archived after b2 started: kept
        seg(12, 35), // older than b2's start, but at a later position: kept
        seg(10, 35), // b2's first log itself: kept
    ];
    let p = run(receiving(30), &backups, &logs, &[]);
    assert_eq!(deleted_logs(&p), ["000000010000000000000004"]);
}

#[test]
fn logs_outside_the_sequence_are_kept_while_a_backup_is() {
    let backups = [backup("b1", 40, 1, &[]), backup("b2", 20, 10, &[])];
    let logs = [
        outside("00000002.history", 60),
        outside("000000010000000000000002.00000028.backup", 60),
        outside("000000010000000000000003.partial", 60),
        seg(3, 60),
    ];
    let p = run(receiving(30), &backups, &logs, &[]);
    assert_eq!(deleted_logs(&p), ["000000010000000000000003"]);
}

#[test]
fn an_oldest_kept_backup_without_a_first_log_holds_every_log_but_not_the_chunks() {
    let unknown = ListedBackup::Sound(BackupFacts {
        name: "b2".into(),
        completed_at: ago(20),
        first_log: None,
        chunks: vec![],
    });
    let backups = [backup("b1", 40, 1, &[1]), unknown];
    let p = run(
        receiving(30),
        &backups,
        &[seg(1, 60)],
        &[chunk(1, TimeDelta::days(40))],
    );
    assert_eq!(deleted(&p), ["b1"]);
    assert!(p.logs.is_empty(), "{p:#?}");
    assert_eq!(p.chunks.len(), 1);
}

#[test]
fn secondary_retention_is_independent_of_the_primary() {
    // The same backups in two locations, kept 7 and 30 days.
    let backups = [
        backup("b1", 50, 1, &[]),
        backup("b2", 20, 10, &[]),
        backup("b3", 2, 20, &[]),
    ];
    let logs: Vec<LogFact> = [1, 10, 20].iter().map(|&p| seg(p, 60 - p as i64)).collect();
    let primary = run(receiving(7), &backups, &logs, &[]);
    let secondary = run(receiving(30), &backups, &logs, &[]);
    assert_eq!(deleted(&primary), ["b1", "b2"]);
    assert_eq!(deleted(&secondary), ["b1"]);
    assert_eq!(deleted_logs(&primary), names(&logs[..2]));
    assert_eq!(deleted_logs(&secondary), names(&logs[..1]));
}

#[test]
fn a_damaged_manifest_is_kept_and_stops_chunk_collection_but_not_log_collection() {
    let backups = [
        backup("b1", 40, 1, &[1]),
        damaged("b2"),
        backup("b3", 1, 20, &[3]),
    ];
    let logs = [seg(1, 45), seg(15, 10), seg(20, 1)];
    let chunks = [chunk(1, TimeDelta::days(40)), chunk(9, TimeDelta::days(40))];
    let p = run(receiving(7), &backups, &logs, &chunks);
    assert_eq!(deleted(&p), ["b1"]);
    assert_eq!(kept_reason(&p, "b2"), KeepReason::Damaged);
    // The oldest sound backup kept sets the log cut, damaged b2 before it notwithstanding.
    assert_eq!(
        deleted_logs(&p),
        ["000000010000000000000001", "00000001000000000000000F"]
    );
    assert!(p.chunks.is_empty(), "{p:#?}");
    assert_eq!(p.chunks_held_by, ["b2"]);
    assert!(!needs(&backups, receiving(7), now()).chunks);
}

#[test]
fn a_damaged_newest_protects_no_backup_and_holds_every_log() {
    // Today's rule: "newest" is the last listed; when that one is damaged, the last sound backup
    // expires like any other, and with only a damaged manifest left no log goes.
    let backups = [backup("b1", 40, 1, &[]), damaged("b2")];
    let p = run(receiving(7), &backups, &[seg(1, 60)], &[]);
    assert_eq!(deleted(&p), ["b1"]);
    assert!(p.logs.is_empty(), "{p:#?}");
    assert!(!needs(&backups, receiving(7), now()).logs);
}

#[test]
fn unreferenced_chunks_go_only_past_the_grace_period() {
    let backups = [backup("b1", 40, 1, &[1, 2]), backup("b2", 1, 5, &[2, 3])];
    let chunks = [
        chunk(1, TimeDelta::days(40)), // only the expired backup's
        chunk(2, TimeDelta::days(40)), // shared with a kept backup
        chunk(3, TimeDelta::days(1)),  // the kept backup's
        chunk(4, CHUNK_GRACE + TimeDelta::hours(1)), // nobody's, old
        chunk(5, CHUNK_GRACE - TimeDelta::hours(1)), // nobody's, young: maybe a backup underway
        chunk(6, CHUNK_GRACE),         // nobody's, exactly at the grace: kept
    ];
    let p = run(receiving(7), &backups, &[], &chunks);
    let keys: Vec<&str> = p.chunks.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["chunks/01", "chunks/04"]);
    assert_eq!(
        p.chunks[1].reason,
        Reason::UnreferencedChunk {
            age: CHUNK_GRACE + TimeDelta::hours(1)
        }
    );
}

#[test]
fn a_superseded_pack_keeps_the_grace_period_from_its_repack_and_goes_before_its_marker() {
    let backups = [backup("b1", 40, 1, &[]), backup("b2", 1, 5, &[3])];
    let chunks = [
        marker(1, TimeDelta::days(3)), // repacked long ago: goes, after its pack
        chunk(1, TimeDelta::days(40)),
        chunk(2, TimeDelta::days(40)), // repacked an hour ago: a backup may still use it
        marker(2, TimeDelta::hours(1)),
        marker(2, TimeDelta::days(5)), // an older repack of the same pack does not count
        chunk(3, TimeDelta::days(40)), // repacked, but named again by a kept backup
        marker(3, TimeDelta::days(3)),
    ];
    let p = run(receiving(7), &backups, &[], &chunks);
    let keys: Vec<&str> = p.chunks.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["chunks/01", "packs/01.superseded"]);
    assert_eq!(
        p.chunks[0].reason,
        Reason::Superseded {
            since: now() - TimeDelta::days(3)
        }
    );
}

#[test]
fn logs_are_deleted_oldest_first() {
    let backups = [backup("b1", 40, 1, &[]), backup("b2", 20, 1 << 32 | 9, &[])];
    let logs = [
        seg(1 << 32 | 2, 30),
        seg_on("00000002", 3, 30),
        seg(1 << 32, 30),
        seg_on("00000002", 2, 30),
        seg(2, 30),
        seg(0xFF, 30),
    ];
    let p = run(receiving(30), &backups, &logs, &[]);
    assert_eq!(
        deleted_logs(&p),
        [
            "000000010000000000000002",
            "000000020000000000000002",
            "000000020000000000000003",
            "0000000100000000000000FF",
            "000000010000000100000000",
            "000000010000000100000002",
        ]
    );
}

#[test]
fn a_pass_that_expires_no_backup_deletes_no_log_and_no_chunk() {
    let backups = [backup("b1", 5, 10, &[]), backup("b2", 1, 20, &[])];
    let p = run(
        receiving(7),
        &backups,
        &[seg(1, 60)],
        &[chunk(1, TimeDelta::days(60))],
    );
    assert_eq!(
        p,
        RetentionPlan {
            kept: p.kept.clone(),
            ..Default::default()
        }
    );
    assert_eq!(p.kept.len(), 2);
    assert_eq!(
        needs(&backups, receiving(7), now()),
        Needs {
            logs: false,
            chunks: false
        }
    );
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Log shipping between real regions: every file the destination lacks, re-sealed, with a gap-free
//! watermark per timeline.

mod common;

use btar_engine::{LogPosition, LogSequence};
use btar_format::{Location, LogPut};
use btar_replicator::{CopyError, CopyOptions, copy_log, copy_logs, create_destination};
use btar_testkit::{S3Server, fs_region};
use bytes::Bytes;
use common::*;

const TL1: &str = "00000001";
const TL2: &str = "00000002";

fn seg(tl: &str, n: u32) -> String {
    format!("{tl}00000000{n:08X}")
}

/// The numbering of [`seg`] names. The replicator knows no engine: its caller hands it the
/// engine's sequence; this one stands in for it.
#[derive(Debug)]
struct Segments;

impl LogSequence for Segments {
    fn position(&self, name: &str) -> Option<LogPosition> {
        if name.len() != 24 {
            return None;
        }
        Some(LogPosition {
            family: name[..8].to_string(),
            number: u64::from_str_radix(&name[16..], 16).ok()?,
        })
    }

    fn name_of(&self, like: &str, number: u64) -> String {
        seg(&like[..8], number as u32)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ships_logs_and_keeps_a_gap_free_watermark() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let src = Location::create(&open(&s3.region("s3-a", "bucket-a")), SVC, "pg", None)
        .await
        .unwrap();
    // Timeline 1 lacks segment 4 (a gap); timeline 2 starts at 6 after a promotion.
    let mut archived: Vec<(String, String, Vec<u8>)> = Vec::new();
    for n in [1u32, 2, 3, 5, 6] {
        archived.push((TL1.into(), seg(TL1, n), data(96 * 1024, u64::from(n))));
    }
    archived.push((
        TL1.into(),
        format!("{}.00000028.backup", seg(TL1, 2)),
        b"label".to_vec(),
    ));
    archived.push((
        TL2.into(),
        "00000002.history".into(),
        b"1\t0/6000000\tno recovery target\n".to_vec(),
    ));
    for n in [6u32, 7] {
        archived.push((TL2.into(), seg(TL2, n), data(96 * 1024, 100 + u64::from(n))));
    }
    for (tl, name, d) in &archived {
        src.put_log(tl, name, Bytes::from(d.clone())).await.unwrap();
    }

    let dst = create_destination(&src, &open(&fs_region("fs-b", dir.path())))
        .await
        .unwrap();
    // Already shipped earlier (e.g. by a wal-push wake-up): identical, so simply counted as present.
    assert_eq!(
        copy_log(&src, &dst, TL1, &seg(TL1, 1)).await.unwrap().put,
        LogPut::Stored
    );
    assert_eq!(
        copy_log(&src, &dst, TL1, &seg(TL1, 1)).await.unwrap().put,
        LogPut::AlreadyPresent
    );

    let shipped = std::sync::Mutex::new(Vec::new());
    let out = copy_logs(&src, &dst, &CopyOptions::default(), &Segments, &|p| {
        if let Some(l) = &p.last {
            shipped.lock().unwrap().push(l.clone());
        }
    })
    .await
    .unwrap();
    assert_eq!(out.logs_total, archived.len() as u64);
    assert_eq!(out.logs_already_present, 1);
    assert_eq!(out.logs_copied, archived.len() as u64 - 1);
    assert_eq!(shipped.lock().unwrap().len(), archived.len() - 1);
    assert!(out.bytes_transferred > 6 * 96 * 1024, "{out:?}");

    let w1 = out.watermarks.iter().find(|w| w.timeline == TL1).unwrap();
    assert_eq!(w1.first, seg(TL1, 1));
    assert_eq!(w1.watermark, seg(TL1, 3));
    assert_eq!(w1.newest, seg(TL1, 6));
    assert_eq!(w1.first_missing, Some(seg(TL1, 4)));
    let w2 = out.watermarks.iter().find(|w| w.timeline == TL2).unwrap();
    assert_eq!(w2.watermark, seg(TL2, 7));
    assert_eq!(w2.first_missing, None);

    // Re-sealed with the destination key, same content.
    for (tl, name, d) in &archived {
        assert_eq!(
            dst.get_log(tl, name).await.unwrap().as_deref(),
            Some(d.as_slice()),
            "{name}"
        );
        let raw = dst.region().get(&dst.log_key(tl, name)).await.unwrap();
        assert!(
            src.open_log(tl, name, &raw).is_err(),
            "{name} readable with the source key"
        );
    }

    // Idempotent: nothing left to ship.
    let again = copy_logs(&src, &dst, &CopyOptions::default(), &Segments, &|_| {})
        .await
        .unwrap();
    assert_eq!((again.logs_copied, again.bytes_transferred), (0, 0));

    // The missing segment is archived late and shipped alone: the watermark closes the gap.
    src.put_log(TL1, &seg(TL1, 4), Bytes::from(data(96 * 1024, 4)))
        .await
        .unwrap();
    let one = copy_log(&src, &dst, TL1, &seg(TL1, 4)).await.unwrap();
    assert_eq!(one.put, LogPut::Stored);
    assert!(one.bytes_transferred > 0);
    let after = copy_logs(&src, &dst, &CopyOptions::default(), &Segments, &|_| {})
        .await
        .unwrap();
    let w1 = after.watermarks.iter().find(|w| w.timeline == TL1).unwrap();
    assert_eq!(w1.watermark, seg(TL1, 6));
    assert_eq!(w1.first_missing, None);

    // Unknown file, and a destination holding different content under the same name.
    let err = copy_log(&src, &dst, TL1, &seg(TL1, 9)).await.unwrap_err();
    assert!(matches!(err, CopyError::LogNotFound { .. }), "{err}");
    assert!(err.to_string().contains(&seg(TL1, 9)), "{err}");
    dst.put_log(TL2, &seg(TL2, 8), Bytes::from_static(b"other"))
        .await
        .unwrap();
    src.put_log(TL2, &seg(TL2, 8), Bytes::from(data(1024, 8)))
        .await
        .unwrap();
    let err = copy_log(&src, &dst, TL2, &seg(TL2, 8)).await.unwrap_err();
    assert!(matches!(err, CopyError::LogConflict { .. }), "{err}");
    assert!(
        err.to_string().contains(&seg(TL2, 8)) && err.to_string().contains("fs-b"),
        "{err}"
    );
}

/// A log file altered in the source fails its copy with a message naming the object, and nothing
/// reaches the destination; an untouched file still copies and reads back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_source_log_is_not_shipped() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = Location::create(&open(&fs_region("fs-a", a.path())), SVC, "pg", None)
        .await
        .unwrap();
    let dst = create_destination(&src, &open(&fs_region("fs-b", b.path())))
        .await
        .unwrap();
    let (good, bad) = (seg(TL1, 1), seg(TL1, 2));
    let content = data(64 * 1024, 7);
    for name in [&good, &bad] {
        src.put_log(TL1, name, Bytes::from(content.clone()))
            .await
            .unwrap();
    }
    let path = a.path().join(src.log_key(TL1, &bad));
    let mut raw = std::fs::read(&path).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x01;
    std::fs::write(&path, raw).unwrap();

    let err = copy_log(&src, &dst, TL1, &bad).await.unwrap_err();
    assert!(matches!(err, CopyError::SourceDamaged { .. }), "{err}");
    assert!(err.to_string().contains(&bad), "{err}");
    assert!(dst.get_log(TL1, &bad).await.unwrap().is_none());

    copy_log(&src, &dst, TL1, &good).await.unwrap();
    assert_eq!(dst.get_log(TL1, &good).await.unwrap().unwrap(), content);
}

/// A log file too large to hold (a binlog of up to 1 GiB) is copied frame by frame: it arrives
/// whole and re-sealed, a second copy finds it present, different content in the destination is a
/// conflict, and a damaged frame in the source fails the copy with nothing visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_log_files_are_copied_frame_by_frame() {
    let (a, b, f) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let src = Location::create(&open(&fs_region("fs-a", a.path())), SVC, "mysql", None)
        .await
        .unwrap();
    let dst = create_destination(&src, &open(&fs_region("fs-b", b.path())))
        .await
        .unwrap();
    let fam = "binlog";
    let names = ["binlog.000001", "binlog.000002", "binlog.000003"];
    // Incompressible, so the sealed objects are above the size copied whole.
    let content = data(40 << 20, 11);
    for n in names {
        let path = f.path().join(n);
        std::fs::write(&path, &content).unwrap();
        src.put_log_file(fam, n, &path).await.unwrap();
    }
    let copied = copy_log(&src, &dst, fam, names[0]).await.unwrap();
    assert_eq!(copied.put, LogPut::Stored);
    assert!(copied.bytes_transferred > 40 << 20);
    assert!(dst.get_log(fam, names[0]).await.unwrap().unwrap() == content);
    let again = copy_log(&src, &dst, fam, names[0]).await.unwrap();
    assert_eq!(again.put, LogPut::AlreadyPresent);

    // Different content under the same name in the destination.
    let other = f.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let mut changed = content.clone();
    changed[30 << 20] ^= 1;
    std::fs::write(other.join(names[1]), &changed).unwrap();
    dst.put_log_file(fam, names[1], &other.join(names[1]))
        .await
        .unwrap();
    let err = copy_log(&src, &dst, fam, names[1]).await.unwrap_err();
    assert!(matches!(err, CopyError::LogConflict { .. }), "{err}");

    // A frame altered in the source.
    let path = a.path().join(src.log_key(fam, names[2]));
    let mut raw = std::fs::read(&path).unwrap();
    raw[20 << 20] ^= 1;
    std::fs::write(&path, raw).unwrap();
    let err = copy_log(&src, &dst, fam, names[2]).await.unwrap_err();
    assert!(matches!(err, CopyError::SourceDamaged { .. }), "{err}");
    assert!(err.to_string().contains(names[2]), "{err}");
    assert!(dst.get_log(fam, names[2]).await.unwrap().is_none());
}

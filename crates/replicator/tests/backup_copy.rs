#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Backup copies between real regions: S3 bucket to S3 bucket, filesystem to S3, with cancellation,
//! tampering and misconfiguration.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use btar_format::seal::{Kind, Sealer};
use btar_format::verify::verify;
use btar_format::{Location, layout};
use btar_region::{CancellationToken, Region};
use btar_replicator::{CopyError, CopyOptions, copy_backup, create_destination};
use btar_testkit::{S3Server, fs_region, memory_region};
use common::*;
use futures::TryStreamExt;

fn opts() -> CopyOptions {
    CopyOptions {
        parallelism: 4,
        ..CopyOptions::default()
    }
}

async fn object_count(r: &Region, prefix: &str) -> usize {
    let fresh = r.with_cancel(CancellationToken::new());
    let keys: Vec<_> = fresh.list(prefix).try_collect().await.unwrap();
    keys.len()
}

/// Writes a backup in `src_region`, copies it to `dst_region`, and checks the copy end to end.
async fn copy_and_check(src_region: &Region, dst_region: &Region) {
    let src = Location::create(src_region, SVC, "pg", None).await.unwrap();
    let fs = files(1);
    let m = write_backup(&src, "b1", &fs).await;
    let dst = create_destination(&src, dst_region).await.unwrap();
    assert_eq!(dst.chunk_id_key(), src.chunk_id_key());

    let phases = std::sync::Mutex::new(Vec::new());
    let out = copy_backup(&src, &dst, "b1", &opts(), &|p| {
        let mut v = phases.lock().unwrap();
        if v.last() != Some(&p.phase) {
            v.push(p.phase);
        }
    })
    .await
    .unwrap();
    let total_bytes: u64 = fs.iter().map(|(_, d)| d.len() as u64).sum();
    let refs = m.chunk_ids().count() as u64;
    assert!(!out.already_complete);
    assert_eq!(out.chunks_total, refs, "random data has no repeated chunks");
    assert_eq!(out.chunks_copied, refs);
    assert_eq!(out.chunks_already_present, 0);
    assert_eq!(out.bytes_planned, total_bytes);
    assert!(out.bytes_transferred >= total_bytes, "{out:?}");
    assert_eq!(*phases.lock().unwrap(), {
        use btar_replicator::CopyPhase::*;
        vec![Planning, Copying, Verifying, Committing, Done]
    });

    assert_restores(&dst, "b1", &fs).await;
    let copied = dst.read_manifest("b1").await.unwrap();
    assert_eq!(copied.copied_from.as_deref(), Some(src_region.name()));
    assert_eq!(copied.files, m.files);
    assert!(verify(&dst, None, 4).await.unwrap().is_clean());

    // Sealed with the destination's key: the source's key opens neither chunks nor the manifest.
    let id = m.files[0].chunks[0];
    let sealed = dst.get_sealed_chunk(&id).await.unwrap();
    assert!(dst.open_chunk(&id, &sealed).is_ok());
    let err = src.open_chunk(&id, &sealed).unwrap_err().to_string();
    assert!(err.contains("wrong key"), "{err}");
    let mkey = layout::manifest(SVC, "b1");
    let raw = dst_region.get(&mkey).await.unwrap();
    let src_sealer = Sealer::new(src_region.key().unwrap());
    assert!(
        src_sealer
            .open(Kind::Manifest, mkey.as_bytes(), &raw, 1 << 20)
            .is_err()
    );

    let again = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap();
    assert!(again.already_complete);
    assert_eq!(again.bytes_transferred, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_to_s3_bucket_and_fs_to_s3() {
    let s3 = S3Server::start();
    copy_and_check(
        &open(&s3.region("s3-a", "bucket-a")),
        &open(&s3.region("s3-b", "bucket-b")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    copy_and_check(
        &open(&fs_region("fs-a", dir.path())),
        &open(&s3.region("s3-c", "bucket-c")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_backup_ships_only_changed_chunks() {
    let s3 = S3Server::start();
    let src = Location::create(&open(&s3.region("s3-a", "bucket-a")), SVC, "pg", None)
        .await
        .unwrap();
    let dst = create_destination(&src, &open(&s3.region("s3-b", "bucket-b")))
        .await
        .unwrap();
    let mut fs = files(2);
    write_backup(&src, "b1", &fs).await;
    let first = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap();

    // A database page rewritten in place: 8 KiB in the middle of one file.
    let page = data(8192, 99);
    fs[1].1[300_000..308_192].copy_from_slice(&page);
    write_backup(&src, "b2", &fs).await;
    let second = copy_backup(&src, &dst, "b2", &opts(), &|_| {})
        .await
        .unwrap();

    let ratio = second.bytes_transferred as f64 / first.bytes_transferred as f64;
    println!(
        "first copy: {} B in {} chunks; second: {} B in {} chunks ({} already present); ratio {ratio:.4}",
        first.bytes_transferred,
        first.chunks_copied,
        second.bytes_transferred,
        second.chunks_copied,
        second.chunks_already_present
    );
    assert!(ratio < 0.10, "ratio {ratio}");
    // The 8 KiB write straddles one 64 KiB chunk boundary at most.
    assert!((1..=2).contains(&second.chunks_copied), "{second:?}");
    assert_eq!(
        second.chunks_copied + second.chunks_already_present,
        second.chunks_total
    );
    assert_restores(&dst, "b1", &files(2)).await;
    assert_restores(&dst, "b2", &fs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_copy_leaves_no_manifest_and_resumes() {
    let s3 = S3Server::start();
    let src = Location::create(&open(&s3.region("s3-a", "bucket-a")), SVC, "pg", None)
        .await
        .unwrap();
    let fs = files(3);
    let m = write_backup(&src, "b1", &fs).await;
    let total = m.chunk_ids().count();

    let dst_region = open(&s3.region("s3-b", "bucket-b"));
    let kill = CancellationToken::new();
    let dst = create_destination(&src, &dst_region.with_cancel(kill.clone()))
        .await
        .unwrap();
    let err = copy_backup(&src, &dst, "b1", &opts(), &|p| {
        if p.chunks_copied >= 5 {
            kill.cancel(); // the replicator is killed mid-copy
        }
    })
    .await
    .unwrap_err();
    assert!(matches!(err, CopyError::Cancelled), "{err}");
    assert!(err.is_retryable());

    let fresh = dst_region.with_cancel(CancellationToken::new());
    let dst = Location::open(&fresh, SVC).await.unwrap();
    assert!(
        dst.list_backups().await.unwrap().is_empty(),
        "manifest visible after cancel"
    );
    let partial = object_count(&fresh, &layout::chunks_prefix(SVC)).await;
    assert!(
        partial >= 5 && partial < total,
        "{partial} of {total} chunks"
    );

    let out = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap();
    assert_eq!(out.chunks_already_present, partial as u64);
    assert_eq!(out.chunks_copied, (total - partial) as u64);
    assert_eq!(dst.list_backups().await.unwrap(), vec!["b1".to_string()]);
    assert_restores(&dst, "b1", &fs).await;
    let copied = dst.read_manifest("b1").await.unwrap();
    assert_eq!(copied.files, m.files);
    assert!(verify(&dst, None, 4).await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_source_chunk_fails_the_copy_and_is_not_shipped() {
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let src = Location::create(&open(&fs_region("fs-a", dir.path())), SVC, "pg", None)
        .await
        .unwrap();
    let m = write_backup(&src, "b1", &files(4)).await;
    let id = m.files[1].chunks[3];
    let key = src.chunk_key(&id);
    let path = dir.path().join(&key);
    let mut raw = std::fs::read(&path).unwrap();
    let at = raw.len() - 40;
    raw[at] ^= 0x01;
    std::fs::write(&path, raw).unwrap();

    let dst = create_destination(&src, &open(&s3.region("s3-b", "bucket-b")))
        .await
        .unwrap();
    let err = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, CopyError::SourceDamaged { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&key) && msg.contains("fs-a"), "{msg}");
    assert!(dst.list_backups().await.unwrap().is_empty());
    assert!(!dst.has_chunk(&id).await.unwrap(), "tampered chunk shipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_chunk_in_an_s3_source_is_caught_too() {
    let s3 = S3Server::start();
    let src = Location::create(&open(&s3.region("s3-a", "bucket-a")), SVC, "pg", None)
        .await
        .unwrap();
    let m = write_backup(&src, "b1", &files(5)).await;
    let id = m.files[0].chunks[0];
    let key = src.chunk_key(&id);
    let path = s3.bucket_dir("bucket-a").join(&key);
    let mut raw = std::fs::read(&path).expect("s3s-fs keeps objects as files");
    raw[20] ^= 0x80; // inside the nonce
    std::fs::write(&path, raw).unwrap();

    let dst = create_destination(&src, &open(&memory_region("mem-b")))
        .await
        .unwrap();
    let err = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&key), "{err}");
    assert!(dst.list_backups().await.unwrap().is_empty());
    assert!(!dst.has_chunk(&id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_or_same_destination_is_refused_before_any_write() {
    let s3 = S3Server::start();
    let src_cfg = s3.region("s3-a", "bucket-a");
    let src = Location::create(&open(&src_cfg), SVC, "pg", None)
        .await
        .unwrap();
    write_backup(&src, "b1", &files(6)).await;

    let mut nokey = s3.region("s3-nokey", "bucket-nokey");
    nokey.key = None;
    let nokey = open(&nokey);
    let err = create_destination(&src, &nokey).await.unwrap_err();
    assert!(
        matches!(err, CopyError::DestinationKeyMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("s3-nokey"), "{err}");
    assert_eq!(object_count(&nokey, "").await, 0, "bytes moved");

    let err = create_destination(&src, src.region()).await.unwrap_err();
    assert!(matches!(err, CopyError::SameRegion { .. }), "{err}");
    let mut alias = src_cfg.clone();
    alias.name = "s3-alias".into();
    let err = create_destination(&src, &open(&alias)).await.unwrap_err();
    assert!(matches!(err, CopyError::SameRegion { .. }), "{err}");

    // Another name and URL spelling for the same directory: caught by the shared descriptor.
    let dir = tempfile::tempdir().unwrap();
    let fs_cfg = fs_region("fs-a", dir.path());
    let fs_src = Location::create(&open(&fs_cfg), SVC, "pg", None)
        .await
        .unwrap();
    let mut fs_alias = fs_cfg.clone();
    fs_alias.name = "fs-alias".into();
    fs_alias.url = format!("file://{}/.", dir.path().display());
    let err = create_destination(&fs_src, &open(&fs_alias))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CopyError::SameRegion { reason, .. } if reason.contains("same store")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_by_head_and_by_listing_with_progress() {
    let src = Location::create(&open(&memory_region("mem-a")), SVC, "pg", None)
        .await
        .unwrap();
    // Few chunks, so the destination is asked per chunk instead of listed.
    let small = vec![("f".to_string(), data(10 * CHUNK + 3, 7))];
    let m = write_backup(&src, "b0", &small[..1]).await;
    let dst = create_destination(&src, &open(&memory_region("mem-b")))
        .await
        .unwrap();
    copy_backup(&src, &dst, "b0", &opts(), &|_| {})
        .await
        .unwrap();
    assert_restores(&dst, "b0", &small).await;
    let m2 = write_backup(
        &src,
        "b1",
        &[small[0].clone(), ("g".into(), data(CHUNK, 8))],
    )
    .await;
    let out = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap();
    assert_eq!((out.chunks_copied, out.chunks_already_present), (1, 11));
    assert_eq!(out.bytes_planned, CHUNK as u64);
    assert_eq!(m2.chunk_ids().count(), m.chunk_ids().count() + 1);

    // Many chunks: diffed by one listing, with a progress call per chunk.
    let m = write_backup(&src, "b2", &files(7)).await;
    let seen = AtomicU64::new(0);
    let out = copy_backup(&src, &dst, "b2", &CopyOptions::default(), &|p| {
        seen.store(p.chunks_copied, Ordering::Relaxed);
        assert!(p.chunks_copied <= p.chunks_missing || p.chunks_missing == 0);
    })
    .await
    .unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), m.chunk_ids().count() as u64);
    assert_eq!(out.chunks_copied, seen.load(Ordering::Relaxed));
    assert_restores(&dst, "b2", &files(7)).await;
}

/// A destination that received copies and then vanished (its mount point unmounted: the bare
/// directory below is empty and writable) is not started afresh: opening it fails, and a copy that
/// was running when it vanished does not commit its manifest outside the real location.
#[tokio::test]
async fn a_vanished_destination_is_not_recreated() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mounted = b.path().join("mnt");
    std::fs::create_dir(&mounted).unwrap();
    let src = Location::create(&open(&fs_region("fs-a", a.path())), SVC, "pg", None)
        .await
        .unwrap();
    let dst_region = open(&fs_region("fs-b", &mounted));
    write_backup(&src, "b1", &files(1)).await;
    let dst = create_destination(&src, &dst_region).await.unwrap();
    copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap();
    write_backup(&src, "b2", &files(2)).await;

    // "umount": the real location moves away, an empty directory stays at the mount point.
    std::fs::rename(&mounted, b.path().join("real")).unwrap();
    std::fs::create_dir(&mounted).unwrap();

    let err = btar_replicator::open_destination(&src, &dst_region)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CopyError::Format(btar_format::FormatError::NoLocation { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("mount point"), "{err}");
    // The handle opened before the mount vanished: the copy may write chunks, never the manifest.
    let err = copy_backup(&src, &dst, "b2", &opts(), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no btar location"), "{err}");
    let manifests: Vec<_> = btar_testkit::files_under(&mounted)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".manifest"))
        .collect();
    assert!(manifests.is_empty(), "{manifests:?}");
}

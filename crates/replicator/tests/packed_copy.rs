#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Copies of format v2 backups (blocks in packs) between real regions: only the blocks the
//! destination lacks are shipped, in new packs sealed with its key; a killed copy leaves nothing
//! visible and the rerun completes it; damage in the source stops the copy before anything lands.

mod common;

use btar_format::pack::PackIndex;
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

async fn keys(r: &Region, prefix: &str) -> Vec<String> {
    let fresh = r.with_cancel(CancellationToken::new());
    fresh
        .list(prefix)
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap()
}

fn blocks(m: &btar_format::Manifest) -> u64 {
    m.files
        .iter()
        .flat_map(|f| &f.extents)
        .map(|e| u64::from(e.count()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_backups_copy_by_block_between_s3_buckets() {
    let s3 = S3Server::start();
    let src_region = open(&s3.region("s3-a", "bucket-a"));
    let dst_region = open(&s3.region("s3-b", "bucket-b"));
    let src = Location::create(&src_region, SVC, "pg", None)
        .await
        .unwrap();
    let mut fs = files(1);
    let m1 = write_packed_backup(&src, "b1", &fs).await;
    assert!(m1.packs.len() >= 3, "{} packs", m1.packs.len());
    let dst = create_destination(&src, &dst_region).await.unwrap();

    let first = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap();
    let total_bytes: u64 = fs.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(
        first.chunks_total,
        blocks(&m1),
        "random data repeats no block"
    );
    assert_eq!(first.chunks_copied, first.chunks_total);
    assert_eq!(first.bytes_planned, total_bytes);
    assert_restores(&dst, "b1", &fs).await;
    let copied = dst.read_manifest("b1").await.unwrap();
    assert_eq!(copied.copied_from.as_deref(), Some("s3-a"));
    // The destination's own packs, sealed with its key: the source cannot open their indexes.
    for id in &copied.packs {
        let raw = dst_region.get(&dst.pack_index_key(id)).await.unwrap();
        assert!(dst.open_pack_index(id, &raw).is_ok());
        assert!(src.open_pack_index(id, &raw).is_err());
    }
    assert!(verify(&dst, None, 4).await.unwrap().is_clean());

    // Three database pages rewritten in place: the next copy ships those blocks in one new pack.
    for (file, at) in [(0usize, 300_000usize), (1, 8192 * 40), (2, 8192 * 100 + 5)] {
        let page = data(100, at as u64);
        fs[file].1[at..at + 100].copy_from_slice(&page);
    }
    let before = keys(&dst_region, &layout::service_prefix(SVC)).await.len();
    let m2 = write_packed_backup(&src, "b2", &fs).await;
    assert_eq!(m2.stats.new_chunks, 3, "{:?}", m2.stats);
    let second = copy_backup(&src, &dst, "b2", &opts(), &|_| {})
        .await
        .unwrap();
    assert_eq!(second.chunks_copied, 3, "{second:?}");
    assert_eq!(second.chunks_already_present, second.chunks_total - 3);
    let ratio = second.bytes_transferred as f64 / first.bytes_transferred as f64;
    assert!(ratio < 0.02, "ratio {ratio}: {second:?}");
    let after = keys(&dst_region, &layout::service_prefix(SVC)).await.len();
    assert_eq!(after - before, 3, "one pack, its index and the manifest");
    assert_restores(&dst, "b2", &fs).await;
    assert_restores(&dst, "b1", &files(1)).await;

    let again = copy_backup(&src, &dst, "b2", &opts(), &|_| {})
        .await
        .unwrap();
    assert!(again.already_complete);
}

/// A destination that already holds part of a source frame gets only the missing blocks, repacked;
/// and one that holds blocks from an older copy reuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_the_destination_partly_holds_are_repacked() {
    let src = Location::create(&open(&memory_region("mem-a")), SVC, "pg", None)
        .await
        .unwrap();
    let dst = create_destination(&src, &open(&memory_region("mem-b")))
        .await
        .unwrap();
    // b1 and its copy: 16 blocks. b2 adds 16 new blocks after them in the same file; the source
    // writes b2's new blocks as one frame, whose blocks the destination lacks entirely; then b3
    // on top of a destination that only got b1 mixes held and missing blocks in source frames.
    let a = data(16 * 8192, 1);
    write_packed_backup(&src, "b1", &[("f".into(), a.clone())]).await;
    copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap();
    let mut ab = a.clone();
    ab.extend(data(16 * 8192, 2));
    write_packed_backup(&src, "b2", &[("f".into(), ab.clone())]).await;
    let out = copy_backup(&src, &dst, "b2", &opts(), &|_| {})
        .await
        .unwrap();
    assert_eq!((out.chunks_copied, out.chunks_already_present), (16, 16));
    assert_restores(&dst, "b2", &[("f".into(), ab.clone())]).await;

    // A location whose single backup holds all 32 blocks in one frame, copied to a destination
    // that holds 8 of them: the other 24 are taken out of that frame and repacked.
    // A second location of the same service (same chunk-id key, so the same block ids).
    let src2 = create_destination(&src, &open(&memory_region("mem-d")))
        .await
        .unwrap();
    write_packed_backup(&src2, "c1", &[("f".into(), ab.clone())]).await;
    let dst2 = create_destination(&src2, &open(&memory_region("mem-e")))
        .await
        .unwrap();
    write_packed_backup(&dst2, "d0", &[("f".into(), a[..8 * 8192].to_vec())]).await;
    let out = copy_backup(&src2, &dst2, "c1", &opts(), &|_| {})
        .await
        .unwrap();
    assert_eq!((out.chunks_copied, out.chunks_already_present), (24, 8));
    assert_restores(&dst2, "c1", &[("f".into(), ab)]).await;
    assert!(verify(&dst2, None, 2).await.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_packed_copy_leaves_nothing_visible_and_the_rerun_completes() {
    let s3 = S3Server::start();
    let src = Location::create(&open(&s3.region("s3-a", "bucket-a")), SVC, "pg", None)
        .await
        .unwrap();
    let fs = files(3);
    write_packed_backup(&src, "b1", &fs).await;
    let dst_region = open(&s3.region("s3-b", "bucket-b"));
    let kill = CancellationToken::new();
    let dst = create_destination(&src, &dst_region.with_cancel(kill.clone()))
        .await
        .unwrap();
    let err = copy_backup(&src, &dst, "b1", &opts(), &|p| {
        if p.chunks_copied >= 200 {
            kill.cancel(); // the replicator is killed mid-copy, with a pack uploaded or in flight
        }
    })
    .await
    .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let fresh = dst_region.with_cancel(CancellationToken::new());
    let dst = Location::open(&fresh, SVC).await.unwrap();
    assert!(
        dst.list_backups().await.unwrap().is_empty(),
        "manifest visible after kill"
    );

    let out = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap();
    assert!(!out.already_complete);
    assert_restores(&dst, "b1", &fs).await;
    let rep = verify(&dst, None, 4).await.unwrap();
    assert!(rep.missing.is_empty() && rep.damaged.is_empty(), "{rep:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_source_pack_fails_the_copy_and_nothing_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let src = Location::create(&open(&fs_region("fs-a", dir.path())), SVC, "pg", None)
        .await
        .unwrap();
    let m = write_packed_backup(&src, "b1", &files(4)).await;
    let key = src.pack_key(&m.packs[1]);
    let path = dir.path().join(&key);
    let mut raw = std::fs::read(&path).unwrap();
    let at = raw.len() / 2;
    raw[at] ^= 0x01;
    std::fs::write(&path, raw).unwrap();
    let dst_region = open(&memory_region("mem-b"));
    let dst = create_destination(&src, &dst_region).await.unwrap();
    let err = copy_backup(&src, &dst, "b1", &opts(), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, CopyError::SourceDamaged { .. }), "{err}");
    assert!(
        err.to_string().contains(&key) && err.to_string().contains("fs-a"),
        "{err}"
    );
    assert!(dst.list_backups().await.unwrap().is_empty());
    // Nothing of the damaged frame reached the destination: every pack there opens and checks.
    for k in keys(&dst_region, &layout::packs_prefix(SVC)).await {
        if let Some(id) = layout::parse_pack_key(&k).filter(|_| k.ends_with(".idx")) {
            let idx: PackIndex = dst.get_pack_index(&id).await.unwrap();
            assert!(idx.block_count() > 0);
        }
    }
    let rep = verify(&dst, None, 2).await.unwrap();
    assert!(rep.damaged.is_empty(), "{rep:?}");
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! DESIGN.md invariant 5: memory does not grow with backup size. Alone in its test binary so the peak
//! RSS it reads is its own.

use btar_format::{BackupWriter, FileReader, Location, WriterOptions};
use btar_region::{CancellationToken, Region};
use btar_testkit::{HashWriter, PatternReader, fs_region, peak_rss};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_larger_than_the_memory_limit_round_trips_in_bounded_memory() {
    const SIZE: u64 = 384 << 20;
    const LIMIT: u64 = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let region = Region::open(&fs_region("home", dir.path()), CancellationToken::new()).unwrap();
    let loc = Location::create(&region, "big", "pg", None).await.unwrap();
    let writer = BackupWriter::new(loc.clone(), WriterOptions::default());
    let mut src = PatternReader::new(SIZE, 7);
    let entry = writer.write_file("big", 0o600, &mut src).await.unwrap();
    let m = writer
        .finish(
            "b",
            chrono::Utc::now(),
            vec![entry.clone()],
            serde_json::Value::Null,
        )
        .await
        .unwrap();
    loc.commit_manifest(&m).await.unwrap();
    let mut sink = HashWriter::default();
    FileReader::new(loc, 16)
        .write_to(&m, &entry, &mut sink, &|_| {})
        .await
        .unwrap();
    assert_eq!(sink.len, SIZE);
    assert_eq!(sink.hasher.finalize(), src.digest(), "read-back differs");
    let peak = peak_rss();
    assert!(peak > 0, "VmHWM readable");
    assert!(
        peak < LIMIT,
        "peak RSS {} MiB for a {} MiB file",
        peak >> 20,
        SIZE >> 20
    );
}

#![allow(clippy::unwrap_used, clippy::expect_used)]
//! DESIGN.md invariant 5 for log files: a binlog of up to 1 GiB is pushed, compared with itself,
//! fetched, verified and copied to another location in memory that does not grow with its size.
//! Alone in its test binary so the peak RSS it reads is its own. The peak is a few frames per
//! allocator arena (each blocking thread that opens frames keeps freed ones), whatever the file's
//! size; holding the file once would pass the limit.

use btar_format::{Location, LogPut};
use btar_region::{CancellationToken, Region};
use btar_testkit::{HashWriter, PatternReader, fs_region, peak_rss};

/// On a runtime whose blocking pool is capped at two threads: each thread that opens frames may
/// keep freed ones in its own allocator arena, so an uncapped pool on a loaded machine made the
/// peak depend on how many threads the scheduler happened to start.
#[test]
fn a_log_file_larger_than_the_memory_limit_is_pushed_fetched_and_copied_in_bounded_memory() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(push_fetch_copy());
}

async fn push_fetch_copy() {
    const SIZE: u64 = 640 << 20;
    const LIMIT: u64 = 448 << 20;
    let dir = tempfile::tempdir().unwrap();
    let (home, away) = (dir.path().join("home"), dir.path().join("away"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&away).unwrap();
    let open = |name: &str, d: &std::path::Path| {
        Region::open(&fs_region(name, d), CancellationToken::new()).unwrap()
    };
    let loc = Location::create(&open("home", &home), "big", "mysql", None)
        .await
        .unwrap();
    let binlog = dir.path().join("binlog.000001");
    let mut src = PatternReader::new(SIZE, 5);
    let mut file = tokio::fs::File::create(&binlog).await.unwrap();
    tokio::io::copy(&mut src, &mut file).await.unwrap();
    drop(file);

    eprintln!("written: {} MiB", peak_rss() >> 20);
    let (fam, name) = ("binlog", "binlog.000001");
    assert_eq!(
        loc.put_log_file(fam, name, &binlog).await.unwrap(),
        LogPut::Stored
    );
    eprintln!("pushed: {} MiB", peak_rss() >> 20);
    assert_eq!(
        loc.put_log_file(fam, name, &binlog).await.unwrap(),
        LogPut::AlreadyPresent
    );
    eprintln!("compared: {} MiB", peak_rss() >> 20);
    assert_eq!(loc.check_log(fam, name).await.unwrap(), Some(SIZE));
    eprintln!("checked: {} MiB", peak_rss() >> 20);
    let fetched = dir.path().join("fetched");
    assert!(loc.fetch_log_file_to(fam, name, &fetched).await.unwrap());
    let mut sink = HashWriter::default();
    let mut f = tokio::fs::File::open(&fetched).await.unwrap();
    tokio::io::copy(&mut f, &mut sink).await.unwrap();
    assert_eq!(sink.len, SIZE);
    assert_eq!(sink.hasher.finalize(), src.digest(), "fetched file differs");

    eprintln!("fetched: {} MiB", peak_rss() >> 20);
    let dst = Location::create(
        &open("away", &away),
        "big",
        "mysql",
        Some((loc.descriptor(), loc.chunk_id_key())),
    )
    .await
    .unwrap();
    assert!(
        dst.put_log_resealed_from(&loc, fam, name)
            .await
            .unwrap()
            .is_some()
    );
    eprintln!("copied: {} MiB", peak_rss() >> 20);
    assert_eq!(dst.same_log_as(&loc, fam, name).await.unwrap(), Some(true));

    let peak = peak_rss();
    assert!(peak > 0, "VmHWM readable");
    assert!(
        peak < LIMIT,
        "peak RSS {} MiB for a {} MiB log file",
        peak >> 20,
        SIZE >> 20
    );
    eprintln!(
        "peak RSS {} MiB for a {} MiB log file",
        peak >> 20,
        SIZE >> 20
    );
}

//! A large file through the format into the S3 server on loopback and back, in constant memory.
//! Prints one JSON line: sizes, MB/s each way, peak RSS. Used for the foundation issue's figure:
//!   cargo run --release -p btar-format --example roundtrip -- --size-mib 2048 [--pack-mib 16]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use btar_format::{BackupWriter, FileReader, Location, WriterOptions};
use btar_region::{CancellationToken, Region};
use btar_testkit::{HashWriter, PatternReader, S3Server, peak_rss};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let size = arg("--size-mib", 2048) << 20;
    let pack = (arg("--pack-mib", 16) << 20) as usize;
    let s3 = S3Server::start();
    let region = Region::open(&s3.region("home", "roundtrip"), CancellationToken::new()).unwrap();
    let loc = Location::create(&region, "big", "pg", None).await.unwrap();
    let opts = WriterOptions {
        pack_size: pack,
        ..WriterOptions::default()
    };
    let writer = BackupWriter::new(loc.clone(), opts);

    let mut src = PatternReader::new(size, 42);
    let t = Instant::now();
    let entry = writer.write_file("big.bin", 0o600, &mut src).await.unwrap();
    let m = writer
        .finish(
            "rt",
            chrono::Utc::now(),
            vec![entry.clone()],
            serde_json::Value::Null,
        )
        .await
        .unwrap();
    loc.commit_manifest(&m).await.unwrap();
    let write_s = t.elapsed().as_secs_f64();
    let rss_after_write = peak_rss();

    let mut sink = HashWriter::default();
    let t = Instant::now();
    FileReader::new(loc.clone(), 16)
        .write_to(&m, &entry, &mut sink, &|_| {})
        .await
        .unwrap();
    let read_s = t.elapsed().as_secs_f64();
    let identical = sink.len == size && sink.hasher.finalize() == src.digest();
    let stored: u64 = btar_testkit::files_under(&s3.bucket_dir("roundtrip"))
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{}",
        serde_json::json!({
            "size_mib": size >> 20,
            "pack_mib": pack >> 20,
            "packs": m.packs.len(),
            "extents": entry.extents.len(),
            "stored_mib": stored as f64 / (1 << 20) as f64,
            "write_mb_s": size as f64 / 1e6 / write_s,
            "read_mb_s": size as f64 / 1e6 / read_s,
            "peak_rss_mib_after_write": rss_after_write >> 20,
            "peak_rss_mib": peak_rss() >> 20,
            "identical": identical,
        })
    );
    assert!(identical, "read-back differs");
}

//! Shared helpers of the replicator tests (included with `mod common;`).
#![allow(dead_code)]

use btar_format::v1_writer::{V1Writer, V1WriterOptions};
use btar_format::{BackupWriter, FileReader, Location, Manifest, WriterOptions};
use btar_region::{CancellationToken, Region, RegionConfig};

pub const SVC: &str = "svc1";
pub const CHUNK: usize = 64 * 1024;

pub fn open(cfg: &RegionConfig) -> Region {
    Region::open(cfg, CancellationToken::new()).expect("open region")
}

/// Deterministic incompressible data (xorshift), so sealed sizes track plaintext sizes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// About 5 MiB in three files, sizes not multiples of the chunk size.
pub fn files(seed: u64) -> Vec<(String, Vec<u8>)> {
    // ~84 chunks: above the replicator's HEAD-per-chunk threshold, so its listing diff is exercised.
    [
        (2560 * 1024 + 17, 1),
        (1536 * 1024, 2),
        (1200 * 1024 + 5, 3),
    ]
    .into_iter()
    .map(|(len, i)| (format!("base/f{i}"), data(len, seed * 10 + i)))
    .collect()
}

/// A format v1 backup (one object per chunk): the copies of v1 locations btar must keep making.
pub async fn write_backup(loc: &Location, name: &str, files: &[(String, Vec<u8>)]) -> Manifest {
    let w = V1Writer::new(
        loc.clone(),
        V1WriterOptions {
            chunk_size: CHUNK,
            max_in_flight: 8,
        },
    );
    let mut entries = Vec::new();
    for (path, d) in files {
        entries.push(w.write_file(path, 0o600, d.as_slice()).await.unwrap());
    }
    let m = w.manifest(name, chrono::Utc::now(), entries, serde_json::json!({}));
    loc.commit_manifest(&m).await.unwrap();
    m
}

/// Packs of 1 MiB: the ~5 MiB of [`files`] make several.
pub const PACK: usize = 1 << 20;

/// A format v2 backup (blocks in packs), with small packs so a few MiB make several.
pub async fn write_packed_backup(
    loc: &Location,
    name: &str,
    files: &[(String, Vec<u8>)],
) -> Manifest {
    let w = BackupWriter::new(
        loc.clone(),
        WriterOptions {
            pack_size: PACK,
            ..WriterOptions::default()
        },
    );
    let mut entries = Vec::new();
    for (path, d) in files {
        entries.push(w.write_file(path, 0o600, d.as_slice()).await.unwrap());
    }
    let m = w
        .finish(name, chrono::Utc::now(), entries, serde_json::json!({}))
        .await
        .unwrap();
    loc.commit_manifest(&m).await.unwrap();
    m
}

/// Restores `backup` from `loc` and asserts every file is byte-identical to `files`.
pub async fn assert_restores(loc: &Location, backup: &str, files: &[(String, Vec<u8>)]) {
    let m = loc.read_manifest(backup).await.unwrap();
    assert_eq!(m.files.len(), files.len());
    let reader = FileReader::new(loc.clone(), 4);
    for (path, want) in files {
        let entry = m.files.iter().find(|f| &f.path == path).expect("entry");
        let mut out = Vec::new();
        reader.write_to(&m, entry, &mut out, &|_| {}).await.unwrap();
        assert!(
            out == *want,
            "{path} differs after restore from {}",
            loc.region().name()
        );
    }
}

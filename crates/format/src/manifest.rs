//! Backup manifests: the list of files and where their content is, plus engine metadata (for
//! PostgreSQL: LSNs, timeline, backup label). A manifest is sealed and written last.
//!
//! Format v1 lists each file's chunks by id. Format v2 lists each file's blocks as [`Extent`]s: runs
//! of consecutive block numbers inside one pack of the manifest's pack table, so an incremental that
//! changed a few pages of a large file costs a few extents, not one id per page.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::chunk::ChunkId;

/// Backup names sort in time order: `20261122T231500123Z`.
pub fn backup_name_at(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S%3fZ").to_string()
}

/// The time a backup name encodes ([`backup_name_at`]), for backups whose manifest cannot be read.
pub fn time_of_backup_name(name: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(name, "%Y%m%dT%H%M%S%3fZ")
        .ok()
        .map(|t| t.and_utc())
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the backed-up root, `/`-separated.
    pub path: String,
    pub kind: FileKind,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub mode: u32,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Format v1: chunks in file order; every chunk but the last is `chunk_size` bytes long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkId>,
    /// Format v2: the file's blocks in order; every block but the last is `chunk_size` bytes long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extents: Vec<Extent>,
}

/// `count` blocks numbered `first..first + count` in pack `pack` of the manifest's pack table.
/// Serialized as `[pack, first, count]` to keep large manifests small.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Extent(pub u32, pub u32, pub u32);

impl Extent {
    pub fn pack(&self) -> u32 {
        self.0
    }
    pub fn first(&self) -> u32 {
        self.1
    }
    pub fn count(&self) -> u32 {
        self.2
    }
    /// Every `(pack, block number)` of the extent.
    pub fn blocks(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (self.1..self.1.saturating_add(self.2)).map(|n| (self.0, n))
    }
}

/// Builds a file's extents one block reference at a time, merging runs.
#[derive(Debug, Default)]
pub struct ExtentBuilder(Vec<Extent>);

impl ExtentBuilder {
    pub fn push(&mut self, pack: u32, block: u32) {
        if let Some(last) = self.0.last_mut()
            && last.0 == pack
            && last.1.checked_add(last.2) == Some(block)
        {
            last.2 += 1;
            return;
        }
        self.0.push(Extent(pack, block, 1));
    }

    pub fn finish(self) -> Vec<Extent> {
        self.0
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestStats {
    /// Bytes of file data in the backup.
    pub logical_bytes: u64,
    /// Chunk references in the backup.
    pub chunk_refs: u64,
    /// Chunks this backup had to upload (not already in the location).
    pub new_chunks: u64,
    /// Sealed bytes this backup uploaded.
    pub new_stored_bytes: u64,
    /// Objects this backup wrote (chunks, or packs and their indexes), its manifest not counted.
    #[serde(default)]
    pub new_objects: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub service: String,
    pub backup_name: String,
    pub engine: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    /// v1: the chunk size; v2: the block size (8 KiB for PostgreSQL pages).
    pub chunk_size: u32,
    pub files: Vec<FileEntry>,
    /// Format v2: the packs the extents of `files` point into, by position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packs: Vec<ChunkId>,
    /// Engine-specific facts (e.g. PostgreSQL start/stop LSN and backup label).
    #[serde(default)]
    pub engine_meta: serde_json::Value,
    pub stats: ManifestStats,
    /// The region this manifest was first written in, and the one it was copied from, if any.
    pub origin_region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
}

impl Manifest {
    /// Whether content is addressed by packs and extents (format v2) rather than chunks.
    pub fn is_packed(&self) -> bool {
        self.format_version >= 2
    }

    /// Every chunk id referenced (format v1), in file order (duplicates included).
    pub fn chunk_ids(&self) -> impl Iterator<Item = &ChunkId> {
        self.files.iter().flat_map(|f| f.chunks.iter())
    }

    /// Length of chunk `index` of `file` under this manifest's chunk size.
    pub fn chunk_len(&self, file: &FileEntry, index: usize) -> u64 {
        let cs = u64::from(self.chunk_size);
        let start = index as u64 * cs;
        (file.size.saturating_sub(start)).min(cs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Extents are a lossless, run-merged encoding of any sequence of block references.
        #[test]
        fn extents_expand_to_the_references_they_were_built_from(
            refs in proptest::collection::vec((0u32..4, 0u32..64), 0..300),
        ) {
            let mut b = ExtentBuilder::default();
            for (p, n) in &refs {
                b.push(*p, *n);
            }
            let ext = b.finish();
            let back: Vec<(u32, u32)> = ext.iter().flat_map(|e| e.blocks().collect::<Vec<_>>()).collect();
            prop_assert_eq!(&back, &refs);
            // Merged: no two neighbours could have been one extent.
            for w in ext.windows(2) {
                prop_assert!(!(w[0].pack() == w[1].pack() && w[0].first() + w[0].count() == w[1].first()));
            }
            // And the JSON form round-trips.
            let json = serde_json::to_string(&ext).unwrap();
            prop_assert_eq!(serde_json::from_str::<Vec<Extent>>(&json).unwrap(), ext);
        }
    }
}

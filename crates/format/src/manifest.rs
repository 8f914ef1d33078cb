//! Backup manifests: the list of files and the chunks they are made of, plus engine metadata
//! (for PostgreSQL: LSNs, timeline, backup label). A manifest is sealed and written last.

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
    /// Chunks in file order; every chunk but the last is `chunk_size` bytes long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkId>,
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub service: String,
    pub backup_name: String,
    pub engine: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub chunk_size: u32,
    pub files: Vec<FileEntry>,
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
    /// Every chunk id referenced, in file order (duplicates included).
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

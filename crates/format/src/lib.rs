//! The btar backup format (DESIGN.md, "Storage: each location stands alone").
//!
//! A *location* is one service's backups inside one region. It is self-describing: a service
//! descriptor (engine, wrapped chunk-id key), content-addressed chunks, log segments, and manifests
//! that are written last, so the existence of a manifest means the backup is complete.
//!
//! Every stored object is sealed with the region's key ([`seal`]); chunks (v1) and blocks (v2) are
//! addressed by a keyed BLAKE3 hash of their plaintext shared by all locations of a service
//! ([`chunk`]). Format v2 stores blocks in packs ([`pack`]); v1 locations stay readable.

pub mod chunk;
pub mod copy;
mod error;
pub mod layout;
mod location;
mod log_file;
pub mod log_frames;
pub mod manifest;
pub mod pack;
mod reader;
pub mod repack;
pub mod seal;
pub mod service;
#[doc(hidden)]
pub mod v1_writer;
pub mod verify;
mod writer;

pub use chunk::{ChunkId, ChunkIdKey};
pub use error::FormatError;
pub use location::{
    Location, LogObject, LogPut, OPEN_ENDED, Tail, TailPiece, covering, deliver_file,
};
pub use log_file::LogReader;
pub use manifest::{Extent, FileEntry, FileKind, Manifest, backup_name_at, time_of_backup_name};
pub use pack::PackId;
pub use reader::FileReader;
pub use service::ServiceDescriptor;
pub use writer::{BackupWriter, WriteStats, WriterOptions};

/// Version of the manifests and descriptors this btar writes; it reads every version up to it.
/// 1: one object per chunk. 2: blocks in packs (a v1 reader meeting a v2 manifest or descriptor
/// refuses it, naming the version it found).
pub const FORMAT_VERSION: u32 = 2;

//! The btar backup format (DESIGN.md, "Storage: each location stands alone").
//!
//! A *location* is one service's backups inside one region. It is self-describing: a service
//! descriptor (engine, wrapped chunk-id key), content-addressed chunks, log segments, and manifests
//! that are written last, so the existence of a manifest means the backup is complete.
//!
//! Every stored object is sealed with the region's key ([`seal`]); chunks are addressed by a keyed
//! BLAKE3 hash of their plaintext shared by all locations of a service ([`chunk`]).

pub mod chunk;
mod error;
pub mod layout;
mod location;
pub mod manifest;
mod reader;
pub mod seal;
pub mod service;
pub mod verify;
mod writer;

pub use chunk::{ChunkId, ChunkIdKey};
pub use error::FormatError;
pub use location::{Location, LogObject, LogPut};
pub use manifest::{FileEntry, FileKind, Manifest, backup_name_at, time_of_backup_name};
pub use reader::FileReader;
pub use service::ServiceDescriptor;
pub use writer::{BackupWriter, WriteStats, WriterOptions};

/// Version of the on-store layout and object formats. Readers refuse newer major versions.
pub const FORMAT_VERSION: u32 = 1;

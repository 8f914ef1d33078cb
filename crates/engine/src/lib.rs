//! The engine layer (DESIGN.md, "Roles": the agent). Everything that differs between PostgreSQL and
//! MySQL/MariaDB sits behind [`Engine`]: taking a backup into a [`btar_format::BackupWriter`], the
//! recoverable window of a location, restoring to a target and starting the server, pushing and
//! fetching one archived log file, following the server's log where the server has no archive hook
//! ([`LogFollower`]), and the [`LogSequence`] that orders those files for the
//! replicator's watermark and for retention.
//!
//! The control plane, replicator and CLI name no engine crate: the binary registers the engines it
//! is built with in an [`Engines`] registry once, and everything else asks it by [`EngineKind`] —
//! usually the kind recorded in a location's service descriptor.

mod engine;
mod error;
mod follow;
mod kind;
mod local;
pub mod log;
mod progress;
mod registry;
mod restore;
mod settings;
pub mod spool;
mod stream;

pub use engine::{BackupOptions, BackupPoint, Engine, PushedLog};
pub use error::EngineError;
pub use follow::{FollowEvent, FollowOptions, LogFollower};
pub use kind::{EngineKind, UnknownEngine};
pub use local::{LocalServer, LocalSpec, OsUser, fork_dirs};
pub use log::{LogPosition, LogSequence, Watermark, watermarks};
pub use progress::{NoProgress, Progress, follow_writer};
pub use registry::Engines;
pub use restore::{
    ArchiveTo, DamagedBackup, Reached, RestoreOutcome, RestoreRequest, Target, Window,
};
pub use settings::AgentSettings;
pub use stream::{LogStreamer, StreamEvent, StreamOptions, StreamPosition, StreamTarget};

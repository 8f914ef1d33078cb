//! The streamer role (DESIGN.md, "Roles"): follows the server's log as it is written and keeps the
//! newest, partial log file durable in every location within about a second, as a tail of sealed
//! pieces ([`btar_format::Location::put_tail_piece`]) that the archived complete file supersedes.
//! Complete files still reach the archive by the engine's durable path (PostgreSQL's
//! `archive_command`), and the replicator ships them; the streamer adds the part not yet archived.

use std::time::Duration;

use btar_format::Location;
use btar_region::CancellationToken;
use serde::Serialize;

use crate::{AgentSettings, EngineError};

/// A location the streamer writes to.
#[derive(Debug, Clone)]
pub struct StreamTarget {
    pub region: String,
    /// The service's home region: what the server is told is durable (its slot advances, and a
    /// synchronous commit returns, only once WAL is stored there).
    pub primary: bool,
    pub location: Location,
}

/// How a streamer runs.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The name the server knows this streamer by (PostgreSQL: the replication slot and the
    /// `application_name` that `synchronous_standby_names` lists).
    pub name: String,
    /// Least time between two pieces stored in one location, bounding objects per second. Data is
    /// stored as soon as it arrives and this much time has passed since the previous piece.
    pub min_interval: Duration,
    /// Report WAL flushed to the server as soon as the primary location has it, with no wait
    /// between pieces: for a server that lists this streamer in `synchronous_standby_names`.
    pub synchronous: bool,
    /// The locations to write to; the caller may change them while streaming (a region enabled or
    /// disabled): the streamer reads the newest value before each piece.
    pub targets: tokio::sync::watch::Receiver<Vec<StreamTarget>>,
    /// A private local directory for an engine whose log is received into files first (a MariaDB
    /// binlog); one streamer per directory.
    pub spool_dir: std::path::PathBuf,
    pub cancel: CancellationToken,
}

/// How far one location's streamed log is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamPosition {
    pub region: String,
    pub primary: bool,
    /// The log position up to which this location holds the log (archive plus streamed tail), in
    /// the engine's notation (a PostgreSQL LSN).
    pub position: String,
    /// The server's newest flushed position the streamer knows of.
    pub server_position: String,
    pub bytes_behind: u64,
    /// How long the oldest byte this location lacks has been waiting (0 when it lacks none).
    pub seconds_behind: f64,
    /// Why the last piece for this location failed, if it did.
    pub error: Option<String>,
}

/// What a streamer did, for the caller to print and record.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// Streaming (re)started at `from` on `timeline`; `slot_created` when the server had no slot of
    /// this name.
    Started {
        timeline: u32,
        from: String,
        slot_created: bool,
    },
    /// The positions of every location, about once a second and on change.
    Progress {
        positions: Vec<StreamPosition>,
        /// WAL the server keeps for this streamer's slot, in bytes.
        slot_retained_bytes: Option<u64>,
    },
    /// The server could no longer serve the streamer from where it was (its slot was dropped or
    /// invalidated): the stream restarts at the server's current position, and what lies between
    /// reaches the locations only through the archive.
    Gap { reason: String },
    /// The connection ended or a location failed; streaming resumes after `retry_in`.
    Interrupted { reason: String, retry_in: Duration },
}

/// An engine's way to stream its server's log into the service's locations.
#[async_trait::async_trait]
pub trait LogStreamer: Send + Sync {
    /// Streams the server `settings` reach until `opts.cancel`. Returns `Ok` when cancelled, an
    /// error when streaming cannot go on without an operator (bad settings, missing permission,
    /// a server that cannot stream); connection and store failures are retried with backoff and
    /// reported as [`StreamEvent::Interrupted`].
    async fn stream(
        &self,
        settings: &AgentSettings,
        opts: &StreamOptions,
        on_event: &(dyn Fn(StreamEvent) + Send + Sync),
    ) -> Result<(), EngineError>;
}

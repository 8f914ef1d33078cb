//! Continuous log archive for engines whose server does not hand each log file to an archive hook
//! (MySQL/MariaDB's binlog): btar follows the server's log as it is written and archives every
//! file once the server has moved past it. PostgreSQL pushes its own WAL (`archive_command`) and
//! has no follower.

use std::path::PathBuf;
use std::time::Duration;

use btar_format::Location;
use btar_region::CancellationToken;

use crate::{AgentSettings, EngineError, PushedLog};

/// Where and how long a follower runs.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Local directory the log is received into before it is archived (created private, 0700).
    /// One follower at a time may use it.
    pub spool_dir: PathBuf,
    /// Stops the follower: the receiving process is ended and [`LogFollower::follow`] returns.
    pub cancel: CancellationToken,
}

/// What a follower did, for the caller to print and act on.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    /// The receiving process started (again) at this log file.
    Started { from: String },
    /// A complete log file is durable in the location and its local copy is gone: announce it to
    /// the replicator.
    Archived(PushedLog),
    /// Log files the archive lacks that the server no longer has: the archive has a hole from
    /// `first` to `last`, and following resumed at `resumed_at`.
    Gap {
        first: String,
        last: String,
        resumed_at: String,
    },
    /// The receiving process ended or could not start; it is started again after `retry_in`.
    Interrupted { reason: String, retry_in: Duration },
}

/// An engine's way to follow its server's log into a location (the primary).
#[async_trait::async_trait]
pub trait LogFollower: Send + Sync {
    /// Follows the server `settings` reach until `opts.cancel`, archiving each complete log file
    /// into `loc` and reporting it through `on_event`. Starts after the newest file the location
    /// holds without a gap; a receiving process that ends is restarted with backoff. Returns `Ok`
    /// when cancelled, an error when following cannot go on without an operator (bad settings, a
    /// missing program, a refused push).
    async fn follow(
        &self,
        loc: &Location,
        settings: &AgentSettings,
        opts: &FollowOptions,
        on_event: &(dyn Fn(FollowEvent) + Send + Sync),
    ) -> Result<(), EngineError>;
}

//! The PostgreSQL engine (agent role for `pg` services): non-exclusive base backups read straight from
//! the data directory, the WAL archive behind `archive_command`/`restore_command`, and point-in-time
//! restore into a new data directory. [`PgEngine`] puts it behind the engine layer's trait; it is the
//! sole owner of WAL naming.

pub mod archive;
pub mod backup;
pub mod cluster;
pub mod conninfo;
mod engine;
mod error;
mod local;
mod partial;
pub mod restore;
pub mod server;
pub mod stream;
pub mod verify;
pub mod wal;

pub use engine::PgEngine;
pub use error::PgError;
pub use local::LocalPg;

/// Engine name stored in service descriptors and manifests.
pub const ENGINE: &str = "pg";

/// Settings of a PostgreSQL service, as written under `[service.pg]` in the config.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSettings {
    /// libpq-style `key=value` string or `postgres://` URL. Passwords here are never logged.
    pub conninfo: String,
    /// Data directory; read from the server (`SHOW data_directory`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    /// Directory of `pg_ctl`, `initdb`…; found under /usr/lib/postgresql when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
}

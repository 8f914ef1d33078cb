//! The PostgreSQL engine (agent role for `pg` services): non-exclusive base backups read straight from
//! the data directory, the WAL archive behind `archive_command`/`restore_command`, and point-in-time
//! restore into a new data directory.

pub mod archive;
pub mod backup;
pub mod cluster;
pub mod conninfo;
mod error;
pub mod restore;
pub mod server;
pub mod verify;
pub mod wal;

pub use error::PgError;

/// Engine name stored in service descriptors and manifests.
pub const ENGINE: &str = "pg";

/// Settings of a PostgreSQL service, as written under `[service.pg]` in the config.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSettings {
    /// libpq-style `key=value` string or `postgres://` URL. Passwords here are never logged.
    pub conninfo: String,
    /// Data directory; read from the server (`SHOW data_directory`) when absent.
    #[serde(default)]
    pub data_dir: Option<String>,
    /// Directory of `pg_ctl`, `initdb`…; found under /usr/lib/postgresql when absent.
    #[serde(default)]
    pub bin_dir: Option<String>,
}

//! The MySQL/MariaDB engine (agent role for `mysql` services): physical backups with
//! `mariadb-backup --backup --stream=xbstream` split as it is read into the files it carries (each
//! its own entry, so incrementals store changed InnoDB pages only), the binlog
//! archive one closed file at a time (`push_log` / `fetch_log`, i.e. `btar wal-push` /
//! `btar wal-fetch`), and point-in-time restore from any location: the base backup
//! (its files written into a new datadir — older single-stream backups through `mbstream -x` —,
//! `mariadb-backup --prepare`, `mariadbd` started on a free port), then the archived
//! binlogs from its consistent point replayed with `mariadb-binlog | mariadb` up to latest, a
//! time, a binlog position `FILE:POS` or a GTID `D-S-N` (a list allowed), the last two given as
//! [`btar_engine::Target::Position`] (`--target-lsn`; see the `target` module). The recoverable
//! window of a location ends at the last binlog file archived there without a gap; a target outside
//! it, or past a missing binlog file, is refused.
//!
//! The continuous binlog archive (`btar log-follow`, the `follow` module) receives the binlog with
//! `mariadb-binlog --read-from-remote-server --raw --stop-never` and archives each file once the
//! server has rotated past it. The streamer (`btar log-stream`, the `stream` module) stores the
//! file the server is still writing in every location within about a second, cut after whole
//! transactions, as a tail the archived file later supersedes; a restore replays it after the
//! archived files.
//!
//! `btar up --engine mysql` runs a local MariaDB of its own ([`LocalMariaDb`], the `local` module).

mod backup;
mod binlog;
mod engine;
mod follow;
mod local;
mod receiver;
mod replay;
mod restore;
mod stream;
mod target;
mod tools;
pub mod xbstream;

pub use backup::{BinlogPoint, MysqlMeta};
pub use engine::MysqlEngine;
pub use follow::BinlogFollower;
pub use local::LocalMariaDb;
pub use stream::BinlogStreamer;

/// Engine name stored in service descriptors and manifests.
pub const ENGINE: &str = "mysql";

/// The single file entry a backup's whole xbstream was stored as, before streams were split into
/// their files.
pub const STREAM_FILE: &str = "backup.xbstream";

/// Settings of a MySQL/MariaDB service, as written under `[service.mysql]` in the config.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// TCP host (default `127.0.0.1` unless `socket` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// TCP port (default 3306).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Unix socket; used instead of TCP when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// Account with the backup privileges (default `root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Never logged; handed to the tools in a private option file, not on their command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A file whose first line is the password, read when `password` is not given (so the config
    /// need not hold the secret; `btar up` writes one, mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// The server's data directory (`--datadir` of mariadb-backup); asked from the server when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadir: Option<String>,
    /// Directory holding `mariadb-backup`, `mbstream`, `mariadb` and `mariadbd`; searched before
    /// `PATH`, /usr/bin and /usr/sbin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_dir: Option<String>,
}

impl MysqlSettings {
    /// The password: `password`, else the first line of `password_file`; `None` when neither.
    pub fn secret(&self) -> Result<Option<String>, btar_engine::EngineError> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        let Some(file) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file).map_err(|e| {
            btar_engine::EngineError::Invalid(format!(
                "password_file {file} under [service.mysql] cannot be read: {e}"
            ))
        })?;
        Ok(Some(text.lines().next().unwrap_or_default().to_string()))
    }

    /// Where the settings point, without secrets (for messages).
    pub fn describe(&self) -> String {
        let user = self.user.as_deref().unwrap_or("root");
        match &self.socket {
            Some(s) => format!("socket={s} user={user}"),
            None => format!(
                "host={} port={} user={user}",
                self.host.as_deref().unwrap_or("127.0.0.1"),
                self.port.unwrap_or(3306)
            ),
        }
    }
}

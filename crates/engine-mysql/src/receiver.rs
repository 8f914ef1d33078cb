//! One run of `mariadb-binlog --read-from-remote-server --raw --stop-never`: the server's binlog,
//! byte for byte as the server wrote it, received into a local spool directory (one file per
//! binlog file, each written event by event as the server sends it). Shared by the follower (which
//! archives the files the server has closed) and the streamer (which stores what the open file
//! holds so far).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btar_engine::EngineError;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::MysqlSettings;
use crate::tools::Conn;

/// Lines of `mariadb-binlog`'s stderr kept for the message when it ends.
const TAIL: usize = 8;

/// Which of a service's receivers: each registers with its own replica server id, so that a new
/// receiver of the same role replaces a stale one (the server drops a connection whose id a new
/// one takes) while the follower and the streamer of one service run side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    Streamer,
}

/// A running `mariadb-binlog` and what it needs while it runs.
pub struct Receiver {
    child: Child,
    /// The option file with the password, kept until the process has read it.
    _conn: Conn,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// Starts receiving binlog file `from` (and every later one) into `dir`.
    pub fn spawn(
        s: &MysqlSettings,
        tool: &Path,
        dir: &Path,
        from: &str,
        service: &str,
        role: Role,
    ) -> Result<Self, EngineError> {
        let conn = Conn::new(s)?;
        let mut cmd = match setpriv() {
            Some(sp) => {
                let mut c = Command::new(sp);
                c.args(["--pdeathsig", "KILL", "--"]).arg(tool);
                c
            }
            None => Command::new(tool),
        };
        cmd.args(&conn.args)
            .args(["--read-from-remote-server", "--raw", "--stop-never"])
            .arg(format!(
                "--stop-never-slave-server-id={}",
                replica_id(service, role)
            ))
            .arg(format!("--result-file={}/", dir.display()))
            .arg(from)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| EngineError::Failed(format!("cannot run {}: {e}", tool.display())))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let tail = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::warn!(line = %l, "mariadb-binlog");
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == TAIL {
                            t.remove(0);
                        }
                        t.push(l);
                    }
                }
            });
        }
        Ok(Self {
            child,
            _conn: conn,
            stderr,
        })
    }

    /// Waits until `mariadb-binlog` ends; why it did. An error when starting it again cannot help
    /// (an account without the replication privilege).
    pub async fn ended(&mut self) -> Result<String, EngineError> {
        let status = self.child.wait().await;
        // Let the stderr reader take the last lines.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tail = self
            .stderr
            .lock()
            .map(|t| t.join(" | "))
            .unwrap_or_default();
        why_ended(status, &tail)
    }

    /// Stops it and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn why_ended(status: std::io::Result<ExitStatus>, tail: &str) -> Result<String, EngineError> {
    let status = status
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e.to_string());
    if tail.contains("Access denied") || tail.contains("REPLICATION SLAVE") {
        return Err(EngineError::Invalid(format!(
            "mariadb-binlog ended ({status}): {tail}: the account in [service.mysql] needs REPLICATION SLAVE (and BINLOG MONITOR)"
        )));
    }
    Ok(if tail.is_empty() {
        format!("mariadb-binlog ended ({status})")
    } else {
        format!("mariadb-binlog ended ({status}): {tail}")
    })
}

/// The replica server id a receiver registers with: stable per service and role, in the upper
/// half of the id space where real replicas rarely are (followers in one quarter, streamers in the
/// other), so that receivers of different services or roles do not replace each other.
pub fn replica_id(service: &str, role: Role) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in service.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let quarter = match role {
        Role::Follower => 0x8000_0000,
        Role::Streamer => 0xC000_0000,
    };
    (h & 0x3fff_ffff) | quarter
}

/// util-linux's `setpriv`, which makes `mariadb-binlog` die with btar.
fn setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_stable_per_service_and_role_and_high() {
        let f = |s| replica_id(s, Role::Follower);
        assert_eq!(f("shop"), f("shop"));
        assert_ne!(f("shop"), f("orders"));
        assert!(f("shop") >= 0x8000_0000);
        assert_ne!(f("shop"), replica_id("shop", Role::Streamer));
        assert!(replica_id("shop", Role::Streamer) >= 0xC000_0000);
        assert!(f("orders") < 0xC000_0000);
    }

    #[test]
    fn a_missing_privilege_is_not_retried() {
        let ok = why_ended(Err(std::io::Error::other("gone")), "").unwrap_or_default();
        assert!(ok.contains("mariadb-binlog ended"), "{ok}");
        let denied = why_ended(
            Err(std::io::Error::other("x")),
            "Access denied; you need REPLICATION SLAVE",
        );
        assert!(matches!(denied, Err(EngineError::Invalid(_))));
    }
}

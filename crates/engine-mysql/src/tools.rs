//! Finding and running the MariaDB programs: connection arguments (the password in a private option
//! file, never on a command line), the server's user when btar runs as root.

use std::io::Write;
use std::path::{Path, PathBuf};

use btar_engine::EngineError;
use tokio::process::Command;

use crate::MysqlSettings;

/// A program of the MariaDB installation: `bin_dir` first, then `PATH`, then /usr/bin and /usr/sbin.
pub fn program(s: Option<&MysqlSettings>, name: &str) -> Result<PathBuf, EngineError> {
    let mut dirs: Vec<PathBuf> = vec![];
    if let Some(d) = s.and_then(|s| s.bin_dir.as_deref()) {
        dirs.push(d.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.extend(["/usr/bin".into(), "/usr/sbin".into()]);
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let pkg = match name {
                "mariadb-backup" | "mbstream" => "mariadb-backup",
                "mariadbd" | "mariadb-install-db" => "mariadb-server",
                _ => "mariadb-client",
            };
            EngineError::Invalid(format!(
                "`{name}` not found (in bin_dir, PATH, /usr/bin or /usr/sbin): install the Debian package `{pkg}` or set bin_dir under [service.mysql]"
            ))
        })
}

/// Connection arguments for the client tools, and the option file holding the password (kept alive
/// as long as the command runs). The option file, when there is one, must be the first argument.
pub struct Conn {
    pub args: Vec<String>,
    _defaults: Option<tempfile::NamedTempFile>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

impl Conn {
    pub fn new(s: &MysqlSettings) -> Result<Self, EngineError> {
        let mut args = vec![];
        let mut file = None;
        match &s.secret()? {
            Some(pw) => {
                let mut f = tempfile::Builder::new()
                    .prefix("btar-mysql-")
                    .suffix(".cnf")
                    .tempfile()
                    .map_err(|e| EngineError::Failed(format!("option file: {e}")))?;
                let escaped = pw.replace('\\', "\\\\").replace('"', "\\\"");
                // [client] for the `mariadb` client, [mariadb-backup] for the backup tool.
                writeln!(
                    f,
                    "[client]\npassword=\"{escaped}\"\n[mariadb-backup]\npassword=\"{escaped}\""
                )
                .map_err(|e| EngineError::Failed(format!("option file: {e}")))?;
                args.push(format!("--defaults-file={}", f.path().display()));
                file = Some(f);
            }
            None => args.push("--no-defaults".into()),
        }
        args.push(format!("--user={}", s.user.as_deref().unwrap_or("root")));
        match &s.socket {
            Some(sock) => args.push(format!("--socket={sock}")),
            None => {
                args.push(format!(
                    "--host={}",
                    s.host.as_deref().unwrap_or("127.0.0.1")
                ));
                args.push(format!("--port={}", s.port.unwrap_or(3306)));
                args.push("--protocol=TCP".into());
            }
        }
        Ok(Self {
            args,
            _defaults: file,
        })
    }
}

/// Runs one statement with the `mariadb` client; tab-separated rows without headers.
pub async fn query(s: &MysqlSettings, sql: &str) -> Result<String, EngineError> {
    let conn = Conn::new(s)?;
    let out = Command::new(program(Some(s), "mariadb")?)
        .args(&conn.args)
        .args([
            "--batch",
            "--skip-column-names",
            "--connect-timeout=10",
            "-e",
            sql,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| EngineError::Failed(format!("cannot run mariadb: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // Client errors 2002/2003/2013 are "cannot reach the server".
        let unreachable = ["ERROR 2002", "ERROR 2003", "ERROR 2013", "ERROR 2005"]
            .iter()
            .any(|c| err.contains(c));
        let msg = format!("MariaDB ({}): `{sql}` failed: {err}", s.describe());
        return Err(if unreachable {
            EngineError::Unavailable(msg)
        } else {
            EngineError::Failed(msg)
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// The OS user a server started by btar runs as when btar is root (`mysql`); `None` otherwise.
pub fn server_user() -> Option<(String, u32, u32)> {
    if btar_region::effective_uid()? != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.first() != Some(&"mysql") {
            return None;
        }
        Some((
            f[0].to_string(),
            f.get(2)?.parse().ok()?,
            f.get(3)?.parse().ok()?,
        ))
    })
}

/// Hands `dir` (recursively) to the server's user when btar runs as root.
pub fn hand_over(dir: &Path) -> Result<(), EngineError> {
    let Some((_, uid, gid)) = server_user() else {
        return Ok(());
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .map_err(|e| EngineError::Failed(format!("chown {}: {e}", p.display())))?;
        if p.is_dir() && !p.is_symlink() {
            let rd = std::fs::read_dir(&p)
                .map_err(|e| EngineError::Failed(format!("listing {}: {e}", p.display())))?;
            for e in rd.flatten() {
                stack.push(e.path());
            }
        }
    }
    Ok(())
}

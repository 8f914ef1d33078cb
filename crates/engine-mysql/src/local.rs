//! The MariaDB server `btar up --engine mysql` runs for its embedded default: `mariadb-install-db`
//! and `mariadbd` under `<dir>/mysql`, listening on loopback only, binary logging on (ROW, so a
//! restore can replay it), root's password in a file beside the config.
//!
//! The password is set by an init file on the server's first start, before it accepts a
//! connection: a fresh install lets root in without one, and any local user could otherwise read
//! the region keys and the API token with `LOAD_FILE`. Root keeps two accounts, `root@localhost`
//! (the socket, in the private directory) and `root@127.0.0.1` (TCP; the server resolves no names);
//! the others a fresh install creates (`::1`, the host's name) are dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btar_engine::{AgentSettings, EngineError, LocalServer, LocalSpec, OsUser};

use crate::MysqlSettings;
use crate::tools::{self, program, server_user};

/// Runs MariaDB servers under a `btar up` directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalMariaDb;

const PID_FILE: &str = "mariadbd.pid";
/// How long a starting server may take to answer (crash recovery of a large demo included).
const READY: Duration = Duration::from_secs(120);
/// How long a stopping server may take before it is killed.
const STOP: Duration = Duration::from_secs(60);

fn data_dir(spec: &LocalSpec) -> PathBuf {
    spec.dir.join("mysql")
}

/// The server's socket: in the private directory when the path fits a socket address, else /tmp.
fn socket(dir: &Path, port: u16) -> PathBuf {
    let own = dir.join("run").join("mariadbd.sock");
    if own.as_os_str().len() < 100 {
        own
    } else {
        PathBuf::from(format!("/tmp/btar-up-mariadbd-{port}.sock"))
    }
}

fn typed(s: &AgentSettings) -> Result<MysqlSettings, EngineError> {
    crate::engine::settings(s)
}

fn failed(what: &str, path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Failed(format!("{what} {}: {e}", path.display()))
}

/// The pid in `data_dir`'s pid file when that process is alive (a zombie counts as gone: a
/// server this process started and has not reaped).
pub(crate) fn running_pid(data_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(data_dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    (!rest.trim_start().starts_with('Z')).then_some(pid)
}

/// A started `what` that exited: its status and the end of its error log.
pub(crate) fn exited(what: &str, status: std::process::ExitStatus, log: &Path) -> EngineError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    EngineError::Failed(format!(
        "{what} exited ({status}); {}:\n{}",
        log.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}

/// Stops the server whose pid file is in `data_dir`: SIGTERM, then SIGKILL after `patience`.
pub(crate) fn stop_by_pid_file(data_dir: &Path, patience: Duration) -> Result<(), EngineError> {
    let Some(pid) = running_pid(data_dir) else {
        return Ok(());
    };
    let signal = |sig: &str| {
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .map_err(|e| EngineError::Failed(format!("kill {sig} {pid}: {e}")))
    };
    signal("-TERM")?;
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if running_pid(data_dir).is_none() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("-KILL")?;
    Ok(())
}

/// Creates the data directory with `mariadb-install-db`. A directory a killed install left
/// behind (no system tables yet) is removed first.
fn install(spec: &LocalSpec, s: &MysqlSettings) -> Result<(), EngineError> {
    let dir = data_dir(spec);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| failed("removing", &dir, e))?;
    }
    let mut c = Command::new(program(Some(s), "mariadb-install-db")?);
    c.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]);
    if let Some((user, _, _)) = server_user() {
        c.arg(format!("--user={user}"));
    }
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EngineError::Failed(format!("cannot run mariadb-install-db: {e}")))?;
    if !out.status.success() {
        return Err(EngineError::Failed(format!(
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The statements the first start runs before it accepts connections (see the module's text).
fn init_sql(password: &str) -> String {
    let pw = password.replace('\\', "\\\\").replace('\'', "\\'");
    format!(
        "SET SESSION sql_log_bin = 0;\n\
         ALTER USER 'root'@'localhost' IDENTIFIED BY '{pw}';\n\
         ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{pw}';\n\
         DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1');\n\
         FLUSH PRIVILEGES;\n"
    )
}

/// Starts `mariadbd` detached (its own process group: a Ctrl-C in the terminal is btar's to
/// handle) and waits until it answers.
fn start(spec: &LocalSpec, s: &MysqlSettings, init_file: Option<&Path>) -> Result<(), EngineError> {
    let dir = data_dir(spec);
    let port = s.port.unwrap_or(3306);
    let sock = socket(&spec.dir, port);
    if let Some(parent) = sock.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed("creating", parent, e))?;
    }
    let log = spec.dir.join("mysql.err");
    let server = program(Some(s), "mariadbd")?;
    let mut c = Command::new(&server);
    c.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--pid-file={}", dir.join(PID_FILE).display()))
        .arg(format!("--log-error={}", log.display()))
        .arg(format!("--log-bin={}", dir.join("binlog").display()))
        .args([
            "--server-id=1",
            "--binlog-format=ROW",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
        ]);
    if let Some(f) = init_file {
        c.arg(format!("--init-file={}", f.display()));
    }
    match server_user() {
        Some((user, _, _)) => {
            c.arg(format!("--user={user}"));
        }
        // Root without a `mysql` user: mariadbd runs as root only when told to.
        None if btar_region::effective_uid() == Some(0) => {
            c.arg("--user=root");
        }
        None => {}
    }
    use std::os::unix::process::CommandExt;
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| EngineError::Failed(format!("cannot run {}: {e}", server.display())))?;
    let deadline = Instant::now() + READY;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(exited("mariadbd", status, &log));
        }
        // Listening is not enough: a connection during startup is reset. Ready when it answers.
        if running_pid(&dir).is_some() && answers(s) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(EngineError::Failed(format!(
                "mariadbd did not answer on port {port} within {READY:?}; see {}",
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the server `s` reaches answers a query (with the settings' account and password).
fn answers(s: &MysqlSettings) -> bool {
    let (Ok(conn), Ok(client)) = (tools::Conn::new(s), program(Some(s), "mariadb")) else {
        return false;
    };
    Command::new(client)
        .args(&conn.args)
        .args(["--connect-timeout=2", "--batch", "-e", "SELECT 1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success())
}

impl LocalServer for LocalMariaDb {
    fn os_user(&self) -> Option<OsUser> {
        let (name, uid, gid) = server_user()?;
        let home = std::fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&name.as_str()))
            .and_then(|f| f.get(5).map(|h| h.to_string()));
        Some(OsUser {
            name,
            uid,
            gid,
            home,
        })
    }

    fn hand_over(&self, dir: &Path) -> Result<(), EngineError> {
        tools::hand_over(dir)
    }

    fn settings(&self, spec: &LocalSpec) -> AgentSettings {
        let s = MysqlSettings {
            host: Some("127.0.0.1".into()),
            port: Some(spec.port),
            user: Some("root".into()),
            password_file: Some(spec.password_file.display().to_string()),
            datadir: Some(data_dir(spec).display().to_string()),
            ..Default::default()
        };
        AgentSettings::from_typed(&s).unwrap_or_default()
    }

    fn is_ours(&self, spec: &LocalSpec, settings: &AgentSettings) -> bool {
        typed(settings).is_ok_and(|s| {
            s.datadir.as_deref() == Some(data_dir(spec).to_str().unwrap_or_default())
        })
    }

    fn data_dir(&self, spec: &LocalSpec) -> PathBuf {
        data_dir(spec)
    }

    fn ensure_running(
        &self,
        spec: &LocalSpec,
        settings: &AgentSettings,
    ) -> Result<bool, EngineError> {
        let s = typed(settings)?;
        let dir = data_dir(spec);
        if running_pid(&dir).is_some() {
            return Ok(false);
        }
        if !dir.join("mysql").is_dir() {
            install(spec, &s)?;
            let password = s.secret()?.ok_or_else(|| {
                EngineError::Invalid("the local MariaDB needs a password_file".into())
            })?;
            // Read by the server (its user) once, then removed.
            let init = spec.dir.join("mysql-init.sql");
            write_private(&init, &init_sql(&password))?;
            tools::hand_over(&init)?;
            let started = start(spec, &s, Some(&init));
            let _ = std::fs::remove_file(&init);
            started?;
        } else {
            start(spec, &s, None)?;
        }
        Ok(true)
    }

    fn running(&self, dir: &Path) -> Vec<PathBuf> {
        btar_engine::fork_dirs(dir)
            .into_iter()
            .filter(|p| running_pid(p).is_some())
            .collect()
    }

    fn stop(&self, _settings: &AgentSettings, data_dir: &Path) -> Result<(), EngineError> {
        stop_by_pid_file(data_dir, STOP)
    }

    fn describe(&self, settings: &AgentSettings) -> Option<String> {
        typed(settings).ok().map(|s| s.describe())
    }
}

/// Creates (or replaces) a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), EngineError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed("creating", path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| failed("writing", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_file_sets_root_passwords_without_binlogging_them() {
        let sql = init_sql("a'b\\c");
        assert!(sql.starts_with("SET SESSION sql_log_bin = 0;"), "{sql}");
        assert!(
            sql.contains("'root'@'127.0.0.1' IDENTIFIED BY 'a\\'b\\\\c'"),
            "{sql}"
        );
    }

    #[test]
    fn settings_name_the_data_directory_and_a_password_file_not_the_password() {
        let spec = LocalSpec {
            dir: "/d".into(),
            port: 3999,
            archive_command: String::new(),
            password_file: "/d/mysql-password".into(),
        };
        let a = LocalMariaDb.settings(&spec);
        let s = typed(&a).unwrap_or_default();
        assert_eq!(s.port, Some(3999));
        assert_eq!(s.password, None);
        assert_eq!(s.password_file.as_deref(), Some("/d/mysql-password"));
        assert!(LocalMariaDb.is_ours(&spec, &a));
        let other = LocalSpec {
            dir: "/e".into(),
            ..spec
        };
        assert!(!LocalMariaDb.is_ours(&other, &a));
    }
}

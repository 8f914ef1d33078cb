//! Throwaway MariaDB servers: `mariadb-install-db` and `mariadbd` in a temporary directory on a free
//! loopback port, binary logging on (ROW). The machine's own MariaDB (3306) is never touched. When
//! the tests run as root the server runs as the same database user the PostgreSQL clusters and the
//! btar processes of the tests run as, so that `mariadb-backup` (run by btar) can read its files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btar_engine_pg::cluster;

use crate::{TestDir, describe, run_ok};

/// A running MariaDB server. Stopped on drop.
#[derive(Debug)]
pub struct MariaDb {
    pub port: u16,
    pub data_dir: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
    running: bool,
    /// The server process when this harness started it (reaped on stop).
    child: Option<std::process::Child>,
    /// `mariadbd`'s arguments when this harness started it, to start it again.
    server_args: Vec<std::ffi::OsString>,
}

fn sbin(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` not found: apt install mariadb-server mariadb-backup"))
}

impl MariaDb {
    /// Creates a server in `dir/name` and starts it with binary logging (`binlog.NNNNNN` in its
    /// data directory).
    pub fn start(dir: &TestDir, name: &str) -> Self {
        Self::start_with(dir, name, true)
    }

    /// [`Self::start`], with binary logging on or off.
    pub fn start_with(dir: &TestDir, name: &str, log_bin: bool) -> Self {
        let data_dir = dir.path().join(name);
        let user = cluster::db_user().map(|(u, _, _)| u);
        let mut install = Command::new(sbin("mariadb-install-db"));
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]);
        if let Some(u) = &user {
            install.arg(format!("--user={u}"));
        }
        // Seen once in parallel runs on a loaded 2-core machine: the bootstrap failed with no
        // reason kept. Setup, not the code under test: say so and try once more on a clean slate.
        let first = install
            .output()
            .unwrap_or_else(|e| panic!("cannot run mariadb-install-db: {e}"));
        if !first.status.success() {
            eprintln!(
                "mariadb-install-db failed, retrying once: {}",
                describe(&first)
            );
            let _ = std::fs::remove_dir_all(&data_dir);
            run_ok(&mut install);
        }
        let port = crate::free_port();
        let log = dir.path().join(format!("{name}.err"));
        let pid_file = data_dir.join("mariadbd.pid");
        let mut server = Command::new(sbin("mariadbd"));
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--socket={}",
                dir.path().join(format!("{name}.sock")).display()
            ))
            .arg(format!("--pid-file={}", pid_file.display()))
            .arg(format!("--log-error={}", log.display()))
            .args([
                "--server-id=1",
                "--binlog-format=ROW",
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=2",
                "--skip-name-resolve",
            ]);
        if log_bin {
            server.arg(format!("--log-bin={}", data_dir.join("binlog").display()));
        }
        if let Some(u) = &user {
            server.arg(format!("--user={u}"));
        }
        let server_args: Vec<std::ffi::OsString> =
            server.get_args().map(|a| a.to_os_string()).collect();
        let mut db = Self {
            port,
            data_dir,
            pid_file,
            log,
            running: false,
            child: None,
            server_args,
        };
        db.spawn_server();
        db
    }

    fn spawn_server(&mut self) {
        let child = Command::new(sbin("mariadbd"))
            .args(&self.server_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run mariadbd: {e}"));
        self.child = Some(child);
        self.running = true;
        self.wait_ready();
    }

    /// Stops the server cleanly and starts it again on the same data directory and port (it
    /// begins a new binlog file, as a restarted production server does).
    pub fn restart(&mut self) {
        assert!(
            !self.server_args.is_empty(),
            "only a server this harness started can be restarted"
        );
        self.stop();
        self.spawn_server();
    }

    /// Adopts a server btar restored and started (its pid file `mariadbd.pid` in `data_dir`), so
    /// the test stops it.
    pub fn adopt(data_dir: &Path, port: u16) -> Self {
        Self {
            port,
            data_dir: data_dir.to_path_buf(),
            pid_file: data_dir.join("mariadbd.pid"),
            log: data_dir.join("btar-restore.err"),
            running: true,
            child: None,
            server_args: vec![],
        }
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.try_sql("SELECT 1") {
                Ok(_) => return,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "MariaDB on port {} not ready within 60 s: {e}; log: {}",
                    self.port,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.try_sql_as_root(None, sql)
    }

    /// [`Self::try_sql`] as root with `password` (a server that has one, as `btar up` makes).
    pub fn try_sql_as_root(&self, password: Option<&str>, sql: &str) -> Result<String, String> {
        let mut c = Command::new("mariadb");
        c.args([
            "--no-defaults",
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
        ])
        .arg(format!("--port={}", self.port))
        .args(["--batch", "--skip-column-names", "-e", sql])
        .env_remove("MYSQL_PWD")
        .stdin(Stdio::null());
        if let Some(p) = password {
            c.arg(format!("--password={p}"));
        }
        let out = c.output().map_err(|e| format!("cannot run mariadb: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(describe(&out))
        }
    }

    /// Runs SQL; tab-separated rows without headers. Panics on error.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("mariadb -e {sql:?}: {e}"))
    }

    /// Stops the server (SIGTERM, then waits for its pid file to go).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let pid = match &self.child {
            Some(c) => c.id().to_string(),
            None => match std::fs::read_to_string(&self.pid_file) {
                Ok(p) => p.trim().to_string(),
                Err(_) => return,
            },
        };
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(&pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(&pid) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

/// Whether process `pid` runs (a zombie — exited, not yet reaped by its parent — does not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid).join("status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(false)
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

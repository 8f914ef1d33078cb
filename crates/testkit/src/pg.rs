//! Throwaway PostgreSQL clusters: `initdb` on a free port in a temporary directory, with the
//! installed server binaries. PostgreSQL refuses to run as root, so when the tests run as root the
//! cluster, and every btar process that touches it, runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use btar_engine_pg::cluster;

/// A temporary directory the database user can write to. Removed on drop.
#[derive(Debug)]
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("btar-test-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        cluster::hand_over(dir.path()).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// A subdirectory owned by the database user.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        cluster::hand_over(&p).unwrap();
        p
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

/// `program` run as the database user when we are root, else as ourselves.
pub fn as_db_user(program: impl AsRef<Path>) -> Command {
    match cluster::db_user() {
        Some((user, _, _)) => {
            let mut c = Command::new("runuser");
            c.args(["-u", &user, "--"]).arg(program.as_ref());
            c
        }
        None => Command::new(program.as_ref()),
    }
}

/// Runs a command and returns its output, panicking with both streams when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn describe(out: &Output) -> String {
    format!(
        "{} | stdout: {} | stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// A running PostgreSQL cluster on a free loopback port. Stopped (immediate) on drop.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    pub data_dir: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    running: bool,
}

/// Gives `path` (recursively) to the database user, as btar does for what its servers read; a
/// no-op unless the tests run as root.
pub fn hand_over(path: &Path) {
    cluster::hand_over(path).unwrap_or_else(|e| panic!("hand over {}: {e}", path.display()));
}

/// The OS user PostgreSQL runs as when the tests run as root.
pub fn db_user() -> Option<(String, u32, u32)> {
    cluster::db_user()
}

/// Stops whatever PostgreSQL serves `data_dir` (a cluster a test did not start itself).
pub fn stop_data_dir(data_dir: &Path) {
    if let Ok(bin) = cluster::bin_dir(None) {
        let _ = cluster::stop(&bin, data_dir, "immediate");
    }
}

/// How [`PgCluster::init_with`] makes a cluster.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// `initdb --wal-segsize` in MiB (PostgreSQL's default is 16).
    pub wal_segsize_mb: Option<u32>,
    /// The first WAL segment the cluster writes (`pg_resetwal -l`), e.g. just before a log id ends.
    pub next_wal_segment: Option<String>,
}

impl PgCluster {
    /// `initdb` a new cluster in `dir/name` and start it. With `archive_command`, WAL archiving is on.
    pub fn init(dir: &TestDir, name: &str, archive_command: Option<&str>) -> Self {
        Self::init_with(dir, name, archive_command, &InitOptions::default())
    }

    /// [`Self::init`] with a WAL segment size and a starting WAL position of the test's choosing.
    pub fn init_with(
        dir: &TestDir,
        name: &str,
        archive_command: Option<&str>,
        opts: &InitOptions,
    ) -> Self {
        let bin =
            cluster::bin_dir(None).expect("PostgreSQL server binaries (apt install postgresql)");
        let data_dir = dir.path().join(name);
        let mut initdb = as_db_user(bin.join("initdb"));
        initdb.arg("-D").arg(&data_dir).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        if let Some(mb) = opts.wal_segsize_mb {
            initdb.arg(format!("--wal-segsize={mb}"));
        }
        run_ok(&mut initdb);
        if let Some(segment) = &opts.next_wal_segment {
            // A fresh cluster is shut down cleanly, so pg_resetwal may move its WAL forward: a
            // test reaches a log-id rollover without writing gigabytes.
            run_ok(
                as_db_user(bin.join("pg_resetwal"))
                    .args(["-l", segment, "-D"])
                    .arg(&data_dir),
            );
        }
        let port = crate::free_port();
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             wal_level = replica\nfsync = off\nfull_page_writes = on\nshared_buffers = 32MB\n\
             max_wal_size = 256MB\nlog_min_messages = warning\n",
            data_dir.display()
        );
        match archive_command {
            Some(cmd) => conf.push_str(&format!(
                "archive_mode = on\narchive_command = '{}'\n",
                cmd.replace('\'', "''")
            )),
            None => conf.push_str("archive_mode = off\n"),
        }
        let pg_conf = data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&pg_conf).unwrap();
        text.push_str(&conf);
        std::fs::write(&pg_conf, text).unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let mut c = Self {
            port,
            data_dir,
            bin,
            log,
            running: false,
        };
        c.start();
        c
    }

    /// Adopts a cluster btar restored and started, so the test stops it.
    pub fn adopt(data_dir: &Path, port: u16) -> Self {
        Self {
            port,
            data_dir: data_dir.to_path_buf(),
            bin: cluster::bin_dir(None).unwrap(),
            log: data_dir.join("btar-restore.log"),
            running: true,
        }
    }

    pub fn start(&mut self) {
        cluster::start(&self.bin, &self.data_dir, &self.log)
            .unwrap_or_else(|e| panic!("{e}: {}", cluster::log_excerpt(&self.log)));
        self.running = true;
    }

    pub fn stop(&mut self) {
        if self.running {
            let _ = cluster::stop(&self.bin, &self.data_dir, "fast");
            self.running = false;
        }
    }

    /// Stops the server as a crash would (`-m immediate`): nothing more is written or archived.
    pub fn crash(&mut self) {
        if self.running {
            let _ = cluster::stop(&self.bin, &self.data_dir, "immediate");
            self.running = false;
        }
    }

    /// Key=value connection string (TCP on loopback as `postgres`).
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(describe(&out))
        }
    }

    /// Runs SQL and returns the unaligned, tuples-only output; panics on error.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql -c {sql:?}: {e}"))
    }

    pub fn pgbench(&self, args: &[&str]) -> String {
        run_ok(self.pgbench_cmd(args).stdin(Stdio::null()))
    }

    /// A pgbench command against this cluster, for running in the background.
    pub fn pgbench_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("pgbench");
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(args)
        .arg("postgres")
        .stdout(Stdio::null());
        c
    }

    /// Switches to a new WAL segment and waits until the finished one is archived.
    pub fn switch_and_archive(&self) -> String {
        self.psql("SELECT txid_current()");
        let seg = self.psql("SELECT pg_walfile_name(pg_switch_wal())");
        self.wait_archived(&seg);
        seg
    }

    pub fn wait_archived(&self, segment: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            // Names sort in WAL order within a timeline, and a later timeline sorts after.
            if last.len() == 24 && last.as_str() >= segment {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "segment {segment} not archived within 60 s (last {last:?}; {})",
                self.psql("SELECT failed_count || ' failures, last ' || coalesce(last_failed_wal, '-') FROM pg_stat_archiver")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fingerprint of the pgbench tables and the `marks` table (if present): equal iff same rows.
    pub fn fingerprint(&self) -> String {
        self.psql(
            "SELECT (SELECT count(*) || ':' || md5(coalesce(string_agg(aid || '/' || abalance, ',' ORDER BY aid), '')) FROM pgbench_accounts) \
             || ' ' || (SELECT count(*) || ':' || md5(coalesce(string_agg(tid || '/' || tbalance, ',' ORDER BY tid), '')) FROM pgbench_tellers) \
             || ' ' || (SELECT count(*) || ':' || coalesce(sum(delta), 0) FROM pgbench_history)",
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = cluster::stop(&self.bin, &self.data_dir, "immediate");
        }
    }
}

/// The `port=` of a libpq `key=value` connection string btar printed (a fork's, `btar up`'s).
pub fn conninfo_port(conninfo: &str) -> u16 {
    conninfo
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{conninfo}`"))
}

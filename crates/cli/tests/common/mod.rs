//! Shared harness for the CLI's integration tests: a config file with real regions (local filesystem
//! or the S3 server on loopback), a PostgreSQL cluster archiving through the built `btar`, and a way
//! to run `btar` as the database user.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use btar_region::RegionConfig;
use btar_testkit::{PgCluster, S3Server, TestDir, as_db_user, describe, free_port, fs_region};

pub const SVC: &str = "orders";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
}

/// A test world: temp dir, regions, optional S3 server, config file, and the service's cluster.
pub struct World {
    pub dir: TestDir,
    pub s3: Option<S3Server>,
    pub regions: Vec<RegionConfig>,
    pub config: PathBuf,
    pub pg: Option<PgCluster>,
}

impl World {
    /// Two regions (`home`, `away`) on the given backend; no cluster yet.
    pub fn new(backend: Backend) -> Self {
        let dir = TestDir::new();
        let (s3, regions) = match backend {
            Backend::Fs => (
                None,
                vec![
                    fs_region("home", &dir.sub("store-home")),
                    fs_region("away", &dir.sub("store-away")),
                ],
            ),
            Backend::S3 => {
                let s3 = S3Server::start();
                let r = vec![
                    s3.region("home", "home-bucket"),
                    s3.region("away", "away-bucket"),
                ];
                (Some(s3), r)
            }
        };
        let config = dir.path().join("btar.toml");
        let w = Self {
            dir,
            s3,
            regions,
            config,
            pg: None,
        };
        w.write_config("host=127.0.0.1 port=1 user=postgres dbname=postgres");
        w
    }

    /// A world with a running cluster archiving WAL into the service's home region.
    pub fn with_cluster(backend: Backend) -> Self {
        let mut w = Self::new(backend);
        // As an operator would: the service is registered (its location created) before the
        // database's archive_command starts calling `wal-push`.
        w.register();
        let archive = format!("{} wal-push --service {SVC} %p", w.btar_prefix());
        let pg = PgCluster::init(&w.dir, "source", Some(&archive));
        w.write_config(&pg.conninfo());
        w.pg = Some(pg);
        w
    }

    /// A world like [`World::with_cluster`]'s whose service has plan `plan` (a `[[plan]]` table's
    /// keys after its name) and the config tables `extra`. The plan is taken from the config at
    /// registration, so it is written before and again after the cluster's config.
    pub fn with_planned_cluster(cluster: &str, plan: &str, extra: &str) -> Self {
        let mut w = Self::new(Backend::Fs);
        w.add_plan(plan, extra);
        w.register();
        let archive = format!("{} wal-push --service {SVC} %p", w.btar_prefix());
        let pg = PgCluster::init(&w.dir, cluster, Some(&archive));
        w.write_config(&pg.conninfo());
        w.add_plan(plan, extra);
        w.pg = Some(pg);
        w
    }

    fn add_plan(&self, plan: &str, extra: &str) {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let mut cfg: toml::Table = text.parse().expect("config is TOML");
        if let Some(svc) = cfg
            .get_mut("service")
            .and_then(|s| s.as_array_mut())
            .and_then(|a| a.first_mut())
            .and_then(|s| s.as_table_mut())
        {
            svc.insert("plan".into(), "the-plan".into());
        }
        let mut text = toml::to_string(&cfg).expect("config to TOML");
        text.push_str(&format!(
            "\n[[plan]]\nname = \"the-plan\"\n{plan}\n{extra}\n"
        ));
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Deletes archived log file `name` from a filesystem region's store; returns its path.
    pub fn delete_archived(&self, region: &str, name: &str) -> PathBuf {
        let store = self.dir.path().join(format!("store-{region}"));
        let victim = btar_testkit::files_under(&store)
            .into_iter()
            .find(|p| p.ends_with(name))
            .expect("log object on disk");
        std::fs::remove_file(&victim).expect("delete log object");
        victim
    }

    /// Creates the config's service's home location (`btar service init`), as an operator does
    /// before its log is archived ahead of the first backup (`wal-push` never creates one).
    pub fn register(&self) {
        let out = self.btar(&["service", "init", SVC]);
        assert!(out.status.success(), "register: {}", describe(&out));
    }

    /// A fake 16 MiB WAL segment file `name` (bytes `fill`), readable by the database user.
    pub fn wal_segment(&self, name: &str, fill: u8) -> PathBuf {
        let p = self.dir.sub("pg_wal").join(name);
        let mut data = vec![fill; 16 << 20];
        data[100] = 7;
        std::fs::write(&p, data).expect("write segment");
        btar_testkit::hand_over(&p);
        p
    }

    pub fn pg(&self) -> &PgCluster {
        self.pg.as_ref().expect("world has a cluster")
    }

    /// Adds a `[storage]` setting to the config, e.g. `pack_size_mib = 1` so that a small backup
    /// writes several packs (one to damage, one to kill a copy between).
    pub fn set_storage(&self, setting: &str) {
        let mut text = std::fs::read_to_string(&self.config).expect("read config");
        text.push_str(&format!("\n[storage]\n{setting}\n"));
        std::fs::write(&self.config, text).expect("write config");
    }

    /// Rewrites the config so the service points at `conninfo`.
    pub fn write_config(&self, conninfo: &str) {
        write_config_file(&self.config, &self.regions, conninfo);
    }

    /// `btar --config CFG` as a shell prefix (for archive_command).
    pub fn btar_prefix(&self) -> String {
        format!(
            "{} --config {}",
            env!("CARGO_BIN_EXE_btar"),
            self.config.display()
        )
    }

    /// Runs btar as the database user with this world's config.
    pub fn btar(&self, args: &[&str]) -> Output {
        btar_with(&self.config, args)
    }

    /// Runs btar and returns its JSON output, panicking with stderr on failure.
    pub fn btar_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        let out = self.btar(&a);
        assert!(
            out.status.success(),
            "btar {args:?} failed: {}",
            describe(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("btar {args:?}: bad JSON ({e}): {}", describe(&out)))
    }

    /// Runs btar expecting failure; returns stderr.
    pub fn btar_err(&self, args: &[&str]) -> String {
        let out = self.btar(args);
        assert!(
            !out.status.success(),
            "btar {args:?} should have failed: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Files `wal-fetch` delivered from its spool (every spool of this world's config), in order.
    pub fn spool_hits(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.dir.path().join("btar-spool")) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .flat_map(|e| {
                std::fs::read_to_string(e.path().join("hits"))
                    .unwrap_or_default()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn backup(&self) -> String {
        let v = self.btar_json(&["backup", "create", SVC]);
        v["backup_name"].as_str().expect("backup_name").to_string()
    }

    pub fn backup_names(&self) -> Vec<String> {
        let v = self.btar_json(&["backup", "list", SVC]);
        v["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .map(|b| b["backup_name"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Restores into a new directory, starts and promotes it; returns the cluster and btar's report.
    pub fn restore(&self, name: &str, extra: &[&str]) -> (PgCluster, serde_json::Value) {
        let data_dir = self.dir.path().join(name);
        let port = free_port();
        let port_s = port.to_string();
        let dd = data_dir.display().to_string();
        let mut args = vec![
            "restore",
            SVC,
            "--data-dir",
            &dd,
            "--start",
            "--port",
            &port_s,
            "--set",
            "listen_addresses=127.0.0.1",
            "--promote-timeout",
            "120s",
        ];
        args.extend_from_slice(extra);
        let out = self.btar(&{
            let mut a = vec!["--output", "json"];
            a.extend_from_slice(&args);
            a
        });
        // Adopt first so a failed assertion still stops the server.
        let cluster = PgCluster::adopt(&data_dir, port);
        assert!(
            out.status.success(),
            "restore {extra:?} failed: {}",
            describe(&out)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("restore JSON");
        (cluster, v)
    }
}

pub fn write_config_file(path: &Path, regions: &[RegionConfig], conninfo: &str) {
    #[derive(serde::Serialize)]
    struct Pg<'a> {
        conninfo: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Service<'a> {
        name: &'a str,
        engine: &'a str,
        cloud: &'a str,
        additional_backup_regions: Vec<&'a str>,
        allow_cross_provider: bool,
        pg: Pg<'a>,
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        region: &'a [RegionConfig],
        service: Vec<Service<'a>>,
    }
    let f = File {
        region: regions,
        service: vec![Service {
            name: SVC,
            engine: "pg",
            cloud: "home",
            additional_backup_regions: vec!["away"],
            // Mixed worlds (S3 primary, filesystem secondary) cross providers on purpose.
            allow_cross_provider: regions.iter().any(|r| r.provider != regions[0].provider),
            pg: Pg { conninfo },
        }],
    };
    std::fs::write(path, toml::to_string(&f).expect("config TOML")).expect("write config");
}

pub fn btar_with(config: &Path, args: &[&str]) -> Output {
    let mut c: Command = as_db_user(env!("CARGO_BIN_EXE_btar"));
    c.arg("--config").arg(config).args(args);
    c.env_remove("BTAR_CONFIG").env_remove("RUST_LOG");
    c.output().expect("run btar")
}

/// Marks: a table whose rows say which phase of a test wrote them.
pub fn mark(pg: &PgCluster, tag: &str) {
    pg.psql(&format!(
        "CREATE TABLE IF NOT EXISTS marks (id serial PRIMARY KEY, tag text NOT NULL); INSERT INTO marks(tag) VALUES ('{tag}')"
    ));
}

pub fn marks(pg: &PgCluster) -> Vec<String> {
    let s = pg.psql("SELECT coalesce(string_agg(tag, ',' ORDER BY id), '') FROM marks");
    if s.is_empty() {
        vec![]
    } else {
        s.split(',').map(String::from).collect()
    }
}

/// The port a `btar server` child (stdout piped) announced on its first line, "btar server: API
/// http://127.0.0.1:PORT/v1, …".
pub fn announced_port(child: &mut std::process::Child) -> u16 {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("server stdout is piped"))
        .read_line(&mut line)
        .expect("read the server's announcement");
    api_port(&line).unwrap_or_else(|| panic!("server announced {line:?}"))
}

/// The port of the first `http://127.0.0.1:PORT/` in an announcement line.
fn api_port(line: &str) -> Option<u16> {
    line.split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
}

/// The error object a command printed on stderr under `--output json`.
pub fn error_of(out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON error ({e}): {stderr}"))
}

/// A `btar server` a test started; stopped with SIGTERM (which `runuser` passes on) and waited
/// for when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub port: u16,
}

impl ServerProcess {
    /// Spawns `cmd` (`btar … server --listen 127.0.0.1:0`) with stdout piped and reads the port
    /// from the line it announces ("btar server: API http://127.0.0.1:PORT/v1, …").
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn btar server");
        let port = announced_port(&mut child);
        ServerProcess { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `btar --output json ARGS` without a config (as `btar up` is run), as the database user; its
/// JSON, or a panic naming the args and both streams.
pub fn btar_json_without_config(args: &[&str]) -> serde_json::Value {
    let out = as_db_user(env!("CARGO_BIN_EXE_btar"))
        .args(["--output", "json"])
        .args(args)
        .env_remove("BTAR_CONFIG")
        .output()
        .expect("run btar");
    assert!(out.status.success(), "btar {args:?}: {}", describe(&out));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// A serving `btar up ARGS` (as the database user): the process, the API's port from its
/// "serving:" line, that line, and the rest of its output.
pub struct UpServing {
    pub child: std::process::Child,
    pub port: u16,
    pub line: String,
    pub lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

pub fn up_serving(args: &[&str]) -> UpServing {
    use std::io::BufRead;
    let mut child = as_db_user(env!("CARGO_BIN_EXE_btar"))
        .arg("up")
        .args(args)
        .env_remove("BTAR_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run btar up");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("serving: API http://") => break l,
            Some(Ok(_)) => continue,
            other => {
                let _ = child.kill();
                panic!("btar up ended before serving: {other:?}");
            }
        }
    };
    let port = api_port(&line).unwrap_or_else(|| panic!("no API port in {line}"));
    UpServing {
        child,
        port,
        line,
        lines,
    }
}

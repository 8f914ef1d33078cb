#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The web console in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/console/e2e.mjs`) against a real `btar server`, a real PostgreSQL service and two
//! filesystem regions (plus a region on another provider, never opened, to show the same-provider
//! rule). The script signs in (a wrong token first), enables the additional region, runs "Back up
//! now" until the copy job is COMPLETED, is refused a second region change by the 24-hour rule,
//! forks from the secondary to a point in time and reads the fork's rows back with psql, and visits
//! the copy-jobs, events and drills views.
//!
//! Needs `npm ci` in `crates/cli/tests/console` and `/usr/bin/chromium` (`.ci/run` installs both).
//! With `BTAR_CONSOLE_SCREENSHOTS=DIR` the script also saves one screenshot per view there (the
//! README's come from `BTAR_CONSOLE_SCREENSHOTS=$PWD/docs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btar_testkit::{PgCluster, as_db_user, describe};
use common::{Backend, SVC, World};

const TOKEN: &str = "console-test-token-7c1d9e44";
const FORK: &str = "orders-restored";

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// The world's config as the test wants it: the service without additional regions (the browser
/// enables one), a third region on another provider, the API token, and a loopback notify address.
fn rewrite_config(w: &World) {
    let text = std::fs::read_to_string(&w.config).unwrap();
    let mut cfg: toml::Table = text.parse().unwrap();
    let svc = cfg["service"].as_array_mut().unwrap()[0]
        .as_table_mut()
        .unwrap();
    svc.insert(
        "additional_backup_regions".into(),
        toml::Value::Array(vec![]),
    );
    svc.insert("allow_cross_provider".into(), false.into());
    let mut text = toml::to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[server]\ntoken = \"literal:{TOKEN}\"\nnotify = \"127.0.0.1:0\"\n\n\
         [[region]]\nname = \"far-aws\"\nprovider = \"aws\"\nurl = \"s3://btar-console-test/never-opened\"\n"
    ));
    std::fs::write(&w.config, text).unwrap();
}

/// `btar server` on a free loopback port, as the database user; stopped (SIGINT) on drop.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Server {
    fn start(config: &Path) -> Self {
        let mut child = as_db_user(env!("CARGO_BIN_EXE_btar"))
            .arg("--config")
            .arg(config)
            .args(["server", "--listen", "127.0.0.1:0"])
            .env_remove("BTAR_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let port = common::announced_port(&mut child);
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // btar itself, or its children when runuser started it as the database user.
        let pid = self.child.id().to_string();
        let _ = Command::new("pkill").args(["-INT", "-P", &pid]).status();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let _ = self.child.wait();
    }
}

#[test]
fn console_in_chromium_backs_up_copies_refuses_and_forks() {
    let dir = script_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in {} (.ci/run does)",
        dir.display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (.ci/run does)"
    );

    // The service as an operator sets it up: registered without additional regions, its cluster
    // archiving into the home region, a first backup, and a restore drill of it.
    let w = World::new(Backend::Fs);
    rewrite_config(&w);
    w.register();
    let archive = format!("{} wal-push --service {SVC} %p", w.btar_prefix());
    // Declared after `w`, so dropped (stopped) before its directory is removed.
    let pg = PgCluster::init(&w.dir, "source", Some(&archive));
    w.write_config(&pg.conninfo());
    rewrite_config(&w);
    pg.psql(
        "CREATE TABLE customers (id int); INSERT INTO customers SELECT generate_series(1, 1000)",
    );
    w.backup();
    let drill = w.btar_json(&["drill", "run", SVC, "--query", "SELECT 1 FROM customers"]);
    assert_eq!(drill["state"], "SUCCESSFUL", "{drill}");

    let server = Server::start(&w.config);
    let started = Instant::now();
    let mut node = Command::new("node");
    node.arg(dir.join("e2e.mjs"))
        .current_dir(&dir)
        .env("BTAR_URL", &server.url)
        .env("BTAR_TOKEN", TOKEN)
        .env("PGPORT", pg.port.to_string())
        .env("FORK_NAME", FORK)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null());
    if let Ok(shots) = std::env::var("BTAR_CONSOLE_SCREENSHOTS") {
        node.env("SHOTS", shots);
    }
    let out = run_with_timeout(node, Duration::from_secs(300));
    println!(
        "browser test took {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        describe(&out)
    );
    // The fork runs on this host under the config's directory; stop it whatever happened.
    let fork_dir = w.config.parent().unwrap().join("forks").join(FORK);
    if fork_dir.join("postmaster.pid").exists() {
        btar_testkit::stop_data_dir(&fork_dir);
    }
    drop(server);
    assert!(
        out.status.success(),
        "the browser test failed (output above)"
    );
}

/// Runs `cmd`, killing it after `limit` (a hung browser must not hang the test run).
fn run_with_timeout(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (apt-get install nodejs)");
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    let _ = watchdog.join();
    out
}

//! `btar log-stream` as a process, for the streamer tests of both engines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use btar_testkit::as_db_user;

use crate::crash_kit;

/// `btar --output json log-stream` running; killed when dropped.
pub struct Streamer {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Streamer {
    /// Starts the streamer of `service` and waits for its `started` event.
    pub fn start(config: &Path, service: &str, extra: &[&str]) -> Self {
        let mut c = as_db_user(env!("CARGO_BIN_EXE_btar"));
        c.arg("--config")
            .arg(config)
            .args(["--output", "json", "log-stream", "--service", service])
            .args(extra)
            .env_remove("BTAR_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().expect("start btar log-stream");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let s = Self { child, lines };
        s.wait_for(|v| v["event"] == "started", Duration::from_secs(30));
        s
    }

    /// Waits for an event line matching `want`; panics with the lines seen on timeout.
    pub fn wait_for(
        &self,
        want: impl Fn(&serde_json::Value) -> bool,
        within: Duration,
    ) -> serde_json::Value {
        let end = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && want(&v)
                    {
                        return v;
                    }
                    seen.push(line);
                }
                Err(_) => break,
            }
        }
        panic!("no such event from log-stream within {within:?}; saw: {seen:#?}");
    }

    /// SIGKILL to btar itself (not only to the `runuser` that wraps it when tests run as root).
    pub fn kill(&mut self) {
        if let Some(pid) = crash_kit::btar_pid(&self.child) {
            crash_kit::sigkill(pid);
            while crash_kit::running(pid) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.kill();
    }
}

//! Test harness: starts real servers on loopback for btar's tests (an S3-protocol server, PostgreSQL
//! clusters) and builds region configs for every storage backend. Test-only; panics on setup failure
//! with a message saying what to install.
#![allow(clippy::unwrap_used)]

mod mariadb;
mod pg;
mod pgdb;
mod s3;
mod stream;

pub use mariadb::MariaDb;
pub use pg::{
    InitOptions, PgCluster, TestDir, as_db_user, conninfo_port, db_user, describe, hand_over,
    run_ok, stop_data_dir,
};
pub use pgdb::{PgDatabase, admin_url};
pub use s3::S3Server;
pub use stream::{HashWriter, PatternReader, peak_rss};

use btar_region::{RegionConfig, RegionKey};

/// A free TCP port on loopback (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

fn base(name: &str, provider: &str, url: String) -> RegionConfig {
    RegionConfig {
        name: name.into(),
        provider: provider.into(),
        url,
        key: Some(format!("hex:{}", RegionKey::generate().to_hex())),
        options: Default::default(),
        retry: btar_region::RetryConfig {
            max_attempts: 3,
            initial_ms: 20,
            max_ms: 200,
        },
    }
}

/// A region on a fresh in-memory store (unit tests only).
pub fn memory_region(name: &str) -> RegionConfig {
    let unique = format!(
        "{name}-{}",
        RegionKey::generate().to_hex().get(..12).unwrap_or("x")
    );
    base(name, "local", format!("memory://{unique}"))
}

/// A region on the local filesystem under `dir`.
pub fn fs_region(name: &str, dir: &std::path::Path) -> RegionConfig {
    base(name, "local", format!("file://{}", dir.display()))
}

/// Every file under `root`, sorted (for tests that tamper with a store's objects on disk).
pub fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Command lines (arguments joined by spaces) of the processes whose command line holds every one
/// of `words`: tests check that nothing they started is left running.
pub fn processes_with(words: &[&str]) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if words.iter().all(|w| cmd.contains(w)) {
            out.push(cmd);
        }
    }
    out
}

//! Crash helpers: a seeded random source, `btar` killed with SIGKILL after a delay, and checks of what
//! a location holds on disk (WAL continuity, staging files).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::World;

/// splitmix64: tiny, seedable, good enough to spread kill points.
pub struct Dice(u64);

impl Dice {
    /// Seeded from `BTAR_CRASH_SEED` or the clock; prints the seed so a failure can be replayed.
    pub fn from_env() -> Self {
        let seed = std::env::var("BTAR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("crash seed {seed} (replay with BTAR_CRASH_SEED={seed})");
        Dice(seed)
    }

    pub fn seeded(seed: u64) -> Self {
        Dice(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay uniform in `[lo, hi)`.
    pub fn delay(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros().max(1) as u64;
        lo + Duration::from_micros(self.next() % span)
    }
}

pub fn spawn_btar(w: &World, args: &[&str]) -> Child {
    btar_testkit::as_db_user(env!("CARGO_BIN_EXE_btar"))
        .arg("--config")
        .arg(&w.config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn btar")
}

/// The btar process of `child`: the child itself, or its child when `runuser` wrapped it.
pub fn btar_pid(child: &Child) -> Option<u32> {
    let id = child.id();
    let exe = std::fs::read_link(format!("/proc/{id}/exe")).ok()?;
    if exe.file_name().is_some_and(|n| n == "btar") {
        return Some(id);
    }
    let kids = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).ok()?;
    kids.split_whitespace().next()?.parse().ok()
}

/// Whether `pid` is alive and not yet a zombie.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

pub fn sigkill(pid: u32) -> bool {
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `btar ARGS` and SIGKILLs it after `delay`. `None` if it was still running then (a real
/// crash), else how long it took to finish by itself.
pub fn kill_after(w: &World, args: &[&str], delay: Duration) -> Option<Duration> {
    let mut child = spawn_btar(w, args);
    let start = Instant::now();
    let mut pid = None;
    while start.elapsed() < delay {
        if pid.is_none() {
            pid = btar_pid(&child);
        }
        if child.try_wait().expect("wait btar").is_some() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = pid
        .or_else(|| btar_pid(&child))
        .is_some_and(|p| running(p) && sigkill(p));
    let _ = child.kill();
    let _ = child.wait();
    if killed { None } else { Some(start.elapsed()) }
}

/// Kills `btar ARGS` at seeded points until `kills` crashes happened, calling `before` ahead of each
/// attempt (to give the command work) and `after` behind each crash (the checks). The window of kill
/// points shrinks to what the command took when it finished before its kill point.
pub fn crash_repeatedly(
    w: &World,
    dice: &mut Dice,
    args: &[&str],
    kills: usize,
    mut window: Duration,
    mut before: impl FnMut(),
    mut after: impl FnMut(Duration),
) {
    let mut done = 0;
    for _ in 0..6 * kills {
        if done == kills {
            return;
        }
        before();
        let at = dice.delay(Duration::from_millis(10), window);
        match kill_after(w, args, at) {
            None => {
                done += 1;
                after(at);
            }
            Some(took) => window = window.min(took.mul_f64(0.9)),
        }
    }
    panic!("btar {args:?}: only {done} of {kills} runs were killed before they finished");
}

/// Runs `btar ARGS` to completion and returns how long it took; panics on failure.
pub fn timed(w: &World, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = w.btar(args);
    assert!(
        out.status.success(),
        "btar {args:?}: {}",
        btar_testkit::describe(&out)
    );
    start.elapsed()
}

/// Archived WAL segment names (24 hex digits) of every timeline under a filesystem region.
pub fn archived_segments(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = btar_testkit::files_under(store)
        .iter()
        .filter(|p| p.to_string_lossy().contains("/logs/"))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    v.sort();
    v
}

/// Segment number within a timeline (16 MiB segments: 256 per log id).
fn segno(name: &str) -> Option<u64> {
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some(log * 256 + seg)
}

/// The segments missing between `from` (inclusive) and the newest archived one, per timeline 1.
pub fn wal_gaps(segments: &[String], from: &str) -> Vec<String> {
    let start = segno(from).unwrap_or(0);
    let have: std::collections::BTreeSet<u64> = segments
        .iter()
        .filter(|s| s.starts_with("00000001"))
        .filter_map(|s| segno(s))
        .filter(|n| *n >= start)
        .collect();
    let Some(&last) = have.last() else {
        return vec![];
    };
    (start..=last)
        .filter(|n| !have.contains(n))
        .map(|n| format!("00000001{:08X}{:08X}", n / 256, n % 256))
        .collect()
}

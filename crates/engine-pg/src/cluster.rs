//! Running PostgreSQL programs (`pg_ctl`, `initdb`) on this host. PostgreSQL refuses to run as root, so
//! when btar runs as root it runs them as the `postgres` user and hands data directories to that user.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::PgError;

/// The directory holding `pg_ctl`: explicit, else the newest under /usr/lib/postgresql, else PATH.
pub fn bin_dir(explicit: Option<&str>) -> Result<PathBuf, PgError> {
    if let Some(d) = explicit {
        let p = PathBuf::from(d);
        return if p.join("pg_ctl").exists() {
            Ok(p)
        } else {
            Err(PgError::Binaries(format!("no pg_ctl in {d}")))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Ok(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|d| d.join("pg_ctl").exists()))
        .ok_or_else(|| {
            PgError::Binaries(
                "pg_ctl not found under /usr/lib/postgresql or on PATH; set bin_dir".into(),
            )
        })
}

/// `/etc/passwd` entries as their fields.
fn passwd_entries() -> Vec<Vec<String>> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// The name of the OS user this process runs as (effective uid).
pub fn current_user() -> Option<String> {
    let uid = btar_region::effective_uid()?.to_string();
    passwd_entries()
        .into_iter()
        .find(|f| f.get(2) == Some(&uid))
        .and_then(|f| f.into_iter().next())
}

/// The home directory of an OS user.
pub fn home_dir(user: &str) -> Option<String> {
    passwd_entries()
        .into_iter()
        .find(|f| f.first().map(String::as_str) == Some(user))
        .and_then(|f| f.get(5).cloned())
}

/// `(name, uid, gid)` of the user PostgreSQL must run as, when btar itself runs as root.
pub fn db_user() -> Option<(String, u32, u32)> {
    if btar_region::effective_uid()? != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres")).then(|| {
            Some((
                f[0].to_string(),
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })?
    })
}

/// A command for a PostgreSQL program, run as the database user when we are root.
pub fn command(bin: &Path, program: &str) -> Command {
    let exe = bin.join(program);
    match db_user() {
        Some((user, _, _)) => {
            let mut c = Command::new("runuser");
            c.args(["-u", &user, "--"]).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

/// Gives a directory tree to the database user (no-op unless running as root).
pub fn hand_over(path: &Path) -> Result<(), PgError> {
    let Some((_, uid, gid)) = db_user() else {
        return Ok(());
    };
    for entry in walkdir::WalkDir::new(path) {
        let entry = entry.map_err(|e| PgError::io("walking", path.display(), e.into()))?;
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))
            .map_err(|e| PgError::io("chown", entry.path().display(), e))?;
    }
    Ok(())
}

fn run(mut cmd: Command, what: &str) -> Result<String, PgError> {
    let out = cmd
        .output()
        .map_err(|e| PgError::Binaries(format!("cannot run {what}: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(PgError::Recovery(format!("{what} failed: {}", text.trim())))
    }
}

/// Starts a cluster and waits until it accepts connections (or recovery fails).
pub fn start(bin: &Path, data_dir: &Path, log_file: &Path) -> Result<(), PgError> {
    let mut c = command(bin, "pg_ctl");
    c.arg("-D")
        .arg(data_dir)
        .arg("-l")
        .arg(log_file)
        .args(["-w", "-t", "3600", "start"]);
    run(c, "pg_ctl start").map(|_| ())
}

pub fn stop(bin: &Path, data_dir: &Path, mode: &str) -> Result<(), PgError> {
    let mut c = command(bin, "pg_ctl");
    c.arg("-D").arg(data_dir).args(["-m", mode, "-w", "stop"]);
    run(c, "pg_ctl stop").map(|_| ())
}

/// The last lines of a server log that explain a failure (FATAL/PANIC/ERROR lines first). btar's
/// own reports come first: `wal-fetch` runs as restore_command and writes its reason (`error: …`) to
/// the server's stderr, i.e. this log, while PostgreSQL words its exit code 127 as "command not
/// found" — which would send the reader looking for a missing binary.
pub fn log_excerpt(log_file: &Path) -> String {
    let text = std::fs::read_to_string(log_file).unwrap_or_default();
    let btar: Vec<&str> = text.lines().filter(|l| l.starts_with("error: ")).collect();
    let rest: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .filter(|l| btar.is_empty() || !l.contains("command not found"))
        .collect();
    let important: Vec<&str> = rest
        .iter()
        .copied()
        .filter(|l| l.contains("FATAL") || l.contains("PANIC") || l.contains("ERROR"))
        .collect();
    let lines = if important.is_empty() {
        rest
    } else {
        important
    };
    let server = lines[lines.len().saturating_sub(5)..].join(" | ");
    if btar.is_empty() {
        return server;
    }
    format!(
        "btar: {} | server log: {server}",
        btar[btar.len().saturating_sub(3)..].join(" | ")
    )
}

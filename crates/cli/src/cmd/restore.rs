use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use btar_control::RestoreRun;
use btar_engine::Target;
use chrono::{DateTime, NaiveDateTime, Utc};

use super::Ctx;
use crate::output::{BarProgress, human_bytes};

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    service: String,
    /// New data directory (must not exist or be empty).
    #[arg(long)]
    data_dir: PathBuf,
    /// Location to restore from (default: the service's home region).
    #[arg(long)]
    region: Option<String>,
    /// Restore this base backup instead of choosing one for the target.
    #[arg(long)]
    backup: Option<String>,
    /// Recover to this time (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC).
    #[arg(long, conflicts_with_all = ["target_lsn", "target_name"])]
    target_time: Option<String>,
    /// Recover to this log position: a PostgreSQL LSN (`X/Y`); for MySQL/MariaDB a binlog position
    /// (`binlog.000003:1234`) or a GTID (`0-1-42`, or a list `0-1-42,1-2-7`).
    #[arg(long, conflicts_with = "target_name")]
    target_lsn: Option<String>,
    /// Recover to this named restore point (pg_create_restore_point).
    #[arg(long)]
    target_name: Option<String>,
    /// Start PostgreSQL, wait for promotion and report the point reached.
    #[arg(long)]
    start: bool,
    /// Port for the restored server (with --start: a free one by default; the backup's own port is
    /// usually the running source's).
    #[arg(long)]
    port: Option<u16>,
    /// Extra postgresql.conf settings for the restored server, `key=value` (repeatable).
    #[arg(long = "set", value_parser = parse_kv)]
    settings: Vec<(String, String)>,
    /// Keep archiving the restored server's WAL into this service's archive (a restore that replaces
    /// the service); by default archiving is off on the restored server.
    #[arg(long)]
    archive: bool,
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    promote_timeout: Duration,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("expected key=value, got `{s}`"))
}

pub fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    bail!("`{s}` is not a time: use RFC 3339 (2026-11-22T10:00:00Z) or `YYYY-MM-DD HH:MM:SS` (UTC)")
}

impl RestoreArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let target = match (&self.target_time, &self.target_lsn, &self.target_name) {
            (Some(t), _, _) => Target::Time(parse_time(t)?),
            (_, Some(l), _) => Target::Position(l.clone()),
            (_, _, Some(n)) => Target::Name(n.clone()),
            _ => Target::Latest,
        };
        // Through the control plane, like a fork: any service the catalog knows restores by name.
        let (cp, scratch) = ctx.control_for_restore().await?;
        if let Some(s) = &scratch {
            eprintln!("warning: {}", s.why);
        }
        let run = RestoreRun {
            service: self.service.clone(),
            region: self.region.clone(),
            target,
            backup: self.backup.clone(),
            data_dir: self.data_dir.clone(),
            port: self.port,
            settings: self.settings.clone(),
            start: self.start,
            archive: self.archive,
            promote_timeout: self.promote_timeout,
            loopback_only: false,
        };
        let bar = ctx.out.bytes_bar(&format!("restore {}", self.service));
        let t = Instant::now();
        let result = cp.restore(run, &BarProgress(bar.clone())).await;
        bar.finish_and_clear();
        let restored = result.with_context(|| {
            let from = self
                .region
                .as_deref()
                .map(|r| format!(" from region `{r}`"))
                .unwrap_or_default();
            format!("restore of service `{}`{from}", self.service)
        })?;
        if let Some(w) = &restored.fallback {
            eprintln!("warning: {w}");
        }
        let (outcome, port) = (&restored.outcome, restored.port);
        let secs = t.elapsed().as_secs_f64();
        let json = serde_json::json!({
            "restore": outcome,
            "port": port,
            "seconds": secs,
            "mb_per_s": outcome.bytes as f64 / 1e6 / secs.max(1e-9),
        });
        ctx.out.emit(&json, || {
            let mut s = format!(
                "restored backup {} from region {} into {}: {} in {:.1}s",
                outcome.backup,
                outcome.region,
                outcome.data_dir,
                human_bytes(outcome.bytes),
                secs
            );
            if let Some(r) = &outcome.reached {
                s.push_str(&format!(
                    "\npromoted on port {} on timeline {} at LSN {}; last replayed commit {}",
                    port.map(|p| p.to_string()).unwrap_or_default(),
                    r.timeline,
                    r.lsn,
                    r.last_commit_time
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "none".into())
                ));
            }
            s
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

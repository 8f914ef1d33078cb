use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use btar_engine_pg::restore::{RestoreOptions, Target};
use chrono::{DateTime, NaiveDateTime, Utc};

use super::Ctx;
use crate::output::human_bytes;

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
    /// Recover to this LSN (`X/Y`).
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

/// The home location, or — when it cannot be read (store down, location missing) — the first
/// additional backup region that can, with a warning: a disaster is when restores matter most.
async fn reachable_location(
    ctx: &Ctx,
    svc: &btar_control::ServiceConfig,
) -> anyhow::Result<btar_format::Location> {
    let mut first_error = None;
    for region in std::iter::once(&svc.cloud).chain(&svc.additional_backup_regions) {
        let probe = async {
            let loc = ctx.location(&svc.name, region).await?;
            loc.list_backups().await?;
            Ok::<_, anyhow::Error>(loc)
        }
        .await;
        match probe {
            Ok(loc) => {
                if let Some((from, e)) = &first_error {
                    eprintln!(
                        "warning: region `{from}` cannot be read ({e:#}); restoring from `{region}`"
                    );
                }
                return Ok(loc);
            }
            Err(e) => {
                first_error.get_or_insert((region.clone(), e));
            }
        }
    }
    match first_error {
        Some((region, e)) => Err(e.context(format!(
            "no location of `{}` can be read (first: `{region}`)",
            svc.name
        ))),
        None => bail!("service `{}` has no location", svc.name),
    }
}

impl RestoreArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let svc = ctx.cfg.service(Some(&self.service))?;
        let target = match (&self.target_time, &self.target_lsn, &self.target_name) {
            (Some(t), _, _) => Target::Time(parse_time(t)?),
            (_, Some(l), _) => Target::Lsn(l.clone()),
            (_, _, Some(n)) => Target::Name(n.clone()),
            _ => Target::Latest,
        };
        let loc = match &self.region {
            Some(r) => ctx.location(&svc.name, r).await?,
            None => reachable_location(ctx, svc).await?,
        };
        let region = loc.region().name().to_string();
        let me = ctx.cfg.self_command();
        let mut settings = self.settings.clone();
        let port = match self.port {
            Some(p) => Some(p),
            None if self.start && !settings.iter().any(|(k, _)| k == "port") => Some(
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .context("no free port for the restored server")?
                    .port(),
            ),
            None => None,
        };
        if let Some(p) = port {
            settings.push(("port".into(), p.to_string()));
        }
        let opts = RestoreOptions {
            target,
            backup: self.backup.clone(),
            data_dir: std::path::absolute(&self.data_dir).unwrap_or(self.data_dir.clone()),
            restore_command: format!(
                "{me} wal-fetch --service {} --region {region} %f %p",
                svc.name
            ),
            archive_command: self
                .archive
                .then(|| format!("{me} wal-push --service {} %p", svc.name)),
            settings,
            start: self.start,
            bin_dir: svc.pg.as_ref().and_then(|p| p.bin_dir.clone()),
            parallel: ctx.cfg.storage.parallel_files,
            promote_timeout: self.promote_timeout,
        };
        let bar = ctx.out.bytes_bar(&format!("restore {}", svc.name));
        let t = Instant::now();
        let (b1, b2) = (bar.clone(), bar.clone());
        let result =
            btar_engine_pg::restore::run(&loc, &opts, &move |n| b1.set_length(n), &move |n| {
                b2.inc(n)
            })
            .await;
        bar.finish_and_clear();
        let outcome = result
            .with_context(|| format!("restore of service `{}` from region `{region}`", svc.name))?;
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

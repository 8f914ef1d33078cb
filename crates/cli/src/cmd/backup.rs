use std::process::ExitCode;

use anyhow::Context;

use btar_catalog::CreatedBy;
use btar_control::{BackupState, BackupTaken};

use super::Ctx;
use crate::output::{BarProgress, human_bytes};

#[derive(Debug, clap::Subcommand)]
pub enum BackupCmd {
    /// Take a primary backup of SERVICE into its home region now, then copy it to each additional
    /// backup region (unless --no-copy: a running `btar server` copies it).
    Create {
        service: String,
        #[arg(long)]
        no_copy: bool,
    },
    /// List SERVICE's backups with their status in the primary and each secondary location, and the
    /// recoverable window of each location.
    List { service: String },
    /// Write one backup in the database's native form into a new directory, usable without btar
    /// (PostgreSQL: a data directory with the WAL it needs in pg_wal; start it with pg_ctl).
    Download {
        service: String,
        backup: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Delete one backup from one location (its packs and logs go with a later retention pass). The
    /// location's newest backup is refused unless --force.
    Delete {
        service: String,
        backup: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, serde::Serialize)]
struct Created<'a> {
    #[serde(flatten)]
    backup: &'a BackupTaken,
    copies: &'a [btar_control::CopyRun],
}

impl BackupCmd {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            BackupCmd::Create { service, no_copy } => create(ctx, &service, no_copy).await,
            BackupCmd::List { service } => list(ctx, &service).await,
            BackupCmd::Download {
                service,
                backup,
                region,
                to,
            } => {
                let cp = ctx.control().await?;
                let d = cp.download_backup(&service, &region, &backup, &to).await?;
                ctx.out.emit(&d, || {
                    format!(
                        "backup {} of {} from region {} written to {}: {} of files, {} log files",
                        d.backup,
                        d.service,
                        d.region,
                        d.dir,
                        crate::output::human_bytes(d.bytes),
                        d.logs.len()
                    )
                })?;
                Ok(ExitCode::SUCCESS)
            }
            BackupCmd::Delete {
                service,
                backup,
                region,
                force,
            } => {
                let cp = ctx.control().await?;
                let d = cp.delete_backup(&service, &region, &backup, force).await?;
                ctx.out.emit(&d, || {
                    format!(
                        "backup {} of {} deleted from region {}; its packs and logs go with a later retention pass",
                        d.backup, d.service, d.region
                    )
                })?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

async fn create(ctx: &Ctx, service: &str, no_copy: bool) -> anyhow::Result<ExitCode> {
    // Remotely the server takes the backup and its copy workers copy it (as with --no-copy here).
    let (taken, copies) = match &ctx.remote {
        Some(r) => (r.take_backup(service).await?, vec![]),
        None => take(ctx, service, !no_copy).await?,
    };
    let json = Created {
        backup: &taken,
        copies: &copies,
    };
    ctx.out.emit(&json, || {
        let mut s = format!(
            "backup {} of {} committed in region {}: {} read, {} new ({} blocks in {} objects) in {:.1}s ({:.0} MB/s)",
            taken.backup_name,
            service,
            taken.region,
            human_bytes(taken.logical_bytes),
            human_bytes(taken.new_stored_bytes),
            taken.new_chunks,
            taken.new_objects,
            taken.seconds,
            taken.mb_per_s
        );
        for c in &copies {
            s.push('\n');
            s.push_str(&super::copy_jobs::one_line(&c.job));
        }
        s
    })?;
    let failed = copies
        .iter()
        .any(|c| c.job.state != btar_catalog::JobState::Completed);
    Ok(if failed {
        ExitCode::from(crate::exit::JOB_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Takes a primary backup of `service` (progress bar on a terminal) and, with `copy`, runs its copy
/// jobs here; returns what was committed and the copies made.
pub async fn take(
    ctx: &Ctx,
    service: &str,
    copy: bool,
) -> anyhow::Result<(BackupTaken, Vec<btar_control::CopyRun>)> {
    let cp = ctx.control().await?;
    let bar = ctx.out.bytes_bar(&format!("backup {service}"));
    let result = cp
        .take_backup_with(service, CreatedBy::OnDemand, &BarProgress(bar.clone()))
        .await;
    bar.finish_and_clear();
    let taken = result.with_context(|| format!("backup of service `{service}`"))?;
    let copies = if copy {
        cp.drain_copy_jobs().await?
    } else {
        vec![]
    };
    Ok((taken, copies))
}

async fn list(ctx: &Ctx, service: &str) -> anyhow::Result<ExitCode> {
    let view = ctx.api().await?.backups(service).await?;
    ctx.out.emit(&view, || {
        let mut s = format!(
            "{:<22} {:<21} {:>10}  {}",
            "BACKUP", "TIME", "SIZE", "LOCATIONS"
        );
        if let Some(t) = view.deleted_at {
            s.insert_str(
                0,
                &format!(
                    "service {service} was deleted at {}; its backups are kept until retention\n",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            );
        }
        let until = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| format!(" until {}", t.format("%Y-%m-%d")))
                .unwrap_or_default()
        };
        for b in &view.backups {
            let locs: Vec<String> = std::iter::once(format!(
                "{}={}{}",
                b.storage_location,
                b.status,
                until(b.expires_at)
            ))
            .chain(b.additional_regions.iter().map(|a| {
                format!(
                    "{}={}{}{}",
                    a.region,
                    a.status,
                    until(a.expires_at),
                    if a.paused { " (paused)" } else { "" }
                )
            }))
            .collect();
            s.push_str(&format!(
                "\n{:<22} {:<21} {:>10}  {}",
                b.backup_name,
                b.backup_time
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                human_bytes(b.data_size),
                locs.join(" ")
            ));
        }
        s.push_str("\n\nPITR windows:");
        for r in std::iter::once(&view.pitr.primary_region).chain(&view.pitr.additional_regions) {
            let t = |x: Option<chrono::DateTime<chrono::Utc>>| {
                x.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "-".into())
            };
            s.push_str(&format!(
                "\n  {:<20} {} .. {}{}",
                r.region,
                t(r.pitr_range_start),
                t(r.pitr_range_end),
                r.error
                    .as_ref()
                    .or(r.pause_reason.as_ref())
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            ));
        }
        let damaged: Vec<String> = view
            .backups
            .iter()
            .flat_map(|b| {
                let home = b
                    .reason
                    .clone()
                    .filter(|_| b.status == BackupState::Damaged);
                home.into_iter().chain(
                    b.additional_regions
                        .iter()
                        .filter(|a| a.status == BackupState::Damaged)
                        .filter_map(|a| a.reason.clone()),
                )
            })
            .collect();
        if !damaged.is_empty() {
            s.push_str("\n\nDamaged backups (not restorable; the others are):");
            for d in damaged {
                s.push_str(&format!("\n  {d}"));
            }
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}

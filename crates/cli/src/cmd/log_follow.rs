//! `btar log-follow`: the continuous log archive of a service whose server has no archive hook (a
//! MariaDB binlog), in the foreground until SIGTERM — for systemd. Each file archived into the
//! primary location is announced to a running `btar server`, which ships it at once.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use btar_engine::{EngineError, FollowEvent, FollowOptions};
use serde_json::json;

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct FollowArgs {
    /// Service whose log is followed (default: the only configured service).
    #[arg(long, env = "BTAR_SERVICE")]
    service: Option<String>,
    /// Local directory the log is received into before it is archived (created 0700); default
    /// `btar-binlog-<service>` beside the config.
    #[arg(long)]
    spool_dir: Option<PathBuf>,
}

impl FollowArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let svc = ctx.cfg.service(self.service.as_deref())?.clone();
        follow(ctx, &svc, self.spool_dir).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Follows the log of `svc` into its primary location until `ctx.cancel`, printing one line per
/// event and announcing each archived file to a running `btar server` (`btar log-follow`, and
/// `btar up` while it serves a MariaDB).
pub async fn follow(
    ctx: &Ctx,
    svc: &btar_control::ServiceConfig,
    spool_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (_, engine, settings) = ctx.agent_of(Some(&svc.name))?;
    let Some(follower) = engine.log_follower() else {
        return Err(EngineError::Invalid(format!(
            "{} archives its log with archive_command (wal-push); nothing to follow for service `{}`",
            svc.engine.product(),
            svc.name
        ))
        .into());
    };
    // Never creates the location: `btar service init` or the first backup does.
    let loc = ctx.location(&svc.name, &svc.cloud).await?;
    let spool_dir = spool_dir.unwrap_or_else(|| {
        ctx.cfg
            .path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(format!("btar-binlog-{}", svc.name))
    });
    let opts = FollowOptions {
        spool_dir,
        cancel: ctx.cancel.clone(),
    };
    let (cfg, out, name) = (&ctx.cfg, ctx.out, svc.name.clone());
    let on_event = move |e: FollowEvent| {
        let (value, text) = match &e {
            FollowEvent::Started { from } => (
                json!({"event": "started", "from": from}),
                format!("receiving from {from}"),
            ),
            FollowEvent::Archived(p) => {
                // Durable in the primary: tell a running server, without waiting for it.
                btar_control::notify_archived(cfg, &name, &p.timeline, &p.name);
                tracing::debug!(service = %name, file = %p.name, "archived");
                let already = p.put == btar_format::LogPut::AlreadyPresent;
                (
                    json!({"event": "archived", "name": p.name, "already_present": already}),
                    format!(
                        "archived {}{}",
                        p.name,
                        if already { " (already there)" } else { "" }
                    ),
                )
            }
            FollowEvent::Gap {
                first,
                last,
                resumed_at,
            } => {
                let msg = format!(
                    "the server no longer has {first}..{last}, which the archive lacks: the archive has a hole there (a restore cannot replay across it; take a new backup); following from {resumed_at}"
                );
                tracing::error!(service = %name, "{msg}");
                (
                    json!({"event": "gap", "first_missing": first, "last_missing": last, "resumed_at": resumed_at}),
                    format!("gap: {msg}"),
                )
            }
            FollowEvent::Interrupted { reason, retry_in } => {
                tracing::warn!(service = %name, reason = %reason, retry_in_ms = retry_in.as_millis() as u64, "receiver interrupted");
                (
                    json!({"event": "interrupted", "reason": reason, "retry_in_seconds": retry_in.as_secs_f64()}),
                    format!("interrupted ({reason}); again in {retry_in:?}"),
                )
            }
        };
        // One line per event: JSON lines for scripts, text for people.
        if out.json() {
            println!("{value}");
        } else {
            println!("{text}");
        }
    };
    follower
        .follow(&loc, &settings, &opts, &on_event)
        .await
        .with_context(|| format!("following the log of `{}`", svc.name))?;
    Ok(())
}

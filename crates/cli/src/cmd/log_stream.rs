//! `btar log-stream`: the streamer role (DESIGN.md) for one service, in the foreground until
//! SIGTERM — for systemd. Follows the server's log as it is written and keeps its newest, partial
//! file durable in the primary and every secondary location within about a second; records each
//! location's position in the catalog for the lag report and `/metrics`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use btar_control::ControlPlane;
use btar_engine::{EngineError, StreamEvent, StreamOptions, StreamTarget};
use serde_json::json;

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// Service whose log is streamed (default: the only configured service).
    #[arg(long, env = "BTAR_SERVICE")]
    service: Option<String>,
    /// The name the server knows the streamer by: its replication slot and application_name
    /// (default `btar_<service>`). List it in synchronous_standby_names for --synchronous.
    #[arg(long)]
    name: Option<String>,
    /// Least milliseconds between two pieces stored in one location (bounds objects per second;
    /// the recoverable point trails the server by about this much plus one store round trip).
    #[arg(long, default_value_t = 200)]
    min_interval_ms: u64,
    /// Tell the server WAL is flushed as soon as the primary location holds it, with no wait:
    /// with `synchronous_standby_names = '<name>'` on the server, a commit returns only once its
    /// WAL is durable in the primary location (RPO 0 there) — and waits for that store each time.
    #[arg(long)]
    synchronous: bool,
    /// Local directory a MariaDB binlog is received into while it is streamed (created 0700; one
    /// streamer per directory); default `btar-stream-<service>` beside the config.
    #[arg(long)]
    spool_dir: Option<std::path::PathBuf>,
}

/// One event line on stdout. A reader that went away (a closed pipe) must not stop the streamer.
fn line(text: String) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// A replication slot's name for a service: lower-case letters, digits and `_`, at most 63.
pub fn slot_name(service: &str) -> String {
    let mut s: String = format!("btar_{service}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(63);
    s
}

/// The locations of `service` that exist: the primary (required) and each additional region that
/// has one already (the first copy creates it; until then it is skipped).
async fn targets(cp: &ControlPlane, service: &str) -> anyhow::Result<Vec<StreamTarget>> {
    let svc = cp.service(service).await?;
    let primary = cp.location(&svc.name, &svc.cloud).await.with_context(|| {
        format!(
            "service `{}` has no primary location yet: take a first backup (or `btar service create`) before streaming",
            svc.name
        )
    })?;
    let mut out = vec![StreamTarget {
        region: svc.cloud.clone(),
        primary: true,
        location: primary,
    }];
    for region in svc.additional_backup_regions() {
        match cp.location(&svc.name, &region).await {
            Ok(location) => out.push(StreamTarget {
                region,
                primary: false,
                location,
            }),
            Err(e) => {
                tracing::info!(region = %region, error = %e, "not streaming to this region yet")
            }
        }
    }
    Ok(out)
}

impl StreamArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let how = How {
            name: self.name,
            min_interval: Duration::from_millis(self.min_interval_ms),
            synchronous: self.synchronous,
            spool_dir: self.spool_dir,
        };
        stream(ctx, self.service.as_deref(), how).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// How a streamer runs (the flags of `btar log-stream`).
#[derive(Debug, Clone)]
pub struct How {
    pub name: Option<String>,
    pub min_interval: Duration,
    pub synchronous: bool,
    pub spool_dir: Option<std::path::PathBuf>,
}

impl How {
    /// What `btar up` runs: the defaults of `btar log-stream`.
    pub fn default_for_up() -> Self {
        Self {
            name: None,
            min_interval: Duration::from_millis(200),
            synchronous: false,
            spool_dir: None,
        }
    }
}

/// Streams the log of `service` into its locations until `ctx.cancel` (`btar log-stream`, and
/// `btar up` while it serves), recording each location's position in the catalog and
/// printing one line per event.
pub async fn stream(ctx: &Ctx, service: Option<&str>, how: How) -> anyhow::Result<()> {
    let (svc, engine, settings) = ctx.agent_of(service)?;
    let Some(streamer) = engine.log_streamer() else {
        return Err(EngineError::Invalid(format!(
            "btar cannot stream the log of {} (service `{}`)",
            svc.engine.product(),
            svc.name
        ))
        .into());
    };
    let cp = ctx.control().await?;
    let (tx, rx) = tokio::sync::watch::channel(targets(&cp, &svc.name).await?);
    // Regions enabled or disabled while streaming, and secondary locations created by a first
    // copy, are picked up within half a minute.
    let refresh = {
        let (cp, name, cancel) = (cp.clone(), svc.name.clone(), ctx.cancel.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    _ = cancel.cancelled() => return,
                }
                match targets(&cp, &name).await {
                    Ok(t) => {
                        tx.send_if_modified(|cur| {
                            let regions = |v: &[StreamTarget]| {
                                v.iter().map(|t| t.region.clone()).collect::<Vec<_>>()
                            };
                            let changed = regions(cur) != regions(&t);
                            if changed {
                                *cur = t;
                            }
                            changed
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "stream targets not refreshed")
                    }
                }
            }
        })
    };
    let opts = StreamOptions {
        name: how.name.unwrap_or_else(|| slot_name(&svc.name)),
        min_interval: how.min_interval,
        synchronous: how.synchronous,
        targets: rx,
        spool_dir: how.spool_dir.unwrap_or_else(|| {
            ctx.cfg
                .path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(format!("btar-stream-{}", svc.name))
        }),
        cancel: ctx.cancel.clone(),
    };
    if opts.synchronous {
        eprintln!(
            "synchronous: a server listing `{}` in synchronous_standby_names waits, for every commit, until its WAL is stored in the primary location",
            opts.name
        );
    }
    let (out, name) = (ctx.out, svc.name.clone());
    let (record_tx, mut record_rx) =
        tokio::sync::mpsc::channel::<Vec<btar_catalog::StreamStatus>>(4);
    // Catalog writes off the streaming path: a slow catalog must not delay WAL.
    let recorder = {
        let (cp, name) = (cp.clone(), svc.name.clone());
        tokio::spawn(async move {
            while let Some(rows) = record_rx.recv().await {
                if let Err(e) = cp.catalog().record_stream_positions(&name, &rows).await {
                    tracing::warn!(error = %e, "stream positions not recorded");
                }
            }
        })
    };
    let now = {
        let cp = cp.clone();
        move || cp.catalog().now()
    };
    let on_event = move |e: StreamEvent| {
        let (value, text) = match &e {
            StreamEvent::Started {
                timeline,
                from,
                slot_created,
            } => (
                json!({"event": "started", "timeline": timeline, "from": from, "slot_created": slot_created}),
                format!(
                    "streaming from {from}{}{}",
                    // Timelines are PostgreSQL's; a binlog has none.
                    if *timeline > 0 {
                        format!(" on timeline {timeline}")
                    } else {
                        String::new()
                    },
                    if *slot_created {
                        " (replication slot created)"
                    } else {
                        ""
                    }
                ),
            ),
            StreamEvent::Progress {
                positions,
                slot_retained_bytes,
            } => {
                let at = now();
                let rows = positions
                    .iter()
                    .map(|p| btar_catalog::StreamStatus {
                        service: name.clone(),
                        region: p.region.clone(),
                        primary: p.primary,
                        position: p.position.clone(),
                        server_position: p.server_position.clone(),
                        bytes_behind: p.bytes_behind as i64,
                        seconds_behind: p.seconds_behind,
                        slot_retained_bytes: slot_retained_bytes.map(|b| b as i64),
                        error: p.error.clone(),
                        updated_at: at,
                    })
                    .collect();
                let _ = record_tx.try_send(rows);
                // Progress goes to the catalog; printed only as JSON lines, for scripts.
                if out.json() {
                    println!(
                        "{}",
                        json!({"event": "progress", "positions": positions, "slot_retained_bytes": slot_retained_bytes})
                    );
                }
                return;
            }
            StreamEvent::Gap { reason } => {
                tracing::error!(service = %name, "{reason}");
                (
                    json!({"event": "gap", "reason": reason}),
                    format!("gap: {reason}"),
                )
            }
            StreamEvent::Interrupted { reason, retry_in } => {
                tracing::warn!(service = %name, reason = %reason, retry_in_ms = retry_in.as_millis() as u64, "streaming interrupted");
                (
                    json!({"event": "interrupted", "reason": reason, "retry_in_seconds": retry_in.as_secs_f64()}),
                    format!("interrupted ({reason}); again in {retry_in:?}"),
                )
            }
        };
        line(if out.json() { value.to_string() } else { text });
    };
    let result = streamer
        .stream(&settings, &opts, &on_event)
        .await
        .with_context(|| format!("streaming the log of `{}`", svc.name));
    refresh.abort();
    drop(on_event);
    let _ = recorder.await;
    // Stopped on purpose: no report left to look like a streamer that died.
    if result.is_ok()
        && let Err(e) = cp.catalog().record_stream_positions(&svc.name, &[]).await
    {
        tracing::warn!(error = %e, "stream positions not cleared");
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn slot_names_are_what_postgresql_accepts() {
        assert_eq!(super::slot_name("Orders-PG.1"), "btar_orders_pg_1");
        assert_eq!(super::slot_name(&"x".repeat(100)).len(), 63);
    }
}

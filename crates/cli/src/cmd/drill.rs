use std::process::ExitCode;
use std::time::Duration;

use btar_control::drill::{DrillRun, DrillState};

use super::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum DrillCmd {
    /// Restore SERVICE's latest backup into a scratch directory on a free port, let it recover and
    /// promote, validate, record the result, clean up. Exit 3 unless SUCCESSFUL.
    Run {
        service: String,
        /// Location to restore from (default: the home region).
        #[arg(long)]
        region: Option<String>,
        /// SQL that must return a row, e.g. "SELECT 1 FROM orders LIMIT 1".
        #[arg(long)]
        query: Option<String>,
        /// Time limit of the whole drill.
        #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Recorded drills, newest first.
    List { service: Option<String> },
    /// Run the `[[drill]]` schedules whose slot has come and that have not run since (what `btar
    /// server` does each pass; for a cron job without a server). Exit 3 if one was not SUCCESSFUL.
    Due,
}

impl DrillCmd {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let cp = ctx.control().await?;
        match self {
            DrillCmd::Run {
                service,
                region,
                query,
                timeout,
            } => {
                let r = cp
                    .drill(DrillRun {
                        service,
                        region,
                        query,
                        timeout,
                    })
                    .await?;
                ctx.out.emit(&r, || {
                    format!(
                        "drill of {} from {}: {:?} in {:.1}s (backup {}): {}",
                        r.service,
                        r.region.as_deref().unwrap_or("its home region"),
                        r.state,
                        r.duration_seconds,
                        r.backup.as_deref().unwrap_or("-"),
                        r.message
                    )
                })?;
                Ok(if r.state == DrillState::Successful {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(crate::exit::JOB_FAILED)
                })
            }
            DrillCmd::Due => {
                let ran = cp.run_due_drills().await?;
                ctx.out.emit(&serde_json::json!({ "drills": ran }), || {
                    if ran.is_empty() {
                        return "no drill due".to_string();
                    }
                    ran.iter()
                        .map(|r| {
                            format!(
                                "{} {:?} in {:.1}s: {}",
                                r.service, r.state, r.duration_seconds, r.message
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
                Ok(if ran.iter().all(|r| r.state == DrillState::Successful) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(crate::exit::JOB_FAILED)
                })
            }
            DrillCmd::List { service } => {
                let drills = cp.drills(service.as_deref()).await?;
                ctx.out.emit(&serde_json::json!({ "drills": drills }), || {
                    drills
                        .iter()
                        .map(|r| {
                            format!(
                                "{} {} {:?} {:.1}s: {}",
                                r.started_at, r.service, r.state, r.duration_seconds, r.message
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

use std::process::ExitCode;

use super::Ctx;

/// One replication pass without a server: queue the copies the secondaries lack, run every due copy
/// job, and ship the log files they lack. Exit 3 if anything failed.
#[derive(Debug, clap::Args)]
pub struct ReplicateArgs {
    /// Only this service's logs (copy jobs of every service run).
    #[arg(long)]
    service: Option<String>,
}

impl ReplicateArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let cp = ctx.control().await?;
        let queued = cp.queue_missing_copies().await?;
        let copies = cp.drain_copy_jobs().await?;
        let mut logs = Vec::new();
        for s in cp.catalog().list_services().await? {
            if s.deleted_at.is_none() && self.service.as_ref().is_none_or(|n| n == &s.name) {
                logs.extend(cp.ship_logs(&s.name).await?);
            }
        }
        let failed = copies
            .iter()
            .any(|c| c.job.state != btar_catalog::JobState::Completed)
            || logs.iter().any(|l| l.error.is_some());
        let json = serde_json::json!({ "queued": queued, "copies": copies, "logs": logs });
        ctx.out.emit(&json, || {
            let mut s = format!("{queued} copy jobs queued, {} run", copies.len());
            for c in &copies {
                s.push_str(&format!("\n{}", super::copy_jobs::one_line(&c.job)));
            }
            for l in &logs {
                s.push_str(&format!(
                    "\nlogs {} -> {}: {} shipped{}",
                    l.service,
                    l.destination_region,
                    l.logs_copied,
                    l.error
                        .as_ref()
                        .map(|e| format!(", error: {e}"))
                        .unwrap_or_default()
                ));
            }
            s
        })?;
        Ok(if failed {
            ExitCode::from(crate::exit::JOB_FAILED)
        } else {
            ExitCode::SUCCESS
        })
    }
}

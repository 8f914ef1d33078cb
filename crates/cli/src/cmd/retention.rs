use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum RetentionCmd {
    /// One retention pass without a server: expire each location's backups by its plan, then the
    /// logs and chunks no kept backup needs, then repack packs the kept backups barely use
    /// (`[storage] repack_live_percent`). Safe to re-run after a crash.
    Run {
        /// Act as if it were this time (RFC 3339); for tests and drills, never needed in operation.
        #[arg(long, hide = true)]
        now: Option<DateTime<Utc>>,
    },
}

impl RetentionCmd {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let RetentionCmd::Run { now } = self;
        let cp = ctx.control().await?;
        let expired = match now {
            Some(now) => cp.apply_retention_at(now).await?,
            None => cp.apply_retention().await?,
        };
        ctx.out
            .emit(&serde_json::json!({ "expired": expired }), || {
                let mut s = String::from("retention pass done");
                for e in &expired {
                    s.push_str(&format!(
                        "\n{} in {}: {} backups, {} logs, {} chunks deleted",
                        e.service,
                        e.region,
                        e.backups.len(),
                        e.logs,
                        e.chunks
                    ));
                    let r = &e.repacked;
                    if r.packs_superseded > 0 {
                        s.push_str(&format!(
                            "; {} packs repacked ({} dead bytes, {} backups rewritten, {} bytes written; \
                             the old packs go after the grace period)",
                            r.packs_superseded, r.dead_bytes, r.manifests_rewritten, r.bytes_written
                        ));
                    }
                }
                s
            })?;
        Ok(ExitCode::SUCCESS)
    }
}

use std::process::ExitCode;

use btar_control::Expired;
use chrono::{DateTime, Utc};

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct ExpireArgs {
    /// Only this service (default: every service with a plan).
    service: Option<String>,
    /// Only this region's location (default: every location of the service).
    #[arg(long)]
    region: Option<String>,
    /// Print the plan and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Act as if it were this time (RFC 3339); for tests and drills.
    #[arg(long, hide = true)]
    now: Option<DateTime<Utc>>,
}

fn describe(passes: &[Expired], planned: bool) -> String {
    let verb = if planned { "would delete" } else { "deleted" };
    let mut s = String::new();
    for e in passes {
        s.push_str(&format!(
            "{} in {}: {verb} {} backups, {} logs, {} content objects\n",
            e.service,
            e.region,
            e.backups.len(),
            e.log_keys.len(),
            e.chunk_keys.len()
        ));
        for r in &e.reasons {
            s.push_str(&format!("  backup {r}\n"));
        }
        for k in e.log_keys.iter().chain(&e.chunk_keys) {
            s.push_str(&format!("  {k}\n"));
        }
    }
    s.trim_end().to_string()
}

impl ExpireArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let cp = ctx.control().await?;
        let now = self.now.unwrap_or_else(Utc::now);
        let (service, region) = (self.service.as_deref(), self.region.as_deref());
        let plan = cp.expire(service, region, true, now).await?;
        if self.dry_run {
            ctx.out.emit(&serde_json::json!({ "plan": plan }), || {
                format!("plan (nothing deleted):\n{}", describe(&plan, true))
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        // The plan first, on stderr, so an operator sees what goes before it goes.
        eprintln!("{}", describe(&plan, true));
        let done = cp.expire(service, region, false, now).await?;
        ctx.out.emit(
            &serde_json::json!({ "plan": plan, "expired": done }),
            || describe(&done, false),
        )?;
        Ok(ExitCode::SUCCESS)
    }
}

use std::process::ExitCode;

use btar_catalog::Period;
use chrono::{DateTime, Utc};

use super::Ctx;
use crate::output::human_bytes;

#[derive(Debug, clap::Args)]
pub struct CostArgs {
    /// Only this service (default: every service, deleted ones whose backups are kept included).
    service: Option<String>,
    /// hour, day, week, month (30 days) or year.
    #[arg(long, default_value = "month")]
    period: Period,
    /// Act as if it were this time (RFC 3339).
    #[arg(long, hide = true)]
    now: Option<DateTime<Utc>>,
}

impl CostArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let cp = ctx.control().await?;
        let now = self.now.unwrap_or_else(Utc::now);
        let r = cp.cost(self.service.as_deref(), self.period, now).await?;
        ctx.out.emit(&r, || {
            let mut s = format!("cost over the last {} (to {}):\n", r.period, r.to);
            for l in &r.lines {
                s.push_str(&format!(
                    "{} in {} ({}): {} backups, {} logical, {} stored in {} objects, {:.1} GB-hours; copies in: {} jobs, {}{}\n",
                    l.service,
                    l.region,
                    l.role,
                    l.backups,
                    human_bytes(l.logical_bytes),
                    human_bytes(l.stored_bytes),
                    l.objects,
                    l.gb_hours,
                    l.copy_jobs,
                    human_bytes(l.copy_bytes),
                    l.price.map(|p| format!("; {p:.4}")).unwrap_or_default()
                ));
            }
            if let Some(t) = r.total_price {
                s.push_str(&format!("total: {t:.4}\n"));
            }
            s.trim_end().to_string()
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

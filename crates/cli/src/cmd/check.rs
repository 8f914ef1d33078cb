use std::process::ExitCode;

use btar_control::check::CheckStatus;
use chrono::{DateTime, Utc};

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Check this service only (default: every service).
    service: Option<String>,
    /// Act as if it were this time (RFC 3339); for tests and drills.
    #[arg(long, hide = true)]
    now: Option<DateTime<Utc>>,
}

impl CheckArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let api = ctx.api().await?;
        let report = api.check(self.service.as_deref(), self.now).await?;
        ctx.out.emit(&report, || {
            let mut s = String::new();
            for r in &report.results {
                let status = match r.status {
                    CheckStatus::Pass => "PASS",
                    CheckStatus::Fail => "FAIL",
                };
                s.push_str(&format!(
                    "{status} {} {} in {}: {}\n",
                    r.rule, r.service, r.region, r.detail
                ));
            }
            s.push_str(&if report.passed() {
                format!("OK: {} checks passed", report.results.len())
            } else {
                format!(
                    "{} of {} checks failed",
                    report.failed,
                    report.results.len()
                )
            });
            s
        })?;
        Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(crate::exit::CHECK_FAILED)
        })
    }
}

use std::process::ExitCode;

use btar_format::verify::verify;

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    service: String,
    /// Region whose location is checked.
    #[arg(long)]
    region: String,
    /// Check only this backup (and the chunks it names).
    #[arg(long)]
    backup: Option<String>,
    #[arg(long, default_value_t = 16)]
    parallel: usize,
}

impl VerifyArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let loc = ctx.location(&self.service, &self.region).await?;
        let mut report = verify(&loc, self.backup.as_deref(), self.parallel).await?;
        // Sound objects are not enough: a hole in the log archive stops every restore past it.
        report.missing.extend(
            ctx.engine_of(&loc)?
                .log_gaps(&loc, self.backup.as_deref())
                .await?,
        );
        ctx.out.emit(&report, || {
            let mut s = format!(
                "region {} service {}: {} backups, {} chunks, {} logs, {} read",
                report.region,
                report.service,
                report.backups_checked,
                report.chunks_checked,
                report.logs_checked,
                crate::output::human_bytes(report.bytes_checked)
            );
            for p in &report.damaged {
                s.push_str(&format!("\nDAMAGED {}: {}", p.key, p.reason));
            }
            for p in &report.missing {
                s.push_str(&format!("\nMISSING {}: {}", p.key, p.reason));
            }
            if report.is_clean() {
                s.push_str("\nOK: no damage found");
            }
            s
        })?;
        Ok(if report.is_clean() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(crate::exit::DAMAGE_FOUND)
        })
    }
}

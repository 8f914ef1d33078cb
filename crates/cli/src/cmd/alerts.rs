use std::process::ExitCode;

use super::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum AlertsCmd {
    /// The conditions that hold now (each alerted once, until it clears).
    List,
    /// Evaluate every condition once and send what started or stopped holding (`btar server` does
    /// this each scheduler pass; this is for a cron job without a server).
    Evaluate,
}

impl AlertsCmd {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let cp = ctx.control().await?;
        match self {
            AlertsCmd::List => {
                let alerts = cp.catalog().list_alerts().await?;
                ctx.out.emit(&serde_json::json!({ "alerts": alerts }), || {
                    if alerts.is_empty() {
                        return "no alert holds".to_string();
                    }
                    alerts
                        .iter()
                        .map(|a| format!("{} since {}: {}", a.key, a.since, a.message))
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
            }
            AlertsCmd::Evaluate => {
                let sent = cp.evaluate_alerts().await?;
                ctx.out.emit(&serde_json::json!({ "sent": sent }), || {
                    if sent.is_empty() {
                        return "nothing started or stopped holding".to_string();
                    }
                    sent.iter()
                        .map(|n| format!("{} (to {})", n.text, n.delivered.join(", ")))
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

use std::process::ExitCode;

use super::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum CatalogCmd {
    /// Re-index every backup of every known service from the stores (they are the truth).
    Rebuild,
}

impl CatalogCmd {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let cp = ctx.control().await?;
        match self {
            CatalogCmd::Rebuild => {
                let indexed = cp.rebuild_backups_index().await?;
                let rows: Vec<_> = indexed
                    .iter()
                    .map(|(service, region, backups)| {
                        serde_json::json!({"service": service, "region": region, "backups": backups})
                    })
                    .collect();
                ctx.out.emit(&serde_json::json!({ "indexed": rows }), || {
                    indexed
                        .iter()
                        .map(|(s, r, n)| format!("{s} in {r}: {n} backups indexed"))
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

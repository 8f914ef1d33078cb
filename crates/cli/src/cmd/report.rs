use std::process::ExitCode;

use btar_catalog::Period;

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    service: String,
    /// hour, day, week, month or year.
    #[arg(long, default_value = "hour")]
    period: String,
    /// Print the raw samples of the period instead of the chart buckets.
    #[arg(long)]
    samples: bool,
}

impl ReportArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let period: Period = self.period.parse()?;
        let api = ctx.api().await?;
        if self.samples {
            let cp = api.local("report --samples")?;
            cp.service(&self.service).await?;
            let since = cp.catalog().now() - period.length();
            let samples = cp.catalog().lag_samples(&self.service, since).await?;
            ctx.out
                .emit(&serde_json::json!({ "samples": samples }), || {
                    samples
                        .iter()
                        .map(|s| {
                            format!(
                                "{} {} backup_lag={:?} wal_lag={:?} pending={:?}",
                                s.sampled_at.to_rfc3339(),
                                s.destination_region,
                                s.backup_lag_seconds,
                                s.wal_lag_seconds,
                                s.bytes_pending
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })?;
            return Ok(ExitCode::SUCCESS);
        }
        let report = api.lag_report(&self.service, period).await?;
        ctx.out.emit(&report, || {
            let mut s = format!(
                "replication lag of {} over the last {} ({}s per point)",
                report.service, report.period, report.step_seconds
            );
            if report.metrics.is_empty() {
                s.push_str("\n  no samples yet");
            }
            let last = |v: &[(i64, f64)]| {
                v.last()
                    .map(|p| format!("{:.1}", p.1))
                    .unwrap_or_else(|| "-".into())
            };
            for st in &report.streamed {
                s.push_str(&format!(
                    "\n  streamed to {}{}: {} ({} bytes, {:.1} s behind the server at {}){}",
                    st.region,
                    if st.primary { " (primary)" } else { "" },
                    st.position,
                    st.bytes_behind,
                    st.seconds_behind,
                    st.server_position,
                    st.error
                        .as_deref()
                        .map(|e| format!("; last store failed: {e}"))
                        .unwrap_or_default()
                ));
            }
            for (region, series) in &report.metrics {
                s.push_str(&format!(
                    "\n  {region}: backup lag {} s, WAL lag {} s, bytes pending {} ({} points)",
                    last(&series.backup_lag_seconds),
                    last(&series.wal_lag_seconds),
                    last(&series.bytes_pending),
                    series
                        .backup_lag_seconds
                        .len()
                        .max(series.wal_lag_seconds.len())
                ));
            }
            s
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

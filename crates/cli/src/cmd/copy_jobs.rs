use std::process::ExitCode;

use btar_catalog::{CopyJob, CopyJobFilter, JobState};

use super::Ctx;
use super::restore::parse_time;
use crate::output::human_bytes;

#[derive(Debug, clap::Subcommand)]
pub enum CopyJobsCmd {
    /// List copy jobs, newest first (AWS ListCopyJobs).
    List {
        /// CREATED, RUNNING, COMPLETED, FAILED or PARTIAL.
        #[arg(long, value_parser = parse_state)]
        state: Option<JobState>,
        #[arg(long)]
        created_after: Option<String>,
        #[arg(long)]
        created_before: Option<String>,
        #[arg(long)]
        completed_after: Option<String>,
        #[arg(long)]
        completed_before: Option<String>,
        /// Destination region.
        #[arg(long)]
        destination: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show one copy job (AWS DescribeCopyJob).
    Describe { id: String },
}

fn parse_state(s: &str) -> Result<JobState, String> {
    s.to_ascii_uppercase().parse().map_err(|_| {
        format!("unknown state `{s}` (expected CREATED, RUNNING, COMPLETED, FAILED or PARTIAL)")
    })
}

/// One line for people: id, state, what went where, bytes.
pub fn one_line(j: &CopyJob) -> String {
    format!(
        "copy job {}{} {:<9} {} {} -> {} {} transferred{}",
        j.copy_job_id,
        j.retry_of
            .as_ref()
            .map(|r| format!(" (retry of {r})"))
            .unwrap_or_default(),
        j.state.as_str(),
        j.backup_name,
        j.source_region,
        j.destination_region,
        human_bytes(u64::try_from(j.bytes_transferred).unwrap_or(0)),
        j.status_message
            .as_ref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    )
}

impl CopyJobsCmd {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let cp = ctx.control().await?;
        match self {
            CopyJobsCmd::List {
                state,
                created_after,
                created_before,
                completed_after,
                completed_before,
                destination,
                service,
                limit,
            } => {
                let filter = CopyJobFilter {
                    state,
                    created_after: created_after.as_deref().map(parse_time).transpose()?,
                    created_before: created_before.as_deref().map(parse_time).transpose()?,
                    completed_after: completed_after.as_deref().map(parse_time).transpose()?,
                    completed_before: completed_before.as_deref().map(parse_time).transpose()?,
                    after_job: None,
                    destination_region: destination,
                    service,
                    limit: Some(limit),
                };
                let jobs = cp.catalog().list_copy_jobs(&filter).await?;
                ctx.out
                    .emit(&serde_json::json!({ "copy_jobs": jobs }), || {
                        jobs.iter().map(one_line).collect::<Vec<_>>().join("\n")
                    })?;
            }
            CopyJobsCmd::Describe { id } => {
                let job = cp.catalog().describe_copy_job(&id).await?;
                ctx.out.emit(&job, || {
                    serde_json::to_string_pretty(&job).unwrap_or_else(|_| one_line(&job))
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

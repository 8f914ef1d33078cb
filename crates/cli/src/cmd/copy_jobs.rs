use std::process::ExitCode;

use btar_catalog::{CopyJob, CopyJobFilter, JobState};
use btar_control::copy_jobs::CopyJobView;

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
        /// Created at or after this time (AWS ByCreatedAfter).
        #[arg(long, alias = "by-created-after")]
        created_after: Option<String>,
        /// Created before this time (AWS ByCreatedBefore).
        #[arg(long, alias = "by-created-before")]
        created_before: Option<String>,
        /// Completed at or after this time (AWS ByCompleteAfter).
        #[arg(long, alias = "by-completed-after")]
        completed_after: Option<String>,
        /// Completed before this time (AWS ByCompleteBefore).
        #[arg(long, alias = "by-completed-before")]
        completed_before: Option<String>,
        /// Destination region.
        #[arg(long)]
        destination: Option<String>,
        #[arg(long)]
        service: Option<String>,
        /// Jobs per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The `next_token` of the previous page.
        #[arg(long)]
        next_token: Option<String>,
    },
    /// Show one copy job (AWS DescribeCopyJob).
    Describe { id: String },
}

fn parse_state(s: &str) -> Result<JobState, String> {
    s.to_ascii_uppercase().parse().map_err(|_| {
        format!("unknown state `{s}` (expected CREATED, RUNNING, COMPLETED, FAILED or PARTIAL)")
    })
}

/// One line for people: id, state, what went where, bytes, the destination's retention.
fn view_line(v: &CopyJobView) -> String {
    match v.destination_retention {
        Some(l) => format!("{} (kept {} days)", one_line(&v.job), l.delete_after_days),
        None => one_line(&v.job),
    }
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
        let api = ctx.api().await?;
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
                next_token,
            } => {
                let filter = CopyJobFilter {
                    state,
                    created_after: created_after.as_deref().map(parse_time).transpose()?,
                    created_before: created_before.as_deref().map(parse_time).transpose()?,
                    completed_after: completed_after.as_deref().map(parse_time).transpose()?,
                    completed_before: completed_before.as_deref().map(parse_time).transpose()?,
                    destination_region: destination,
                    service,
                    ..Default::default()
                };
                let page = api
                    .copy_jobs_page(filter, limit, next_token.as_deref())
                    .await?;
                ctx.out.emit(&page, || {
                    let mut lines: Vec<String> = page.copy_jobs.iter().map(view_line).collect();
                    if let Some(t) = &page.next_token {
                        lines.push(format!("more: --next-token {t}"));
                    }
                    lines.join("\n")
                })?;
            }
            CopyJobsCmd::Describe { id } => {
                let job = api.copy_job(&id).await?;
                ctx.out.emit(&job, || {
                    serde_json::to_string_pretty(&job).unwrap_or_else(|_| view_line(&job))
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

//! Notifications: the conditions an operator must hear about, evaluated each scheduler pass, each
//! sent once when it starts to hold and once ("resolved") when it clears — the catalog's `alerts`
//! table says which hold, so servers sharing a catalog do not repeat each other. Sinks: webhooks
//! (a JSON POST whose `text` suits Slack's incoming webhooks) and commands (the alert as JSON on
//! stdin and in `BTAR_ALERT_*` variables), each tried a few times; every delivery is an event.
//!
//! Conditions: a primary backup that failed (until one is committed again); a restore drill that
//! did not succeed (until one does); a copy job FAILED
//! after its last attempt (until a later copy of that service to that region completes); a compliance rule failing (`btar check`: copy age, late primary backup,
//! a hole in a log archive; the check is rerun at most every 5 minutes, so its alerts resolve within
//! that); backup lag over `[alerts] backup_lag_seconds`; a WAL streamer's location behind by more
//! than `[alerts] stream_lag_seconds`, failing to store, or a streamer silent for twice that.

use std::collections::BTreeMap;
use std::time::Duration;

use btar_catalog::{CopyJobFilter, JobState, Period};
use serde::Serialize;

use crate::ControlPlane;
use crate::check::CheckStatus;
use crate::error::Result;

/// A condition that holds now.
#[derive(Debug, Clone)]
struct Condition {
    service: Option<String>,
    kind: &'static str,
    message: String,
}

/// One alert as sent: firing or resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub status: &'static str,
    pub key: String,
    pub kind: String,
    pub service: Option<String>,
    pub message: String,
    /// Slack-compatible one-line summary.
    pub text: String,
    /// Sinks that took it, and the ones that did not after every attempt (not in what is sent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delivered: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

impl ControlPlane {
    /// Evaluates every condition now, sends what started or stopped holding, and returns it.
    pub async fn evaluate_alerts(&self) -> Result<Vec<Notification>> {
        let holding = self.conditions().await?;
        let mut sent = Vec::new();
        for (key, c) in &holding {
            let opened = self
                .catalog()
                .open_alert(key, c.service.as_deref(), c.kind, &c.message)
                .await?;
            if opened {
                sent.push(
                    self.notify("firing", key, c.kind, c.service.clone(), &c.message)
                        .await,
                );
            }
        }
        for a in self.catalog().list_alerts().await? {
            if holding.contains_key(&a.key) {
                continue;
            }
            if let Some(a) = self.catalog().close_alert(&a.key).await? {
                sent.push(
                    self.notify("resolved", &a.key, &a.kind, a.service, &a.message)
                        .await,
                );
            }
        }
        Ok(sent)
    }

    async fn conditions(&self) -> Result<BTreeMap<String, Condition>> {
        let mut out = BTreeMap::new();
        // The newest copy job of each service and destination: FAILED for good until a later one
        // completes (a retry in flight does not clear it).
        let jobs = self
            .catalog()
            .list_copy_jobs(&CopyJobFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await?;
        let mut newest: BTreeMap<(String, String), &btar_catalog::CopyJob> = BTreeMap::new();
        for j in &jobs {
            if j.state == JobState::Completed
                || (j.state == JobState::Failed && j.next_attempt_at.is_none())
            {
                newest
                    .entry((j.service.clone(), j.destination_region.clone()))
                    .or_insert(j);
            }
        }
        for ((service, dest), j) in newest {
            if j.state == JobState::Failed {
                out.insert(
                    format!("copy_failed/{service}/{dest}"),
                    Condition {
                        kind: "copy_failed",
                        message: format!(
                            "copy of backup {} to region {dest} FAILED (job {}): {}",
                            j.backup_name,
                            j.copy_job_id,
                            j.status_message.as_deref().unwrap_or("no reason recorded")
                        ),
                        service: Some(service),
                    },
                );
            }
        }
        // A service whose newest backup attempt failed (until one is committed again).
        let services = self.catalog().list_services().await?;
        for svc in &services {
            let events = self
                .catalog()
                .list_events(&btar_catalog::EventFilter {
                    service: Some(svc.name.clone()),
                    after_id: None,
                    limit: Some(200),
                })
                .await?;
            if let Some(d) = events.iter().find(|e| e.kind.starts_with("drill_"))
                && d.kind != "drill_successful"
            {
                out.insert(
                    format!("drill_failed/{}", svc.name),
                    Condition {
                        service: Some(svc.name.clone()),
                        kind: "drill_failed",
                        message: format!(
                            "the restore drill at {} did not succeed ({})",
                            d.at, d.kind
                        ),
                    },
                );
            }
            let last = events
                .iter()
                .find(|e| e.kind == "backup_failed" || e.kind == "backup_committed");
            if let Some(e) = last.filter(|e| e.kind == "backup_failed") {
                out.insert(
                    format!("backup_failed/{}", svc.name),
                    Condition {
                        service: Some(svc.name.clone()),
                        kind: "backup_failed",
                        message: format!("the backup at {} failed: {}", e.at, e.message),
                    },
                );
            }
        }
        if let Some(report) = self.cached_check().await {
            for r in report
                .results
                .iter()
                .filter(|r| r.status == CheckStatus::Fail)
            {
                out.insert(
                    format!("check/{}/{}/{}", r.service, r.rule, r.region),
                    Condition {
                        service: Some(r.service.clone()),
                        kind: "check_failed",
                        message: format!(
                            "rule {} fails in region {}: {}",
                            r.rule, r.region, r.detail
                        ),
                    },
                );
            }
        }
        self.stream_conditions(&mut out).await?;
        if let Some(limit) = self.config().alerts.backup_lag_seconds {
            for svc in &services {
                let report = self.catalog().lag_report(&svc.name, Period::Hour).await?;
                for (dest, series) in report.metrics {
                    let Some((_, lag)) = series.backup_lag_seconds.last() else {
                        continue;
                    };
                    if *lag > limit as f64 {
                        out.insert(
                            format!("backup_lag/{}/{dest}", svc.name),
                            Condition {
                                service: Some(svc.name.clone()),
                                kind: "backup_lag",
                                message: format!(
                                    "backups reach region {dest} {lag:.0} s after the primary (limit {limit} s)"
                                ),
                            },
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    /// The streamer's last reports: a location behind or failing; a streamer that went silent (a
    /// streamer stopped on purpose clears its reports).
    async fn stream_conditions(&self, out: &mut BTreeMap<String, Condition>) -> Result<()> {
        let limit = self.config().alerts.stream_lag_seconds;
        let now = self.catalog().now();
        let mut silent = BTreeMap::new();
        for st in self.catalog().list_stream_positions().await? {
            let age = (now - st.updated_at).num_seconds();
            if age > 2 * limit as i64 {
                silent.insert(st.service.clone(), age);
                continue;
            }
            let problem = match &st.error {
                Some(e) => Some(format!(
                    "storing streamed WAL in region {} fails: {e}",
                    st.region
                )),
                None if st.seconds_behind > limit as f64 => Some(format!(
                    "streamed WAL in region {} is {:.0} s behind the server (limit {limit} s)",
                    st.region, st.seconds_behind
                )),
                None => None,
            };
            if let Some(message) = problem {
                out.insert(
                    format!("stream_behind/{}/{}", st.service, st.region),
                    Condition {
                        service: Some(st.service.clone()),
                        kind: "stream_behind",
                        message,
                    },
                );
            }
        }
        for (service, age) in silent {
            out.insert(
                format!("stream_silent/{service}"),
                Condition {
                    service: Some(service),
                    kind: "stream_silent",
                    message: format!(
                        "the WAL streamer has not reported for {age} s: it stopped without being stopped (btar log-stream)"
                    ),
                },
            );
        }
        Ok(())
    }

    async fn notify(
        &self,
        status: &'static str,
        key: &str,
        kind: &str,
        service: Option<String>,
        message: &str,
    ) -> Notification {
        let text = format!(
            "[btar] {} {kind}{}: {message}",
            status.to_uppercase(),
            service
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default()
        );
        let mut n = Notification {
            status,
            key: key.into(),
            kind: kind.into(),
            service,
            message: message.into(),
            text,
            delivered: Vec::new(),
            failed: Vec::new(),
        };
        let body = serde_json::to_vec(&n).unwrap_or_default();
        let cfg = &self.config().alerts;
        let attempts = cfg.attempts.max(1);
        // Sinks by position, never by URL: a webhook URL often carries its secret.
        for (i, url) in cfg.webhooks.iter().enumerate() {
            let sink = format!("webhook {}", i + 1);
            match retry(attempts, || post(url, &body)).await {
                Ok(()) => n.delivered.push(sink),
                Err(e) => n.failed.push(format!("{sink}: {e}")),
            }
        }
        for (i, cmd) in cfg.commands.iter().enumerate() {
            let sink = format!("command {}", i + 1);
            match retry(attempts, || run_hook(cmd, &n, &body)).await {
                Ok(()) => n.delivered.push(sink),
                Err(e) => n.failed.push(format!("{sink}: {e}")),
            }
        }
        let outcome = if n.failed.is_empty() {
            format!(
                "delivered to {}",
                if n.delivered.is_empty() {
                    "no sink".into()
                } else {
                    n.delivered.join(", ")
                }
            )
        } else {
            format!("NOT delivered to {}", n.failed.join("; "))
        };
        tracing::info!(status, key, kind, %outcome, "alert");
        let _ = self
            .catalog()
            .append_event(
                n.service.as_deref(),
                &format!("alert_{status}"),
                &format!("{}; {outcome}", n.text),
            )
            .await;
        n
    }
}

async fn retry<F, Fut>(attempts: u32, mut f: F) -> std::result::Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), String>>,
{
    let mut wait = Duration::from_millis(500);
    let mut last = String::new();
    for i in 0..attempts {
        match f().await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if i + 1 < attempts {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    Err(last)
}

async fn post(url: &str, body: &[u8]) -> std::result::Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        // Without the URL: reqwest's errors name it, and it may hold a secret.
        .map_err(|e| format!("request failed ({})", e.without_url()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", resp.status()))
    }
}

async fn run_hook(cmd: &str, n: &Notification, body: &[u8]) -> std::result::Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("BTAR_ALERT_STATUS", n.status)
        .env("BTAR_ALERT_KIND", &n.kind)
        .env("BTAR_ALERT_KEY", &n.key)
        .env("BTAR_ALERT_SERVICE", n.service.as_deref().unwrap_or(""))
        .env("BTAR_ALERT_MESSAGE", &n.message)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(body).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| "did not finish within 30 s".to_string())?
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("exited {status}"))
    }
}

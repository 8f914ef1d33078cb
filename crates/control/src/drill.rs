//! Restore drills (AWS Backup restore testing): restore a service's latest backup from a location
//! into a scratch directory on a free port, let the server recover and promote, optionally run a
//! validation query that must return a row, record SUCCESSFUL / FAILED / TIMED_OUT with how long
//! it took and the point reached, and clean up. A drill reads the location and never touches the
//! source database: the restored server archives nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use btar_engine::{NoProgress, Target};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ControlPlane;
use crate::error::{ControlError, Result};
use crate::restore::RestoreRun;

/// What to drill.
#[derive(Debug, Clone)]
pub struct DrillRun {
    pub service: String,
    /// The location restored from; the home region by default.
    pub region: Option<String>,
    /// SQL that must return a row (e.g. `SELECT 1 FROM orders LIMIT 1`); without it, a server that
    /// starts, recovers and promotes passes.
    pub query: Option<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DrillState {
    Successful,
    Failed,
    TimedOut,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"service": "orders", "region": "aws-eu-central-1", "backup": "20261130T030000123Z",
    "state": "SUCCESSFUL", "started_at": "2026-11-30T04:00:00Z", "duration_seconds": 38.2,
    "reached": {"time": "2026-11-30T03:58:12Z"}, "message": "1"})))]
pub struct DrillResult {
    pub service: String,
    pub region: Option<String>,
    pub backup: Option<String>,
    pub state: DrillState,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: f64,
    /// The point the restored server recovered to (engine's words).
    pub reached: Option<serde_json::Value>,
    /// The validation query's first row, or why the drill failed.
    pub message: String,
}

/// Event kinds of drills, one per state.
pub fn event_kind(state: DrillState) -> &'static str {
    match state {
        DrillState::Successful => "drill_successful",
        DrillState::Failed => "drill_failed",
        DrillState::TimedOut => "drill_timed_out",
    }
}

impl ControlPlane {
    /// Runs one drill; the result is also recorded as an event (`drill_*`).
    pub async fn drill(&self, run: DrillRun) -> Result<DrillResult> {
        let svc = self.service(&run.service).await?;
        let engine = self.engine(&svc)?;
        if !engine.drills() {
            return Err(ControlError::Invalid(format!(
                "restore drills are not built for {} services yet",
                svc.engine
            )));
        }
        let scratch = scratch_dir(&run.service);
        let started_at = self.catalog().now();
        let clock = Instant::now();
        let restore = self.restore(
            RestoreRun {
                service: run.service.clone(),
                region: run.region.clone(),
                target: Target::Latest,
                backup: None,
                data_dir: scratch.clone(),
                port: None,
                settings: vec![],
                start: true,
                archive: false,
                promote_timeout: run.timeout,
                loopback_only: true,
            },
            &NoProgress,
        );
        let mut result = DrillResult {
            service: run.service.clone(),
            region: run.region.clone(),
            backup: None,
            state: DrillState::Failed,
            started_at,
            duration_seconds: 0.0,
            reached: None,
            message: String::new(),
        };
        match tokio::time::timeout(run.timeout, restore).await {
            Err(_) => {
                result.state = DrillState::TimedOut;
                result.message = format!("not restored and validated within {:?}", run.timeout);
            }
            Ok(Err(e)) => result.message = format!("restore failed: {e}"),
            Ok(Ok(restored)) => {
                result.region = Some(restored.outcome.region.clone());
                result.backup = Some(restored.outcome.backup.clone());
                result.reached = serde_json::to_value(&restored.outcome.reached).ok();
                let left = run.timeout.saturating_sub(clock.elapsed());
                match &run.query {
                    None => {
                        result.state = DrillState::Successful;
                        result.message = "the server started, recovered and was promoted".into();
                    }
                    Some(sql) => {
                        let source = self.agent_settings(&svc);
                        let probe = engine.probe(&restored.outcome, source.as_ref(), sql);
                        match tokio::time::timeout(left, probe).await {
                            Err(_) => {
                                result.state = DrillState::TimedOut;
                                result.message =
                                    "the validation query did not finish in time".into();
                            }
                            Ok(Ok(Some(row))) => {
                                result.state = DrillState::Successful;
                                result.message = format!("validation query returned {row}");
                            }
                            Ok(Ok(None)) => {
                                result.message = "the validation query returned no row".into();
                            }
                            Ok(Err(e)) => result.message = format!("validation query failed: {e}"),
                        }
                    }
                }
            }
        }
        result.duration_seconds = clock.elapsed().as_secs_f64();
        // Clean up whatever happened: the server, then its directory.
        if let Err(e) = engine.stop_restored(&scratch).await {
            tracing::warn!(dir = %scratch.display(), error = %e, "drill server not stopped");
        }
        if let Err(e) = std::fs::remove_dir_all(&scratch)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %scratch.display(), error = %e, "drill directory not removed");
        }
        let json = serde_json::to_string(&result).unwrap_or_default();
        let _ = self
            .catalog()
            .append_event(Some(&run.service), event_kind(result.state), &json)
            .await;
        tracing::info!(service = %run.service, state = ?result.state, seconds = result.duration_seconds, "restore drill");
        Ok(result)
    }

    /// Recorded drills, newest first (from the events).
    pub async fn drills(&self, service: Option<&str>) -> Result<Vec<DrillResult>> {
        let events = self
            .catalog()
            .list_events(&btar_catalog::EventFilter {
                service: service.map(String::from),
                after_id: None,
                limit: Some(1000),
            })
            .await?;
        Ok(events
            .iter()
            .filter(|e| e.kind.starts_with("drill_"))
            .filter_map(|e| serde_json::from_str(&e.message).ok())
            .collect())
    }
}

/// A fresh directory of the drill's own under the system's temporary directory.
fn scratch_dir(service: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!(
        "btar-drill-{service}-{}-{nanos}",
        std::process::id()
    ))
}

/// Whether a scheduled drill is due: its latest slot has come, no drill ran since, and the slot is
/// recent (a server down for days runs one drill when back, not every slot it missed).
pub fn due(
    last_slot: Option<DateTime<Utc>>,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    match last_slot {
        Some(slot) => slot <= now && last_run.is_none_or(|r| r < slot),
        None => false,
    }
}

impl ControlPlane {
    /// Runs the configured drills whose slot has come (one scheduler pass; the leader calls it).
    pub async fn run_due_drills(&self) -> Result<Vec<DrillResult>> {
        let now = self.catalog().now();
        let mut out = Vec::new();
        for d in &self.config().drills {
            let Ok(schedule) = crate::schedule::Schedule::parse(&d.schedule) else {
                continue;
            };
            let last_run = self
                .drills(Some(&d.service))
                .await?
                .first()
                .map(|r| r.started_at);
            if !due(schedule.last_slot(now), last_run, now) {
                continue;
            }
            let run = DrillRun {
                service: d.service.clone(),
                region: d.region.clone(),
                query: d.query.clone(),
                timeout: Duration::from_secs(d.timeout_minutes.max(1) * 60),
            };
            match self.drill(run).await {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(service = %d.service, error = %e, "scheduled drill not run")
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_is_due_once_per_slot() {
        let t = |h: i64| DateTime::from_timestamp(1_800_000_000 + h * 3600, 0).unwrap_or_default();
        // Slot at t(0): never run, or last run before it: due; run after it: not due.
        assert!(due(Some(t(0)), None, t(1)));
        assert!(due(Some(t(0)), Some(t(-24)), t(1)));
        assert!(!due(
            Some(t(0)),
            Some(t(0) + chrono::TimeDelta::seconds(5)),
            t(1)
        ));
        assert!(!due(None, None, t(1)));
    }
}

//! The compliance check (AWS Audit Manager's BKP-004, pgBackRest's `check`): per service, rules
//! that hold when its backups are where an operator believes they are — read from the locations
//! themselves, not from the catalog's index, so a server that was down or a store emptied behind
//! btar's back is noticed.
//!
//! Rules:
//! - `copy_recent`: each additional backup region holds a backup taken within the last N days
//!   (`[check] copy_max_age_days`, default 30);
//! - `backup_fresh`: the newest primary backup is younger than the plan's interval plus its start
//!   window (a service without a plan is not scheduled, so the rule does not apply);
//! - `log_gap_free`: each location's log archive has no hole that stops a restore of a kept backup.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use btar_catalog::Role;
use btar_format::time_of_backup_name;

use crate::ControlPlane;
use crate::error::Result;
use crate::schedule::Schedule;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckStatus {
    Pass,
    Fail,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckResult {
    pub service: String,
    /// `copy_recent`, `backup_fresh` or `log_gap_free`.
    #[schema(value_type = String, examples("copy_recent"))]
    pub rule: std::borrow::Cow<'static, str>,
    pub region: String,
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"checked_at": "2026-11-30T07:05:00Z", "failed": 1, "results": [
    {"service": "orders", "rule": "backup_fresh", "region": "aws-eu-west-1", "status": "PASS", "detail": "newest backup 4h ago; plan interval 24h"},
    {"service": "orders", "rule": "copy_recent", "region": "aws-eu-central-1", "status": "FAIL", "detail": "newest copy 3d ago; at most 1d allowed"}]})))]
pub struct CheckReport {
    pub checked_at: DateTime<Utc>,
    pub results: Vec<CheckResult>,
    pub failed: usize,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.failed == 0
    }
}

fn result(
    service: &str,
    rule: &'static str,
    region: &str,
    ok: bool,
    detail: String,
) -> CheckResult {
    CheckResult {
        service: service.into(),
        rule: rule.into(),
        region: region.into(),
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        detail,
    }
}

/// How long `/metrics` reuses a check, and how long one may take before a scrape goes without.
const METRICS_CHECK_TTL: std::time::Duration = std::time::Duration::from_secs(300);
const METRICS_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

impl ControlPlane {
    /// The check for `/metrics`: the last one if younger than five minutes and of the same services,
    /// else a new one (one at a time); `None` if it fails or takes longer than 20 s, so a slow store
    /// cannot hang a scrape.
    pub(crate) async fn cached_check(&self) -> Option<CheckReport> {
        let mut slot = self.inner.check_cache.lock().await;
        // A service created or deleted since makes the last check stale at once.
        let live: std::collections::BTreeSet<String> = match self.catalog().list_services().await {
            Ok(s) => s.into_iter().map(|s| s.name).collect(),
            Err(_) => return None,
        };
        if let Some((at, report)) = slot.as_ref()
            && at.elapsed() < METRICS_CHECK_TTL
            && report
                .results
                .iter()
                .map(|r| r.service.clone())
                .collect::<std::collections::BTreeSet<_>>()
                == live
        {
            return Some(report.clone());
        }
        let now = self.catalog().now();
        match tokio::time::timeout(METRICS_CHECK_TIMEOUT, self.check(None, now)).await {
            Ok(Ok(report)) => {
                *slot = Some((std::time::Instant::now(), report.clone()));
                Some(report)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "compliance check for /metrics failed");
                None
            }
            Err(_) => {
                tracing::warn!("compliance check for /metrics took longer than 20 s; skipped");
                None
            }
        }
    }

    /// Runs every rule for `service` (or every live service) as of `now`.
    pub async fn check(&self, service: Option<&str>, now: DateTime<Utc>) -> Result<CheckReport> {
        let services = match service {
            Some(name) => vec![self.catalog().get_service(name).await?],
            None => self.catalog().list_services().await?,
        };
        let mut results = Vec::new();
        for svc in services {
            for place in self.locations_of(&svc).await? {
                // Former regions keep their copies, but are no longer promised anything.
                let current = place.role == Role::Primary
                    || svc.additional_backup_regions().contains(&place.region);
                if !current {
                    continue;
                }
                results.extend(
                    self.check_location(&svc, &place.region, place.role, now)
                        .await,
                );
            }
        }
        let failed = results
            .iter()
            .filter(|r| r.status == CheckStatus::Fail)
            .count();
        Ok(CheckReport {
            checked_at: now,
            results,
            failed,
        })
    }

    async fn check_location(
        &self,
        svc: &btar_catalog::Service,
        region: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> Vec<CheckResult> {
        let name = svc.name.as_str();
        let loc = match self.location(name, region).await {
            Ok(l) => l,
            Err(e) => {
                let rule = if role == Role::Primary {
                    "backup_fresh"
                } else {
                    "copy_recent"
                };
                return vec![result(
                    name,
                    rule,
                    region,
                    false,
                    format!("location unreadable: {e}"),
                )];
            }
        };
        let mut out = Vec::new();
        let newest = match loc.list_backups().await {
            Ok(names) => names.iter().filter_map(|n| time_of_backup_name(n)).max(),
            Err(e) => {
                out.push(result(
                    name,
                    "log_gap_free",
                    region,
                    false,
                    format!("cannot list: {e}"),
                ));
                return out;
            }
        };
        let age = |t: DateTime<Utc>| {
            humantime::format_duration((now - t).to_std().unwrap_or_default()).to_string()
        };
        match role {
            Role::Secondary => {
                let days = self.config().check.copy_max_age_days;
                let limit = now - TimeDelta::days(days.into());
                out.push(match newest {
                    Some(t) => result(
                        name,
                        "copy_recent",
                        region,
                        t >= limit,
                        format!("newest copy taken {t} ({} ago); limit {days} days", age(t)),
                    ),
                    None => result(
                        name,
                        "copy_recent",
                        region,
                        false,
                        "no copy in this region".into(),
                    ),
                });
            }
            Role::Primary => {
                if let Some(r) = self.backup_fresh(svc, region, newest, now) {
                    out.push(r);
                }
            }
        }
        let gaps = match self.engine_of(&loc) {
            Ok(engine) => engine.log_gaps(&loc, None).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        out.push(match gaps {
            Ok(g) if g.is_empty() => result(name, "log_gap_free", region, true, "no hole".into()),
            Ok(g) => result(
                name,
                "log_gap_free",
                region,
                false,
                g.iter()
                    .map(|p| format!("{}: {}", p.key, p.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(e) => result(name, "log_gap_free", region, false, e),
        });
        out
    }

    /// `None` when the service has no plan (nothing is scheduled, so nothing is late).
    fn backup_fresh(
        &self,
        svc: &btar_catalog::Service,
        region: &str,
        newest: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<CheckResult> {
        let plan = self.config().plan(&svc.plan).ok()?;
        let name = svc.name.as_str();
        let schedule = match Schedule::parse(&plan.schedule) {
            Ok(s) => s,
            Err(e) => return Some(result(name, "backup_fresh", region, false, e)),
        };
        let last = schedule.last_slot(now)?;
        let interval = schedule.next_slot(last).map(|n| n - last)?;
        let allowed = interval + TimeDelta::minutes(plan.start_window_minutes as i64);
        Some(match newest {
            Some(t) => result(
                name,
                "backup_fresh",
                region,
                t >= now - allowed,
                format!(
                    "newest backup taken {t}; plan `{}` runs every {}, plus a {} min start window",
                    plan.name,
                    humantime::format_duration(interval.to_std().unwrap_or_default()),
                    plan.start_window_minutes
                ),
            ),
            None => result(
                name,
                "backup_fresh",
                region,
                false,
                "no backup in the primary location".into(),
            ),
        })
    }
}

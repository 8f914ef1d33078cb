//! What each location costs (Alibaba bills backup storage in GB-hours; AWS by GB-month and per
//! request): per service and location, what is stored — logical, after compression as billed, in
//! how many objects — from listing the store itself, and what copies moved into it over a period
//! from the copy-job log. With `[[price]]` entries for a region, the same turned into money.
//!
//! Storage over the period is the size stored now times the period's hours: btar keeps no history
//! of sizes, so a location that grew during the period is billed a little more here than by its
//! store.

use btar_catalog::{CopyJobFilter, JobState, Period, Role};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;

use crate::ControlPlane;
use crate::error::Result;

const GB: f64 = 1e9;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostLine {
    pub service: String,
    pub region: String,
    /// `primary` or `secondary`.
    #[schema(value_type = String, examples("primary"))]
    pub role: &'static str,
    pub backups: u64,
    /// Bytes of database files the location's backups hold (before dedupe and compression).
    pub logical_bytes: u64,
    /// Bytes the store holds for the service: what it bills.
    pub stored_bytes: u64,
    pub objects: u64,
    /// `stored_bytes` over the period, in GB-hours.
    pub gb_hours: f64,
    /// Copy jobs into this location completed in the period, and the bytes they wrote.
    pub copy_jobs: u64,
    pub copy_bytes: u64,
    /// With a `[[price]]` for the region: storage plus transfer in the config's currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(examples(json!({"period": "month", "from": "2026-10-31T07:00:00Z", "to": "2026-11-30T07:00:00Z",
    "lines": [{"service": "orders", "region": "aws-eu-central-1", "role": "secondary", "backups": 14,
    "logical_bytes": 22284337152_u64, "stored_bytes": 1932735283, "objects": 61, "gb_hours": 1391.6,
    "copy_jobs": 30, "copy_bytes": 2147483648_u64, "price": 0.04}], "total_price": 0.04})))]
pub struct CostReport {
    pub period: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub lines: Vec<CostLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_price: Option<f64>,
}

impl ControlPlane {
    /// The cost of `service`'s (or every service's) locations over the `period` before `now`.
    pub async fn cost(
        &self,
        service: Option<&str>,
        period: Period,
        now: DateTime<Utc>,
    ) -> Result<CostReport> {
        let from = now - period.length();
        let hours = period.length().num_seconds() as f64 / 3600.0;
        let services = match service {
            Some(name) => vec![self.catalog().get_service_of_record(name).await?],
            None => self.catalog().list_all_services().await?,
        };
        let mut lines = Vec::new();
        for svc in services {
            let jobs = self
                .catalog()
                .list_copy_jobs(&CopyJobFilter {
                    service: Some(svc.name.clone()),
                    state: Some(JobState::Completed),
                    limit: Some(1000),
                    ..Default::default()
                })
                .await?;
            for place in self.locations_of(&svc).await? {
                let Ok(loc) = self.location(&svc.name, &place.region).await else {
                    continue; // a location that cannot be opened bills nothing we can see
                };
                let (mut stored, mut objects) = (0u64, 0u64);
                let mut listing = loc
                    .region()
                    .list(&btar_format::layout::service_prefix(&svc.name));
                while let Some(o) = listing.try_next().await? {
                    stored += o.size;
                    objects += 1;
                }
                let (mut backups, mut logical) = (0u64, 0u64);
                for b in self
                    .catalog()
                    .list_backups(&svc.name, Some(&place.region))
                    .await?
                {
                    backups += 1;
                    logical += b.data_size.max(0) as u64;
                }
                let copies: Vec<_> = jobs
                    .iter()
                    .filter(|j| j.destination_region == place.region)
                    .filter(|j| j.completion_date.is_some_and(|t| t >= from && t <= now))
                    .collect();
                let copy_bytes: u64 = copies
                    .iter()
                    .map(|j| j.bytes_transferred.max(0) as u64)
                    .sum();
                let gb_hours = stored as f64 / GB * hours;
                let price = self.config().price(&place.region).map(|p| {
                    // A month of 730 hours, as cloud price lists count.
                    gb_hours / 730.0 * p.gb_month + copy_bytes as f64 / GB * p.transfer_gb
                });
                lines.push(CostLine {
                    service: svc.name.clone(),
                    region: place.region.clone(),
                    role: match place.role {
                        Role::Primary => "primary",
                        Role::Secondary => "secondary",
                    },
                    backups,
                    logical_bytes: logical,
                    stored_bytes: stored,
                    objects,
                    gb_hours,
                    copy_jobs: copies.len() as u64,
                    copy_bytes,
                    price,
                });
            }
        }
        let priced: Vec<f64> = lines.iter().filter_map(|l| l.price).collect();
        Ok(CostReport {
            period: period.as_str().into(),
            from,
            to: now,
            total_price: (!priced.is_empty()).then(|| priced.iter().sum()),
            lines,
        })
    }
}

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::Catalog;
use crate::db::{float_arg, get, get_time, ms};
use crate::error::{CatalogError, DbContext, Result};

/// One measurement of how far a secondary location trails the primary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    pub service: String,
    pub destination_region: String,
    pub sampled_at: DateTime<Utc>,
    /// Secondary completion minus primary completion of the newest backup copy.
    pub backup_lag_seconds: Option<f64>,
    /// Time between a segment being durable in the primary and in the secondary.
    pub wal_lag_seconds: Option<f64>,
    /// Bytes archived in the primary and not yet in the secondary.
    pub bytes_pending: Option<i64>,
    /// The latest point a restore from this secondary location can reach.
    pub latest_recoverable_time: Option<DateTime<Utc>>,
}

/// The window of a lag report (Aiven's `period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// Points per series: one per bucket, as a chart wants, whatever the period.
    pub const POINTS: i64 = 60;

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// Calendar months and years vary; fixed lengths keep the buckets equal.
    pub fn length(self) -> TimeDelta {
        match self {
            Period::Hour => TimeDelta::hours(1),
            Period::Day => TimeDelta::days(1),
            Period::Week => TimeDelta::weeks(1),
            Period::Month => TimeDelta::days(30),
            Period::Year => TimeDelta::days(365),
        }
    }

    pub fn step(self) -> TimeDelta {
        self.length() / 60
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = CatalogError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hour" => Ok(Period::Hour),
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            "year" => Ok(Period::Year),
            _ => Err(CatalogError::InvalidPeriod(s.to_owned())),
        }
    }
}

/// `[unix seconds of the bucket start, value]`, the Google Charts friendly shape Aiven promises.
pub type Point = (i64, f64);

/// The series of one destination region. A bucket without samples has no point, so gaps in
/// sampling show as gaps rather than as zero lag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LagSeries {
    /// Worst backup lag in each bucket: secondary completion minus primary completion of a backup
    /// copy.
    #[schema(schema_with = points)]
    pub backup_lag_seconds: Vec<Point>,
    /// Worst WAL lag in each bucket: from a segment being durable in the primary to being durable
    /// in this region.
    #[schema(schema_with = points)]
    pub wal_lag_seconds: Vec<Point>,
    /// Largest backlog in each bucket: bytes archived in the primary and not yet in this region.
    #[schema(schema_with = points)]
    pub bytes_pending: Vec<Point>,
    /// Latest point (unix seconds) a restore from this region could reach, per bucket.
    #[schema(schema_with = points)]
    pub latest_recoverable_time: Vec<Point>,
}

/// `[[bucket start in unix seconds, value], …]`.
fn points() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let pair = ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::Number))
        .min_items(Some(2))
        .max_items(Some(2))
        .description(Some("[bucket start (unix seconds), value]"));
    ArrayBuilder::new().items(pair).build()
}

/// Aiven's lag report, with btar's series per destination region (Aiven names none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"service": "orders", "period": "hour", "start": "2026-11-30T06:00:00Z",
    "end": "2026-11-30T07:00:00Z", "step_seconds": 60, "metrics": {"aws-eu-central-1": {
    "backup_lag_seconds": [[1796018400, 41.5]], "wal_lag_seconds": [[1796018400, 0.8], [1796018460, 0.6]],
    "bytes_pending": [[1796018400, 0.0]], "latest_recoverable_time": [[1796018460, 1796018459.2]]}}})))]
pub struct LagReport {
    pub service: String,
    pub period: Period,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Bucket width: each series has at most 60 buckets per period.
    pub step_seconds: i64,
    /// Keyed by destination region.
    pub metrics: BTreeMap<String, LagSeries>,
    /// Where the streamer last reported each location's streamed log (issue 14): bytes and
    /// seconds behind the server's flushed WAL, now. Empty when no streamer runs for the service.
    #[serde(default)]
    pub streamed: Vec<crate::StreamStatus>,
}

/// How far a destination's gap-free copy of the log archive reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub service: String,
    pub destination_region: String,
    pub timeline: i64,
    pub last_segment: String,
    pub updated_at: DateTime<Utc>,
}

fn watermark_from_row(row: &sqlx::any::AnyRow) -> Result<Watermark> {
    Ok(Watermark {
        service: get(row, "service")?,
        destination_region: get(row, "destination_region")?,
        timeline: get(row, "timeline")?,
        last_segment: get(row, "last_segment")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

impl Catalog {
    pub async fn record_lag_sample(&self, s: &LagSample) -> Result<()> {
        sqlx::query(
            "INSERT INTO lag_samples (service, destination_region, sampled_at, backup_lag_seconds,
                 wal_lag_seconds, bytes_pending, latest_recoverable_time)
             VALUES ($1, $2, $3, CAST($4 AS DOUBLE PRECISION), CAST($5 AS DOUBLE PRECISION),
                 $6, $7)",
        )
        .bind(&s.service)
        .bind(&s.destination_region)
        .bind(ms(s.sampled_at))
        .bind(float_arg(s.backup_lag_seconds))
        .bind(float_arg(s.wal_lag_seconds))
        .bind(s.bytes_pending)
        .bind(s.latest_recoverable_time.map(ms))
        .execute(&self.pool)
        .await
        .db("record lag sample")?;
        Ok(())
    }

    /// The raw samples of `service` since `since`, oldest first (for percentiles and exports).
    pub async fn lag_samples(&self, service: &str, since: DateTime<Utc>) -> Result<Vec<LagSample>> {
        let rows = sqlx::query(
            "SELECT service, destination_region, sampled_at, backup_lag_seconds, wal_lag_seconds,
                 bytes_pending, latest_recoverable_time
             FROM lag_samples WHERE service = $1 AND sampled_at >= $2
             ORDER BY sampled_at",
        )
        .bind(service)
        .bind(ms(since))
        .fetch_all(&self.pool)
        .await
        .db("lag samples")?;
        let time = |v: i64| DateTime::from_timestamp_millis(v).unwrap_or_default();
        rows.iter()
            .map(|row| {
                Ok(LagSample {
                    service: get(row, "service")?,
                    destination_region: get(row, "destination_region")?,
                    sampled_at: time(get(row, "sampled_at")?),
                    backup_lag_seconds: get(row, "backup_lag_seconds")?,
                    wal_lag_seconds: get(row, "wal_lag_seconds")?,
                    bytes_pending: get(row, "bytes_pending")?,
                    latest_recoverable_time: get::<Option<i64>>(row, "latest_recoverable_time")?
                        .map(time),
                })
            })
            .collect()
    }

    /// Drops samples older than `before`; returns how many.
    pub async fn prune_lag_samples(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM lag_samples WHERE sampled_at < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .db("prune lag samples")?;
        Ok(done.rows_affected())
    }

    /// Lag of every destination of `service` over the last `period`, in [`Period::POINTS`]
    /// buckets. Buckets are aligned to multiples of the step so that points keep their timestamps
    /// from one request to the next; the newest bucket contains "now".
    pub async fn lag_report(&self, service: &str, period: Period) -> Result<LagReport> {
        let step = period.step().num_milliseconds();
        let end = (ms(self.now()).div_euclid(step) + 1) * step;
        let start = end - step * Period::POINTS;
        let rows = sqlx::query(
            "SELECT destination_region, (sampled_at - $2) / $3 AS bucket,
                 MAX(backup_lag_seconds) AS backup_lag, MAX(wal_lag_seconds) AS wal_lag,
                 MAX(bytes_pending) AS pending, MAX(latest_recoverable_time) AS recoverable
             FROM lag_samples
             WHERE service = $1 AND sampled_at >= $2 AND sampled_at < $4
             GROUP BY destination_region, bucket
             ORDER BY destination_region, bucket",
        )
        .bind(service)
        .bind(start)
        .bind(step)
        .bind(end)
        .fetch_all(&self.pool)
        .await
        .db("lag report")?;

        let mut metrics: BTreeMap<String, LagSeries> = BTreeMap::new();
        for row in &rows {
            let bucket: i64 = get(row, "bucket")?;
            let at = (start + bucket * step) / 1000;
            let series = metrics.entry(get(row, "destination_region")?).or_default();
            if let Some(v) = get::<Option<f64>>(row, "backup_lag")? {
                series.backup_lag_seconds.push((at, v));
            }
            if let Some(v) = get::<Option<f64>>(row, "wal_lag")? {
                series.wal_lag_seconds.push((at, v));
            }
            // i64 → f64: byte counts and epoch seconds stay exact far beyond any real value.
            if let Some(v) = get::<Option<i64>>(row, "pending")? {
                series.bytes_pending.push((at, v as f64));
            }
            if let Some(v) = get::<Option<i64>>(row, "recoverable")? {
                series.latest_recoverable_time.push((at, (v / 1000) as f64));
            }
        }
        let time = |v: i64| DateTime::from_timestamp_millis(v).unwrap_or_default();
        Ok(LagReport {
            service: service.to_owned(),
            period,
            start: time(start),
            end: time(end),
            step_seconds: step / 1000,
            metrics,
            streamed: self
                .list_stream_positions()
                .await?
                .into_iter()
                .filter(|s| s.service == service)
                .collect(),
        })
    }

    pub async fn get_watermark(
        &self,
        service: &str,
        destination_region: &str,
    ) -> Result<Option<Watermark>> {
        let row = sqlx::query(
            "SELECT service, destination_region, timeline, last_segment, updated_at
             FROM wal_watermarks WHERE service = $1 AND destination_region = $2",
        )
        .bind(service)
        .bind(destination_region)
        .fetch_optional(&self.pool)
        .await
        .db("get watermark")?;
        row.as_ref().map(watermark_from_row).transpose()
    }

    /// Moves the watermark forward to (`timeline`, `last_segment`) and returns the stored one.
    /// It never moves backwards: a late or repeated report leaves a newer watermark in place.
    /// Segment names compare byte-wise, which orders WAL and binlog file names correctly.
    pub async fn set_watermark(
        &self,
        service: &str,
        destination_region: &str,
        timeline: i64,
        last_segment: &str,
    ) -> Result<Watermark> {
        sqlx::query(
            "INSERT INTO wal_watermarks (service, destination_region, timeline, last_segment,
                 updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (service, destination_region) DO UPDATE SET
                 timeline = excluded.timeline, last_segment = excluded.last_segment,
                 updated_at = excluded.updated_at
             WHERE excluded.timeline > wal_watermarks.timeline
                OR (excluded.timeline = wal_watermarks.timeline
                    AND excluded.last_segment > wal_watermarks.last_segment)",
        )
        .bind(service)
        .bind(destination_region)
        .bind(timeline)
        .bind(last_segment)
        .bind(ms(self.now()))
        .execute(&self.pool)
        .await
        .db("set watermark")?;
        self.get_watermark(service, destination_region)
            .await?
            .ok_or_else(|| CatalogError::NotFound {
                what: "watermark",
                id: format!("{service}/{destination_region}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_divide_evenly() {
        for (text, period) in [
            ("hour", Period::Hour),
            ("Day", Period::Day),
            (" WEEK ", Period::Week),
            ("month", Period::Month),
            ("year", Period::Year),
        ] {
            assert_eq!(text.parse::<Period>().ok(), Some(period));
            assert_eq!(period.step() * 60, period.length());
        }
        assert!(matches!(
            "fortnight".parse::<Period>(),
            Err(CatalogError::InvalidPeriod(p)) if p == "fortnight"
        ));
    }
}

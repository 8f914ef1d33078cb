//! Prometheus metrics (text exposition format 0.0.4), computed from the catalog at scrape time:
//! every btar process sharing a catalog reports the same numbers, whichever of them did the work.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use btar_catalog::{JobState, LagSeries, Period, Point};

use crate::{ControlPlane, Result};

/// The whole exposition. Each family's samples are written together under its `# HELP`/`# TYPE`.
pub async fn render(cp: &ControlPlane) -> Result<String> {
    let catalog = cp.catalog();
    let mut out = Exposition::default();

    let services = catalog.list_services().await?;
    out.family("btar_services", "gauge", "Live services in the catalog.");
    out.sample("btar_services", &[], services.len() as f64);

    // Every job the catalog holds (the byte counter must include finished jobs to stay monotonic),
    // grouped in the database so a scrape costs one query however long the job log grows.
    let totals = catalog.copy_job_totals().await?;
    let mut by_state: BTreeMap<&str, i64> = JobState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut transferred: BTreeMap<&str, i64> = BTreeMap::new();
    for t in &totals {
        *by_state.entry(t.state.as_str()).or_default() += t.jobs;
        *transferred.entry(&t.destination_region).or_default() += t.bytes_transferred.max(0);
    }
    out.family(
        "btar_copy_jobs",
        "gauge",
        "Copy jobs in the catalog by state (CREATED, RUNNING, COMPLETED, FAILED, PARTIAL).",
    );
    for (state, n) in &by_state {
        out.sample("btar_copy_jobs", &[("state", state)], *n as f64);
    }
    // FAILED is final (a retry is a new job), so the count only grows: a counter to alert on.
    out.family(
        "btar_copy_jobs_failed_total",
        "counter",
        "Copy jobs that ended FAILED (after their last attempt).",
    );
    out.sample(
        "btar_copy_jobs_failed_total",
        &[],
        by_state.get("FAILED").copied().unwrap_or(0) as f64,
    );
    out.family(
        "btar_copy_bytes_transferred_total",
        "counter",
        "Bytes written to each destination region by copy jobs.",
    );
    for (region, bytes) in &transferred {
        out.sample(
            "btar_copy_bytes_transferred_total",
            &[("destination_region", region)],
            *bytes as f64,
        );
    }

    // Newest lag sample per destination within the last hour; an older one would present a stale
    // lag as current, so a silent destination has no series (alert on its absence).
    let mut lags: Vec<(&str, String, LagSeries)> = Vec::new();
    for svc in &services {
        let report = catalog.lag_report(&svc.name, Period::Hour).await?;
        for (destination, series) in report.metrics {
            lags.push((&svc.name, destination, series));
        }
    }
    let lag_families: [LagFamily; 4] = [
        (
            "btar_backup_lag_seconds",
            "Secondary completion minus primary completion of the newest backup copy.",
            |s| &s.backup_lag_seconds,
        ),
        (
            "btar_wal_lag_seconds",
            "Time from a WAL segment being durable in the primary to being durable in the destination.",
            |s| &s.wal_lag_seconds,
        ),
        (
            "btar_bytes_pending",
            "Bytes archived in the primary and not yet in the destination.",
            |s| &s.bytes_pending,
        ),
        (
            "btar_latest_recoverable_timestamp_seconds",
            "Latest point (Unix seconds) a restore from the destination could reach.",
            |s| &s.latest_recoverable_time,
        ),
    ];
    for (name, help, points) in lag_families {
        out.family(name, "gauge", help);
        for (service, destination, series) in &lags {
            if let Some((_, value)) = points(series).last() {
                out.sample(
                    name,
                    &[("service", service), ("destination_region", destination)],
                    *value,
                );
            }
        }
    }

    // Backups per service and location (region).
    let mut locations: Vec<(&str, String, Location)> = Vec::new();
    for svc in &services {
        let mut by_region: BTreeMap<String, Location> = BTreeMap::new();
        for b in catalog.list_backups(&svc.name, None).await? {
            let loc = by_region.entry(b.region).or_default();
            loc.role = b.role.as_str();
            loc.count += 1;
            loc.data_bytes += b.data_size.max(0);
            loc.newest = loc.newest.max(b.backup_time.timestamp());
        }
        locations.extend(
            by_region
                .into_iter()
                .map(|(r, l)| (svc.name.as_str(), r, l)),
        );
    }
    let location_families: [LocationFamily; 3] = [
        (
            "btar_backups",
            "Backups of the service in the region (primary or secondary location).",
            |l| l.count as f64,
        ),
        (
            "btar_backup_data_bytes",
            "Logical size of the service's backups in the region, summed.",
            |l| l.data_bytes as f64,
        ),
        (
            "btar_last_backup_timestamp_seconds",
            "Time (Unix seconds) of the newest backup of the service in the region.",
            |l| l.newest as f64,
        ),
    ];
    for (name, help, value) in location_families {
        out.family(name, "gauge", help);
        for (service, region, loc) in &locations {
            out.sample(
                name,
                &[("service", service), ("region", region), ("role", loc.role)],
                value(loc),
            );
        }
    }

    stream_families(&mut out, &catalog.list_stream_positions().await?);

    // The newest recorded drill of each service.
    let drills = cp.drills(None).await?;
    let mut newest: BTreeMap<&str, &crate::drill::DrillResult> = BTreeMap::new();
    let mut last_ok: BTreeMap<&str, i64> = BTreeMap::new();
    for d in &drills {
        newest.entry(d.service.as_str()).or_insert(d);
        if d.state == crate::drill::DrillState::Successful {
            last_ok
                .entry(d.service.as_str())
                .or_insert(d.started_at.timestamp());
        }
    }
    out.family(
        "btar_drill_last_successful",
        "gauge",
        "1 when the service's newest restore drill was SUCCESSFUL, 0 when FAILED or TIMED_OUT.",
    );
    for (service, d) in &newest {
        let ok = d.state == crate::drill::DrillState::Successful;
        out.sample(
            "btar_drill_last_successful",
            &[("service", service)],
            if ok { 1.0 } else { 0.0 },
        );
    }
    out.family(
        "btar_drill_last_success_timestamp_seconds",
        "gauge",
        "Time (Unix seconds) the service's newest SUCCESSFUL restore drill started.",
    );
    for (service, t) in &last_ok {
        out.sample(
            "btar_drill_last_success_timestamp_seconds",
            &[("service", service)],
            *t as f64,
        );
    }

    // The compliance check reads the stores, so it runs at most every few minutes per process.
    if let Some(report) = cp.cached_check().await {
        out.family(
            "btar_check_status",
            "gauge",
            "Compliance rules (`btar check`): 1 when the rule holds for the service in the region, 0 when it fails.",
        );
        for r in &report.results {
            let pass = r.status == crate::check::CheckStatus::Pass;
            out.sample(
                "btar_check_status",
                &[
                    ("service", &r.service),
                    ("rule", r.rule.as_ref()),
                    ("region", &r.region),
                ],
                if pass { 1.0 } else { 0.0 },
            );
        }
        out.family(
            "btar_check_timestamp_seconds",
            "gauge",
            "Time (Unix seconds) of the compliance check the btar_check_status samples come from.",
        );
        out.sample(
            "btar_check_timestamp_seconds",
            &[],
            report.checked_at.timestamp() as f64,
        );
    }
    Ok(out.text)
}

/// The streamer's positions (issue 14), as its last report left them in the catalog. The report's
/// time is a family of its own so an alert sees a streamer that stopped reporting.
fn stream_families(out: &mut Exposition, rows: &[btar_catalog::StreamStatus]) {
    type Family = (
        &'static str,
        &'static str,
        fn(&btar_catalog::StreamStatus) -> f64,
    );
    let families: [Family; 4] = [
        (
            "btar_stream_bytes_behind",
            "WAL the server has flushed that the location's streamed log lacks, in bytes.",
            |r| r.bytes_behind as f64,
        ),
        (
            "btar_stream_seconds_behind",
            "How long the oldest WAL the location lacks has been waiting, in seconds (0: current).",
            |r| r.seconds_behind,
        ),
        (
            "btar_stream_error",
            "1 when the streamer's last attempt to store WAL in the location failed.",
            |r| if r.error.is_some() { 1.0 } else { 0.0 },
        ),
        (
            "btar_stream_updated_timestamp_seconds",
            "Time (Unix seconds) of the streamer's last report for the location.",
            |r| r.updated_at.timestamp() as f64,
        ),
    ];
    for (name, help, value) in families {
        out.family(name, "gauge", help);
        for r in rows {
            let role = if r.primary { "primary" } else { "secondary" };
            out.sample(
                name,
                &[
                    ("service", &r.service),
                    ("region", &r.region),
                    ("role", role),
                ],
                value(r),
            );
        }
    }
    out.family(
        "btar_stream_slot_retained_bytes",
        "gauge",
        "WAL the server keeps for the streamer's replication slot, in bytes (capped by the server's max_slot_wal_keep_size).",
    );
    for r in rows.iter().filter(|r| r.primary) {
        if let Some(b) = r.slot_retained_bytes {
            out.sample(
                "btar_stream_slot_retained_bytes",
                &[("service", &r.service)],
                b as f64,
            );
        }
    }
}

/// A metric family: name, help, and how to read its value(s).
type LagFamily = (&'static str, &'static str, fn(&LagSeries) -> &[Point]);
type LocationFamily = (&'static str, &'static str, fn(&Location) -> f64);

#[derive(Debug, Default)]
struct Location {
    count: u64,
    data_bytes: i64,
    newest: i64,
    /// `primary` or `secondary`: alerts treat a late primary backup and an old copy differently.
    role: &'static str,
}

#[derive(Debug, Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// HELP text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

/// Go-style special values, which Prometheus parses; Rust's `inf` is not among them.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_escaped_and_formatted() {
        let mut out = Exposition::default();
        out.family("m", "gauge", "a\\b\nc");
        out.sample("m", &[("l", "x\"y\\z\nw"), ("k", "v")], 1.5);
        out.sample("m", &[], f64::INFINITY);
        out.sample("m", &[], 3.0);
        assert_eq!(
            out.text,
            "# HELP m a\\\\b\\nc\n# TYPE m gauge\nm{l=\"x\\\"y\\\\z\\nw\",k=\"v\"} 1.5\nm +Inf\nm 3\n"
        );
    }
}

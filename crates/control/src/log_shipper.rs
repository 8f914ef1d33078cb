//! Continuous log replication. `wal-push` makes a file durable in the primary location and announces
//! it on a loopback UDP socket; the server ships that one file to every additional region at once. A
//! reconciling pass lists the archives every few seconds and ships whatever is missing (files pushed
//! while no server listened, a destination that was down), then moves the gap-free watermark.
//! The primary archive never waits for a secondary: an outage there only grows its lag.

use std::time::Duration;

use btar_catalog::LagSample;
use btar_replicator::{CopyOptions, LogProgress};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ControlPlane;
use crate::config::Config;
use crate::error::{ControlError, Result};

/// First word of a notification datagram: `btar-wal <service> <timeline> <name> <durable_at_ms>`.
pub const NOTIFY_PREFIX: &str = "btar-wal";

/// Tells a listening server that `timeline/name` of `service` is durable in the primary (since now).
/// Best effort and non-blocking: archiving must not depend on a server running.
pub fn notify_archived(cfg: &Config, service: &str, timeline: &str, name: &str) {
    // The durable time travels with the announcement: object stores report Last-Modified to the
    // second, which would blur a lag that is mostly well under one.
    let at = Utc::now().timestamp_millis();
    let msg = format!("{NOTIFY_PREFIX} {service} {timeline} {name} {at}");
    if let Ok(sock) = std::net::UdpSocket::bind("127.0.0.1:0") {
        let _ = sock.send_to(msg.as_bytes(), &cfg.server.notify);
    }
}

/// One pass of log replication to one destination.
#[derive(Debug, Clone, Serialize)]
pub struct LogShipped {
    pub service: String,
    pub destination_region: String,
    pub logs_copied: u64,
    pub bytes_transferred: u64,
    /// Per timeline, the newest segment up to which the destination is gap-free.
    pub watermarks: Vec<btar_engine::Watermark>,
    /// Worst time between a file being durable in the primary and in the destination, this pass.
    pub wal_lag_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn seconds_since(t: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - t).num_milliseconds().max(0) as f64 / 1000.0
}

impl ControlPlane {
    /// Ships every log file of `service` that its additional regions lack. A destination that fails
    /// is reported in its entry; the others are unaffected.
    pub async fn ship_logs(&self, service: &str) -> Result<Vec<LogShipped>> {
        let svc = self.service(service).await?;
        let mut out = Vec::new();
        for dst in svc.additional_backup_regions() {
            let r = self.ship_logs_to(service, &svc.cloud, &dst).await;
            out.push(r.unwrap_or_else(|e| {
                tracing::warn!(service, destination = %dst, error = %e, "log replication failed");
                LogShipped {
                    service: service.into(),
                    destination_region: dst.clone(),
                    logs_copied: 0,
                    bytes_transferred: 0,
                    watermarks: vec![],
                    wal_lag_seconds: None,
                    error: Some(e.to_string()),
                }
            }));
        }
        Ok(out)
    }

    async fn ship_logs_to(&self, service: &str, home: &str, dst: &str) -> Result<LogShipped> {
        let src = match self.location(service, home).await {
            Ok(l) => l,
            // No primary location yet (no backup, no WAL): nothing to ship.
            Err(ControlError::Format(btar_format::FormatError::NoLocation { .. })) => {
                return Ok(LogShipped {
                    service: service.into(),
                    destination_region: dst.into(),
                    logs_copied: 0,
                    bytes_transferred: 0,
                    watermarks: vec![],
                    wal_lag_seconds: None,
                    error: None,
                });
            }
            Err(e) => return Err(e),
        };
        let dst_loc = self.secondary_location(&src, dst).await?;
        let worst = std::sync::Mutex::new(None::<f64>);
        let record = |p: &LogProgress| {
            if let Some(t) = p.last_source_time {
                let lag = seconds_since(t, self.catalog().now());
                if let Ok(mut w) = worst.lock() {
                    *w = Some(w.map_or(lag, |x: f64| x.max(lag)));
                }
            }
        };
        let seq = self.log_sequence(&src).await?;
        let out = btar_replicator::copy_logs(
            &src,
            &dst_loc,
            &CopyOptions::default(),
            seq.as_ref(),
            &record,
        )
        .await?;
        let worst = worst.lock().map(|w| *w).unwrap_or(None);
        for w in &out.watermarks {
            if let Ok(tli) = i64::from_str_radix(&w.timeline, 16) {
                self.catalog()
                    .set_watermark(service, dst, tli, &w.watermark)
                    .await?;
            }
        }
        let gap_free = out.watermarks.iter().all(|w| w.first_missing.is_none());
        self.catalog()
            .record_lag_sample(&LagSample {
                service: service.into(),
                destination_region: dst.into(),
                sampled_at: self.catalog().now(),
                backup_lag_seconds: None,
                // Only when this pass shipped something, so each WAL lag sample measures files
                // that moved (percentiles stay per segment); a caught-up pass records no backlog.
                wal_lag_seconds: worst,
                bytes_pending: Some(0),
                latest_recoverable_time: out.newest_source_time.filter(|_| gap_free),
            })
            .await?;
        Ok(LogShipped {
            service: service.into(),
            destination_region: dst.into(),
            logs_copied: out.logs_copied,
            bytes_transferred: out.bytes_transferred,
            watermarks: out.watermarks,
            wal_lag_seconds: worst,
            error: None,
        })
    }

    /// Ships one announced file to every additional region of `service` and records its lag from
    /// `durable_at` (the announcement's time; the object's Last-Modified when not given).
    pub async fn ship_log_now(
        &self,
        service: &str,
        timeline: &str,
        name: &str,
        durable_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let svc = self.service(service).await?;
        let src = self.location(service, &svc.cloud).await?;
        let durable_at = match durable_at {
            Some(t) => Some(t),
            None => src
                .region()
                .head(&src.log_key(timeline, name))
                .await?
                .map(|o| o.last_modified),
        };
        for dst in svc.additional_backup_regions() {
            let shipped = async {
                let dst_loc = self.secondary_location(&src, &dst).await?;
                btar_replicator::copy_log(&src, &dst_loc, timeline, name).await?;
                Ok::<_, ControlError>(())
            }
            .await;
            match shipped {
                Ok(()) => {
                    let now = self.catalog().now();
                    self.catalog()
                        .record_lag_sample(&LagSample {
                            service: service.into(),
                            destination_region: dst.clone(),
                            sampled_at: now,
                            backup_lag_seconds: None,
                            wal_lag_seconds: durable_at
                                .map(|t| seconds_since(t, self.catalog().now())),
                            bytes_pending: None,
                            latest_recoverable_time: None,
                        })
                        .await?;
                }
                // The reconciling pass retries; one destination failing does not stop the others.
                Err(e) => {
                    tracing::warn!(service, destination = %dst, file = name, error = %e, "shipping announced log failed")
                }
            }
        }
        Ok(())
    }

    /// Receives `wal-push` announcements until cancelled and ships each file as it arrives.
    pub(crate) async fn listen_for_logs(&self) -> Result<()> {
        let addr = self.config().server.notify.clone();
        let sock = match tokio::net::UdpSocket::bind(&addr).await {
            Ok(s) => s,
            // Another server on this host has the address: it ships the announced files, and the
            // reconciling pass covers this process.
            Err(e) => {
                tracing::warn!(%addr, error = %e, "not listening for wal-push announcements");
                return Ok(());
            }
        };
        let mut buf = vec![0u8; 1024];
        loop {
            let n = tokio::select! {
                r = sock.recv_from(&mut buf) => match r { Ok((n, _)) => n, Err(_) => continue },
                _ = self.cancel_token().cancelled() => return Ok(()),
            };
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let mut words = msg.split_whitespace();
            let (Some(NOTIFY_PREFIX), Some(svc), Some(tli), Some(name), at, None) = (
                words.next(),
                words.next(),
                words.next(),
                words.next(),
                words.next(),
                words.next(),
            ) else {
                tracing::debug!(%msg, "ignoring malformed announcement");
                continue;
            };
            let at = at
                .and_then(|ms| ms.parse().ok())
                .and_then(DateTime::<Utc>::from_timestamp_millis);
            let (cp, svc, tli, name) = (
                self.clone(),
                svc.to_string(),
                tli.to_string(),
                name.to_string(),
            );
            tokio::spawn(async move {
                if let Err(e) = cp.ship_log_now(&svc, &tli, &name, at).await {
                    tracing::warn!(service = %svc, file = %name, error = %e, "shipping announced log failed");
                }
            });
        }
    }
}

/// Used by the scheduler between reconciling passes.
pub(crate) fn reconcile_interval(cfg: &Config) -> Duration {
    Duration::from_secs(cfg.server.reconcile_seconds.max(1))
}

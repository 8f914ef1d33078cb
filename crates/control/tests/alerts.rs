#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Notifications against a real webhook receiver (an HTTP server on loopback): a copy to a
//! destination that cannot be written FAILS for good and raises exactly one alert, however often
//! the alerts are evaluated; once the destination is repaired and a retry completes, exactly one
//! "resolved" follows. A command hook gets the same alerts; every delivery is an event.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btar_catalog::{Catalog, CatalogOptions, EventFilter, SystemClock};
use btar_control::ControlPlane;
use btar_format::{BackupWriter, Location, WriterOptions, backup_name_at};
use btar_region::CancellationToken;
use btar_testkit::{PatternReader, fs_region};
use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

const SVC: &str = "orders";

/// Accepts POSTs on a free loopback port and keeps their JSON bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hook/secret-token",
        listener.local_addr().unwrap()
    );
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < head_end + 4 + len {
                        continue;
                    }
                    let body = &buf[head_end + 4..head_end + 4 + len];
                    keep.lock()
                        .unwrap()
                        .push(serde_json::from_slice(body).unwrap());
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, got)
}

async fn control(dir: &Path, webhook: &str, hook_log: &Path) -> ControlPlane {
    let regions = vec![
        fs_region("home", &dir.join("home")),
        fs_region("away", &dir.join("away")),
    ];
    let mut cfg = common::daily_plan_config(SVC, regions, &["away"], true);
    cfg.alerts.webhooks = vec![webhook.to_string()];
    cfg.alerts.commands = vec![format!(
        "printf '%s %s\\n' \"$BTAR_ALERT_STATUS\" \"$BTAR_ALERT_KIND\" >> {}",
        hook_log.display()
    )];
    let url = format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display());
    // One attempt per job and a quick retry job, so the test sees FAILED at once and the retry soon.
    let options = CatalogOptions {
        max_attempts: 1,
        retry_base: Duration::from_millis(300),
        ..Default::default()
    };
    let catalog = Catalog::open_with(&url, options, Arc::new(SystemClock))
        .await
        .unwrap();
    ControlPlane::with_catalog(cfg, common::engines(), catalog, CancellationToken::new())
        .await
        .unwrap()
}

fn of_kind(got: &Mutex<Vec<serde_json::Value>>, kind: &str) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == kind)
        .map(|v| v["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_alerts_once_and_resolves_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = receiver().await;
    let hook_log = dir.path().join("hook.log");
    let cp = control(dir.path(), &url, &hook_log).await;
    // `away` cannot be written: a plain file where its directory should be.
    std::fs::write(dir.path().join("away"), b"not a directory").unwrap();

    let region = cp.config().open_region("home", cp.cancel_token()).unwrap();
    let loc = Location::create(&region, SVC, "pg", None).await.unwrap();
    let w = BackupWriter::new(loc.clone(), WriterOptions::default());
    let e = w
        .write_file("base/1/1", 0o600, PatternReader::new(1 << 20, 1))
        .await
        .unwrap();
    let m = w
        .finish(
            &backup_name_at(Utc::now()),
            Utc::now(),
            vec![e],
            serde_json::Value::Null,
        )
        .await
        .unwrap();
    loc.commit_manifest(&m).await.unwrap();
    cp.queue_missing_copies().await.unwrap();
    let runs = cp.drain_copy_jobs().await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].job.state,
        btar_catalog::JobState::Failed,
        "{runs:?}"
    );

    for _ in 0..3 {
        cp.evaluate_alerts().await.unwrap();
    }
    assert_eq!(of_kind(&got, "copy_failed"), ["firing"]);
    let first = got
        .lock()
        .unwrap()
        .iter()
        .find(|v| v["kind"] == "copy_failed")
        .cloned()
        .unwrap();
    assert!(
        first["text"]
            .as_str()
            .unwrap()
            .starts_with("[btar] FIRING copy_failed orders"),
        "{first}"
    );

    // Repaired; the retry (a new job, after its backoff) completes: resolved, once.
    std::fs::remove_file(dir.path().join("away")).unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    cp.queue_missing_copies().await.unwrap();
    let runs = cp.drain_copy_jobs().await.unwrap();
    assert!(
        runs.iter()
            .any(|r| r.job.state == btar_catalog::JobState::Completed),
        "{runs:?}"
    );
    for _ in 0..3 {
        cp.evaluate_alerts().await.unwrap();
    }
    assert_eq!(of_kind(&got, "copy_failed"), ["firing", "resolved"]);

    // The command hook saw the same two, and both deliveries are events.
    let log = std::fs::read_to_string(&hook_log).unwrap();
    let copy_lines: Vec<&str> = log.lines().filter(|l| l.ends_with("copy_failed")).collect();
    assert_eq!(
        copy_lines,
        ["firing copy_failed", "resolved copy_failed"],
        "{log}"
    );
    let events = cp
        .catalog()
        .list_events(&EventFilter::default())
        .await
        .unwrap();
    let alerts: Vec<_> = events
        .iter()
        .filter(|e| e.kind.starts_with("alert_") && e.message.contains("copy_failed"))
        .collect();
    assert_eq!(alerts.len(), 2, "{events:?}");
    assert!(
        alerts
            .iter()
            .all(|e| e.message.contains("delivered to webhook 1, command 1")),
        "{alerts:?}"
    );
    // A failed primary backup alerts until the next one is committed.
    cp.catalog()
        .append_event(Some(SVC), "backup_failed", "connection refused")
        .await
        .unwrap();
    cp.evaluate_alerts().await.unwrap();
    cp.evaluate_alerts().await.unwrap();
    assert_eq!(of_kind(&got, "backup_failed"), ["firing"]);
    cp.catalog()
        .append_event(Some(SVC), "backup_committed", "backup x committed in home")
        .await
        .unwrap();
    cp.evaluate_alerts().await.unwrap();
    assert_eq!(of_kind(&got, "backup_failed"), ["firing", "resolved"]);

    // The webhook's secret path is never in an event.
    assert!(events.iter().all(|e| !e.message.contains("secret-token")));
}

/// The streamer's reports as the catalog holds them: a failing secondary alerts until the streamer
/// reports it current; a streamer that stops reporting is silent; one stopped on purpose (reports
/// cleared) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stream_and_a_silent_streamer_alert_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let (url, got) = receiver().await;
    let cp = control(dir.path(), &url, &dir.path().join("hook.log")).await;
    let row =
        |region: &str, primary: bool, error: Option<&str>, ago_s: i64| btar_catalog::StreamStatus {
            service: SVC.into(),
            region: region.into(),
            primary,
            position: "0/3000000".into(),
            server_position: "0/3000100".into(),
            bytes_behind: 256,
            seconds_behind: 0.2,
            slot_retained_bytes: Some(1 << 20),
            error: error.map(String::from),
            updated_at: Utc::now() - chrono::TimeDelta::seconds(ago_s),
        };
    let report = |rows: Vec<btar_catalog::StreamStatus>| {
        let cp = cp.clone();
        async move {
            cp.catalog()
                .record_stream_positions(SVC, &rows)
                .await
                .unwrap()
        }
    };
    report(vec![
        row("home", true, None, 0),
        row("away", false, Some("permission denied"), 0),
    ])
    .await;
    cp.evaluate_alerts().await.unwrap();
    cp.evaluate_alerts().await.unwrap();
    assert_eq!(of_kind(&got, "stream_behind"), ["firing"]);
    report(vec![
        row("home", true, None, 0),
        row("away", false, None, 0),
    ])
    .await;
    cp.evaluate_alerts().await.unwrap();
    assert_eq!(of_kind(&got, "stream_behind"), ["firing", "resolved"]);
    // Last report 5 minutes ago (limit 60 s: silent after 120 s).
    report(vec![
        row("home", true, None, 300),
        row("away", false, None, 300),
    ])
    .await;
    cp.evaluate_alerts().await.unwrap();
    assert_eq!(of_kind(&got, "stream_silent"), ["firing"]);
    // Stopped on purpose: the streamer clears its reports.
    report(vec![]).await;
    cp.evaluate_alerts().await.unwrap();
    assert_eq!(of_kind(&got, "stream_silent"), ["firing", "resolved"]);
}

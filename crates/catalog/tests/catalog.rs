#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use btar_catalog::{
    BackupRecord, Catalog, CatalogError, EngineKind, EventFilter, LagSample, NewService, Period,
    Role, ServiceUpdate,
};
use chrono::{DateTime, TimeDelta, Utc};
use common::TestDb;
use serde_json::json;

on_both_backends!(
    migrations_are_idempotent,
    services_crud,
    regions_change_once_per_day,
    backups_index,
    lag_report_buckets_samples,
    watermarks_never_move_backwards,
    events_and_leader_lease,
);

fn new_service(name: &str, regions: &[&str]) -> NewService {
    NewService {
        name: name.into(),
        engine: EngineKind::Pg,
        cloud: "local-a".into(),
        plan: "startup-4".into(),
        user_config: json!({ "additional_backup_regions": regions, "pg_version": "17" }),
    }
}

async fn migrations_are_idempotent(db: &TestDb) {
    let first = db.open().await;
    first
        .create_service(&new_service("pg1", &[]))
        .await
        .unwrap();
    first.close().await;
    // Opening again (and twice at once) finds the schema current and keeps the data.
    let (second, third) = tokio::join!(db.open(), db.open());
    assert_eq!(second.get_service("pg1").await.unwrap().name, "pg1");
    assert_eq!(third.list_services().await.unwrap().len(), 1);
    let versions = schema_versions(&second, db).await;
    assert_eq!(
        versions,
        (1..=Catalog::schema_version()).collect::<Vec<_>>()
    );
}

async fn schema_versions(_catalog: &Catalog, db: &TestDb) -> Vec<i64> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let versions = sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    versions
}

async fn services_crud(db: &TestDb) {
    let catalog = db.open().await;
    let created = catalog
        .create_service(&new_service("pg1", &["local-b"]))
        .await
        .unwrap();
    assert_eq!(created.engine, EngineKind::Pg);
    assert_eq!(created.additional_backup_regions(), ["local-b"]);
    assert_eq!(created.created_at, db.clock_now());
    assert!(
        created.regions_changed_at.is_none(),
        "creation is not a change"
    );

    let err = catalog
        .create_service(&new_service("pg1", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::ServiceExists(_)), "{err:?}");
    let err = catalog
        .create_service(&new_service("pg2", &["local-a"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::Invalid { .. }),
        "home region as secondary: {err:?}"
    );
    let mut bad = new_service("pg2", &[]);
    bad.user_config = json!({ "additional_backup_regions": "local-b" });
    assert!(catalog.create_service(&bad).await.is_err());

    let mut my = new_service("my1", &[]);
    my.engine = EngineKind::Mysql;
    catalog.create_service(&my).await.unwrap();
    let names: Vec<_> = catalog
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["my1", "pg1"]);

    db.clock.advance(TimeDelta::minutes(1));
    let updated = catalog
        .update_service(
            "pg1",
            &ServiceUpdate {
                plan: Some("business-8".into()),
                user_config: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.plan, "business-8");
    assert_eq!(updated.user_config["pg_version"], "17");
    assert_eq!(updated.updated_at, db.clock_now());

    catalog.delete_service("my1").await.unwrap();
    assert!(catalog.get_service("my1").await.unwrap_err().is_not_found());
    assert!(
        catalog
            .delete_service("my1")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(catalog.list_services().await.unwrap().len(), 1);
    // The name can be used again once the service is deleted.
    catalog.create_service(&my).await.unwrap();
    assert!(
        catalog
            .update_service("nope", &ServiceUpdate::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
}

async fn regions_change_once_per_day(db: &TestDb) {
    let catalog = db.open().await;
    catalog
        .create_service(&new_service("pg1", &[]))
        .await
        .unwrap();
    let t0 = db.clock_now();

    let enabled = catalog
        .update_additional_regions("pg1", &["local-b".into()])
        .await
        .unwrap();
    assert_eq!(enabled.additional_backup_regions(), ["local-b"]);
    assert_eq!(enabled.regions_changed_at, Some(t0));
    assert_eq!(
        enabled.user_config["pg_version"], "17",
        "other settings kept"
    );

    db.clock.advance(TimeDelta::hours(1));
    let err = catalog
        .update_additional_regions("pg1", &["local-c".into()])
        .await
        .unwrap_err();
    match &err {
        CatalogError::RegionsChangeTooSoon {
            service,
            next_allowed_at,
        } => {
            assert_eq!(service, "pg1");
            assert_eq!(*next_allowed_at, t0 + TimeDelta::hours(24));
        }
        other => panic!("expected RegionsChangeTooSoon, got {other:?}"),
    }
    assert!(err.to_string().contains("2025-06-02 12:00:00"), "{err}");
    // Disabling is a change too.
    assert!(catalog.update_additional_regions("pg1", &[]).await.is_err());
    // Through a full user_config update as well.
    let err = catalog
        .update_service(
            "pg1",
            &ServiceUpdate {
                plan: None,
                user_config: Some(json!({ "additional_backup_regions": ["local-c"] })),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::RegionsChangeTooSoon { .. }),
        "{err:?}"
    );
    assert_eq!(
        catalog
            .get_service("pg1")
            .await
            .unwrap()
            .additional_backup_regions(),
        ["local-b"],
        "nothing written"
    );

    // Re-sending the same regions, or changing other settings, is not a change.
    let same = catalog
        .update_additional_regions("pg1", &["local-b".into()])
        .await
        .unwrap();
    assert_eq!(same.regions_changed_at, Some(t0));
    let other = catalog
        .update_service(
            "pg1",
            &ServiceUpdate {
                plan: None,
                user_config: Some(json!({ "additional_backup_regions": ["local-b"], "x": 1 })),
            },
        )
        .await
        .unwrap();
    assert_eq!(other.regions_changed_at, Some(t0));

    db.clock
        .set(t0 + TimeDelta::hours(24) - TimeDelta::milliseconds(1));
    assert!(
        catalog
            .update_additional_regions("pg1", &["local-c".into()])
            .await
            .is_err()
    );
    db.clock.set(t0 + TimeDelta::hours(24));
    let moved = catalog
        .update_additional_regions("pg1", &["local-c".into(), "local-d".into()])
        .await
        .unwrap();
    assert_eq!(moved.additional_backup_regions(), ["local-c", "local-d"]);
    assert_eq!(moved.regions_changed_at, Some(db.clock_now()));
    assert_eq!(
        moved.next_regions_change_at(),
        Some(db.clock_now() + TimeDelta::hours(24))
    );

    // Deleting and re-creating does not reset the clock.
    catalog.delete_service("pg1").await.unwrap();
    catalog
        .create_service(&new_service("pg1", &["local-c", "local-d"]))
        .await
        .unwrap();
    assert!(catalog.update_additional_regions("pg1", &[]).await.is_err());
}

async fn backups_index(db: &TestDb) {
    let catalog = db.open().await;
    let t0 = db.clock_now();
    let record = |region: &str, name: &str, minutes: i64, role: Role| BackupRecord {
        service: "pg1".into(),
        region: region.into(),
        backup_name: name.into(),
        backup_time: t0 + TimeDelta::minutes(minutes),
        data_size: 1 << 40,
        stored_size: 1 << 30,
        role,
        committed_at: t0 + TimeDelta::minutes(minutes + 1),
    };
    catalog
        .upsert_backup(&record("local-a", "b2", 60, Role::Primary))
        .await
        .unwrap();
    catalog
        .upsert_backup(&record("local-a", "b1", 0, Role::Primary))
        .await
        .unwrap();
    catalog
        .upsert_backup(&record("local-b", "b1", 0, Role::Secondary))
        .await
        .unwrap();
    let mut rewritten = record("local-b", "b1", 0, Role::Secondary);
    rewritten.committed_at = t0 + TimeDelta::minutes(30);
    catalog.upsert_backup(&rewritten).await.unwrap();

    let all = catalog.list_backups("pg1", None).await.unwrap();
    let keys: Vec<_> = all
        .iter()
        .map(|b| (b.backup_name.as_str(), b.region.as_str()))
        .collect();
    assert_eq!(
        keys,
        [("b1", "local-a"), ("b1", "local-b"), ("b2", "local-a")]
    );
    assert_eq!(all[1], rewritten);
    assert_eq!(all[0].data_size, 1 << 40);

    let secondary = catalog.list_backups("pg1", Some("local-b")).await.unwrap();
    assert_eq!(secondary, [rewritten]);
    assert!(catalog.delete_backup("pg1", "local-b", "b1").await.unwrap());
    assert!(!catalog.delete_backup("pg1", "local-b", "b1").await.unwrap());
    assert!(
        catalog
            .list_backups("pg1", Some("local-b"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn lag_report_buckets_samples(db: &TestDb) {
    let catalog = db.open().await;
    // 12:00:00 is a minute boundary, so the hour report's newest bucket starts at "now".
    let now = db.clock_now();
    let sample = |region: &str, ago: TimeDelta, lag: f64| LagSample {
        service: "pg1".into(),
        destination_region: region.into(),
        sampled_at: now - ago,
        backup_lag_seconds: Some(lag),
        wal_lag_seconds: None,
        bytes_pending: Some((lag * 10.0) as i64),
        latest_recoverable_time: Some(now - ago - TimeDelta::seconds(lag as i64)),
    };
    let secs = TimeDelta::seconds;
    for s in [
        sample("local-b", secs(0), 5.0),
        sample("local-b", secs(30), 7.0), // 11:59:30, same minute as the next one
        sample("local-b", secs(59), 9.0), // 11:59:01
        sample("local-b", TimeDelta::minutes(59), 3.0), // 11:01, oldest bucket
        sample("local-b", TimeDelta::minutes(61), 100.0), // before the window
        sample("local-c", TimeDelta::minutes(10), 2.0),
    ] {
        catalog.record_lag_sample(&s).await.unwrap();
    }
    let mut elsewhere = sample("local-b", secs(0), 500.0);
    elsewhere.service = "pg2".into();
    catalog.record_lag_sample(&elsewhere).await.unwrap();
    let mut wal_only = sample("local-c", TimeDelta::minutes(10), 0.0);
    wal_only.backup_lag_seconds = None;
    wal_only.wal_lag_seconds = Some(1.5);
    catalog.record_lag_sample(&wal_only).await.unwrap();

    let period: Period = "hour".parse().unwrap();
    let report = catalog.lag_report("pg1", period).await.unwrap();
    assert_eq!(report.step_seconds, 60);
    assert_eq!(report.end, now + TimeDelta::minutes(1));
    assert_eq!(report.start, now - TimeDelta::minutes(59));
    let ts = |t: DateTime<Utc>| t.timestamp();
    assert_eq!(
        report.metrics.keys().collect::<Vec<_>>(),
        ["local-b", "local-c"]
    );

    let b = &report.metrics["local-b"];
    assert_eq!(
        b.backup_lag_seconds,
        [
            (ts(now - TimeDelta::minutes(59)), 3.0),
            (ts(now - TimeDelta::minutes(1)), 9.0),
            (ts(now), 5.0),
        ]
    );
    assert_eq!(b.bytes_pending[1], (ts(now - TimeDelta::minutes(1)), 90.0));
    // The 11:59 bucket's latest recoverable time is the newest of its two samples (11:59:23).
    assert_eq!(
        b.latest_recoverable_time[1],
        (ts(now - TimeDelta::minutes(1)), ts(now - secs(37)) as f64)
    );
    assert!(b.wal_lag_seconds.is_empty());

    let c = &report.metrics["local-c"];
    assert_eq!(
        c.backup_lag_seconds,
        [(ts(now - TimeDelta::minutes(10)), 2.0)]
    );
    assert_eq!(c.wal_lag_seconds, [(ts(now - TimeDelta::minutes(10)), 1.5)]);

    // Wider periods fold everything within the window into fewer, coarser points.
    let day = catalog.lag_report("pg1", Period::Day).await.unwrap();
    assert_eq!(day.step_seconds, 24 * 60);
    assert_eq!(
        day.metrics["local-b"]
            .backup_lag_seconds
            .iter()
            .map(|p| p.1)
            .fold(0.0, f64::max),
        100.0
    );
    assert!(day.metrics["local-b"].backup_lag_seconds.len() <= 60);
    for p in ["Week", "month", "YEAR"] {
        let period: Period = p.parse().unwrap();
        let r = catalog.lag_report("pg1", period).await.unwrap();
        assert_eq!(r.end - r.start, period.length());
        assert_eq!(r.metrics.len(), 2);
    }
    let err = "fortnight".parse::<Period>().unwrap_err();
    assert!(matches!(err, CatalogError::InvalidPeriod(_)));
    assert_eq!(
        err.to_string(),
        "unknown period `fortnight` (expected hour, day, week, month or year)"
    );
    assert!(
        catalog
            .lag_report("nobody", Period::Hour)
            .await
            .unwrap()
            .metrics
            .is_empty()
    );

    // Serialised as [timestamp, value] pairs.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["period"], "hour");
    assert_eq!(json["metrics"]["local-c"]["wal_lag_seconds"][0][1], 1.5);

    assert_eq!(
        catalog
            .prune_lag_samples(now - TimeDelta::minutes(30))
            .await
            .unwrap(),
        2
    );
}

async fn watermarks_never_move_backwards(db: &TestDb) {
    let catalog = db.open().await;
    assert!(
        catalog
            .get_watermark("pg1", "local-b")
            .await
            .unwrap()
            .is_none()
    );
    let w = catalog
        .set_watermark("pg1", "local-b", 1, "000000010000000000000005")
        .await
        .unwrap();
    assert_eq!(
        (w.timeline, w.last_segment.as_str()),
        (1, "000000010000000000000005")
    );
    let t_set = db.clock_now();

    db.clock.advance(TimeDelta::seconds(1));
    let w = catalog
        .set_watermark("pg1", "local-b", 1, "000000010000000000000003")
        .await
        .unwrap();
    assert_eq!(
        w.last_segment, "000000010000000000000005",
        "older segment ignored"
    );
    assert_eq!(w.updated_at, t_set);

    let w = catalog
        .set_watermark("pg1", "local-b", 1, "00000001000000000000000A")
        .await
        .unwrap();
    assert_eq!(
        w.last_segment, "00000001000000000000000A",
        "hex digits order after 9"
    );
    let w = catalog
        .set_watermark("pg1", "local-b", 2, "000000020000000000000001")
        .await
        .unwrap();
    assert_eq!(w.timeline, 2, "a new timeline moves forward");
    let w = catalog
        .set_watermark("pg1", "local-b", 1, "0000000100000000000000FF")
        .await
        .unwrap();
    assert_eq!(
        (w.timeline, w.last_segment.as_str()),
        (2, "000000020000000000000001")
    );
    assert_eq!(w.updated_at, db.clock_now());

    // Destinations are independent.
    let other = catalog
        .set_watermark("pg1", "local-c", 1, "000000010000000000000001")
        .await
        .unwrap();
    assert_eq!(other.timeline, 1);
}

async fn events_and_leader_lease(db: &TestDb) {
    let a = db.open().await;
    let b = db.open().await;
    let e1 = a
        .append_event(Some("pg1"), "backup.committed", "b1 in local-a")
        .await
        .unwrap();
    let e2 = a
        .append_event(None, "scheduler.started", "leader a")
        .await
        .unwrap();
    let e3 = b
        .append_event(Some("pg2"), "copy.completed", "b9 to local-b")
        .await
        .unwrap();
    assert!(e1 < e2 && e2 < e3);

    let all = a.list_events(&EventFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [e3, e2, e1]);
    assert_eq!(all[2].service.as_deref(), Some("pg1"));
    assert_eq!(all[2].kind, "backup.committed");
    assert_eq!(all[2].at, db.clock_now());
    let pg1 = a
        .list_events(&EventFilter {
            service: Some("pg1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pg1.len(), 1);
    let newer = a
        .list_events(&EventFilter {
            after_id: Some(e1),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(newer.iter().map(|e| e.id).collect::<Vec<_>>(), [e3]);

    let ttl = Duration::from_secs(30);
    assert!(a.try_lead("scheduler", "a", ttl).await.unwrap());
    assert!(!b.try_lead("scheduler", "b", ttl).await.unwrap());
    db.clock.advance(TimeDelta::seconds(20));
    assert!(a.try_lead("scheduler", "a", ttl).await.unwrap(), "renewal");
    db.clock.advance(TimeDelta::seconds(20));
    assert!(
        !b.try_lead("scheduler", "b", ttl).await.unwrap(),
        "renewed lease still held"
    );
    assert!(
        b.try_lead("other", "b", ttl).await.unwrap(),
        "leases are per name"
    );
    db.clock.advance(TimeDelta::seconds(11));
    assert!(
        b.try_lead("scheduler", "b", ttl).await.unwrap(),
        "expired lease taken over"
    );
    assert!(!a.try_lead("scheduler", "a", ttl).await.unwrap());
    b.resign_lead("scheduler", "b").await.unwrap();
    assert!(
        a.try_lead("scheduler", "a", ttl).await.unwrap(),
        "resigned lease is free"
    );
}

//! Shared setup of the control-plane tests (included with `mod common;`).
#![allow(dead_code)]

use std::sync::Arc;

use btar_control::{Config, PlanConfig, ServiceConfig};
use btar_engine::{EngineKind, Engines};
use btar_region::RegionConfig;

/// The engines the binary registers.
pub fn engines() -> Engines {
    Engines::default().with(Arc::new(btar_engine_pg::PgEngine))
}

/// A config with `regions`, one plan `daily` (7 days primary, 30 days secondary retention) and one
/// service `service` at home in `home`, copying to `additional`.
pub fn daily_plan_config(
    service: &str,
    regions: Vec<RegionConfig>,
    additional: &[&str],
    allow_cross_provider: bool,
) -> Config {
    Config {
        regions,
        plans: vec![PlanConfig {
            name: "daily".into(),
            schedule: "0 3 * * *".into(),
            start_window_minutes: 60,
            retention_days: 7,
            secondary_retention_days: 30,
        }],
        services: vec![ServiceConfig {
            name: service.into(),
            engine: EngineKind::Pg,
            cloud: "home".into(),
            plan: Some("daily".into()),
            additional_backup_regions: additional.iter().map(|s| s.to_string()).collect(),
            allow_cross_provider,
            agents: Default::default(),
        }],
        ..Default::default()
    }
}

/// Sets the modification time of every file under `root` to `days` ago (objects written long ago).
pub fn age_files(root: &std::path::Path, days: u32) {
    for f in btar_testkit::files_under(root) {
        let ok = std::process::Command::new("touch")
            .arg("-d")
            .arg(format!("{days} days ago"))
            .arg(&f)
            .status()
            .unwrap()
            .success();
        assert!(ok, "touch {}", f.display());
    }
}

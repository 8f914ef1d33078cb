//! The config file (`btar --config FILE`): regions, services, storage settings.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use btar_engine::{AgentSettings, EngineKind};
use btar_format::WriterOptions;
use btar_region::{CancellationToken, Region, RegionConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("unknown region `{0}` (configured: {1})")]
    UnknownRegion(String, String),
    #[error("unknown service `{0}` (configured: {1})")]
    UnknownService(String, String),
    #[error(transparent)]
    Region(#[from] btar_region::RegionError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    pub compression_level: i32,
    /// The unit of change detection (format v2): PostgreSQL's 8 KiB page.
    pub block_size_kib: usize,
    /// New blocks compressed together.
    pub frame_size_kib: usize,
    /// Size at which a pack is sealed and uploaded.
    pub pack_size_mib: usize,
    /// Files a backup reads at once.
    pub parallel_files: usize,
    /// Retention repacks a pack whose live blocks are less than this share of it (restic's
    /// `prune`); 0 turns repacking off.
    pub repack_live_percent: usize,
    /// Format v1 settings that format v2 does not read. They are parsed (as any value) only to be
    /// refused by name in [`StorageSettings::validate`]: a config that sets them was tuned for
    /// something btar no longer does, and loading it silently would hide that.
    #[serde(default, skip_serializing)]
    pub chunk_size_kib: Option<toml::Value>,
    #[serde(default, skip_serializing)]
    pub max_in_flight: Option<toml::Value>,
}

impl StorageSettings {
    /// Files a restore writes at once: twice a backup's, since each holds only a few compressed
    /// ranges (measured on pgbench scale 30 from S3: 8 files 0.8 s and 4 files 0.9 s, both at
    /// 41 MiB peak RSS).
    pub fn restore_parallel_files(&self) -> usize {
        self.parallel_files.saturating_mul(2)
    }

    /// Accepted ranges: blocks of 1 KiB to 1 MiB (a page of any engine), frames up to 16 MiB (the
    /// largest a reader decompresses at once), packs up to 4 GiB; zstd's regular levels.
    const RANGES: [(&'static str, i64, i64); 6] = [
        ("compression_level", 1, 22),
        ("block_size_kib", 1, 1024),
        ("frame_size_kib", 1, 16 * 1024),
        ("pack_size_mib", 1, 4 * 1024),
        ("parallel_files", 1, 256),
        ("repack_live_percent", 0, 100),
    ];

    /// Retired keys and what replaces them.
    const RETIRED: [(&'static str, &'static str); 2] = [
        (
            "chunk_size_kib",
            "format v2 sizes data with block_size_kib, frame_size_kib and pack_size_mib",
        ),
        (
            "max_in_flight",
            "parallel_files sets how many files a backup reads (and twice as many a restore writes)",
        ),
    ];

    fn validate(&self) -> Result<(), ConfigError> {
        let retired = [&self.chunk_size_kib, &self.max_in_flight];
        for ((name, instead), value) in Self::RETIRED.iter().zip(retired) {
            if let Some(v) = value {
                return Err(ConfigError::Invalid(format!(
                    "[storage] {name} = {v} is a format v1 setting btar no longer uses; remove it \
                     ({instead})"
                )));
            }
        }
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let values = [
            self.compression_level as i64,
            n(self.block_size_kib),
            n(self.frame_size_kib),
            n(self.pack_size_mib),
            n(self.parallel_files),
            n(self.repack_live_percent),
        ];
        for ((name, lo, hi), v) in Self::RANGES.iter().zip(values) {
            if !(*lo..=*hi).contains(&v) {
                return Err(ConfigError::Invalid(format!(
                    "[storage] {name} must be within {lo}..={hi}, not {v}"
                )));
            }
        }
        if self.frame_size_kib < self.block_size_kib {
            return Err(ConfigError::Invalid(format!(
                "[storage] frame_size_kib ({}) must be at least block_size_kib ({})",
                self.frame_size_kib, self.block_size_kib
            )));
        }
        Ok(())
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        let w = WriterOptions::default();
        Self {
            compression_level: 3,
            block_size_kib: w.block_size / 1024,
            frame_size_kib: w.frame_size / 1024,
            pack_size_mib: w.pack_size >> 20,
            parallel_files: 4,
            repack_live_percent: 50,
            chunk_size_kib: None,
            max_in_flight: None,
        }
    }
}

/// A scheduled restore drill (AWS restore testing plan).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    pub service: String,
    /// Cron expression (5 fields, UTC), e.g. `0 5 * * 1` for Mondays at 05:00.
    pub schedule: String,
    /// Location to restore from (default: the home region).
    #[serde(default)]
    pub region: Option<String>,
    /// SQL that must return a row; without it, a server that starts and promotes passes.
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default = "default_drill_timeout")]
    pub timeout_minutes: u64,
}

fn default_drill_timeout() -> u64 {
    15
}

/// What a region costs, in any one currency, for `btar cost`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub region: String,
    /// Storage, per GB (10^9 bytes) and month (730 hours).
    pub gb_month: f64,
    /// Data written into the region by copies, per GB (cross-region transfer).
    #[serde(default)]
    pub transfer_gb: f64,
}

/// Notifications (see `alerts`): where they go and the optional lag threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// URLs that get each alert as a JSON POST (`text` suits Slack's incoming webhooks). Never
    /// logged: such URLs often carry their secret.
    pub webhooks: Vec<String>,
    /// Commands (`sh -c`) that get each alert as JSON on stdin and in `BTAR_ALERT_*` variables.
    pub commands: Vec<String>,
    /// Alert when backups reach an additional region this many seconds after the primary.
    pub backup_lag_seconds: Option<u64>,
    /// Alert when a location's streamed WAL (`btar log-stream`) is this many seconds behind the
    /// server, its store fails, or the streamer has not reported for twice this long.
    pub stream_lag_seconds: u64,
    /// Tries per sink and alert (0.5 s, then doubling, between them).
    pub attempts: u32,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            commands: Vec::new(),
            backup_lag_seconds: None,
            stream_lag_seconds: 60,
            attempts: 3,
        }
    }
}

/// `btar check`: the compliance rules' thresholds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckSettings {
    /// Each additional backup region must hold a backup taken within this many days (AWS Audit
    /// Manager's BKP-004 default: 30).
    pub copy_max_age_days: u32,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            copy_max_age_days: 30,
        }
    }
}

/// `wal-fetch` (a database's restore command, one process per log file): what it keeps between
/// its runs so that a recovery is not bound by a store round trip per file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalFetchSettings {
    /// Log files fetched ahead of the one asked for, by a background `wal-fetch`; 0 turns the
    /// spool off (each request then goes to the store).
    pub prefetch: usize,
    /// Requests the prefetcher has in flight at once.
    pub parallel: usize,
    /// Bound of the spool, per region and service.
    pub spool_max_mib: u64,
    /// Keep the location's descriptor locally, so a request needs no store round trip for it.
    pub cache_descriptor: bool,
    /// Where the spool and the descriptor cache live: default `btar-spool` beside the config file.
    /// It must be writable by the user the database runs restore commands as; if it is not,
    /// `wal-fetch` warns and fetches from the store.
    pub spool_dir: Option<PathBuf>,
}

impl Default for WalFetchSettings {
    fn default() -> Self {
        Self {
            prefetch: 8,
            parallel: 4,
            spool_max_mib: 1024,
            cache_descriptor: true,
            spool_dir: None,
        }
    }
}

impl WalFetchSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.prefetch > 256 || !(1..=32).contains(&self.parallel) || self.spool_max_mib == 0 {
            return Err(ConfigError::Invalid(format!(
                "[wal_fetch] prefetch must be within 0..=256 (is {}), parallel within 1..=32 (is {}), spool_max_mib at least 1",
                self.prefetch, self.parallel
            )));
        }
        Ok(())
    }
}

/// Unknown keys are refused in [`Config::validate`] (serde cannot deny them beside a flattened map).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub name: String,
    /// `pg` (PostgreSQL) or `mysql` (MySQL/MariaDB).
    pub engine: EngineKind,
    /// Home region: where primary backups and the log archive live.
    pub cloud: String,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub additional_backup_regions: Vec<String>,
    /// Additional backup regions must be on the home region's provider unless this is set.
    #[serde(default)]
    pub allow_cross_provider: bool,
    /// How the agent reaches the database: the `[service.<engine>]` table (`[service.pg]`), which
    /// the engine parses and checks. Any other key lands here too and is refused by validation.
    #[serde(flatten)]
    pub agents: BTreeMap<String, AgentSettings>,
}

impl ServiceConfig {
    /// The agent settings of this service's engine.
    pub fn agent(&self) -> Option<&AgentSettings> {
        self.agents.get(self.engine.as_str())
    }
}

/// Where the catalog lives. Relative SQLite paths are taken from the config file's directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    /// `sqlite://PATH` (the default: `btar-catalog.db` beside the config) or `postgres://…` when several
    /// btar processes share the work.
    #[serde(default)]
    pub url: Option<String>,
}

/// The control plane's listeners.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// REST API, console and `/metrics`.
    pub listen: String,
    /// Bearer token of the API, as a key source (`env:VAR`, `file:/path`, or the token itself after
    /// `literal:`). Without one, `btar server` generates a token and prints it once.
    pub token: Option<String>,
    /// Loopback UDP address where `wal-push` announces each archived file, so the replicator ships it
    /// at once instead of at the next reconciling pass.
    pub notify: String,
    /// Seconds between reconciling passes (listing primary and secondary locations).
    pub reconcile_seconds: u64,
    /// How long a copy worker's claim on a job lasts without a heartbeat: a worker that died gives
    /// its job up after this (heartbeats come every third of it).
    pub copy_lease_seconds: u64,
    /// Claims a copy job gets (a failed attempt, or a worker that died holding it) before it is
    /// FAILED for good; a later retry is then a new job naming it (`retry_of`).
    pub copy_attempts: u32,
    /// Delay before a failed copy is tried again; doubles with each further try, up to an hour.
    pub copy_retry_seconds: u64,
    /// Connections the API serves at once; more are answered 503 and closed, so idle or slow clients
    /// cannot take the file descriptors the replicator needs. Capped at half the open-file limit.
    pub max_connections: usize,
    /// Seconds a connection may take to send a request's headers, and may stay idle between requests.
    pub idle_timeout_seconds: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7480".into(),
            token: None,
            notify: "127.0.0.1:7481".into(),
            reconcile_seconds: 10,
            copy_lease_seconds: 60,
            copy_attempts: 5,
            copy_retry_seconds: 30,
            max_connections: 512,
            idle_timeout_seconds: 30,
        }
    }
}

/// A backup plan (Aiven's plans, AWS Backup's plan rules): schedule and retention per location.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub name: String,
    /// Cron expression (5 fields, UTC) of primary backups, e.g. `0 3 * * *`.
    pub schedule: String,
    /// A scheduled backup that cannot start within this many minutes of its slot is skipped.
    #[serde(default = "default_start_window")]
    pub start_window_minutes: u64,
    /// Days a backup is kept in the primary location.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Days a copy is kept in an additional backup region; independent of the primary's.
    #[serde(default = "default_retention")]
    pub secondary_retention_days: u32,
}

fn default_start_window() -> u64 {
    60
}

fn default_retention() -> u32 {
    7
}

/// Retention bounds of the reference systems (Alibaba: 7 to 1825 days).
pub const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 7..=1825;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub storage: StorageSettings,
    #[serde(default)]
    pub catalog: CatalogSettings,
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub wal_fetch: WalFetchSettings,
    #[serde(default)]
    pub check: CheckSettings,
    #[serde(default)]
    pub alerts: AlertSettings,
    /// Prices per region for `btar cost` (optional).
    #[serde(default, rename = "price")]
    pub prices: Vec<PriceConfig>,
    /// Scheduled restore drills (`btar server` runs them).
    #[serde(default, rename = "drill")]
    pub drills: Vec<DrillConfig>,
    #[serde(default, rename = "plan")]
    pub plans: Vec<PlanConfig>,
    #[serde(default, rename = "region")]
    pub regions: Vec<RegionConfig>,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
    /// Absolute path of the file this was loaded from (for commands that call btar back).
    #[serde(skip)]
    pub path: PathBuf,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        cfg.path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        // The file is named in every error, so an operator reading a restore log knows which one.
        cfg.validate().map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.storage.validate()?;
        self.wal_fetch.validate()?;
        if self.server.max_connections == 0 || self.server.idle_timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "[server] max_connections and idle_timeout_seconds must be at least 1".into(),
            ));
        }
        let mut names = HashSet::new();
        for r in &self.regions {
            r.validate()?;
            if !names.insert(r.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "region `{}` is declared twice",
                    r.name
                )));
            }
        }
        for d in &self.drills {
            crate::schedule::Schedule::parse(&d.schedule)
                .map_err(|e| ConfigError::Invalid(format!("[[drill]] of `{}`: {e}", d.service)))?;
            if let Some(r) = &d.region
                && !names.contains(r.as_str())
            {
                return Err(ConfigError::Invalid(format!(
                    "[[drill]] of `{}` names region `{r}`, which is not declared",
                    d.service
                )));
            }
        }
        for p in &self.prices {
            if !names.contains(p.region.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "[[price]] names region `{}`, which is not declared",
                    p.region
                )));
            }
            if !(p.gb_month.is_finite()
                && p.gb_month >= 0.0
                && p.transfer_gb.is_finite()
                && p.transfer_gb >= 0.0)
            {
                return Err(ConfigError::Invalid(format!(
                    "[[price]] for `{}`: prices must be finite and not negative",
                    p.region
                )));
            }
        }
        let mut plans = HashSet::new();
        for p in &self.plans {
            if !plans.insert(p.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "plan `{}` is declared twice",
                    p.name
                )));
            }
            crate::schedule::Schedule::parse(&p.schedule)
                .map_err(|e| ConfigError::Invalid(format!("plan `{}`: {e}", p.name)))?;
            for (what, days) in [
                ("retention_days", p.retention_days),
                ("secondary_retention_days", p.secondary_retention_days),
            ] {
                if !RETENTION_DAYS.contains(&days) {
                    return Err(ConfigError::Invalid(format!(
                        "plan `{}`: {what} must be within {}..={} days, not {days}",
                        p.name,
                        RETENTION_DAYS.start(),
                        RETENTION_DAYS.end()
                    )));
                }
            }
        }
        let mut services = HashSet::new();
        for s in &self.services {
            if let Some(plan) = &s.plan {
                self.plan(plan)?;
            }
            btar_format::layout::validate_name(&s.name)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            if !services.insert(s.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "service `{}` is declared twice",
                    s.name
                )));
            }
            if let Some(key) = s.agents.keys().find(|k| *k != s.engine.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "service `{}`: unknown key `{key}` (a `{}` service's agent settings go under \
                     [service.{}])",
                    s.name, s.engine, s.engine
                )));
            }
            let home = self.region(&s.cloud)?.provider();
            let providers = s
                .additional_backup_regions
                .iter()
                .map(|r| Ok(self.region(r)?.provider()))
                .collect::<Result<Vec<_>, ConfigError>>()?;
            let destinations = s.additional_backup_regions.iter().map(String::as_str);
            crate::services::check_backup_regions(
                (&s.cloud, &home),
                destinations.zip(&providers),
                s.allow_cross_provider,
            )
            .map_err(|e| ConfigError::Invalid(format!("service `{}`: {e}", s.name)))?;
            if s.agent().is_none() {
                return Err(ConfigError::Invalid(format!(
                    "service `{}`: missing [service.{}] settings",
                    s.name, s.engine
                )));
            }
        }
        Ok(())
    }

    pub fn region(&self, name: &str) -> Result<&RegionConfig, ConfigError> {
        self.regions.iter().find(|r| r.name == name).ok_or_else(|| {
            ConfigError::UnknownRegion(
                name.into(),
                self.regions
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
    }

    pub fn open_region(
        &self,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<Region, ConfigError> {
        Ok(Region::open(self.region(name)?, cancel.clone())?)
    }

    /// The named service, or the only one when no name is given.
    pub fn service(&self, name: Option<&str>) -> Result<&ServiceConfig, ConfigError> {
        let known = || {
            self.services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            Some(n) => self
                .services
                .iter()
                .find(|s| s.name == n)
                .ok_or_else(|| ConfigError::UnknownService(n.into(), known())),
            None if self.services.len() == 1 => Ok(&self.services[0]),
            None => Err(ConfigError::Invalid(format!(
                "name a service (--service); configured: {}",
                known()
            ))),
        }
    }

    pub fn plan(&self, name: &str) -> Result<&PlanConfig, ConfigError> {
        self.plans.iter().find(|p| p.name == name).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "unknown plan `{name}` (configured: {})",
                self.plans
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Opens the existing location of `service` in `region`.
    pub async fn location(
        &self,
        service: &str,
        region: &str,
        cancel: &CancellationToken,
    ) -> Result<btar_format::Location, crate::ControlError> {
        let r = self.open_region(region, cancel)?;
        Ok(btar_format::Location::open(&r, service)
            .await?
            .with_compression_level(self.storage.compression_level))
    }

    /// The command line that calls this btar back with this config (archive and restore commands).
    pub fn self_command(&self) -> String {
        // BTAR_EXE lets an embedding process (a test, a wrapper) name the real btar binary.
        let exe = std::env::var("BTAR_EXE").ok().unwrap_or_else(|| {
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "btar".into())
        });
        format!("{exe} --config {}", self.path.display())
    }

    /// The catalog URL: configured, or a SQLite file beside the config. A SQLite file is created on
    /// first use (`mode=rwc`) unless the URL names its own mode.
    /// The `[[price]]` of `region`, if any.
    pub fn price(&self, region: &str) -> Option<&PriceConfig> {
        self.prices.iter().find(|p| p.region == region)
    }

    /// The catalog's copy-job retry rules from `[server]`.
    pub fn catalog_options(&self) -> btar_catalog::CatalogOptions {
        btar_catalog::CatalogOptions {
            max_attempts: i64::from(self.server.copy_attempts.max(1)),
            retry_base: std::time::Duration::from_secs(self.server.copy_retry_seconds.max(1)),
            ..Default::default()
        }
    }

    pub fn catalog_url(&self) -> String {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let u = self
            .catalog
            .url
            .as_deref()
            .unwrap_or("sqlite://btar-catalog.db");
        let Some(rest) = u.strip_prefix("sqlite://") else {
            return u.to_string();
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = dir.join(path); // an absolute path replaces `dir`
        let query = if query.split('&').any(|kv| kv.starts_with("mode=")) {
            query.to_string()
        } else if query.is_empty() {
            "mode=rwc".to_string()
        } else {
            format!("{query}&mode=rwc")
        };
        format!("sqlite://{}?{query}", path.display())
    }

    /// The directory holding `wal-fetch`'s spools and descriptor caches.
    pub fn spool_root(&self) -> PathBuf {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        match &self.wal_fetch.spool_dir {
            Some(d) => dir.join(d), // an absolute path replaces `dir`
            None => dir.join("btar-spool"),
        }
    }

    pub fn writer_options(&self) -> WriterOptions {
        WriterOptions {
            block_size: self.storage.block_size_kib.saturating_mul(1024),
            frame_size: self.storage.frame_size_kib.saturating_mul(1024),
            pack_size: self.storage.pack_size_mib.saturating_mul(1 << 20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<(), ConfigError> {
        let text = format!(
            "[[region]]\nname = \"a\"\nprovider = \"aws\"\nurl = \"s3://a\"\n\n\
             [[region]]\nname = \"b\"\nprovider = \"google\"\nurl = \"gs://b\"\n\n\
             [[service]]\nname = \"s\"\nengine = \"pg\"\ncloud = \"a\"\n\
             additional_backup_regions = [\"b\"]\npg = {{ conninfo = \"host=/tmp\" }}\n{extra}"
        );
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()
    }

    #[test]
    fn drills_and_prices_name_declared_regions_and_valid_schedules() {
        let ok = "allow_cross_provider = true\n\n[[drill]]\nservice = \"s\"\nschedule = \"0 5 * * 1\"\nregion = \"b\"\n\
                  \n[[price]]\nregion = \"b\"\ngb_month = 0.02\n";
        assert!(parse(ok).is_ok(), "{:?}", parse(ok));
        for (bad, needle) in [
            (
                "[[drill]]\nservice = \"s\"\nschedule = \"0 5 * * 1\"\nregion = \"zz\"\n",
                "`zz`",
            ),
            (
                "[[drill]]\nservice = \"s\"\nschedule = \"every day\"\n",
                "not a cron",
            ),
            ("[[price]]\nregion = \"zz\"\ngb_month = 0.02\n", "`zz`"),
            (
                "[[price]]\nregion = \"a\"\ngb_month = -1.0\n",
                "not negative",
            ),
        ] {
            let extra = format!("allow_cross_provider = true\n\n{bad}");
            let err = parse(&extra).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn agent_settings_go_under_the_engines_own_key() {
        let err = parse("allow_cross_provider = true\nmysql = { conninfo = \"x\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown key `mysql`") && err.contains("[service.pg]"),
            "{err}"
        );
        let err = parse("allow_cross_provider = true\nretention = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `retention`"), "{err}");
        let text = "[[region]]\nname = \"a\"\nprovider = \"aws\"\nurl = \"s3://a\"\n\n\
                    [[service]]\nname = \"s\"\nengine = \"pg\"\ncloud = \"a\"\n";
        let cfg: Config = toml::from_str(text).unwrap_or_default();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("missing [service.pg] settings"), "{err}");
        let err = toml::from_str::<Config>(&text.replace("\"pg\"", "\"oracle\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("oracle"), "{err}");
    }

    #[test]
    fn cross_provider_copies_need_the_opt_out() {
        let err = parse("").unwrap_err().to_string();
        assert!(
            err.contains("allow_cross_provider") && err.contains("google"),
            "{err}"
        );
        assert!(parse("allow_cross_provider = true\n").is_ok());
    }

    #[test]
    fn storage_settings_out_of_range_are_refused() {
        let storage = |kv: &str| format!("allow_cross_provider = true\n\n[storage]\n{kv}\n");
        assert!(parse(&storage("pack_size_mib = 64")).is_ok());
        // Format v1 keys are refused by name, with what replaces them: btar ignores them.
        for (old, new) in [
            ("chunk_size_kib = 1024", "block_size_kib"),
            ("max_in_flight = -1", "parallel_files"),
        ] {
            let err = parse(&storage(old)).unwrap_err().to_string();
            assert!(err.contains("no longer uses") && err.contains(new), "{err}");
        }
        // 2^54 KiB: `* 1024` would wrap to 0.
        let err = parse(&storage("block_size_kib = 18014398509481984"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("block_size_kib") && err.contains("1..=1024"),
            "{err}"
        );
        let err = parse(&storage("block_size_kib = 16\nframe_size_kib = 8"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("frame_size_kib"), "{err}");
        for bad in [
            "block_size_kib = 0",
            "compression_level = 0",
            "compression_level = 23",
            "pack_size_mib = 0",
            "parallel_files = 0",
            "parallel_files = 100000",
        ] {
            let err = parse(&storage(bad)).unwrap_err().to_string();
            let name = bad.split(' ').next().unwrap_or_default();
            assert!(err.contains(name), "{bad}: {err}");
        }
    }

    #[test]
    fn sqlite_catalog_urls_create_the_file() {
        let mut cfg = Config {
            path: PathBuf::from("/etc/btar/btar.toml"),
            ..Default::default()
        };
        assert_eq!(
            cfg.catalog_url(),
            "sqlite:///etc/btar/btar-catalog.db?mode=rwc"
        );
        cfg.catalog.url = Some("sqlite://cat.db".into());
        assert_eq!(cfg.catalog_url(), "sqlite:///etc/btar/cat.db?mode=rwc");
        cfg.catalog.url = Some("sqlite:///var/lib/btar/cat.db".into());
        assert_eq!(cfg.catalog_url(), "sqlite:///var/lib/btar/cat.db?mode=rwc");
        cfg.catalog.url = Some("sqlite:///v/cat.db?mode=ro".into());
        assert_eq!(cfg.catalog_url(), "sqlite:///v/cat.db?mode=ro");
        cfg.catalog.url = Some("postgres://u@h/db".into());
        assert_eq!(cfg.catalog_url(), "postgres://u@h/db");
    }

    /// The first use of an absolute SQLite URL creates the catalog (it used to fail: no such file).
    #[tokio::test]
    async fn absolute_sqlite_catalog_opens_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub-less.db");
        let cfg = Config {
            path: PathBuf::from("/nonexistent/btar.toml"),
            catalog: CatalogSettings {
                url: Some(format!("sqlite://{}", db.display())),
            },
            ..Default::default()
        };
        let catalog = btar_catalog::Catalog::open(&cfg.catalog_url())
            .await
            .unwrap();
        catalog.close().await;
        assert!(db.exists());
    }

    #[test]
    fn plans_are_checked() {
        let plan = |schedule: &str, days: u32| {
            format!(
                "plan = \"p\"\nallow_cross_provider = true\n\n[[plan]]\nname = \"p\"\n\
                 schedule = \"{schedule}\"\nretention_days = {days}\n"
            )
        };
        assert!(parse(&plan("0 3 * * *", 7)).is_ok());
        let err = parse(&plan("at three", 7)).unwrap_err().to_string();
        assert!(err.contains("cron"), "{err}");
        let err = parse(&plan("0 3 * * *", 3)).unwrap_err().to_string();
        assert!(err.contains("7..=1825"), "{err}");
    }
}

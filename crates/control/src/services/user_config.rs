//! A service's `user_config` (Aiven's name) as one typed value. The catalog stores it as JSON; this
//! is the only place that knows its keys, so a stored config and a client's request are read by the
//! same rules and a new key is added in one place.

use std::collections::BTreeMap;
use std::path::PathBuf;

use btar_engine::{AgentSettings, EngineKind};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ControlError, Result};

const REGIONS: &str = "additional_backup_regions";
const CROSS_PROVIDER: &str = "allow_cross_provider";
const FORK_FROM: &str = "service_to_fork_from";
const FORK_PROJECT: &str = "project_to_fork_from";
const TARGET_TIME: &str = "recovery_target_time";
const FORK_DATA_DIR: &str = "fork_data_dir";
const FORK_PORT: &str = "fork_port";

/// Keys a client may set on any service.
pub(super) const SETTABLE_KEYS: &[&str] = &[REGIONS, CROSS_PROVIDER];
/// Keys that only mean something when creating a fork.
pub(super) const FORK_KEYS: &[&str] = &[
    FORK_FROM,
    FORK_PROJECT,
    TARGET_TIME,
    FORK_DATA_DIR,
    FORK_PORT,
];

/// What `user_config` may hold. Options stay `None` when a key is absent so that a config is shown
/// back exactly as it was stored: `{}` and `{"additional_backup_regions": []}` both mean "no
/// copies" but are different stored objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct UserConfig {
    pub additional_backup_regions: Option<Vec<String>>,
    /// Additional backup regions must be on the home region's provider unless this is true.
    pub allow_cross_provider: Option<bool>,
    /// Create only: makes the request a fork of this service.
    pub service_to_fork_from: Option<String>,
    /// Create only: accepted for Aiven's clients, checked for shape, otherwise ignored (one project).
    pub project_to_fork_from: Option<String>,
    /// Create only: the fork's target; a fork keeps it as a record of what it was restored to.
    pub recovery_target_time: Option<DateTime<Utc>>,
    /// Create only: where the fork's database goes on this host.
    #[schema(value_type = Option<String>)]
    pub fork_data_dir: Option<PathBuf>,
    /// Create only: the fork's port.
    pub fork_port: Option<u16>,
    /// Agent settings btar keeps for a fork it started (`btar_<engine>`), so that it can back the
    /// fork up without a config entry. Never set by a client. In JSON: `btar_pg` / `btar_mysql`
    /// objects (password masked), beside the keys above.
    #[schema(ignore)]
    pub agents: BTreeMap<EngineKind, AgentSettings>,
}

impl UserConfig {
    /// Reads a JSON object; `null` means "not set" for the object and for each key. Every unknown
    /// key is named at once, so a client fixes a request in one round.
    pub fn parse(config: Value) -> Result<Self> {
        Self::try_from(into_object(config)?)
    }

    /// The config the catalog stores for `service`. One that does not parse was not written by
    /// btar: a server-side fault, not the client's.
    pub fn of(service: &btar_catalog::Service) -> Result<Self> {
        Self::parse(service.user_config.clone()).map_err(|e| {
            btar_catalog::CatalogError::Corrupt {
                column: "services.user_config",
                value: format!("{} (service `{}`: {e})", service.user_config, service.name),
            }
            .into()
        })
    }

    pub fn regions(&self) -> &[String] {
        self.additional_backup_regions
            .as_deref()
            .unwrap_or_default()
    }

    pub fn cross_provider(&self) -> bool {
        self.allow_cross_provider.unwrap_or(false)
    }

    /// The request keys of a fork that are set, by name (a plain service must have none).
    pub(super) fn fork_keys_set(&self) -> Vec<&'static str> {
        let set = [
            (FORK_FROM, self.service_to_fork_from.is_some()),
            (FORK_PROJECT, self.project_to_fork_from.is_some()),
            (TARGET_TIME, self.recovery_target_time.is_some()),
            (FORK_DATA_DIR, self.fork_data_dir.is_some()),
            (FORK_PORT, self.fork_port.is_some()),
        ];
        set.into_iter()
            .filter(|(_, s)| *s)
            .map(|(k, _)| k)
            .collect()
    }

    pub fn to_value(&self) -> Value {
        Value::Object(self.clone().into())
    }

    /// Applies a client's change: keys are merged one by one (`null` removes one), so changing the
    /// regions keeps everything else. A client may set the keys any service has and send back keys
    /// already stored (a fork's); the agent settings are btar's own and stay as stored, since what
    /// a client sees of them is masked.
    pub fn merged(&self, patch: Value) -> Result<Self> {
        let patch = into_object(patch)?;
        reject_unknown(&patch)?;
        let mut merged: Map<String, Value> = self.clone().into();
        for (key, value) in patch {
            if agent_kind(&key).is_some() {
                if merged.contains_key(&key) {
                    continue;
                }
                return Err(agent_settings_refused(&key));
            }
            if !SETTABLE_KEYS.contains(&key.as_str()) && !merged.contains_key(&key) {
                return Err(ControlError::invalid(format!(
                    "user_config.{key} can only be set when creating a fork"
                )));
            }
            if value.is_null() {
                merged.remove(&key);
            } else {
                merged.insert(key, value);
            }
        }
        Self::try_from(merged)
    }

    /// Refuses agent settings in a client's request: btar writes them for forks only.
    pub(super) fn check_no_agents(&self) -> Result<()> {
        match self.agents.keys().next() {
            Some(kind) => Err(agent_settings_refused(&agent_key(*kind))),
            None => Ok(()),
        }
    }
}

impl TryFrom<Map<String, Value>> for UserConfig {
    type Error = ControlError;

    fn try_from(mut config: Map<String, Value>) -> Result<Self> {
        config.retain(|_, v| !v.is_null());
        reject_unknown(&config)?;
        let mut agents = BTreeMap::new();
        for kind in EngineKind::ALL {
            if let Some(settings) = config.remove(&agent_key(kind)) {
                agents.insert(kind, AgentSettings(settings));
            }
        }
        let fork_port = field::<u16>(&config, FORK_PORT, "a port number (1-65535)")?;
        if fork_port == Some(0) {
            return Err(wrong_type(
                FORK_PORT,
                "a port number (1-65535)",
                &Value::from(0),
            ));
        }
        Ok(UserConfig {
            additional_backup_regions: field(&config, REGIONS, "a list of region names")?,
            allow_cross_provider: field(&config, CROSS_PROVIDER, "true or false")?,
            // Kept even when empty: an empty source is a fork request gone wrong, not a plain service.
            service_to_fork_from: field(&config, FORK_FROM, "a string")?,
            project_to_fork_from: text(&config, FORK_PROJECT)?,
            recovery_target_time: time(&config, TARGET_TIME)?,
            fork_data_dir: text(&config, FORK_DATA_DIR)?.map(PathBuf::from),
            fork_port,
            agents,
        })
    }
}

impl From<UserConfig> for Map<String, Value> {
    fn from(c: UserConfig) -> Self {
        let mut out = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                out.insert(key.to_owned(), v);
            }
        };
        put(REGIONS, c.additional_backup_regions.map(Value::from));
        put(CROSS_PROVIDER, c.allow_cross_provider.map(Value::from));
        put(FORK_FROM, c.service_to_fork_from.map(Value::from));
        put(FORK_PROJECT, c.project_to_fork_from.map(Value::from));
        // `to_rfc3339` is how forks have always stored it: a stored time reads back byte for byte.
        put(
            TARGET_TIME,
            c.recovery_target_time.map(|t| t.to_rfc3339().into()),
        );
        put(
            FORK_DATA_DIR,
            c.fork_data_dir.map(|d| d.display().to_string().into()),
        );
        put(FORK_PORT, c.fork_port.map(Value::from));
        for (kind, settings) in c.agents {
            out.insert(agent_key(kind), settings.0);
        }
        out
    }
}

fn into_object(config: Value) -> Result<Map<String, Value>> {
    match config {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(ControlError::invalid("user_config must be a JSON object")),
    }
}

/// The key under which a service registered here (a fork) keeps an engine's agent settings.
fn agent_key(engine: EngineKind) -> String {
    format!("btar_{engine}")
}

fn agent_kind(key: &str) -> Option<EngineKind> {
    EngineKind::ALL.into_iter().find(|k| agent_key(*k) == key)
}

fn reject_unknown(config: &Map<String, Value>) -> Result<()> {
    let unknown: Vec<&str> = config
        .keys()
        .map(String::as_str)
        .filter(|k| !SETTABLE_KEYS.contains(k) && !FORK_KEYS.contains(k))
        .filter(|k| agent_kind(k).is_none())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = unknown.iter().map(|k| format!("`{k}`")).collect();
    Err(ControlError::invalid(format!(
        "unknown user_config key{} {} (known: {})",
        if unknown.len() == 1 { "" } else { "s" },
        quoted.join(", "),
        SETTABLE_KEYS
            .iter()
            .chain(FORK_KEYS)
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn agent_settings_refused(key: &str) -> ControlError {
    ControlError::invalid(format!(
        "user_config.{key} is set by btar for forks; declare a database's agent settings in the \
         config file"
    ))
}

fn wrong_type(key: &str, expected: &str, value: &Value) -> ControlError {
    ControlError::invalid(format!("user_config.{key} must be {expected}, not {value}"))
}

fn field<T: DeserializeOwned>(
    config: &Map<String, Value>,
    key: &str,
    expected: &str,
) -> Result<Option<T>> {
    config
        .get(key)
        .map(|v| serde_json::from_value(v.clone()).map_err(|_| wrong_type(key, expected, v)))
        .transpose()
}

/// A string key; an empty string means "not set", as Aiven's clients send it.
fn text(config: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    Ok(field::<String>(config, key, "a string")?.filter(|s| !s.is_empty()))
}

fn time(config: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>> {
    const EXPECTED: &str = "an RFC 3339 time";
    let Some(t) = text(config, key)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&t)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| wrong_type(key, &format!("{EXPECTED} ({e})"), &Value::from(t)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(r: Result<UserConfig>) -> String {
        r.map(|c| format!("parsed: {c:?}"))
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn every_unknown_key_is_named() {
        let err = message(UserConfig::parse(json!({
            "additional_backup_region": ["b"],
            "allow_cross_provider": true,
            "pg_version": "17",
        })));
        assert!(
            err.contains("`additional_backup_region`") && err.contains("`pg_version`"),
            "{err}"
        );
        assert!(err.contains("known: additional_backup_regions"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_key_and_the_expected_type() {
        for (config, key, expected) in [
            (json!({"additional_backup_regions": "b"}), REGIONS, "list"),
            (json!({"additional_backup_regions": [1]}), REGIONS, "list"),
            (
                json!({"allow_cross_provider": "yes"}),
                CROSS_PROVIDER,
                "true or false",
            ),
            (json!({"service_to_fork_from": 3}), FORK_FROM, "a string"),
            (
                json!({"recovery_target_time": "yesterday"}),
                TARGET_TIME,
                "RFC 3339",
            ),
            (json!({"fork_port": 70000}), FORK_PORT, "port number"),
            (json!({"fork_port": 0}), FORK_PORT, "port number"),
        ] {
            let err = message(UserConfig::parse(config.clone()));
            assert!(
                err.contains(&format!("user_config.{key} must be")) && err.contains(expected),
                "{config}: {err}"
            );
        }
        assert!(message(UserConfig::parse(json!([]))).contains("JSON object"));
    }

    #[test]
    fn nulls_and_empty_strings_mean_unset() {
        let c = UserConfig::parse(json!({
            "additional_backup_regions": null,
            "project_to_fork_from": "",
            "recovery_target_time": "",
        }));
        assert_eq!(c.ok(), Some(UserConfig::default()));
        assert_eq!(
            UserConfig::parse(Value::Null).ok(),
            Some(UserConfig::default())
        );
    }

    /// What a fork stores (fork.rs) reads back and serialises byte for byte, agent settings included.
    #[test]
    fn a_stored_fork_config_round_trips() {
        let stored = json!({
            "additional_backup_regions": ["local-b"],
            "allow_cross_provider": false,
            "service_to_fork_from": "svc1",
            "recovery_target_time": "2025-01-01T00:00:00.250+00:00",
            "btar_pg": {"conninfo": "host=/tmp port=5433 user=postgres", "pgdata": "/x"},
        });
        let parsed = UserConfig::parse(stored.clone()).unwrap_or_default();
        assert_eq!(parsed.service_to_fork_from.as_deref(), Some("svc1"));
        assert_eq!(parsed.regions(), ["local-b".to_owned()]);
        assert_eq!(parsed.agents.len(), 1);
        assert_eq!(parsed.to_value().to_string(), stored.to_string());
        assert_eq!(serde_json::to_value(&parsed).ok(), Some(stored.clone()));
        let back: Option<UserConfig> = serde_json::from_value(stored).ok();
        assert_eq!(back, Some(parsed));
        // What older btars stored for plain services: absent keys stay absent.
        for stored in [json!({}), json!({"additional_backup_regions": []})] {
            let parsed = UserConfig::parse(stored.clone()).unwrap_or_default();
            assert_eq!(parsed.to_value(), stored);
        }
    }

    #[test]
    fn merging_keeps_agent_settings_and_rejects_unknown_keys() {
        let stored =
            UserConfig::parse(json!({"btar_pg": {"conninfo": "x"}, "service_to_fork_from": "a"}))
                .unwrap_or_default();
        let merged = stored.merged(json!({
            "btar_pg": {"conninfo": "changed"},
            "service_to_fork_from": "a",
            "additional_backup_regions": ["r"],
        }));
        let merged = merged.unwrap_or_default().to_value();
        assert_eq!(merged["btar_pg"]["conninfo"], "x");
        assert_eq!(merged.as_object().map(Map::len), Some(3));

        let err = message(stored.merged(json!({"additional_backup_region": ["r"], "x": 1})));
        assert!(
            err.contains("`additional_backup_region`") && err.contains("`x`"),
            "{err}"
        );
        let err = message(UserConfig::default().merged(json!({"btar_pg": {}})));
        assert!(err.contains("set by btar"), "{err}");
        let err = message(UserConfig::default().merged(json!({"fork_port": 5})));
        assert!(err.contains("creating a fork"), "{err}");
        let removed = stored.merged(json!({"service_to_fork_from": null}));
        assert_eq!(removed.ok().and_then(|c| c.service_to_fork_from), None);
    }
}

//! Services as the API and the CLI manage them (Aiven's ServiceCreate / ServiceUpdate): create or
//! fork, update, get, list, delete — with the region rules of DESIGN.md ("Rules from the reference
//! systems"). The 24 h rule lives in the catalog so that it holds across processes.

use std::path::PathBuf;

use btar_catalog::{CatalogError, EngineKind, NewService, Role, Service, ServiceUpdate};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ControlError, ControlPlane, ForkRequest, Result, agent_key};

const REGIONS_KEY: &str = "additional_backup_regions";
const CROSS_PROVIDER_KEY: &str = "allow_cross_provider";
const FORK_FROM_KEY: &str = "service_to_fork_from";
const FORK_PROJECT_KEY: &str = "project_to_fork_from";
const TARGET_TIME_KEY: &str = "recovery_target_time";
/// Where the fork's PostgreSQL goes on this host (default: `forks/<name>` beside the config).
const FORK_DATA_DIR_KEY: &str = "fork_data_dir";
/// The fork's PostgreSQL port (default: a free one).
const FORK_PORT_KEY: &str = "fork_port";

/// `user_config` keys a client may set on any service.
const SETTABLE_KEYS: &[&str] = &[REGIONS_KEY, CROSS_PROVIDER_KEY];
/// Keys that only mean something when creating a fork.
const FORK_KEYS: &[&str] = &[
    FORK_FROM_KEY,
    FORK_PROJECT_KEY,
    TARGET_TIME_KEY,
    FORK_DATA_DIR_KEY,
    FORK_PORT_KEY,
];

/// A backup at most this old counts as recent when a region is enabled (no new full backup needed).
const RECENT_BACKUP_HOURS: i64 = 24;

/// Aiven's ServiceCreate. With `user_config.service_to_fork_from` it is a fork (Aiven's fork & restore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCreate {
    /// Aiven calls it `service_name`; `name` is accepted too.
    #[serde(rename = "service_name", alias = "name")]
    pub name: String,
    /// `pg` or `mysql`; empty means `pg`, or the source's engine for a fork.
    #[serde(default)]
    pub service_type: String,
    /// Home region: a region of the config.
    pub cloud: String,
    /// A plan of the config, or empty (no schedule; for a fork: the source's plan).
    #[serde(default)]
    pub plan: String,
    #[serde(default = "empty_object")]
    pub user_config: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// A service as the API returns it (Aiven's service object, reduced to what btar has).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service_name: String,
    pub service_type: String,
    pub cloud_name: String,
    pub plan: String,
    /// As stored, with any password in the agent settings (`btar_pg.conninfo`) masked.
    pub user_config: Value,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// When `additional_backup_regions` may change next; `null` means now.
    pub next_regions_change_at: Option<DateTime<Utc>>,
    /// Always `RUNNING` for a live service: btar registers databases, it does not run their hosts.
    pub state: String,
    /// The fork just made, on the response to a fork request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<Value>,
}

impl ControlPlane {
    /// Registers a service, or forks one when `user_config.service_to_fork_from` is set. Enabling
    /// additional backup regions starts a first backup at once (there is none yet).
    pub async fn create_service(&self, mut req: ServiceCreate) -> Result<ServiceView> {
        btar_format::layout::validate_name(&req.name)?;
        self.known_region(&req.cloud)?;
        self.check_plan(&req.plan)?;
        let mut config = into_object(std::mem::take(&mut req.user_config))?;
        // `null` means "not set", as it does in an update.
        config.retain(|_, v| !v.is_null());
        for key in config.keys() {
            if !SETTABLE_KEYS.contains(&key.as_str()) && !FORK_KEYS.contains(&key.as_str()) {
                return Err(unknown_key(key));
            }
        }
        let regions = regions_of(&config)?;
        self.check_regions(&req.cloud, &regions, cross_provider_allowed(&config)?)?;
        if config.contains_key(FORK_FROM_KEY) {
            return self.create_fork(req, config, regions).await;
        }
        if let Some(key) = FORK_KEYS.iter().find(|k| config.contains_key(**k)) {
            return Err(ControlError::invalid(format!(
                "user_config.{key} is only valid with user_config.{FORK_FROM_KEY}"
            )));
        }
        let svc = self
            .catalog()
            .create_service(&NewService {
                name: req.name.clone(),
                engine: self.parse_engine(&req.service_type, EngineKind::Pg)?,
                cloud: req.cloud.clone(),
                plan: req.plan.clone(),
                user_config: Value::Object(config),
            })
            .await?;
        // The location is created now, explicitly, so the service's `wal-push` finds it before
        // the first backup; an unreachable region leaves that to the first backup.
        self.register_location(&svc.name, &svc.cloud, svc.engine)
            .await;
        if !regions.is_empty() {
            self.backup_if_stale(&svc).await;
        }
        Ok(self.view(svc))
    }

    /// Changes the plan and/or `user_config`. `user_config` is merged key by key into the stored
    /// one (a `null` value removes a key), so changing the regions keeps everything else. Adding a
    /// region to a service without a backup in the last 24 h starts one at once; removing a region
    /// stops new copies and leaves the existing ones to their retention.
    pub async fn update_service(
        &self,
        name: &str,
        plan: Option<String>,
        user_config: Option<Value>,
    ) -> Result<ServiceView> {
        let current = self.service(name).await?;
        if let Some(plan) = &plan {
            self.check_plan(plan)?;
        }
        let old_regions = current.additional_backup_regions();
        let merged = match user_config {
            None => None,
            Some(patch) => Some(merge_config(&current.user_config, into_object(patch)?)?),
        };
        let added: Vec<String> = match &merged {
            None => Vec::new(),
            Some(config) => {
                let added: Vec<String> = regions_of(config)?
                    .into_iter()
                    .filter(|r| !old_regions.contains(r))
                    .collect();
                // Only new regions are checked: one since dropped from the config can still be
                // removed, and an existing cross-provider region is not re-judged.
                self.check_regions(&current.cloud, &added, cross_provider_allowed(config)?)?;
                added
            }
        };
        let updated = self
            .catalog()
            .update_service(
                name,
                &ServiceUpdate {
                    plan,
                    user_config: merged.map(Value::Object),
                },
            )
            .await?;
        if !added.is_empty() {
            self.backup_if_stale(&updated).await;
        }
        Ok(self.view(updated))
    }

    pub async fn get_service_view(&self, name: &str) -> Result<ServiceView> {
        Ok(self.view(self.service(name).await?))
    }

    pub async fn list_services(&self) -> Result<Vec<ServiceView>> {
        let services = self.catalog().list_services().await?;
        Ok(services.into_iter().map(|s| self.view(s)).collect())
    }

    /// Marks the service deleted. Its backups stay in every location until their retention ends
    /// (secondary backups outlive the service), so there is nothing to delete here.
    pub async fn delete_service(&self, name: &str) -> Result<()> {
        self.catalog().delete_service(name).await?;
        let _ = self
            .catalog()
            .append_event(Some(name), "service_deleted", "service deleted")
            .await;
        Ok(())
    }

    async fn create_fork(
        &self,
        req: ServiceCreate,
        config: Map<String, Value>,
        regions: Vec<String>,
    ) -> Result<ServiceView> {
        let source = string_key(&config, FORK_FROM_KEY)?.ok_or_else(|| {
            ControlError::invalid(format!("user_config.{FORK_FROM_KEY} is empty"))
        })?;
        btar_format::layout::validate_name(source)?;
        // Single project: the source project is checked for shape and otherwise ignored.
        if let Some(project) = string_key(&config, FORK_PROJECT_KEY)? {
            btar_format::layout::validate_name(project)?;
        }
        let recovery_target_time = string_key(&config, TARGET_TIME_KEY)?
            .map(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        ControlError::invalid(format!(
                            "user_config.{TARGET_TIME_KEY} `{t}` is not an RFC 3339 time: {e}"
                        ))
                    })
            })
            .transpose()?;
        let data_dir = string_key(&config, FORK_DATA_DIR_KEY)?.map(PathBuf::from);
        let port = match config.get(FORK_PORT_KEY) {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        ControlError::invalid(format!(
                            "user_config.{FORK_PORT_KEY} must be a port number (1-65535)"
                        ))
                    })?,
            ),
        };
        // The source is named in the body, not the path: a missing one is a bad request.
        let src = match self.service(source).await {
            Ok(s) => s,
            Err(ControlError::Catalog(e)) if e.is_not_found() => {
                return Err(ControlError::invalid(format!(
                    "user_config.{FORK_FROM_KEY}: service `{source}` not found"
                )));
            }
            Err(ControlError::NotFound(m)) => return Err(ControlError::Invalid(m)),
            Err(e) => return Err(e),
        };
        if self.parse_engine(&req.service_type, src.engine)? != src.engine {
            return Err(ControlError::invalid(format!(
                "service_type `{}` differs from the source's `{}`",
                req.service_type, src.engine
            )));
        }
        // Checked before restoring anything, so a name clash costs no restore.
        match self.catalog().get_service(&req.name).await {
            Ok(_) => return Err(CatalogError::ServiceExists(req.name.clone()).into()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let forked = self
            .fork(ForkRequest {
                source_service: src.name.clone(),
                cloud: req.cloud.clone(),
                name: req.name.clone(),
                recovery_target_time,
                plan: (!req.plan.is_empty()).then(|| req.plan.clone()),
                data_dir,
                port,
            })
            .await?;
        let fork = serde_json::to_value(&forked).ok();
        let mut view = if regions.is_empty() {
            self.get_service_view(&req.name).await?
        } else {
            // The fork is registered without regions; this is its first change, allowed at once.
            let mut patch = Map::new();
            patch.insert(REGIONS_KEY.into(), Value::from(regions));
            if let Some(flag) = config.get(CROSS_PROVIDER_KEY) {
                patch.insert(CROSS_PROVIDER_KEY.into(), flag.clone());
            }
            self.update_service(&req.name, None, Some(Value::Object(patch)))
                .await?
        };
        view.fork = fork;
        Ok(view)
    }

    fn view(&self, svc: Service) -> ServiceView {
        let now = self.catalog().now();
        ServiceView {
            next_regions_change_at: svc.next_regions_change_at().filter(|t| *t > now),
            service_type: svc.engine.as_str().to_owned(),
            user_config: masked(svc.user_config),
            service_name: svc.name,
            cloud_name: svc.cloud,
            plan: svc.plan,
            create_time: svc.created_at,
            update_time: svc.updated_at,
            state: "RUNNING".to_owned(),
            fork: None,
        }
    }

    fn known_region(&self, name: &str) -> Result<&btar_region::RegionConfig> {
        btar_region::validate_region_name(name).map_err(ControlError::Invalid)?;
        // An unknown region is the client's mistake (400), not a broken config.
        self.config()
            .region(name)
            .map_err(|e| ControlError::Invalid(e.to_string()))
    }

    fn check_plan(&self, plan: &str) -> Result<()> {
        if !plan.is_empty() {
            self.config()
                .plan(plan)
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// DESIGN.md: each destination is a configured region other than the home region, on the
    /// home region's provider unless the service opts out.
    fn check_regions(&self, cloud: &str, regions: &[String], cross_provider: bool) -> Result<()> {
        if regions.is_empty() {
            return Ok(());
        }
        let home = self.known_region(cloud)?.provider();
        for (i, region) in regions.iter().enumerate() {
            let destination = self.known_region(region)?.provider();
            if region == cloud {
                return Err(ControlError::invalid(format!(
                    "additional backup region `{region}` is the service's home region; \
                     a copy must live in another region"
                )));
            }
            if regions[..i].contains(region) {
                return Err(ControlError::invalid(format!(
                    "additional backup region `{region}` is listed twice"
                )));
            }
            if destination != home && !cross_provider {
                return Err(ControlError::invalid(format!(
                    "additional backup region `{region}` is on provider `{}` but the home region \
                     `{cloud}` is on `{}`; set user_config.{CROSS_PROVIDER_KEY} to true to copy \
                     across providers",
                    destination.as_str(),
                    home.as_str()
                )));
            }
        }
        Ok(())
    }

    /// DESIGN.md: enabling a region on a service without a valid backup in the last 24 h starts a
    /// full backup at once. The enabling change is already stored, so a failure here is logged
    /// rather than reported: the next scheduled backup covers it.
    async fn backup_if_stale(&self, svc: &Service) {
        let backups = match self
            .catalog()
            .list_backups(&svc.name, Some(&svc.cloud))
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(service = %svc.name, error = %e, "cannot list backups; starting one");
                Vec::new()
            }
        };
        let newest = backups
            .iter()
            .filter(|b| b.role == Role::Primary)
            .map(|b| b.backup_time)
            .max();
        let recent = newest
            .is_some_and(|t| self.catalog().now() - t < TimeDelta::hours(RECENT_BACKUP_HOURS));
        if !recent {
            tracing::info!(service = %svc.name, "region enabled without a recent backup: starting one");
            self.spawn_backup(&svc.name);
        }
    }
}

fn unknown_key(key: &str) -> ControlError {
    ControlError::invalid(format!(
        "unknown user_config key `{key}` (known: {})",
        SETTABLE_KEYS
            .iter()
            .chain(FORK_KEYS)
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

impl ControlPlane {
    /// The engine a request names (`service_type`), which this btar must be built with.
    fn parse_engine(&self, service_type: &str, default: EngineKind) -> Result<EngineKind> {
        let kind = match service_type {
            "" => default,
            other => other.parse().map_err(|_| {
                ControlError::invalid(format!(
                    "service_type must be `pg` or `mysql`, not `{other}`"
                ))
            })?,
        };
        self.engines()
            .get(kind)
            .map_err(|e| ControlError::invalid(e.to_string()))?;
        Ok(kind)
    }
}

fn into_object(config: Value) -> Result<Map<String, Value>> {
    match config {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(ControlError::invalid("user_config must be a JSON object")),
    }
}

/// Applies `patch` to the stored config. A client may set the keys any service has, and send back
/// keys already stored (a fork's) unchanged; the agent settings are btar's own and stay as stored,
/// since what a client sees of them is masked.
fn merge_config(stored: &Value, patch: Map<String, Value>) -> Result<Map<String, Value>> {
    let mut merged = stored.as_object().cloned().unwrap_or_default();
    for (key, value) in patch {
        if is_agent_key(&key) {
            if merged.contains_key(&key) {
                continue;
            }
            return Err(ControlError::invalid(format!(
                "user_config.{key} is set by btar for forks; declare a database's agent \
                 settings in the config file"
            )));
        }
        if !SETTABLE_KEYS.contains(&key.as_str()) && !merged.contains_key(&key) {
            return Err(unknown_key(&key));
        }
        if value.is_null() {
            merged.remove(&key);
        } else {
            merged.insert(key, value);
        }
    }
    Ok(merged)
}

fn regions_of(config: &Map<String, Value>) -> Result<Vec<String>> {
    let bad = || {
        ControlError::invalid(format!(
            "user_config.{REGIONS_KEY} must be a list of region names"
        ))
    };
    match config.get(REGIONS_KEY) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn cross_provider_allowed(config: &Map<String, Value>) -> Result<bool> {
    match config.get(CROSS_PROVIDER_KEY) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ControlError::invalid(format!(
            "user_config.{CROSS_PROVIDER_KEY} must be true or false"
        ))),
    }
}

fn string_key<'a>(config: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ControlError::invalid(format!(
            "user_config.{key} must be a string"
        ))),
    }
}

/// The user-config key of some engine's agent settings (`btar_pg`).
fn is_agent_key(key: &str) -> bool {
    EngineKind::ALL.iter().any(|k| agent_key(*k) == key)
}

/// Hides passwords in the agent settings' conninfo (`password=…` or `postgres://user:…@`).
fn masked(mut config: Value) -> Value {
    for kind in EngineKind::ALL {
        if let Some(conninfo) = config
            .get_mut(agent_key(kind))
            .and_then(|a| a.get_mut("conninfo"))
            && let Some(text) = conninfo.as_str()
        {
            *conninfo = Value::String(mask_conninfo(text));
        }
    }
    config
}

fn mask_conninfo(conninfo: &str) -> String {
    let mut out = conninfo.to_owned();
    // URL form: the password sits between the user's `:` and the `@` of the authority.
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| authority_start + i);
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo = &out[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(
                    authority_start + colon + 1..authority_start + at,
                    "********",
                );
            }
        }
    }
    // Keyword form and URL query parameters: `password=VALUE`, VALUE possibly quoted.
    let mut searched = 0;
    while let Some(found) = out[searched..].to_ascii_lowercase().find("password=") {
        let start = searched + found + "password=".len();
        let rest = &out[start..];
        let len = if let Some(quoted) = rest.strip_prefix('\'') {
            let mut escaped = false;
            let close = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map_or(quoted.len(), |(i, _)| i + 1);
            1 + close
        } else {
            rest.find([' ', '\t', '\n', '&']).unwrap_or(rest.len())
        };
        out.replace_range(start..start + len, "********");
        searched = start + "********".len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_conninfo("host=h password=secret user=u"),
            "host=h password=******** user=u"
        );
        assert_eq!(
            mask_conninfo("host=h password='se cr\\'et' user=u"),
            "host=h password=******** user=u"
        );
        assert_eq!(
            mask_conninfo("postgres://u:secret@h:5432/db?sslmode=require&password=x"),
            "postgres://u:********@h:5432/db?sslmode=require&password=********"
        );
        assert_eq!(
            mask_conninfo("host=127.0.0.1 port=5 user=postgres"),
            "host=127.0.0.1 port=5 user=postgres"
        );
    }

    #[test]
    fn merging_keeps_agent_settings_and_rejects_unknown_keys() {
        let stored = serde_json::json!({"btar_pg": {"conninfo": "x"}, "service_to_fork_from": "a"});
        let patch = serde_json::json!({
            "btar_pg": {"conninfo": "changed"},
            "service_to_fork_from": "a",
            "additional_backup_regions": ["r"],
        });
        let Value::Object(patch) = patch else {
            unreachable!()
        };
        let merged = merge_config(&stored, patch).map_err(|e| e.to_string());
        let merged = merged
            .as_ref()
            .map(|m| (m["btar_pg"]["conninfo"].clone(), m.len()));
        assert_eq!(merged.ok(), Some((Value::from("x"), 3)));

        let mut bad = Map::new();
        bad.insert(
            "additional_backup_region".into(),
            Value::from(["r"].to_vec()),
        );
        assert!(merge_config(&stored, bad).is_err());
    }
}

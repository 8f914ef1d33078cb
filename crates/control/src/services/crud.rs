//! Create, update, get, list and delete services, and the shapes the API exchanges for them.

use btar_catalog::{EngineKind, NewService, Service, ServiceUpdate};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::UserConfig;
use super::masking::masked;
use crate::{ControlError, ControlPlane, ForkRequest, Result};

/// Aiven's ServiceCreate. With `user_config.service_to_fork_from` it is a fork (Aiven's fork & restore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(
    json!({"service_name": "orders", "service_type": "pg", "cloud": "aws-eu-west-1", "plan": "daily",
        "user_config": {"additional_backup_regions": ["aws-eu-central-1"]}}),
    json!({"service_name": "orders-dr", "cloud": "aws-eu-central-1",
        "user_config": {"service_to_fork_from": "orders", "recovery_target_time": "2026-11-30T06:00:00Z"}})
))]
#[serde(deny_unknown_fields)]
pub struct ServiceCreate {
    /// Aiven calls it `service_name`; `name` is accepted too.
    #[serde(rename = "service_name", alias = "name")]
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")]
    pub name: String,
    /// `pg` or `mysql`; empty means `pg`, or the source's engine for a fork.
    #[serde(default)]
    pub service_type: String,
    /// Home region: a region of the config.
    pub cloud: String,
    /// A plan of the config, or empty (no schedule; for a fork: the source's plan).
    #[serde(default)]
    pub plan: String,
    /// Read by [`UserConfig::parse`] in [`ControlPlane::create_service`], not here: serde would
    /// report only the first unknown key, and without saying it is a `user_config` key.
    #[serde(default = "empty_object")]
    #[schema(value_type = UserConfig)]
    pub user_config: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// A service's state as Aiven reports it. The API lists live services only, and btar registers
/// databases rather than running their hosts, so a shown service is always running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceState {
    Running,
}

/// A service as the API returns it (Aiven's service object, reduced to what btar has).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"service_name": "orders", "service_type": "pg", "cloud_name": "aws-eu-west-1",
    "plan": "daily", "user_config": {"additional_backup_regions": ["aws-eu-central-1"]},
    "create_time": "2026-11-01T09:12:00Z", "update_time": "2026-11-02T10:00:00Z",
    "next_regions_change_at": null, "state": "RUNNING"})))]
pub struct ServiceView {
    pub service_name: String,
    pub service_type: String,
    pub cloud_name: String,
    pub plan: String,
    /// As stored, with any password in the agent settings (`btar_pg.conninfo`) masked.
    pub user_config: UserConfig,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// When `additional_backup_regions` may change next; `null` means now.
    pub next_regions_change_at: Option<DateTime<Utc>>,
    pub state: ServiceState,
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
        let config = UserConfig::parse(std::mem::take(&mut req.user_config))?;
        config.check_no_agents()?;
        self.check_regions(&req.cloud, config.regions(), config.cross_provider())?;
        if let Some(fork) = ForkRequest::from_create(&req, &config)? {
            return self.create_fork(req, fork, config).await;
        }
        let svc = self
            .catalog()
            .create_service(&NewService {
                name: req.name.clone(),
                engine: self.parse_engine(&req.service_type, EngineKind::Pg)?,
                cloud: req.cloud.clone(),
                plan: req.plan.clone(),
                user_config: config.to_value(),
            })
            .await?;
        // The location is created now, explicitly, so the service's `wal-push` finds it before
        // the first backup; an unreachable region leaves that to the first backup.
        self.register_location(&svc.name, &svc.cloud, svc.engine)
            .await;
        if !config.regions().is_empty() {
            self.backup_if_stale(&svc).await;
        }
        self.view(svc)
    }

    /// Changes the plan and/or `user_config` (merged key by key, see [`UserConfig::merged`]).
    /// Adding a region to a service without a backup in the last 24 h starts one at once; removing
    /// a region stops new copies and leaves the existing ones to their retention.
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
        let stored = UserConfig::of(&current)?;
        let merged = user_config.map(|patch| stored.merged(patch)).transpose()?;
        let added: Vec<String> = match &merged {
            None => Vec::new(),
            Some(config) => {
                let added: Vec<String> = config
                    .regions()
                    .iter()
                    .filter(|r| !stored.regions().contains(r))
                    .cloned()
                    .collect();
                // Only new regions are checked: one since dropped from the config can still be
                // removed, and an existing cross-provider region is not re-judged.
                self.check_regions(&current.cloud, &added, config.cross_provider())?;
                added
            }
        };
        let updated = self
            .catalog()
            .update_service(
                name,
                &ServiceUpdate {
                    plan,
                    user_config: merged.as_ref().map(UserConfig::to_value),
                },
            )
            .await?;
        if !added.is_empty() {
            self.backup_if_stale(&updated).await;
        }
        self.view(updated)
    }

    pub async fn get_service_view(&self, name: &str) -> Result<ServiceView> {
        self.view(self.service(name).await?)
    }

    pub async fn list_services(&self) -> Result<Vec<ServiceView>> {
        let services = self.catalog().list_services().await?;
        // One row whose stored user_config no longer parses must not hide every other service.
        Ok(services
            .into_iter()
            .filter_map(|s| {
                let name = s.name.clone();
                self.view(s)
                    .inspect_err(|e| {
                        tracing::warn!(service = %name, error = %e, "service left out of the list")
                    })
                    .ok()
            })
            .collect())
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

    fn view(&self, svc: Service) -> Result<ServiceView> {
        let now = self.catalog().now();
        Ok(ServiceView {
            next_regions_change_at: svc.next_regions_change_at().filter(|t| *t > now),
            service_type: svc.engine.as_str().to_owned(),
            user_config: masked(UserConfig::of(&svc)?),
            service_name: svc.name,
            cloud_name: svc.cloud,
            plan: svc.plan,
            create_time: svc.created_at,
            update_time: svc.updated_at,
            state: ServiceState::Running,
            fork: None,
        })
    }

    fn check_plan(&self, plan: &str) -> Result<()> {
        if !plan.is_empty() {
            self.config()
                .plan(plan)
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// The engine a request names (`service_type`), which this btar must be built with.
    pub(super) fn parse_engine(
        &self,
        service_type: &str,
        default: EngineKind,
    ) -> Result<EngineKind> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_shown_as_aiven_names_it() {
        assert_eq!(
            serde_json::to_value(ServiceState::Running).ok(),
            Some(Value::from("RUNNING"))
        );
    }
}

use btar_engine::EngineKind;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::db::{get, get_opt_time, get_time, ms};
use crate::error::{CatalogError, DbContext, Result};

/// `additional_backup_regions` may change at most once per this many hours per service.
pub const REGIONS_CHANGE_INTERVAL_HOURS: i64 = 24;

const REGIONS_KEY: &str = "additional_backup_regions";

/// The engine column: stored by name, read back through the engine layer's one list of engines.
fn engine_from_column(value: &str) -> Result<EngineKind> {
    value.parse().map_err(|_| CatalogError::Corrupt {
        column: "services.engine",
        value: value.to_owned(),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub engine: EngineKind,
    /// Home region: where the primary location lives.
    pub cloud: String,
    pub plan: String,
    pub user_config: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Last change of `additional_backup_regions`; `None` until the first change after creation.
    pub regions_changed_at: Option<DateTime<Utc>>,
}

impl Service {
    pub fn additional_backup_regions(&self) -> Vec<String> {
        regions_of(&self.user_config)
    }

    /// When `additional_backup_regions` may next change; `None` means now.
    pub fn next_regions_change_at(&self) -> Option<DateTime<Utc>> {
        self.regions_changed_at.map(|t| t + regions_interval())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewService {
    pub name: String,
    pub engine: EngineKind,
    pub cloud: String,
    pub plan: String,
    /// A JSON object; `{}` when there is nothing to configure.
    pub user_config: Value,
}

/// Fields left `None` keep their value. `user_config` replaces the whole object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceUpdate {
    pub plan: Option<String>,
    pub user_config: Option<Value>,
}

fn regions_interval() -> TimeDelta {
    TimeDelta::hours(REGIONS_CHANGE_INTERVAL_HOURS)
}

fn regions_of(config: &Value) -> Vec<String> {
    config
        .get(REGIONS_KEY)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn same_regions(a: &[String], b: &[String]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

/// Checks the parts of `user_config` the catalog relies on and returns it serialised.
fn check_config(config: &Value, cloud: &str) -> Result<String> {
    let Some(object) = config.as_object() else {
        return Err(CatalogError::invalid(
            "user_config",
            "must be a JSON object",
        ));
    };
    if let Some(regions) = object.get(REGIONS_KEY) {
        let Some(regions) = regions.as_array() else {
            return Err(CatalogError::invalid(
                REGIONS_KEY,
                "must be a list of region names",
            ));
        };
        let mut seen = Vec::new();
        for region in regions {
            let Some(region) = region.as_str().filter(|r| !r.is_empty()) else {
                return Err(CatalogError::invalid(
                    REGIONS_KEY,
                    "must be a list of region names",
                ));
            };
            if region == cloud {
                return Err(CatalogError::invalid(
                    REGIONS_KEY,
                    format!("`{region}` is the service's home region"),
                ));
            }
            if seen.contains(&region) {
                return Err(CatalogError::invalid(
                    REGIONS_KEY,
                    format!("`{region}` is listed twice"),
                ));
            }
            seen.push(region);
        }
    }
    Ok(config.to_string())
}

fn service_from_row(row: &AnyRow) -> Result<Service> {
    let engine: String = get(row, "engine")?;
    let config: String = get(row, "user_config")?;
    Ok(Service {
        name: get(row, "name")?,
        engine: engine_from_column(&engine)?,
        cloud: get(row, "cloud")?,
        plan: get(row, "plan")?,
        user_config: serde_json::from_str(&config).map_err(|_| CatalogError::Corrupt {
            column: "services.user_config",
            value: config.clone(),
        })?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        deleted_at: get_opt_time(row, "deleted_at")?,
        regions_changed_at: get_opt_time(row, "regions_changed_at")?,
    })
}

const SERVICE_COLUMNS_SQL: &str = "SELECT name, engine, cloud, plan, user_config, created_at, \
     updated_at, deleted_at, regions_changed_at FROM services";

impl Catalog {
    /// Registers a service. A deleted service of the same name is replaced, keeping its last
    /// regions change so that deleting and re-creating does not sidestep the 24 h rule.
    pub async fn create_service(&self, new: &NewService) -> Result<Service> {
        if new.name.is_empty() || new.name.contains('/') {
            return Err(CatalogError::invalid(
                "service name",
                format!("`{}`", new.name),
            ));
        }
        let config = check_config(&new.user_config, &new.cloud)?;
        let now = ms(self.now());
        let done = sqlx::query(
            "INSERT INTO services (name, engine, cloud, plan, user_config, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (name) DO UPDATE SET engine = excluded.engine, cloud = excluded.cloud,
                 plan = excluded.plan, user_config = excluded.user_config,
                 created_at = excluded.created_at, updated_at = excluded.updated_at,
                 deleted_at = NULL
             WHERE services.deleted_at IS NOT NULL",
        )
        .bind(&new.name)
        .bind(new.engine.as_str())
        .bind(&new.cloud)
        .bind(&new.plan)
        .bind(config)
        .bind(now)
        .execute(&self.pool)
        .await
        .db("create service")?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::ServiceExists(new.name.clone()));
        }
        self.get_service(&new.name).await
    }

    pub async fn get_service(&self, name: &str) -> Result<Service> {
        Ok(self.fetch_service(name).await?.0)
    }

    /// The service, live or deleted (a deleted one keeps its row: its backups outlive it).
    pub async fn get_service_of_record(&self, name: &str) -> Result<Service> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SERVICE_COLUMNS_SQL} WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .db("get service of record")?;
        match row {
            Some(row) => service_from_row(&row),
            None => Err(CatalogError::NotFound {
                what: "service",
                id: name.to_owned(),
            }),
        }
    }

    /// The service and its `user_config` exactly as stored, for compare-and-set.
    async fn fetch_service(&self, name: &str) -> Result<(Service, String)> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SERVICE_COLUMNS_SQL} WHERE name = $1 AND deleted_at IS NULL"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .db("get service")?;
        match row {
            Some(row) => Ok((service_from_row(&row)?, get(&row, "user_config")?)),
            None => Err(CatalogError::NotFound {
                what: "service",
                id: name.to_owned(),
            }),
        }
    }

    /// Live services, by name.
    pub async fn list_services(&self) -> Result<Vec<Service>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SERVICE_COLUMNS_SQL} WHERE deleted_at IS NULL ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await
        .db("list services")?;
        rows.iter().map(service_from_row).collect()
    }

    /// Every service the catalog knows, deleted ones included (their locations still expire by
    /// their retention), by name.
    pub async fn list_all_services(&self) -> Result<Vec<Service>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SERVICE_COLUMNS_SQL} ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await
        .db("list all services")?;
        rows.iter().map(service_from_row).collect()
    }

    /// Applies `update`. If it changes `additional_backup_regions` (as a set) within 24 h of the
    /// previous change, nothing is written and [`CatalogError::RegionsChangeTooSoon`] says when
    /// the next change is allowed.
    pub async fn update_service(&self, name: &str, update: &ServiceUpdate) -> Result<Service> {
        let (current, stored_config) = self.fetch_service(name).await?;
        let now = self.now();
        let plan = update.plan.as_ref().unwrap_or(&current.plan);
        let config = update.user_config.as_ref().unwrap_or(&current.user_config);
        let config_text = check_config(config, &current.cloud)?;
        let mut regions_changed_at = current.regions_changed_at;
        if !same_regions(&regions_of(config), &current.additional_backup_regions()) {
            if let Some(next_allowed_at) = current.next_regions_change_at().filter(|t| now < *t) {
                return Err(CatalogError::RegionsChangeTooSoon {
                    service: name.to_owned(),
                    next_allowed_at,
                });
            }
            regions_changed_at = Some(now);
        }
        // Compare-and-set on what was read, so two concurrent changes cannot both pass the
        // 24 h check or overwrite each other's user_config.
        let done = sqlx::query(
            "UPDATE services SET plan = $1, user_config = $2, updated_at = $3,
                 regions_changed_at = $4
             WHERE name = $5 AND deleted_at IS NULL AND plan = $6 AND user_config = $7",
        )
        .bind(plan)
        .bind(config_text)
        .bind(ms(now))
        .bind(regions_changed_at.map(ms))
        .bind(name)
        .bind(&current.plan)
        .bind(stored_config)
        .execute(&self.pool)
        .await
        .db("update service")?;
        if done.rows_affected() == 0 {
            // Either gone (get_service says NotFound) or changed under us.
            self.get_service(name).await?;
            return Err(CatalogError::Conflict(name.to_owned()));
        }
        self.get_service(name).await
    }

    /// Sets `user_config.additional_backup_regions`, keeping the rest of `user_config`.
    pub async fn update_additional_regions(
        &self,
        name: &str,
        regions: &[String],
    ) -> Result<Service> {
        let current = self.get_service(name).await?;
        let mut config = current
            .user_config
            .as_object()
            .cloned()
            .unwrap_or_else(Map::new);
        config.insert(REGIONS_KEY.to_owned(), Value::from(regions.to_vec()));
        self.update_service(
            name,
            &ServiceUpdate {
                plan: None,
                user_config: Some(Value::Object(config)),
            },
        )
        .await
    }

    /// Marks the service deleted. Its backups index and jobs stay: secondary backups outlive it.
    pub async fn delete_service(&self, name: &str) -> Result<()> {
        let now = ms(self.now());
        let done = sqlx::query(
            "UPDATE services SET deleted_at = $1, updated_at = $1
             WHERE name = $2 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await
        .db("delete service")?;
        if done.rows_affected() == 0 {
            return Err(CatalogError::NotFound {
                what: "service",
                id: name.to_owned(),
            });
        }
        Ok(())
    }
}

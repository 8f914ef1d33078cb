//! Fork & restore (Aiven's `service_to_fork_from`): a new service restored from a backup in a chosen
//! location — primary or secondary — to the latest point or a target time, started in that location's
//! region with the source's plan. The fork archives into its own home (that region) from then on.

use std::path::PathBuf;
use std::time::Duration;

use btar_catalog::{NewService, Role};
use btar_engine::{ArchiveTo, NoProgress, Reached, RestoreRequest, Target};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{ControlError, Result};
use crate::restore::free_port;
use crate::{ControlPlane, UserConfig};

#[derive(Debug, Clone)]
pub struct ForkRequest {
    pub source_service: String,
    /// The region to restore from, which becomes the fork's home region.
    pub cloud: String,
    pub name: String,
    pub recovery_target_time: Option<DateTime<Utc>>,
    /// Defaults to the source's plan.
    pub plan: Option<String>,
    /// Where the fork's PostgreSQL lives; defaults to `forks/<name>` beside the config.
    pub data_dir: Option<PathBuf>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Forked {
    pub service_name: String,
    pub cloud: String,
    pub source_service: String,
    pub source_location: Role,
    pub backup_name: String,
    pub data_dir: String,
    pub conninfo: String,
    pub reached: Option<Reached>,
    pub restored_bytes: u64,
    pub seconds: f64,
}

impl ControlPlane {
    /// Boxed so that the `Send` check of the restore's future happens here, in a concrete context:
    /// inside axum's generic handler bounds rustc cannot prove it for the borrowed callbacks.
    pub fn fork(&self, req: ForkRequest) -> futures::future::BoxFuture<'_, Result<Forked>> {
        Box::pin(self.fork_inner(req))
    }

    async fn fork_inner(&self, req: ForkRequest) -> Result<Forked> {
        let started = std::time::Instant::now();
        btar_format::layout::validate_name(&req.name)?;
        let src = self.catalog().get_service(&req.source_service).await?;
        let role = if req.cloud == src.cloud {
            Role::Primary
        } else if src.additional_backup_regions().contains(&req.cloud)
            || self.location(&src.name, &req.cloud).await.is_ok()
        {
            Role::Secondary
        } else {
            return Err(ControlError::invalid(format!(
                "region `{}` holds no copy of service `{}` (its locations: {})",
                req.cloud,
                src.name,
                std::iter::once(src.cloud.clone())
                    .chain(src.additional_backup_regions())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let loc = self.location(&src.name, &req.cloud).await.map_err(|e| {
            ControlError::invalid(format!(
                "region `{}` holds no usable copy of service `{}`: {e}",
                req.cloud, src.name
            ))
        })?;
        match self.catalog().get_service(&req.name).await {
            Ok(s) if s.deleted_at.is_none() => {
                return Err(btar_catalog::CatalogError::ServiceExists(req.name.clone()).into());
            }
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
        let base = self
            .config()
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let data_dir = req
            .data_dir
            .clone()
            .unwrap_or_else(|| base.join("forks").join(&req.name));
        let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
        let port = match req.port {
            Some(p) => p,
            None => free_port()?,
        };
        let engine = self.engine(&src)?;
        let restore = RestoreRequest {
            target: req
                .recovery_target_time
                .map_or(Target::Latest, Target::Time),
            backup: None,
            data_dir: data_dir.clone(),
            btar: self.config().self_command(),
            archive: Some(ArchiveTo {
                service: req.name.clone(),
                region: Some(req.cloud.clone()),
            }),
            port: Some(port),
            loopback_only: true,
            settings: vec![],
            start: true,
            agent: self.agent_settings(&src),
            parallel: self.config().storage.restore_parallel_files(),
            promote_timeout: Duration::from_secs(3600),
        };
        // The fork archives from its promotion on, before any backup of its own: its location
        // must exist by then, since `wal-push` never creates one.
        self.create_home_location(&req.name, &req.cloud, src.engine)
            .await?;
        // The directories above the fork's (`forks/` beside the config): the restore creates the
        // fork's own directory and gives it to the database user, but one made here by a root-run
        // CLI beside `btar up` must stay the data directory owner's, or the server's next fork
        // cannot be created in it.
        if let Some(parent) = data_dir.parent() {
            crate::owned_dirs::create_dir_all_owned(parent).map_err(|e| {
                btar_engine::EngineError::Failed(format!("creating {}: {e}", parent.display()))
            })?;
        }
        let outcome = self.restore_from(&loc, &restore, &NoProgress).await?;
        let conninfo = outcome.conninfo.clone().unwrap_or_default();
        let plan = req.plan.clone().unwrap_or_else(|| src.plan.clone());
        let user_config = UserConfig {
            service_to_fork_from: Some(src.name.clone()),
            additional_backup_regions: Some(Vec::new()),
            recovery_target_time: req.recovery_target_time,
            agents: outcome
                .agent
                .iter()
                .map(|agent| (engine.kind(), agent.clone()))
                .collect(),
            ..UserConfig::default()
        };
        self.catalog()
            .create_service(&NewService {
                name: req.name.clone(),
                engine: src.engine,
                cloud: req.cloud.clone(),
                plan,
                user_config: user_config.to_value(),
            })
            .await?;
        let _ = self
            .catalog()
            .append_event(
                Some(&req.name),
                "forked",
                &format!(
                    "forked from {} ({} location {}, backup {})",
                    src.name,
                    role.as_str(),
                    req.cloud,
                    outcome.backup
                ),
            )
            .await;
        Ok(Forked {
            service_name: req.name,
            cloud: req.cloud,
            source_service: src.name,
            source_location: role,
            backup_name: outcome.backup,
            data_dir: outcome.data_dir,
            conninfo,
            reached: outcome.reached,
            restored_bytes: outcome.bytes,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

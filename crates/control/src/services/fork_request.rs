//! A create request whose `user_config.service_to_fork_from` is set is a fork (Aiven's fork &
//! restore). Everything that can be checked without the catalog is checked here, so that a bad
//! request costs no restore.

use btar_catalog::CatalogError;

use super::{ServiceCreate, ServiceView, UserConfig};
use crate::{ControlError, ControlPlane, ForkRequest, Result};

impl ForkRequest {
    /// The fork a create request asks for, or `None` for a plain service.
    pub(super) fn from_create(req: &ServiceCreate, config: &UserConfig) -> Result<Option<Self>> {
        let Some(source) = &config.service_to_fork_from else {
            return match config.fork_keys_set().first() {
                Some(key) => Err(ControlError::invalid(format!(
                    "user_config.{key} is only valid with user_config.service_to_fork_from"
                ))),
                None => Ok(None),
            };
        };
        if source.is_empty() {
            return Err(ControlError::invalid(
                "user_config.service_to_fork_from is empty",
            ));
        }
        btar_format::layout::validate_name(source)?;
        // Single project: the source project is checked for shape and otherwise ignored.
        if let Some(project) = &config.project_to_fork_from {
            btar_format::layout::validate_name(project)?;
        }
        Ok(Some(ForkRequest {
            source_service: source.clone(),
            cloud: req.cloud.clone(),
            name: req.name.clone(),
            recovery_target_time: config.recovery_target_time,
            plan: (!req.plan.is_empty()).then(|| req.plan.clone()),
            data_dir: config.fork_data_dir.clone(),
            port: config.fork_port,
        }))
    }
}

impl ControlPlane {
    pub(super) async fn create_fork(
        &self,
        req: ServiceCreate,
        fork: ForkRequest,
        config: UserConfig,
    ) -> Result<ServiceView> {
        let source = &fork.source_service;
        // The source is named in the body, not the path: a missing one is a bad request.
        let src = match self.service(source).await {
            Ok(s) => s,
            Err(ControlError::Catalog(e)) if e.is_not_found() => {
                return Err(ControlError::invalid(format!(
                    "user_config.service_to_fork_from: service `{source}` not found"
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
        let forked = self.fork(fork).await?;
        let forked = serde_json::to_value(&forked).ok();
        let mut view = if config.regions().is_empty() {
            self.get_service_view(&req.name).await?
        } else {
            // The fork is registered without regions; this is its first change, allowed at once.
            let patch = UserConfig {
                additional_backup_regions: config.additional_backup_regions,
                allow_cross_provider: config.allow_cross_provider,
                ..UserConfig::default()
            };
            self.update_service(&req.name, None, Some(patch.to_value()))
                .await?
        };
        view.fork = forked;
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(config: serde_json::Value) -> Result<Option<ForkRequest>> {
        let req = ServiceCreate {
            name: "f".into(),
            service_type: String::new(),
            cloud: "b".into(),
            plan: String::new(),
            user_config: config.clone(),
        };
        ForkRequest::from_create(&req, &UserConfig::parse(config)?)
    }

    #[test]
    fn fork_requests_come_from_user_config() {
        let fork = request(json!({
            "service_to_fork_from": "svc1",
            "recovery_target_time": "2025-01-01T00:00:00Z",
            "fork_port": 5439,
            "fork_data_dir": "/forks/f",
        }));
        let fork = fork.ok().flatten();
        assert_eq!(
            fork.as_ref().map(|f| f.source_service.as_str()),
            Some("svc1")
        );
        assert_eq!(fork.as_ref().and_then(|f| f.port), Some(5439));
        assert_eq!(
            fork.and_then(|f| f.recovery_target_time)
                .map(|t| t.to_rfc3339()),
            Some("2025-01-01T00:00:00+00:00".into())
        );
        assert!(matches!(request(json!({})), Ok(None)));
        let err = |c| request(c).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(json!({"fork_port": 5439})).contains("only valid with"));
        assert!(err(json!({"service_to_fork_from": ""})).contains("empty"));
        assert!(err(json!({"service_to_fork_from": "bad name"})).contains("bad name"));
    }
}

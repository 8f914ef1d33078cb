//! The region rules of DESIGN.md ("Rules from the reference systems") for additional backup
//! regions. The config file and the API apply the same rules through [`check_backup_regions`]; the
//! once-per-24 h change rule lives in the catalog, so that it holds across processes.

use btar_catalog::{Role, Service};
use btar_region::Provider;
use chrono::TimeDelta;

use crate::{ControlError, ControlPlane, Result};

/// A backup at most this old counts as recent when a region is enabled (no new full backup needed).
const RECENT_BACKUP_HOURS: i64 = 24;

/// Why a list of additional backup regions is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegionRuleError {
    #[error(
        "additional backup region `{0}` is the service's home region; a copy must live in another \
         region"
    )]
    HomeRegion(String),
    #[error("additional backup region `{0}` is listed twice")]
    Twice(String),
    #[error(
        "additional backup region `{region}` is on provider `{provider}` but the home region \
         `{home}` is on `{home_provider}`; set allow_cross_provider to true to copy across providers"
    )]
    OtherProvider {
        region: String,
        provider: String,
        home: String,
        home_provider: String,
    },
}

/// Each destination is a region other than the home region, listed once, on the home region's
/// provider unless the service opts out. The caller looks the regions up, as each reports an
/// unknown region its own way.
pub(crate) fn check_backup_regions<'a>(
    home: (&str, &Provider),
    regions: impl IntoIterator<Item = (&'a str, &'a Provider)>,
    cross_provider: bool,
) -> Result<(), RegionRuleError> {
    let (cloud, home_provider) = home;
    let mut seen = Vec::new();
    for (region, provider) in regions {
        if region == cloud {
            return Err(RegionRuleError::HomeRegion(region.to_owned()));
        }
        if seen.contains(&region) {
            return Err(RegionRuleError::Twice(region.to_owned()));
        }
        seen.push(region);
        if provider != home_provider && !cross_provider {
            return Err(RegionRuleError::OtherProvider {
                region: region.to_owned(),
                provider: provider.as_str().to_owned(),
                home: cloud.to_owned(),
                home_provider: home_provider.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

impl ControlPlane {
    pub(super) fn known_region(&self, name: &str) -> Result<&btar_region::RegionConfig> {
        btar_region::validate_region_name(name).map_err(ControlError::Invalid)?;
        // An unknown region is the client's mistake (400), not a broken config.
        self.config()
            .region(name)
            .map_err(|e| ControlError::Invalid(e.to_string()))
    }

    /// [`check_backup_regions`] for a request; every region must be configured here.
    pub(super) fn check_regions(
        &self,
        cloud: &str,
        regions: &[String],
        cross_provider: bool,
    ) -> Result<()> {
        if regions.is_empty() {
            return Ok(());
        }
        let home = self.known_region(cloud)?.provider();
        let providers = regions
            .iter()
            .map(|r| Ok(self.known_region(r)?.provider()))
            .collect::<Result<Vec<_>>>()?;
        let destinations = regions.iter().map(String::as_str).zip(&providers);
        check_backup_regions((cloud, &home), destinations, cross_provider)
            .map_err(|e| ControlError::invalid(e.to_string()))
    }

    /// DESIGN.md: enabling a region on a service without a valid backup in the last 24 h starts a
    /// full backup at once. The enabling change is already stored, so a failure here is logged
    /// rather than reported: the next scheduled backup covers it.
    pub(super) async fn backup_if_stale(&self, svc: &Service) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_in_order() {
        let check = |regions: &[(&str, Provider)], cross| {
            let destinations = regions.iter().map(|(r, p)| (*r, p));
            check_backup_regions(("a", &Provider::Aws), destinations, cross)
        };
        assert_eq!(check(&[("b", Provider::Aws)], false), Ok(()));
        assert_eq!(
            check(&[("a", Provider::Aws)], true),
            Err(RegionRuleError::HomeRegion("a".into()))
        );
        assert_eq!(
            check(&[("b", Provider::Aws), ("b", Provider::Aws)], true),
            Err(RegionRuleError::Twice("b".into()))
        );
        let err = check(&[("g", Provider::Google)], false).map_err(|e| e.to_string());
        assert!(
            err.as_ref()
                .is_err_and(|e| e.contains("allow_cross_provider") && e.contains("google")),
            "{err:?}"
        );
        assert_eq!(check(&[("g", Provider::Google)], true), Ok(()));
    }
}

//! The locations of a service (DESIGN.md invariant 8, "kept means visible"): its home region, its
//! current additional backup regions, and every other region still holding its backups — a region
//! removed from `additional_backup_regions`, or any region of a deleted service — until retention
//! removes their last backup there.

mod open;

use std::collections::BTreeSet;

use btar_catalog::{CopyJobFilter, Role, Service};

use crate::ControlPlane;
use crate::error::Result;

pub(crate) const REGION_REMOVED: &str =
    "region removed from additional_backup_regions; kept until retention";
pub(crate) const SERVICE_DELETED: &str = "service deleted; kept until retention";

/// One location of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub region: String,
    pub role: Role,
    /// Whether new backups or copies still arrive here: the newest backup of such a location is never
    /// expired, while a location that no longer receives any expires all of its backups in time.
    pub receiving: bool,
    /// Why nothing new arrives here (Aiven's `pause_reason`); `None` while receiving.
    pub pause_reason: Option<String>,
}

impl ControlPlane {
    /// Home first, then the current additional regions in their configured order, then regions the
    /// catalog's backups index or copy jobs name (by name). The index and the jobs are how a region
    /// no longer configured is remembered; the stores stay the truth for what each one holds.
    pub(crate) async fn locations_of(&self, svc: &Service) -> Result<Vec<Place>> {
        let deleted = svc.deleted_at.is_some();
        let paused = |configured: bool| match (deleted, configured) {
            (true, _) => Some(SERVICE_DELETED.to_string()),
            (false, false) => Some(REGION_REMOVED.to_string()),
            (false, true) => None,
        };
        let mut places = vec![Place {
            region: svc.cloud.clone(),
            role: Role::Primary,
            receiving: !deleted,
            pause_reason: deleted.then(|| SERVICE_DELETED.to_string()),
        }];
        let current = svc.additional_backup_regions();
        for r in &current {
            places.push(Place {
                region: r.clone(),
                role: Role::Secondary,
                receiving: !deleted,
                pause_reason: paused(true),
            });
        }
        let mut former = BTreeSet::new();
        for b in self.catalog().list_backups(&svc.name, None).await? {
            former.insert(b.region);
        }
        let jobs = self
            .catalog()
            .list_copy_jobs(&CopyJobFilter {
                service: Some(svc.name.clone()),
                ..Default::default()
            })
            .await?;
        former.extend(jobs.into_iter().map(|j| j.destination_region));
        for r in former {
            if r != svc.cloud && !current.contains(&r) {
                places.push(Place {
                    region: r,
                    role: Role::Secondary,
                    receiving: false,
                    pause_reason: paused(false),
                });
            }
        }
        Ok(places)
    }
}

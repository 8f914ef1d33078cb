//! Runs one location's retention pass: sweeps staging files, lists what the location holds, asks
//! [`plan`] what goes and applies it — manifests first, then logs oldest first, then chunks — so a
//! pass killed anywhere leaves every remaining backup whole and the archive without holes. What it
//! did not get to waits for the next pass that expires a backup (the plan collects only then).

use btar_engine_pg::backup::PgMeta;
use btar_format::{FormatError, Location, Manifest, layout};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use super::plan::{
    self, BackupFacts, ChunkFact, FirstLog, ListedBackup, LogFact, Policy, RetentionPlan,
};
use super::{Expired, STAGING_GRACE};
use crate::error::Result;

/// Expires what `policy` lets go in `loc` at `now` (see [`plan::plan`]).
pub async fn expire_location(
    loc: &Location,
    policy: Policy,
    now: DateTime<Utc>,
) -> Result<Expired> {
    let mut out = Expired {
        service: loc.service().into(),
        region: loc.region().name().into(),
        ..Default::default()
    };
    // Best effort: a staging file that cannot be removed (another user's) must not stop retention.
    out.staging = loc
        .region()
        .sweep_staging(&layout::service_prefix(loc.service()), STAGING_GRACE)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(region = loc.region().name(), error = %e, "staging files not swept");
            0
        });
    let backups = list_backups(loc).await?;
    let needs = plan::needs(&backups, policy, now);
    let logs = if needs.logs {
        list_logs(loc).await?
    } else {
        Vec::new()
    };
    let chunks = if needs.chunks {
        list_chunks(loc).await?
    } else {
        Vec::new()
    };
    let plan = plan::plan(&backups, &logs, &chunks, policy, now);
    apply(loc, &plan, &mut out).await?;
    Ok(out)
}

async fn apply(loc: &Location, plan: &RetentionPlan, out: &mut Expired) -> Result<()> {
    let (service, region) = (loc.service(), loc.region().name());
    for k in &plan.kept {
        tracing::debug!(service, region, backup = %k.name, why = ?k.reason, "retention keeps");
    }
    for b in &plan.backups {
        loc.delete_manifest(&b.name).await?;
        tracing::info!(service, region, backup = %b.name, reason = %b.reason, "retention expired");
        out.backups.push(b.name.clone());
    }
    for l in &plan.logs {
        loc.region()
            .delete(&loc.log_key(&l.timeline, &l.name))
            .await?;
        let (timeline, log, reason) = (&l.timeline, &l.name, &l.reason);
        tracing::debug!(service, region, timeline, log, %reason, "retention deleted log");
        out.logs += 1;
    }
    if !plan.chunks_held_by.is_empty() {
        let damaged = &plan.chunks_held_by;
        tracing::info!(
            service,
            region,
            ?damaged,
            "retention collects no chunk: damaged manifests"
        );
    }
    for c in &plan.chunks {
        loc.region().delete(&c.key).await?;
        let (chunk, reason) = (&c.key, &c.reason);
        tracing::debug!(service, region, chunk, %reason, "retention deleted chunk");
        out.chunks += 1;
    }
    Ok(())
}

/// The location's backups, oldest first. A manifest gone since the listing (another pass, a
/// deletion by hand) is left out, so it protects no older backup as the newest.
async fn list_backups(loc: &Location) -> Result<Vec<ListedBackup>> {
    let mut out = Vec::new();
    for name in loc.list_backups().await? {
        let m = match loc.read_manifest(&name).await {
            Ok(m) => m,
            Err(FormatError::BackupNotFound { .. }) => continue,
            Err(
                e @ (FormatError::Damaged { .. }
                | FormatError::WrongKeyOrTampered { .. }
                | FormatError::UnsupportedVersion { .. }),
            ) => {
                tracing::warn!(backup = %name, error = %e, "retention keeps a damaged backup");
                out.push(ListedBackup::Damaged { name });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        out.push(ListedBackup::Sound(BackupFacts {
            first_log: first_log_of(&m).map(|(position, started_at)| FirstLog {
                position,
                started_at,
            }),
            chunks: m.chunk_ids().copied().collect(),
            completed_at: m.completed_at,
            name,
        }));
    }
    Ok(out)
}

async fn list_logs(loc: &Location) -> Result<Vec<LogFact>> {
    Ok(loc
        .list_logs()
        .map_ok(|l| LogFact {
            position: log_position(&l.name),
            timeline: l.timeline,
            name: l.name,
            last_modified: l.last_modified,
        })
        .try_collect()
        .await?)
}

/// Objects under `chunks/` that are not chunk keys are no chunks, and never deleted.
async fn list_chunks(loc: &Location) -> Result<Vec<ChunkFact>> {
    let chunks_prefix = layout::chunks_prefix(loc.service());
    let mut listing = loc.region().list(&chunks_prefix);
    let mut out = Vec::new();
    while let Some(o) = listing.try_next().await? {
        if let Some(id) = layout::parse_chunk_key(&o.key) {
            out.push(ChunkFact {
                key: o.key,
                id,
                last_modified: o.last_modified,
            });
        }
    }
    Ok(out)
}

// ---- Engine-specific: where logs and backups sit in the log sequence ----
//
// The only place retention knows how an engine names its logs. Written for PostgreSQL for now;
// meant to become a call on the engine (one trait method each), leaving the plan untouched.

/// A log file's place in the log sequence, or `None` for a file outside it. PostgreSQL: a segment
/// is named by 24 upper-case hex digits, timeline (8) then log id and segment (8 each); the
/// position is the last 16 read as one number — segments of any timeline on one scale, ordered as
/// their names are.
fn log_position(name: &str) -> Option<u64> {
    let is_segment =
        name.len() == 24 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'));
    if !is_segment {
        return None;
    }
    u64::from_str_radix(&name[8..], 16).ok()
}

/// The position of the first log a backup's restore needs, and when the backup started (`None`
/// when its manifest does not say). PostgreSQL: `start_wal` and `backup_start_time` of its
/// [`PgMeta`].
fn first_log_of(m: &Manifest) -> Option<(u64, DateTime<Utc>)> {
    let meta = PgMeta::of(m)?;
    Some((log_position(&meta.start_wal)?, meta.backup_start_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_positions_order_like_their_names() {
        let names = [
            "000000010000000000000001",
            "0000000100000000000000FF",
            "000000010000000100000000",
            "000000020000000100000001",
            "0000000100000002000000A0",
        ];
        for w in names.windows(2) {
            let (a, b) = (log_position(w[0]).unwrap(), log_position(w[1]).unwrap());
            assert_eq!(a.cmp(&b), w[0][8..].cmp(&w[1][8..]), "{w:?}");
        }
        assert_eq!(
            log_position("0000000100000002000000A0"),
            Some(2 << 32 | 0xA0)
        );
    }

    #[test]
    fn a_backup_starts_at_its_start_wal() {
        let started = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let meta = PgMeta {
            pg_version: 170000,
            system_identifier: "1".into(),
            timeline: 1,
            start_lsn: "3/4000028".into(),
            stop_lsn: "3/4000100".into(),
            start_wal: "000000010000000300000004".into(),
            stop_wal: "000000010000000300000004".into(),
            wal_segment_size: 16 << 20,
            backup_start_time: started,
            backup_stop_time: started,
            tablespace_map: None,
        };
        let mut m = Manifest {
            format_version: btar_format::FORMAT_VERSION,
            service: "s".into(),
            backup_name: "b".into(),
            engine: "pg".into(),
            started_at: started,
            completed_at: started,
            chunk_size: 1 << 20,
            files: vec![],
            engine_meta: serde_json::to_value(&meta).unwrap(),
            stats: Default::default(),
            origin_region: "home".into(),
            copied_from: None,
        };
        assert_eq!(first_log_of(&m), Some((3 << 32 | 4, started)));
        m.engine_meta = serde_json::Value::Null;
        assert_eq!(first_log_of(&m), None);
    }

    #[test]
    fn files_outside_the_sequence_have_no_position() {
        for name in [
            "00000002.history",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000003.partial",
            "0000000100000000000000+3",
            "0000000100000000000000a3",
            "",
        ] {
            assert_eq!(log_position(name), None, "{name}");
        }
    }
}

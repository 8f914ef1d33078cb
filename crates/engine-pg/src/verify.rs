//! WAL continuity for `btar verify`: a location whose archive has a hole cannot recover past it, and
//! a backup whose own start..stop range has one cannot be restored at all — yet every object in it
//! may be sound, so the format's object checks alone report "no damage".

use std::collections::HashSet;

use btar_format::Location;
use btar_format::verify::Problem;

use crate::archive::ArchiveIndex;
use crate::backup::PgMeta;
use crate::error::PgError;
use crate::wal;

/// Every run of missing WAL segments from each backup's start to the newest archived segment, per
/// timeline path, each reported once: as making a backup unrestorable when it lies inside that
/// backup's own start..stop range, otherwise as where point-in-time recovery stops. With `only`, the
/// check covers that backup alone. Manifests that cannot be read are skipped here: the object check
/// reports them.
pub async fn wal_gaps(loc: &Location, only: Option<&str>) -> Result<Vec<Problem>, PgError> {
    let mut backups = Vec::new();
    for name in loc.list_backups().await? {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        if let Ok(m) = loc.read_manifest(&name).await
            && let Some(meta) = PgMeta::of(&m)
        {
            backups.push((name, meta));
        }
    }
    let seg_size = backups
        .last()
        .map_or(wal::DEFAULT_SEGMENT_SIZE, |(_, m)| m.wal_segment_size);
    let index = ArchiveIndex::load(loc, seg_size).await?;
    let range = |meta: &PgMeta| {
        wal::segment_number(&meta.start_wal, seg_size)
            .zip(wal::segment_number(&meta.stop_wal, seg_size))
    };
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for (name, meta) in &backups {
        for run in index.gaps(&meta.start_wal) {
            if !seen.insert(run.first.clone()) {
                continue;
            }
            let first = wal::segment_number(&run.first, seg_size);
            let broken = backups.iter().find(|(_, m)| {
                range(m)
                    .zip(first)
                    .is_some_and(|((start, stop), f)| start <= f && f <= stop)
            });
            let effect = match broken {
                Some((b, _)) => {
                    format!("backup {b} cannot be restored (its own WAL is incomplete)")
                }
                None => {
                    let until = run
                        .reachable_until
                        .map_or_else(|| "its end".to_string(), |t| t.to_rfc3339());
                    format!("recovery from backup {name} or later stops at {until}")
                }
            };
            problems.push(Problem {
                key: loc.log_key(&run.first[..8], &run.first),
                reason: format!(
                    "WAL gap: {} segment(s) missing, {} to {}; {effect}",
                    run.count, run.first, run.last
                ),
            });
        }
    }
    Ok(problems)
}

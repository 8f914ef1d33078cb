//! Verifying format v2 objects: every pack (those the checked backups name, or every pack of the
//! location) is read whole, its index opened and checked against the pack id, and every frame opened
//! and its blocks checked; each v2 manifest's extents must resolve to blocks adding up to each file.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};

use crate::error::FormatError;
use crate::layout;
use crate::location::Location;
use crate::manifest::Manifest;
use crate::pack::known::IndexCache;
use crate::pack::{PackId, PackIndex};
use crate::reader::{pack_table, resolve};

use super::{Problem, VerifyReport};

/// What reading one pack found: bytes read, its index if that opened, the damage if any.
type PackCheck = (u64, Option<PackIndex>, Option<String>);

/// Reads a pack and its index; `Ok(None)` when either is absent.
async fn check_pack(loc: &Location, id: PackId) -> Result<Option<PackCheck>, FormatError> {
    let index = match loc.region().get(&loc.pack_index_key(&id)).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let pack = match loc.region().get(&loc.pack_key(&id)).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let n = (index.len() + pack.len()) as u64;
    let l = loc.clone();
    tokio::task::spawn_blocking(move || {
        let idx = match l.open_pack_index(&id, &index) {
            Ok(i) => i,
            Err(e) => return Some((n, None, Some(e.to_string()))),
        };
        let damage = check_frames(&l, &id, &idx, &pack)
            .err()
            .map(|e| e.to_string());
        Some((n, Some(idx), damage))
    })
    .await
    .map_err(|e| FormatError::Task(e.to_string()))
}

/// The pack's length against its index, then every frame opened and every block checked.
fn check_frames(
    l: &Location,
    id: &PackId,
    idx: &PackIndex,
    pack: &[u8],
) -> Result<(), FormatError> {
    if idx.pack_len() != pack.len() as u64 {
        return Err(l.damaged_at(
            l.pack_key(id),
            &format!(
                "pack is {} bytes, its index says {}",
                pack.len(),
                idx.pack_len()
            ),
        ));
    }
    let key = l.pack_key(id);
    for e in &idx.frames {
        let sealed = &pack[e.offset as usize..e.end() as usize];
        l.open_frame(&key, e, sealed)?;
    }
    Ok(())
}

pub(super) async fn check(
    loc: &Location,
    one_backup: bool,
    mut referenced: HashMap<PackId, String>,
    manifests: &[Manifest],
    parallel: usize,
    report: &mut VerifyReport,
) -> Result<(), FormatError> {
    let ids: Vec<PackId> = if one_backup {
        referenced.keys().copied().collect()
    } else {
        let mut ids: Vec<PackId> = loc
            .region()
            .list(&layout::packs_prefix(loc.service()))
            .map_err(FormatError::from)
            .try_filter_map(|o| async move { Ok(layout::parse_pack_key(&o.key)) })
            .try_collect()
            .await?;
        ids.sort();
        ids.dedup();
        ids
    };
    // Indexes opened while checking packs serve the extents check below without fetching them again.
    let cache = IndexCache::new(loc.clone());
    let mut results = futures::stream::iter(ids)
        .map(|id| async move { check_pack(loc, id).await.map(|r| (id, r)) })
        .buffer_unordered(parallel.clamp(1, 4));
    while let Some((id, outcome)) = results.try_next().await? {
        match outcome {
            Some((n, index, damage)) => {
                report.packs_checked += 1;
                report.bytes_checked += n;
                referenced.remove(&id);
                if let Some(index) = index {
                    cache.insert(id, index);
                }
                if let Some(reason) = damage {
                    report.damaged.push(Problem {
                        key: loc.pack_key(&id),
                        reason,
                    });
                }
            }
            None => {
                // Half a pack (the index never written) is an interrupted upload: only missing if
                // a manifest names it.
            }
        }
    }
    for (id, b) in referenced {
        report.missing.push(Problem {
            key: loc.pack_key(&id),
            reason: format!("referenced by backup {b} but absent (pack or index)"),
        });
    }
    // Extents that point past their packs' blocks, or that do not add up to the file.
    for m in manifests {
        let packs = match pack_table(loc, &cache, m).await {
            Ok(p) => p,
            Err(FormatError::Region(e)) if !e.is_not_found() => return Err(e.into()),
            Err(_) => continue, // its missing or damaged packs are reported above
        };
        for f in &m.files {
            if let Err(e) = resolve(loc, m, f, &packs) {
                report.damaged.push(Problem {
                    key: layout::manifest(loc.service(), &m.backup_name),
                    reason: e.to_string(),
                });
                break;
            }
        }
    }
    report.missing.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(())
}

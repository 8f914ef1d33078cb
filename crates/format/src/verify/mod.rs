//! `btar verify`: read every object of a location (or of one backup), check seals, hashes and
//! references, and report each damaged or missing object.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::chunk::ChunkId;
use crate::error::FormatError;
use crate::layout;
use crate::location::Location;
use crate::manifest::Manifest;
use crate::pack::PackId;

mod packs;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub region: String,
    pub service: String,
    pub backups_checked: u64,
    pub chunks_checked: u64,
    /// Format v2 packs read (index and every frame).
    pub packs_checked: u64,
    pub logs_checked: u64,
    pub bytes_checked: u64,
    pub damaged: Vec<Problem>,
    pub missing: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.missing.is_empty()
    }
}

/// Reads and checks a location. `backup` limits the check to one backup and the chunks it names;
/// otherwise every manifest, chunk and log object is read. Damage is reported, not returned as an error;
/// an error means the check itself could not run (store down, wrong key).
pub async fn verify(
    loc: &Location,
    backup: Option<&str>,
    parallel: usize,
) -> Result<VerifyReport, FormatError> {
    let mut report = VerifyReport {
        region: loc.region().name().into(),
        service: loc.service().into(),
        ..Default::default()
    };
    let backups = match backup {
        Some(b) => vec![b.to_string()],
        None => loc.list_backups().await?,
    };
    // Which backup first references each chunk, to name it in "missing" reports.
    let mut referenced: HashMap<ChunkId, String> = HashMap::new();
    let mut packs_referenced: HashMap<PackId, String> = HashMap::new();
    let mut packed: Vec<Manifest> = Vec::new();
    for b in &backups {
        match loc.read_manifest(b).await {
            Ok(m) => {
                report.backups_checked += 1;
                for id in m.chunk_ids() {
                    referenced.entry(*id).or_insert_with(|| b.clone());
                }
                for id in &m.packs {
                    packs_referenced.entry(*id).or_insert_with(|| b.clone());
                }
                if m.is_packed() {
                    packed.push(m);
                }
            }
            Err(FormatError::Region(e)) => return Err(FormatError::Region(e)),
            Err(FormatError::BackupNotFound { .. }) if backup.is_some() => {
                return Err(FormatError::BackupNotFound {
                    region: loc.region().name().into(),
                    service: loc.service().into(),
                    backup: b.clone(),
                });
            }
            Err(e) => report.damaged.push(Problem {
                key: layout::manifest(loc.service(), b),
                reason: e.to_string(),
            }),
        }
    }

    let check_chunk = |id: ChunkId| async move {
        match loc.get_sealed_chunk(&id).await {
            Ok(sealed) => {
                let n = sealed.len() as u64;
                let l = loc.clone();
                let r = tokio::task::spawn_blocking(move || l.open_chunk(&id, &sealed).map(|_| ()))
                    .await
                    .map_err(|e| FormatError::Task(e.to_string()))?;
                Ok::<_, FormatError>((id, n, Some(r)))
            }
            Err(FormatError::Region(e)) if e.is_not_found() => Ok((id, 0, None)),
            Err(e) => Err(e),
        }
    };

    let ids: Vec<ChunkId> = if backup.is_some() {
        referenced.keys().copied().collect()
    } else {
        loc.region()
            .list(&layout::chunks_prefix(loc.service()))
            .map_err(FormatError::from)
            .try_filter_map(|o| async move { Ok(layout::parse_chunk_key(&o.key)) })
            .try_collect()
            .await?
    };
    let mut results = futures::stream::iter(ids)
        .map(check_chunk)
        .buffer_unordered(parallel.max(1));
    while let Some((id, n, outcome)) = results.try_next().await? {
        let key = loc.chunk_key(&id);
        match outcome {
            Some(Ok(())) => {
                report.chunks_checked += 1;
                report.bytes_checked += n;
                referenced.remove(&id);
            }
            Some(Err(e)) => {
                report.chunks_checked += 1;
                referenced.remove(&id);
                report.damaged.push(Problem {
                    key,
                    reason: e.to_string(),
                });
            }
            None => {} // reported below as missing if referenced
        }
    }
    let mut missing: Vec<Problem> = referenced
        .into_iter()
        .map(|(id, b)| Problem {
            key: loc.chunk_key(&id),
            reason: format!("referenced by backup {b} but absent"),
        })
        .collect();
    missing.sort_by(|a, b| a.key.cmp(&b.key));
    report.missing = missing;

    packs::check(
        loc,
        backup.is_some(),
        packs_referenced,
        &packed,
        parallel,
        &mut report,
    )
    .await?;

    if backup.is_none() {
        let logs: Vec<_> = loc.list_logs().try_collect().await?;
        let mut results = futures::stream::iter(logs)
            .map(|o| async move {
                let r = loc.check_log(&o.timeline, &o.name).await;
                (o, r)
            })
            .buffer_unordered(parallel.max(1));
        while let Some((o, r)) = results.next().await {
            let key = loc.log_key(&o.timeline, &o.name);
            match r {
                Ok(Some(_)) => {
                    report.logs_checked += 1;
                    report.bytes_checked += o.size;
                }
                Ok(None) => report.missing.push(Problem {
                    key,
                    reason: "listed but vanished".into(),
                }),
                Err(FormatError::Region(e)) => return Err(FormatError::Region(e)),
                Err(e) => {
                    report.logs_checked += 1;
                    report.damaged.push(Problem {
                        key,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
    report.damaged.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(report)
}

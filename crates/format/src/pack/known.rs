//! What a location already holds, for dedupe: the blocks of the packs its newest v2 manifest names
//! (a backup's parent, or a copy's destination), and a cache of opened pack indexes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};

use crate::chunk::ChunkId;
use crate::error::FormatError;
use crate::layout;
use crate::location::Location;
use crate::manifest::Manifest;

use super::index::{PackId, PackIndex};

/// Opened pack indexes of one location, each fetched once — also when several files of a restore
/// ask for the same index at the same moment (they wait for the one fetch).
#[derive(Debug, Clone)]
pub struct IndexCache {
    loc: Location,
    map: Arc<Mutex<HashMap<PackId, Slot>>>,
}

type Slot = Arc<tokio::sync::OnceCell<Arc<PackIndex>>>;

impl IndexCache {
    pub fn new(loc: Location) -> Self {
        Self {
            loc,
            map: Arc::default(),
        }
    }

    fn slot(&self, id: &PackId) -> Slot {
        match self.map.lock() {
            Ok(mut m) => m.entry(*id).or_default().clone(),
            Err(_) => Slot::default(),
        }
    }

    pub async fn get(&self, id: &PackId) -> Result<Arc<PackIndex>, FormatError> {
        let slot = self.slot(id);
        let idx = slot
            .get_or_try_init(|| async {
                Ok::<_, FormatError>(Arc::new(self.loc.get_pack_index(id).await?))
            })
            .await?;
        Ok(idx.clone())
    }

    /// Keeps an index opened elsewhere (verify reads every pack whole anyway).
    pub fn insert(&self, id: PackId, index: PackIndex) {
        let _ = self.slot(&id).set(Arc::new(index));
    }

    /// The indexes of every pack of `m`, fetched `parallel` at a time, in table order.
    pub async fn all_of(
        &self,
        m: &Manifest,
        parallel: usize,
    ) -> Result<Vec<Arc<PackIndex>>, FormatError> {
        // Boxed futures, not a stream of borrowing closures: the latter is not provably `Send` for
        // every lifetime, which restores spawned on the runtime need.
        type Get<'a> = futures::future::BoxFuture<'a, Result<Arc<PackIndex>, FormatError>>;
        let gets: Vec<Get<'_>> = m
            .packs
            .iter()
            .map(|id| Box::pin(self.get(id)) as Get<'_>)
            .collect();
        futures::stream::iter(gets)
            .buffered(parallel.max(1))
            .try_collect()
            .await
    }
}

/// How recent a pack no manifest names must be for a new backup or copy to reuse it: half the
/// retention grace period (48 h) before unreferenced packs may be collected.
pub const ORPHAN_REUSE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Blocks known present in a location: id → (pack, block number).
#[derive(Debug, Default)]
pub struct KnownBlocks(HashMap<ChunkId, (PackId, u32)>);

impl KnownBlocks {
    pub fn get(&self, id: &ChunkId) -> Option<(PackId, u32)> {
        self.0.get(id).copied()
    }

    /// Adds the blocks of one pack; a block already known keeps its place.
    pub fn add_pack(&mut self, id: PackId, index: &PackIndex) {
        for (n, block) in index.blocks() {
            self.0.entry(block).or_insert((id, n));
        }
    }

    /// The blocks of the packs `ids`.
    pub async fn of_packs(
        cache: &IndexCache,
        ids: impl IntoIterator<Item = PackId>,
    ) -> Result<Self, FormatError> {
        let mut known = Self::default();
        for id in ids {
            known.add_pack(id, &*cache.get(&id).await?);
        }
        Ok(known)
    }

    /// The blocks of every pack `m` names.
    pub async fn of_manifest(cache: &IndexCache, m: &Manifest) -> Result<Self, FormatError> {
        let mut map = HashMap::new();
        for (id, idx) in m.packs.iter().zip(cache.all_of(m, 8).await?) {
            for (n, block) in idx.blocks() {
                map.entry(block).or_insert((*id, n));
            }
        }
        Ok(Self(map))
    }

    /// What a new backup or copy into `loc` may reference: the blocks of the location's newest
    /// readable v2 backup, and of the packs a killed backup or copy left behind recently (so a
    /// rerun resumes instead of shipping everything again). Unreadable manifests and indexes are
    /// skipped: dedupe is an optimisation, a backup never depends on it.
    pub async fn newest(loc: &Location, cache: &IndexCache) -> Result<Self, FormatError> {
        let mut known = Self::default();
        for name in loc.list_backups().await?.iter().rev() {
            match loc.read_manifest(name).await {
                Ok(m) if m.is_packed() => match Self::of_manifest(cache, &m).await {
                    Ok(k) => {
                        known = k;
                        break;
                    }
                    Err(FormatError::Region(e)) if !e.is_not_found() => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(backup = %name, error = %e, "skipping a backup as dedupe base");
                    }
                },
                Ok(_) => break,
                Err(FormatError::Region(e)) if !e.is_not_found() => return Err(e.into()),
                Err(_) => {}
            }
        }
        known.add_recent_orphans(loc, cache).await?;
        Ok(known)
    }

    /// Packs whose index was written within [`ORPHAN_REUSE`] and that no manifest named yet:
    /// complete (the index is written after its pack) and far from the grace period after which
    /// retention may collect them, so a backup or copy that references them commits long before.
    async fn add_recent_orphans(
        &mut self,
        loc: &Location,
        cache: &IndexCache,
    ) -> Result<(), FormatError> {
        let held: std::collections::HashSet<PackId> = self.0.values().map(|(p, _)| *p).collect();
        let since = chrono::Utc::now() - ORPHAN_REUSE;
        let mut listing = loc.region().list(&layout::packs_prefix(loc.service()));
        let mut recent = Vec::new();
        while let Some(o) = listing.try_next().await? {
            if o.key.ends_with(layout::PACK_INDEX_SUFFIX)
                && o.last_modified > since
                && let Some(id) = layout::parse_pack_key(&o.key)
                && !held.contains(&id)
            {
                recent.push(id);
            }
        }
        for id in recent {
            match cache.get(&id).await {
                Ok(idx) => {
                    for (n, block) in idx.blocks() {
                        self.0.entry(block).or_insert((id, n));
                    }
                }
                Err(FormatError::Region(e)) if !e.is_not_found() => return Err(e.into()),
                Err(e) => tracing::warn!(pack = %id, error = %e, "not reusing a leftover pack"),
            }
        }
        Ok(())
    }
}

//! Pack objects in a location: a pack is written whole, then its index, both before any manifest
//! names them; readers fetch the index whole and frames by range.

use bytes::Bytes;

use crate::error::FormatError;
use crate::layout;
use crate::location::Location;
use crate::seal::Kind;

use super::index::{self, PackId, PackIndex};

/// Largest pack index a reader accepts (about 1.8 million blocks).
const MAX_INDEX: usize = 64 << 20;

impl Location {
    pub fn pack_key(&self, id: &PackId) -> String {
        layout::pack(self.service(), id)
    }

    pub fn pack_index_key(&self, id: &PackId) -> String {
        layout::pack_index(self.service(), id)
    }

    /// Seals an index; returns its pack id and the sealed bytes.
    pub fn seal_pack_index(&self, idx: &PackIndex) -> (PackId, Vec<u8>) {
        let plain = idx.encode();
        let id = index::id_of_encoded(self.chunk_id_key(), &plain);
        let sealed = self.sealer().seal(
            Kind::PackIndex,
            id.as_bytes(),
            &plain,
            self.compression_level(),
        );
        (id, sealed)
    }

    /// Stores a pack, then its index: an index present means its pack was stored whole.
    pub async fn put_pack(
        &self,
        id: &PackId,
        pack: Bytes,
        sealed_index: Bytes,
    ) -> Result<(), FormatError> {
        self.region().put(&self.pack_key(id), pack).await?;
        self.region()
            .put(&self.pack_index_key(id), sealed_index)
            .await?;
        Ok(())
    }

    /// Fetches, opens and checks a pack's index against the pack id.
    pub async fn get_pack_index(&self, id: &PackId) -> Result<PackIndex, FormatError> {
        let key = self.pack_index_key(id);
        let sealed = self.region().get(&key).await?;
        let me = self.clone();
        let id = *id;
        tokio::task::spawn_blocking(move || me.open_pack_index(&id, &sealed))
            .await
            .map_err(|e| FormatError::Task(e.to_string()))?
    }

    pub fn open_pack_index(&self, id: &PackId, sealed: &[u8]) -> Result<PackIndex, FormatError> {
        let key = self.pack_index_key(id);
        let plain = self
            .sealer()
            .open(Kind::PackIndex, id.as_bytes(), sealed, MAX_INDEX)
            .map_err(|e| self.damaged(key.clone(), e))?;
        if &index::id_of_encoded(self.chunk_id_key(), &plain) != id {
            return Err(self.damaged_at(key, "index does not match its pack id"));
        }
        PackIndex::decode(&plain).map_err(|e| self.damaged_at(key, &e.to_string()))
    }

    /// Bytes `start..end` of a pack.
    pub async fn get_pack_range(
        &self,
        id: &PackId,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, FormatError> {
        let key = self.pack_key(id);
        let want = range.end - range.start;
        let b = self.region().get_range(&key, range).await?;
        if b.len() as u64 != want {
            return Err(self.damaged_at(key, "pack is shorter than its index says"));
        }
        Ok(b)
    }

    /// Whether a pack and its index are both present.
    pub async fn has_pack(&self, id: &PackId) -> Result<bool, FormatError> {
        Ok(self
            .region()
            .head(&self.pack_index_key(id))
            .await?
            .is_some()
            && self.region().head(&self.pack_key(id)).await?.is_some())
    }
}

//! The service descriptor (`service.json`): what a location needs to describe itself without a catalog.
//! Plain JSON so an operator can read it; the chunk-id key inside is sealed with the region's key.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::chunk::ChunkIdKey;
use crate::seal::{Kind, Sealer};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceDescriptor {
    pub format: String,
    pub format_version: u32,
    pub service: String,
    /// `pg` or `mysql`.
    pub engine: String,
    /// The database's own identity (PostgreSQL system identifier), to refuse mixing two clusters.
    #[serde(default)]
    pub system_identifier: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Chunk-id key sealed with this region's key, base64.
    pub chunk_id_key: String,
}

pub(crate) fn key_binding(service: &str) -> Vec<u8> {
    format!("btar/v1/service-key/{service}").into_bytes()
}

impl ServiceDescriptor {
    pub fn new(
        service: &str,
        engine: &str,
        system_identifier: Option<String>,
        key: &ChunkIdKey,
        sealer: &Sealer,
    ) -> Self {
        let wrapped = sealer.seal(Kind::ServiceKey, &key_binding(service), key.as_bytes(), 0);
        Self {
            format: "btar".into(),
            format_version: crate::FORMAT_VERSION,
            service: service.to_string(),
            engine: engine.to_string(),
            system_identifier,
            created_at: Utc::now(),
            chunk_id_key: base64::engine::general_purpose::STANDARD.encode(wrapped),
        }
    }

    /// The same descriptor for another region: the chunk-id key re-wrapped with that region's key.
    pub fn rewrapped(&self, key: &ChunkIdKey, sealer: &Sealer) -> Self {
        let mut d = Self::new(
            &self.service,
            &self.engine,
            self.system_identifier.clone(),
            key,
            sealer,
        );
        d.created_at = self.created_at;
        d
    }

    pub(crate) fn unwrap_key(&self, sealer: &Sealer) -> Option<ChunkIdKey> {
        let wrapped = base64::engine::general_purpose::STANDARD
            .decode(&self.chunk_id_key)
            .ok()?;
        let raw = sealer
            .open(Kind::ServiceKey, &key_binding(&self.service), &wrapped, 32)
            .ok()?;
        let arr: [u8; 32] = raw.try_into().ok()?;
        Some(ChunkIdKey::from_bytes(arr))
    }
}

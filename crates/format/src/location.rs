use btar_region::{Region, RegionError};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::chunk::{ChunkId, ChunkIdKey};
use crate::error::FormatError;
use crate::layout;
use crate::log_frames;
use crate::manifest::Manifest;
use crate::seal::{self, Body, Kind, OpenError, Sealer};
use crate::service::ServiceDescriptor;

mod tail;
pub use tail::{OPEN_ENDED, Tail, TailPiece, covering};

/// Largest chunk plaintext a reader accepts.
pub const MAX_CHUNK: usize = 64 << 20;
/// Largest log file (PostgreSQL allows 1 GiB WAL segments) or manifest a reader holds in memory;
/// larger log files (a binlog past `max_binlog_size`) are read a frame at a time
/// ([`Location::read_log`]).
pub const MAX_LOG: usize = (1 << 30) + (1 << 20);
const MANIFEST_LEVEL: i32 = 3;

/// One archived log object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    pub timeline: String,
    pub name: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// Outcome of storing a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPut {
    Stored,
    AlreadyPresent,
}

/// One service's backups inside one region.
#[derive(Debug, Clone)]
pub struct Location {
    region: Region,
    service: String,
    sealer: Sealer,
    chunk_key: ChunkIdKey,
    descriptor: ServiceDescriptor,
    level: i32,
}

impl Location {
    /// Opens an existing location; a clear error if the region holds none for this service.
    pub async fn open(region: &Region, service: &str) -> Result<Self, FormatError> {
        layout::validate_name(service)?;
        let key = layout::descriptor(service);
        let raw = match region.get(&key).await {
            Ok(b) => b,
            Err(RegionError::NotFound { .. }) => {
                return Err(FormatError::NoLocation {
                    region: region.name().into(),
                    service: service.into(),
                    key,
                });
            }
            Err(e) => return Err(e.into()),
        };
        Self::from_descriptor_bytes(region, service, &raw)
    }

    /// Opens a location from descriptor bytes kept from an earlier [`Location::open`], without
    /// reading the store: a restore fetching one log file per process would otherwise pay a round
    /// trip per file for a descriptor that never changes. The wrapped key is still authenticated
    /// with the region's key, so a cache from another key fails here; a stale one fails when an
    /// object does not open, and the caller then opens afresh.
    pub fn open_cached(region: &Region, service: &str, raw: &[u8]) -> Result<Self, FormatError> {
        layout::validate_name(service)?;
        Self::from_descriptor_bytes(region, service, raw)
    }

    fn from_descriptor_bytes(
        region: &Region,
        service: &str,
        raw: &[u8],
    ) -> Result<Self, FormatError> {
        let key = layout::descriptor(service);
        let damaged = |reason: String| FormatError::Damaged {
            region: region.name().into(),
            key: key.clone(),
            reason,
        };
        let descriptor: ServiceDescriptor =
            serde_json::from_slice(raw).map_err(|e| damaged(format!("invalid descriptor: {e}")))?;
        if descriptor.format_version > crate::FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                region: region.name().into(),
                key,
                found: descriptor.format_version,
                supported: crate::FORMAT_VERSION,
            });
        }
        if descriptor.service != service {
            return Err(damaged(format!(
                "descriptor names service `{}`",
                descriptor.service
            )));
        }
        let sealer = Sealer::new(region.key()?);
        let chunk_key =
            descriptor
                .unwrap_key(&sealer)
                .ok_or_else(|| FormatError::WrongKeyOrTampered {
                    region: region.name().into(),
                    key: key.clone(),
                })?;
        Ok(Self {
            region: region.clone(),
            service: service.to_string(),
            sealer,
            chunk_key,
            descriptor,
            level: 3,
        })
    }

    /// Creates the location explicitly — when a service is registered, takes its first backup, or
    /// receives its first copy — or opens it if it already exists. With `template`, a new location
    /// takes that descriptor's identity and chunk-id key (a secondary location of an existing
    /// service); otherwise a fresh key.
    ///
    /// Writers that expect a location (`wal-push`, a backup or copy of a service that has backups
    /// there) must use [`Location::open`] instead: a missing descriptor then means a vanished mount
    /// point, bucket or prefix, and starting a new location there would swallow acknowledged data.
    pub async fn create(
        region: &Region,
        service: &str,
        engine: &str,
        template: Option<(&ServiceDescriptor, &ChunkIdKey)>,
    ) -> Result<Self, FormatError> {
        layout::validate_name(service)?;
        let sealer = Sealer::new(region.key()?);
        let key = layout::descriptor(service);
        if region.head(&key).await?.is_none() {
            let descriptor = match template {
                Some((d, k)) => d.rewrapped(k, &sealer),
                None => {
                    ServiceDescriptor::new(service, engine, None, &ChunkIdKey::generate(), &sealer)
                }
            };
            let body = serde_json::to_vec_pretty(&descriptor)
                .map_err(|e| FormatError::Task(e.to_string()))?;
            // Two writers racing to create the location must end up sharing one chunk-id key:
            // whoever loses re-reads and adopts the winner's descriptor below.
            region.put_if_absent(&key, Bytes::from(body)).await?;
        }
        let loc = Self::open(region, service).await?;
        if loc.descriptor.engine != engine {
            return Err(FormatError::EngineMismatch {
                region: region.name().into(),
                service: service.into(),
                found: loc.descriptor.engine.clone(),
                expected: engine.into(),
            });
        }
        if let Some((_, k)) = template
            && &loc.chunk_key != k
        {
            return Err(FormatError::ChunkKeyMismatch {
                region: region.name().into(),
                service: service.into(),
            });
        }
        Ok(loc)
    }

    /// Records the database identity once known; refuses a different one.
    pub async fn bind_system_identifier(&mut self, id: &str) -> Result<(), FormatError> {
        match &self.descriptor.system_identifier {
            Some(existing) if existing == id => Ok(()),
            Some(existing) => Err(FormatError::Damaged {
                region: self.region.name().into(),
                key: layout::descriptor(&self.service),
                reason: format!(
                    "location belongs to database system {existing}, not {id}: refusing to mix two clusters"
                ),
            }),
            None => {
                self.descriptor.system_identifier = Some(id.to_string());
                let body = serde_json::to_vec_pretty(&self.descriptor)
                    .map_err(|e| FormatError::Task(e.to_string()))?;
                self.region
                    .put(&layout::descriptor(&self.service), Bytes::from(body))
                    .await?;
                Ok(())
            }
        }
    }

    pub fn with_compression_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn descriptor(&self) -> &ServiceDescriptor {
        &self.descriptor
    }

    pub fn chunk_id_key(&self) -> &ChunkIdKey {
        &self.chunk_key
    }

    pub fn compression_level(&self) -> i32 {
        self.level
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub(crate) fn damaged(&self, key: String, e: OpenError) -> FormatError {
        match e {
            OpenError::Auth => FormatError::WrongKeyOrTampered {
                region: self.region.name().into(),
                key,
            },
            other => FormatError::Damaged {
                region: self.region.name().into(),
                key,
                reason: other.to_string(),
            },
        }
    }

    // ---- chunks ----

    pub fn chunk_key(&self, id: &ChunkId) -> String {
        layout::chunk(&self.service, id)
    }

    pub async fn has_chunk(&self, id: &ChunkId) -> Result<bool, FormatError> {
        Ok(self.region.head(&self.chunk_key(id)).await?.is_some())
    }

    /// Compresses and seals a chunk (CPU work: call from a blocking thread for large chunks).
    pub fn seal_chunk(&self, id: &ChunkId, plain: &[u8]) -> Vec<u8> {
        self.sealer
            .seal(Kind::Chunk, id.as_bytes(), plain, self.level)
    }

    /// Opens a sealed chunk and checks that its content hashes to its id.
    pub fn open_chunk(&self, id: &ChunkId, sealed: &[u8]) -> Result<Vec<u8>, FormatError> {
        let plain = self
            .sealer
            .open(Kind::Chunk, id.as_bytes(), sealed, MAX_CHUNK)
            .map_err(|e| self.damaged(self.chunk_key(id), e))?;
        if &self.chunk_key.id_of(&plain) != id {
            return Err(FormatError::Damaged {
                region: self.region.name().into(),
                key: self.chunk_key(id),
                reason: "content does not match its id".into(),
            });
        }
        Ok(plain)
    }

    /// Re-seals a chunk sealed by `src` for this location: authenticated with the source's key and
    /// checked against its id (the chunk-id key is the service's, shared by both), then encrypted
    /// with this location's key around the same compressed body — a copy never compresses again.
    pub fn reseal_chunk_from(
        &self,
        src: &Location,
        id: &ChunkId,
        sealed: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        let key = || src.chunk_key(id);
        let (flags, body) = src
            .sealer
            .open_body(Kind::Chunk, id.as_bytes(), sealed)
            .map_err(|e| src.damaged(key(), e))?;
        let body = Body {
            flags,
            bytes: &body,
        };
        let plain = seal::decode(body, MAX_CHUNK).map_err(|e| src.damaged(key(), e))?;
        if &src.chunk_key.id_of(&plain) != id || &self.chunk_key.id_of(&plain) != id {
            return Err(FormatError::Damaged {
                region: src.region.name().into(),
                key: key(),
                reason: "content does not match its id".into(),
            });
        }
        Ok(self.sealer.seal_body(Kind::Chunk, id.as_bytes(), body))
    }

    pub async fn put_sealed_chunk(&self, id: &ChunkId, sealed: Bytes) -> Result<(), FormatError> {
        Ok(self.region.put(&self.chunk_key(id), sealed).await?)
    }

    pub async fn get_sealed_chunk(&self, id: &ChunkId) -> Result<Bytes, FormatError> {
        Ok(self.region.get(&self.chunk_key(id)).await?)
    }

    /// Fetches, opens and verifies a chunk.
    pub async fn get_chunk(&self, id: &ChunkId) -> Result<Vec<u8>, FormatError> {
        let sealed = self.get_sealed_chunk(id).await?;
        let me = self.clone();
        let id = *id;
        tokio::task::spawn_blocking(move || me.open_chunk(&id, &sealed))
            .await
            .map_err(|e| FormatError::Task(e.to_string()))?
    }

    // ---- manifests ----

    /// Fails with [`FormatError::NoLocation`] when the descriptor is no longer there: the region was
    /// unmounted, or its bucket or prefix deleted, while this handle was open. Checked around the
    /// objects that acknowledge work (a manifest, an archived log file), so that none is reported
    /// durable after it landed outside the location.
    pub async fn ensure_present(&self) -> Result<(), FormatError> {
        let key = layout::descriptor(&self.service);
        match self.region.head(&key).await? {
            Some(_) => Ok(()),
            None => Err(FormatError::NoLocation {
                region: self.region.name().into(),
                service: self.service.clone(),
                key,
            }),
        }
    }

    /// Commits a backup: the manifest is the last object written, so its presence means "complete".
    pub async fn commit_manifest(&self, manifest: &Manifest) -> Result<(), FormatError> {
        layout::validate_name(&manifest.backup_name)?;
        self.ensure_present().await?;
        let key = layout::manifest(&self.service, &manifest.backup_name);
        let json = serde_json::to_vec(manifest).map_err(|e| FormatError::Task(e.to_string()))?;
        let sealed = self
            .sealer
            .seal(Kind::Manifest, key.as_bytes(), &json, MANIFEST_LEVEL);
        self.region.put(&key, Bytes::from(sealed)).await?;
        self.confirm_written(&key).await
    }

    /// After writing `key`: the location must still be there, or the write went elsewhere (the
    /// region vanished in between) — then the stray object is removed and the write is not
    /// acknowledged.
    pub(crate) async fn confirm_written(&self, key: &str) -> Result<(), FormatError> {
        match self.ensure_present().await {
            // Confirmed gone: the object just written is a stray outside the real location.
            Err(e @ FormatError::NoLocation { .. }) => {
                let _ = self.region.delete(key).await;
                Err(e)
            }
            // Not confirmed (the store failed to answer): unacknowledged, but left in place — a
            // retry finds it (logs: same content) or a new backup supersedes it.
            other => other,
        }
    }

    pub async fn read_manifest(&self, backup: &str) -> Result<Manifest, FormatError> {
        layout::validate_name(backup)?;
        let key = layout::manifest(&self.service, backup);
        let sealed = match self.region.get(&key).await {
            Ok(b) => b,
            Err(RegionError::NotFound { .. }) => {
                return Err(FormatError::BackupNotFound {
                    region: self.region.name().into(),
                    service: self.service.clone(),
                    backup: backup.into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let json = self
            .sealer
            .open(Kind::Manifest, key.as_bytes(), &sealed, MAX_LOG)
            .map_err(|e| self.damaged(key.clone(), e))?;
        let m: Manifest = serde_json::from_slice(&json).map_err(|e| FormatError::Damaged {
            region: self.region.name().into(),
            key: key.clone(),
            reason: format!("invalid manifest: {e}"),
        })?;
        if m.format_version > crate::FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                region: self.region.name().into(),
                key,
                found: m.format_version,
                supported: crate::FORMAT_VERSION,
            });
        }
        Ok(m)
    }

    /// Names of the committed backups, oldest first.
    pub async fn list_backups(&self) -> Result<Vec<String>, FormatError> {
        let mut names: Vec<String> = self
            .region
            .list(&layout::backups_prefix(&self.service))
            .try_filter_map(|o| async move { Ok(layout::parse_manifest_key(&o.key)) })
            .try_collect()
            .await?;
        names.sort();
        Ok(names)
    }

    pub async fn delete_manifest(&self, backup: &str) -> Result<(), FormatError> {
        layout::validate_name(backup)?;
        Ok(self
            .region
            .delete(&layout::manifest(&self.service, backup))
            .await?)
    }

    // ---- logs ----

    pub fn log_key(&self, timeline: &str, name: &str) -> String {
        layout::log(&self.service, timeline, name)
    }

    pub fn seal_log(&self, timeline: &str, name: &str, plain: &[u8]) -> Vec<u8> {
        let key = self.log_key(timeline, name);
        self.sealer
            .seal(Kind::Log, key.as_bytes(), plain, self.level)
    }

    /// Re-seals a log file sealed by `src` for this location, around the same compressed body (or
    /// bodies: a framed log file is re-sealed frame by frame).
    /// The source envelope is authenticated (its key binds the object key, so a moved or renamed
    /// file fails); the body is not decompressed.
    pub fn reseal_log_from(
        &self,
        src: &Location,
        timeline: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        let src_key = src.log_key(timeline, name);
        if log_frames::is_framed(sealed) {
            let key = self.log_key(timeline, name);
            return log_frames::reseal_all(&src.sealer, &src_key, &self.sealer, &key, sealed)
                .map_err(|e| src.frame_damaged(src_key, e));
        }
        let (flags, body) = src
            .sealer
            .open_body(Kind::Log, src_key.as_bytes(), sealed)
            .map_err(|e| src.damaged(src_key.clone(), e))?;
        let key = self.log_key(timeline, name);
        Ok(self.sealer.seal_body(
            Kind::Log,
            key.as_bytes(),
            Body {
                flags,
                bytes: &body,
            },
        ))
    }

    /// The plaintext of a sealed log object (either form), in memory: up to [`MAX_LOG`] bytes.
    pub fn open_log(
        &self,
        timeline: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        let key = self.log_key(timeline, name);
        if log_frames::is_framed(sealed) {
            return log_frames::open_all(&self.sealer, &key, sealed, MAX_LOG)
                .map_err(|e| self.frame_damaged(key, e));
        }
        self.sealer
            .open(Kind::Log, key.as_bytes(), sealed, MAX_LOG)
            .map_err(|e| self.damaged(key, e))
    }

    /// Stores a log file durably. Storing the same content again succeeds (archivers retry);
    /// different content under the same name is refused, never overwritten.
    pub async fn put_log(
        &self,
        timeline: &str,
        name: &str,
        plain: Bytes,
    ) -> Result<LogPut, FormatError> {
        layout::validate_name(timeline)?;
        layout::validate_name(name)?;
        let key = self.log_key(timeline, name);
        if let Some(existing) = self.get_log(timeline, name).await? {
            if existing == plain.as_ref() {
                return Ok(LogPut::AlreadyPresent);
            }
            return Err(FormatError::Damaged {
                region: self.region.name().into(),
                key,
                reason:
                    "a different file with this name is already archived; refusing to overwrite"
                        .into(),
            });
        }
        let me = self.clone();
        let (t, n) = (timeline.to_string(), name.to_string());
        let sealed = tokio::task::spawn_blocking(move || me.seal_log(&t, &n, &plain))
            .await
            .map_err(|e| FormatError::Task(e.to_string()))?;
        self.region.put(&key, Bytes::from(sealed)).await?;
        self.confirm_written(&key).await?;
        Ok(LogPut::Stored)
    }

    /// A log file's content, or `None` if it is not archived here.
    pub async fn get_log(
        &self,
        timeline: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, FormatError> {
        layout::validate_name(timeline)?;
        layout::validate_name(name)?;
        let sealed = match self.region.get(&self.log_key(timeline, name)).await {
            Ok(b) => b,
            Err(RegionError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let me = self.clone();
        let (t, n) = (timeline.to_string(), name.to_string());
        tokio::task::spawn_blocking(move || me.open_log(&t, &n, &sealed).map(Some))
            .await
            .map_err(|e| FormatError::Task(e.to_string()))?
    }

    /// Fetches one archived log file into `dest`, written under a temporary name and renamed, so a
    /// database replaying it never reads a partial file. `false` when the archive lacks it.
    pub async fn fetch_log_to(
        &self,
        timeline: &str,
        name: &str,
        dest: &std::path::Path,
    ) -> Result<bool, FormatError> {
        let Some(data) = self.get_log(timeline, name).await? else {
            return Ok(false);
        };
        deliver_file(data, dest).await?;
        Ok(true)
    }

    /// Every archived log object, in key order (timeline, then name).
    pub fn list_logs(&self) -> futures::stream::BoxStream<'_, Result<LogObject, FormatError>> {
        self.region
            .list(&layout::logs_prefix(&self.service))
            .map(|r| {
                let o = r?;
                let (timeline, name) =
                    layout::parse_log_key(&o.key).ok_or_else(|| FormatError::Damaged {
                        region: self.region.name().into(),
                        key: o.key.clone(),
                        reason: "unexpected key under logs/".into(),
                    })?;
                Ok(LogObject {
                    timeline,
                    name,
                    size: o.size,
                    last_modified: o.last_modified,
                })
            })
            .boxed()
    }
}

/// Writes `data` to `dest` under a temporary name and renames it over, so a database replaying the
/// file never reads a partial one (a restore_command delivery, from the store or a local spool).
/// Written from the caller's buffer on a blocking thread: `tokio::fs::write` would first copy a
/// 16 MiB segment into a buffer of its own.
pub async fn deliver_file(data: Vec<u8>, dest: &std::path::Path) -> Result<(), FormatError> {
    let tmp = dest.with_extension("btar-tmp");
    let at = tmp.clone();
    tokio::task::spawn_blocking(move || std::fs::write(&at, data))
        .await
        .map_err(|e| FormatError::Task(e.to_string()))?
        .map_err(|e| FormatError::io(tmp.display().to_string(), e))?;
    tokio::fs::rename(&tmp, dest)
        .await
        .map_err(|e| FormatError::io(dest.display().to_string(), e))
}

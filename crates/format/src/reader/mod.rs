//! Streaming restore: chunks (v1) or frames (v2, [`packed`]) are fetched with bounded read-ahead,
//! verified, and written in order.

mod packed;
pub(crate) use packed::{pack_table, resolve};

use std::path::Path;

use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::FormatError;
use crate::location::Location;
use crate::manifest::{FileEntry, FileKind, Manifest};
use crate::pack::known::IndexCache;

#[derive(Debug, Clone)]
pub struct FileReader {
    loc: Location,
    read_ahead: usize,
    indexes: IndexCache,
}

impl FileReader {
    pub fn new(loc: Location, read_ahead: usize) -> Self {
        Self {
            indexes: IndexCache::new(loc.clone()),
            loc,
            read_ahead: read_ahead.max(1),
        }
    }

    /// Writes the content of `entry` to `out`; every chunk is authenticated and hash-checked.
    pub async fn write_to<W: AsyncWrite + Unpin>(
        &self,
        manifest: &Manifest,
        entry: &FileEntry,
        out: &mut W,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, FormatError> {
        if manifest.is_packed() {
            // Ranged reads of up to 2 MiB stored, kept sealed until just before use: a few in
            // flight per file keep memory flat while the next range downloads during the write.
            let ahead = self.read_ahead.div_ceil(4).clamp(2, 3);
            return packed::write_to(
                &self.loc,
                &self.indexes,
                ahead,
                manifest,
                entry,
                out,
                progress,
            )
            .await;
        }
        // Ids by value: a closure over borrowed ids is not provably `Send` for every lifetime.
        let mut chunks = futures::stream::iter(entry.chunks.iter().copied().enumerate())
            .map(|(i, id)| async move {
                let data = self.loc.get_chunk(&id).await?;
                let want = manifest.chunk_len(entry, i);
                if data.len() as u64 != want {
                    return Err(FormatError::Damaged {
                        region: self.loc.region().name().into(),
                        key: self.loc.chunk_key(&id),
                        reason: format!(
                            "chunk {i} of {} is {} bytes, expected {want}",
                            entry.path,
                            data.len()
                        ),
                    });
                }
                Ok(data)
            })
            .buffered(self.read_ahead);
        let mut written = 0u64;
        while let Some(data) = chunks.try_next().await? {
            out.write_all(&data)
                .await
                .map_err(|e| FormatError::io(&entry.path, e))?;
            written += data.len() as u64;
            progress(data.len() as u64);
        }
        out.flush()
            .await
            .map_err(|e| FormatError::io(&entry.path, e))?;
        Ok(written)
    }

    /// Restores every entry of `manifest` under `dest` (which must exist), `parallel` files at a time.
    pub async fn restore_tree(
        &self,
        manifest: &Manifest,
        dest: &Path,
        parallel: usize,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, FormatError> {
        // Directories and links first, so files have somewhere to go.
        for e in manifest.files.iter().filter(|e| e.kind != FileKind::File) {
            let p = safe_join(dest, &e.path)?;
            match e.kind {
                FileKind::Dir => {
                    tokio::fs::create_dir_all(&p)
                        .await
                        .map_err(|x| FormatError::io(p.display().to_string(), x))?;
                    set_mode(&p, e.mode).await?;
                }
                FileKind::Symlink => {
                    if let Some(parent) = p.parent() {
                        tokio::fs::create_dir_all(parent)
                            .await
                            .map_err(|x| FormatError::io(parent.display().to_string(), x))?;
                    }
                    let target = e.target.clone().unwrap_or_default();
                    tokio::fs::symlink(&target, &p)
                        .await
                        .map_err(|x| FormatError::io(p.display().to_string(), x))?;
                }
                FileKind::File => {}
            }
        }
        // Boxed futures built eagerly, not closures kept inside the stream: rustc cannot prove a
        // stream of borrowing closures `Send` for every lifetime, which callers spawning this need.
        let restores: Vec<futures::future::BoxFuture<'_, Result<u64, FormatError>>> = manifest
            .files
            .iter()
            .filter(|e| e.kind == FileKind::File)
            .map(|e| Box::pin(self.restore_file(manifest, e, dest, progress)) as _)
            .collect();
        let total: u64 = futures::stream::iter(restores)
            .buffer_unordered(parallel.max(1))
            .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
            .await?;
        Ok(total)
    }

    async fn restore_file(
        &self,
        manifest: &Manifest,
        e: &FileEntry,
        dest: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, FormatError> {
        let p = safe_join(dest, &e.path)?;
        if let Some(parent) = p.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|x| FormatError::io(parent.display().to_string(), x))?;
        }
        let file = tokio::fs::File::create(&p)
            .await
            .map_err(|x| FormatError::io(p.display().to_string(), x))?;
        // Small: tokio's File holds a copy of each write until its blocking thread has written it.
        let mut out = tokio::io::BufWriter::with_capacity(256 << 10, file);
        let n = self.write_to(manifest, e, &mut out, progress).await?;
        out.into_inner()
            .sync_all()
            .await
            .map_err(|x| FormatError::io(p.display().to_string(), x))?;
        set_mode(&p, e.mode).await?;
        Ok(n)
    }
}

async fn set_mode(p: &Path, mode: u32) -> Result<(), FormatError> {
    use std::os::unix::fs::PermissionsExt;
    if mode == 0 {
        return Ok(());
    }
    tokio::fs::set_permissions(p, std::fs::Permissions::from_mode(mode & 0o7777))
        .await
        .map_err(|x| FormatError::io(p.display().to_string(), x))
}

/// Joins a manifest path under `dest`, refusing absolute paths and `..` so a hostile manifest cannot
/// write outside the restore directory.
pub fn safe_join(dest: &Path, rel: &str) -> Result<std::path::PathBuf, FormatError> {
    let bad =
        rel.is_empty() || rel.starts_with('/') || rel.split('/').any(|c| c.is_empty() || c == "..");
    if bad {
        return Err(FormatError::InvalidName {
            name: rel.to_string(),
            reason: "manifest path escapes the restore directory".into(),
        });
    }
    Ok(dest.join(rel))
}

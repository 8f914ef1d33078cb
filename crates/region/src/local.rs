//! Filesystem regions (`file://`). Three things object stores give for free need care here:
//! - **Durability**: a write is acknowledged only once the file and the directory entries leading to
//!   it are fsynced (DESIGN.md invariant 7); `LocalFileSystem::with_fsync` does exactly that. It does
//!   not for deletes, so a delete is acknowledged here only once its directory is fsynced: retention
//!   deletes a backup's manifest before what only that backup used, and after a power loss the
//!   manifest must not be back without them.
//! - **Ownership**: the region belongs to the user btar's server runs as. A root-run CLI beside it
//!   would leave root-owned files and directories that the server later cannot write into, so objects
//!   created by root are handed to the region root's owner.
//! - **Staging files**: a writer killed mid-put leaves its staging file (`<key>#<n>`), which listings
//!   hide; [`sweep_staging`] removes old ones.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

/// Opens the filesystem store rooted at `dir` (which must exist), fsyncing every write, and handing
/// new objects to the directory's owner when btar runs as root and the directory is someone else's.
pub(crate) fn open(dir: &FsPath) -> Result<Arc<dyn ObjectStore>, String> {
    let fs = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| e.to_string())?
        .with_automatic_cleanup(true)
        .with_fsync(true);
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let owner = (effective_uid() == Some(0) && meta.uid() != 0).then(|| {
        tracing::debug!(dir = %dir.display(), uid = meta.uid(), "root writes into another user's region: objects are handed to that user");
        (meta.uid(), meta.gid())
    });
    Ok(Arc::new(OwnedFs {
        inner: Arc::new(fs),
        root: dir.to_path_buf(),
        owner,
    }))
}

/// The effective user id, from `/proc/self/status` (the workspace forbids the `unsafe` a libc call
/// would need). `None` where there is no procfs: no ownership hand-over then.
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Deletes staging files (`<key>#<digits>`) under `dir` last modified before `older_than` ago: a
/// writer that was killed left them, a live writer renames them within seconds. Returns how many.
pub(crate) fn sweep_staging(dir: &FsPath, older_than: Duration) -> std::io::Result<u64> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file()
                && is_staging_name(&entry.file_name().to_string_lossy())
                && entry.metadata()?.modified()? < cutoff
            {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(removed)
}

/// `LocalFileSystem`'s staging names: the final name, `#`, and digits.
fn is_staging_name(name: &str) -> bool {
    matches!(name.rsplit_once('#'), Some((stem, n)) if !stem.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The filesystem store of a region: deletes made durable, and, when root writes into another
/// user's region, every object it creates and every directory on the way given to the region
/// root's owner.
#[derive(Debug)]
struct OwnedFs {
    inner: Arc<LocalFileSystem>,
    root: PathBuf,
    /// `(uid, gid)` to hand new objects to.
    owner: Option<(u32, u32)>,
}

impl fmt::Display for OwnedFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnedFs({})", self.root.display())
    }
}

impl OwnedFs {
    async fn hand_over(&self, location: &Path) -> object_store::Result<()> {
        let Some((uid, gid)) = self.owner else {
            return Ok(());
        };
        let file = self.inner.path_to_filesystem(location)?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || chown_up_to(&file, &root, uid, gid))
            .await
            .map_err(|e| generic(Box::new(std::io::Error::other(e.to_string()))))?
            // The io::Error stays the source, so a refused chown is classified as "denied".
            .map_err(|e| generic(Box::new(e)))
    }
}

/// Fsyncs the directory that held `file`, so that its removal survives a power loss; when that
/// directory was removed too (emptied, so cleaned up), the nearest one still there, which holds
/// that removal.
fn sync_parent(file: &FsPath) -> std::io::Result<()> {
    let mut dir = file.parent();
    while let Some(d) = dir {
        match std::fs::File::open(d) {
            Ok(f) => return f.sync_all(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => dir = d.parent(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Chowns `file` and each directory above it up to (not including) `root` that is not `uid`'s yet.
fn chown_up_to(file: &FsPath, root: &FsPath, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(file, Some(uid), Some(gid))?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::metadata(d)?.uid() == uid {
            break;
        }
        std::os::unix::fs::chown(d, Some(uid), Some(gid))?;
        dir = d.parent();
    }
    Ok(())
}

fn generic(source: Box<std::io::Error>) -> object_store::Error {
    object_store::Error::Generic {
        store: "OwnedFs",
        source,
    }
}

#[async_trait]
impl ObjectStore for OwnedFs {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.hand_over(location).await?;
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(OwnedUpload {
            upload,
            store: OwnedFs {
                inner: self.inner.clone(),
                root: self.root.clone(),
                owner: self.owner,
            },
            location: location.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = self.inner.clone();
        self.inner
            .delete_stream(locations)
            .then(move |deleted| {
                let inner = inner.clone();
                async move {
                    let path = deleted?;
                    let file = inner.path_to_filesystem(&path)?;
                    tokio::task::spawn_blocking(move || sync_parent(&file))
                        .await
                        .map_err(|e| generic(Box::new(std::io::Error::other(e.to_string()))))?
                        .map_err(|e| generic(Box::new(e)))?;
                    Ok(path)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.hand_over(to).await
    }
}

#[derive(Debug)]
struct OwnedUpload {
    upload: Box<dyn MultipartUpload>,
    store: OwnedFs,
    location: Path,
}

#[async_trait]
impl MultipartUpload for OwnedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let r = self.upload.complete().await?;
        self.store.hand_over(&self.location).await?;
        Ok(r)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_syncs_the_nearest_directory_still_there() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let gone = dir.path().join("a/b/c.manifest");
        assert!(sync_parent(&gone).is_ok());
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap_or_else(|e| panic!("{e}"));
        assert!(sync_parent(&gone).is_ok());
    }

    #[test]
    fn staging_names() {
        assert!(is_staging_name("000000010000000000000003#12"));
        assert!(is_staging_name("abcd.manifest#0"));
        for name in ["service.json", "a#b", "#12", "x#", "0000#1a"] {
            assert!(!is_staging_name(name), "{name}");
        }
    }

    #[test]
    fn sweeps_only_old_staging_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sub = dir.path().join("logs/00000001");
        std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
        for name in ["seg#3", "seg", "x#y"] {
            std::fs::write(sub.join(name), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            sweep_staging(dir.path(), Duration::from_secs(3600)).ok(),
            Some(0)
        );
        assert_eq!(sweep_staging(dir.path(), Duration::ZERO).ok(), Some(1));
        assert!(!sub.join("seg#3").exists());
        assert!(sub.join("seg").exists() && sub.join("x#y").exists());
    }
}

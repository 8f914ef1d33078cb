use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use tokio_util::sync::CancellationToken;

use crate::config::{Provider, RegionConfig};
use crate::error::RegionError;
use crate::key::RegionKey;
use crate::retry::{Attempt, RetryError, RetryPolicy, with_backoff};

type Timestamp = chrono::DateTime<chrono::Utc>;

/// One object as listed: its key relative to the region root, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: Timestamp,
}

/// An opened region: a store, a key, a retry policy and the cancellation token of the work it serves.
#[derive(Clone)]
pub struct Region {
    name: String,
    provider: Provider,
    url: String,
    store: Arc<dyn ObjectStore>,
    key: Option<RegionKey>,
    retry: RetryPolicy,
    cancel: CancellationToken,
    /// Whether listings come in key order, which resuming a listing after an error relies on.
    ordered_listing: bool,
    /// The directory of a filesystem region.
    fs_root: Option<std::path::PathBuf>,
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn memory_stores() -> &'static Mutex<HashMap<String, Arc<dyn ObjectStore>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

impl Region {
    /// Opens a region from its config. Fails before any I/O on a malformed URL, unknown option or bad key.
    pub fn open(cfg: &RegionConfig, cancel: CancellationToken) -> Result<Self, RegionError> {
        let url = cfg.validate()?;
        let invalid = |reason: String| RegionError::InvalidConfig {
            region: cfg.name.clone(),
            reason,
        };
        let options = cfg.effective_options();
        // btar retries through its own helper (one policy, cancellable), so the HTTP client must not.
        let no_client_retry = object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        };
        let prefix = url.path().trim_matches('/').to_string();
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|_| invalid(format!("not a local path: {url}")))?;
                std::fs::create_dir_all(&dir).map_err(|e| {
                    invalid(format!("cannot create directory {}: {e}", dir.display()))
                })?;
                let fs = crate::local::open(&dir).map_err(invalid)?;
                let mut region = Self::from_store(cfg, fs, cancel)?;
                region.fs_root = Some(dir);
                return Ok(region);
            }
            "memory" => {
                let name = url.host_str().unwrap_or("default").to_string();
                memory_stores()
                    .lock()
                    .map_err(|_| invalid("memory store registry poisoned".into()))?
                    .entry(name)
                    .or_insert_with(|| Arc::new(object_store::memory::InMemory::new()))
                    .clone()
            }
            "s3" | "s3a" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .with_retry(no_client_retry);
                for (k, v) in &options {
                    let key = object_store::aws::AmazonS3ConfigKey::from_str(k)
                        .map_err(|_| invalid(format!("unknown S3 option `{k}`")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| invalid(e.to_string()))?)
            }
            "gs" => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url.as_str())
                    .with_retry(no_client_retry);
                for (k, v) in &options {
                    let key = object_store::gcp::GoogleConfigKey::from_str(k)
                        .map_err(|_| invalid(format!("unknown GCS option `{k}`")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| invalid(e.to_string()))?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .with_retry(no_client_retry);
                for (k, v) in &options {
                    let key = object_store::azure::AzureConfigKey::from_str(k)
                        .map_err(|_| invalid(format!("unknown Azure option `{k}`")))?;
                    b = b.with_config(key, v);
                }
                Arc::new(b.build().map_err(|e| invalid(e.to_string()))?)
            }
            other => return Err(invalid(format!("unsupported url scheme `{other}`"))),
        };
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() || url.scheme() == "memory" {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix.as_str()))
        };
        Self::from_store(cfg, store, cancel)
    }

    fn from_store(
        cfg: &RegionConfig,
        store: Arc<dyn ObjectStore>,
        cancel: CancellationToken,
    ) -> Result<Self, RegionError> {
        let store: Arc<dyn ObjectStore> = match cfg.faults()? {
            Some(f) => Arc::new(crate::faults::FaultyStore::new(store, f)),
            None => store,
        };
        Ok(Self {
            name: cfg.name.clone(),
            provider: cfg.provider(),
            url: cfg.url.clone(),
            store,
            key: cfg.resolve_key()?,
            retry: cfg.retry.into(),
            cancel,
            ordered_listing: !cfg.url.starts_with("file:"),
            fs_root: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The region's key; a clear error if none is configured, so nothing is written unsealed.
    pub fn key(&self) -> Result<&RegionKey, RegionError> {
        self.key.as_ref().ok_or_else(|| RegionError::MissingKey {
            region: self.name.clone(),
            env_var: format!(
                "BTAR_REGION_{}_KEY",
                self.name.to_ascii_uppercase().replace('-', "_")
            ),
        })
    }

    /// The same region bound to another cancellation token (e.g. one job's).
    pub fn with_cancel(&self, cancel: CancellationToken) -> Self {
        Self {
            cancel,
            ..self.clone()
        }
    }

    fn path(&self, key: &str) -> Result<Path, RegionError> {
        Path::parse(key).map_err(|e| RegionError::Store {
            region: self.name.clone(),
            op: "parse",
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    fn classify(e: object_store::Error) -> Attempt<object_store::Error> {
        use object_store::Error as E;
        match e {
            _ if is_denied(&e) => Attempt::Permanent(e),
            E::Generic { .. } | E::JoinError { .. } => Attempt::Transient(e),
            _ => Attempt::Permanent(e),
        }
    }

    fn map_err(
        &self,
        op: &'static str,
        key: &str,
        e: RetryError<object_store::Error>,
    ) -> RegionError {
        use object_store::Error as E;
        let (error, attempts) = match e {
            RetryError::Cancelled => return RegionError::Cancelled,
            RetryError::Failed { error, attempts } => (error, attempts),
        };
        let region = self.name.clone();
        let key = key.to_string();
        match error {
            E::NotFound { .. } => RegionError::NotFound { region, key },
            E::AlreadyExists { .. } | E::Precondition { .. } => {
                RegionError::AlreadyExists { region, key }
            }
            E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
                RegionError::Denied {
                    region,
                    key,
                    message: source.to_string(),
                }
            }
            e if is_denied(&e) => RegionError::Denied {
                region,
                key,
                message: e.to_string(),
            },
            E::NotSupported { .. } | E::NotImplemented { .. } => {
                RegionError::Unsupported { region, op }
            }
            e @ (E::Generic { .. } | E::JoinError { .. }) => RegionError::Unavailable {
                region,
                key,
                attempts,
                message: e.to_string(),
            },
            other => RegionError::Store {
                region,
                op,
                key,
                message: other.to_string(),
            },
        }
    }

    async fn run<T, F, Fut>(&self, op: &'static str, key: &str, f: F) -> Result<T, RegionError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, object_store::Error>>,
    {
        with_backoff(self.retry, &self.cancel, || async {
            f().await.map_err(Self::classify)
        })
        .await
        .map_err(|e| self.map_err(op, key, e))
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, RegionError> {
        let path = self.path(key)?;
        self.run("get", key, || async {
            self.store.get(&path).await?.bytes().await
        })
        .await
    }

    /// Bytes `range` of an object (a ranged GET): restores read packs piece by piece.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, RegionError> {
        let path = self.path(key)?;
        self.run("get_range", key, || {
            self.store.get_range(&path, range.start..range.end)
        })
        .await
    }

    /// Metadata of an object, or `None` if it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, RegionError> {
        let path = self.path(key)?;
        match self.run("head", key, || self.store.head(&path)).await {
            Ok(m) => Ok(Some(ObjectInfo {
                key: key.to_string(),
                size: m.size,
                last_modified: m.last_modified,
            })),
            Err(RegionError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes an object atomically: readers see the whole object or nothing.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), RegionError> {
        let path = self.path(key)?;
        self.run("put", key, || {
            self.store.put(&path, PutPayload::from_bytes(data.clone()))
        })
        .await
        .map(|_| ())
    }

    /// Writes an object only if absent. Returns `false` if it already existed. Stores without
    /// conditional writes fall back to check-then-write, which callers must confirm by reading back.
    pub async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool, RegionError> {
        let path = self.path(key)?;
        let opts = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let res = self
            .run("put", key, || {
                self.store
                    .put_opts(&path, PutPayload::from_bytes(data.clone()), opts())
            })
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(RegionError::AlreadyExists { .. }) => Ok(false),
            // A store without conditional puts: look, then write (idempotent for content-addressed
            // keys; the manifest and descriptor writers check what they find).
            Err(RegionError::Unsupported { .. }) => {
                if self.head(key).await?.is_some() {
                    return Ok(false);
                }
                self.put(key, data).await.map(|_| true)
            }
            Err(e) => Err(e),
        }
    }

    /// Streams a large object in parts; the object becomes visible only when every part is written.
    /// On error or cancellation the upload is aborted, leaving nothing visible.
    pub async fn put_multipart(
        &self,
        key: &str,
        mut parts: BoxStream<'_, Result<Bytes, RegionError>>,
    ) -> Result<u64, RegionError> {
        let path = self.path(key)?;
        let upload = self
            .run("put_multipart", key, || self.store.put_multipart(&path))
            .await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 * 1024 * 1024);
        let mut total = 0u64;
        let result: Result<(), RegionError> = async {
            while let Some(part) = parts.next().await {
                if self.cancel.is_cancelled() {
                    return Err(RegionError::Cancelled);
                }
                let part = part?;
                total += part.len() as u64;
                writer.wait_for_capacity(4).await.map_err(|e| {
                    self.map_err(
                        "put_multipart",
                        key,
                        RetryError::Failed {
                            error: e,
                            attempts: 1,
                        },
                    )
                })?;
                writer.put(part);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await.map_err(|e| {
                    self.map_err(
                        "put_multipart",
                        key,
                        RetryError::Failed {
                            error: e,
                            attempts: 1,
                        },
                    )
                })?;
                Ok(total)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Deletes an object; deleting a missing object succeeds (idempotent).
    pub async fn delete(&self, key: &str) -> Result<(), RegionError> {
        let path = self.path(key)?;
        match self.run("delete", key, || self.store.delete(&path)).await {
            Ok(()) | Err(RegionError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes staging files that killed writers left under `prefix` (filesystem regions; object
    /// stores discard an unfinished upload themselves, or by the bucket's lifecycle rule for
    /// incomplete multipart uploads). Only files older than `older_than` go: a live writer renames
    /// its staging file within seconds. Returns how many were removed.
    pub async fn sweep_staging(
        &self,
        prefix: &str,
        older_than: std::time::Duration,
    ) -> Result<u64, RegionError> {
        let Some(root) = &self.fs_root else {
            return Ok(0);
        };
        let dir = root.join(prefix.trim_matches('/'));
        let swept =
            tokio::task::spawn_blocking(move || crate::local::sweep_staging(&dir, older_than))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
        swept.map_err(|message| RegionError::Store {
            region: self.name.clone(),
            op: "sweep",
            key: prefix.to_string(),
            message,
        })
    }

    /// Lists every object under `prefix` (order unspecified: filesystem regions do not sort). On object
    /// stores, which list in key order, a failed page is retried from the last key seen, so long listings
    /// survive transient errors without buffering the whole listing.
    pub fn list(&self, prefix: &str) -> BoxStream<'_, Result<ObjectInfo, RegionError>> {
        let prefix = prefix.trim_end_matches('/').to_string();
        struct State<'a> {
            region: &'a Region,
            prefix: String,
            last: Option<Path>,
            inner: Option<BoxStream<'static, object_store::Result<object_store::ObjectMeta>>>,
            attempts: u32,
            done: bool,
        }
        let state = State {
            region: self,
            prefix,
            last: None,
            inner: None,
            attempts: 0,
            done: false,
        };
        futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                let prefix_path = match st.region.path(&st.prefix) {
                    Ok(p) => p,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                };
                let prefix_opt = if st.prefix.is_empty() {
                    None
                } else {
                    Some(&prefix_path)
                };
                let inner = st.inner.get_or_insert_with(|| match &st.last {
                    None => st.region.store.list(prefix_opt),
                    Some(last) => st.region.store.list_with_offset(prefix_opt, last),
                });
                let next = tokio::select! {
                    biased;
                    _ = st.region.cancel.cancelled() => {
                        st.done = true;
                        return Some((Err(RegionError::Cancelled), st));
                    }
                    n = inner.next() => n,
                };
                match next {
                    None => return None,
                    Some(Ok(meta)) => {
                        st.attempts = 0;
                        st.last = Some(meta.location.clone());
                        let info = ObjectInfo {
                            key: meta.location.to_string(),
                            size: meta.size,
                            last_modified: meta.last_modified,
                        };
                        return Some((Ok(info), st));
                    }
                    Some(Err(e)) => {
                        st.inner = None;
                        st.attempts += 1;
                        let message = e.to_string();
                        let transient = matches!(Self::classify(e), Attempt::Transient(_));
                        let resumable = st.last.is_none() || st.region.ordered_listing;
                        if !transient || !resumable || st.attempts >= st.region.retry.max_attempts {
                            st.done = true;
                            let err = RegionError::Unavailable {
                                region: st.region.name.clone(),
                                key: format!("{}/", st.prefix),
                                attempts: st.attempts,
                                message,
                            };
                            return Some((Err(err), st));
                        }
                        tokio::time::sleep(st.region.retry.initial * st.attempts).await;
                    }
                }
            }
        })
        .boxed()
    }
}

/// Whether the store refused for lack of permission: no retry helps, an operator must fix
/// ownership or modes. Filesystem errors arrive as `Generic` wrapping the `io::Error`.
fn is_denied(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    if matches!(e, E::PermissionDenied { .. } | E::Unauthenticated { .. }) {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            );
        }
        source = s.source();
    }
    false
}

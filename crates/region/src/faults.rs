//! Fault injection for tests: a store wrapper that fails a fraction of calls the way a flaky network
//! or a throttling endpoint does (a reset connection, a `503 Slow Down`, a request that hangs and
//! times out), adds latency and caps concurrency, so real processes can be run against an
//! unreliable region (region option `btar_faults = "rate=0.05,after=0.5,latency_ms=5,stall_ms=200,seed=7"`). In the style of object_store's
//! `ThrottledStore` and neon's `simulate_failures`; never meant for production regions.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::limit::LimitStore;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to inject. Parsed from `key=value` pairs separated by commas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Fraction of calls (0.0–1.0) that fail with a transient error before reaching the store.
    pub rate: f64,
    /// Mean added latency per call; each call waits a seeded random time in `[0, 2 × latency]`.
    pub latency: Duration,
    /// At most this many calls in flight (a throttled endpoint); `None` leaves concurrency alone.
    pub max_concurrency: Option<usize>,
    /// Fraction (0.0–1.0) of the injected write faults that strike after the store applied the call:
    /// the response is lost, so a retry meets its own earlier write.
    pub after: f64,
    /// How long a request that times out hangs before it fails: a third of the injected faults
    /// (when not zero), another third answer `503 Slow Down`, the rest a reset connection.
    pub stall: Duration,
    /// Seed of the decisions, so a failing run can be replayed.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            rate: 0.0,
            latency: Duration::ZERO,
            max_concurrency: None,
            after: 0.0,
            stall: Duration::ZERO,
            seed: 0,
        }
    }
}

impl FromStr for FaultConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut c = FaultConfig::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("fault setting `{pair}` is not key=value"))?;
            let bad = |e: &dyn fmt::Display| format!("fault setting `{k}`: `{v}`: {e}");
            match k.trim() {
                "rate" | "after" => {
                    let r: f64 = v.trim().parse().map_err(|e| bad(&e))?;
                    if !(0.0..=1.0).contains(&r) {
                        return Err(bad(&"must be within 0..=1"));
                    }
                    if k.trim() == "rate" {
                        c.rate = r;
                    } else {
                        c.after = r;
                    }
                }
                "latency_ms" => {
                    c.latency = Duration::from_millis(v.trim().parse().map_err(|e| bad(&e))?)
                }
                "stall_ms" => {
                    c.stall = Duration::from_millis(v.trim().parse().map_err(|e| bad(&e))?)
                }
                "concurrency" => {
                    let n: usize = v.trim().parse().map_err(|e| bad(&e))?;
                    if n == 0 {
                        return Err(bad(&"must be at least 1"));
                    }
                    c.max_concurrency = Some(n);
                }
                "seed" => c.seed = v.trim().parse().map_err(|e| bad(&e))?,
                other => {
                    return Err(format!(
                        "unknown fault setting `{other}` (rate, after, latency_ms, stall_ms, concurrency, seed)"
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// Shared decision state: one seeded generator for every call of the store (and its uploads).
#[derive(Debug)]
struct Dice {
    config: FaultConfig,
    rng: Mutex<StdRng>,
    injected: AtomicU64,
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pass,
    /// The request is lost on the way: the store never sees it.
    Lost(Fault),
    /// The store applies the call, then the response is lost.
    Unanswered(Fault),
}

/// How an injected fault shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Reset,
    /// A throttling endpoint's answer.
    SlowDown,
    /// No answer until the client gives up.
    TimedOut,
}

impl Dice {
    /// Latency to add, and what becomes of this call.
    fn roll(&self) -> (Duration, Fate) {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = if self.config.latency.is_zero() {
            Duration::ZERO
        } else {
            self.config.latency.mul_f64(rng.random::<f64>() * 2.0)
        };
        let fate = if self.config.rate > 0.0 && rng.random::<f64>() < self.config.rate {
            self.injected.fetch_add(1, Ordering::Relaxed);
            let fault = match rng.random_range(0..3u8) {
                0 => Fault::SlowDown,
                1 if !self.config.stall.is_zero() => Fault::TimedOut,
                _ => Fault::Reset,
            };
            if rng.random::<f64>() < self.config.after {
                Fate::Unanswered(fault)
            } else {
                Fate::Lost(fault)
            }
        } else {
            Fate::Pass
        };
        (wait, fate)
    }

    /// The error of an injected fault, after the hang of a request that times out.
    async fn fault(
        &self,
        kind: Fault,
        op: &'static str,
        location: Option<&Path>,
    ) -> object_store::Error {
        let at = location.map(|l| format!(" `{l}`")).unwrap_or_default();
        let what = match kind {
            Fault::Reset => "connection reset".to_string(),
            Fault::SlowDown => "503 Slow Down: please reduce your request rate".to_string(),
            Fault::TimedOut => {
                tokio::time::sleep(self.config.stall).await;
                format!("no answer within {:?}: timed out", self.config.stall)
            }
        };
        object_store::Error::Generic {
            store: "faults",
            source: format!("injected fault: {op}{at}: {what}").into(),
        }
    }

    /// Waits, then lets the call through or fails it before the store sees it. For reads, where a
    /// lost answer changes nothing in the store.
    async fn gate(&self, op: &'static str, location: Option<&Path>) -> Result<()> {
        let (wait, fate) = self.roll();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        match fate {
            Fate::Pass => Ok(()),
            Fate::Lost(f) | Fate::Unanswered(f) => Err(self.fault(f, op, location).await),
        }
    }

    /// Runs a write under the dice: it may be lost before the store, or applied with its answer lost.
    async fn write<T>(
        &self,
        op: &'static str,
        location: &Path,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let (wait, fate) = self.roll();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        match fate {
            Fate::Pass => call.await,
            Fate::Lost(f) => Err(self.fault(f, op, Some(location)).await),
            Fate::Unanswered(f) => {
                let _ = call.await;
                Err(self.fault(f, op, Some(location)).await)
            }
        }
    }
}

/// An object store that fails a configurable fraction of calls with transient errors (what a
/// connection reset looks like to object_store), adds latency, and optionally caps concurrency.
#[derive(Debug)]
pub struct FaultyStore<S: ObjectStore> {
    inner: Arc<LimitStore<S>>,
    dice: Arc<Dice>,
}

impl<S: ObjectStore> FaultyStore<S> {
    pub fn new(inner: S, config: FaultConfig) -> Self {
        // An unlimited cap is a semaphore too large to matter; one code path either way.
        let limit = config
            .max_concurrency
            .unwrap_or(tokio::sync::Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(LimitStore::new(inner, limit)),
            dice: Arc::new(Dice {
                config,
                rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
                injected: AtomicU64::new(0),
            }),
        }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.dice.injected.load(Ordering::Relaxed)
    }

    /// A listing whose first item is an injected error when the dice say so (one request per page:
    /// a fault lands where a page request would fail).
    fn gated_list(
        &self,
        list: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let dice = Arc::clone(&self.dice);
        stream::once(async move {
            match dice.gate("list", None).await {
                Ok(()) => list,
                Err(e) => stream::once(async { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

impl<S: ObjectStore> fmt::Display for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: ObjectStore> ObjectStore for FaultyStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.dice
            .write(
                "put",
                location,
                self.inner.put_opts(location, payload, opts),
            )
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.dice.gate("put_multipart", Some(location)).await?;
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            upload,
            dice: Arc::clone(&self.dice),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.dice.gate("get", Some(location)).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.dice.gate("get_ranges", Some(location)).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let dice = Arc::clone(&self.dice);
        let inner = Arc::clone(&self.inner);
        // Each deletion is one request: a fault fails that one, as a batch delete reports per key.
        locations
            .then(move |p| {
                let dice = Arc::clone(&dice);
                let inner = Arc::clone(&inner);
                async move {
                    let p = p?;
                    let target = p.clone();
                    let one = async move {
                        let sent = target.clone();
                        let mut done =
                            inner.delete_stream(stream::once(async { Ok(sent) }).boxed());
                        done.next().await.unwrap_or(Ok(target))
                    };
                    dice.write("delete", &p, one).await
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.gated_list(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.gated_list(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.dice.gate("list", prefix).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.dice
            .write("copy", to, self.inner.copy_opts(from, to, options))
            .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.dice
            .write("rename", to, self.inner.rename_opts(from, to, options))
            .await
    }
}

/// A multipart upload whose parts fail like single requests do.
#[derive(Debug)]
struct FaultyUpload {
    upload: Box<dyn MultipartUpload>,
    dice: Arc<Dice>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let dice = Arc::clone(&self.dice);
        let put = self.upload.put_part(data);
        Box::pin(async move {
            dice.gate("put_part", None).await?;
            put.await
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.dice.gate("complete_multipart", None).await?;
        self.upload.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    fn faulty(spec: &str) -> FaultyStore<InMemory> {
        FaultyStore::new(InMemory::new(), spec.parse().unwrap())
    }

    #[test]
    fn parses_settings_and_rejects_nonsense() {
        let c: FaultConfig = "rate=0.05, latency_ms=5,seed=7,concurrency=2"
            .parse()
            .unwrap();
        assert_eq!(c.rate, 0.05);
        assert_eq!(c.latency, Duration::from_millis(5));
        assert_eq!(c.seed, 7);
        assert_eq!(c.max_concurrency, Some(2));
        for bad in ["rate=2", "rate=x", "speed=1", "seed", "concurrency=0"] {
            assert!(bad.parse::<FaultConfig>().is_err(), "{bad}");
        }
    }

    /// The injected fraction is close to the rate, errors are the transient kind, and the same seed
    /// makes the same decisions.
    #[tokio::test]
    async fn fails_about_rate_of_calls_deterministically() {
        let outcomes = |store: FaultyStore<InMemory>| async move {
            let mut v = Vec::new();
            for i in 0..2000 {
                let r = store
                    .put(&Path::from(format!("k/{i}")), PutPayload::from_static(b"x"))
                    .await;
                if let Err(e) = &r {
                    assert!(
                        matches!(e, object_store::Error::Generic { .. }),
                        "not transient: {e}"
                    );
                }
                v.push(r.is_ok());
            }
            (v, store.injected())
        };
        let (a, injected) = outcomes(faulty("rate=0.05,seed=7")).await;
        let (b, _) = outcomes(faulty("rate=0.05,seed=7")).await;
        assert_eq!(a, b, "same seed, same faults");
        assert!((60..=140).contains(&injected), "{injected} of 2000");
        let failed = a.iter().filter(|ok| !**ok).count() as u64;
        assert_eq!(failed, injected);
        let (c, _) = outcomes(faulty("rate=0.05,seed=8")).await;
        assert_ne!(a, c, "another seed, other faults");
    }

    /// With `after=1` every fault strikes once the store applied the write: the caller sees an
    /// error, the object is there.
    #[tokio::test]
    async fn unanswered_writes_are_applied() {
        let store = faulty("rate=1,after=1");
        let p = Path::from("k");
        assert!(store.put(&p, PutPayload::from_static(b"x")).await.is_err());
        assert!(
            store.inner.head(&p).await.is_ok(),
            "applied despite the error"
        );
        let lost = faulty("rate=1,after=0");
        assert!(lost.put(&p, PutPayload::from_static(b"x")).await.is_err());
        assert!(
            lost.inner.head(&p).await.is_err(),
            "never reached the store"
        );
    }

    #[tokio::test]
    async fn listings_fail_at_their_first_page() {
        let store = faulty("rate=1");
        let first = store.list(None).next().await.unwrap();
        assert!(matches!(first, Err(object_store::Error::Generic { .. })));
        let clean = faulty("rate=0");
        clean
            .put(&Path::from("a"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(clean.list(None).count().await, 1);
    }

    /// Faults show as a reset, a `503 Slow Down` or a request that hangs `stall_ms` then times out.
    #[tokio::test(start_paused = true)]
    async fn faults_reset_throttle_and_time_out() {
        let store = faulty("rate=1,stall_ms=500,seed=3");
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..30 {
            let start = tokio::time::Instant::now();
            let e = store
                .put(&Path::from(format!("k/{i}")), PutPayload::from_static(b"x"))
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let kind = ["connection reset", "503 Slow Down", "timed out"]
                .into_iter()
                .find(|k| e.contains(k))
                .unwrap_or_else(|| panic!("unexpected fault: {e}"));
            let hung = start.elapsed() >= Duration::from_millis(500);
            assert_eq!(hung, kind == "timed out", "{e}");
            seen.insert(kind);
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn adds_latency() {
        let store = faulty("latency_ms=100,seed=1");
        let start = tokio::time::Instant::now();
        for i in 0..20 {
            store
                .put(&Path::from(format!("k/{i}")), PutPayload::from_static(b"x"))
                .await
                .unwrap();
        }
        let took = start.elapsed();
        // 20 calls of mean 100 ms each.
        assert!(
            took > Duration::from_millis(1000) && took < Duration::from_millis(3000),
            "{took:?}"
        );
    }
}

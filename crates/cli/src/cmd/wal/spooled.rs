//! `wal-fetch` through the local spool, and the hidden `wal-prefetch` that fills it.
//!
//! A recovering database runs one restore command per log file, so each file paid process start,
//! a TLS handshake, a GET of the location's descriptor and the GET of the file. Now the descriptor
//! is kept locally, and after a file is delivered a detached `wal-prefetch` (at most one per
//! spool, by a lock) fetches the next files, sealed, into the spool; the next request opens its
//! file from there with the region's key and no network. A spooled file that does not
//! authenticate is discarded and fetched from the store; a cached descriptor that opens nothing is
//! dropped and read again. Exit codes stay those of the store: 1 only for "not archived".

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use btar_engine::spool::{self, Spool, SpoolLimits};
use btar_engine::{Engine, EngineError};
use btar_format::{FormatError, Location};

use super::super::Ctx;

/// How long a request waits for a running prefetcher to bring its file before fetching it itself.
const WAIT_FOR_PREFETCHER: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct PrefetchArgs {
    #[arg(long)]
    service: String,
    #[arg(long)]
    region: String,
    /// Length of the file just delivered (PostgreSQL's segment size).
    #[arg(long)]
    len: u64,
    /// The file just delivered; the ones after it are fetched.
    name: String,
}

/// The spool of `service` in `region`, if the config keeps one and its directory is usable.
fn spool_for(ctx: &Ctx, service: &str, region: &str) -> Option<Spool> {
    let s = &ctx.cfg.wal_fetch;
    if s.prefetch == 0 && !s.cache_descriptor {
        return None;
    }
    let rc = ctx.cfg.region(region).ok()?;
    // A changed URL or endpoint is another store: its descriptor and files must not be reused.
    // Option values that may be credentials stay out of the hash (and so out of the path).
    let mut h = Fnv::default();
    h.write(rc.url.as_bytes());
    for (k, v) in &rc.options {
        let k = k.to_ascii_lowercase();
        if !["secret", "key", "token", "password"]
            .iter()
            .any(|w| k.contains(w))
        {
            h.write(k.as_bytes());
            h.write(v.as_bytes());
        }
    }
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let dir =
        ctx.cfg
            .spool_root()
            .join(format!("{}--{}--{:016x}", safe(region), safe(service), h.0));
    let limits = SpoolLimits {
        max_files: s.prefetch.max(1) * 2,
        max_bytes: s.spool_max_mib.saturating_mul(1 << 20),
    };
    match Spool::open(&dir, limits) {
        Ok(sp) => Some(sp),
        Err(e) => {
            tracing::warn!(error = %e, "no log spool; fetching from the store");
            None
        }
    }
}

/// FNV-1a: a stable name for a spool directory (not a security boundary: files are authenticated).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes.iter().chain([0xffu8].iter()) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Whether `e` is a stored object that would not open: with a cached descriptor, that cache may be
/// what is wrong.
fn opens_nothing(e: &anyhow::Error) -> bool {
    let bad = |f: &FormatError| {
        matches!(
            f,
            FormatError::WrongKeyOrTampered { .. } | FormatError::Damaged { .. }
        )
    };
    e.chain().any(|c| {
        c.downcast_ref::<FormatError>().is_some_and(bad)
            || matches!(c.downcast_ref::<EngineError>(), Some(EngineError::Format(f)) if bad(f))
    })
}

/// The location, from the cached descriptor when there is one (`true`), else from the store.
async fn location(
    ctx: &Ctx,
    spool: Option<&Spool>,
    service: &str,
    region: &str,
) -> anyhow::Result<(Location, bool)> {
    let cache = spool.filter(|_| ctx.cfg.wal_fetch.cache_descriptor);
    if let Some(sp) = cache
        && let Some(raw) = sp.descriptor()
    {
        let r = ctx.cfg.open_region(region, &ctx.cancel)?;
        match Location::open_cached(&r, service, &raw) {
            Ok(loc) => {
                let loc = loc.with_compression_level(ctx.cfg.storage.compression_level);
                return Ok((loc, true));
            }
            Err(e) => {
                tracing::info!(error = %e, "cached descriptor unusable; reading it again");
                sp.forget_descriptor();
            }
        }
    }
    let loc = ctx.location(service, region).await?;
    if let Some(sp) = cache
        && let Err(e) = sp.keep_descriptor(&loc)
    {
        tracing::warn!(error = %e, "cannot cache the descriptor");
    }
    Ok((loc, false))
}

/// `wal-fetch NAME DEST`: `false` when the archive does not have the file.
pub async fn fetch(
    ctx: &Ctx,
    service: &str,
    region: &str,
    name: &str,
    dest: &Path,
) -> anyhow::Result<bool> {
    let spool = spool_for(ctx, service, region);
    let (loc, cached) = location(ctx, spool.as_ref(), service, region).await?;
    let r = fetch_at(ctx, spool.as_ref(), &loc, service, name, dest).await;
    let (found, loc) = match (r, &spool) {
        (Err(e), Some(sp)) if cached && opens_nothing(&e) => {
            tracing::warn!(error = %format!("{e:#}"), "a file did not open with the cached descriptor; reading it again");
            sp.forget_descriptor();
            let (loc, _) = location(ctx, Some(sp), service, region).await?;
            (
                fetch_at(ctx, Some(sp), &loc, service, name, dest).await?,
                loc,
            )
        }
        (r, _) => (r?, loc),
    };
    if !found {
        // "Not archived" ends recovery, so it is said only of a location that is there: one opened
        // from the cached descriptor may have vanished since (an unmounted region, a deleted
        // bucket), and an empty listing there proves nothing.
        loc.ensure_present().await.with_context(|| {
            format!("`{name}` was not found, and the location itself is gone: not answering \"not archived\"")
        })?;
    }
    Ok(found)
}

async fn fetch_at(
    ctx: &Ctx,
    spool: Option<&Spool>,
    loc: &Location,
    service: &str,
    name: &str,
    dest: &Path,
) -> anyhow::Result<bool> {
    let engine = ctx.engine_of(loc)?;
    let spool = spool.filter(|_| ctx.cfg.wal_fetch.prefetch > 0);
    // Only files of a sequence are ever spooled; others (history files) go to the store at once.
    let log_dir = engine
        .log_dir(name)
        .filter(|_| engine.fetch_sequence(name, 0).is_some());
    if let (Some(sp), Some(dir)) = (spool, &log_dir)
        && let Some(plain) = take_or_wait(sp, loc, dir, name).await
    {
        let len = plain.len() as u64;
        btar_format::deliver_file(plain, dest).await?;
        sp.record_hit(name);
        tracing::debug!(file = name, "delivered from the spool");
        ahead(ctx, sp, engine, service, loc, name, len);
        return Ok(true);
    }
    if !engine.fetch_log(loc, name, dest).await? {
        return Ok(false);
    }
    if let Some(sp) = spool {
        let len = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
        ahead(ctx, sp, engine, service, loc, name, len);
    }
    Ok(true)
}

/// The spooled file, waiting while a prefetcher runs that may be bringing it.
async fn take_or_wait(sp: &Spool, loc: &Location, dir: &str, name: &str) -> Option<Vec<u8>> {
    let start = Instant::now();
    loop {
        if sp.contains(name) {
            return sp.take(loc, dir, name).await;
        }
        if !sp.prefetcher_active() || start.elapsed() > WAIT_FOR_PREFETCHER {
            // Between the check and the lock's release the prefetcher may have finished it.
            return if sp.contains(name) {
                sp.take(loc, dir, name).await
            } else {
                None
            };
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// After `name` was delivered: prunes the spool and, unless it holds at least half of what comes
/// next or a prefetcher runs, starts one.
fn ahead(
    ctx: &Ctx,
    sp: &Spool,
    engine: &dyn Engine,
    service: &str,
    loc: &Location,
    name: &str,
    len: u64,
) {
    let Some(seq) = engine.fetch_sequence(name, len) else {
        return;
    };
    sp.prune(&*seq, name);
    let k = ctx.cfg.wal_fetch.prefetch;
    let next = spool::next_names(&*seq, name, k);
    let present = next.iter().filter(|n| sp.contains(n)).count();
    if present > 0 && present * 2 >= next.len() {
        return;
    }
    if sp.prefetcher_active() {
        return;
    }
    sp.mark_starting();
    if let Err(e) = spawn_prefetcher(ctx, sp, service, loc.region().name(), name, len) {
        tracing::warn!(error = %format!("{e:#}"), "cannot start the prefetcher");
    }
}

fn spawn_prefetcher(
    ctx: &Ctx,
    sp: &Spool,
    service: &str,
    region: &str,
    name: &str,
    len: u64,
) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("own executable")?;
    let log = sp.dir().join("prefetch.log");
    let err = std::fs::File::create(&log).with_context(|| log.display().to_string())?;
    // Its own process group and no inherited pipes: the restore command returns at once, and a
    // signal to the database's process group does not cut a write short.
    std::process::Command::new(exe)
        .arg("--config")
        .arg(&ctx.cfg.path)
        .arg("-v")
        .args(["wal-prefetch", "--service", service, "--region", region])
        .arg("--len")
        .arg(len.to_string())
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .process_group(0)
        .spawn()
        .context("spawning wal-prefetch")?;
    Ok(())
}

impl PrefetchArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let t = Instant::now();
        let Some(sp) = spool_for(ctx, &self.service, &self.region) else {
            return Ok(ExitCode::SUCCESS);
        };
        let Some(_lock) = sp.try_lock()? else {
            return Ok(ExitCode::SUCCESS);
        };
        sp.clear_starting();
        let (loc, _) = location(ctx, Some(&sp), &self.service, &self.region).await?;
        let engine = ctx.engine_of(&loc)?;
        let Some(seq) = engine.fetch_sequence(&self.name, self.len) else {
            return Ok(ExitCode::SUCCESS);
        };
        let files: Vec<(String, String)> =
            spool::next_names(&*seq, &self.name, ctx.cfg.wal_fetch.prefetch)
                .into_iter()
                .filter_map(|n| Some((engine.log_dir(&n)?, n)))
                .collect();
        let n = sp
            .fill(&loc, &files, ctx.cfg.wal_fetch.parallel)
            .await
            .with_context(|| format!("prefetching after {}", self.name))?;
        tracing::info!(after = %self.name, spooled = n, ms = t.elapsed().as_millis() as u64, "prefetched");
        Ok(ExitCode::SUCCESS)
    }
}

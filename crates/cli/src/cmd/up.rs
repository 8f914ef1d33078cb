//! `btar up`: the embedded default. One directory holds a config, two filesystem regions with their
//! own keys, and a local database: a PostgreSQL cluster archiving through `btar wal-push`, or with
//! `--engine mysql` a MariaDB whose binlog btar follows while it serves; then the first primary
//! backup is taken and copied to the secondary region. Re-running reuses what exists.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use btar_engine::{EngineKind, Engines, LocalServer, LocalSpec};
use btar_region::{CancellationToken, RegionKey};

use super::Ctx;
use crate::output::Out;
use btar_control::{Config, Roles};

const SERVICE: &str = "demo";
const HOME: &str = "local-home";
const AWAY: &str = "local-away";

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Directory for the embedded default: config, keys, regions and the local database.
    #[arg(long, default_value = "btar-data")]
    dir: PathBuf,
    /// The local database: `pg` (PostgreSQL, the default) or `mysql` (MariaDB). A directory set up
    /// before keeps its engine.
    #[arg(long)]
    engine: Option<EngineKind>,
    /// Set up only; take no backup.
    #[arg(long)]
    no_backup: bool,
    /// Exit after the first backup and copy instead of serving the API and running the replicator
    /// (and, for MariaDB, the binlog follower); the local database keeps running.
    #[arg(long)]
    no_serve: bool,
    /// Address of the API and console (default: the config's; a new config takes 127.0.0.1:7480, or
    /// a free port when that is taken).
    #[arg(long)]
    listen: Option<String>,
}

impl UpArgs {
    pub async fn run(
        self,
        engines: Engines,
        out: Out,
        cancel: CancellationToken,
    ) -> anyhow::Result<ExitCode> {
        create_private_dir(&self.dir)?;
        let dir = std::fs::canonicalize(&self.dir)?;
        let cfg_path = dir.join("btar.toml");
        let kind = engine_of(&cfg_path, self.engine)?;
        let local = engines.get(kind)?.local_server().with_context(|| {
            format!(
                "this btar's {} engine cannot run a local server",
                kind.product()
            )
        })?;
        if let Some(code) = reexec_as_db_user(local, &dir, &cancel).await? {
            return Ok(code);
        }
        if !cfg_path.exists() {
            write_config(kind, local, &dir, &cfg_path, self.listen.as_deref())?;
        }
        let cfg = Config::load(&cfg_path)?;
        // The API's address is taken before anything starts, so a busy port fails at once instead
        // of after initdb and the first backup.
        let listener = if self.no_serve {
            None
        } else {
            let listen = self.listen.as_deref().unwrap_or(&cfg.server.listen);
            Some(super::server::bind(listen).await?)
        };
        let svc = cfg.service(None)?.clone();
        let spec = spec(kind, &dir, &cfg_path, &svc.name, 0)?;
        let agent = svc.agent().cloned().unwrap_or_default();
        // The home location is created (as `btar service init` does) before PostgreSQL's
        // archive_command first calls `wal-push`, or the binlog follower its first push (neither
        // creates one), whatever flags this run has.
        btar_control::ControlPlane::open(cfg.clone(), engines.clone(), cancel.clone())
            .await?
            .init_location(&svc.name)
            .await
            .with_context(|| format!("creating the location of `{}`", svc.name))?;
        // A server the user configured is theirs to run.
        let started = if local.is_ours(&spec, &agent) {
            if !spec.password_file.exists() {
                write_secret(
                    &spec.password_file,
                    &hex::encode(rand::random::<[u8; 24]>()),
                )?;
            }
            local.ensure_running(&spec, &agent)?
        } else {
            false
        };
        let ctx = Ctx {
            cfg,
            engines: engines.clone(),
            out,
            cancel,
            remote: None,
        };
        let Some(listener) = listener else {
            return self.first_backup(&ctx, &svc, &cfg_path).await;
        };
        let forks_before = local.running(&dir);
        let follows = ctx.engines.get(kind)?.log_follower().is_some();
        let streams = ctx.engines.get(kind)?.log_streamer().is_some();
        let result = async {
            self.first_backup(&ctx, &svc, &cfg_path).await?;
            let cp = ctx.control().await?;
            let serving =
                super::server::serve(&ctx, cp, listener, Roles::default(), |addr, token| {
                    let logs = match (follows, streams) {
                        (true, true) => format!(
                            "the binlog is streamed to `{HOME}` and `{AWAY}` as it is written (within about a second), archived as each file closes and shipped to `{AWAY}`"
                        ),
                        (true, false) => format!(
                            "the binlog is followed, archived and shipped to `{AWAY}` as each file closes"
                        ),
                        (false, true) => format!(
                            "WAL is streamed to `{HOME}` and `{AWAY}` as it is written (within about a second) and shipped to `{AWAY}` as it is archived"
                        ),
                        (false, false) => format!("WAL is shipped to `{AWAY}` as it is archived"),
                    };
                    format!(
                        "serving: API {addr}/v1 (Authorization: Bearer {token}), console {addr}/, \
                         metrics {addr}/metrics; {logs}. Ctrl-C stops."
                    )
                });
            // The streamer beside the server (`btar log-stream`'s loop). A demo whose streamer
            // cannot start still archives and ships complete files, so its failure is said and
            // `btar up` goes on serving.
            let streaming = async {
                if streams {
                    let how = super::log_stream::How::default_for_up();
                    if let Err(e) = super::log_stream::stream(&ctx, Some(&svc.name), how).await {
                        tracing::error!(error = %format!("{e:#}"), "the log streamer stopped; the log still reaches the regions as each file is archived");
                        eprintln!("btar up: the log streamer stopped ({e:#}); the log still reaches the regions as each file is archived");
                    }
                }
                Ok::<_, anyhow::Error>(())
            };
            // The binlog follower beside the server: it stops with the same cancellation, and a
            // failure it cannot retry (bad settings, a refused push) stops `btar up` — a demo
            // that silently archives nothing would promise a PITR it cannot keep.
            let following = async {
                if follows {
                    super::log_follow::follow(&ctx, &svc, None).await?;
                }
                Ok::<_, anyhow::Error>(())
            };
            let (code, _, _) = tokio::try_join!(serving, streaming, following)?;
            Ok(code)
        }
        .await;
        if result.is_err() {
            ctx.cancel.cancel();
        }
        // Ctrl-C, SIGTERM or a failure: stop what this run started, not what was running before.
        let stopping: Vec<PathBuf> = started
            .then(|| local.data_dir(&spec))
            .into_iter()
            .chain(
                local
                    .running(&dir)
                    .into_iter()
                    .filter(|f| !forks_before.contains(f)),
            )
            .collect();
        for data_dir in stopping {
            if let Err(e) = local.stop(&agent, &data_dir) {
                eprintln!(
                    "warning: could not stop {} in {}: {e:#}",
                    kind.product(),
                    data_dir.display()
                );
            }
        }
        result
    }

    async fn first_backup(
        &self,
        ctx: &Ctx,
        svc: &btar_control::ServiceConfig,
        cfg_path: &Path,
    ) -> anyhow::Result<ExitCode> {
        let engine = ctx.engines.get(svc.engine)?;
        let conninfo = engine
            .local_server()
            .zip(svc.agent())
            .and_then(|(l, a)| l.describe(a));
        let password_file = cfg_path.with_file_name(password_file(svc.engine));
        let mut report = serde_json::json!({
            "config": cfg_path,
            "service": svc.name,
            "engine": svc.engine,
            "server": conninfo,
            "password_file": password_file,
            "regions": [svc.cloud.clone(), svc.additional_backup_regions.clone()],
        });
        if svc.engine == EngineKind::Pg {
            // Named so before `server` existed; scripts read it.
            report["postgres"] = serde_json::json!(conninfo);
        }
        if !self.no_backup {
            let (created, copies) = super::backup::take(ctx, &svc.name, true).await?;
            report["backup"] = serde_json::to_value(&created)?;
            report["copies"] = serde_json::to_value(&copies)?;
        }
        let c = cfg_path.display();
        ctx.out.emit(&report, || {
            let conninfo = conninfo.as_deref().unwrap_or("");
            let mut s = format!(
                "btar is up: service `{}` ({}: {conninfo}; over TCP with the password in {}), \
                 primary region `{}`, secondary {:?}\n",
                svc.name,
                svc.engine.product(),
                password_file.display(),
                svc.cloud,
                svc.additional_backup_regions
            );
            if let Some(b) = report.get("backup") {
                s.push_str(&format!(
                    "backup {} committed in `{}`\n",
                    b["backup_name"].as_str().unwrap_or(""),
                    svc.cloud
                ));
            }
            for c in report["copies"].as_array().into_iter().flatten() {
                s.push_str(&format!(
                    "copy job {} to `{}`: {}\n",
                    c["job"]["copy_job_id"].as_str().unwrap_or(""),
                    c["job"]["destination_region"].as_str().unwrap_or(""),
                    c["job"]["state"].as_str().unwrap_or("")
                ));
            }
            s.push_str(&format!(
                "next:\n  btar --config {c} backup list {n}\n  btar --config {c} backup create {n}\n  \
                 btar --config {c} copy-jobs list\n  \
                 btar --config {c} report {n} --period hour\n  \
                 btar --config {c} verify {n} --region {a}\n  \
                 btar --config {c} fork {n} --source secondary --name {n}-fork\n",
                n = svc.name,
                a = AWAY
            ));
            if engine.log_follower().is_some() && self.no_serve {
                s.push_str(&format!(
                    "the binlog is archived while `btar up` serves, or by `btar -c {c} log-follow`\n"
                ));
            }
            s
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Creates `dir` readable by its owner only (it holds the region keys, the API token and the
/// database password); an existing directory keeps its mode.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// PostgreSQL will not run as root, and its archive_command (btar) runs as its user (MariaDB: its
/// files must be readable by the btar that runs mariadb-backup); so when we are root, everything
/// under `dir` belongs to that user and btar up runs as it. `setpriv` execs btar
/// directly (runuser would SIGKILL it two seconds after a Ctrl-C, before it has stopped PostgreSQL),
/// and a SIGTERM sent to this process is passed on.
async fn reexec_as_db_user(
    local: &dyn LocalServer,
    dir: &Path,
    cancel: &CancellationToken,
) -> anyhow::Result<Option<ExitCode>> {
    let Some(os_user) = local.os_user() else {
        return Ok(None);
    };
    let (user, uid, gid) = (os_user.name, os_user.uid, os_user.gid);
    local.hand_over(dir)?;
    let reachable = std::process::Command::new("runuser")
        .args(["-u", &user, "--", "test", "-w"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !reachable {
        bail!(
            "{} is not reachable by the `{user}` user the database runs as (is it under /root?); pass --dir /var/lib/btar",
            dir.display()
        );
    }
    let exe = std::env::current_exe()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let home = os_user.home.unwrap_or_else(|| "/".into());
    let mut child = tokio::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--init-groups")
        .arg("--")
        .arg(exe)
        .args(args)
        .env("USER", &user)
        .env("LOGNAME", &user)
        .env("HOME", home)
        .spawn()
        .context("re-running btar up as the database user (setpriv)")?;
    let status = tokio::select! {
        status = child.wait() => status?,
        _ = cancel.cancelled() => {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            child.wait().await?
        }
    };
    Ok(Some(ExitCode::from(status.code().unwrap_or(1) as u8)))
}

/// `preferred` when it is free, else a free port (both on loopback).
fn port_or_free(preferred: u16, udp: bool) -> anyhow::Result<u16> {
    let free = |port: u16| -> std::io::Result<u16> {
        Ok(if udp {
            std::net::UdpSocket::bind(("127.0.0.1", port))?
                .local_addr()?
                .port()
        } else {
            std::net::TcpListener::bind(("127.0.0.1", port))?
                .local_addr()?
                .port()
        })
    };
    Ok(free(preferred).or_else(|_| free(0))?)
}

fn write_key(path: &Path) -> anyhow::Result<()> {
    write_secret(path, &RegionKey::generate().to_hex())
}

/// Creates a file only its owner can read.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    Ok(())
}

/// The file holding the administrator's password for TCP connections (`pg-password`,
/// `mysql-password`), beside the config, mode 0600.
fn password_file(kind: EngineKind) -> String {
    format!("{kind}-password")
}

/// The engine of the demo in the directory of `cfg_path`: the one it was set up with, else
/// `--engine`, else PostgreSQL. Asking an existing demo for another engine is refused.
fn engine_of(cfg_path: &Path, asked: Option<EngineKind>) -> anyhow::Result<EngineKind> {
    if !cfg_path.exists() {
        return Ok(asked.unwrap_or(EngineKind::Pg));
    }
    let cfg = Config::load(cfg_path)?;
    let existing = cfg.service(None)?.engine;
    if let Some(asked) = asked
        && asked != existing
    {
        bail!(
            "{} was set up for {} (service `{}`), not {}: pass another --dir for a {} demo",
            cfg_path.display(),
            existing.product(),
            cfg.service(None)?.name,
            asked.product(),
            asked.product()
        );
    }
    Ok(existing)
}

/// The local server of `btar up` in `dir`: archiving through this btar with the config at
/// `cfg_path`.
fn spec(
    kind: EngineKind,
    dir: &Path,
    cfg_path: &Path,
    service: &str,
    port: u16,
) -> anyhow::Result<LocalSpec> {
    let exe = std::env::current_exe()?;
    Ok(LocalSpec {
        dir: dir.to_path_buf(),
        port,
        archive_command: format!(
            "{} --config {} wal-push --service {service} %p",
            exe.display(),
            cfg_path.display()
        ),
        password_file: cfg_path.with_file_name(password_file(kind)),
    })
}

fn write_config(
    kind: EngineKind,
    local: &dyn LocalServer,
    dir: &Path,
    cfg_path: &Path,
    listen: Option<&str>,
) -> anyhow::Result<()> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let mut regions = String::new();
    for name in [HOME, AWAY] {
        let key = keys.join(format!("{name}.key"));
        if !key.exists() {
            write_key(&key)?;
        }
        regions.push_str(&format!(
            "[[region]]\nname = \"{name}\"\nprovider = \"local\"\nurl = \"file://{}\"\nkey = \"file:{}\"\n\n",
            dir.join("regions").join(name).display(),
            key.display()
        ));
    }
    let token = dir.join("api-token");
    if !token.exists() {
        write_secret(&token, &hex::encode(rand::random::<[u8; 24]>()))?;
    }
    let listen = match listen {
        Some(l) => l.to_string(),
        None => format!("127.0.0.1:{}", port_or_free(7480, false)?),
    };
    let notify = format!("127.0.0.1:{}", port_or_free(7481, true)?);
    let port = port_or_free(0, false)?;
    let agent = local.settings(&spec(kind, dir, cfg_path, SERVICE, port)?);
    let agent = toml::to_string(&agent).context("writing the server's settings")?;
    let text = format!(
        "# Written by `btar up`: the embedded default. Edit freely.\n\n\
         [server]\nlisten = \"{listen}\"\nnotify = \"{notify}\"\ntoken = \"file:{}\"\n\n\
         [[plan]]\nname = \"daily\"\nschedule = \"0 3 * * *\"\nretention_days = 7\nsecondary_retention_days = 30\n\n\
         {regions}\
         [[service]]\nname = \"{SERVICE}\"\nengine = \"{kind}\"\ncloud = \"{HOME}\"\nplan = \"daily\"\n\
         additional_backup_regions = [\"{AWAY}\"]\n\n\
         [service.{kind}]\n{agent}",
        token.display(),
    );
    std::fs::write(cfg_path, text).with_context(|| format!("writing {}", cfg_path.display()))
}

//! `btar up`: the embedded default. One directory holds a config, two filesystem regions with their
//! own keys, and a local PostgreSQL cluster archiving through `btar wal-push`; then the first primary
//! backup is taken and copied to the secondary region. Re-running reuses what exists.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use btar_engine_pg::cluster;
use btar_region::{CancellationToken, RegionKey};

use super::Ctx;
use crate::output::Out;
use btar_control::{Config, Roles};

const SERVICE: &str = "demo";
const HOME: &str = "local-home";
const AWAY: &str = "local-away";

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Directory for the embedded default: config, keys, regions and the local PostgreSQL.
    #[arg(long, default_value = "btar-data")]
    dir: PathBuf,
    /// Set up only; take no backup.
    #[arg(long)]
    no_backup: bool,
    /// Exit after the first backup and copy instead of serving the API and running the replicator.
    #[arg(long)]
    no_serve: bool,
}

impl UpArgs {
    pub async fn run(self, out: Out, cancel: CancellationToken) -> anyhow::Result<ExitCode> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let dir = std::fs::canonicalize(&self.dir)?;
        if let Some(code) = reexec_as_db_user(&dir)? {
            return Ok(code);
        }
        let cfg_path = dir.join("btar.toml");
        if !cfg_path.exists() {
            let port = free_port()?;
            write_config(&dir, &cfg_path, port)?;
        }
        let cfg = Config::load(&cfg_path)?;
        let svc = cfg.service(None)?.clone();
        let pg_dir = dir.join("pg");
        ensure_cluster(&cfg, &svc.name, &cfg_path, &pg_dir)?;
        let ctx = Ctx { cfg, out, cancel };

        let mut report = serde_json::json!({
            "config": cfg_path,
            "service": svc.name,
            "postgres": svc.pg.as_ref().map(|p| p.conninfo.clone()),
            "regions": [svc.cloud.clone(), svc.additional_backup_regions.clone()],
        });
        if !self.no_backup {
            let (created, copies) = super::backup::take(&ctx, &svc.name, true).await?;
            report["backup"] = serde_json::to_value(&created)?;
            report["copies"] = serde_json::to_value(&copies)?;
        }
        let c = cfg_path.display();
        ctx.out.emit(&report, || {
            let conninfo = svc.pg.as_ref().map(|p| p.conninfo.as_str()).unwrap_or("");
            let mut s = format!(
                "btar is up: service `{}` (PostgreSQL: {conninfo}), primary region `{}`, secondary {:?}\n",
                svc.name, svc.cloud, svc.additional_backup_regions
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
                "next:\n  btar -c {c} backup list {n}\n  btar -c {c} backup create {n}\n  \
                 btar -c {c} copy-jobs list\n  \
                 btar -c {c} report {n} --period hour\n  \
                 btar -c {c} verify {n} --region {a}\n  \
                 btar -c {c} fork {n} --source secondary --name {n}-fork\n",
                n = svc.name,
                a = AWAY
            ));
            s
        })?;
        if self.no_serve {
            return Ok(ExitCode::SUCCESS);
        }
        let cp = ctx.control().await?;
        let listen = ctx.cfg.server.listen.clone();
        super::server::serve(&ctx, cp, &listen, Roles::default(), |addr, token| {
            format!(
                "serving: API {addr}/v1 (Authorization: Bearer {token}), console {addr}/, \
                 metrics {addr}/metrics; WAL is shipped to `{AWAY}` as it is archived. Ctrl-C stops."
            )
        })
        .await
    }
}

/// PostgreSQL will not run as root, and its archive_command (btar) runs as its user; so when we are
/// root, everything under `dir` belongs to that user and btar up runs as it.
fn reexec_as_db_user(dir: &Path) -> anyhow::Result<Option<ExitCode>> {
    let Some((user, _, _)) = cluster::db_user() else {
        return Ok(None);
    };
    cluster::hand_over(dir)?;
    let reachable = std::process::Command::new("runuser")
        .args(["-u", &user, "--", "test", "-w"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !reachable {
        bail!(
            "{} is not reachable by the `{user}` user PostgreSQL runs as (is it under /root?); pass --dir /var/lib/btar",
            dir.display()
        );
    }
    let exe = std::env::current_exe()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = std::process::Command::new("runuser")
        .args(["-u", &user, "--"])
        .arg(exe)
        .args(args)
        .status()
        .context("re-running btar up as the database user")?;
    Ok(Some(ExitCode::from(status.code().unwrap_or(1) as u8)))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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

fn write_config(dir: &Path, cfg_path: &Path, port: u16) -> anyhow::Result<()> {
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
    let text = format!(
        "# Written by `btar up`: the embedded default. Edit freely.\n\n\
         [server]\nlisten = \"127.0.0.1:7480\"\nnotify = \"127.0.0.1:7481\"\ntoken = \"file:{}\"\n\n\
         [[plan]]\nname = \"daily\"\nschedule = \"0 3 * * *\"\nretention_days = 7\nsecondary_retention_days = 30\n\n\
         {regions}\
         [[service]]\nname = \"{SERVICE}\"\nengine = \"pg\"\ncloud = \"{HOME}\"\nplan = \"daily\"\n\
         additional_backup_regions = [\"{AWAY}\"]\n\
         pg = {{ conninfo = \"host=127.0.0.1 port={port} user=postgres dbname=postgres\", data_dir = \"{}\" }}\n",
        token.display(),
        dir.join("pg").display()
    );
    std::fs::write(cfg_path, text).with_context(|| format!("writing {}", cfg_path.display()))
}

/// Creates (initdb) and starts the local cluster the config points at, unless it already runs.
fn ensure_cluster(
    cfg: &Config,
    service: &str,
    cfg_path: &Path,
    pg_dir: &Path,
) -> anyhow::Result<()> {
    let svc = cfg.service(Some(service))?;
    let Some(pg) = &svc.pg else { return Ok(()) };
    if pg.data_dir.as_deref() != Some(pg_dir.to_str().unwrap_or_default()) {
        return Ok(()); // a cluster the user configured: theirs to run
    }
    let bin = cluster::bin_dir(pg.bin_dir.as_deref())?;
    let port = pg
        .conninfo
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .unwrap_or("5432")
        .to_string();
    if !pg_dir.join("PG_VERSION").exists() {
        let out = cluster::command(&bin, "initdb")
            .arg("-D")
            .arg(pg_dir)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .output()?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let exe = std::env::current_exe()?;
        let archive = format!(
            "{} --config {} wal-push --service {service} %p",
            exe.display(),
            cfg_path.display()
        );
        let conf = format!(
            "\n# --- btar up ---\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '/tmp'\nwal_level = replica\narchive_mode = on\n\
             archive_command = '{}'\narchive_timeout = 60\n",
            archive.replace('\'', "''")
        );
        let pg_conf = pg_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&pg_conf)?;
        text.push_str(&conf);
        std::fs::write(&pg_conf, text)?;
    }
    let running = cluster::command(&bin, "pg_ctl")
        .arg("-D")
        .arg(pg_dir)
        .arg("status")
        .output()
        .is_ok_and(|o| o.status.success());
    if !running {
        cluster::start(&bin, pg_dir, &pg_dir.with_extension("log"))?;
    }
    Ok(())
}

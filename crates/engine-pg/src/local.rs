//! The PostgreSQL cluster `btar up` runs for its embedded default, and the forks restored beside it.

use std::path::{Path, PathBuf};

use btar_engine::{AgentSettings, EngineError, LocalServer, LocalSpec, OsUser};

use crate::{PgError, PgSettings, cluster};

/// Runs PostgreSQL clusters under a `btar up` directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalPg;

/// Where the cluster's socket lives: inside `dir` when the path fits a socket address (107 bytes
/// with `/.s.PGSQL.NNNNN`), else /tmp. Either way only the server's user may connect to it.
fn socket_dir(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    if run.as_os_str().len() + 16 < 100 {
        run
    } else {
        PathBuf::from("/tmp")
    }
}

fn pg_dir(spec: &LocalSpec) -> PathBuf {
    spec.dir.join("pg")
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PgError + 'a {
    move |e| PgError::io(what, path.display(), e)
}

/// Client authentication of the embedded cluster. Any local user could otherwise connect as the
/// superuser and read the region keys and the API token with pg_read_file: the socket admits only
/// the OS user the server runs as (peer, mapped to `postgres`), TCP needs the generated password.
fn write_auth(pg_dir: &Path, os_user: &str) -> Result<(), PgError> {
    let hba = pg_dir.join("pg_hba.conf");
    std::fs::write(
        &hba,
        "# Written by `btar up`.\n\
         local all         all                peer map=btar\n\
         local replication all                peer map=btar\n\
         host  all         all  127.0.0.1/32  scram-sha-256\n\
         host  replication all  127.0.0.1/32  scram-sha-256\n",
    )
    .map_err(io("writing", &hba))?;
    let ident = pg_dir.join("pg_ident.conf");
    std::fs::write(
        &ident,
        format!(
            "# Written by `btar up`: the server's OS user may connect as postgres, and so may root,\n\
             # who can read the data directory anyway: a root-run `btar fork` waits on its fork's\n\
             # promotion through this socket (forks keep this file).\n\
             btar {os_user} postgres\nbtar root postgres\n"
        ),
    )
    .map_err(io("writing", &ident))
}

fn initdb(bin: &Path, spec: &LocalSpec, port: &str, socket: &str) -> Result<(), PgError> {
    let dir = pg_dir(spec);
    let os_user = cluster::current_user()
        .ok_or_else(|| PgError::Binaries("cannot tell which OS user this is".into()))?;
    let out = cluster::command(bin, "initdb")
        .arg("-D")
        .arg(&dir)
        .args(["--auth-local=peer", "--auth-host=scram-sha-256"])
        .arg(format!("--pwfile={}", spec.password_file.display()))
        .args(["-U", "postgres", "-E", "UTF8"])
        .output()
        .map_err(io("running initdb for", &dir))?;
    if !out.status.success() {
        return Err(PgError::Recovery(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    write_auth(&dir, &os_user)?;
    let conf = format!(
        "\n# --- btar up ---\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{socket}'\nunix_socket_permissions = 0700\n\
         password_encryption = 'scram-sha-256'\nwal_level = replica\narchive_mode = on\n\
         archive_command = '{}'\narchive_timeout = 60\n\
         # btar up streams WAL from a replication slot while it serves; the cluster keeps running\n\
         # without it (--no-serve), so the slot may hold at most this much WAL\n\
         max_slot_wal_keep_size = '1GB'\n",
        spec.archive_command.replace('\'', "''")
    );
    let pg_conf = dir.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&pg_conf).map_err(io("reading", &pg_conf))?;
    text.push_str(&conf);
    std::fs::write(&pg_conf, text).map_err(io("writing", &pg_conf))
}

fn typed(s: &AgentSettings) -> Result<PgSettings, EngineError> {
    s.parse::<PgSettings>()
        .map_err(|e| EngineError::Invalid(format!("invalid PostgreSQL settings: {e}")))
}

impl LocalServer for LocalPg {
    fn os_user(&self) -> Option<OsUser> {
        let (name, uid, gid) = cluster::db_user()?;
        Some(OsUser {
            home: cluster::home_dir(&name),
            name,
            uid,
            gid,
        })
    }

    fn hand_over(&self, dir: &Path) -> Result<(), EngineError> {
        Ok(cluster::hand_over(dir)?)
    }

    fn settings(&self, spec: &LocalSpec) -> AgentSettings {
        let pg = PgSettings {
            conninfo: format!(
                "host={} port={} user=postgres dbname=postgres",
                socket_dir(&spec.dir).display(),
                spec.port
            ),
            data_dir: Some(pg_dir(spec).display().to_string()),
            bin_dir: None,
        };
        AgentSettings::from_typed(&pg).unwrap_or_default()
    }

    fn data_dir(&self, spec: &LocalSpec) -> PathBuf {
        pg_dir(spec)
    }

    fn is_ours(&self, spec: &LocalSpec, settings: &AgentSettings) -> bool {
        typed(settings).is_ok_and(|pg| {
            pg.data_dir.as_deref() == Some(pg_dir(spec).to_str().unwrap_or_default())
        })
    }

    fn ensure_running(
        &self,
        spec: &LocalSpec,
        settings: &AgentSettings,
    ) -> Result<bool, EngineError> {
        let pg = typed(settings)?;
        let dir = pg_dir(spec);
        let bin = cluster::bin_dir(pg.bin_dir.as_deref())?;
        let setting = |key: &str| {
            pg.conninfo
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key).map(str::to_string))
        };
        let port = setting("port=").unwrap_or_else(|| "5432".into());
        let socket = setting("host=")
            .filter(|h| h.starts_with('/'))
            .unwrap_or_else(|| "/tmp".into());
        if !dir.join("PG_VERSION").exists() {
            initdb(&bin, spec, &port, &socket)?;
        }
        std::fs::create_dir_all(&socket).map_err(io("creating", Path::new(&socket)))?;
        let running = cluster::command(&bin, "pg_ctl")
            .arg("-D")
            .arg(&dir)
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success());
        if !running {
            cluster::start(&bin, &dir, &dir.with_extension("log"))?;
        }
        Ok(!running)
    }

    fn running(&self, dir: &Path) -> Vec<PathBuf> {
        btar_engine::fork_dirs(dir)
            .into_iter()
            .filter(|p| p.join("postmaster.pid").exists())
            .collect()
    }

    fn stop(&self, settings: &AgentSettings, data_dir: &Path) -> Result<(), EngineError> {
        let pg = typed(settings)?;
        let bin = cluster::bin_dir(pg.bin_dir.as_deref())?;
        Ok(cluster::stop(&bin, data_dir, "fast")?)
    }

    fn describe(&self, settings: &AgentSettings) -> Option<String> {
        typed(settings)
            .ok()
            .map(|pg| crate::conninfo::describe(&pg.conninfo))
    }
}

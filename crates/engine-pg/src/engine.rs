//! PostgreSQL behind the engine layer's [`Engine`] trait: the one place that turns an engine-blind
//! request into PostgreSQL's terms (`restore_command`, `archive_command`, LSNs, WAL segments).

use std::path::Path;
use std::sync::Arc;

use btar_engine::{
    AgentSettings, BackupOptions, BackupPoint, Engine, EngineError, EngineKind, LocalServer,
    LogSequence, LogStreamer, Progress, PushedLog, RestoreOutcome, RestoreRequest, Window,
};
use btar_format::verify::Problem;
use btar_format::{BackupWriter, Location, Manifest};

use crate::backup::PgMeta;
use crate::restore::RestoreOptions;
use crate::wal::{WalSequence, segment_name, segment_number};
use crate::{PgError, PgSettings, local, restore, verify, wal};

/// The PostgreSQL engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgEngine;

pub(crate) fn settings(s: &AgentSettings) -> Result<PgSettings, EngineError> {
    s.parse::<PgSettings>()
        .map_err(|e| EngineError::Invalid(format!("invalid PostgreSQL settings: {e}")))
}

fn quote_arg(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./:=".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The WAL segments from a backup's start to its stop (its timeline): what a restore of it needs.
fn needed_wal(m: &PgMeta) -> Vec<String> {
    let (Some(a), Some(b), Some(tli)) = (
        segment_number(&m.start_wal, m.wal_segment_size),
        segment_number(&m.stop_wal, m.wal_segment_size),
        m.stop_wal.get(..8),
    ) else {
        return vec![];
    };
    (a..=b.max(a))
        .map(|n| segment_name(tli, n, m.wal_segment_size))
        .collect()
}

#[async_trait::async_trait]
impl Engine for PgEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Pg
    }

    fn check_settings(&self, s: &AgentSettings) -> Result<(), EngineError> {
        let pg = settings(s)?;
        crate::conninfo::parse(&pg.conninfo)?;
        Ok(())
    }

    async fn backup(
        &self,
        writer: &BackupWriter,
        s: &AgentSettings,
        opts: BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest, EngineError> {
        let pg = settings(s)?;
        let on_total = |n| progress.total(n);
        let run = crate::backup::run(writer, &pg, opts, &on_total);
        Ok(btar_engine::follow_writer(writer.stats(), progress, run).await?)
    }

    fn backup_point(&self, m: &Manifest) -> Option<BackupPoint> {
        let meta = PgMeta::of(m)?;
        Some(BackupPoint {
            logs: needed_wal(&meta),
            start: meta.start_lsn,
            stop: meta.stop_lsn,
            started_at: meta.backup_start_time,
        })
    }

    async fn window(&self, loc: &Location) -> Result<(Window, Vec<Manifest>), EngineError> {
        let (w, backups, _) = restore::window(loc).await?;
        Ok((w, backups.into_iter().map(|(m, _)| m).collect()))
    }

    async fn restore(
        &self,
        loc: &Location,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<RestoreOutcome, EngineError> {
        let pg = req.agent.as_ref().map(settings).transpose()?;
        let bin_dir = pg.and_then(|p| p.bin_dir);
        let me = &req.btar;
        let (service, region) = (quote_arg(loc.service()), quote_arg(loc.region().name()));
        let mut server = Vec::new();
        if let Some(p) = req.port {
            server.push(("port".to_string(), p.to_string()));
        }
        if req.loopback_only {
            server.push(("listen_addresses".into(), "127.0.0.1".into()));
            server.push(("unix_socket_directories".into(), "/tmp".into()));
        }
        server.extend(req.settings.iter().cloned());
        let opts = RestoreOptions {
            target: req.target.clone(),
            backup: req.backup.clone(),
            data_dir: req.data_dir.clone(),
            restore_command: format!("{me} wal-fetch --service {service} --region {region} %f %p"),
            archive_command: req.archive.as_ref().map(|a| {
                let region = a
                    .region
                    .as_deref()
                    .map(|r| format!(" --region {}", quote_arg(r)))
                    .unwrap_or_default();
                format!(
                    "{me} wal-push --service {}{region} %p",
                    quote_arg(&a.service)
                )
            }),
            settings: server,
            start: req.start,
            bin_dir: bin_dir.clone(),
            parallel: req.parallel,
            promote_timeout: req.promote_timeout,
        };
        let mut outcome = restore::run(loc, &opts, progress).await?;
        if req.start {
            let port = opts
                .settings
                .iter()
                .rev()
                .find(|(k, _)| k == "port")
                .map_or("5432", |(_, v)| v.as_str());
            let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
            let agent = PgSettings {
                conninfo: conninfo.clone(),
                data_dir: Some(req.data_dir.display().to_string()),
                bin_dir,
            };
            outcome.agent = AgentSettings::from_typed(&agent).ok();
            outcome.conninfo = Some(conninfo);
        }
        Ok(outcome)
    }

    async fn push_log(&self, loc: &Location, path: &Path) -> Result<PushedLog, EngineError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| PgError::BadWalName(path.display().to_string()))?;
        let timeline = wal::WalFile::parse(name)?.timeline().to_string();
        let put = wal::push(loc, path).await?;
        Ok(PushedLog {
            timeline,
            name: name.to_string(),
            put,
        })
    }

    async fn fetch_log(
        &self,
        loc: &Location,
        name: &str,
        dest: &Path,
    ) -> Result<bool, EngineError> {
        Ok(wal::fetch(loc, name, dest).await?)
    }

    fn native_log_dir(&self) -> Option<&'static str> {
        Some("pg_wal")
    }

    fn drills(&self) -> bool {
        true
    }

    async fn probe(
        &self,
        outcome: &RestoreOutcome,
        _source: Option<&AgentSettings>,
        sql: &str,
    ) -> Result<Option<String>, EngineError> {
        let conninfo = outcome
            .conninfo
            .as_deref()
            .ok_or_else(|| EngineError::Invalid("the restored server was not started".into()))?;
        let mut s = crate::server::Server::connect(conninfo).await?;
        Ok(s.first_row_json(sql).await?)
    }

    async fn stop_restored(&self, data_dir: &Path) -> Result<(), EngineError> {
        if !data_dir.join("postmaster.pid").exists() {
            return Ok(());
        }
        let bin = crate::cluster::bin_dir(None)?;
        let dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || crate::cluster::stop(&bin, &dir, "immediate"))
            .await
            .map_err(|e| EngineError::Failed(e.to_string()))??;
        Ok(())
    }

    fn log_dir(&self, name: &str) -> Option<String> {
        wal::WalFile::parse(name)
            .ok()
            .map(|k| k.timeline().to_string())
    }

    fn fetch_sequence(&self, name: &str, len: u64) -> Option<Arc<dyn LogSequence>> {
        matches!(wal::WalFile::parse(name), Ok(wal::WalFile::Segment { .. })).then(|| {
            Arc::new(WalSequence::new(wal::segment_size_of_len(len))) as Arc<dyn LogSequence>
        })
    }

    fn log_sequence(&self, newest: Option<&Manifest>) -> Arc<dyn LogSequence> {
        let size = newest
            .and_then(PgMeta::of)
            .map_or(wal::DEFAULT_SEGMENT_SIZE, |m| m.wal_segment_size);
        Arc::new(WalSequence::new(size))
    }

    async fn log_gaps(
        &self,
        loc: &Location,
        only: Option<&str>,
    ) -> Result<Vec<Problem>, EngineError> {
        Ok(verify::wal_gaps(loc, only).await?)
    }

    fn local_server(&self) -> Option<&dyn LocalServer> {
        Some(&local::LocalPg)
    }

    fn log_streamer(&self) -> Option<&dyn LogStreamer> {
        Some(&crate::stream::WalStreamer)
    }
}

impl From<PgError> for EngineError {
    fn from(e: PgError) -> Self {
        match e {
            PgError::Format(f) => EngineError::Format(f),
            PgError::TargetOutOfWindow { .. }
            | PgError::NoBackups { .. }
            | PgError::DirNotEmpty(_)
            | PgError::RestoreRunning(_)
            | PgError::InterruptedRestore(_)
            | PgError::BadWalName(_)
            | PgError::Conninfo(_)
            | PgError::CannotStream(_)
            | PgError::BadTarget(_) => EngineError::Invalid(e.to_string()),
            PgError::BackupDamaged { .. } => EngineError::Damaged(e.to_string()),
            PgError::Connect { .. } | PgError::Replication { .. } => {
                EngineError::Unavailable(e.to_string())
            }
            _ => EngineError::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn manifest(meta: &PgMeta) -> Manifest {
        let t = meta.backup_start_time;
        Manifest {
            format_version: btar_format::FORMAT_VERSION,
            service: "s".into(),
            backup_name: "b".into(),
            engine: "pg".into(),
            started_at: t,
            completed_at: t,
            chunk_size: 1 << 20,
            files: vec![],
            packs: vec![],
            engine_meta: serde_json::to_value(meta).unwrap_or_default(),
            stats: Default::default(),
            origin_region: "home".into(),
            copied_from: None,
        }
    }

    #[test]
    fn a_backup_needs_the_wal_from_its_start_to_its_stop_across_a_log_id() {
        let started = DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default();
        let meta = PgMeta {
            pg_version: 170000,
            system_identifier: "1".into(),
            timeline: 1,
            start_lsn: "0/FC000028".into(),
            stop_lsn: "1/4000100".into(),
            start_wal: "00000001000000000000003F".into(),
            stop_wal: "000000010000000100000001".into(),
            wal_segment_size: 64 << 20,
            backup_start_time: started,
            backup_stop_time: started,
            tablespace_map: None,
        };
        let mut m = manifest(&meta);
        let point = PgEngine.backup_point(&m).expect("pg facts");
        assert_eq!(
            point.logs,
            vec![
                "00000001000000000000003F",
                "000000010000000100000000",
                "000000010000000100000001"
            ]
        );
        assert_eq!(
            (point.start.as_str(), point.started_at),
            ("0/FC000028", started)
        );
        // The sequence follows the backup's segment size: its first log precedes the next one.
        let seq = PgEngine.log_sequence(Some(&m));
        let (a, b) = (
            seq.position(&point.logs[0]).map(|p| p.number),
            seq.position(&point.logs[1]).map(|p| p.number),
        );
        assert_eq!(a.map(|a| a + 1), b);
        m.engine_meta = serde_json::Value::Null;
        assert!(PgEngine.backup_point(&m).is_none());
    }

    #[test]
    fn only_segments_are_fetched_ahead() {
        let seg = "000000010000000000000010";
        let seq = PgEngine.fetch_sequence(seg, 16 << 20).expect("a segment");
        assert_eq!(
            btar_engine::spool::next_names(&*seq, seg, 2),
            ["000000010000000000000011", "000000010000000000000012"]
        );
        for other in [
            "00000002.history",
            "000000010000000000000010.partial",
            "000000010000000000000010.00000028.backup",
            "RECOVERYHISTORY",
        ] {
            assert!(
                PgEngine.fetch_sequence(other, 16 << 20).is_none(),
                "{other}"
            );
        }
        assert_eq!(
            PgEngine.log_dir("00000002.history").as_deref(),
            Some("00000002")
        );
        assert_eq!(PgEngine.log_dir("../x"), None);
    }
}

//! MySQL/MariaDB behind the engine layer's [`Engine`] trait.

use std::path::Path;
use std::sync::Arc;

use btar_engine::log::NumberedFiles;
use btar_engine::{
    AgentSettings, BackupOptions, BackupPoint, Engine, EngineError, EngineKind, LocalServer,
    LogFollower, LogSequence, LogStreamer, Progress, PushedLog, RestoreOutcome, RestoreRequest,
    Window,
};
use btar_format::verify::Problem;
use btar_format::{BackupWriter, Location, Manifest};

use crate::backup::MysqlMeta;
use crate::follow::BinlogFollower;
use crate::local::LocalMariaDb;
use crate::{MysqlSettings, backup, binlog, restore};

/// The MySQL/MariaDB engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct MysqlEngine;

pub(crate) fn settings(s: &AgentSettings) -> Result<MysqlSettings, EngineError> {
    s.parse::<MysqlSettings>()
        .map_err(|e| EngineError::Invalid(format!("invalid MySQL/MariaDB settings: {e}")))
}

#[async_trait::async_trait]
impl Engine for MysqlEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Mysql
    }

    fn check_settings(&self, s: &AgentSettings) -> Result<(), EngineError> {
        let m = settings(s)?;
        if m.port == Some(0) {
            return Err(EngineError::Invalid(
                "invalid MySQL/MariaDB settings: port 0".into(),
            ));
        }
        if m.socket.is_some() && (m.host.is_some() || m.port.is_some()) {
            return Err(EngineError::Invalid(
                "invalid MySQL/MariaDB settings: give either socket or host/port, not both".into(),
            ));
        }
        Ok(())
    }

    async fn backup(
        &self,
        writer: &BackupWriter,
        s: &AgentSettings,
        _opts: BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest, EngineError> {
        let m = settings(s)?;
        btar_engine::follow_writer(writer.stats(), progress, backup::run(writer, &m)).await
    }

    fn backup_point(&self, m: &Manifest) -> Option<BackupPoint> {
        let meta = MysqlMeta::of(m)?;
        let at = meta.binlog.to_string();
        Some(BackupPoint {
            start: at.clone(),
            stop: at,
            started_at: meta.backup_start_time,
            logs: vec![],
        })
    }

    async fn window(&self, loc: &Location) -> Result<(Window, Vec<Manifest>), EngineError> {
        let s = restore::window(loc).await?;
        Ok((s.window, s.backups.into_iter().map(|(m, _)| m).collect()))
    }

    fn drills(&self) -> bool {
        true
    }

    async fn probe(
        &self,
        outcome: &RestoreOutcome,
        source: Option<&AgentSettings>,
        sql: &str,
    ) -> Result<Option<String>, EngineError> {
        crate::restore::probe(outcome, source, sql).await
    }

    async fn stop_restored(&self, data_dir: &Path) -> Result<(), EngineError> {
        crate::restore::stop_restored(data_dir).await
    }

    async fn restore(
        &self,
        loc: &Location,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<RestoreOutcome, EngineError> {
        restore::run(loc, req, progress).await
    }

    async fn push_log(&self, loc: &Location, path: &Path) -> Result<PushedLog, EngineError> {
        let (timeline, name, put) = binlog::push(loc, path).await?;
        Ok(PushedLog {
            timeline,
            name,
            put,
        })
    }

    async fn fetch_log(
        &self,
        loc: &Location,
        name: &str,
        dest: &Path,
    ) -> Result<bool, EngineError> {
        binlog::fetch(loc, name, dest).await
    }

    fn log_dir(&self, name: &str) -> Option<String> {
        binlog::family(name).ok()
    }

    fn fetch_sequence(&self, name: &str, _len: u64) -> Option<Arc<dyn LogSequence>> {
        NumberedFiles
            .position(name)
            .map(|_| Arc::new(NumberedFiles) as Arc<dyn LogSequence>)
    }

    fn log_sequence(&self, _newest: Option<&Manifest>) -> Arc<dyn LogSequence> {
        Arc::new(NumberedFiles)
    }

    async fn log_gaps(
        &self,
        loc: &Location,
        only: Option<&str>,
    ) -> Result<Vec<Problem>, EngineError> {
        binlog::gaps(loc, only).await
    }

    fn log_follower(&self) -> Option<&dyn LogFollower> {
        Some(&BinlogFollower)
    }

    fn log_streamer(&self) -> Option<&dyn LogStreamer> {
        Some(&crate::stream::BinlogStreamer)
    }

    fn local_server(&self) -> Option<&dyn LocalServer> {
        Some(&LocalMariaDb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BinlogPoint;

    #[test]
    fn settings_are_typed_and_unknown_keys_refused() {
        let ok = AgentSettings(serde_json::json!({"host": "db", "port": 3307, "user": "backup"}));
        assert!(MysqlEngine.check_settings(&ok).is_ok());
        let unknown = AgentSettings(serde_json::json!({"conninfo": "host=db"}));
        let e = MysqlEngine
            .check_settings(&unknown)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("conninfo")));
        let both = AgentSettings(serde_json::json!({"socket": "/s", "port": 1}));
        assert!(MysqlEngine.check_settings(&both).is_err());
    }

    #[test]
    fn a_backup_is_placed_at_its_consistent_point_and_needs_no_binlog() {
        let t = chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default();
        let meta = MysqlMeta {
            server_version: "10.11.19-MariaDB".into(),
            binlog: BinlogPoint {
                file: "binlog.000007".into(),
                position: 1234,
                gtid: Some("0-1-9".into()),
            },
            backup_start_time: t,
            backup_stop_time: t,
            stream_file: None,
        };
        let mut m = Manifest {
            format_version: btar_format::FORMAT_VERSION,
            service: "s".into(),
            backup_name: "b".into(),
            engine: "mysql".into(),
            started_at: t,
            completed_at: t,
            chunk_size: 1 << 20,
            files: vec![],
            packs: vec![],
            engine_meta: serde_json::to_value(&meta).unwrap_or_default(),
            stats: Default::default(),
            origin_region: "home".into(),
            copied_from: None,
        };
        let p = MysqlEngine.backup_point(&m);
        assert_eq!(
            p.map(|p| (p.start, p.logs)),
            Some(("binlog.000007:1234".to_string(), vec![]))
        );
        let seq = MysqlEngine.log_sequence(Some(&m));
        assert_eq!(seq.position("binlog.000007").map(|p| p.number), Some(7));
        m.engine_meta = serde_json::Value::Null;
        assert!(MysqlEngine.backup_point(&m).is_none());
    }
}

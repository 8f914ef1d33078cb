//! The numbering of a service's archived log files, which the engine derives from a backup (for
//! PostgreSQL, the cluster's WAL segment size decides where a log id rolls over).

use std::sync::Arc;

use btar_engine::LogSequence;
use btar_format::Location;

use crate::ControlPlane;
use crate::error::Result;

impl ControlPlane {
    /// The log sequence of the service `loc` holds, from the newest backup there that can be read;
    /// remembered per service once a backup told it (a cluster keeps its numbering for life), the
    /// engine's default until then.
    pub(crate) async fn log_sequence(&self, loc: &Location) -> Result<Arc<dyn LogSequence>> {
        let engine = self.engine_of(loc)?;
        if let Some(seq) = self.known_sequence(loc.service()) {
            return Ok(seq);
        }
        for name in loc.list_backups().await?.iter().rev() {
            if let Ok(m) = loc.read_manifest(name).await {
                let seq = engine.log_sequence(Some(&m));
                if let Ok(mut known) = self.inner.sequences.lock() {
                    known.insert(loc.service().to_string(), seq.clone());
                }
                return Ok(seq);
            }
        }
        Ok(engine.log_sequence(None))
    }

    fn known_sequence(&self, service: &str) -> Option<Arc<dyn LogSequence>> {
        self.inner.sequences.lock().ok()?.get(service).cloned()
    }
}

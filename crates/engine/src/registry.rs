use std::collections::BTreeMap;
use std::sync::Arc;

use btar_format::Location;

use crate::{Engine, EngineError, EngineKind};

/// The engines this btar is built with, registered once by the binary.
#[derive(Debug, Clone, Default)]
pub struct Engines {
    by_kind: BTreeMap<EngineKind, Arc<dyn Engine>>,
}

impl Engines {
    pub fn with(mut self, engine: Arc<dyn Engine>) -> Self {
        self.by_kind.insert(engine.kind(), engine);
        self
    }

    pub fn get(&self, kind: EngineKind) -> Result<&dyn Engine, EngineError> {
        self.by_kind
            .get(&kind)
            .map(|e| e.as_ref())
            .ok_or(EngineError::NotBuiltIn(kind))
    }

    /// The engine of the service a location holds, as its descriptor records it.
    pub fn of(&self, loc: &Location) -> Result<&dyn Engine, EngineError> {
        let name = &loc.descriptor().engine;
        let kind = name.parse::<EngineKind>().map_err(|e| {
            EngineError::Invalid(format!(
                "region `{}`: service `{}`: {e}",
                loc.region().name(),
                loc.service()
            ))
        })?;
        self.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = EngineKind> + '_ {
        self.by_kind.keys().copied()
    }
}

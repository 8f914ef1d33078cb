use serde::{Deserialize, Serialize};

/// How btar reaches a service's database: the `[service.<engine>]` table of the config, or what a
/// fork was registered with. Opaque above the engine layer; each engine parses it into its own
/// typed settings and refuses unknown keys ([`crate::Engine::check_settings`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentSettings(pub serde_json::Value);

impl AgentSettings {
    /// Parses into an engine's typed settings.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.0.clone())
    }

    pub fn from_typed<T: Serialize>(t: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_value(t).map(AgentSettings)
    }
}

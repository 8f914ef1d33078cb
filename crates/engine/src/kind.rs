use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A database engine btar backs up. Its name (`pg`, `mysql`) is what configs, the catalog and
/// service descriptors store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// PostgreSQL.
    Pg,
    /// MySQL and MariaDB.
    Mysql,
}

impl EngineKind {
    pub const ALL: [EngineKind; 2] = [EngineKind::Pg, EngineKind::Mysql];

    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Pg => "pg",
            EngineKind::Mysql => "mysql",
        }
    }

    /// The product name, for messages.
    pub fn product(self) -> &'static str {
        match self {
            EngineKind::Pg => "PostgreSQL",
            EngineKind::Mysql => "MySQL/MariaDB",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown engine `{0}` (known: pg, mysql)")]
pub struct UnknownEngine(pub String);

impl FromStr for EngineKind {
    type Err = UnknownEngine;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEngine(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for k in EngineKind::ALL {
            assert_eq!(k.as_str().parse::<EngineKind>(), Ok(k));
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{k}\""));
        }
        assert_eq!(
            "oracle".parse::<EngineKind>(),
            Err(UnknownEngine("oracle".into()))
        );
    }
}

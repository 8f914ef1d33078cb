use thiserror::Error;

/// Everything that can go wrong with a region. Each message names the region, and the object where
/// there is one, so an operator can act on a single line.
#[derive(Debug, Error)]
pub enum RegionError {
    #[error("unknown region `{0}`")]
    UnknownRegion(String),

    #[error("region `{region}`: invalid configuration: {reason}")]
    InvalidConfig { region: String, reason: String },

    #[error(
        "region `{region}`: no encryption key configured (set `key` in the region's config or the env var {env_var})"
    )]
    MissingKey { region: String, env_var: String },

    #[error("region `{region}`: invalid encryption key: {reason}")]
    BadKey { region: String, reason: String },

    #[error("region `{region}`: object `{key}` not found")]
    NotFound { region: String, key: String },

    #[error("region `{region}`: object `{key}` already exists")]
    AlreadyExists { region: String, key: String },

    #[error("region `{region}`: access denied on `{key}`: {message}")]
    Denied {
        region: String,
        key: String,
        message: String,
    },

    #[error(
        "region `{region}`: store unavailable after {attempts} attempt(s) on `{key}`: {message}"
    )]
    Unavailable {
        region: String,
        key: String,
        attempts: u32,
        message: String,
    },

    #[error("region `{region}`: {op} `{key}` failed: {message}")]
    Store {
        region: String,
        op: &'static str,
        key: String,
        message: String,
    },

    /// The store does not offer what was asked (a conditional put on a store without one).
    #[error("region `{region}`: {op} is not supported by this store")]
    Unsupported { region: String, op: &'static str },

    #[error("operation cancelled")]
    Cancelled,
}

impl RegionError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegionError::NotFound { .. })
    }

    /// Whether the same operation may succeed when run again without an operator: the store was
    /// unreachable past the retries, or the run was cancelled.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RegionError::Unavailable { .. } | RegionError::Cancelled
        )
    }
}

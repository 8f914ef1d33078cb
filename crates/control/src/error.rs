use btar_catalog::CatalogError;

use crate::config::ConfigError;

/// What the control plane reports. The API maps each variant to an HTTP status; the CLI prints it.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Format(#[from] btar_format::FormatError),
    #[error(transparent)]
    Region(#[from] btar_region::RegionError),
    #[error(transparent)]
    Copy(#[from] btar_replicator::CopyError),
    #[error(transparent)]
    Engine(#[from] btar_engine::EngineError),
    /// A request that cannot be served as asked (unknown region, region rules, bad target time).
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but conflicts with the current state (e.g. the 24 h region-change rule).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The service's database is not managed by this btar process (no agent settings for it).
    #[error(
        "service `{0}` has no database settings here: only the agent next to it can back it up or restore it"
    )]
    NoAgent(String),
    /// The catalog knows backups or shipped logs of this service in a region whose location is
    /// gone: refusing to start a new one there (DESIGN.md invariant 7).
    #[error(
        "region `{region}`: the location of service `{service}` is missing although the catalog lists {what} there; \
         is the region's mount point, bucket or prefix gone? btar does not start a new location in its place"
    )]
    LocationVanished {
        region: String,
        service: String,
        what: String,
    },
    #[error("background task failed: {0}")]
    Task(String),
}

impl ControlError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        ControlError::Invalid(msg.into())
    }

    /// A stable, machine-readable kind of failure: the `code` of the CLI's JSON error and of the
    /// API's error body, so a script reads the same code from either.
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Invalid(_) => "invalid",
            ControlError::NotFound(_) => "not_found",
            ControlError::Conflict(_) => "conflict",
            ControlError::NoAgent(_) => "no_agent",
            ControlError::LocationVanished { .. } => "location_vanished",
            ControlError::Config(ConfigError::UnknownService(..)) => "not_found",
            ControlError::Config(_) => "config",
            ControlError::Catalog(e) => catalog_code(e),
            ControlError::Format(f) => format_code(f),
            e if e.is_retryable() => "unavailable",
            ControlError::Engine(e) => engine_code(e),
            _ => "failed",
        }
    }

    /// Whether a failed attempt may succeed when run again without an operator: a store or
    /// database that was unreachable (whichever layer noticed), or a cancelled run. Damage and
    /// misconfiguration need an operator. Each layer's error decides for itself; this only asks it.
    pub fn is_retryable(&self) -> bool {
        match self {
            ControlError::Copy(c) => c.is_retryable(),
            ControlError::Region(r) | ControlError::Config(ConfigError::Region(r)) => {
                r.is_retryable()
            }
            ControlError::Format(f) => f.is_retryable(),
            ControlError::Engine(e) => e.is_retryable(),
            _ => false,
        }
    }
}

pub type Result<T, E = ControlError> = std::result::Result<T, E>;

/// [`ControlError::code`] of an engine's error.
pub fn engine_code(e: &btar_engine::EngineError) -> &'static str {
    use btar_engine::EngineError as E;
    match e {
        E::Format(f) => format_code(f),
        E::Invalid(_) => "invalid",
        E::Damaged(_) => "damaged",
        E::NotBuiltIn(_) => "not_built_in",
        e if e.is_retryable() => "unavailable",
        _ => "failed",
    }
}

/// [`ControlError::code`] of a catalog's error.
pub fn catalog_code(e: &btar_catalog::CatalogError) -> &'static str {
    use btar_catalog::CatalogError as C;
    match e {
        C::NotFound { .. } => "not_found",
        C::ServiceExists(_)
        | C::RegionsChangeTooSoon { .. }
        | C::Conflict(_)
        | C::LeaseLost { .. } => "conflict",
        C::InvalidPeriod(_) | C::Invalid { .. } => "invalid",
        _ => "failed",
    }
}

/// [`ControlError::code`] of the format's error: bad names are the request's, a backup or
/// location that is not there is not found, damage is damage.
pub fn format_code(e: &btar_format::FormatError) -> &'static str {
    use btar_format::FormatError as F;
    match e {
        F::InvalidName { .. } => "invalid",
        F::BackupNotFound { .. } | F::NoLocation { .. } => "not_found",
        F::Damaged { .. } | F::WrongKeyOrTampered { .. } => "damaged",
        e if e.is_retryable() => "unavailable",
        _ => "failed",
    }
}

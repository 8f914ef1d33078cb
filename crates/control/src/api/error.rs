//! Errors as the API returns them: Aiven's shape, `{"message": …, "errors": [{"message": …,
//! "status": …}]}`, with the HTTP status chosen from what went wrong. Bad input is always a 4xx;
//! a 5xx carries a message too and is logged.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use btar_catalog::CatalogError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ControlError;
use crate::config::ConfigError;

/// An error as the API returns it (Aiven's shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"message": "no service `orders`", "code": "not_found",
    "errors": [{"message": "no service `orders`", "status": 404}]})))]
pub struct ErrorBody {
    pub message: String,
    /// btar's kind of failure, the same code `btar --output json` prints for it: invalid,
    /// not_found, conflict, no_agent, location_vanished, config, unavailable, damaged,
    /// not_built_in, unauthorized, method_not_allowed or failed.
    #[serde(default)]
    pub code: String,
    pub errors: Vec<ErrorItem>,
    /// On a 409 from the 24 h rule: when `additional_backup_regions` may change next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_allowed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorItem {
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// See [`ErrorBody::code`].
    pub code: &'static str,
    pub message: String,
    /// For the 24 h rule: when the regions may change next, also in the body as a field.
    pub next_allowed_at: Option<DateTime<Utc>>,
}

impl ApiError {
    /// An error whose code follows from its status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "invalid",
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "unauthorized",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::CONFLICT => "conflict",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "failed",
        };
        ApiError {
            status,
            code,
            message: message.into(),
            next_allowed_at: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// An extractor's rejection: its own status, except that a body that parses but does not fit
    /// (axum's 422) is a plain 400 like every other bad input here.
    pub fn rejected(status: StatusCode, message: String) -> Self {
        let status = match status {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        Self::new(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "API request failed");
        }
        let body = ErrorBody {
            errors: vec![ErrorItem {
                message: self.message.clone(),
                status: self.status.as_u16(),
            }],
            message: self.message,
            code: self.code.to_string(),
            next_allowed_at: self.next_allowed_at,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        let status = match &e {
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::Conflict(_) | ControlError::NoAgent(_) => StatusCode::CONFLICT,
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            // Storage an operator must repair (remount, restore the bucket): not the client's fault.
            ControlError::LocationVanished { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Catalog(c) => return c.into(),
            ControlError::Config(c) => config_status(c),
            ControlError::Format(f) => format_status(f),
            ControlError::Engine(e) => engine_status(e),
            ControlError::Region(_) | ControlError::Copy(_) | ControlError::Task(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError {
            code: e.code(),
            ..ApiError::new(status, message)
        }
    }
}

impl From<&CatalogError> for ApiError {
    fn from(e: &CatalogError) -> Self {
        let status = match e {
            CatalogError::NotFound { .. } => StatusCode::NOT_FOUND,
            CatalogError::ServiceExists(_)
            | CatalogError::RegionsChangeTooSoon { .. }
            | CatalogError::Conflict(_)
            | CatalogError::LeaseLost { .. } => StatusCode::CONFLICT,
            CatalogError::InvalidPeriod(_) | CatalogError::Invalid { .. } => {
                StatusCode::BAD_REQUEST
            }
            CatalogError::UnsupportedUrl(_)
            | CatalogError::Database { .. }
            | CatalogError::SchemaTooNew { .. }
            | CatalogError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut err = ApiError {
            code: crate::error::catalog_code(e),
            ..ApiError::new(status, e.to_string())
        };
        if let CatalogError::RegionsChangeTooSoon {
            next_allowed_at, ..
        } = e
        {
            err.next_allowed_at = Some(*next_allowed_at);
        }
        err
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        (&e).into()
    }
}

fn config_status(e: &ConfigError) -> StatusCode {
    match e {
        ConfigError::UnknownRegion(..) | ConfigError::Invalid(_) => StatusCode::BAD_REQUEST,
        ConfigError::UnknownService(..) => StatusCode::NOT_FOUND,
        ConfigError::Read { .. } | ConfigError::Parse { .. } | ConfigError::Region(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn format_status(e: &btar_format::FormatError) -> StatusCode {
    use btar_format::FormatError as F;
    match e {
        F::InvalidName { .. } => StatusCode::BAD_REQUEST,
        // Nothing stored for the service in that region (yet).
        F::BackupNotFound { .. } | F::NoLocation { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn engine_status(e: &btar_engine::EngineError) -> StatusCode {
    use btar_engine::EngineError as E;
    match e {
        E::Format(f) => format_status(f),
        // A target time outside what the chosen location can reach, or nothing to restore there.
        E::Invalid(_) => StatusCode::BAD_REQUEST,
        // Only a damaged backup could serve the target: the request is fine, the stored state is not.
        E::Damaged(_) => StatusCode::CONFLICT,
        E::Unavailable(_) | E::NotBuiltIn(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

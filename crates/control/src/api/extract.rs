//! Extractors that turn every malformed request into the API's JSON error (a 400) instead of
//! axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. The content type is not insisted on, so `curl -d '{…}'` works too; the body must
/// still be valid JSON of the expected shape (unknown fields are refused by the types).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::rejected(r.status(), r.body_text()))?;
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(v)| Body(v))
            .map_err(|r| ApiError::rejected(r.status(), r.body_text()))
    }
}

/// Query parameters.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|r| ApiError::rejected(r.status(), r.body_text()))
    }
}

/// Path parameters.
#[derive(Debug)]
pub struct PathArgs<T>(pub T);

impl<S, T> FromRequestParts<S> for PathArgs<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathArgs(v))
            .map_err(|r| ApiError::rejected(r.status(), r.body_text()))
    }
}

/// An optional `service` query parameter: empty means none; anything else must be a valid name.
pub fn service_filter(service: Option<String>) -> Result<Option<String>, super::error::ApiError> {
    let service = service.filter(|s| !s.is_empty());
    if let Some(s) = &service {
        btar_format::layout::validate_name(s)
            .map_err(|e| super::error::ApiError::bad_request(e.to_string()))?;
    }
    Ok(service)
}

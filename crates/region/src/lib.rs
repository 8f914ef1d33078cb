//! Regions: the named places where btar stores backups.
//!
//! A region is an object store (`file://`, `s3://`, `gs://`, `az://`, `memory://`) plus that region's own
//! encryption key. Everything above this crate talks to storage through [`Region`], which adds typed
//! errors naming the region and object, retries with backoff on transient failures, and cancellation.

mod config;
mod error;
pub mod faults;
mod key;
mod local;
mod retry;
mod store;

pub use config::{FAULTS_OPTION, Provider, RegionConfig, RetryConfig, validate_region_name};
pub use error::RegionError;
pub use key::{KeySource, RegionKey};
pub use local::effective_uid;
pub use retry::{RetryPolicy, with_backoff};
pub use store::{ObjectInfo, Region};
pub use tokio_util::sync::CancellationToken;

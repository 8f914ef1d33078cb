//! Services as the API and the CLI manage them (Aiven's ServiceCreate / ServiceUpdate): create or
//! fork, update, get, list, delete — with the region rules of DESIGN.md ("Rules from the reference
//! systems").

mod crud;
mod fork_request;
mod masking;
mod regions;
mod user_config;

pub use crud::{ServiceCreate, ServiceState, ServiceView};
pub(crate) use regions::check_backup_regions;
pub use user_config::UserConfig;

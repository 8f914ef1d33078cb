//! Format v2 storage: blocks (database pages) are content-addressed like v1 chunks, grouped into
//! compressed, sealed frames, and frames into pack objects of tens of MiB with a sealed index, so
//! a backup is a few PUTs and a restore a few ranged GETs.

pub mod frame;
pub mod index;
pub(crate) mod known;
pub mod packer;
mod store;

pub use frame::OpenFrame;
pub use index::{FrameEntry, IndexError, PackId, PackIndex};
pub use packer::{FramePos, PackTable, Packer};

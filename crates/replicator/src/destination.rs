use btar_format::Location;
use btar_region::{Region, RegionError};

use crate::error::CopyError;

fn same_region(src: &Region, dst: &Region) -> Result<(), CopyError> {
    let refuse = |reason: &str| {
        Err(CopyError::SameRegion {
            source_region: src.name().into(),
            destination: dst.name().into(),
            reason: reason.into(),
        })
    };
    if src.name() == dst.name() {
        return refuse("same name");
    }
    // Two names for one store are caught after opening, by the descriptor (see check_pair): URLs
    // alone cannot tell, since equal bucket names on different endpoints are different stores.
    Ok(())
}

/// Opens the existing secondary location of `src`'s service in `dst`, for a destination that has
/// received copies before: if it is gone (an unmounted directory, a deleted bucket) the copy fails
/// instead of starting a new location there. See [`create_destination`] for the first copy.
pub async fn open_destination(src: &Location, dst: &Region) -> Result<Location, CopyError> {
    destination(src, dst, false).await
}

/// Opens the secondary location of `src`'s service in `dst`, creating it if absent (the first copy
/// into that region). The new location takes the source's descriptor and chunk-id key, so chunk ids
/// are equal in every location and a copy ships only what the destination lacks.
///
/// Refused before any byte is written if `dst` has no key or is the source's region.
pub async fn create_destination(src: &Location, dst: &Region) -> Result<Location, CopyError> {
    destination(src, dst, true).await
}

async fn destination(src: &Location, dst: &Region, create: bool) -> Result<Location, CopyError> {
    same_region(src.region(), dst)?;
    if let Err(RegionError::MissingKey { region, env_var }) = dst.key() {
        return Err(CopyError::DestinationKeyMissing { region, env_var });
    }
    let opened = if create {
        Location::create(
            dst,
            src.service(),
            &src.descriptor().engine,
            Some((src.descriptor(), src.chunk_id_key())),
        )
        .await
    } else {
        Location::open(dst, src.service()).await
    };
    let loc = opened.map_err(|e| match e {
        btar_format::FormatError::ChunkKeyMismatch { region, service } => {
            CopyError::ChunkKeyMismatch { region, service }
        }
        e => e.into(),
    })?;
    check_pair(src, &loc)?;
    Ok(loc)
}

/// Checks that `dst` can receive copies of `src`: another region, same service, same chunk-id key.
pub(crate) fn check_pair(src: &Location, dst: &Location) -> Result<(), CopyError> {
    same_region(src.region(), dst.region())?;
    // The wrapped chunk-id key carries a random nonce, so two distinct locations never have the same
    // descriptor text: equality means both regions are aliases of one store.
    if src.descriptor().chunk_id_key == dst.descriptor().chunk_id_key {
        return Err(CopyError::SameRegion {
            source_region: src.region().name().into(),
            destination: dst.region().name().into(),
            reason: "both names lead to the same store".into(),
        });
    }
    if src.service() != dst.service() || src.chunk_id_key() != dst.chunk_id_key() {
        return Err(CopyError::ChunkKeyMismatch {
            region: dst.region().name().into(),
            service: dst.service().into(),
        });
    }
    Ok(())
}

//! Directories btar creates in a tree that another user owns while it runs as root, as a root-run
//! `btar fork` does beside `btar up` (which runs as the database user): each new directory takes
//! the owner of the directory it is made in, so the tree's owner can still create beside it. Left
//! to root (0755), `forks/` would refuse the server's next fork.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Creates `dir` and whichever of its ancestors are missing; as root, each one created is given
/// the owner and group of the directory it was made in.
pub fn create_dir_all_owned(dir: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
    let as_root = btar_region::effective_uid() == Some(0);
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            // Made meanwhile by someone else, who chose its owner.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        if as_root && let Some(parent) = d.parent() {
            let meta = std::fs::metadata(parent)?;
            std::os::unix::fs::chown(d, Some(meta.uid()), Some(meta.gid()))?;
        }
    }
    Ok(())
}

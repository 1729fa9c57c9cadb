//! The releng scripts in `scripts/` are bash; this crate holds their
//! end-to-end tests (`tests/`), which run them on the fixtures with the
//! workspace's freshly built tools and check every artifact with a real
//! client: ostree, qemu-img, qemu, librepo, productmd.
//!
//! [`scripts_dir`] is all the code there is.

use std::path::PathBuf;

/// The workspace's `scripts/` directory.
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts"))
}

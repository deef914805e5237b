//! A small image built once and shared by tests across crates: [`shared_test_image`].
//!
//! The image lives in `<target>/agentlab-test-image/<key>/` where the key hashes the test spec
//! and the runner binary, so a CI run builds it once and every later test (this crate's, a
//! VM backend's) reuses it. A file lock serialises concurrent builders.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::build::{BuildOptions, build};
use crate::error::ImageError;
use crate::manifest::{MANIFEST_FILE, file_sha256};
use crate::npm::NpmOptions;
use crate::spec::ImageSpec;

/// The test image's spec: the base set plus a tiny npm package (`is-number`), 2 GiB disk.
pub const TEST_SPEC: &str = "suite: bookworm\ndisk_size: 2G\nnpm_packages: [is-number@7.0.0]\n";

/// The shared cache root: `$CARGO_TARGET_DIR` or the workspace's `target/`, then
/// `agentlab-test-image`.
pub fn cache_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("agentlab-test-image")
}

/// Returns the directory of the shared test image built with `runner`, building it first
/// when missing (minutes; needs root, the tools of [`crate::tools::REQUIRED_TOOLS`], the
/// Debian mirror and the npm registry). Progress goes to stderr.
pub fn shared_test_image(runner: &Path) -> Result<PathBuf, ImageError> {
    let spec = ImageSpec::from_yaml(TEST_SPEC, "<test spec>")?;
    let mut h = Sha256::new();
    h.update(spec.hash()?.as_bytes());
    h.update(file_sha256(runner)?.as_bytes());
    let key = hex::encode(h.finalize());
    let root = cache_root();
    fs::create_dir_all(&root).map_err(|e| ImageError::io(&root, e))?;
    let lock_path = root.join(".lock");
    let lock = fs::File::create(&lock_path).map_err(|e| ImageError::io(&lock_path, e))?;
    lock.lock().map_err(|e| ImageError::io(&lock_path, e))?;
    let out = root.join(&key[..16]);
    if out.join(MANIFEST_FILE).is_file() {
        return Ok(out);
    }
    let opts = BuildOptions {
        spec,
        out: out.clone(),
        runner: runner.to_owned(),
        npm: NpmOptions {
            cache: root.join("npm-cache"),
            ..NpmOptions::default()
        },
        force: true,
        rootfs_only: false,
        source_date_epoch: Some(1_700_000_000),
    };
    build(&opts, &mut |p| eprintln!("{p}"))?;
    Ok(out)
}

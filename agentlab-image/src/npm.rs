//! Agent CLIs from the npm registry, installed through a cache directory on the host.
//!
//! `npm install --global --prefix <rootfs>/usr/local --cache <dir> --prefer-offline`: the
//! first build fills the cache; later builds take every tarball and packument found there
//! without asking the registry, so a rebuild works while the registry is down. Pass
//! [`NpmOptions::offline`] to forbid the network altogether.
//!
//! npm keys its cache by registry URL: a rebuild must use the same registry as the build that
//! filled the cache (changing `--registry` to a mirror misses the cache).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::ImageError;
use crate::spec::split_npm;
use crate::tools::run;

/// How npm is run.
#[derive(Debug, Clone, Default)]
pub struct NpmOptions {
    /// The npm cache directory on the host (kept between builds).
    pub cache: PathBuf,
    /// Registry URL (npm's configured one when `None`).
    pub registry: Option<String>,
    /// Never touch the network (`--offline`): everything must be in the cache.
    pub offline: bool,
    /// The npm program (`npm`).
    pub npm: Option<PathBuf>,
    /// Extra environment for npm (`npm_config_https_proxy`, …).
    pub env: Vec<(String, String)>,
}

/// One installed npm package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NpmPackage {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub version: String,
}

/// Installs `specs` globally under `prefix` (`<prefix>/lib/node_modules`, `<prefix>/bin`)
/// and returns the installed versions in `specs` order.
pub fn install(
    specs: &[String],
    prefix: &Path,
    opts: &NpmOptions,
) -> Result<Vec<NpmPackage>, ImageError> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let npm = opts.npm.clone().unwrap_or_else(|| PathBuf::from("npm"));
    if opts.npm.is_none() && crate::tools::which("npm").is_none() {
        return Err(ImageError::MissingTool {
            tool: "npm".into(),
            package: "npm".into(),
        });
    }
    std::fs::create_dir_all(&opts.cache).map_err(|e| ImageError::io(&opts.cache, e))?;
    let mut cmd = Command::new(npm);
    cmd.args(["install", "--global", "--no-audit", "--no-fund"])
        .arg("--prefix")
        .arg(prefix)
        .arg("--cache")
        .arg(&opts.cache)
        .arg(if opts.offline {
            "--offline"
        } else {
            "--prefer-offline"
        })
        .env("npm_config_update_notifier", "false")
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null());
    if let Some(r) = &opts.registry {
        cmd.arg("--registry").arg(r);
    }
    cmd.args(specs);
    run("npm", &mut cmd)?;
    specs
        .iter()
        .map(|s| {
            let (name, _) = split_npm(s);
            let pj = prefix
                .join("lib/node_modules")
                .join(name)
                .join("package.json");
            let text = std::fs::read_to_string(&pj).map_err(|e| ImageError::io(&pj, e))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| ImageError::step("npm", format!("{}: {e}", pj.display())))?;
            Ok(NpmPackage {
                name: name.to_owned(),
                version: v["version"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

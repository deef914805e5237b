//! Loading the configuration file: [`Config::load`], [`ConfigError`], path resolution.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::yaml::{self, Document, ErrorDetails, ErrorKind};

use super::schema::Config;
use super::validate::validate;

/// Where the daemon looks for its configuration when neither flag nor env var is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/agentlab/config.yaml";

/// Environment variable naming the configuration file (overridden by `--config`).
pub const CONFIG_ENV: &str = "AGENTLAB_CONFIG";

/// Paths whose values are secret and never appear in errors.
const SENSITIVE: &[&str] = &["pve.token_secret"];

/// Origin named in errors of [`Config::validate`] on a configuration built in code.
const MEMORY_ORIGIN: &str = "<config>";

/// Why the configuration could not be loaded; `details` says where and why. Never contains
/// the PVE token secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{details}")]
pub struct ConfigError {
    /// Where and why (boxed to keep `Result`s small).
    pub details: Box<ErrorDetails>,
}

impl ConfigError {
    /// The kind of problem.
    pub fn kind(&self) -> ErrorKind {
        self.details.kind
    }
}

impl From<ErrorDetails> for ConfigError {
    fn from(details: ErrorDetails) -> Self {
        Self {
            details: Box::new(details),
        }
    }
}

impl From<Box<ErrorDetails>> for ConfigError {
    fn from(details: Box<ErrorDetails>) -> Self {
        Self { details }
    }
}

/// The configuration path: the `--config` flag, else the `AGENTLAB_CONFIG` value (pass
/// `std::env::var_os(CONFIG_ENV)`), else [`DEFAULT_CONFIG_PATH`]. Empty values are ignored.
pub fn resolve_path(flag: Option<&Path>, env: Option<&OsStr>) -> PathBuf {
    flag.filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .or_else(|| env.filter(|e| !e.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::from(ErrorDetails::file(
                ErrorKind::Io,
                &file,
                format!("cannot read: {e}"),
            ))
        })?;
        Self::from_yaml_str(&text, &file)
    }

    /// Parses and validates configuration text; `origin` names it in errors. An empty (or
    /// comment-only) text yields the defaults, which still need a `pve` section unless
    /// another backend is chosen.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let docs: Vec<Document<'_>> = yaml::split_documents(text)
            .into_iter()
            .filter(|d| !d.is_blank())
            .collect();
        let (config, doc) = match docs.as_slice() {
            [] => (
                Config::default(),
                Document {
                    index: 1,
                    text: "",
                    first_line: 1,
                },
            ),
            [doc] => match yaml::decode::<Config>(doc, origin, SENSITIVE) {
                Ok(config) => (config, *doc),
                Err(mut details) => {
                    // A single-document file: the document index adds nothing.
                    details.document = None;
                    return Err(details.into());
                }
            },
            [_, second, ..] => {
                let mut details = ErrorDetails::file(
                    ErrorKind::Syntax,
                    origin,
                    format!("expected a single YAML document, found {}", docs.len()),
                );
                details.document = Some(second.index);
                details.line = Some(second.first_line);
                return Err(details.into());
            }
        };
        check(&config, origin, &doc)?;
        Ok(config)
    }

    /// Validates a configuration built in code (ranges and cross-field rules).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            self,
            MEMORY_ORIGIN,
            &Document {
                index: 1,
                text: "",
                first_line: 1,
            },
        )
    }
}

fn check(config: &Config, origin: &str, doc: &Document<'_>) -> Result<(), ConfigError> {
    validate(config).map_err(|v| {
        let mut details = ErrorDetails::at_field(v.kind, origin, doc, v.field, v.reason);
        // A single-document file: the document index adds nothing.
        details.document = None;
        ConfigError::from(details)
    })
}

//! [`ImageSpec`]: what goes into an image, loaded strictly from YAML (`images/default.yaml`).
//!
//! Unknown keys are errors naming the file, line and field with the closest valid key, like
//! profiles (the loader is [`agentlab_core::yaml`]). [`ImageSpec::hash`] identifies the spec
//! (its normalised JSON plus the content of every extra file).

use std::path::{Path, PathBuf};

use agentlab_core::yaml::{self, ErrorDetails, ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ImageError;

/// An agent CLI installable from npm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentCli {
    /// Anthropic's Claude Code (`@anthropic-ai/claude-code`).
    ClaudeCode,
    /// OpenAI's Codex CLI (`@openai/codex`).
    Codex,
    /// opencode (`opencode-ai`).
    Opencode,
}

impl AgentCli {
    /// The npm package name.
    pub fn npm_package(self) -> &'static str {
        match self {
            Self::ClaudeCode => "@anthropic-ai/claude-code",
            Self::Codex => "@openai/codex",
            Self::Opencode => "opencode-ai",
        }
    }
}

/// One agent CLI with an optional pinned version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Which CLI.
    pub name: AgentCli,
    /// npm version or range (`2.0.14`); latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// An extra file copied into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Source on the host, relative to the spec file (resolved when loading).
    pub src: PathBuf,
    /// Absolute destination in the image.
    pub dest: String,
    /// Octal mode (`"0644"` by default).
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_mode() -> String {
    "0644".to_owned()
}

/// The image spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// Debian suite (`bookworm`).
    #[serde(default = "default_suite")]
    pub suite: String,
    /// Debian mirror URL; the host's apt sources when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// Size of `disk.qcow2` (`4G`, `2048M`; at least 2G).
    #[serde(default = "default_disk_size")]
    pub disk_size: String,
    /// Debian packages on top of [`crate::BASE_PACKAGES`].
    #[serde(default)]
    pub packages: Vec<String>,
    /// Agent CLIs from npm.
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    /// Extra npm packages (`name` or `name@version`).
    #[serde(default)]
    pub npm_packages: Vec<String>,
    /// Extra files.
    #[serde(default)]
    pub files: Vec<FileSpec>,
}

fn default_suite() -> String {
    "bookworm".to_owned()
}

fn default_disk_size() -> String {
    "4G".to_owned()
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            suite: default_suite(),
            mirror: None,
            disk_size: default_disk_size(),
            packages: Vec::new(),
            agents: Vec::new(),
            npm_packages: Vec::new(),
            files: Vec::new(),
        }
    }
}

impl ImageSpec {
    /// Loads and validates a spec file; `files[].src` become absolute.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ImageError::Spec(Box::new(ErrorDetails::file(
                ErrorKind::Io,
                &origin,
                format!("cannot read: {e}"),
            )))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut spec = Self::from_yaml(&text, &origin)?;
        for f in &mut spec.files {
            if f.src.is_relative() {
                f.src = base.join(&f.src);
            }
        }
        Ok(spec)
    }

    /// Parses and validates one YAML document; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ImageError> {
        let docs = yaml::split_documents(text);
        let mut docs = docs.iter().filter(|d| !d.is_blank());
        let Some(doc) = docs.next() else {
            return Ok(Self::default());
        };
        if docs.next().is_some() {
            return Err(ImageError::Spec(Box::new(ErrorDetails::file(
                ErrorKind::Invalid,
                origin,
                "an image spec holds exactly one YAML document",
            ))));
        }
        let spec: Self = yaml::decode(doc, origin, &[]).map_err(ImageError::Spec)?;
        if let Err((field, reason)) = spec.check() {
            return Err(ImageError::Spec(Box::new(ErrorDetails::at_field(
                ErrorKind::Invalid,
                origin,
                doc,
                &field,
                reason,
            ))));
        }
        Ok(spec)
    }

    /// Checks the values; `Err((field, reason))`.
    fn check(&self) -> Result<(), (String, String)> {
        let word = |s: &str, extra: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
        };
        if !word(&self.suite, "-") {
            return Err((
                "suite".into(),
                format!("not a Debian suite name: {:?}", self.suite),
            ));
        }
        if let Some(m) = &self.mirror
            && !(m.starts_with("http://") || m.starts_with("https://") || m.starts_with("file:/"))
        {
            return Err((
                "mirror".into(),
                "must be an http(s):// or file:/ URL".into(),
            ));
        }
        match self.disk_bytes() {
            Some(b) if b >= 2 << 30 => {}
            _ => {
                return Err((
                    "disk_size".into(),
                    format!(
                        "{:?} is not a size of at least 2G (e.g. 4G, 8192M)",
                        self.disk_size
                    ),
                ));
            }
        }
        for (i, p) in self.packages.iter().enumerate() {
            if !word(p, "+.-") || p.starts_with(['-', '.', '+']) {
                return Err((
                    format!("packages[{i}]"),
                    format!("not a Debian package name: {p:?}"),
                ));
            }
        }
        for (i, a) in self.agents.iter().enumerate() {
            if let Some(v) = &a.version
                && !npm_token(v)
            {
                return Err((
                    format!("agents[{i}].version"),
                    format!("not an npm version: {v:?}"),
                ));
            }
        }
        for (i, p) in self.npm_packages.iter().enumerate() {
            let (name, version) = split_npm(p);
            let name_ok = name
                .strip_prefix('@')
                .map_or(Some(name), |n| n.split_once('/').map(|(_, b)| b))
                .is_some_and(|n| word(n, "-._~"));
            if !name_ok || version.is_some_and(|v| !npm_token(v)) {
                return Err((
                    format!("npm_packages[{i}]"),
                    format!("not an npm package spec: {p:?}"),
                ));
            }
        }
        for (i, f) in self.files.iter().enumerate() {
            let bad_dest = !f.dest.starts_with('/') || f.dest.split('/').any(|c| c == "..");
            if bad_dest {
                return Err((
                    format!("files[{i}].dest"),
                    "must be an absolute path without ..".into(),
                ));
            }
            if u32::from_str_radix(&f.mode, 8).map_or(true, |m| m > 0o7777) {
                return Err((
                    format!("files[{i}].mode"),
                    format!("not an octal mode: {:?}", f.mode),
                ));
            }
        }
        Ok(())
    }

    /// `disk_size` in bytes.
    pub fn disk_bytes(&self) -> Option<u64> {
        let s = self.disk_size.as_str();
        let (num, unit) = match s.chars().last()? {
            'G' => (&s[..s.len() - 1], 1u64 << 30),
            'M' => (&s[..s.len() - 1], 1 << 20),
            _ => return None,
        };
        num.parse::<u64>().ok()?.checked_mul(unit)
    }

    /// The npm install specs (`pkg` or `pkg@version`): agents first, then `npm_packages`.
    pub fn npm_specs(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .agents
            .iter()
            .map(|a| match &a.version {
                Some(v) => format!("{}@{v}", a.name.npm_package()),
                None => a.name.npm_package().to_owned(),
            })
            .collect();
        out.extend(self.npm_packages.iter().cloned());
        out
    }

    /// `sha256:<hex>` of the normalised spec and the content of every extra file.
    pub fn hash(&self) -> Result<String, ImageError> {
        let mut h = Sha256::new();
        let mut normal = self.clone();
        for f in &mut normal.files {
            f.src = PathBuf::from(f.src.file_name().unwrap_or_default());
        }
        h.update(serde_json::to_vec(&normal).unwrap_or_default());
        for f in &self.files {
            let data = std::fs::read(&f.src).map_err(|e| ImageError::io(&f.src, e))?;
            h.update(Sha256::digest(&data));
        }
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    }
}

/// Splits `name@version` (a leading `@` belongs to the scope).
pub fn split_npm(spec: &str) -> (&str, Option<&str>) {
    let at = spec.get(1..).and_then(|rest| rest.find('@')).map(|i| i + 1);
    match at {
        Some(i) => (&spec[..i], Some(&spec[i + 1..])),
        None => (spec, None),
    }
}

fn npm_token(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('-')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+-~^<>=*_".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_file_line_field_and_suggestion() {
        let text = "suite: bookworm\npackages: [vim]\nagnets:\n  - name: codex\n";
        let err = ImageSpec::from_yaml(text, "img.yaml").unwrap_err();
        let ImageError::Spec(d) = &err else {
            panic!("{err}")
        };
        assert_eq!(d.kind, ErrorKind::UnknownField);
        assert_eq!(d.field.as_deref(), Some("agnets"));
        assert_eq!(d.line, Some(3));
        assert_eq!(d.suggestion.as_deref(), Some("agents"));
        let msg = err.to_string();
        assert!(msg.contains("img.yaml") && msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn unknown_agent_is_an_error_with_a_suggestion() {
        let err = ImageSpec::from_yaml("agents:\n  - name: claude-cod\n", "x.yaml").unwrap_err();
        let ImageError::Spec(d) = &err else {
            panic!("{err}")
        };
        assert_eq!(d.kind, ErrorKind::UnknownVariant, "{err}");
        assert_eq!(d.suggestion.as_deref(), Some("claude-code"), "{err}");
        assert_eq!(d.line, Some(2), "{err}");
    }

    #[test]
    fn bad_values_are_located() {
        let cases = [
            ("disk_size: 1G\n", "disk_size", 1),
            ("packages:\n  - ok\n  - 'rm -rf'\n", "packages[1]", 3),
            ("files:\n  - src: a\n    dest: etc/x\n", "files[0].dest", 3),
            ("npm_packages: ['is-number@;x']\n", "npm_packages[0]", 1),
            ("suite: Bookworm\n", "suite", 1),
        ];
        for (text, field, line) in cases {
            let err = ImageSpec::from_yaml(text, "s.yaml").unwrap_err();
            let ImageError::Spec(d) = &err else {
                panic!("{err}")
            };
            assert_eq!(d.field.as_deref(), Some(field), "{text}: {err}");
            assert_eq!(d.line, Some(line), "{text}: {err}");
        }
    }

    #[test]
    fn the_shipped_default_spec_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/default.yaml");
        let spec = ImageSpec::load(&path).unwrap();
        assert_eq!(spec.suite, "bookworm");
        assert_eq!(spec.disk_bytes(), Some(4 << 30));
        assert_eq!(
            spec.npm_specs(),
            ["@anthropic-ai/claude-code", "@openai/codex", "opencode-ai"]
        );
        assert!(spec.hash().unwrap().starts_with("sha256:"));
    }

    #[test]
    fn hash_changes_with_the_spec_and_file_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("motd"), "hello").unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, "files:\n  - src: motd\n    dest: /etc/motd\n").unwrap();
        let a = ImageSpec::load(&path).unwrap().hash().unwrap();
        assert_eq!(a, ImageSpec::load(&path).unwrap().hash().unwrap());
        std::fs::write(dir.path().join("motd"), "bye").unwrap();
        assert_ne!(a, ImageSpec::load(&path).unwrap().hash().unwrap());
        let b = ImageSpec::from_yaml("packages: [vim]\n", "x")
            .unwrap()
            .hash()
            .unwrap();
        assert_ne!(b, ImageSpec::default().hash().unwrap());
    }

    #[test]
    fn npm_spec_split() {
        assert_eq!(
            split_npm("@openai/codex@1.2"),
            ("@openai/codex", Some("1.2"))
        );
        assert_eq!(split_npm("@openai/codex"), ("@openai/codex", None));
        assert_eq!(split_npm("is-number@7.0.0"), ("is-number", Some("7.0.0")));
    }
}

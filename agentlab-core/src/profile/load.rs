//! Loading profiles from files, directories and request bodies: [`Profiles`], [`ProfileError`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::yaml::{self, Document, ErrorDetails, ErrorKind, YamlLimits};

use super::legacy::{self, ProfileWarning};
use super::schema::Profile;
use super::validate::validate;

/// Origin used in errors by [`Profiles::validate_yaml`].
const BODY_ORIGIN: &str = "<request body>";

/// Why profiles could not be loaded. `details` says where (file, document, field, line and
/// column) and why; serialize it as the `details` object of an API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{details}")]
pub struct ProfileError {
    /// Where and why (boxed to keep `Result`s small).
    pub details: Box<ErrorDetails>,
}

impl ProfileError {
    /// The kind of problem.
    pub fn kind(&self) -> ErrorKind {
        self.details.kind
    }
}

impl From<ErrorDetails> for ProfileError {
    fn from(details: ErrorDetails) -> Self {
        Self {
            details: Box::new(details),
        }
    }
}

impl From<Box<ErrorDetails>> for ProfileError {
    fn from(details: Box<ErrorDetails>) -> Self {
        Self { details }
    }
}

/// Where a loaded profile came from.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    profile: Profile,
    file: String,
    document: usize,
}

/// A validated set of profiles with unique names, ordered by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profiles {
    by_name: BTreeMap<String, Entry>,
    warnings: Vec<ProfileWarning>,
}

impl Profiles {
    /// Loads every `*.yaml`/`*.yml` file of `dir` (sorted by name; hidden files skipped),
    /// each possibly holding several `---` documents. Comment-only documents are skipped;
    /// a name defined twice is an error naming both places.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ProfileError> {
        let io_err = |path: &Path, e: std::io::Error| {
            ProfileError::from(ErrorDetails::file(
                ErrorKind::Io,
                &path.display().to_string(),
                format!("cannot read: {e}"),
            ))
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let path = entry.map_err(|e| io_err(dir, e))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let is_yaml = path.extension().is_some_and(|x| x == "yaml" || x == "yml");
            if is_yaml && !name.starts_with('.') && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut profiles = Profiles::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
            profiles.add_text(&text, &path.display().to_string())?;
        }
        Ok(profiles)
    }

    /// Parses one YAML text (possibly multi-document); `origin` names it in errors.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Profiles, ProfileError> {
        let mut profiles = Profiles::default();
        profiles.add_text(text, origin)?;
        Ok(profiles)
    }

    /// Validates a YAML body (the daemon's "validate profile" route) and returns its profiles
    /// in document order. Errors name the origin `<request body>`. Uses the default
    /// [`YamlLimits`].
    pub fn validate_yaml(text: &str) -> Result<Vec<Profile>, ProfileError> {
        Self::validate_yaml_with(text, &YamlLimits::default())
    }

    /// [`Profiles::validate_yaml`] with explicit parsing limits: text over them is refused
    /// ([`ErrorKind::Limit`]) before the YAML parser runs.
    pub fn validate_yaml_with(
        text: &str,
        limits: &YamlLimits,
    ) -> Result<Vec<Profile>, ProfileError> {
        let mut profiles = Profiles::default();
        let mut order = Vec::new();
        for (doc, profile, _) in parse_text(text, BODY_ORIGIN, limits)? {
            order.push(profile.name.clone());
            profiles.insert(profile, BODY_ORIGIN, &doc)?;
        }
        Ok(order
            .iter()
            .filter_map(|n| profiles.by_name.remove(n).map(|e| e.profile))
            .collect())
    }

    /// Builds a set from profiles made in code (tests, embedding); validates each one.
    pub fn from_profiles(list: Vec<Profile>) -> Result<Profiles, ProfileError> {
        let mut profiles = Profiles::default();
        for (i, profile) in list.into_iter().enumerate() {
            let doc = Document {
                index: i + 1,
                text: "",
                first_line: 1,
            };
            check(&profile, "<memory>", &doc)?;
            profiles.insert(profile, "<memory>", &doc)?;
        }
        Ok(profiles)
    }

    /// The profile called `name`.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.by_name.get(name).map(|e| &e.profile)
    }

    /// All names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// All profiles, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_name.values().map(|e| &e.profile)
    }

    /// Number of profiles.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Go-original spellings that were accepted and translated while loading, in file and
    /// document order (see `docs/upgrade-from-go.md`); log or print them.
    pub fn warnings(&self) -> &[ProfileWarning] {
        &self.warnings
    }

    /// The file (or origin) a profile was loaded from, for `profile show`.
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(|e| e.file.as_str())
    }

    fn add_text(&mut self, text: &str, origin: &str) -> Result<(), ProfileError> {
        for (doc, profile, warnings) in parse_text(text, origin, &YamlLimits::default())? {
            self.insert(profile, origin, &doc)?;
            self.warnings.extend(warnings);
        }
        Ok(())
    }

    fn insert(
        &mut self,
        profile: Profile,
        file: &str,
        doc: &Document<'_>,
    ) -> Result<(), ProfileError> {
        if let Some(first) = self.by_name.get(&profile.name) {
            let mut details = ErrorDetails::at_field(
                ErrorKind::Duplicate,
                file,
                doc,
                "name",
                format!(
                    "duplicate profile name {:?}, first defined in {} (document {})",
                    profile.name, first.file, first.document
                ),
            );
            details.suggestion = None;
            return Err(details.into());
        }
        self.by_name.insert(
            profile.name.clone(),
            Entry {
                profile,
                file: file.to_owned(),
                document: doc.index,
            },
        );
        Ok(())
    }
}

/// Parses and validates every non-blank document of `text` (refused first when over `limits`);
/// Go-original spellings are translated with warnings ([`legacy`]).
#[allow(clippy::type_complexity)]
fn parse_text<'t>(
    text: &'t str,
    origin: &str,
    limits: &YamlLimits,
) -> Result<Vec<(Document<'t>, Profile, Vec<ProfileWarning>)>, ProfileError> {
    yaml::check_limits(text, origin, limits)?;
    let mut out = Vec::new();
    for doc in yaml::split_documents(text)
        .into_iter()
        .filter(|d| !d.is_blank())
    {
        let mut raw: serde_yaml::Value = yaml::decode(&doc, origin, &[])?;
        let warnings = legacy::translate(&mut raw, origin, &doc)?;
        let decoded = if warnings.is_empty() {
            yaml::decode::<Profile>(&doc, origin, &[])
        } else {
            yaml::decode_value::<Profile>(&raw, &doc, origin, &[])
        };
        let profile = decoded.map_err(missing_section_hint)?;
        check(&profile, origin, &doc)?;
        out.push((doc, profile, warnings));
    }
    Ok(out)
}

/// A missing `agent` or `resources` section is what a profile of the Go original (which
/// needed only `name` and `template_vmid`) runs into first: say what to add.
fn missing_section_hint(mut details: Box<ErrorDetails>) -> Box<ErrorDetails> {
    if details.kind == ErrorKind::MissingField {
        let hint = match details.field.as_deref() {
            Some("agent") => {
                "add `agent:` with `preset: claude` (or codex, opencode) or `command: ...`; \
                 profiles of the Go original had none (see docs/upgrade-from-go.md)"
            }
            Some("resources") => {
                "add `resources:` with `cores` and `memory_mb`; profiles of the Go original \
                 could leave them to the template (see docs/upgrade-from-go.md)"
            }
            _ => return details,
        };
        details.reason = format!("{}: {hint}", details.reason);
    }
    details
}

fn check(profile: &Profile, origin: &str, doc: &Document<'_>) -> Result<(), ProfileError> {
    validate(profile).map_err(|v| {
        ProfileError::from(ErrorDetails::at_field(
            v.kind,
            origin,
            doc,
            &v.path(),
            v.reason,
        ))
    })
}

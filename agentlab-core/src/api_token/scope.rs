//! Scopes of API tokens: what a token may do, per resource and verb.
//!
//! A scope is `RESOURCE:VERB` (`.` is accepted as the separator too, as in the Go original's
//! `job.create`); `*` stands for every verb of a resource (`job:*`) or for everything (`*` or
//! `*:*`). Every control route requires exactly one [`Required`] scope; a token holding no scope
//! that covers it is refused with the missing scope named.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every resource with the verbs it knows, in the order `agentlab token` documents them.
pub const SCOPES: &[(&str, &[&str])] = &[
    ("status", &["read"]),
    (
        "sandbox",
        &[
            "read", "create", "destroy", "start", "stop", "renew", "exec",
        ],
    ),
    ("job", &["read", "create", "cancel"]),
    ("workspace", &["read", "create", "delete", "attach"]),
    ("profile", &["read", "reload"]),
    ("metrics", &["read"]),
    ("mcp", &["use"]),
    ("admin", &["backup"]),
];

/// The scope one route requires: a resource and a verb from [`SCOPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Required {
    /// The resource, e.g. `job`.
    pub resource: &'static str,
    /// The verb, e.g. `create`.
    pub verb: &'static str,
}

impl Required {
    /// The scope `resource:verb`.
    pub const fn new(resource: &'static str, verb: &'static str) -> Self {
        Self { resource, verb }
    }

    /// Whether the pair is one of [`SCOPES`].
    pub fn is_known(&self) -> bool {
        SCOPES
            .iter()
            .any(|(r, verbs)| *r == self.resource && verbs.contains(&self.verb))
    }
}

impl fmt::Display for Required {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.verb)
    }
}

/// A scope a token holds: a resource (or every resource) and a verb (or every verb).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    resource: Option<String>,
    verb: Option<String>,
}

/// Why a scope text is not a scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not `RESOURCE:VERB`.
    #[error("scope {0:?} is not RESOURCE:VERB (e.g. job:create, sandbox:*, *)")]
    Malformed(String),
    /// An unknown resource.
    #[error("scope {scope:?}: unknown resource {resource:?} (known: {known})")]
    UnknownResource {
        /// The scope text.
        scope: String,
        /// The resource named.
        resource: String,
        /// The known resources.
        known: String,
    },
    /// A verb the resource does not have.
    #[error("scope {scope:?}: {resource} has no verb {verb:?} (its verbs: {known})")]
    UnknownVerb {
        /// The scope text.
        scope: String,
        /// The resource.
        resource: String,
        /// The verb named.
        verb: String,
        /// The resource's verbs.
        known: String,
    },
}

impl Scope {
    /// Parses `RESOURCE:VERB`, `RESOURCE.VERB`, `RESOURCE:*` or `*`.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let t = text.trim();
        if t == "*" || t == "*:*" || t == "*.*" {
            return Ok(Self {
                resource: None,
                verb: None,
            });
        }
        let (resource, verb) = t
            .split_once(':')
            .or_else(|| t.split_once('.'))
            .ok_or_else(|| ScopeError::Malformed(text.to_owned()))?;
        let Some((_, verbs)) = SCOPES.iter().find(|(r, _)| *r == resource) else {
            return Err(ScopeError::UnknownResource {
                scope: text.to_owned(),
                resource: resource.to_owned(),
                known: SCOPES
                    .iter()
                    .map(|(r, _)| *r)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if verb == "*" {
            return Ok(Self {
                resource: Some(resource.to_owned()),
                verb: None,
            });
        }
        if !verbs.contains(&verb) {
            return Err(ScopeError::UnknownVerb {
                scope: text.to_owned(),
                resource: resource.to_owned(),
                verb: verb.to_owned(),
                known: verbs.join(", "),
            });
        }
        Ok(Self {
            resource: Some(resource.to_owned()),
            verb: Some(verb.to_owned()),
        })
    }

    /// Whether this scope covers `required`.
    pub fn allows(&self, required: Required) -> bool {
        self.resource
            .as_deref()
            .is_none_or(|r| r == required.resource)
            && self.verb.as_deref().is_none_or(|v| v == required.verb)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.resource, &self.verb) {
            (None, _) => f.write_str("*"),
            (Some(r), None) => write!(f, "{r}:*"),
            (Some(r), Some(v)) => write!(f, "{r}:{v}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let create = Required::new("job", "create");
        let read = Required::new("sandbox", "read");
        assert!(Scope::parse("job:*").unwrap().allows(create));
        assert!(Scope::parse("job.create").unwrap().allows(create));
        assert!(!Scope::parse("job:read").unwrap().allows(create));
        assert!(!Scope::parse("job:*").unwrap().allows(read));
        assert!(Scope::parse("*").unwrap().allows(read));
        assert!(Scope::parse("*:*").unwrap().allows(create));
        assert_eq!(
            Scope::parse("job.create").unwrap().to_string(),
            "job:create"
        );
        assert_eq!(Scope::parse("sandbox:*").unwrap().to_string(), "sandbox:*");
    }

    #[test]
    fn refuses_unknown_names_and_says_what_exists() {
        let e = Scope::parse("jobs:create").unwrap_err();
        assert!(e.to_string().contains("known: status, sandbox, job"), "{e}");
        let e = Scope::parse("job:delete").unwrap_err();
        assert!(e.to_string().contains("read, create, cancel"), "{e}");
        assert!(matches!(Scope::parse("job"), Err(ScopeError::Malformed(_))));
        assert!(matches!(
            Scope::parse(":read"),
            Err(ScopeError::UnknownResource { .. })
        ));
    }

    #[test]
    fn every_listed_pair_is_known_and_round_trips() {
        for (r, verbs) in SCOPES {
            for v in *verbs {
                let text = format!("{r}:{v}");
                let s = Scope::parse(&text).unwrap();
                assert_eq!(s.to_string(), text);
                let json = serde_json::to_string(&s).unwrap();
                assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);
            }
        }
        assert!(!Required::new("job", "exec").is_known());
    }
}

//! Identifiers: [`Vmid`] (a Proxmox VM id, also the sandbox id), [`JobId`] and [`WorkspaceId`].
//!
//! All three parse from and display as plain strings and serialize as such (a `Vmid` as a
//! number), so the same text works on the command line, in JSON and in SQLite.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Error returned when an identifier does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    /// Which identifier kind was being parsed.
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// A VM id in Proxmox's range `100..=999_999_999`; AgentLab uses it as the sandbox id too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Vmid(u32);

impl Vmid {
    /// Smallest id Proxmox accepts.
    pub const MIN: u32 = 100;
    /// Largest id Proxmox accepts.
    pub const MAX: u32 = 999_999_999;

    /// Builds a `Vmid`, refusing values outside Proxmox's range.
    pub fn new(value: u32) -> Result<Self, IdError> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(IdError {
                kind: "vmid",
                value: value.to_string(),
                reason: "must be within 100..=999999999",
            })
        }
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Vmid {
    type Error = IdError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Vmid> for u32 {
    fn from(v: Vmid) -> u32 {
        v.0
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Vmid {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: u32 = s.trim().parse().map_err(|_| IdError {
            kind: "vmid",
            value: s.to_owned(),
            reason: "not a number",
        })?;
        Self::new(n)
    }
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id (`<prefix>` followed by 16 lowercase hex digits).
            pub fn generate() -> Self {
                let mut bytes = [0u8; 8];
                rand::thread_rng().fill_bytes(&mut bytes);
                Self(format!("{}{}", $prefix, hex::encode(bytes)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = |reason| IdError { kind: $kind, value: s.to_owned(), reason };
                let rest = s.strip_prefix($prefix).ok_or_else(|| err(concat!("must start with ", $prefix)))?;
                if rest.is_empty() || rest.len() > 64 {
                    return Err(err("must have 1 to 64 characters after the prefix"));
                }
                if !rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                    return Err(err("may only contain lowercase letters and digits"));
                }
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A job id such as `job-4f1c2a9b0d3e5f67`.
    JobId,
    "job-",
    "job id"
);
prefixed_id!(
    /// A workspace id such as `ws-4f1c2a9b0d3e5f67`.
    WorkspaceId,
    "ws-",
    "workspace id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmid_range_is_enforced() {
        assert!(Vmid::new(99).is_err());
        assert!(Vmid::new(100).is_ok());
        assert!(Vmid::new(999_999_999).is_ok());
        assert!(Vmid::new(1_000_000_000).is_err());
        let err = "abc".parse::<Vmid>().unwrap_err();
        assert_eq!(err.to_string(), "Invalid vmid \"abc\": not a number");
    }

    #[test]
    fn vmid_serde_round_trip() {
        let v: Vmid = serde_json::from_str("9001").unwrap();
        assert_eq!(v.get(), 9001);
        assert_eq!(serde_json::to_string(&v).unwrap(), "9001");
        assert!(serde_json::from_str::<Vmid>("5").is_err());
    }

    #[test]
    fn prefixed_ids_parse_and_generate() {
        let j = JobId::generate();
        assert!(j.as_str().starts_with("job-"));
        assert_eq!(j.as_str().parse::<JobId>().unwrap(), j);
        assert!("ws-abc".parse::<JobId>().is_err());
        assert!("job-ABC".parse::<JobId>().is_err());
        let w: WorkspaceId = serde_json::from_str("\"ws-0a\"").unwrap();
        assert_eq!(w.to_string(), "ws-0a");
    }
}

//! Allowlist domain resolution, done once when a sandbox is allowed ("resolved at apply time").
//!
//! Rendering only sees CIDRs: [`resolve_allowlist`] turns every domain into `/32` or `/128`
//! networks so the rendered ruleset is a pure function of its inputs.

use std::fmt;
use std::net::IpAddr;

use agentlab_core::{Egress, SandboxNet};
use async_trait::async_trait;
use ipnet::IpNet;

use crate::error::NetError;

/// Resolves a domain name to addresses.
#[async_trait]
pub trait DomainResolver: Send + Sync + fmt::Debug {
    /// All addresses of `domain` (A and AAAA).
    async fn resolve(&self, domain: &str) -> Result<Vec<IpAddr>, NetError>;
}

/// The system resolver (`getaddrinfo` through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl DomainResolver for SystemResolver {
    async fn resolve(&self, domain: &str) -> Result<Vec<IpAddr>, NetError> {
        let addrs = tokio::net::lookup_host((domain, 443)).await.map_err(|e| {
            NetError::Invalid(format!("Cannot resolve allowlist domain {domain}: {e}"))
        })?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// Returns `sbx` with every allowlist domain replaced by host networks of its addresses
/// (deduplicated, sorted). Non-allowlist sandboxes are returned unchanged.
pub async fn resolve_allowlist(
    resolver: &dyn DomainResolver,
    sbx: &SandboxNet,
) -> Result<SandboxNet, NetError> {
    let Egress::Allowlist { cidrs, domains } = &sbx.egress else {
        return Ok(sbx.clone());
    };
    let mut all = cidrs.clone();
    for d in domains {
        let addrs = resolver.resolve(d).await?;
        if addrs.is_empty() {
            return Err(NetError::Invalid(format!(
                "Allowlist domain {d} has no addresses"
            )));
        }
        all.extend(addrs.into_iter().map(IpNet::from));
    }
    all.sort();
    all.dedup();
    Ok(SandboxNet {
        egress: Egress::Allowlist {
            cidrs: all,
            domains: Vec::new(),
        },
        ..sbx.clone()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use agentlab_core::Vmid;

    use super::*;

    #[derive(Debug)]
    struct Static(HashMap<&'static str, Vec<IpAddr>>);

    #[async_trait]
    impl DomainResolver for Static {
        async fn resolve(&self, domain: &str) -> Result<Vec<IpAddr>, NetError> {
            self.0
                .get(domain)
                .cloned()
                .ok_or_else(|| NetError::Invalid(format!("no {domain}")))
        }
    }

    #[tokio::test]
    async fn domains_become_host_networks() {
        let r = Static(HashMap::from([(
            "example.org",
            vec![
                "93.184.216.34".parse().unwrap(),
                "2606:2800::1".parse().unwrap(),
            ],
        )]));
        let sbx = SandboxNet {
            vmid: Vmid::new(101).unwrap(),
            iface: "tap101i0".into(),
            mac: "02:00:00:00:01:01".into(),
            ip: "10.77.0.11".parse().unwrap(),
            egress: Egress::Allowlist {
                cidrs: vec!["1.2.3.0/24".parse().unwrap()],
                domains: vec!["example.org".into()],
            },
        };
        let out = resolve_allowlist(&r, &sbx).await.unwrap();
        let Egress::Allowlist { cidrs, domains } = out.egress else {
            panic!("mode changed")
        };
        assert!(domains.is_empty());
        let text: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["1.2.3.0/24", "93.184.216.34/32", "2606:2800::1/128"]);
        let bad = SandboxNet {
            egress: Egress::Allowlist {
                cidrs: vec![],
                domains: vec!["nope.test".into()],
            },
            ..sbx
        };
        assert!(resolve_allowlist(&r, &bad).await.is_err());
    }
}

//! Input validation: every name and address that reaches an nft script is checked here first,
//! so rendering can interpolate them without quoting surprises.

use std::net::IpAddr;

use agentlab_core::{Egress, SandboxNet};

use crate::config::NetConfig;
use crate::error::NetError;

/// Checks a Linux interface name (1–15 chars of `[A-Za-z0-9_.-]`).
pub fn validate_iface(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid interface name {name:?}"))
    }
}

/// Parses a MAC address (`aa:bb:cc:dd:ee:ff`, any case) into nft's canonical lower-case form;
/// multicast and all-zero addresses are refused.
pub fn validate_mac(mac: &str) -> Result<String, String> {
    let err = || format!("Invalid MAC address {mac:?}");
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return Err(err());
    }
    let mut bytes = [0u8; 6];
    for (b, p) in bytes.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(err());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| err())?;
    }
    if bytes[0] & 1 == 1 || bytes == [0; 6] {
        return Err(err());
    }
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Checks a sandbox's identity against the config: valid interface and MAC, address inside an
/// agent subnet and not the gateway, allowlist domains plausible.
pub fn validate_sandbox(cfg: &NetConfig, sbx: &SandboxNet) -> Result<(), NetError> {
    validate_iface(&sbx.iface).map_err(NetError::Invalid)?;
    validate_mac(&sbx.mac).map_err(NetError::Invalid)?;
    let inside = match sbx.ip {
        IpAddr::V4(a) => cfg.subnet_v4.contains(&a) && a != cfg.gateway_v4,
        IpAddr::V6(a) => cfg.subnet_v6.is_some_and(|n| n.contains(&a)) && Some(a) != cfg.gateway_v6,
    };
    if !inside {
        return Err(NetError::Invalid(format!(
            "Sandbox {} address {} is not a host address of the agent subnet",
            sbx.vmid, sbx.ip
        )));
    }
    if sbx.iface == cfg.bridge || sbx.iface == cfg.uplink {
        return Err(NetError::Invalid(format!(
            "Interface {} is not a sandbox port",
            sbx.iface
        )));
    }
    if let Egress::Allowlist { domains, .. } = &sbx.egress {
        for d in domains {
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
            if !ok {
                return Err(NetError::Invalid(format!("Invalid allowlist domain {d:?}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use agentlab_core::Vmid;

    use super::*;

    fn sbx(iface: &str, mac: &str, ip: &str) -> SandboxNet {
        SandboxNet {
            vmid: Vmid::new(101).unwrap(),
            iface: iface.to_owned(),
            mac: mac.to_owned(),
            ip: ip.parse().unwrap(),
            egress: Egress::Nat,
        }
    }

    #[test]
    fn macs_are_canonicalised_and_bad_ones_refused() {
        assert_eq!(
            validate_mac("02:AB:cd:00:01:0F").unwrap(),
            "02:ab:cd:00:01:0f"
        );
        for bad in [
            "",
            "02:ab:cd:00:01",
            "02:ab:cd:00:01:0g",
            "01:00:5e:00:00:01",
            "0:0:0:0:0:0",
        ] {
            assert!(validate_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interfaces_with_script_characters_are_refused() {
        validate_iface("tap101i0").unwrap();
        for bad in ["", "a\"b", "tap 1", "averyveryverylongname", "x;y"] {
            assert!(validate_iface(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sandbox_address_must_be_a_host_of_the_agent_subnet() {
        let cfg = NetConfig::default();
        validate_sandbox(&cfg, &sbx("tap101i0", "02:00:00:00:01:01", "10.77.0.11")).unwrap();
        validate_sandbox(&cfg, &sbx("tap101i0", "02:00:00:00:01:01", "fd77::11")).unwrap();
        for ip in ["10.78.0.11", "10.77.0.1", "fd77::1", "2001:db8::1"] {
            assert!(validate_sandbox(&cfg, &sbx("tap101i0", "02:00:00:00:01:01", ip)).is_err());
        }
        assert!(validate_sandbox(&cfg, &sbx("vmbr1", "02:00:00:00:01:01", "10.77.0.11")).is_err());
    }
}

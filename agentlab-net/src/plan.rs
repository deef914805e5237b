//! Dry-run support: what the kernel would list after applying, and a line diff against now.
//!
//! The planned listing comes from applying the rendered ruleset inside a throwaway network
//! namespace and listing it back, so it is in exactly the kernel's canonical form.

use crate::config::NetConfig;
use crate::netns::{Netns, exec_in};
use crate::render::render_base;

/// Lists both AgentLab tables as the kernel would after applying the base ruleset for `cfg`
/// (root needed; blocking; uses a temporary namespace `alplan<pid>`).
pub fn planned_listing(cfg: &NetConfig) -> Result<String, crate::NetError> {
    cfg.validate()?;
    let ns = Netns::create(&format!("alplan{}", std::process::id()))?;
    let nft = cfg.nft_path.to_string_lossy().into_owned();
    let script = std::env::temp_dir().join(format!("agentlab-plan-{}.nft", std::process::id()));
    std::fs::write(&script, render_base(cfg)).map_err(|source| crate::NetError::Io {
        context: format!("writing {}", script.display()),
        source,
    })?;
    let applied = exec_in(ns.name(), &nft, &["-f", &script.to_string_lossy()]);
    let _cleanup = std::fs::remove_file(&script);
    applied?;
    let mut out = exec_in(ns.name(), &nft, &["list", "table", "inet", &cfg.table])?;
    out.push_str(&exec_in(
        ns.name(),
        &nft,
        &["list", "table", "bridge", &cfg.table],
    )?);
    Ok(out)
}

/// A minimal line diff (`-` removed, `+` added, ` ` kept); empty when equal.
pub fn line_diff(old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // Longest common subsequence table, then walk it.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changes_and_is_empty_for_equal_input() {
        assert_eq!(line_diff("a\nb\n", "a\nb\n"), "");
        assert_eq!(line_diff("a\nb\nc\n", "a\nx\nc\n"), " a\n-b\n+x\n c\n");
        assert_eq!(line_diff("", "a\n"), "+a\n");
        assert_eq!(line_diff("a\n", ""), "-a\n");
    }
}

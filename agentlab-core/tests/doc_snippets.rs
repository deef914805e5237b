//! Every ```yaml block in README.md and docs/*.md is classified and, when it is a daemon
//! config or a profile, loaded with the real, strict loaders. Blocks that are neither are
//! listed in `NOT_CONFIG`; partial snippets are listed in `PARTIAL` with the edits that make
//! them complete. A new yaml block that is none of these fails the test.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use agentlab_core::config::Config;
    use agentlab_core::profile::Profiles;

    /// (file, first line, what it is instead).
    const NOT_CONFIG: &[(&str, &str, &str)] = &[
        (
            "docs/network.md",
            "bridge: vmbr1",
            "agentlab-net's standalone --net-config file",
        ),
        ("docs/secrets.md", "env:", "a secrets bundle"),
    ];

    /// (file, first line, why partial, replacements (from → to) that complete it).
    type Partial = (
        &'static str,
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    const PARTIAL: &[Partial] = &[
        (
            "docs/remote-api.md",
            "# /etc/agentlab/config.yaml",
            "only the remote section of a config",
            &[("remote:\n", "backend: fake\nremote:\n")],
        ),
        (
            "docs/configuration.md",
            "# config defaults",
            "the defaults listing: `pve: null` stands for the required section",
            &[("backend: pve", "backend: fake")],
        ),
        (
            "docs/local-backend.md",
            "backend: local",
            "`profiles: …` stands for the profile settings",
            &[(
                "profiles: …                        # template_vmid/node/storage are ignored by the local backend\n",
                "",
            )],
        ),
    ];

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn yaml_blocks(markdown: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = markdown;
        while let Some(start) = rest.find("```yaml\n") {
            let body = &rest[start + "```yaml\n".len()..];
            let end = body.find("\n```").map_or(body.len(), |e| e + 1);
            out.push(body[..end].to_owned());
            rest = &body[end..];
        }
        out
    }

    fn doc_files() -> Vec<PathBuf> {
        let mut files = vec![repo_root().join("README.md")];
        let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
        files
    }

    const DAEMON_KEYS: &[&str] = &["backend", "pve", "socket", "data_dir", "guest", "local"];

    #[test]
    fn every_config_snippet_in_the_docs_loads() {
        let mut loaded = Vec::new();
        for file in doc_files() {
            let rel = file
                .strip_prefix(repo_root())
                .unwrap()
                .display()
                .to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            for block in yaml_blocks(&text) {
                let first = block.lines().next().unwrap_or_default();
                let origin = format!("{rel} (block starting {first:?})");
                if NOT_CONFIG.iter().any(|(f, l, _)| *f == rel && *l == first) {
                    continue;
                }
                let mut block = block.clone();
                if let Some((_, _, _, edits)) =
                    PARTIAL.iter().find(|(f, l, _, _)| *f == rel && *l == first)
                {
                    for (from, to) in *edits {
                        assert!(
                            block.contains(from),
                            "{origin}: partial edit {from:?} no longer applies"
                        );
                        block = block.replace(from, to);
                    }
                }
                let value: serde_yaml::Value = serde_yaml::from_str(&block)
                    .unwrap_or_else(|e| panic!("{origin}: not YAML: {e}"));
                let keys: Vec<&str> = value
                    .as_mapping()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, _)| k.as_str())
                    .collect();
                if keys.contains(&"template_vmid") {
                    Profiles::from_yaml_str(&block, &origin)
                        .unwrap_or_else(|e| panic!("{origin}: profile rejected: {e}"));
                } else if keys.iter().any(|k| DAEMON_KEYS.contains(k)) {
                    Config::from_yaml_str(&block, &origin)
                        .unwrap_or_else(|e| panic!("{origin}: daemon config rejected: {e}"));
                } else {
                    panic!(
                        "{origin}: neither a daemon config nor a profile; list it in NOT_CONFIG or PARTIAL"
                    );
                }
                loaded.push(origin);
            }
        }
        for must in [
            "docs/proxmox.md",
            "docs/configuration.md",
            "docs/local-backend.md",
        ] {
            assert!(
                loaded.iter().any(|o| o.starts_with(must)),
                "no config snippet loaded from {must}: {loaded:?}"
            );
        }
    }
}

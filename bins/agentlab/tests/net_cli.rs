//! `agentlab net apply|delete` refuse to touch the tables while agentlabd runs (it owns them).

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::process::Command;

    #[test]
    fn apply_and_delete_refuse_while_the_daemon_answers() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agentlab.sock");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "backend: fake\nsocket: {}\ndata_dir: {}\nnetwork: {{uplink: lo}}\n",
                socket.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        // Something answers on the daemon's socket.
        let _daemon = UnixListener::bind(&socket).unwrap();
        for args in [&["net", "delete"][..], &["net", "apply"][..]] {
            let out = Command::new(env!("CARGO_BIN_EXE_agentlab"))
                .args(args)
                .arg("--config")
                .arg(&config)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} must be refused");
            assert!(
                stderr.contains("agentlabd is running") && stderr.contains("--force"),
                "{args:?}: {stderr}"
            );
        }
    }
}

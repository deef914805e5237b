//! The real `agent-runner` in a local sandbox: it reads the bound bootstrap file, checks its
//! tmpfs secrets dir and reaches a controller listening on the bridge gateway (a small HTTP
//! server in the lab's router namespace answering 409 `no_job`), then exits; the sandbox stays
//! up (its init idles) until it is stopped. Needs root, bwrap, ip, python3 and a built `agent-runner`.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use agentlab_core::{BootstrapData, Hypervisor, PowerState, SecretValue};
    use agentlab_local::LocalOptions;

    use super::support::{Lab, SLEEPER, privileged};

    const SERVER: &str = r#"
import http.server, json, sys
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "ab") as f:
            f.write(self.path.encode() + b" " + body + b"\n")
        resp = json.dumps({"error": {"code": "no_job", "message": "no job", "details": None}}).encode()
        self.send_response(409)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(resp)))
        self.end_headers()
        self.wfile.write(resp)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("10.77.0.1", 8844), H)
open(out + ".ready", "w").close()
server.serve_forever()
"#;

    struct Server(Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn runner_binary() -> Option<PathBuf> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let path = target.join("debug/agent-runner");
        path.is_file().then_some(path)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_real_runner_reaches_the_controller_on_the_gateway() {
        if !privileged() {
            return;
        }
        let Some(runner) = runner_binary() else {
            eprintln!("SKIP: agent-runner not built (cargo build -p agent-runner)");
            return;
        };
        if !std::path::Path::new("/usr/bin/python3").exists() {
            eprintln!("SKIP: /usr/bin/python3 missing (the test controller)");
            return;
        }
        let mut lab = Lab::new("e", SLEEPER);
        lab.opts.runner_path = runner;
        lab.opts.runner_args = agentlab_local::LocalOptions::new("", "")
            .runner_args
            .into_iter()
            .chain(["--fetch-attempts", "6", "--backoff-initial-ms", "200"].map(str::to_owned))
            .collect();
        let requests = lab.dir.path().join("requests");
        let script = lab.dir.path().join("server.py");
        std::fs::write(&script, SERVER).unwrap();
        let _server = Server(
            Command::new("ip")
                .args(["netns", "exec", lab.router.name(), "/usr/bin/python3"])
                .arg(&script)
                .arg(&requests)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let ready = requests.with_extension("ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "test controller never started");
            std::thread::sleep(Duration::from_millis(20));
        }

        let hv = lab.hv();
        let spec = lab.spec(900_800, 48);
        hv.create(&spec).await.unwrap();
        let boot = BootstrapData {
            channel_key: None,
            ssh_public_keys: Vec::new(),
            controller_url: "http://10.77.0.1:8844".to_owned(),
            token: SecretValue::new("local-runner-test-token"),
            vmid: spec.vmid,
        };
        hv.start(spec.vmid, Some(&boot)).await.unwrap();
        // The runner exits 0 on `no_job`; the sandbox stays up like a VM whose runner is done.
        let log = lab.vm_dir(900_800).join("runner.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("has no job")) {
            assert!(
                Instant::now() < deadline,
                "the runner never finished: {:?}",
                std::fs::read_to_string(&log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Running);
        assert_eq!(
            hv.guest_address(spec.vmid).await.unwrap(),
            Some(spec.net.ip)
        );
        let seen = std::fs::read_to_string(&requests).unwrap_or_default();
        let log = std::fs::read_to_string(&log);
        assert!(
            seen.starts_with("/v1/bootstrap/fetch ")
                && seen.contains("local-runner-test-token")
                && seen.contains("900800"),
            "controller saw {seen:?}; sandbox log: {log:?}"
        );
        assert_eq!(LocalOptions::host_veth(spec.vmid), "al900800h");
        hv.stop(spec.vmid, Duration::from_secs(30)).await.unwrap();
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Stopped);
        hv.destroy(spec.vmid).await.unwrap();
        assert!(lab.sandbox_netns().is_empty());
    }
}

//! End to end secret-leak scan: a full job through the real daemon, CLI and `agent-runner` on
//! the fake backend, whose agent prints the bundle secret (and the runner token) in raw,
//! base64, URL, form, hex and JSON forms, writes it into plain and gzip/tar.gz artifact files,
//! and — acting as a compromised runner with the runner token — posts it in log lines and
//! uploads a tar.gz holding it. Afterwards every file the daemon wrote (SQLite DB with its
//! -wal/-shm files, the daemon log, the artifacts and every member of every gzip/tar inside
//! them, recursively) and everything the API returns (job, events, logs) is searched for
//! every form of both values.
//!
//! The runner token is captured by a small proxy in front of the guest listener (the boot
//! command), so the test knows it without the daemon ever storing it.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use harness::{Daemon, bin};

/// Changes under every encoding: space, `~`, `/`, `+`, `!`, a quote and non-ASCII.
const SECRET: &str = "LeakScan secret~value/+!\"q-é-2718";

/// Boot command: a proxy in front of the guest listener that records the runner token from
/// the bootstrap response, then runs the real `agent-runner` against the proxy.
const CAPTURE_PY: &str = r#"
import http.server, json, os, subprocess, sys, threading, urllib.error, urllib.request
boot, runner, capture = sys.argv[1:4]
vmdir = os.path.dirname(boot)
data = json.load(open(boot))
upstream = data["controller_url"].rstrip("/")

class Proxy(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = urllib.request.Request(upstream + self.path, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                status, out = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, out = e.code, e.read()
        if self.path.endswith("/bootstrap/fetch") and status == 200:
            p = json.loads(out)
            with open(capture + ".tmp", "w") as f:
                json.dump({"token": p["runner_token"], "logs_url": p["logs_url"],
                           "artifacts_url": p["artifacts_url"]}, f)
            os.rename(capture + ".tmp", capture)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
threading.Thread(target=srv.serve_forever, daemon=True).start()
data["controller_url"] = "http://127.0.0.1:%d" % srv.server_address[1]
proxied = os.path.join(vmdir, "bootstrap-proxied.json")
with open(os.open(proxied, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump(data, f)
os.remove(boot)
sys.exit(subprocess.call([runner, "--bootstrap", proxied, "--secrets-dir", vmdir + "/secrets",
                          "--allow-non-tmpfs", "--work-dir", vmdir + "/work"]))
"#;

/// The agent: prints and files the secret in every form, then misuses the runner token.
const AGENT_PY: &str = r#"
import base64, gzip, io, json, os, shutil, sys, tarfile, urllib.parse, urllib.request
capture, control = sys.argv[1:3]
s = os.environ["E2E_SECRET"]
arts = os.environ["AGENTLAB_ARTIFACTS_DIR"]
c = json.load(open(capture))
tok = c["token"]

def forms(v):
    b = v.encode()
    return [v, base64.b64encode(b).decode(), base64.urlsafe_b64encode(b).decode().rstrip("="),
            base64.b64encode(b"user:" + b).decode(), urllib.parse.quote(v, safe=""),
            urllib.parse.quote(v), urllib.parse.quote_plus(v), urllib.parse.urlencode({"k": v}),
            b.hex(), b.hex().upper(), json.dumps(v), json.dumps(v, ensure_ascii=False),
            repr(b)]

print("agent-output-marker")
for f in forms(s) + forms(tok):
    print("leak", f)
sys.stdout.flush()
print("stderr leak", urllib.parse.quote_plus(s), file=sys.stderr)

with open(os.path.join(arts, "leak.txt"), "w") as f:
    f.write("\n".join(forms(s) + forms(tok)) + "\n")
with gzip.open(os.path.join(arts, "leak.txt.gz"), "wt") as f:
    f.write(s + "\n" + tok + "\n")

def tgz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()

with open(os.path.join(arts, "nested.tar.gz"), "wb") as f:
    f.write(tgz([("inner/secret.txt", s.encode()), ("inner/more.gz", gzip.compress(tok.encode()))]))
with open(os.path.join(arts, "notes.txt"), "w") as f:
    f.write("nothing secret here\n")
# The test's positive control: the unredacted files, outside the daemon's tree.
shutil.copytree(arts, control)

auth = {"Authorization": "Bearer " + tok}
def call(method, url, body, ctype):
    req = urllib.request.Request(url, data=body, method=method, headers=dict(auth, **{"Content-Type": ctype}))
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code

# A compromised runner: log lines and an artifact straight to the daemon.
lines = [{"stream": "stdout", "line": "direct " + f} for f in forms(s) + forms(tok)]
print("direct logs", call("POST", c["logs_url"], json.dumps({"lines": lines}).encode(), "application/json"))
evil = tgz([("evil.txt", ("raw %s\nform %s\n" % (s, urllib.parse.quote_plus(s))).encode()),
            ("evil.bin.gz", gzip.compress(s.encode())), ("token.txt", tok.encode())])
print("direct upload", call("PUT", c["artifacts_url"] + "/evil.tar.gz", evil, "application/gzip"))
print("plain gzip upload", call("PUT", c["artifacts_url"] + "/evil.gz", gzip.compress(s.encode()), "application/gzip"))
"#;

/// Every form the scan looks for.
fn forms(v: &str) -> Vec<(String, String)> {
    let b = v.as_bytes();
    let pct = |keep: &[u8], plus: bool, upper: bool| -> String {
        b.iter()
            .map(|&c| {
                if c.is_ascii_alphanumeric() || keep.contains(&c) {
                    char::from(c).to_string()
                } else if plus && c == b' ' {
                    "+".to_owned()
                } else if upper {
                    format!("%{c:02X}")
                } else {
                    format!("%{c:02x}")
                }
            })
            .collect()
    };
    let json = serde_json::to_string(v).unwrap();
    let mut out = vec![
        ("raw", v.to_owned()),
        ("base64", STANDARD.encode(b)),
        ("base64 no pad", STANDARD_NO_PAD.encode(b)),
        ("base64url", URL_SAFE.encode(b)),
        ("base64url no pad", URL_SAFE_NO_PAD.encode(b)),
        ("url (quote, safe='')", pct(b"-._~", false, true)),
        ("url lower-case", pct(b"-._~", false, false)),
        ("url (quote)", pct(b"-._~/", false, true)),
        ("form (quote_plus)", pct(b"-._~", true, true)),
        ("form (WHATWG)", pct(b"-._*", true, true)),
        ("hex", hex::encode(b)),
        ("HEX", hex::encode_upper(b)),
        ("json", json[1..json.len() - 1].to_owned()),
        (
            "json (ASCII only)",
            json[1..json.len() - 1]
                .chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_string()
                    } else {
                        format!("\\u{:04x}", u32::from(c))
                    }
                })
                .collect(),
        ),
    ];
    // The middle of base64("user:" + v): groups made only of the value's bytes.
    let embedded = STANDARD.encode([b"user:".as_slice(), b].concat());
    out.push((
        "base64 inside a blob",
        embedded[8..8 + (b.len() - 1) / 3 * 4].to_owned(),
    ));
    out.into_iter()
        .map(|(k, f)| (k.to_owned(), f))
        .filter(|(_, f)| f.len() >= 8)
        .collect()
}

struct Scan {
    needles: Vec<(String, String)>,
    hits: Vec<String>,
    scanned: usize,
}

impl Scan {
    fn check(&mut self, what: &str, data: &[u8]) {
        self.scanned += 1;
        let text = String::from_utf8_lossy(data);
        for (name, form) in &self.needles {
            if text.contains(form.as_str()) {
                self.hits.push(format!("{name} in {what}"));
            }
        }
        if data.starts_with(&[0x1f, 0x8b]) {
            let mut inner = Vec::new();
            match flate2::read::MultiGzDecoder::new(data).read_to_end(&mut inner) {
                Ok(_) => self.check(&format!("{what} (gunzip)"), &inner),
                Err(e) => self.hits.push(format!("{what}: undecodable gzip ({e})")),
            }
        } else if data.len() >= 512 && &data[257..262] == b"ustar" {
            let mut ar = tar::Archive::new(data);
            for entry in ar.entries().unwrap() {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().display().to_string();
                let mut body = Vec::new();
                entry.read_to_end(&mut body).unwrap();
                self.check(&format!("{what}!{name}"), &body);
            }
        }
    }

    fn check_tree(&mut self, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(p) = stack.pop() {
            let kind = std::fs::symlink_metadata(&p).unwrap().file_type();
            if kind.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if kind.is_file() {
                self.check(&p.display().to_string(), &std::fs::read(&p).unwrap());
            }
        }
    }
}

fn setup(d: &Daemon) {
    let dir = d.dir.path();
    let mut c = Command::new(bin("agentlab"))
        .arg("secrets")
        .arg("--dir")
        .arg(dir.join("secrets"))
        .arg("--identity")
        .arg(dir.join("age.key"))
        .arg("init")
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let mut child = Command::new(bin("agentlab"))
        .arg("secrets")
        .arg("--dir")
        .arg(dir.join("secrets"))
        .arg("--identity")
        .arg(dir.join("age.key"))
        .args(["set-env", "E2E_SECRET"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(SECRET.as_bytes())
        .unwrap();
    c = child.wait_with_output().unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "README.md"],
        &["commit", "-q", "-m", "init"],
    ] {
        if args[0] == "add" {
            std::fs::write(repo.join("README.md"), "demo\n").unwrap();
        }
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    }
}

#[test]
fn no_secret_or_runner_token_survives_a_full_job_in_any_form() {
    if Command::new("python3").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is required in CI"
        );
        eprintln!("SKIP: python3 missing");
        return;
    }
    // Test-owned files live outside the daemon's tree (the capture holds the token).
    let aux = tempfile::tempdir().unwrap();
    let capture = aux.path().join("capture.json");
    std::fs::write(aux.path().join("capture.py"), CAPTURE_PY).unwrap();
    std::fs::write(aux.path().join("agent.py"), AGENT_PY).unwrap();
    let agent = format!(
        "python3 {} {} {}",
        aux.path().join("agent.py").display(),
        capture.display(),
        aux.path().join("control").display()
    );
    let profile = format!(
        "name: e2e\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
         behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
         repo:\n  clone_path: {{dir}}/checkout\nsecrets_bundle: default\n\
         agent:\n  command: {agent:?}\n"
    );
    let boot = serde_json::json!([
        "python3",
        aux.path().join("capture.py"),
        "{bootstrap}",
        bin("agent-runner"),
        capture,
    ]);
    let d = Daemon::start_with(Some(&profile), &format!("  boot_command: {boot}\n"));
    setup(&d);
    let repo = format!("file://{}", d.dir.path().join("repo").display());
    let run = d.cli(&[
        "job",
        "run",
        "--repo",
        &repo,
        "--task",
        "leak",
        "--profile",
        "e2e",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(
        run.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\nlog:\n{}",
        d.log()
    );
    assert!(stdout.contains("agent-output-marker"), "{stdout}");
    let token: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&capture).unwrap()).unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 16, "runner token captured");

    let jobs = d.json(&["job", "list"]);
    let job = jobs[0].clone();
    assert_eq!(job["state"], "COMPLETED", "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    d.wait_sandbox(job["sandbox"].as_u64().unwrap(), |v| {
        v["state"] == "DESTROYED"
    });

    let mut scan = Scan {
        needles: Vec::new(),
        hits: Vec::new(),
        scanned: 0,
    };
    for (name, form) in forms(SECRET) {
        scan.needles.push((format!("secret {name}"), form));
    }
    for (name, form) in forms(&token) {
        scan.needles.push((format!("runner token {name}"), form));
    }

    // What the API returns.
    let arts = d.json(&["job", "artifacts", &id]);
    let names: Vec<&str> = arts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let events = d.json(&["logs", &id]);
    let events_text = events.to_string();
    scan.check("events (API)", events_text.as_bytes());
    scan.check(
        "job (API)",
        d.json(&["job", "show", &id]).to_string().as_bytes(),
    );
    scan.check("job list (API)", jobs.to_string().as_bytes());
    let logs = d.cli(&["logs", &id]);
    scan.check("logs (CLI)", &logs.stdout);
    scan.check("job run output", stdout.as_bytes());
    scan.check("job run stderr", stderr.as_bytes());
    let out_dir = aux.path().join("downloaded");
    std::fs::create_dir_all(&out_dir).unwrap();
    let dl = d.cli(&[
        "job",
        "artifacts",
        "download",
        &id,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        dl.status.success(),
        "{}",
        String::from_utf8_lossy(&dl.stderr)
    );
    scan.check_tree(&out_dir);

    // Everything the daemon wrote on disk.
    let data = d.dir.path().join("data");
    let db_files = std::fs::read_dir(&data)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".db")
        })
        .count();
    assert!(db_files >= 1, "no SQLite files under {}", data.display());
    scan.check_tree(&data);
    scan.check("daemon log", d.log().as_bytes());
    scan.check("config", &std::fs::read(&d.config).unwrap());
    // Positive control: the same scan over the fake guest's own disk (the raw files the agent
    // wrote) must see the forms, or the scan proves nothing.
    let mut control = Scan {
        needles: scan.needles.clone(),
        hits: Vec::new(),
        scanned: 0,
    };
    control.check_tree(&aux.path().join("control"));
    for expected in [
        "secret form (quote_plus)",
        "secret hex",
        "secret base64 inside a blob",
        "runner token raw",
        "(gunzip)!inner/secret.txt",
        "(gunzip)",
    ] {
        assert!(
            control.hits.iter().any(|h| h.contains(expected)),
            "positive control misses {expected:?}: {:?}",
            control.hits
        );
    }
    assert!(
        scan.scanned >= 20,
        "leak scan saw only {} items",
        scan.scanned
    );
    assert!(
        scan.hits.is_empty(),
        "leaks ({}):\n{}",
        scan.hits.len(),
        scan.hits.join("\n")
    );

    // The compromised runner's uploads: the tar.gz was rewritten, the plain gzip refused.
    assert!(stdout.contains("direct logs 200"), "{stdout}");
    assert!(stdout.contains("direct upload 200"), "{stdout}");
    assert!(stdout.contains("plain gzip upload 422"), "{stdout}");
    assert!(names.contains(&"evil.tar.gz"), "{arts}");
    assert!(
        !names.contains(&"evil.gz"),
        "refused upload recorded: {arts}"
    );
    assert!(events_text.contains("artifact_redacted"), "{events_text}");
    assert!(events_text.contains("artifact_rejected"), "{events_text}");
}

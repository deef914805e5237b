//! The simulator rejects what real PVE rejects, with PVE's error shapes.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use agentlab_pve::sim::{SeedVm, SimConfig, Simulator};
use serde_json::Value;

struct Client {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
        auth: bool,
    ) -> (u16, Value) {
        let url = format!("{}/api2/json{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if auth {
            req = req.header("Authorization", &self.auth);
        }
        if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            req = req.query(form);
        } else {
            req = req.form(form);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

async fn start() -> Option<(Simulator, Client)> {
    let path = common::schema_or_skip()?;
    let sim = Simulator::start(SimConfig::new(path), "127.0.0.1:0")
        .await
        .unwrap();
    sim.add_vm(&SeedVm::template(9000, "pve1"));
    let c = sim.config();
    let client = Client {
        http: reqwest::Client::new(),
        base: sim.url(),
        auth: format!("PVEAPIToken={}={}", c.token_id, c.token_secret),
    };
    Some((sim, client))
}

fn error(body: &Value, param: &str) -> String {
    body["errors"][param]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn parameter_errors_have_pve_shape() {
    let Some((sim, c)) = start().await else {
        return;
    };
    use reqwest::Method;
    let clone = "/nodes/pve1/qemu/9000/clone";

    let (st, body) = c
        .send(
            Method::POST,
            clone,
            &[("newid", "9001"), ("full", "true")],
            true,
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["message"], "Parameter verification failed.\n");
    assert_eq!(body["data"], Value::Null);
    assert_eq!(
        error(&body, "full"),
        "type check ('boolean') failed - got 'true'"
    );

    let (st, body) = c.send(Method::POST, clone, &[("full", "1")], true).await;
    assert_eq!(st, 400);
    assert_eq!(
        error(&body, "newid"),
        "property is missing and it is not optional"
    );

    let (_, body) = c
        .send(
            Method::POST,
            clone,
            &[("newid", "9001"), ("bogus", "1")],
            true,
        )
        .await;
    assert_eq!(
        error(&body, "bogus"),
        "property is not defined in schema and the schema does not allow additional properties"
    );

    let (_, body) = c.send(Method::POST, clone, &[("newid", "42")], true).await;
    assert_eq!(
        error(&body, "newid"),
        "value must have a minimum value of 100"
    );

    let (_, body) = c.send(Method::POST, clone, &[("newid", "abc")], true).await;
    assert_eq!(
        error(&body, "newid"),
        "type check ('integer') failed - got 'abc'"
    );

    let (_, body) = c
        .send(
            Method::POST,
            clone,
            &[("newid", "9001"), ("format", "zip")],
            true,
        )
        .await;
    assert_eq!(
        error(&body, "format"),
        "value 'zip' does not have a value in the enumeration 'raw, qcow2, vmdk'"
    );

    let (_, body) = c
        .send(
            Method::POST,
            clone,
            &[("newid", "9001"), ("name", "bad name!")],
            true,
        )
        .await;
    assert!(
        error(&body, "name").starts_with("invalid format - "),
        "{body}"
    );

    let config = "/nodes/pve1/qemu/9000/config";
    let (_, body) = c
        .send(
            Method::PUT,
            config,
            &[(
                "net0",
                "virtio=02:00:00:00:00:01,bridge=vmbr1,firewall=yes-please",
            )],
            true,
        )
        .await;
    assert!(error(&body, "net0").contains("firewall"), "{body}");
    let (_, body) = c
        .send(
            Method::PUT,
            config,
            &[("net0", "rtl9999,bridge=vmbr1")],
            true,
        )
        .await;
    assert!(error(&body, "net0").contains("enumeration"), "{body}");
    let (_, body) = c
        .send(
            Method::PUT,
            config,
            &[("net0", "virtio=02:00:00:00:00:01,bridge=vmbr1,colour=red")],
            true,
        )
        .await;
    assert!(error(&body, "net0").contains("colour"), "{body}");
    let (_, body) = c
        .send(
            Method::PUT,
            config,
            &[("sshkeys", "ssh-ed25519 AAAA user@host")],
            true,
        )
        .await;
    assert!(
        error(&body, "sshkeys").starts_with("invalid format - invalid urlencoded string"),
        "{body}"
    );
    let (_, body) = c
        .send(
            Method::PUT,
            config,
            &[("ipconfig0", "ip=10.0.0.5,gw=10.0.0.1")],
            true,
        )
        .await;
    assert!(
        error(&body, "ipconfig0").starts_with("invalid format"),
        "{body}"
    );
    let (_, body) = c
        .send(
            Method::PUT,
            config,
            &[("scsi1", "local-lvm:vm-9000-disk-1,cache=fastest")],
            true,
        )
        .await;
    assert!(error(&body, "scsi1").contains("cache"), "{body}");
    let (_, body) = c
        .send(Method::PUT, config, &[("tags", "good;b@d")], true)
        .await;
    assert!(error(&body, "tags").contains("invalid tag"), "{body}");
    let (_, body) = c
        .send(
            Method::PUT,
            config,
            &[("description", &"x".repeat(8193))],
            true,
        )
        .await;
    assert_eq!(
        error(&body, "description"),
        "value may only be 8192 characters long"
    );
    let (_, body) = c
        .send(
            Method::PUT,
            "/nodes/pve1/qemu/9000/resize",
            &[("disk", "scsi0"), ("size", "20 GB")],
            true,
        )
        .await;
    assert_eq!(
        error(&body, "size"),
        "value does not match the regex pattern"
    );
    let (st, body) = c
        .send(
            Method::PUT,
            "/nodes/pve1/qemu/9000/resize",
            &[("disk", "scsi99"), ("size", "20G")],
            true,
        )
        .await;
    assert_eq!(st, 400, "{body}");

    let (st, body) = c
        .send(Method::GET, "/nodes/pve1/qemu/9000/nonsense", &[], true)
        .await;
    assert_eq!(st, 501);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Method 'GET /nodes/pve1/qemu/9000/nonsense' not implemented")
    );
    let (st, _) = c.send(Method::DELETE, "/version", &[], true).await;
    assert_eq!(st, 501);

    let invalid = sim
        .requests()
        .iter()
        .filter(|r| r.validation.is_err())
        .count();
    assert_eq!(
        invalid,
        sim.requests().len(),
        "every bad request was recorded as invalid"
    );
}

#[tokio::test]
async fn valid_requests_pass_and_auth_is_enforced() {
    let Some((sim, c)) = start().await else {
        return;
    };
    use reqwest::Method;
    let (st, _) = c.send(Method::GET, "/version", &[], false).await;
    assert_eq!(st, 401);
    let bad = Client {
        auth: format!("PVEAPIToken={}=wrong", sim.config().token_id),
        http: reqwest::Client::new(),
        base: sim.url(),
    };
    let (st, body) = bad.send(Method::GET, "/version", &[], true).await;
    assert_eq!(
        (st, body["message"].as_str()),
        (401, Some("Authentication failed!\n"))
    );

    let (st, body) = c.send(Method::GET, "/version", &[], true).await;
    assert_eq!(st, 200);
    assert_eq!(body["data"]["version"], "9.1.1");
    let (_, body) = c.send(Method::GET, "/cluster/nextid", &[], true).await;
    assert!(
        body["data"].is_string(),
        "nextid is a string like PVE's: {body}"
    );
    let (st, body) = c
        .send(Method::GET, "/cluster/nextid", &[("vmid", "9000")], true)
        .await;
    assert_eq!(
        (st, error(&body, "vmid")),
        (400, "VM 9000 already exists".to_owned())
    );
    let (st, body) = c
        .send(
            Method::GET,
            "/nodes/pve1/qemu/4242/status/current",
            &[],
            true,
        )
        .await;
    assert_eq!(st, 500);
    assert_eq!(
        body["message"],
        "Configuration file 'nodes/pve1/qemu-server/4242.conf' does not exist\n"
    );
    let (st, body) = c
        .send(
            Method::POST,
            "/nodes/pve1/qemu/9000/status/start",
            &[],
            true,
        )
        .await;
    assert_eq!(
        st, 200,
        "start of a template is accepted; its task fails: {body}"
    );
    let (st, body) = c
        .send(Method::POST, "/nodes/pve1/qemu/9000/agent/ping", &[], true)
        .await;
    assert_eq!(
        (st, body["message"].as_str()),
        (500, Some("VM 9000 is not running\n"))
    );
    let (st, body) = c
        .send(
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            &[
                ("net0", "virtio=BC:24:11:00:00:01,bridge=vmbr1,firewall=1"),
                ("sshkeys", "ssh-ed25519%20AAAA"),
            ],
            true,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let recorded = sim.requests();
    assert!(
        recorded.iter().all(|r| r.validation.is_ok()),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn a_running_clone_holds_the_template_and_new_vm_locks() {
    let Some(path) = common::schema_or_skip() else {
        return;
    };
    let mut cfg = SimConfig::new(path);
    cfg.task_duration = std::time::Duration::from_secs(30);
    let sim = Simulator::start(cfg, "127.0.0.1:0").await.unwrap();
    sim.add_vm(&SeedVm::template(9000, "pve1"));
    let c = sim.config();
    let c = Client {
        http: reqwest::Client::new(),
        base: sim.url(),
        auth: format!("PVEAPIToken={}={}", c.token_id, c.token_secret),
    };
    use reqwest::Method;
    let (st, body) = c
        .send(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "9001"), ("name", "c1")],
            true,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        body["data"].as_str().unwrap().starts_with("UPID:pve1:"),
        "{body}"
    );
    let (st, body) = c
        .send(
            Method::PUT,
            "/nodes/pve1/qemu/9000/config",
            &[("description", "x")],
            true,
        )
        .await;
    assert_eq!(st, 500);
    assert_eq!(
        body["message"],
        "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout\n"
    );
    let (_, body) = c
        .send(Method::GET, "/nodes/pve1/qemu/9001/config", &[], true)
        .await;
    assert_eq!(body["data"]["lock"], "clone");
    let (st, body) = c
        .send(
            Method::PUT,
            "/nodes/pve1/qemu/9001/config",
            &[("cores", "2")],
            true,
        )
        .await;
    assert_eq!(
        (st, body["message"].as_str()),
        (500, Some("VM is locked (clone)\n"))
    );
    let (st, _) = c
        .send(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "9002")],
            true,
        )
        .await;
    assert_eq!(st, 200, "clones share the template's lock");
    let (st, body) = c
        .send(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "9001")],
            true,
        )
        .await;
    assert_eq!(
        (st, body["message"].as_str()),
        (
            500,
            Some("unable to create VM 9001: config file already exists\n")
        )
    );
    sim.assert_all_valid();
}

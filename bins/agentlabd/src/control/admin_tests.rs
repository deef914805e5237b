//! `POST /v1/profiles/reload` against a temp config and profiles dir, through `oneshot`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use agentlab_core::config::Config;
use agentlab_core::engine::{Lab, LabDeps, LabSettings};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::profile::Profiles;

use crate::control::admin::{AdminState, router};
use crate::reload::Reloader;

const ONE: &str = "name: one\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
                   behavior:\n  ttl_minutes_default: 10\nagent:\n  command: \"true\"\n";
const TWO: &str = "name: two\ntemplate_vmid: 9000\nresources:\n  cores: 4\n  memory_mb: 512\n\
                   behavior:\n  ttl_minutes_default: 10\nagent:\n  command: \"true\"\n";

struct T {
    app: Router,
    lab: Arc<Lab>,
    dir: tempfile::TempDir,
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    let text = format!(
        "socket: {d}/run/sock\ndata_dir: {d}/data\nprofiles_dir: {d}/profiles\nbackend: fake\n{extra}",
        d = dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(profiles.join("a.yaml"), format!("{ONE}---\n{TWO}")).unwrap();
    let path = write_config(dir.path(), "");
    let cfg = Config::load(&path).unwrap();
    let deps = LabDeps {
        hypervisor: Arc::new(FakeHypervisor::new()),
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(ManualClock::at_epoch()),
    };
    let lab = Lab::new(
        deps,
        LabSettings::default(),
        Profiles::load_dir(&profiles).unwrap(),
    );
    let backup = Arc::new(crate::control::admin_backup::BackupPlan {
        config: cfg.clone(),
        config_path: path.clone(),
        version: "test",
    });
    let reloader = Arc::new(Reloader::new(path, cfg, Arc::clone(&lab)));
    T {
        app: router(AdminState { reloader, backup }),
        lab,
        dir,
    }
}

impl T {
    async fn reload(&self) -> (StatusCode, Value) {
        let req = Request::post("/v1/profiles/reload")
            .body(Body::empty())
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn write_profiles(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join("profiles").join(name), text).unwrap();
    }

    fn names(&self) -> Vec<String> {
        self.lab
            .profiles()
            .names()
            .iter()
            .map(|n| (*n).to_owned())
            .collect()
    }
}

#[tokio::test]
async fn a_valid_change_is_applied_and_reported() {
    let t = setup();
    let (s, v) = t.reload().await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["profiles"]["unchanged"], 2, "{v}");
    assert_eq!(v["restart_required"], serde_json::json!([]));

    let two_changed = TWO.replace("cores: 4", "cores: 6");
    t.write_profiles("a.yaml", &two_changed);
    t.write_profiles("b.yml", &ONE.replace("one", "three"));
    let (s, v) = t.reload().await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["profiles"]["added"], serde_json::json!(["three"]));
    assert_eq!(v["profiles"]["removed"], serde_json::json!(["one"]));
    assert_eq!(v["profiles"]["changed"], serde_json::json!(["two"]));
    assert_eq!(t.names(), vec!["three", "two"]);
    assert_eq!(t.lab.profiles().get("two").unwrap().resources.cores, 6);
}

#[tokio::test]
async fn an_invalid_file_is_rejected_and_the_running_set_kept() {
    let t = setup();
    t.write_profiles(
        "b.yaml",
        &ONE.replace("one", "bad").replace("resources", "resorces"),
    );
    let (s, v) = t.reload().await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_profile", "{v}");
    let details = &v["error"]["details"];
    assert!(details["file"].as_str().unwrap().ends_with("b.yaml"), "{v}");
    assert_eq!(details["suggestion"], "resources", "{v}");
    assert_eq!(t.names(), vec!["one", "two"]);

    // A duplicate name across files is refused the same way.
    t.write_profiles("b.yaml", ONE);
    let (s, v) = t.reload().await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate"),
        "{v}"
    );
    assert_eq!(t.names(), vec!["one", "two"]);
}

#[tokio::test]
async fn an_invalid_config_is_rejected_and_restart_only_keys_are_reported() {
    let t = setup();
    write_config(t.dir.path(), "vmid_rnage:\n  start: 100\n");
    let (s, v) = t.reload().await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid_config", "{v}");
    assert_eq!(t.names(), vec!["one", "two"]);

    write_config(
        t.dir.path(),
        "log:\n  level: debug\nguest:\n  listen: 127.0.0.1:9999\n",
    );
    t.write_profiles("a.yaml", ONE);
    let (s, v) = t.reload().await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["restart_required"], serde_json::json!(["guest", "log"]));
    assert_eq!(v["profiles"]["removed"], serde_json::json!(["two"]));
    assert_eq!(t.names(), vec!["one"]);
}

#![cfg(test)]
//! Profiles written for the Go original: same-meaning spellings are translated with a
//! deprecation warning; keys whose meaning differs stay errors naming the field.

use agentlab_core::profile::{AgentMode, AgentPreset, NetworkMode, Profiles};
use agentlab_core::yaml::ErrorKind;

const GO: &str = "\
name: yolo-ephemeral
template_vmid: 9000
network:
  bridge: vmbr1
  model: virtio
  firewall_group: agent_nat_default
resources:
  cores: 4
  memory_mb: 6144
  balloon: false
storage:
  root_size_gb: 40
  workspace: none
behavior:
  mode: dangerous
  keepalive_default: false
  ttl_minutes_default: 180
  idle_stop_minutes_default: 30
repo:
  clone_path: /tmp/repo
artifacts:
  upload: true
  endpoint: http://10.77.0.1:8846/upload
agent:
  preset: claude
";

#[test]
fn a_go_profile_loads_with_one_warning_per_old_spelling() {
    let set = Profiles::from_yaml_str(GO, "go.yaml").unwrap();
    let p = set.get("yolo-ephemeral").unwrap();
    assert_eq!(p.behavior.mode, AgentMode::Yolo);
    assert_eq!(p.behavior.idle_stop_minutes, Some(30));
    assert_eq!(p.resources.balloon, Some(0));
    assert_eq!(p.network.mode, NetworkMode::Nat);
    assert_eq!(p.network.firewall_group, None);
    assert_eq!(p.agent.preset, Some(AgentPreset::Claude));
    assert_eq!(p.storage.root_size_gb, Some(40));
    let fields: Vec<(&str, Option<usize>)> = set
        .warnings()
        .iter()
        .map(|w| (w.field.as_str(), w.line))
        .collect();
    assert_eq!(
        fields,
        [
            ("behavior.mode", Some(15)),
            ("behavior.idle_stop_minutes_default", Some(18)),
            ("resources.balloon", Some(10)),
            ("network.firewall_group", Some(6)),
            ("artifacts.endpoint", Some(23)),
        ]
    );
    let text = set.warnings()[0].to_string();
    assert!(
        text.starts_with("go.yaml, document 1, field behavior.mode (line 15): ")
            && text.ends_with("(deprecated)"),
        "{text}"
    );
}

#[test]
fn current_spellings_give_no_warnings() {
    let current = GO
        .replace("  firewall_group: agent_nat_default\n", "  mode: nat\n")
        .replace("balloon: false", "balloon: 0")
        .replace("mode: dangerous", "mode: yolo")
        .replace("idle_stop_minutes_default", "idle_stop_minutes")
        .replace("  endpoint: http://10.77.0.1:8846/upload\n", "");
    let set = Profiles::from_yaml_str(&current, "new.yaml").unwrap();
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
    assert_eq!(
        set.get("yolo-ephemeral"),
        Profiles::from_yaml_str(GO, "go.yaml")
            .unwrap()
            .get("yolo-ephemeral")
    );
}

#[test]
fn go_values_with_their_own_meaning_translate_exactly() {
    let doc = GO
        .replace("balloon: false", "balloon: true")
        .replace(
            "idle_stop_minutes_default: 30",
            "idle_stop_minutes_default: 0",
        )
        .replace("agent_nat_default", "agent_nat_off");
    let set = Profiles::from_yaml_str(&doc, "go.yaml").unwrap();
    let p = set.get("yolo-ephemeral").unwrap();
    assert_eq!(p.resources.balloon, None, "true = the backend's default");
    assert_eq!(p.behavior.idle_stop_minutes, None, "0 = never");
    assert_eq!(p.network.mode, NetworkMode::Off);
}

fn refused(doc: &str) -> agentlab_core::yaml::ErrorDetails {
    *Profiles::from_yaml_str(doc, "go.yaml").unwrap_err().details
}

#[test]
fn contradictions_and_different_meanings_are_refused_naming_the_field() {
    let e = refused(&GO.replace("  bridge: vmbr1\n", "  bridge: vmbr1\n  mode: allowlist\n"));
    assert_eq!(e.field.as_deref(), Some("network.firewall_group"));
    assert!(e.reason.contains("means `mode: nat`"), "{}", e.reason);

    let e = refused(&GO.replace(
        "  idle_stop_minutes_default: 30\n",
        "  idle_stop_minutes_default: 30\n  idle_stop_minutes: 10\n",
    ));
    assert_eq!(
        e.field.as_deref(),
        Some("behavior.idle_stop_minutes_default")
    );

    let e = refused(&GO.replace(
        "  balloon: false\n",
        "  balloon: false\n  cpulist: \"0-7\"\n",
    ));
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_eq!(e.field.as_deref(), Some("resources.cpulist"));
    assert_eq!(e.line, Some(11));

    // A group the Go original did not ship keeps the existing refusal.
    let e = refused(&GO.replace("agent_nat_default", "my_group"));
    assert_eq!(e.field.as_deref(), Some("network.firewall_group"));
}

#[test]
fn errors_in_a_translated_document_keep_their_field_and_line() {
    let e = refused(&GO.replace("cores: 4", "cores: many"));
    assert_eq!(e.kind, ErrorKind::InvalidType);
    assert_eq!(e.field.as_deref(), Some("resources.cores"));
    assert_eq!(e.line, Some(8));
}

#[test]
fn a_minimal_go_profile_is_told_what_to_add() {
    let e = refused("name: a\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n");
    assert_eq!(e.kind, ErrorKind::MissingField);
    assert_eq!(e.field.as_deref(), Some("agent"));
    assert!(e.reason.contains("preset: claude"), "{}", e.reason);
    let e = refused("name: a\ntemplate_vmid: 9000\n");
    assert!(
        e.reason.contains("Go original"),
        "{}: {}",
        e.field.unwrap_or_default(),
        e.reason
    );
}

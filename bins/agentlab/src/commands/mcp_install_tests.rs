use super::*;

fn entry() -> serde_json::Value {
    serde_json::json!({"command": "/usr/bin/agentlab", "args": ["--socket", "/run/a.sock", "mcp"]})
}

fn ctx_for(socket: &str) -> Ctx {
    crate::ctx::GlobalArgs {
        socket: socket.into(),
        endpoint: None,
        token: None,
        fingerprint: None,
        ca_cert: None,
        json: false,
        timeout: None,
    }
    .ctx()
    .unwrap()
}

fn args(config: &Path, dry_run: bool) -> InstallArgs {
    InstallArgs {
        claude: true,
        dry_run,
        config: Some(config.to_owned()),
    }
}

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn a_fresh_file_gets_the_server_entry() {
    let e = edit(None, &entry()).unwrap();
    assert_eq!(e.before, None);
    let v = parse(&e.text.unwrap());
    assert_eq!(v, serde_json::json!({"mcpServers": {"agentlab": entry()}}));
}

#[test]
fn other_keys_and_servers_keep_their_text_and_order() {
    let old = "{\n  \"zeta\": {\"keep\":  [1, 2]},\n  \"mcpServers\": {\n    \"other\": {\"command\": \"x\"}\n  },\n  \"alpha\": true\n}\n";
    let e = edit(Some(old), &entry()).unwrap();
    let text = e.text.unwrap();
    // Untouched members keep their exact text, in their places.
    let z = text
        .find("\"zeta\": {\"keep\":  [1, 2]}")
        .expect("zeta kept verbatim");
    let m = text.find("\"mcpServers\"").unwrap();
    let a = text.find("\"alpha\": true").unwrap();
    assert!(z < m && m < a, "{text}");
    assert!(text.contains("\"other\": {\"command\": \"x\"}"), "{text}");
    let v = parse(&text);
    assert_eq!(v["mcpServers"]["agentlab"], entry());
    assert_eq!(
        v["mcpServers"]["other"],
        serde_json::json!({"command": "x"})
    );
    assert_eq!(v["zeta"], serde_json::json!({"keep": [1, 2]}));
    // A second edit of the result changes nothing.
    let again = edit(Some(&text), &entry()).unwrap();
    assert_eq!(again.text, None);
    assert_eq!(again.before, Some(entry()));
}

#[test]
fn a_different_entry_is_replaced_and_the_diff_shows_both() {
    let old =
        serde_json::json!({"mcpServers": {"agentlab": {"command": "agentlab", "args": ["mcp"]}}});
    let e = edit(Some(&old.to_string()), &entry()).unwrap();
    assert_eq!(e.before, Some(old["mcpServers"]["agentlab"].clone()));
    assert_eq!(parse(&e.text.unwrap())["mcpServers"]["agentlab"], entry());
    let d = diff(
        Path::new("/h/.claude.json"),
        true,
        e.before.as_ref(),
        &entry(),
    );
    assert!(
        d.starts_with("--- /h/.claude.json\n+++ /h/.claude.json\n@@ mcpServers.agentlab @@\n"),
        "{d}"
    );
    assert!(d.contains("-  \"command\": \"agentlab\"\n"), "{d}");
    assert!(d.contains("+  \"command\": \"/usr/bin/agentlab\"\n"), "{d}");
}

#[test]
fn malformed_files_are_refused() {
    for bad in ["{\"a\": ", "[1, 2]", "{\"mcpServers\": 3}"] {
        assert!(edit(Some(bad), &entry()).is_err(), "{bad}");
    }
}

#[test]
fn install_writes_atomically_keeps_the_mode_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claude.json");
    std::fs::write(&path, "{\"numStartups\": 5}\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let ctx = ctx_for("/run/x.sock");

    // Dry run: nothing written.
    run(&ctx, args(&path, true)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"numStartups\": 5}\n"
    );

    run(&ctx, args(&path, false)).unwrap();
    let v = parse(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(v["numStartups"], 5);
    let server = &v["mcpServers"]["agentlab"];
    assert_eq!(
        server["args"],
        serde_json::json!(["--socket", "/run/x.sock", "mcp"])
    );
    let exe = std::env::current_exe().unwrap();
    assert_eq!(server["command"], exe.display().to_string());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    let first = std::fs::read(&path).unwrap();
    run(&ctx, args(&path, false)).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        first,
        "a second run changes nothing"
    );
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn install_creates_a_missing_file_private_and_leaves_a_malformed_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.json");
    run(&ctx_for("/run/x.sock"), args(&path, false)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert!(parse(&std::fs::read_to_string(&path).unwrap())["mcpServers"]["agentlab"].is_object());

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let err = run(&ctx_for("/run/x.sock"), args(&bad, false)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("refusing to edit") && msg.contains("not a JSON object"),
        "{msg}"
    );
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), "{not json");
}

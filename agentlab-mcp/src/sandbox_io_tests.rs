//! `exec`, `read_file` and `write_file` through a real MCP session against the canned daemon
//! with a fake guest: an in-memory file system behind the copy streams, and a few programs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentlab_client::testing::{Canned, GuestFn, GuestStream, Reply};
use agentlab_core::api::channel::{DataSummary, ExitInfo, StreamRequest};
use agentlab_core::api::frame::Frame;
use futures::{SinkExt as _, StreamExt as _};
use sha2::{Digest as _, Sha256};

use super::{call, json_of, session};

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

fn exit(code: i32) -> Frame {
    Frame::Exit(ExitInfo {
        code,
        signal: None,
        timed_out: false,
    })
}

async fn fake_exec(argv: Vec<String>, req_json: String, files: Files, mut s: GuestStream) {
    s.send(Frame::Ready).await.unwrap();
    match argv[0].as_str() {
        "echo" => {
            let line = format!("{}\n", argv[1..].join(" "));
            s.send(Frame::Stdout(line.into())).await.unwrap();
            s.send(exit(0)).await.unwrap();
        }
        "cat" => {
            let mut input = Vec::new();
            while let Some(Ok(f)) = s.next().await {
                match f {
                    Frame::Stdin(b) => input.extend_from_slice(&b),
                    Frame::StdinEof => break,
                    _ => {}
                }
            }
            s.send(Frame::Stdout(input.into())).await.unwrap();
            s.send(exit(0)).await.unwrap();
        }
        "fail" => {
            s.send(Frame::Stderr("boom\n".into())).await.unwrap();
            s.send(exit(3)).await.unwrap();
        }
        "flood" => {
            for _ in 0..40 {
                s.send(Frame::Stdout(vec![b'x'; 64 * 1024].into()))
                    .await
                    .unwrap();
            }
            s.send(exit(0)).await.unwrap();
        }
        "hang" => {
            // Until the client's side closes the stream.
            while let Some(Ok(_)) = s.next().await {}
            files.lock().unwrap().insert("/closed".into(), Vec::new());
        }
        "request" => {
            s.send(Frame::Stdout(req_json.into())).await.unwrap();
            s.send(exit(0)).await.unwrap();
        }
        _ => {
            s.send(Frame::Error(format!("cannot run {}: not found", argv[0])))
                .await
                .unwrap();
        }
    }
}

async fn fake_copy_in(dir: String, files: Files, mut s: GuestStream) {
    s.send(Frame::Ready).await.unwrap();
    let mut data = Vec::new();
    let summary = loop {
        match s.next().await {
            Some(Ok(Frame::Data(b))) => data.extend_from_slice(&b),
            Some(Ok(Frame::DataEnd(summary))) => break summary.unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(summary.bytes, data.len() as u64);
    assert_eq!(summary.sha256, hex::encode(Sha256::digest(&data)));
    let mut ar = tar::Archive::new(&data[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        assert_eq!(e.header().mode().unwrap(), 0o644);
        let name = e.path().unwrap().display().to_string();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut content).unwrap();
        let full = format!("{}/{name}", dir.trim_end_matches('/'));
        files.lock().unwrap().insert(full, content);
    }
    s.send(exit(0)).await.unwrap();
}

async fn fake_copy_out(path: String, files: Files, mut s: GuestStream) {
    let name = path.rsplit('/').next().unwrap().to_owned();
    let mut b = tar::Builder::new(Vec::new());
    if path == "/home/agent" {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_data(&mut h, "agent", &[][..]).unwrap();
    } else {
        let Some(content) = files.lock().unwrap().get(&path).cloned() else {
            let msg = format!("{path}: No such file or directory");
            s.send(Frame::Error(msg)).await.unwrap();
            return;
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &content[..]).unwrap();
    }
    let tar = b.into_inner().unwrap();
    s.send(Frame::Ready).await.unwrap();
    for c in tar.chunks(64 * 1024) {
        s.send(Frame::Data(c.to_vec().into())).await.unwrap();
    }
    let summary = DataSummary {
        bytes: tar.len() as u64,
        sha256: hex::encode(Sha256::digest(&tar)),
    };
    s.send(Frame::DataEnd(Some(summary))).await.unwrap();
}

async fn guest_daemon() -> (Canned, Files) {
    let files: Files = Arc::default();
    let f = files.clone();
    let guest: GuestFn = Arc::new(move |req, s| {
        let files = f.clone();
        Box::pin(async move {
            let req_json = serde_json::to_string(&req).unwrap();
            match req {
                StreamRequest::Exec(e) => fake_exec(e.argv, req_json, files, s).await,
                StreamRequest::CopyIn(c) => fake_copy_in(c.path, files, s).await,
                StreamRequest::CopyOut(c) => fake_copy_out(c.path, files, s).await,
                StreamRequest::Forward(_) => {}
            }
        })
    });
    let gone = serde_json::json!({"error": {"code": "sandbox_gone", "message": "sandbox 102 is DESTROYED"}});
    let srv = Canned::with_guest(
        vec![("POST /v1/sandboxes/102/stream", Reply::json(409, &gone))],
        Some(guest),
    )
    .await;
    (srv, files)
}

#[tokio::test]
async fn exec_returns_exit_code_output_and_stdin_echo() {
    let (srv, _) = guest_daemon().await;
    let (client, _) = session(&srv).await;
    let (err, text) = call(
        &client,
        "exec",
        serde_json::json!({"vmid": 101, "argv": ["echo", "hi", "there"]}),
    )
    .await;
    assert!(!err, "{text}");
    let v = json_of(&text);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["stdout"], "hi there\n");
    assert_eq!(v["stderr"], "");
    assert_eq!(v["stdout_truncated"], false);
    assert!(v.get("notices").is_none());

    let (err, text) = call(
        &client,
        "exec",
        serde_json::json!({"vmid": 101, "argv": ["cat"], "stdin": "line 1\nline 2\n"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(json_of(&text)["stdout"], "line 1\nline 2\n");

    // A non-zero exit is a normal result.
    let (err, text) = call(
        &client,
        "exec",
        serde_json::json!({"vmid": 101, "argv": ["fail"]}),
    )
    .await;
    assert!(!err, "{text}");
    let v = json_of(&text);
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["stderr"], "boom\n");
    assert!(
        srv.seen()
            .iter()
            .all(|r| r == "POST /v1/sandboxes/101/stream")
    );
}

#[tokio::test]
async fn exec_forwards_its_options_and_defaults_the_time_limit() {
    let (srv, _) = guest_daemon().await;
    let (client, _) = session(&srv).await;
    let args = serde_json::json!({"vmid": 101, "argv": ["request"], "user": "root", "cwd": "/tmp", "env": {"A": "1"}});
    let (err, text) = call(&client, "exec", args).await;
    assert!(!err, "{text}");
    let req = json_of(json_of(&text)["stdout"].as_str().unwrap());
    assert_eq!(
        req,
        serde_json::json!({"kind": "exec", "argv": ["request"], "user": "root", "cwd": "/tmp", "env": {"A": "1"}, "timeout_secs": crate::DEFAULT_EXEC_TIMEOUT_SECS})
    );
    let (_, text) = call(
        &client,
        "exec",
        serde_json::json!({"vmid": 101, "argv": ["request"], "timeout_secs": 7}),
    )
    .await;
    let req = json_of(json_of(&text)["stdout"].as_str().unwrap());
    assert_eq!(req["timeout_secs"], 7);
    assert_eq!(req["user"], "agent");
}

#[tokio::test]
async fn exec_output_is_capped_and_counted() {
    let (srv, _) = guest_daemon().await;
    let (client, _) = session(&srv).await;
    let (err, text) = call(
        &client,
        "exec",
        serde_json::json!({"vmid": 101, "argv": ["flood"]}),
    )
    .await;
    assert!(!err);
    let v = json_of(&text);
    assert_eq!(v["stdout"].as_str().unwrap().len(), crate::OUTPUT_MAX);
    assert_eq!(v["stdout_bytes"], 40 * 64 * 1024);
    assert_eq!(v["stdout_truncated"], true);
    assert_eq!(v["exit_code"], 0);
}

#[tokio::test]
async fn stream_errors_are_tool_errors_with_codes() {
    let (srv, _) = guest_daemon().await;
    let (client, _) = session(&srv).await;
    let (err, text) = call(
        &client,
        "exec",
        serde_json::json!({"vmid": 102, "argv": ["echo"]}),
    )
    .await;
    assert!(err);
    assert_eq!(text, "sandbox_gone: sandbox 102 is DESTROYED");
    let (err, text) = call(
        &client,
        "exec",
        serde_json::json!({"vmid": 101, "argv": ["nope"]}),
    )
    .await;
    assert!(err);
    assert_eq!(text, "sandbox_error: cannot run nope: not found");
    let (err, text) = call(
        &client,
        "read_file",
        serde_json::json!({"vmid": 101, "path": "/missing"}),
    )
    .await;
    assert!(err);
    assert_eq!(text, "sandbox_error: /missing: No such file or directory");
    let (err, text) = call(
        &client,
        "write_file",
        serde_json::json!({"vmid": 101, "path": "rel.txt", "content": ""}),
    )
    .await;
    assert!(err);
    assert!(text.starts_with("invalid_path: "), "{text}");
    let (err, text) = call(
        &client,
        "exec",
        serde_json::json!({"vmid": 101, "argv": ["x"], "user": "admin"}),
    )
    .await;
    assert!(err);
    assert!(text.contains("failed to deserialize parameters"), "{text}");
}

#[tokio::test]
async fn write_file_then_read_file_round_trips() {
    let (srv, files) = guest_daemon().await;
    let (client, _) = session(&srv).await;
    let content = "héllo\nworld\n";
    let (err, text) = call(
        &client,
        "write_file",
        serde_json::json!({"vmid": 101, "path": "/home/agent/notes/a.txt", "content": content}),
    )
    .await;
    assert!(!err, "{text}");
    let v = json_of(&text);
    assert_eq!(v["bytes"], content.len());
    assert_eq!(v["sha256"], hex::encode(Sha256::digest(content.as_bytes())));
    assert_eq!(
        files
            .lock()
            .unwrap()
            .get("/home/agent/notes/a.txt")
            .unwrap(),
        content.as_bytes()
    );
    let (err, text) = call(
        &client,
        "read_file",
        serde_json::json!({"vmid": 101, "path": "/home/agent/notes/a.txt"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(text, content);
}

#[tokio::test]
async fn read_file_reports_binary_large_and_directories() {
    let (srv, files) = guest_daemon().await;
    let (client, _) = session(&srv).await;
    let bin = vec![0u8, 1, 2, 255];
    let big = "y".repeat(crate::OUTPUT_MAX + 10);
    files.lock().unwrap().insert("/bin.dat".into(), bin.clone());
    files
        .lock()
        .unwrap()
        .insert("/big.txt".into(), big.clone().into_bytes());
    let (err, text) = call(
        &client,
        "read_file",
        serde_json::json!({"vmid": 101, "path": "/bin.dat"}),
    )
    .await;
    assert!(!err);
    let sha = hex::encode(Sha256::digest(&bin));
    assert_eq!(
        text,
        format!(
            "/bin.dat is a binary file: 4 bytes, sha256 {sha}. Use exec (such as `xxd`, `file` or `base64`) to look inside."
        )
    );
    let (err, text) = call(
        &client,
        "read_file",
        serde_json::json!({"vmid": 101, "path": "/big.txt"}),
    )
    .await;
    assert!(!err);
    let (body, note) = text.split_at(crate::OUTPUT_MAX);
    assert_eq!(body, &big[..crate::OUTPUT_MAX]);
    let sha = hex::encode(Sha256::digest(big.as_bytes()));
    assert!(
        note.starts_with(&format!(
            "\n[truncated: the first {} of {} bytes of /big.txt (sha256 {sha})",
            crate::OUTPUT_MAX,
            big.len()
        )),
        "{note}"
    );
    let (err, text) = call(
        &client,
        "read_file",
        serde_json::json!({"vmid": 101, "path": "/home/agent"}),
    )
    .await;
    assert!(err);
    assert!(
        text.starts_with("not_a_file: /home/agent is a directory"),
        "{text}"
    );
}

#[tokio::test]
async fn a_cancelled_exec_closes_its_stream() {
    let (srv, files) = guest_daemon().await;
    let (client, _) = session(&srv).await;
    let serde_json::Value::Object(args) = serde_json::json!({"vmid": 101, "argv": ["hang"]}) else {
        unreachable!()
    };
    let params = rmcp::model::CallToolRequestParams::new("exec").with_arguments(args);
    // Dropping the call sends notifications/cancelled.
    let call = tokio::time::timeout(Duration::from_millis(300), client.call_tool(params)).await;
    assert!(call.is_err(), "the hanging exec answered: {call:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !files.lock().unwrap().contains_key("/closed") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! The real `agent-runner` binary as the sandbox's guest agent: a bootstrap file with a
//! channel key, a controller without a job, and execs through the channel the runner's own
//! `channel` process dials.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt as _;
    use std::task::Poll;
    use std::time::Duration;

    use agentlab_core::api::channel::{
        CHANNEL_PATH, CHANNEL_PROTOCOL, ExecRequest, ExecUser, StreamRequest, TtySize,
    };
    use agentlab_core::api::frame::{Frame, FrameCodec};
    use axum::extract::Request;
    use axum::http::{StatusCode, header};
    use axum::response::Response;
    use futures::{SinkExt as _, StreamExt as _};
    use tokio::sync::mpsc;
    use tokio_util::codec::Framed;
    use tokio_util::compat::{FuturesAsyncReadCompatExt as _, TokioAsyncReadCompatExt as _};

    /// Runs one exec on a fresh yamux stream: (output, exit code).
    async fn exec_on(
        conn: &mut yamux::Connection<
            tokio_util::compat::Compat<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
        >,
        req: ExecRequest,
    ) -> (String, i32) {
        let stream = futures::future::poll_fn(|cx| conn.poll_new_outbound(cx))
            .await
            .expect("stream");
        let mut chan = Framed::new(stream.compat(), FrameCodec);
        let work = async {
            chan.send(Frame::Request(StreamRequest::Exec(req)))
                .await
                .expect("request");
            let (mut out, mut code) = (String::new(), None);
            while let Some(f) = chan.next().await {
                match f.expect("frame") {
                    Frame::Ready => {
                        chan.send(Frame::StdinEof).await.expect("eof");
                    }
                    Frame::Stdout(b) | Frame::Stderr(b) => {
                        out.push_str(&String::from_utf8_lossy(&b));
                    }
                    Frame::Exit(e) => code = Some(e.code),
                    Frame::Error(e) => panic!("exec refused: {e}"),
                    other => panic!("{other:?}"),
                }
            }
            (out, code.expect("exit"))
        };
        // The connection is driven while the stream works.
        tokio::pin!(work);
        futures::future::poll_fn(|cx| {
            if let Poll::Ready(r) = work.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            while let Poll::Ready(Some(Ok(_))) = conn.poll_next_inbound(cx) {}
            Poll::Pending
        })
        .await
    }

    fn exec(argv: &[&str], user: ExecUser, tty: bool) -> ExecRequest {
        ExecRequest {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            user,
            cwd: None,
            env: BTreeMap::new(),
            timeout_secs: None,
            tty: tty.then_some(TtySize { cols: 80, rows: 24 }),
        }
    }

    #[tokio::test]
    async fn the_runner_serves_its_channel_without_a_job_until_stopped() {
        let root = nix::unistd::geteuid().is_root();
        let (tx, mut rx) = mpsc::channel::<Vec<(String, i32)>>(1);
        let app = axum::Router::new()
            .route(
                "/v1/bootstrap/fetch",
                axum::routing::post(|| async { (StatusCode::CONFLICT, "{}") }),
            )
            .route(
                CHANNEL_PATH,
                axum::routing::get(move |mut req: Request| {
                    let tx = tx.clone();
                    async move {
                        assert_eq!(
                            req.headers()[header::AUTHORIZATION],
                            "Bearer ck-runner-test"
                        );
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            let io = hyper_util::rt::TokioIo::new(on.await.expect("upgrade"));
                            let mut conn = yamux::Connection::new(
                                io.compat(),
                                yamux::Config::default(),
                                yamux::Mode::Client,
                            );
                            let mut results = Vec::new();
                            results.push(
                                exec_on(&mut conn, exec(&["id", "-u"], ExecUser::Agent, false))
                                    .await,
                            );
                            if root {
                                results.push(
                                    exec_on(&mut conn, exec(&["id", "-u"], ExecUser::Root, false))
                                        .await,
                                );
                                results.push(
                                    exec_on(
                                        &mut conn,
                                        exec(&["sh", "-c", "id -u; exit 4"], ExecUser::Agent, true),
                                    )
                                    .await,
                                );
                            }
                            let _ = tx.send(results).await;
                            // Keep the connection up until the test ends.
                            futures::future::poll_fn(|cx| {
                                while let Poll::Ready(Some(Ok(_))) = conn.poll_next_inbound(cx) {}
                                Poll::<()>::Pending
                            })
                            .await;
                        });
                        Response::builder()
                            .status(StatusCode::SWITCHING_PROTOCOLS)
                            .header(header::CONNECTION, "Upgrade")
                            .header(header::UPGRADE, CHANNEL_PROTOCOL)
                            .body(axum::body::Body::empty())
                            .expect("response")
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().expect("dir");
        let bootstrap = dir.path().join("bootstrap.json");
        let body = serde_json::json!({
            "controller_url": format!("http://{addr}"),
            "token": "boot-token-123456",
            "vmid": 9001,
            "channel_key": "ck-runner-test",
        });
        std::fs::write(&bootstrap, body.to_string()).expect("bootstrap");
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, "agent:x:1000:1000::/tmp:/bin/sh\n").expect("passwd");
        let channel_file = dir.path().join("run/channel.json");
        let mut runner = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-runner"))
            .arg("--bootstrap")
            .arg(&bootstrap)
            .arg("--secrets-dir")
            .arg(dir.path().join("secrets"))
            .arg("--allow-non-tmpfs")
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .arg("--channel-file")
            .arg(&channel_file)
            .arg("--passwd")
            .arg(&passwd)
            .args(["--bootstrap-wait-secs", "5", "--backoff-initial-ms", "20"])
            .kill_on_drop(true)
            .spawn()
            .expect("runner");

        let results = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("execs through the runner's channel")
            .expect("results");
        let agent_uid = if root {
            "1000".to_owned()
        } else {
            nix::unistd::geteuid().to_string()
        };
        assert_eq!(results[0], (format!("{agent_uid}\n"), 0));
        if root {
            assert_eq!(results[1], ("0\n".to_owned(), 0));
            assert!(
                results[2].0.contains("1000"),
                "a terminal as the agent user: {:?}",
                results[2]
            );
            assert_eq!(results[2].1, 4);
        }
        assert!(!bootstrap.exists(), "the bootstrap file is consumed");
        let mode = std::fs::metadata(&channel_file)
            .expect("channel file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No job, but the runner stays for its channel until it is stopped.
        assert!(
            runner.try_wait().expect("try_wait").is_none(),
            "the runner keeps running"
        );
        let pid =
            nix::unistd::Pid::from_raw(i32::try_from(runner.id().expect("pid")).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("sigterm");
        let status = tokio::time::timeout(Duration::from_secs(20), runner.wait())
            .await
            .expect("the runner stops on SIGTERM")
            .expect("wait");
        assert_eq!(status.code(), Some(0));
    }
}

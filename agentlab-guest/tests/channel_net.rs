//! Forwards, terminals, and the dial to a real HTTP server that upgrades to yamux.

#[cfg(test)]
mod common;

#[cfg(test)]
mod tests {

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::common::*;
    use agentlab_core::api::channel::{
        CHANNEL_PATH, CHANNEL_PROTOCOL, ExecUser, ForwardRequest, StreamRequest, TtySize,
        VMID_HEADER,
    };
    use agentlab_core::api::frame::Frame;
    use agentlab_core::{SecretValue, Vmid};
    use agentlab_guest::channel::{ChannelBackoff, ChannelTarget, run_channel};
    use bytes::Bytes;
    use futures::{SinkExt as _, StreamExt as _};
    use tokio::io::AsyncWriteExt as _;
    use tokio_util::sync::CancellationToken;

    async fn echo_server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn forwards_many_connections_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let port = echo_server().await;
        let mut tasks = Vec::new();
        for i in 0..20u8 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut chan = client
                    .request(StreamRequest::Forward(ForwardRequest { port }))
                    .await
                    .expect("forward");
                let sent: Vec<u8> = (0..200_000u32).map(|n| (n as u8) ^ i).collect();
                for c in sent.chunks(30_000) {
                    chan.send(Frame::Data(Bytes::copy_from_slice(c)))
                        .await
                        .expect("data");
                }
                chan.send(Frame::DataEnd(None)).await.expect("end");
                let mut got = Vec::new();
                loop {
                    match chan.next().await {
                        Some(Ok(Frame::Data(b))) => got.extend_from_slice(&b),
                        Some(Ok(Frame::DataEnd(None))) => break,
                        other => panic!("{other:?}"),
                    }
                }
                assert!(
                    chan.next().await.is_none(),
                    "the stream ends after both directions"
                );
                assert_eq!(got, sent);
            }));
        }
        for t in tasks {
            t.await.expect("connection");
        }
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let closed_port = closed.local_addr().expect("addr").port();
        drop(closed);
        let err = client
            .request(StreamRequest::Forward(ForwardRequest { port: closed_port }))
            .await
            .expect_err("refused");
        assert!(err.contains(&format!("port {closed_port}")), "{err}");
    }

    fn tty_user() -> ExecUser {
        // A root guest agent needs the drop-exec helper for other users; run as root then.
        if is_root() {
            ExecUser::Root
        } else {
            ExecUser::Agent
        }
    }

    #[tokio::test]
    async fn terminal_exec_output_exit_code_and_resize() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let mut req = exec_req(&["sh", "-c", "echo hi; tty; exit 3"]);
        req.tty = tty(80, 24);
        req.user = tty_user();
        let mut chan = client.request(StreamRequest::Exec(req)).await.expect("tty");
        let out = collect(&mut chan).await;
        assert!(out.out().contains("hi"), "{}", out.out());
        assert!(
            out.out().contains("/dev/pts/"),
            "a real terminal: {}",
            out.out()
        );
        assert_eq!(out.code(), 3);

        let mut req = exec_req(&["sh", "-c", "stty size; read x; stty size"]);
        req.tty = tty(80, 24);
        req.user = tty_user();
        let mut chan = client.request(StreamRequest::Exec(req)).await.expect("tty");
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("24 80") {
            match chan.next().await {
                Some(Ok(Frame::Stdout(b))) => seen.extend_from_slice(&b),
                other => panic!("{other:?}"),
            }
        }
        chan.send(Frame::Resize(TtySize {
            cols: 100,
            rows: 50,
        }))
        .await
        .expect("resize");
        chan.send(Frame::Stdin(Bytes::from_static(b"\n")))
            .await
            .expect("enter");
        let out = collect(&mut chan).await;
        assert!(out.out().contains("50 100"), "{}", out.out());
        assert_eq!(out.code(), 0);
    }

    #[tokio::test]
    async fn terminal_exec_as_another_user_needs_the_helper() {
        if !is_root() {
            eprintln!("SKIPPED: only a root guest agent switches users");
            return;
        }
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let mut req = exec_req(&["true"]);
        req.tty = tty(80, 24);
        let err = client
            .request(StreamRequest::Exec(req))
            .await
            .expect_err("no helper");
        assert!(err.contains("drop-exec"), "{err}");
    }

    /// A listener that refuses the first dial with 403, then upgrades and runs `echo hi`.
    #[tokio::test]
    async fn dial_retries_a_refusal_then_serves_streams() {
        use axum::extract::Request;
        use axum::http::{StatusCode, header};
        use axum::response::Response;

        let dials = Arc::new(AtomicUsize::new(0));
        let (result_tx, mut result_rx) = tokio::sync::mpsc::channel::<Output>(1);
        let d = Arc::clone(&dials);
        let app = axum::Router::new().route(
            CHANNEL_PATH,
            axum::routing::get(move |mut req: Request| {
                let d = Arc::clone(&d);
                let result_tx = result_tx.clone();
                async move {
                    let h = req.headers();
                    assert_eq!(h[header::AUTHORIZATION], "Bearer ck-test");
                    assert_eq!(h[VMID_HEADER], "9001");
                    assert_eq!(h[header::UPGRADE], CHANNEL_PROTOCOL);
                    if d.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Response::builder()
                            .status(StatusCode::FORBIDDEN)
                            .body(axum::body::Body::empty())
                            .expect("response");
                    }
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(on.await.expect("upgrade"));
                        let client = Client::new(io);
                        let out = run(&client, exec_req(&["echo", "hi"])).await;
                        let _ = result_tx.send(out).await;
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
        let cancel = CancellationToken::new();
        let target = ChannelTarget {
            controller_url: format!("http://{addr}"),
            vmid: Vmid::new(9001).expect("vmid"),
            key: SecretValue::new("ck-test"),
        };
        let backoff = ChannelBackoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        let guest = tokio::spawn(run_channel(
            target,
            Arc::new(config(dir.path())),
            backoff,
            cancel.clone(),
        ));
        let out = tokio::time::timeout(Duration::from_secs(30), result_rx.recv())
            .await
            .expect("an exec through the dialled channel")
            .expect("result");
        assert_eq!(out.out(), "hi\n");
        assert_eq!(out.code(), 0);
        assert_eq!(dials.load(Ordering::SeqCst), 2, "one refusal, one upgrade");
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), guest)
            .await
            .expect("the channel stops when cancelled")
            .expect("no panic");
    }
}

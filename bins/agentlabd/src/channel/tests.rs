//! The daemon side of the channel over real sockets: a stand-in guest agent (yamux over a
//! real upgraded TCP connection to the guest listener) and a client on the control socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio_util::codec::Framed;
use tokio_util::compat::{FuturesAsyncReadCompatExt as _, TokioAsyncReadCompatExt as _};
use tokio_util::sync::CancellationToken;

use agentlab_core::api::channel::{
    CHANNEL_PROTOCOL, ExecRequest, ExecUser, ExitInfo, STREAM_PROTOCOL, StreamRequest, VMID_HEADER,
};
use agentlab_core::api::frame::{Frame, FrameCodec};
use agentlab_core::channel_key::ChannelSecret;
use agentlab_core::engine::{Lab, LabDeps, LabSettings, SandboxRequest};
use agentlab_core::fake::{
    FakeFirewall, FakeHypervisor, ManualClock, MemorySecretStore, MemoryStore,
};
use agentlab_core::profile::Profiles;
use agentlab_core::{EventKind, EventQuery, SandboxState, Vmid};

use crate::artifacts::ArtifactStore;
use crate::channel::ChannelHub;
use crate::control::{self, AppState};
use crate::guest::{self, GuestState, ratelimit::RateLimiter};

pub(super) struct Env {
    pub(super) lab: Arc<Lab>,
    pub(super) channels: Arc<ChannelHub>,
    pub(super) hv: Arc<FakeHypervisor>,
    pub(super) guest: SocketAddr,
    pub(super) sock: PathBuf,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub(super) async fn env() -> Env {
    env_with(Default::default()).await
}

async fn env_with(limits: agentlab_core::config::LimitsConfig) -> Env {
    let hv = Arc::new(FakeHypervisor::new());
    let deps = LabDeps {
        hypervisor: hv.clone(),
        firewall: Arc::new(FakeFirewall::new()),
        secrets: Arc::new(MemorySecretStore::new()),
        store: Arc::new(MemoryStore::new()),
        clock: Arc::new(ManualClock::at_epoch()),
    };
    let profiles = Profiles::load_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles"),
    )
    .expect("profiles");
    let settings = LabSettings {
        guest_poll_interval: Duration::from_millis(1),
        shutdown_grace: Duration::ZERO,
        bind_bootstrap_address: false,
        channel_secret: Some(ChannelSecret::generate()),
        ..LabSettings::default()
    };
    let lab = Lab::new(deps, settings, profiles);
    lab.reconcile().await.expect("reconcile");
    let dir = tempfile::tempdir().expect("dir");
    let cancel = CancellationToken::new();
    let channels = Arc::new(ChannelHub::default());
    let gstate = GuestState {
        lab: lab.clone(),
        artifacts: ArtifactStore::new(dir.path().join("a")),
        limiter: Arc::new(RateLimiter::new(10_000)),
        redactors: Arc::default(),
        artifact_max_bytes: 1 << 20,
        channels: Arc::clone(&channels),
        cancel: cancel.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let guest = listener.local_addr().expect("addr");
    tokio::spawn(guest::conns::serve(
        listener,
        guest::router(gstate, 64 * 1024),
        Arc::default(),
        Duration::from_secs(30),
        cancel.clone(),
    ));
    let sock = dir.path().join("control.sock");
    let ul = tokio::net::UnixListener::bind(&sock).expect("bind unix");
    let app = control::router(AppState {
        lab: lab.clone(),
        artifacts: ArtifactStore::new(dir.path().join("a")),
        version: "test",
        cancel: cancel.clone(),
        limits: Arc::new(control::limits::ApiLimits::new(limits)),
        channels: Arc::clone(&channels),
        tokens: std::sync::Arc::new(agentlab_core::fake::MemoryStore::new()),
        disks: Default::default(),
    });
    let c = cancel.clone();
    tokio::spawn(async move {
        axum::serve(
            ul,
            app.into_make_service_with_connect_info::<crate::socket::PeerCred>(),
        )
        .with_graceful_shutdown(async move { c.cancelled().await })
        .await
    });
    // Release announcements close channels, as the daemon's release watch does.
    let mut released = lab.subscribe_released();
    let (hub, c) = (Arc::clone(&channels), cancel.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = c.cancelled() => return,
                r = released.recv() => match r {
                    Ok(rel) => { hub.release(rel.vmid); }
                    Err(_) => return,
                },
            }
        }
    });
    Env {
        lab,
        channels,
        hv,
        guest,
        sock,
        cancel,
        _dir: dir,
    }
}

impl Env {
    /// A READY sandbox and its channel key (as the backend received it).
    pub(super) async fn sandbox(&self) -> (Vmid, String) {
        let sb = self
            .lab
            .create_sandbox(SandboxRequest {
                profile: "interactive-dev".into(),
                name: None,
                ttl_minutes: None,
                keepalive: None,
                workspace: None,
                job: None,
            })
            .await
            .expect("create");
        for _ in 0..500 {
            if self.lab.sandbox(sb.vmid).await.expect("get").state == SandboxState::Ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let key = self
            .hv
            .vm(sb.vmid)
            .and_then(|v| v.bootstrap)
            .and_then(|b| b.channel_key)
            .expect("the bootstrap data carries a channel key");
        (sb.vmid, key.expose().to_owned())
    }

    /// Waits until `vmid`'s channel is registered and its connection recorded (both happen
    /// just after the `101`).
    pub(super) async fn connected(&self, vmid: Vmid) {
        for _ in 0..500 {
            if self.channels.is_connected(vmid)
                && !self
                    .events(vmid, EventKind::ChannelConnected)
                    .await
                    .is_empty()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("sandbox {vmid}'s channel never registered");
    }

    pub(super) async fn events(&self, vmid: Vmid, kind: EventKind) -> Vec<agentlab_core::Event> {
        self.lab
            .events(&EventQuery {
                sandbox: Some(vmid),
                ..Default::default()
            })
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.kind == kind)
            .collect()
    }
}

/// Sends `req` on a fresh connection; the upgraded I/O after a `101`, else the status and
/// body.
async fn upgrade<T>(
    io: T,
    req: Request<Empty<Bytes>>,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, (u16, String)>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("handshake");
    tokio::spawn(conn.with_upgrades());
    let resp = sender.send_request(req).await.expect("send");
    if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        return Err((status, String::from_utf8_lossy(&body).into_owned()));
    }
    hyper::upgrade::on(resp)
        .await
        .map(TokioIo::new)
        .map_err(|e| (0, e.to_string()))
}

/// A stand-in guest agent: dials the channel and answers each exec with its arguments on
/// stdout, `err` on stderr, stdin echoed, and exit code = number of arguments.
pub(super) async fn agent(
    addr: SocketAddr,
    vmid: Vmid,
    key: &str,
) -> Result<yamux_ctl::Agent, (u16, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = Request::get("/v1/channel")
        .header("host", "guest")
        .header("connection", "upgrade")
        .header("upgrade", CHANNEL_PROTOCOL)
        .header(VMID_HEADER, vmid.to_string())
        .header("authorization", format!("Bearer {key}"))
        .body(Empty::new())
        .expect("request");
    let io = upgrade(tcp, req).await?;
    Ok(yamux_ctl::spawn(io.compat()))
}

mod yamux_ctl {
    //! Runs the stand-in agent's yamux server side.
    use super::*;
    use std::future::poll_fn;

    pub(in crate::channel) struct Agent {
        /// Ends when the daemon closes the connection.
        pub(super) ended: tokio::task::JoinHandle<()>,
        /// Asks the agent to open a stream itself (as a hostile guest would).
        pub(super) open: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<bool>>,
    }

    pub(super) fn spawn<T>(io: T) -> Agent
    where
        T: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<bool>>(4);
        let ended = tokio::spawn(async move {
            let mut conn =
                yamux::Connection::new(io, yamux::Config::default(), yamux::Mode::Server);
            let mut pending: Option<tokio::sync::oneshot::Sender<bool>> = None;
            loop {
                let next = poll_fn(|cx| {
                    if pending.is_none()
                        && let std::task::Poll::Ready(Some(p)) = rx.poll_recv(cx)
                    {
                        pending = Some(p);
                    }
                    if pending.is_some()
                        && let std::task::Poll::Ready(r) = conn.poll_new_outbound(cx)
                    {
                        return std::task::Poll::Ready(Err(r.ok()));
                    }
                    conn.poll_next_inbound(cx).map(Ok)
                })
                .await;
                match next {
                    Ok(Some(Ok(stream))) => {
                        tokio::spawn(serve_stream(stream));
                    }
                    Ok(_) => return,
                    Err(stream) => {
                        let Some(p) = pending.take() else { continue };
                        // A stream the guest opened: the daemon resets it, so reading ends
                        // without data.
                        let refused = match stream {
                            None => true,
                            Some(s) => {
                                let mut f = Framed::new(s.compat(), FrameCodec);
                                let sent = f.send(Frame::Ready).await.is_ok();
                                let got = tokio::time::timeout(Duration::from_secs(1), f.next())
                                    .await
                                    .ok()
                                    .flatten();
                                !sent || !matches!(got, Some(Ok(_)))
                            }
                        };
                        let _ = p.send(refused);
                    }
                }
            }
        });
        Agent { ended, open: tx }
    }

    async fn serve_stream(stream: yamux::Stream) {
        let mut f = Framed::new(stream.compat(), FrameCodec);
        let first = f.next().await;
        if let Some(Ok(Frame::Request(StreamRequest::CopyIn(_)))) = first {
            let _ = f.send(Frame::Ready).await;
            loop {
                match f.next().await {
                    Some(Ok(Frame::Data(_))) => {}
                    Some(Ok(Frame::DataEnd(_))) => {
                        let _ = f
                            .send(Frame::Exit(ExitInfo {
                                code: 0,
                                signal: None,
                                timed_out: false,
                            }))
                            .await;
                        return;
                    }
                    _ => {
                        let _ = f.send(Frame::Error("the data stream was cut".into())).await;
                        return;
                    }
                }
            }
        }
        let Some(Ok(Frame::Request(StreamRequest::Exec(e)))) = first else {
            let _ = f.send(Frame::Error("only exec here".into())).await;
            return;
        };
        let _ = f.send(Frame::Ready).await;
        let _ = f.send(Frame::Stdout(Bytes::from(e.argv.join(" ")))).await;
        let _ = f.send(Frame::Stderr(Bytes::from_static(b"err"))).await;
        while let Some(Ok(frame)) = f.next().await {
            match frame {
                Frame::Stdin(b) => {
                    let _ = f.send(Frame::Stdout(b)).await;
                }
                Frame::StdinEof => break,
                _ => {}
            }
        }
        let code = i32::try_from(e.argv.len()).unwrap_or(0);
        let _ = f
            .send(Frame::Exit(ExitInfo {
                code,
                signal: None,
                timed_out: false,
            }))
            .await;
        let _ = f.close().await;
    }
}

/// Opens a control-socket stream into `vmid`.
pub(super) async fn client(
    sock: &std::path::Path,
    vmid: Vmid,
) -> Result<Framed<TokioIo<hyper::upgrade::Upgraded>, FrameCodec>, (u16, String)> {
    let us = tokio::net::UnixStream::connect(sock)
        .await
        .expect("connect");
    let req = Request::post(format!("/v1/sandboxes/{vmid}/stream"))
        .header("host", "agentlabd")
        .header("connection", "upgrade")
        .header("upgrade", STREAM_PROTOCOL)
        .body(Empty::new())
        .expect("request");
    upgrade(us, req).await.map(|io| Framed::new(io, FrameCodec))
}

pub(super) fn exec(argv: &[&str]) -> Frame {
    Frame::Request(StreamRequest::Exec(ExecRequest {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        user: ExecUser::Agent,
        cwd: None,
        env: Default::default(),
        timeout_secs: None,
        tty: None,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_is_relayed_both_ways_and_recorded_without_its_arguments() {
    let env = env().await;
    let (vmid, key) = env.sandbox().await;
    let _agent = agent(env.guest, vmid, &key)
        .await
        .expect("channel accepted");
    env.connected(vmid).await;
    assert_eq!(env.events(vmid, EventKind::ChannelConnected).await.len(), 1);
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(exec(&["printf", "s3cr3t-argument"]))
        .await
        .expect("send");
    assert_eq!(c.next().await.expect("frame").expect("ok"), Frame::Ready);
    assert_eq!(
        c.next().await.expect("frame").expect("ok"),
        Frame::Stdout(Bytes::from_static(b"printf s3cr3t-argument"))
    );
    assert_eq!(
        c.next().await.expect("frame").expect("ok"),
        Frame::Stderr(Bytes::from_static(b"err"))
    );
    c.send(Frame::Stdin(Bytes::from_static(b"hello")))
        .await
        .expect("stdin");
    assert_eq!(
        c.next().await.expect("frame").expect("ok"),
        Frame::Stdout(Bytes::from_static(b"hello"))
    );
    c.send(Frame::StdinEof).await.expect("eof");
    match c.next().await.expect("frame").expect("ok") {
        Frame::Exit(x) => assert_eq!(x.code, 2),
        other => panic!("expected the exit, got {other:?}"),
    }
    // Two at once.
    let mut a = client(&env.sock, vmid).await.expect("stream a");
    let mut b = client(&env.sock, vmid).await.expect("stream b");
    a.send(exec(&["a"])).await.expect("send");
    b.send(exec(&["b", "c", "d"])).await.expect("send");
    b.send(Frame::StdinEof).await.expect("eof");
    a.send(Frame::StdinEof).await.expect("eof");
    for (f, want) in [(&mut a, 1), (&mut b, 3)] {
        loop {
            match f.next().await.expect("frame").expect("ok") {
                Frame::Exit(x) => {
                    assert_eq!(x.code, want);
                    break;
                }
                _ => continue,
            }
        }
    }
    let closed = loop {
        let ev = env.events(vmid, EventKind::StreamClosed).await;
        if ev.len() == 3 {
            break ev;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let first = &closed[0];
    assert_eq!(first.payload["kind"], "exec");
    assert_eq!(first.payload["exit_code"], 2);
    assert_eq!(first.payload["bytes_in"], 5);
    assert_eq!(first.payload["bytes_out"], 22 + 3 + 5);
    let opened = env.events(vmid, EventKind::StreamOpened).await;
    assert_eq!(opened.len(), 3);
    assert!(
        opened[0].message.contains("printf (1 arguments)"),
        "{}",
        opened[0].message
    );
    let all = serde_json::to_string(
        &env.lab
            .events(&EventQuery {
                sandbox: Some(vmid),
                ..Default::default()
            })
            .await
            .expect("events"),
    )
    .expect("json");
    assert!(
        !all.contains("s3cr3t-argument"),
        "arguments reached the events"
    );
    assert!(!all.contains(&key), "the channel key reached the events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_bind_to_their_sandbox_and_die_with_it() {
    let env = env().await;
    let (a, key_a) = env.sandbox().await;
    let (b, key_b) = env.sandbox().await;
    assert_ne!(key_a, key_b);
    // No agent yet: a clear 409.
    let (status, body) = client(&env.sock, a).await.expect_err("refused");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("agent_not_connected"), "{body}");
    // A's key does not open B's channel; a wrong or missing key neither.
    assert_eq!(
        agent(env.guest, b, &key_a).await.err().map(|e| e.0),
        Some(403)
    );
    assert_eq!(
        agent(env.guest, a, "not-the-key").await.err().map(|e| e.0),
        Some(403)
    );
    let refused = env.events(b, EventKind::ChannelRefused).await;
    assert_eq!(refused[0].payload["reason"], "wrong_key");
    assert!(
        !serde_json::to_string(&refused)
            .expect("json")
            .contains(&key_a)
    );
    // Unknown sandbox.
    let unknown = Vmid::new(9990).expect("vmid");
    assert_eq!(
        agent(env.guest, unknown, &key_a).await.err().map(|e| e.0),
        Some(403)
    );
    assert_eq!(
        client(&env.sock, unknown).await.err().map(|e| e.0),
        Some(404)
    );
    // A's own key works; destroying A closes the channel and the key is dead after.
    let agent_a = agent(env.guest, a, &key_a).await.expect("accepted");
    env.connected(a).await;
    env.lab.destroy_sandbox(a).await.expect("destroy");
    tokio::time::timeout(Duration::from_secs(10), agent_a.ended)
        .await
        .expect("the daemon closed the destroyed sandbox's channel")
        .expect("join");
    assert_eq!(
        agent(env.guest, a, &key_a).await.err().map(|e| e.0),
        Some(403)
    );
    let (status, body) = client(&env.sock, a).await.expect_err("refused");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("sandbox_gone"), "{body}");
    let gone = env.events(a, EventKind::ChannelRefused).await;
    assert_eq!(gone.last().expect("refusal").payload["reason"], "gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_open_streams_toward_the_host() {
    let env = env().await;
    let (vmid, key) = env.sandbox().await;
    let agent = agent(env.guest, vmid, &key).await.expect("accepted");
    env.connected(vmid).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    agent.open.send(tx).await.expect("ask");
    assert!(
        rx.await.expect("answer"),
        "a guest-opened stream was answered"
    );
    // The channel still serves the daemon's streams.
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(exec(&["true"])).await.expect("send");
    c.send(Frame::StdinEof).await.expect("eof");
    let mut code = None;
    while let Some(Ok(f)) = c.next().await {
        if let Frame::Exit(x) = f {
            code = Some(x.code);
        }
    }
    assert_eq!(code, Some(1));
    // A bad first frame is a typed error frame.
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(Frame::Ready).await.expect("send");
    assert!(matches!(c.next().await, Some(Ok(Frame::Error(_)))));
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(exec(&[])).await.expect("send");
    match c.next().await {
        Some(Ok(Frame::Error(m))) => assert!(m.contains("argv"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_over_the_configured_limit_is_stopped_with_the_key_named() {
    let env = env_with(agentlab_core::config::LimitsConfig {
        copy_max_bytes: 100_000,
        ..Default::default()
    })
    .await;
    let (vmid, key) = env.sandbox().await;
    let _agent = agent(env.guest, vmid, &key).await.expect("accepted");
    env.connected(vmid).await;
    let copy = || {
        Frame::Request(StreamRequest::CopyIn(
            agentlab_core::api::channel::CopyInRequest {
                path: "/tmp".into(),
                user: ExecUser::Agent,
            },
        ))
    };
    // Within the limit: accepted.
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(copy()).await.expect("send");
    assert_eq!(c.next().await.expect("frame").expect("ok"), Frame::Ready);
    c.send(Frame::Data(Bytes::from(vec![0u8; 60_000])))
        .await
        .expect("data");
    c.send(Frame::DataEnd(None)).await.expect("end");
    assert!(matches!(c.next().await, Some(Ok(Frame::Exit(x))) if x.code == 0));
    // Over it: an error naming the key.
    let mut c = client(&env.sock, vmid).await.expect("stream");
    c.send(copy()).await.expect("send");
    assert_eq!(c.next().await.expect("frame").expect("ok"), Frame::Ready);
    for _ in 0..3 {
        let _ = c.send(Frame::Data(Bytes::from(vec![0u8; 60_000]))).await;
    }
    let mut got = None;
    while let Some(Ok(f)) = c.next().await {
        if let Frame::Error(m) = f {
            got = Some(m);
            break;
        }
    }
    let m = got.expect("an error frame");
    assert!(m.contains("limits.copy_max_bytes"), "{m}");
    loop {
        let ev = env.events(vmid, EventKind::StreamClosed).await;
        if ev.len() == 2 {
            assert!(
                ev[1].payload["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("copy_max_bytes")),
                "{:?}",
                ev[1].payload
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

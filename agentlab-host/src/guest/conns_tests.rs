//! The guest listener's connection handling over real sockets: raw HTTP/1.1 on loopback.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::conns::{Connections, serve, with_abort_handle};

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn start(idle: Duration) -> (SocketAddr, Arc<Connections>, CancellationToken) {
    let app = Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "slow-done"
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = Arc::new(Connections::default());
    let cancel = CancellationToken::new();
    tokio::spawn(serve(
        listener,
        app,
        Arc::clone(&conns),
        idle,
        cancel.clone(),
    ));
    (addr, conns, cancel)
}

/// Sends one keep-alive GET and reads exactly one response; returns its body.
async fn get_keepalive(s: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before a response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().expect("length"))
                })
                .expect("content-length");
            if body.len() >= len {
                return body[..len].to_owned();
            }
        }
    }
}

/// Waits until the server closes `s` (EOF); returns how long that took.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> Duration {
    let t0 = Instant::now();
    let mut chunk = [0u8; 64];
    match tokio::time::timeout(limit, s.read(&mut chunk)).await {
        Ok(Ok(0)) | Ok(Err(_)) => t0.elapsed(),
        Ok(Ok(n)) => panic!("unexpected {n} bytes"),
        Err(_) => panic!("connection still open after {limit:?}"),
    }
}

async fn wait_count(conns: &Connections, n: usize) {
    let t0 = Instant::now();
    while conns.count() != n {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{} open",
            conns.count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let (addr, _conns, cancel) = start(Duration::from_secs(30)).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get_keepalive(&mut s, "/peer").await, "127.0.0.1");
    cancel.cancel();
}

#[tokio::test]
async fn releasing_a_sandbox_closes_its_keepalive_connections() {
    let (addr, conns, cancel) = start(Duration::from_secs(30)).await;
    let mut a = TcpStream::connect(addr).await.expect("connect");
    let mut b = TcpStream::connect(addr).await.expect("connect");
    get_keepalive(&mut a, "/peer").await;
    get_keepalive(&mut b, "/peer").await;
    wait_count(&conns, 2).await;
    assert_eq!(conns.close_peer(LOOPBACK), 2);
    // Idle keep-alive connections close at once (far below the 30 s idle timeout).
    until_closed(&mut a, Duration::from_secs(3)).await;
    until_closed(&mut b, Duration::from_secs(3)).await;
    wait_count(&conns, 0).await;
    assert_eq!(conns.count_for(LOOPBACK), 0);
    // Another address's connections are not touched.
    assert_eq!(conns.close_peer("10.0.0.9".parse().expect("ip")), 0);
    cancel.cancel();
}

#[tokio::test]
async fn a_request_in_flight_is_answered_before_the_close() {
    let (addr, conns, cancel) = start(Duration::from_secs(30)).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    s.write_all(req.as_bytes()).await.expect("write");
    wait_count(&conns, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    conns.close_peer(LOOPBACK);
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
        .await
        .expect("closed after the answer")
        .expect("read");
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("slow-done"), "{text}");
    cancel.cancel();
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (addr, conns, cancel) = start(Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    get_keepalive(&mut s, "/peer").await;
    let waited = until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        waited >= Duration::from_millis(150),
        "closed too early: {waited:?}"
    );
    // A client that never sends a request is closed too (header timeout).
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    until_closed(&mut silent, Duration::from_secs(5)).await;
    wait_count(&conns, 0).await;
    cancel.cancel();
}

/// A socket armed with [`AbortHandle::reset_on_close`] ends with a reset when its owner
/// drops it (what the channel does when its guest is gone); an unarmed one with a FIN.
#[tokio::test]
async fn an_armed_socket_closes_with_a_reset_and_others_with_a_fin() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    for armed in [true, false] {
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (server, abort) = with_abort_handle(server).expect("dup");
        if armed {
            abort.reset_on_close();
        }
        drop(server);
        drop(abort);
        let mut chunk = [0u8; 16];
        let r = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
            .await
            .expect("closed in time");
        if armed {
            let err = r.expect_err("a reset, not an orderly close");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
        } else {
            assert_eq!(r.expect("an orderly close"), 0, "FIN");
        }
    }
}

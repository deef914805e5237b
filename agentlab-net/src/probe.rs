//! The TCP probe behind the test harness and `agentlab net check`.
//!
//! A probe is a single TCP connect with a short timeout, optionally from a chosen source
//! address. It runs inside a network namespace (the caller spawns it through
//! `ip netns exec`), and reports one line: `connected <server reply>`, `refused`, `timeout` or
//! `error <message>`. The matching [`serve`] answers every connection with
//! `<banner> <peer address>` so a probe also sees how it was NATed.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};

use crate::error::NetError;

/// What one probe observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The connection was established; the server's first line.
    Connected(String),
    /// Actively refused (a RST: the packet reached a host that answered).
    Refused,
    /// No answer within the timeout (dropped).
    Timeout,
    /// Anything else (no route, bind failure, …).
    Error(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected(reply) => write!(f, "connected {reply}"),
            Self::Refused => f.write_str("refused"),
            Self::Timeout => f.write_str("timeout"),
            Self::Error(m) => write!(f, "error {m}"),
        }
    }
}

impl Outcome {
    /// Parses the line printed by the probe (the inverse of `Display`).
    pub fn parse_line(line: &str) -> Self {
        let line = line.trim();
        match line.split_once(' ').unwrap_or((line, "")) {
            ("connected", rest) => Self::Connected(rest.to_owned()),
            ("refused", _) => Self::Refused,
            ("timeout", _) => Self::Timeout,
            ("error", rest) => Self::Error(rest.to_owned()),
            _ => Self::Error(format!("unparsable probe output {line:?}")),
        }
    }
}

/// Parses `ip:port`, `[ip6]:port` or `[fe80::1%eth0]:port` (scope resolved through
/// `/sys/class/net/<iface>/ifindex` of the current namespace).
pub fn parse_target(text: &str) -> Result<SocketAddr, NetError> {
    let bad = || NetError::Invalid(format!("Invalid probe target {text:?}"));
    if let Some((inner, port)) = text.strip_prefix('[').and_then(|t| t.split_once("]:"))
        && let Some((addr, scope)) = inner.split_once('%')
    {
        {
            let ifindex = std::fs::read_to_string(format!("/sys/class/net/{scope}/ifindex"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .or_else(|| scope.parse().ok())
                .ok_or_else(bad)?;
            let addr = addr.parse().map_err(|_| bad())?;
            let port = port.parse().map_err(|_| bad())?;
            return Ok(SocketAddr::V6(SocketAddrV6::new(addr, port, 0, ifindex)));
        }
    }
    text.parse().map_err(|_| bad())
}

/// How long a connected probe waits for a banner line. A completed handshake counts as
/// reached even when the server says nothing first (agentlabd's HTTP guest listener never does).
const BANNER_WAIT: Duration = Duration::from_millis(300);

/// Connects once to `target` (from `bind` when given) and reads the server's first line, if
/// it sends one within a short wait.
pub async fn connect(target: SocketAddr, bind: Option<IpAddr>, timeout: Duration) -> Outcome {
    let attempt = async {
        let socket = if target.is_ipv6() {
            TcpSocket::new_v6()
        } else {
            TcpSocket::new_v4()
        }?;
        if let Some(ip) = bind {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(target).await
    };
    let mut stream = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => return Outcome::Timeout,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Outcome::Refused,
        Ok(Err(e)) => return Outcome::Error(e.to_string()),
        Ok(Ok(stream)) => stream,
    };
    let mut buf = Vec::new();
    let mut reader = BufReader::new(&mut stream);
    let _ =
        tokio::time::timeout(BANNER_WAIT.min(timeout), reader.read_until(b'\n', &mut buf)).await;
    Outcome::Connected(String::from_utf8_lossy(&buf).trim().to_owned())
}

/// Listens on every `addrs` entry and answers each connection with `<banner> <peer ip>\n`
/// until `stop` resolves. Calls `ready` once all sockets are bound.
pub async fn serve(
    addrs: &[SocketAddr],
    banner: &str,
    ready: impl FnOnce(),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), NetError> {
    let mut tasks = tokio::task::JoinSet::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| NetError::Io {
                context: format!("binding {addr}"),
                source,
            })?;
        let banner = banner.to_owned();
        tasks.spawn(async move {
            while let Ok((mut stream, peer)) = listener.accept().await {
                let line = format!("{banner} {}\n", peer.ip().to_canonical());
                tokio::spawn(async move {
                    // Best effort: the probe may already have given up.
                    if stream.write_all(line.as_bytes()).await.is_ok() {
                        let mut sink = [0u8; 1];
                        let _read = stream.read(&mut sink).await;
                    }
                });
            }
        });
    }
    ready();
    stop.await;
    tasks.abort_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_lines_round_trip() {
        for o in [
            Outcome::Connected("wan 203.0.113.1".into()),
            Outcome::Refused,
            Outcome::Timeout,
            Outcome::Error("Network is unreachable".into()),
        ] {
            assert_eq!(Outcome::parse_line(&o.to_string()), o);
        }
        assert!(matches!(Outcome::parse_line("garbage"), Outcome::Error(_)));
    }

    #[test]
    fn targets_parse_with_scopes() {
        assert_eq!(parse_target("10.77.0.1:8844").unwrap().port(), 8844);
        let SocketAddr::V6(v6) = parse_target("[fe80::1%lo]:22").unwrap() else {
            panic!()
        };
        assert_eq!(v6.scope_id(), 1);
        assert!(parse_target("nope").is_err());
    }

    #[tokio::test]
    async fn loopback_connect_refuse_and_serve() {
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        assert_eq!(
            connect(addr, None, Duration::from_secs(5)).await,
            Outcome::Refused
        );

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(
                &[addr],
                "lo",
                move || ready_tx.send(()).unwrap_or_default(),
                async {
                    rx.await.unwrap_or_default();
                },
            )
            .await
        });
        ready_rx.await.unwrap();
        let got = connect(
            addr,
            Some("127.0.0.1".parse().unwrap()),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(got, Outcome::Connected("lo 127.0.0.1".into()));
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_silent_server_counts_as_reached() {
        // Like agentlabd's HTTP guest listener: accepts, says nothing.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let got = connect(addr, None, Duration::from_secs(3)).await;
        assert_eq!(got, Outcome::Connected(String::new()));
        server.abort();
    }
}

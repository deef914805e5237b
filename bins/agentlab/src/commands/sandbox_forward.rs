//! `agentlab sandbox forward <vmid> [[ADDR:]LOCAL:]REMOTE`: a TCP port forward from the host
//! (127.0.0.1 unless an address is given) to a port on the sandbox's loopback, through the
//! sandbox's channel. Every accepted connection is its own stream; it runs until Ctrl-C.
//! With `--stdio` there is no listener: the CLI's stdin and stdout are one connection to the
//! port (for `ssh -o ProxyCommand=…`, which `agentlab sandbox ssh` uses).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use agentlab_core::Vmid;
use agentlab_core::api::channel::{ForwardRequest, StreamRequest};
use agentlab_core::api::frame::{CHUNK, Frame};

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::print_json;
use agentlab_client::Client;

/// Arguments of `agentlab sandbox forward`.
#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// The sandbox.
    pub vmid: Vmid,
    /// `REMOTE`, `LOCAL:REMOTE` or `ADDR:LOCAL:REMOTE` (ports; ADDR defaults to 127.0.0.1).
    pub spec: String,
    /// Connect stdin and stdout to REMOTE instead of listening (a ProxyCommand).
    #[arg(long)]
    pub stdio: bool,
}

/// The local address and the remote port of a forward spec.
pub fn parse_spec(spec: &str) -> anyhow::Result<(SocketAddr, u16)> {
    let port = |s: &str| -> anyhow::Result<u16> {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("{s:?} is not a port (1-65535)"))
    };
    let local_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (addr, remote) = match spec.rsplit_once(':') {
        None => {
            let r = port(spec)?;
            (SocketAddr::new(local_ip, r), r)
        }
        Some((local, remote)) => {
            let r = port(remote)?;
            match local.rsplit_once(':') {
                None => (SocketAddr::new(local_ip, port(local)?), r),
                Some((ip, lp)) => {
                    let ip = ip.trim_start_matches('[').trim_end_matches(']');
                    let ip: IpAddr = ip
                        .parse()
                        .with_context(|| format!("{ip:?} is not an IP address"))?;
                    (SocketAddr::new(ip, port(lp)?), r)
                }
            }
        }
    };
    Ok((addr, remote))
}

/// Runs `agentlab sandbox forward` until Ctrl-C.
pub async fn run(ctx: &Ctx, a: ForwardArgs) -> anyhow::Result<Code> {
    let (addr, remote) = parse_spec(&a.spec)?;
    if a.stdio {
        if a.spec.contains(':') {
            bail!("with --stdio give only the remote port");
        }
        pipe(
            &ctx.client,
            a.vmid,
            remote,
            tokio::io::stdin(),
            tokio::io::stdout(),
        )
        .await?;
        return Ok(Code::Ok);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    if ctx.json {
        print_json(
            &serde_json::json!({"listen": local.to_string(), "vmid": a.vmid, "remote_port": remote}),
        )?;
    } else {
        println!(
            "Forwarding {local} -> sandbox {} port {remote} (Ctrl-C to stop)",
            a.vmid
        );
    }
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(Code::Ok),
            accepted = listener.accept() => {
                let (tcp, peer) = accepted.context("accepting")?;
                let client = ctx.client.clone();
                let vmid = a.vmid;
                tokio::spawn(async move {
                    if let Err(e) = one(&client, vmid, remote, tcp).await {
                        eprintln!("agentlab: forward from {peer}: {e:#}");
                    }
                });
            }
        }
    }
}

async fn one(
    client: &Client,
    vmid: Vmid,
    port: u16,
    tcp: tokio::net::TcpStream,
) -> anyhow::Result<()> {
    let (r, w) = tcp.into_split();
    pipe(client, vmid, port, r, w).await
}

/// One forwarded connection: `r` → the sandbox's port → `w`.
async fn pipe<R, W>(
    client: &Client,
    vmid: Vmid,
    port: u16,
    mut r: R,
    mut w: W,
) -> anyhow::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let stream = client
        .open_stream(vmid, StreamRequest::Forward(ForwardRequest { port }))
        .await?;
    let (mut tx, mut rx) = stream.split();
    let up = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                tx.send(Frame::DataEnd(None)).await?;
                return anyhow::Ok(());
            }
            tx.send(Frame::Data(Bytes::copy_from_slice(&buf[..n])))
                .await?;
        }
    };
    let down = async {
        while let Some(f) = rx.next().await {
            match f? {
                Frame::Data(b) => {
                    w.write_all(&b).await?;
                    w.flush().await?;
                }
                Frame::DataEnd(_) => {
                    w.shutdown().await?;
                    return anyhow::Ok(());
                }
                Frame::Error(m) => bail!("{m}"),
                _ => {}
            }
        }
        w.shutdown().await?;
        Ok(())
    };
    let (u, d) = tokio::join!(up, down);
    d?;
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            parse_spec("8080").expect("ok"),
            ("127.0.0.1:8080".parse().expect("addr"), 8080)
        );
        assert_eq!(
            parse_spec("9000:80").expect("ok"),
            ("127.0.0.1:9000".parse().expect("addr"), 80)
        );
        assert_eq!(
            parse_spec("0.0.0.0:9000:80").expect("ok"),
            ("0.0.0.0:9000".parse().expect("addr"), 80)
        );
        assert_eq!(
            parse_spec("[::1]:9000:80").expect("ok"),
            ("[::1]:9000".parse().expect("addr"), 80)
        );
        assert!(parse_spec("0").is_err());
        assert!(parse_spec("x:80").is_err());
        assert!(parse_spec("1.2.3:9000:80").is_err());
    }
}

//! Copies against the canned daemon's fake guest: what is sent arrives with a matching
//! summary, the guest's failure is reported, and a damaged copy out is detected.

use std::sync::{Arc, Mutex};

use agentlab_core::api::channel::{ExecUser, ExitInfo};
use futures::{SinkExt as _, StreamExt as _};

use super::*;
use crate::testing::{Canned, GuestFn};

fn vmid() -> Vmid {
    Vmid::new(101).unwrap()
}

/// A guest that records copy-in data and answers with `code`; copy-out sends `payload`
/// with a summary claiming `claimed_bytes`.
fn guest(
    received: Arc<Mutex<Vec<u8>>>,
    code: i32,
    payload: &'static [u8],
    claimed_bytes: u64,
) -> GuestFn {
    Arc::new(move |req, mut s| {
        let received = received.clone();
        Box::pin(async move {
            s.send(Frame::Ready).await.unwrap();
            match req {
                StreamRequest::CopyIn(_) => {
                    while let Some(Ok(f)) = s.next().await {
                        match f {
                            Frame::Data(b) => received.lock().unwrap().extend_from_slice(&b),
                            Frame::DataEnd(summary) => {
                                let data = received.lock().unwrap().clone();
                                let summary = summary.unwrap();
                                assert_eq!(summary.bytes, data.len() as u64);
                                assert_eq!(summary.sha256, hex::encode(Sha256::digest(&data)));
                                break;
                            }
                            _ => {}
                        }
                    }
                    let exit = ExitInfo {
                        code,
                        signal: None,
                        timed_out: false,
                    };
                    s.send(Frame::Exit(exit)).await.unwrap();
                }
                StreamRequest::CopyOut(_) => {
                    s.send(Frame::Data(Bytes::from_static(payload)))
                        .await
                        .unwrap();
                    let summary = DataSummary {
                        bytes: claimed_bytes,
                        sha256: hex::encode(Sha256::digest(payload)),
                    };
                    s.send(Frame::DataEnd(Some(summary))).await.unwrap();
                }
                _ => {}
            }
        })
    })
}

fn copy_in_req() -> CopyInRequest {
    CopyInRequest {
        path: "/home/agent".into(),
        user: ExecUser::Agent,
    }
}

fn copy_out_req() -> CopyOutRequest {
    CopyOutRequest {
        path: "/home/agent/f".into(),
        user: ExecUser::Agent,
    }
}

#[tokio::test]
async fn copy_in_sends_every_byte_with_its_summary() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let srv = Canned::with_guest(vec![], Some(guest(received.clone(), 0, b"", 0))).await;
    let mut copy = srv.client().copy_in(vmid(), copy_in_req()).await.unwrap();
    copy.send(Bytes::from_static(b"hello ")).await.unwrap();
    copy.send(Bytes::from_static(b"world")).await.unwrap();
    let summary = copy.finish().await.unwrap();
    assert_eq!(summary.bytes, 11);
    assert_eq!(summary.sha256, hex::encode(Sha256::digest(b"hello world")));
    assert_eq!(&*received.lock().unwrap(), b"hello world");
    assert_eq!(srv.seen(), ["POST /v1/sandboxes/101/stream"]);
}

#[tokio::test]
async fn a_failed_copy_in_is_reported() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let srv = Canned::with_guest(vec![], Some(guest(received, 2, b"", 0))).await;
    let copy = srv.client().copy_in(vmid(), copy_in_req()).await.unwrap();
    let err = copy.finish().await.unwrap_err();
    assert!(matches!(err, ClientError::StreamRefused(_)), "{err:?}");
    assert_eq!(err.to_string(), "the copy failed in the sandbox (code 2)");
}

#[tokio::test]
async fn copy_out_checks_the_summary() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let srv = Canned::with_guest(vec![], Some(guest(received.clone(), 0, b"data", 4))).await;
    let mut copy = srv.client().copy_out(vmid(), copy_out_req()).await.unwrap();
    assert_eq!(copy.next_chunk().await.unwrap().unwrap(), &b"data"[..]);
    assert_eq!(copy.next_chunk().await.unwrap(), None);
    assert_eq!(copy.summary().bytes, 4);

    let srv = Canned::with_guest(vec![], Some(guest(received, 0, b"data", 5))).await;
    let mut copy = srv.client().copy_out(vmid(), copy_out_req()).await.unwrap();
    copy.next_chunk().await.unwrap();
    let err = copy.next_chunk().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the copy arrived damaged: 4 bytes"),
        "{err}"
    );
}

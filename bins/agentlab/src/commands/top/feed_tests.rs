//! The feed against a canned daemon: the routes it reads and the updates it sends.

use std::time::Duration;

use agentlab_core::{EventKind, JobState, SandboxState};

use super::*;
use crate::test_server::fixtures::{event_line, job, sandbox};
use crate::test_server::{Canned, Reply};

fn ndjson(lines: &[String]) -> Reply {
    Reply::raw(
        lines.concat(),
        vec![("content-type", "application/x-ndjson".to_owned())],
    )
}

async fn next(rx: &mut mpsc::Receiver<Update>) -> Update {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an update within 5 s")
        .expect("the feed is running")
}

fn lists_routes() -> Vec<(&'static str, Reply)> {
    vec![
        (
            "GET /v1/sandboxes",
            Reply::json(200, &[sandbox(SandboxState::Ready, None)]),
        ),
        ("GET /v1/jobs", Reply::json(200, &[job(JobState::Running)])),
    ]
}

#[tokio::test]
async fn lists_then_events_of_watched_sandboxes_trigger_a_new_read() {
    let mut routes = lists_routes();
    routes.push((
        "GET /v1/sandboxes/101/events?tail=1&follow=true",
        ndjson(&[event_line(7, EventKind::StateChanged, "BOOTING -> READY")]),
    ));
    let srv = Canned::start(routes).await;
    let (tx, mut rx) = mpsc::channel(16);
    let mut feed = Feed::start(srv.client(), tx);
    let Update::Lists(sandboxes, jobs) = next(&mut rx).await else {
        panic!("lists first");
    };
    assert_eq!(sandboxes[0].vmid.to_string(), "101");
    assert_eq!(jobs[0].id.to_string(), "job-1");
    feed.watch(&[sandboxes[0].vmid]);
    let Update::Event(e) = next(&mut rx).await else {
        panic!("the watched sandbox's event");
    };
    assert_eq!((e.id, e.message.as_str()), (7, "BOOTING -> READY"));
    // The event makes the lists be read again, well before the 2 s poll.
    let t0 = std::time::Instant::now();
    assert!(matches!(next(&mut rx).await, Update::Lists(..)));
    assert!(t0.elapsed() < POLL, "{:?}", t0.elapsed());
    assert_eq!(
        srv.seen()
            .iter()
            .filter(|r| *r == "GET /v1/sandboxes")
            .count(),
        2
    );
    // The stream ended (a live sandbox's would not): watching again reconnects, and the
    // backlog event seen already delivers but reads nothing.
    let vmid = sandboxes[0].vmid;
    for _ in 0..500 {
        if feed.watchers[&vmid].is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    feed.watch(&[sandboxes[0].vmid]);
    assert!(matches!(next(&mut rx).await, Update::Event(_)));
    tokio::time::sleep(DEBOUNCE * 3).await;
    assert!(rx.try_recv().is_err(), "no read after an old event");
    // Watching nothing stops the watcher.
    feed.watch(&[]);
    assert!(feed.watchers.is_empty());
}

#[tokio::test]
async fn the_detail_subject_is_followed_with_its_backlog() {
    let mut routes = lists_routes();
    routes.push((
        "GET /v1/jobs/job-1/events?tail=200&follow=true",
        ndjson(&[
            event_line(1, EventKind::JobStep, "agent"),
            event_line(2, EventKind::JobLog, "hello from the agent"),
        ]),
    ));
    let srv = Canned::start(routes).await;
    let (tx, mut rx) = mpsc::channel(16);
    let mut feed = Feed::start(srv.client(), tx);
    assert!(matches!(next(&mut rx).await, Update::Lists(..)));
    let target = Target::Job("job-1".parse().unwrap());
    feed.show(Some(target.clone()));
    let mut logs = Vec::new();
    while logs.len() < 2 {
        if let Update::Event(e) = next(&mut rx).await {
            logs.push(e.message);
        }
    }
    assert_eq!(logs, ["agent", "hello from the agent"]);
    // The same subject again opens no second stream.
    feed.show(Some(target));
    feed.show(None);
    assert!(feed.detail.is_none());
    let follows = srv.seen().iter().filter(|r| r.contains("follow")).count();
    assert_eq!(follows, 1);
}

#[tokio::test]
async fn failures_and_action_results_reach_the_status_line() {
    // No routes: every read is a 404 envelope.
    let srv = Canned::start(Vec::new()).await;
    let (tx, mut rx) = mpsc::channel(16);
    let feed = Feed::start(srv.client(), tx);
    let Update::Status(m) = next(&mut rx).await else {
        panic!("a status");
    };
    assert!(
        m.starts_with("refresh failed: ") && m.contains("no_route"),
        "{m}"
    );
    feed.act(async { "sandbox 101 destroyed".to_owned() });
    // The same failure is not repeated: the next message is the action's.
    let Update::Status(m) = next(&mut rx).await else {
        panic!("a status");
    };
    assert_eq!(m, "sandbox 101 destroyed");
}

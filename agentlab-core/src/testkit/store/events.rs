//! Conformance checks for events (ids, filters, `tail`/`after`/`limit`) and job-log trimming.

use super::{ok, plus_secs, t0, vmid};
use crate::event::{EventKind, EventQuery, NewEvent};
use crate::ids::JobId;
use crate::store::StateStore;

pub(super) async fn events(store: &dyn StateStore) {
    let (s1, s2) = (vmid(1401), vmid(1402));
    let job = JobId::generate();
    let mut appended = Vec::new();
    for i in 0..10_i64 {
        let (sb, kind) = if i % 2 == 0 {
            (s1, EventKind::StateChanged)
        } else {
            (s2, EventKind::JobLog)
        };
        let ev = NewEvent::new(plus_secs(t0(), i), kind, format!("event {i}"))
            .sandbox(sb)
            .job((i >= 5).then(|| job.clone()))
            .payload(serde_json::json!({ "i": i, "nested": { "list": [1, "two", null] } }));
        let stored = ok(store.append_event(ev.clone()).await, "append_event");
        assert_eq!(
            (
                stored.ts,
                stored.kind,
                stored.sandbox,
                &stored.job,
                &stored.message,
                &stored.payload
            ),
            (
                ev.ts,
                ev.kind,
                ev.sandbox,
                &ev.job,
                &ev.message,
                &ev.payload
            ),
            "append returns the event"
        );
        appended.push(stored);
    }
    assert!(
        appended.windows(2).all(|w| w[0].id < w[1].id),
        "event ids strictly increase"
    );
    let ids = |q: EventQuery| async move {
        let got = ok(store.events(&q).await, "events");
        got.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let id = |i: usize| appended[i].id;
    let by_s1 = EventQuery {
        sandbox: Some(s1),
        ..EventQuery::default()
    };
    assert_eq!(
        ok(store.events(&by_s1).await, "events"),
        appended.iter().step_by(2).cloned().collect::<Vec<_>>(),
        "events by sandbox round-trip"
    );
    assert_eq!(
        ids(EventQuery {
            tail: Some(2),
            ..by_s1.clone()
        })
        .await,
        [id(6), id(8)],
        "tail returns the last N ascending"
    );
    assert_eq!(
        ids(EventQuery {
            after: Some(id(4)),
            ..by_s1.clone()
        })
        .await,
        [id(6), id(8)],
        "after"
    );
    assert_eq!(
        ids(EventQuery {
            after: Some(id(0)),
            limit: Some(2),
            ..by_s1.clone()
        })
        .await,
        [id(2), id(4)],
        "after + limit"
    );
    assert_eq!(
        ids(EventQuery {
            tail: Some(3),
            after: Some(id(4)),
            ..by_s1.clone()
        })
        .await,
        [id(6), id(8)],
        "tail larger than the match"
    );
    let by_job = EventQuery {
        job: Some(job.clone()),
        ..EventQuery::default()
    };
    assert_eq!(
        ids(by_job.clone()).await,
        (5..10).map(id).collect::<Vec<_>>(),
        "events by job"
    );
    assert_eq!(
        ids(EventQuery {
            kinds: vec![EventKind::JobLog],
            ..by_job.clone()
        })
        .await,
        [id(5), id(7), id(9)],
        "kinds filter"
    );
    assert_eq!(
        ids(EventQuery {
            sandbox: Some(s1),
            ..by_job
        })
        .await,
        [id(6), id(8)],
        "sandbox and job filters combine"
    );
    let all = ids(EventQuery {
        after: Some(id(0) - 1),
        ..EventQuery::default()
    })
    .await;
    assert!(
        all.windows(2).all(|w| w[0] < w[1]) && all.len() >= 10,
        "unfiltered query ascending"
    );
}

pub(super) async fn job_log_trimming(store: &dyn StateStore) {
    let (job, other) = (JobId::generate(), JobId::generate());
    let before = ok(store.event_count().await, "event_count");
    for i in 0..5 {
        let ev = NewEvent::new(t0(), EventKind::JobLog, format!("line {i}")).job(Some(job.clone()));
        ok(store.append_event(ev).await, "append_event");
    }
    let step = NewEvent::new(t0(), EventKind::JobStep, "step").job(Some(job.clone()));
    ok(store.append_event(step).await, "append_event");
    let foreign = NewEvent::new(t0(), EventKind::JobLog, "other").job(Some(other.clone()));
    let foreign = ok(store.append_event(foreign).await, "append_event");
    assert_eq!(
        ok(store.event_count().await, "event_count"),
        before + 7,
        "event_count counts every appended event"
    );
    assert_eq!(
        ok(store.trim_job_logs(&job, 2).await, "trim_job_logs"),
        3,
        "trim deletes all but the newest 2"
    );
    assert_eq!(
        ok(store.event_count().await, "event_count"),
        before + 4,
        "event_count drops trimmed events"
    );
    let left: Vec<String> = ok(
        store
            .events(&EventQuery {
                job: Some(job.clone()),
                ..EventQuery::default()
            })
            .await,
        "events",
    )
    .into_iter()
    .map(|e| e.message)
    .collect();
    assert_eq!(
        left,
        ["line 3", "line 4", "step"],
        "newest logs and non-log events survive"
    );
    assert_eq!(
        ok(store.trim_job_logs(&job, 2).await, "trim_job_logs"),
        0,
        "trim is idempotent"
    );
    assert_eq!(
        ok(
            store
                .events(&EventQuery {
                    job: Some(other),
                    ..EventQuery::default()
                })
                .await,
            "events"
        )
        .len(),
        1,
        "other jobs untouched"
    );
    let later = ok(
        store
            .append_event(NewEvent::new(t0(), EventKind::Warning, "later"))
            .await,
        "append_event",
    );
    assert!(later.id > foreign.id, "ids keep increasing after a trim");
}

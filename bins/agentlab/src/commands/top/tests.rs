//! `agentlab top` without a terminal: the key map, the pure state and what it renders on
//! ratatui's `TestBackend` at 80×24 and wider.

use chrono::TimeZone;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use agentlab_core::{Event, EventKind, Job, JobId, JobState, Lease, Sandbox, SandboxState};
use agentlab_core::{Timestamp, Vmid};

use super::app::{App, Effect, Tab};
use super::keys::{self, Action, HELP};
use super::ui;
use crate::commands::logs::Target;

fn ts(secs: i64) -> Timestamp {
    chrono::Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn vmid(n: u32) -> Vmid {
    Vmid::new(n).unwrap()
}

fn sandbox(n: u32, state: SandboxState) -> Sandbox {
    Sandbox {
        vmid: vmid(n),
        name: format!("agentlab-{n}"),
        profile: "interactive-dev".into(),
        state,
        node: None,
        ip: Some(format!("10.77.0.{}", n % 200).parse().unwrap()),
        mac: None,
        iface: None,
        vm_created: true,
        job: None,
        workspace: None,
        lease: Lease {
            expires_at: ts(3600),
            keepalive: true,
            renewable: true,
            ttl_minutes: 60,
        },
        last_error: None,
        created_at: ts(0),
        updated_at: ts(10),
    }
}

fn job(id: &str, sandbox: Option<u32>) -> Job {
    Job {
        id: id.parse().unwrap(),
        repo: "file:///srv/repo.git".into(),
        git_ref: None,
        task: "fix it".into(),
        profile: "dev".into(),
        agent: None,
        state: JobState::Running,
        sandbox: sandbox.map(vmid),
        keepalive: false,
        ttl_minutes: 60,
        workspace: None,
        deadline: None,
        runner_token_hash: None,
        step: Some("agent".into()),
        outcome: None,
        created_at: ts(0),
        updated_at: ts(5),
        ended_at: None,
        result: None,
        pushed: None,
    }
}

fn event(id: i64, kind: EventKind, sandbox: Option<u32>, job: Option<&str>, msg: &str) -> Event {
    Event {
        id,
        ts: ts(id),
        kind,
        sandbox: sandbox.map(vmid),
        job: job.map(|j| j.parse::<JobId>().unwrap()),
        message: msg.into(),
        payload: serde_json::json!({}),
    }
}

fn app() -> App {
    let mut app = App::new("/run/agentlab/agentlabd.sock".into(), ts(60));
    let mut busy = sandbox(102, SandboxState::Running);
    busy.job = Some("job-aa".parse().unwrap());
    app.set_lists(
        vec![sandbox(101, SandboxState::Ready), busy],
        vec![job("job-aa", Some(102)), job("job-bb", None)],
    );
    app
}

/// The screen's rows as text.
fn screen(app: &App, width: u16, height: u16) -> Vec<String> {
    let mut term = Terminal::new(TestBackend::new(width, height)).unwrap();
    term.draw(|f| ui::render(f, app)).unwrap();
    let buf = term.backend().buffer();
    (0..height)
        .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, code: KeyCode) -> Option<Effect> {
    let action = keys::map(key(code), app.confirm.is_some())?;
    app.apply(action)
}

#[test]
fn keys_map_to_actions_and_a_dialog_takes_only_its_answers() {
    assert_eq!(
        keys::map(key(KeyCode::Char('j')), false),
        Some(Action::Down)
    );
    assert_eq!(keys::map(key(KeyCode::Down), false), Some(Action::Down));
    assert_eq!(keys::map(key(KeyCode::Char('k')), false), Some(Action::Up));
    assert_eq!(keys::map(key(KeyCode::Tab), false), Some(Action::SwitchTab));
    assert_eq!(
        keys::map(key(KeyCode::Enter), false),
        Some(Action::ToggleDetail)
    );
    assert_eq!(
        keys::map(key(KeyCode::Char('d')), false),
        Some(Action::ToggleDetail)
    );
    assert_eq!(
        keys::map(key(KeyCode::Char('x')), false),
        Some(Action::Destroy)
    );
    assert_eq!(keys::map(key(KeyCode::Esc), false), Some(Action::Quit));
    assert_eq!(keys::map(key(KeyCode::Char('z')), false), None);
    // In the dialog: y/n/Esc answer, everything else is ignored (x again does not confirm).
    assert_eq!(keys::map(key(KeyCode::Char('y')), true), Some(Action::Yes));
    assert_eq!(keys::map(key(KeyCode::Esc), true), Some(Action::No));
    assert_eq!(keys::map(key(KeyCode::Char('x')), true), None);
    assert_eq!(keys::map(key(KeyCode::Enter), true), None);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(keys::map(ctrl_c, true), Some(Action::Quit));
}

#[test]
fn an_80x24_screen_shows_the_table_the_rows_and_the_whole_help_line() {
    let app = app();
    let rows = screen(&app, 80, 24);
    let text = rows.join("\n");
    assert!(
        rows[0].starts_with("agentlab top [Sandboxes 2]  Jobs 2"),
        "{text}"
    );
    assert!(rows[0].contains("/run/agentlab/agentlabd.sock"), "{text}");
    let header = rows.iter().find(|r| r.contains("VMID")).expect(&text);
    for col in ["NAME", "PROFILE", "STATE", "JOB", "LEASE"] {
        assert!(header.contains(col), "{header}");
    }
    // Narrow: no IP column.
    assert!(!header.contains("IP "), "{header}");
    let row = rows.iter().find(|r| r.contains("101")).expect(&text);
    assert!(row.contains("READY") && row.contains("in 59m"), "{row}");
    assert!(row.contains('▶'), "the first row is selected: {row}");
    let busy = rows.iter().find(|r| r.contains("102")).expect(&text);
    assert!(
        busy.contains("RUNNING") && busy.contains("job-aa"),
        "{busy}"
    );
    assert_eq!(rows[23].trim_end(), HELP);
    assert!(HELP.chars().count() <= 80);
}

#[test]
fn a_wide_screen_adds_the_ip_and_repo_columns() {
    let mut app = app();
    let rows = screen(&app, 120, 30);
    let header = rows.iter().find(|r| r.contains("VMID")).unwrap();
    assert!(header.contains("IP"), "{header}");
    assert!(rows.iter().any(|r| r.contains("10.77.0.101")));
    press(&mut app, KeyCode::Tab);
    let rows = screen(&app, 120, 30);
    assert!(rows[0].contains("[Jobs 2]"), "{}", rows[0]);
    let header = rows.iter().find(|r| r.contains("SANDBOX")).unwrap();
    assert!(
        header.contains("REPO") && header.contains("STEP"),
        "{header}"
    );
    assert!(rows.iter().any(|r| r.contains("file:///srv/repo.git")));
    // 80 columns: the repository is left out, the rows stay.
    let rows = screen(&app, 80, 24);
    assert!(!rows.iter().any(|r| r.contains("REPO")));
    assert!(
        rows.iter()
            .any(|r| r.contains("job-bb") && r.contains("RUNNING"))
    );
}

#[test]
fn destroy_asks_first_and_only_y_destroys() {
    let mut app = app();
    assert_eq!(press(&mut app, KeyCode::Char('j')), None);
    assert_eq!(press(&mut app, KeyCode::Char('x')), None);
    assert_eq!(app.confirm, Some(vmid(102)));
    let text = screen(&app, 80, 24).join("\n");
    assert!(
        text.contains("Destroy sandbox 102 (agentlab-102)?"),
        "{text}"
    );
    assert!(text.contains("y: destroy   n/Esc: keep"), "{text}");
    // n keeps it.
    assert_eq!(press(&mut app, KeyCode::Char('n')), None);
    assert_eq!(app.confirm, None);
    assert_eq!(app.status.as_deref(), Some("sandbox 102 kept"));
    assert!(!screen(&app, 80, 24).join("\n").contains("Destroy sandbox"));
    // x then y destroys the selected sandbox; other keys in between change nothing.
    press(&mut app, KeyCode::Char('x'));
    assert_eq!(press(&mut app, KeyCode::Char('k')), None);
    assert_eq!(app.confirm, Some(vmid(102)));
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        Some(Effect::Destroy(vmid(102)))
    );
    assert_eq!(app.confirm, None);
}

#[test]
fn actions_on_the_jobs_table_use_the_jobs_sandbox() {
    let mut app = app();
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.tab, Tab::Jobs);
    assert_eq!(
        press(&mut app, KeyCode::Char('r')),
        Some(Effect::Renew(vmid(102)))
    );
    assert_eq!(
        press(&mut app, KeyCode::Char('s')),
        Some(Effect::Shell(vmid(102)))
    );
    press(&mut app, KeyCode::Down);
    assert_eq!(press(&mut app, KeyCode::Char('x')), None);
    assert_eq!(app.confirm, None);
    assert_eq!(
        app.status.as_deref(),
        Some("the selected job has no sandbox")
    );
    assert_eq!(press(&mut app, KeyCode::Char('q')), Some(Effect::Quit));
}

#[test]
fn a_refresh_keeps_the_selected_row_by_id() {
    let mut app = app();
    press(&mut app, KeyCode::Down);
    assert_eq!(app.selected_sandbox().unwrap().vmid, vmid(102));
    // A new sandbox sorts before it: the selection follows 102.
    app.set_lists(
        vec![
            sandbox(100, SandboxState::Requested),
            sandbox(101, SandboxState::Ready),
            sandbox(102, SandboxState::Ready),
        ],
        app.jobs.clone(),
    );
    assert_eq!(app.selected_sandbox().unwrap().vmid, vmid(102));
    assert_eq!(app.selected_index(), 2);
    // 102 goes away: the row at the end is selected instead; Down stops at the last row.
    app.set_lists(
        vec![
            sandbox(100, SandboxState::Ready),
            sandbox(101, SandboxState::Ready),
        ],
        app.jobs.clone(),
    );
    assert_eq!(app.selected_sandbox().unwrap().vmid, vmid(101));
    press(&mut app, KeyCode::Down);
    assert_eq!(app.selected_index(), 1);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up);
    assert_eq!(app.selected_index(), 0);
    // Nothing left.
    app.set_lists(Vec::new(), Vec::new());
    assert!(app.selected_sandbox().is_none());
    assert!(screen(&app, 80, 24).join("\n").contains("No sandboxes."));
    assert_eq!(press(&mut app, KeyCode::Char('x')), None);
    assert_eq!(app.status.as_deref(), Some("no sandbox selected"));
}

#[test]
fn the_detail_pane_shows_the_selected_sandboxs_events_only() {
    let mut app = app();
    assert_eq!(app.detail_target(), None);
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.detail_target(), Some(Target::Sandbox(vmid(101))));
    app.push_event(event(
        1,
        EventKind::ProvisionStep,
        Some(101),
        None,
        "clone ok (create, 3 ms)",
    ));
    app.push_event(event(
        2,
        EventKind::ProvisionStep,
        Some(102),
        None,
        "other sandbox",
    ));
    app.push_event(event(
        3,
        EventKind::StateChanged,
        Some(101),
        None,
        "READY\u{1b}[2J",
    ));
    let text = screen(&app, 80, 24).join("\n");
    assert!(text.contains("sandbox 101 · events"), "{text}");
    assert!(text.contains("READY · lease in 59m (60 min)"), "{text}");
    assert!(
        text.contains("provision_step    clone ok (create, 3 ms)"),
        "{text}"
    );
    assert!(!text.contains("other sandbox"), "{text}");
    // Control characters from the daemon or a guest are shown, never sent to the terminal.
    assert!(text.contains("READY\\x1b[2J"), "{text}");
    // The help line still fits under the pane.
    assert_eq!(screen(&app, 80, 24)[23].trim_end(), HELP);
    // Moving the selection moves the pane.
    press(&mut app, KeyCode::Down);
    assert_eq!(app.detail_target(), Some(Target::Sandbox(vmid(102))));
    assert!(screen(&app, 80, 24).join("\n").contains("other sandbox"));
    press(&mut app, KeyCode::Char('d'));
    assert_eq!(app.detail_target(), None);
}

#[test]
fn follow_shows_the_jobs_agent_output_tail() {
    let mut app = app();
    press(&mut app, KeyCode::Char('f'));
    assert_eq!(app.follow, None, "sandbox 101 has no job");
    assert_eq!(
        app.status.as_deref(),
        Some("no job to follow: select a job")
    );
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Char('f'));
    assert_eq!(
        app.detail_target(),
        Some(Target::Job("job-aa".parse().unwrap()))
    );
    assert!(
        screen(&app, 80, 24)
            .join("\n")
            .contains("(no agent output yet)")
    );
    app.push_event(event(
        10,
        EventKind::JobStep,
        Some(102),
        Some("job-aa"),
        "step agent",
    ));
    for i in 0..30 {
        let line = format!("line {i}");
        app.push_event(event(
            11 + i,
            EventKind::JobLog,
            Some(102),
            Some("job-aa"),
            &line,
        ));
    }
    let rows = screen(&app, 80, 24);
    let text = rows.join("\n");
    assert!(text.contains("job-aa · agent output (following)"), "{text}");
    assert!(
        text.contains("│ line 29"),
        "the newest line is shown: {text}"
    );
    assert!(
        !text.contains("│ line 0\n") && !text.contains("step agent"),
        "{text}"
    );
    // The pane keeps the job while the selection moves; f again stops following.
    press(&mut app, KeyCode::Up);
    assert_eq!(
        app.detail_target(),
        Some(Target::Job("job-aa".parse().unwrap()))
    );
    press(&mut app, KeyCode::Char('f'));
    assert_eq!(app.follow, None);
    assert_eq!(app.detail_target(), Some(Target::Sandbox(vmid(101))));
}

#[test]
fn only_changes_ask_for_a_redraw() {
    let mut app = app();
    assert!(app.take_dirty());
    assert!(!app.take_dirty());
    app.set_lists(app.sandboxes.clone(), app.jobs.clone());
    assert!(!app.take_dirty(), "the same lists draw nothing");
    app.push_event(event(1, EventKind::ProvisionStep, Some(101), None, "x"));
    assert!(!app.take_dirty(), "no pane shows sandbox 101");
    app.tick(ts(60));
    assert!(!app.take_dirty(), "same time");
    app.tick(ts(61));
    assert!(app.take_dirty());
    let mut other = app.sandboxes.clone();
    other[0].state = SandboxState::Stopped;
    app.set_lists(other, app.jobs.clone());
    assert!(app.take_dirty());
}

#[test]
fn tiny_terminals_render_without_panicking() {
    let mut app = app();
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('x'));
    for (w, h) in [(20, 6), (80, 8), (1, 1)] {
        let rows = screen(&app, w, h);
        assert_eq!(rows.len(), usize::from(h));
    }
}

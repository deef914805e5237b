//! Drawing `agentlab top` with ratatui widgets: a title with both tables' counts, the focused
//! table, the detail pane (events, or the followed job's agent output), the status line, the
//! key help and, over everything, the destroy confirmation. A pure function of [`App`], so it
//! renders the same on a terminal and on ratatui's `TestBackend`.
//!
//! Narrow terminals (under 100 columns) drop the IP and repository columns; ratatui truncates
//! what still does not fit. Text from sandboxes and the daemon is escaped first
//! ([`crate::term`]).

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, TableState, Wrap};

use agentlab_core::{Job, Sandbox};

use super::app::{App, Tab};
use super::keys::HELP;
use crate::commands::logs::Target;
use crate::output::{dash, event_line, relative};
use crate::term::escape;

/// Width from which the optional columns are shown.
const WIDE: u16 = 100;

/// Draws the whole screen.
pub fn render(f: &mut Frame<'_>, app: &App) {
    let [title, main, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(title_line(app), title);
    if app.detail_target().is_some() {
        let [table, detail] =
            Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(main);
        render_table(f, app, table);
        render_detail(f, app, detail);
    } else {
        render_table(f, app, main);
    }
    let text = app.status.as_deref().map(escape).unwrap_or_default();
    f.render_widget(Paragraph::new(text.into_owned()), status);
    f.render_widget(
        Paragraph::new(HELP).style(Style::new().add_modifier(Modifier::DIM)),
        help,
    );
    if let Some(vmid) = app.confirm {
        let name = app
            .sandboxes
            .iter()
            .find(|s| s.vmid == vmid)
            .map(|s| format!(" ({})", escape(&s.name)))
            .unwrap_or_default();
        render_confirm(f, &format!("Destroy sandbox {vmid}{name}?"));
    }
}

fn title_line(app: &App) -> Line<'static> {
    let tab = |label: String, on: bool| {
        if on {
            Span::styled(
                format!("[{label}]"),
                Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
            )
        } else {
            Span::raw(format!(" {label} "))
        }
    };
    Line::from(vec![
        Span::styled("agentlab top ", Style::new().add_modifier(Modifier::BOLD)),
        tab(
            format!("Sandboxes {}", app.sandboxes.len()),
            app.tab == Tab::Sandboxes,
        ),
        Span::raw(" "),
        tab(format!("Jobs {}", app.jobs.len()), app.tab == Tab::Jobs),
        Span::raw(format!("  {}", app.target)),
    ])
}

fn render_table(f: &mut Frame<'_>, app: &App, area: Rect) {
    let wide = area.width >= WIDE;
    let (table, len, title) = match app.tab {
        Tab::Sandboxes => (
            sandbox_table(&app.sandboxes, app, wide),
            app.sandboxes.len(),
            "Sandboxes",
        ),
        Tab::Jobs => (job_table(&app.jobs, app, wide), app.jobs.len(), "Jobs"),
    };
    let table = table
        .block(Block::bordered().title(format!(" {title} ")))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶");
    let mut state = TableState::default().with_selected((len > 0).then(|| app.selected_index()));
    f.render_stateful_widget(table, area, &mut state);
    if len == 0 {
        let inner = area.inner(ratatui::layout::Margin::new(2, 2));
        let text = match app.tab {
            Tab::Sandboxes => "No sandboxes.",
            Tab::Jobs => "No jobs.",
        };
        f.render_widget(Paragraph::new(text), inner);
    }
}

fn header(cols: &[&'static str]) -> Row<'static> {
    Row::new(cols.to_vec()).style(Style::new().add_modifier(Modifier::BOLD))
}

fn sandbox_table<'a>(list: &[Sandbox], app: &App, wide: bool) -> Table<'a> {
    let rows = list.iter().map(|s| {
        let lease = if s.state.is_terminal() {
            "-".to_owned()
        } else {
            relative(&s.lease.expires_at, &app.now)
        };
        let mut cells = vec![
            s.vmid.to_string(),
            escape(&s.name).into_owned(),
            escape(&s.profile).into_owned(),
            s.state.to_string(),
        ];
        if wide {
            cells.push(dash(s.ip));
        }
        cells.extend([dash(s.job.as_ref()), lease]);
        Row::new(cells)
    });
    let mut cols = vec!["VMID", "NAME", "PROFILE", "STATE"];
    let mut widths = vec![
        Constraint::Length(6),
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Length(12),
    ];
    if wide {
        cols.push("IP");
        widths.push(Constraint::Length(15));
    }
    cols.extend(["JOB", "LEASE"]);
    widths.extend([Constraint::Fill(2), Constraint::Length(9)]);
    Table::new(rows.collect::<Vec<_>>(), widths).header(header(&cols))
}

fn job_table<'a>(list: &[Job], app: &App, wide: bool) -> Table<'a> {
    let rows = list.iter().map(|j| {
        let mut cells = vec![
            j.id.to_string(),
            j.state.to_string(),
            dash(j.sandbox),
            escape(&j.profile).into_owned(),
            escape(j.step.as_deref().unwrap_or("-")).into_owned(),
        ];
        if wide {
            cells.push(escape(&j.repo).into_owned());
        }
        cells.push(relative(&j.created_at, &app.now));
        Row::new(cells)
    });
    let mut cols = vec!["ID", "STATE", "SANDBOX", "PROFILE", "STEP"];
    let mut widths = vec![
        Constraint::Fill(3),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Fill(2),
        Constraint::Fill(1),
    ];
    if wide {
        cols.push("REPO");
        widths.push(Constraint::Fill(3));
    }
    cols.push("CREATED");
    widths.push(Constraint::Length(9));
    Table::new(rows.collect::<Vec<_>>(), widths).header(header(&cols))
}

fn render_detail(f: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(target) = app.detail_target() else {
        return;
    };
    let title = match (&target, &app.follow) {
        (Target::Job(id), Some(_)) => format!(" {id} · agent output (following) "),
        (Target::Job(id), None) => format!(" job {id} · events "),
        (Target::Sandbox(v), _) => format!(" sandbox {v} · events "),
    };
    let mut lines: Vec<Line<'static>> = Vec::new();
    if app.follow.is_none() {
        lines.extend(summary(app, &target));
    }
    let events = app.detail_events();
    if events.is_empty() {
        lines.push(Line::raw(if app.follow.is_some() {
            "(no agent output yet)"
        } else {
            "(no events yet)"
        }));
    }
    let room = usize::from(area.height.saturating_sub(2)).saturating_sub(lines.len());
    let skip = events.len().saturating_sub(room);
    lines.extend(events[skip..].iter().map(|e| Line::raw(event_line(e))));
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

/// The first line of the detail pane: the subject's state and, for a sandbox, its lease and
/// last error.
fn summary(app: &App, target: &Target) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    match target {
        Target::Sandbox(v) => app
            .sandboxes
            .iter()
            .find(|s| s.vmid == *v)
            .map(|s| {
                let mut text = format!(
                    "{} · lease {} ({} min)",
                    s.state,
                    relative(&s.lease.expires_at, &app.now),
                    s.lease.ttl_minutes
                );
                if let Some(e) = &s.last_error {
                    text.push_str(&format!(" · error: {}", escape(e)));
                }
                vec![Line::styled(text, bold)]
            })
            .unwrap_or_default(),
        Target::Job(id) => app
            .jobs
            .iter()
            .find(|j| &j.id == id)
            .map(|j| {
                let step = j.step.as_deref().map(escape).unwrap_or_default();
                vec![Line::styled(format!("{} · step {step}", j.state), bold)]
            })
            .unwrap_or_default(),
    }
}

fn render_confirm(f: &mut Frame<'_>, question: &str) {
    let [area] = Layout::horizontal([Constraint::Length(50)])
        .flex(Flex::Center)
        .areas(f.area());
    let [area] = Layout::vertical([Constraint::Length(5)])
        .flex(Flex::Center)
        .areas(area);
    f.render_widget(Clear, area);
    let text = vec![
        Line::raw(question.to_owned()),
        Line::raw(""),
        Line::styled(
            "y: destroy   n/Esc: keep",
            Style::new().add_modifier(Modifier::BOLD),
        ),
    ];
    f.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" Confirm ")),
        area,
    );
}

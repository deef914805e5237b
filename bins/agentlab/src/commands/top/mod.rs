//! `agentlab top`: a live terminal UI over the daemon — the sandboxes and jobs tables, a
//! detail pane with the selected item's events or a job's agent output, and keys to destroy
//! (after a y/n confirmation), renew a lease and open a shell.
//!
//! The loop owns the terminal and the [`app::App`] state; keys come from a reader thread,
//! data from [`feed`]'s tasks, and the screen is drawn only when the state changed (ratatui
//! then writes only the cells that differ, so nothing flickers). The terminal is restored on
//! every exit: by a guard on return and by a panic hook on a panic. Without a terminal,
//! `agentlab top` refuses to start unless `--once` asks for a text snapshot.

pub mod app;
pub mod feed;
pub mod keys;
pub mod ui;

use std::io::IsTerminal as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use crossterm::event::{self as ct, Event as CtEvent, KeyEventKind};
use crossterm::{execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use agentlab_core::{SandboxState, Vmid};

use self::app::{App, Effect};
use self::feed::{Feed, Update};
use crate::ctx::Ctx;
use crate::exit::Code;
use crate::view;

/// Arguments of `agentlab top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Print the sandboxes and jobs tables once and exit (works without a terminal; with
    /// `--json`: `{"sandboxes": […], "jobs": […]}`).
    #[arg(long)]
    pub once: bool,
}

/// Runs `agentlab top`.
pub async fn run(ctx: &Ctx, args: TopArgs) -> anyhow::Result<Code> {
    let (sandboxes, jobs) = feed::lists(&ctx.client).await?;
    if args.once {
        if ctx.json {
            crate::output::print_json(
                &serde_json::json!({ "sandboxes": sandboxes, "jobs": jobs }),
            )?;
        } else {
            print_once(&sandboxes, &jobs);
        }
        return Ok(Code::Ok);
    }
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        bail!(
            "agentlab top needs a terminal on stdin and stdout; `agentlab top --once` prints \
             the tables as text instead"
        );
    }
    let mut app = App::new(ctx.client.target(), chrono::Utc::now());
    app.set_lists(sandboxes, jobs);
    restore_on_panic();
    let mut tui = Tui::enter()?;
    let result = event_loop(ctx, &mut tui, app).await;
    drop(tui);
    result.map(|()| Code::Ok)
}

fn print_once(sandboxes: &[agentlab_core::Sandbox], jobs: &[agentlab_core::Job]) {
    let now = chrono::Utc::now();
    if sandboxes.is_empty() {
        println!("No sandboxes.");
    } else {
        print!("{}", view::sandbox_table(sandboxes, &now));
    }
    println!();
    if jobs.is_empty() {
        println!("No jobs.");
    } else {
        print!("{}", view::job_table(jobs));
    }
}

async fn event_loop(ctx: &Ctx, tui: &mut Tui, mut app: App) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Update>(256);
    let input = Input::spawn(tx.clone());
    let mut feed = Feed::start(ctx.client.clone(), tx);
    feed.watch(&app.live_vmids());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        feed.show(app.detail_target());
        if app.take_dirty() {
            tui.term.draw(|f| ui::render(f, &app)).context("drawing")?;
        }
        tokio::select! {
            update = rx.recv() => match update {
                Some(Update::Key(key)) => {
                    #[cfg(debug_assertions)]
                    panic_for_tests(&key);
                    let Some(action) = keys::map(key, app.confirm.is_some()) else { continue };
                    match app.apply(action) {
                        Some(Effect::Quit) => return Ok(()),
                        Some(effect) => perform(ctx, tui, &input, &feed, &mut app, effect).await,
                        None => {}
                    }
                }
                Some(Update::Resize) => app.touch(),
                Some(Update::Lists(s, j)) => {
                    app.set_lists(s, j);
                    feed.watch(&app.live_vmids());
                }
                Some(Update::Event(e)) => app.push_event(*e),
                Some(Update::Status(m)) => app.set_status(m),
                None => bail!("the key reader stopped"),
            },
            _ = tick.tick() => app.tick(chrono::Utc::now()),
        }
    }
}

/// Carries out an action's I/O; results and errors reach the status line.
async fn perform(ctx: &Ctx, tui: &mut Tui, input: &Input, feed: &Feed, app: &mut App, e: Effect) {
    let client = ctx.client.clone();
    match e {
        Effect::Destroy(vmid) => feed.act(async move {
            match client.destroy_sandbox(vmid).await {
                Ok(s) if s.state == SandboxState::Destroying => format!(
                    "sandbox {vmid} is not destroyed yet: {}; agentlabd retries",
                    s.last_error
                        .as_deref()
                        .unwrap_or("the destroy is in progress")
                ),
                Ok(_) => format!("sandbox {vmid} destroyed"),
                Err(e) => format!("destroy {vmid}: {e}"),
            }
        }),
        Effect::Renew(vmid) => {
            app.set_status(format!("renewing the lease of {vmid}…"));
            feed.act(async move {
                match client.renew_lease(vmid, None).await {
                    Ok(s) => format!(
                        "lease of {vmid} renewed: {} min, expires {}",
                        s.lease.ttl_minutes,
                        crate::output::time(&s.lease.expires_at)
                    ),
                    Err(e) => format!("renew {vmid}: {e}"),
                }
            });
        }
        Effect::Shell(vmid) => {
            let message = match shell(ctx, tui, input, vmid).await {
                Ok(m) => m,
                Err(e) => format!("shell {vmid}: {e:#}"),
            };
            app.set_status(message);
            feed.refresh();
        }
        Effect::Quit => {}
    }
}

/// Leaves the TUI, runs `agentlab sandbox shell VMID` on the terminal (the same code path
/// as the command, in a child process that owns the terminal meanwhile), then comes back.
async fn shell(ctx: &Ctx, tui: &mut Tui, input: &Input, vmid: Vmid) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("locating the agentlab binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(ctx.conn_args())
        .args(["sandbox", "shell", &vmid.to_string()]);
    if let Some(token) = &ctx.token {
        cmd.env("AGENTLAB_TOKEN", token);
    }
    // With a terminal, everything the sandbox prints arrives on the child's stdout; its
    // stderr carries only the CLI's own errors, kept for the status line.
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    input.pause().await;
    tui.leave();
    println!("agentlab top: shell in sandbox {vmid}; exit it to come back");
    let output = match cmd.spawn() {
        Ok(child) => child.wait_with_output().await,
        Err(e) => Err(e),
    };
    let back = tui.reenter();
    input.resume();
    back?;
    let output = output.context("running agentlab sandbox shell")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("error: "))
        .map(|l| format!(": {}", crate::term::escape(l)))
        .unwrap_or_default();
    Ok(match output.status.code() {
        Some(0) => format!("shell in {vmid} ended"),
        Some(c) => format!("shell in {vmid} ended (exit {c}){why}"),
        None => format!("shell in {vmid} ended by a signal{why}"),
    })
}

/// The terminal in raw mode on the alternate screen; restored when dropped.
struct Tui {
    term: Terminal<CrosstermBackend<std::io::Stdout>>,
}

impl Tui {
    fn enter() -> anyhow::Result<Self> {
        setup().context("setting up the terminal")?;
        let term = match Terminal::new(CrosstermBackend::new(std::io::stdout())) {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(e).context("setting up the terminal");
            }
        };
        Ok(Self { term })
    }

    fn leave(&mut self) {
        restore();
    }

    fn reenter(&mut self) -> anyhow::Result<()> {
        setup().context("setting up the terminal again")?;
        self.term.clear().context("clearing the terminal")
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether the terminal is set up for the UI (raw mode, alternate screen): [`restore`] acts
/// only then, so the panic hook and the guard after it restore once. (Leaving the alternate
/// screen twice would move the cursor back over the panic message.)
static ACTIVE: AtomicBool = AtomicBool::new(false);

fn setup() -> std::io::Result<()> {
    ACTIVE.store(true, Ordering::SeqCst);
    terminal::enable_raw_mode()?;
    execute!(
        std::io::stdout(),
        terminal::EnterAlternateScreen,
        crossterm::cursor::Hide
    )
}

/// Leaves the alternate screen and raw mode and shows the cursor, if [`setup`] set them
/// (errors ignored: there is nothing better to do on the way out).
fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = execute!(
        std::io::stdout(),
        terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

/// Restores the terminal before the panic message is printed (then the previous hook runs).
fn restore_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Debug builds only: `!` panics when `AGENTLAB_TOP_TEST_PANIC` is set, so the end-to-end
/// test can check that a panic restores the terminal.
#[cfg(debug_assertions)]
fn panic_for_tests(key: &crossterm::event::KeyEvent) {
    if key.code == crossterm::event::KeyCode::Char('!')
        && std::env::var_os("AGENTLAB_TOP_TEST_PANIC").is_some()
    {
        panic!("agentlab top: panic requested by AGENTLAB_TOP_TEST_PANIC");
    }
}

/// The thread reading keys and resizes; it can be paused while a child owns the terminal.
struct Input {
    paused: Arc<AtomicBool>,
    idle: Arc<AtomicBool>,
}

impl Input {
    fn spawn(tx: mpsc::Sender<Update>) -> Self {
        let paused = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let (p, i) = (Arc::clone(&paused), Arc::clone(&idle));
        std::thread::spawn(move || read_keys(&tx, &p, &i));
        Self { paused, idle }
    }

    /// Stops reading and waits (at most a second) until no read is in flight.
    async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        for _ in 0..100 {
            if self.idle.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn resume(&self) {
        self.idle.store(false, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        // Parks the thread; it ends with the process.
        self.paused.store(true, Ordering::SeqCst);
    }
}

fn read_keys(tx: &mpsc::Sender<Update>, paused: &AtomicBool, idle: &AtomicBool) {
    loop {
        if paused.load(Ordering::SeqCst) {
            idle.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        idle.store(false, Ordering::SeqCst);
        let update = match ct::poll(Duration::from_millis(100)) {
            Ok(false) => continue,
            Ok(true) => match ct::read() {
                Ok(CtEvent::Key(k)) if k.kind != KeyEventKind::Release => Update::Key(k),
                Ok(CtEvent::Resize(..)) => Update::Resize,
                Ok(_) => continue,
                Err(e) => read_error(&e),
            },
            Err(e) => read_error(&e),
        };
        if tx.blocking_send(update).is_err() {
            return;
        }
    }
}

/// A failed terminal read, reported after a pause (so a broken terminal does not spin).
fn read_error(e: &std::io::Error) -> Update {
    std::thread::sleep(Duration::from_millis(500));
    Update::Status(format!("reading the terminal: {e}"))
}

#[cfg(test)]
mod tests;

//! End to end: `agentlab top` driven in a real terminal (tmux, 80×24) against a real daemon on
//! the fake backend: a sandbox created through the CLI appears live, the detail pane shows its
//! events, r renews its lease, s leaves for `sandbox shell` and comes back, x + y destroys it,
//! q exits and the terminal is restored — also after a panic. Skipped (with a message) where
//! tmux is missing, unless `CI` is set.
#![cfg(test)]

#[path = "e2e/harness.rs"]
mod harness;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use harness::{Daemon, bin};

/// A tmux server of its own (`-S`, its socket in a temporary directory removed at the end), so
/// the test never touches the user's sessions.
struct Tmux {
    dir: tempfile::TempDir,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("tmux.sock"))
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("running tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "{out:?}");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn var(&self, name: &str) -> String {
        let fmt = format!("#{{{name}}}");
        let out = self.run(&["display-message", "-p", "-t", "top", &fmt]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Waits (up to 20 s) until the screen satisfies `pred`; the screen then.
    fn wait(&self, what: &str, d: &Daemon, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "waiting for {what}; screen:\n{screen}\nlog:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Tmux {
    /// A tmux server with one 80×24 session running
    /// `ENV agentlab top` against `d`. After top exits, the shell prints its exit status and
    /// whether the line discipline is back in canonical mode (raw mode off), then keeps the
    /// pane open for inspection.
    fn top(d: &Daemon, env: &str) -> Tmux {
        let tmux = Tmux {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        let script = format!(
            "{env} '{}' --socket '{}' top; echo \"TOP-EXITED-$?\"; \
             stty -a | tr ' ' '\\n' | grep -x -- '-*icanon'; sleep 60",
            bin("agentlab").display(),
            d.socket.display()
        );
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "80",
            "-y",
            "24",
            "sh",
            "-c",
            &script,
        ]);
        assert!(out.status.success(), "{out:?}");
        tmux
    }

    /// Waits for top to exit and the shell to report; the screen then.
    fn exited(&self, d: &Daemon) -> String {
        self.wait("top to exit and stty to answer", d, |s| {
            s.contains("TOP-EXITED-") && s.contains("icanon")
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// True (after saying so) when tmux is missing; a failure instead under CI, which installs
/// it (.ci/run).
fn skip_without_tmux() -> bool {
    if have_tmux() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tmux is required on CI (see .ci/run)"
    );
    eprintln!("skipped: tmux is not installed");
    true
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn top_shows_sandboxes_live_destroys_with_confirmation_and_restores_the_terminal() {
    if skip_without_tmux() {
        return;
    }
    let d = Daemon::start("");
    let tmux = Tmux::top(&d, "");
    tmux.wait("the empty table", &d, |s| {
        s.contains("agentlab top [Sandboxes 0]") && s.contains("No sandboxes.")
    });
    assert_eq!(
        tmux.var("alternate_on"),
        "1",
        "top runs on the alternate screen"
    );

    // A sandbox created by the CLI appears without a key press.
    let sb = d.json(&[
        "sandbox",
        "new",
        "--profile",
        "interactive-dev",
        "--ttl",
        "30",
    ]);
    let vmid = sb["vmid"].as_u64().unwrap().to_string();
    let screen = tmux.wait("the new sandbox READY", &d, |s| {
        s.lines().any(|l| l.contains(&vmid) && l.contains("READY"))
    });
    assert!(screen.contains("[Sandboxes 1]"), "{screen}");
    let last = screen.lines().last().unwrap_or_default();
    assert!(
        last.contains("q quit"),
        "the help line fits 80 columns: {screen}"
    );

    // Enter opens the detail pane with the sandbox's events.
    tmux.keys(&["Enter"]);
    tmux.wait("the detail pane", &d, |s| {
        s.contains(&format!("sandbox {vmid} · events")) && s.contains("provision_step")
    });

    // r renews the lease by its own length.
    tmux.keys(&["r"]);
    tmux.wait("the renewal", &d, |s| {
        s.contains(&format!("lease of {vmid} renewed: 30 min"))
    });
    // s leaves the UI for `agentlab sandbox shell` and comes back when it ends (the fake
    // backend has no channel: the shell fails at once).
    tmux.keys(&["s"]);
    let screen = tmux.wait("the UI back after the shell", &d, |s| {
        s.contains(&format!("shell in {vmid} ended")) && s.contains("agentlab top [")
    });
    assert!(
        screen.contains(&format!("sandbox {vmid} · events")),
        "{screen}"
    );
    assert_eq!(tmux.var("alternate_on"), "1", "{screen}");
    // The CLI's error is on the status line.
    let status = format!("shell in {vmid} ended (exit 1): ");
    let line = screen.lines().find(|l| l.starts_with(&status));
    assert!(line.is_some_and(|l| l.len() > status.len()), "{screen}");

    // x asks, n keeps it; x then y destroys it.
    tmux.keys(&["x"]);
    tmux.wait("the dialog", &d, |s| {
        s.contains(&format!("Destroy sandbox {vmid}")) && s.contains("y: destroy")
    });
    tmux.keys(&["n"]);
    tmux.wait("the dialog to close", &d, |s| {
        !s.contains("y: destroy") && s.contains(&format!("sandbox {vmid} kept"))
    });
    assert_eq!(d.json(&["sandbox", "show", &vmid])["state"], "READY");
    tmux.keys(&["x"]);
    tmux.wait("the dialog again", &d, |s| s.contains("y: destroy"));
    tmux.keys(&["y"]);
    tmux.wait("the destroy result and the empty table", &d, |s| {
        s.contains(&format!("sandbox {vmid} destroyed")) && s.contains("[Sandboxes 0]")
    });
    let shown = d.json(&["sandbox", "show", &vmid]);
    assert_eq!(shown["state"], "DESTROYED", "{shown}");

    // q leaves: exit status 0, main screen back, cooked mode back, cursor shown.
    tmux.keys(&["q"]);
    let screen = tmux.exited(&d);
    assert!(screen.contains("TOP-EXITED-0"), "{screen}");
    assert!(
        screen.lines().any(|l| l.trim() == "icanon"),
        "raw mode is off again: {screen}"
    );
    assert!(!screen.contains("agentlab top ["), "{screen}");
    assert_eq!(tmux.var("alternate_on"), "0", "{screen}");
    assert_eq!(
        tmux.var("cursor_flag"),
        "1",
        "the cursor is shown: {screen}"
    );
}

#[test]
fn top_without_a_terminal_refuses_and_once_prints_the_tables() {
    let d = Daemon::start("");
    let out = d.cli(&["top"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a terminal") && err.contains("--once"),
        "{err}"
    );

    let sb = d.json(&[
        "sandbox",
        "new",
        "--profile",
        "interactive-dev",
        "--ttl",
        "30",
    ]);
    let vmid = sb["vmid"].as_u64().unwrap().to_string();
    let out = d.cli(&["top", "--once"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("VMID"), "{text}");
    assert!(text.contains(&vmid) && text.contains("No jobs."), "{text}");
}

#[test]
fn a_panic_in_top_restores_the_terminal() {
    if skip_without_tmux() {
        return;
    }
    let d = Daemon::start("");
    // Debug builds panic on `!` with this variable set.
    let tmux = Tmux::top(&d, "RUST_BACKTRACE=0 AGENTLAB_TOP_TEST_PANIC=1");
    tmux.wait("the table", &d, |s| {
        s.contains("agentlab top [Sandboxes 0]")
    });
    tmux.keys(&["!"]);
    let screen = tmux.exited(&d);
    assert!(
        screen.contains("TOP-EXITED-101"),
        "a panic exits 101: {screen}"
    );
    assert!(
        screen.contains("panic requested by AGENTLAB_TOP_TEST_PANIC"),
        "the panic message is printed on the restored screen: {screen}"
    );
    assert!(
        screen.lines().any(|l| l.trim() == "icanon"),
        "raw mode is off again: {screen}"
    );
    assert_eq!(tmux.var("alternate_on"), "0", "{screen}");
    assert_eq!(tmux.var("cursor_flag"), "1", "{screen}");
}

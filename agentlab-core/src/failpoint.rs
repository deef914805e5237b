//! Crash-test fail points (feature `failpoints`).
//!
//! [`crate::fail_point!`]`("provision:clone")` marks a place where the crash-matrix tests kill
//! the daemon. Without the feature the macro expands to nothing, so release builds carry no
//! hook at all. With it, the environment variable `AGENTLAB_FAILPOINTS` names the points that
//! fire: a comma-separated list of `name` or `name=action`, where the action is `kill` (the
//! default: the process sends itself SIGKILL, so no destructor, drop or shutdown code runs)
//! or `off`. The list is read once, at the first point reached.
//!
//! Names follow the engine's step names: `provision:<step>` before a provisioning step's
//! backend call and `provision:<step>:done` right after it, `job:<step>` for the guest's
//! calls, `artifact:<step>` for uploads, `destroy:<step>` for destruction and
//! `reconcile:<step>` for start-up recovery.

#[cfg(feature = "failpoints")]
use std::sync::OnceLock;

/// What a named point does when reached.
#[cfg(feature = "failpoints")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Kill,
    Off,
}

#[cfg(feature = "failpoints")]
fn points() -> &'static [(String, Action)] {
    static POINTS: OnceLock<Vec<(String, Action)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("AGENTLAB_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once('=') {
                Some((name, "off")) => (name.to_owned(), Action::Off),
                Some((name, _)) => (name.to_owned(), Action::Kill),
                None => (s.to_owned(), Action::Kill),
            })
            .collect()
    })
}

/// Reached a fail point: kills this process with SIGKILL when `name` is configured.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    let Some((_, action)) = points().iter().find(|(n, _)| n == name) else {
        return;
    };
    if *action == Action::Off {
        return;
    }
    eprintln!(
        "agentlab fail point {name}: killing process {}",
        std::process::id()
    );
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(std::process::id().to_string())
        .status();
    // `kill` is missing or failed: still die without running any cleanup.
    std::process::abort();
}

/// Marks a crash-test fail point named by a `&str` expression (compiled away without the
/// `failpoints` feature of the crate using it).
#[macro_export]
macro_rules! fail_point {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        {
            $crate::failpoint::hit(&$name);
        }
    };
}

//! Key presses → [`Action`]s of `agentlab top`. While a confirmation dialog is open only its
//! answers count, so a stray key never destroys anything.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key asks the UI to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Select the row above.
    Up,
    /// Select the row below.
    Down,
    /// Switch between the sandboxes and the jobs table.
    SwitchTab,
    /// Show or hide the detail pane.
    ToggleDetail,
    /// Follow (or stop following) the agent output of the selected job.
    Follow,
    /// Ask to destroy the selected sandbox.
    Destroy,
    /// Renew the selected sandbox's lease.
    Renew,
    /// Open a shell in the selected sandbox.
    Shell,
    /// Answer "yes" to the open confirmation.
    Yes,
    /// Answer "no" to the open confirmation.
    No,
    /// Leave `agentlab top`.
    Quit,
}

/// The footer's help line (79 columns: it fits an 80-column terminal; `d` and `Esc` are
/// aliases of `⏎` and `q`).
pub const HELP: &str =
    "↑↓/jk select  Tab switch  ⏎ detail  f logs  x destroy  r renew  s shell  q quit";

/// The action of `key`; `confirming` is true while a yes/no dialog is open.
pub fn map(key: KeyEvent, confirming: bool) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        // Raw mode delivers Ctrl-C as a key: it quits like q.
        return matches!(key.code, KeyCode::Char('c')).then_some(Action::Quit);
    }
    if confirming {
        return match key.code {
            KeyCode::Char('y' | 'Y') => Some(Action::Yes),
            KeyCode::Char('n' | 'N' | 'q') | KeyCode::Esc => Some(Action::No),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Tab | KeyCode::BackTab => Action::SwitchTab,
        KeyCode::Enter | KeyCode::Char('d') => Action::ToggleDetail,
        KeyCode::Char('f') => Action::Follow,
        KeyCode::Char('x') => Action::Destroy,
        KeyCode::Char('r') => Action::Renew,
        KeyCode::Char('s') => Action::Shell,
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        _ => return None,
    })
}

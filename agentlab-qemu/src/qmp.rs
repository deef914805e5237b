//! QMP over the sandbox's `qmp.sock` with the `qapi` crate: one short connection per call.

use std::path::Path;
use std::time::Duration;

use qapi::futures::QmpStreamTokio;
use qapi::qmp;

use crate::error::QemuError;

fn err(vmid: u32, message: impl std::fmt::Display) -> QemuError {
    QemuError::Protocol {
        channel: "QMP",
        vmid,
        message: message.to_string(),
    }
}

/// Connects, negotiates and runs `f` on the stream, all within `limit`.
macro_rules! with_qmp {
    ($sock:expr, $vmid:expr, $limit:expr, |$s:ident| $body:expr) => {
        tokio::time::timeout($limit, async {
            let neg = QmpStreamTokio::open_uds($sock)
                .await
                .map_err(|e| err($vmid, e))?;
            let mut $s = neg.negotiate().await.map_err(|e| err($vmid, e))?;
            $body
        })
        .await
        .map_err(|_| err($vmid, "no answer"))
        .and_then(|r| r)
    };
}

/// The VM's run state (`running`, `paused`, `internal-error`, `shutdown`, …).
pub(crate) async fn run_state(sock: &Path, vmid: u32) -> Result<String, QemuError> {
    with_qmp!(sock, vmid, Duration::from_secs(5), |s| {
        let info = s
            .execute(qmp::query_status {})
            .await
            .map_err(|e| err(vmid, e))?;
        let state = serde_json::to_value(info.status).map_err(|e| err(vmid, e))?;
        Ok(state.as_str().unwrap_or("unknown").to_owned())
    })
}

/// Presses the ACPI power button.
pub(crate) async fn powerdown(sock: &Path, vmid: u32) -> Result<(), QemuError> {
    with_qmp!(sock, vmid, Duration::from_secs(5), |s| {
        s.execute(qmp::system_powerdown {})
            .await
            .map(|_| ())
            .map_err(|e| err(vmid, e))
    })
}

/// Asks QEMU to exit at once (the answer may not arrive: the socket closes).
pub(crate) async fn quit(sock: &Path, vmid: u32) {
    let result: Result<(), QemuError> = with_qmp!(sock, vmid, Duration::from_secs(3), |s| {
        let _ = s.execute(qmp::quit {}).await;
        Ok(())
    });
    if let Err(e) = result {
        tracing::debug!(sandbox = vmid, error = %e, "QMP quit");
    }
}

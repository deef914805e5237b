//! One engine per data directory: [`HostLock`] holds an exclusive `flock` on
//! `<data_dir>/host.lock` for as long as a [`Host`](crate::Host) runs, so a second process on
//! the same state (an embedded program started while `agentlabd` runs, or two daemons) is
//! refused at start instead of racing the first one's leases, deadlines and recovery. The
//! kernel drops the lock when the process dies, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file's name inside `data_dir`.
pub const LOCK_FILE: &str = "host.lock";

/// Why the data directory's lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock.
    #[error(
        "{path} is locked by another AgentLab engine{}: only one daemon or embedded \
         program may use a data directory at a time (stop it first)",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, as it wrote it into the file.
        holder: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error("locking {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// An exclusive lock on a data directory, released on drop (or by the kernel at exit).
#[derive(Debug)]
pub struct HostLock {
    _flock: Flock<File>,
    path: PathBuf,
}

impl HostLock {
    /// Takes the lock on `data_dir` without waiting and writes this process's pid into it.
    pub fn acquire(data_dir: &Path) -> Result<HostLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut flock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Busy {
                    path,
                    holder: text.trim().parse().ok(),
                });
            }
            Err((_, e)) => return Err(io(std::io::Error::from(e))),
        };
        flock.set_len(0).map_err(io)?;
        flock.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(flock, "{}", std::process::id()).map_err(io)?;
        Ok(HostLock {
            _flock: flock,
            path,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = HostLock::acquire(dir.path()).unwrap();
        assert_eq!(first.path(), dir.path().join(LOCK_FILE));
        match HostLock::acquire(dir.path()) {
            Err(LockError::Busy { holder, path }) => {
                assert_eq!(holder, Some(std::process::id()));
                assert_eq!(path, dir.path().join(LOCK_FILE));
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        HostLock::acquire(dir.path()).expect("free again once dropped");
    }

    #[test]
    fn an_unwritable_directory_is_an_io_error() {
        let err = HostLock::acquire(Path::new("/nonexistent/agentlab")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err}");
    }
}

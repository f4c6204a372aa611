//! One hub per data dir (SPEC §1). Before the store opens, a hub takes an exclusive lock on
//! `<data dir>/switchboard.lock` and writes its pid there, then its URL once it listens. A second hub on the same
//! data dir cannot take the lock and is refused with the first one's pid and URL; the client commands, `mcp`'s
//! auto-start and the desktop app read that URL ([`running_hub`]) and attach instead. The operating system drops
//! the lock when the holder exits, however it exits, so a file left by a killed hub never blocks the next one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's name in the data dir.
pub const LOCK_FILE: &str = "switchboard.lock";

/// What the lock file says: who holds it, and where it listens (once it does).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The holder's process id.
    pub pid: u32,
    /// `http://ADDR` once it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live hub holds it.
    #[error("data dir {} is already in use by the hub pid {} at {}", .dir.display(), .held.pid,
        .held.url.as_deref().unwrap_or("an address it has not printed yet"))]
    Held {
        /// The data dir.
        dir: PathBuf,
        /// What the holder wrote.
        held: LockInfo,
    },
    /// The file could not be opened or locked.
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The data dir's lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    info: LockInfo,
}

fn read_info(file: &mut File) -> LockInfo {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    serde_json::from_str(&text).unwrap_or_default()
}

impl DataDirLock {
    /// Takes the lock on `dir` (creating the dir and the file as needed) and records this process's pid.
    ///
    /// # Errors
    /// [`LockError::Held`] when another process holds it; [`LockError::Io`] when it cannot be opened.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    held: read_info(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut lock = DataDirLock {
            file,
            info: LockInfo {
                pid: std::process::id(),
                url: None,
            },
        };
        lock.write().map_err(io)?;
        Ok(lock)
    }

    /// Records the URL the hub listens on, for whoever looks for it.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn set_url(&mut self, url: &str) -> std::io::Result<()> {
        self.info.url = Some(url.to_owned());
        self.write()
    }

    fn write(&mut self) -> std::io::Result<()> {
        let text = serde_json::to_string(&self.info).map_err(std::io::Error::other)?;
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }
}

/// The hub holding `dir`'s lock, if a live one does: what its lock file says.
pub fn running_hub(dir: &Path) -> Option<LockInfo> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .ok()?;
    match file.try_lock() {
        // Nobody holds it: a file left by a hub that is gone.
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(TryLockError::WouldBlock) => Some(read_info(&mut file)),
        Err(TryLockError::Error(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_dir_is_refused_with_the_first_holders_pid_and_url() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(running_hub(tmp.path()), None);
        let mut first = DataDirLock::acquire(tmp.path()).unwrap();
        first.set_url("http://127.0.0.1:4747").unwrap();
        let held = running_hub(tmp.path()).expect("held");
        assert_eq!(held.pid, std::process::id());
        assert_eq!(held.url.as_deref(), Some("http://127.0.0.1:4747"));
        let e = DataDirLock::acquire(tmp.path()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "data dir {} is already in use by the hub pid {} at http://127.0.0.1:4747",
                tmp.path().display(),
                std::process::id()
            )
        );
        drop(first);
        assert_eq!(running_hub(tmp.path()), None, "released on drop");
        assert!(DataDirLock::acquire(tmp.path()).is_ok());
    }
}

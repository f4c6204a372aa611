//! The file watcher's roots (`GET/POST/DELETE /api/watches`, the window): the owner's alone, since a root shows
//! a directory of this machine to every subscriber of `files`.

use std::path::Path;

use super::Caller;
use crate::error::{Error, Result};
use crate::store::Write;
use crate::watcher::{WatchInfo, canonical_dir};

fn owner_only() -> Error {
    Error::forbidden("the file watcher's roots are the hub owner's: present the hub token")
}

impl Caller {
    /// The roots.
    ///
    /// # Errors
    /// 403 unless the caller is the owner.
    pub fn watches(&self) -> Result<Vec<WatchInfo>> {
        if !self.principal.may_read_token() {
            return Err(owner_only());
        }
        Ok(self.hub.watcher().list())
    }

    /// Watches a directory from now on, and after restarts; `watch.added` on `files`. A root already watched is
    /// answered as it is (and started again if it had failed).
    ///
    /// # Errors
    /// 403 unless the caller is the owner; 422 when `path` is not a directory; `Internal` when the OS refuses.
    pub async fn add_watch(&self, path: &Path) -> Result<(WatchInfo, bool)> {
        if !self.principal.may_read_token() {
            return Err(owner_only());
        }
        let root = canonical_dir(path)?;
        let healthy = self
            .hub
            .watcher()
            .list()
            .into_iter()
            .find(|w| Path::new(&w.root) == root && w.error.is_none());
        if let Some(w) = healthy {
            return Ok((w, false));
        }
        let info = self.hub.watcher().add(&root, false).await?;
        let w = Write::Watch {
            root: info.root.clone(),
            add: true,
            keep: true,
            source: self.source,
        };
        if let Err(e) = self.hub.write(w).await {
            self.hub.watcher().remove(&root);
            return Err(e);
        }
        Ok((info, true))
    }

    /// Stops watching a root (for good, unless it comes from `--watch`); `watch.removed` on `files`.
    ///
    /// # Errors
    /// 403 unless the caller is the owner; 404 when it is not a root.
    pub async fn remove_watch(&self, path: &Path) -> Result<()> {
        if !self.principal.may_read_token() {
            return Err(owner_only());
        }
        // A root that vanished cannot be canonicalised: then it is named as listed.
        let root = canonical_dir(path).unwrap_or_else(|_| path.to_path_buf());
        if self.hub.watcher().pinned(&root).is_none() {
            return Err(Error::not_found(format!(
                "{} is not watched",
                root.display()
            )));
        }
        self.hub
            .write(Write::Watch {
                root: root.to_string_lossy().into_owned(),
                add: false,
                keep: true,
                source: self.source,
            })
            .await?;
        self.hub.watcher().remove(&root);
        Ok(())
    }
}

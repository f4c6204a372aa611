//! The file watcher (SPEC §9): directories whose changes become `file.created`, `file.changed` and
//! `file.removed` events `{root, path, kind}` on `files` (`path` relative to the root, `/`-separated; `kind` is
//! `file` or `dir`; a rename inside a root is a `file.removed` with `renamed_to` and a `file.created` with
//! `renamed_from`). Debounced by `notify-debouncer-full` (200 ms), so a burst of writes to one file is one event.
//!
//! Only directories that are not ignored are watched, one non-recursive watch each: `.git`, `node_modules`,
//! `target`, `dist`, `.next`, and what the root's `.gitignore` (and `.git/info/exclude`) ignore, read with the
//! `ignore` crate (nested `.gitignore` files apply to the directories found when watching starts or a directory is
//! created; the root's is read again when it changes). A directory created later is watched as it appears, and
//! what is already inside it is reported as created. A root that disappears, or an error from the OS, is a
//! `watch.error {root, message}` event, never a crash; a vanished root stops being watched until it is added again.
//!
//! Roots come from `--watch` (for this run) and from `Caller::add_watch` (kept in the database, so they outlive a
//! restart). Each notification batch is committed in one write, in the order the OS reported it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify_debouncer_full::notify::event::{ModifyKind, RemoveKind, RenameMode};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::hub::Hub;
use crate::model::{EventDraft, Source};
use crate::store::Write;

/// Where file events go.
pub const CHANNEL: &str = "files";

/// Directory names never watched, wherever they are.
pub const IGNORED_NAMES: &[&str] = &[".git", "node_modules", "target", "dist", ".next"];

const DEBOUNCE: Duration = Duration::from_millis(200);

/// A root, as `GET /api/watches` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct WatchInfo {
    /// The directory, absolute.
    pub root: String,
    /// From `--watch`: for this run only, not kept in the database.
    pub pinned: bool,
    /// Why it is not being watched now, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One watched root.
struct Root {
    pinned: bool,
    error: Option<String>,
    debouncer: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    /// Directories with a watch, so a removed or renamed one can be forgotten with what is under it.
    dirs: BTreeSet<PathBuf>,
    gitignore: Gitignore,
}

type Batch = (PathBuf, DebounceEventResult);

/// Every root and the queue their notifications go through, in order, to the task that publishes them.
#[derive(Default)]
pub(crate) struct Watcher {
    roots: Mutex<BTreeMap<PathBuf, Root>>,
    batches: Mutex<Option<mpsc::UnboundedSender<Batch>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn gitignore(root: &Path) -> Gitignore {
    let mut b = GitignoreBuilder::new(root);
    for f in [root.join(".gitignore"), root.join(".git/info/exclude")] {
        if f.is_file()
            && let Some(e) = b.add(&f)
        {
            tracing::debug!(error = %e, file = %f.display(), "a .gitignore line was skipped");
        }
    }
    b.build().unwrap_or_else(|_| Gitignore::empty())
}

/// `path` under `root`, `/`-separated, if it is under it.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl Root {
    fn ignored(&self, root: &Path, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(root) else {
            return true;
        };
        rel.components()
            .any(|c| IGNORED_NAMES.iter().any(|n| c.as_os_str() == *n))
            || self
                .gitignore
                .matched_path_or_any_parents(rel, is_dir)
                .is_ignore()
    }

    /// Watches `dir` and every directory under it that is not ignored; returns the files and directories found
    /// under it (not `dir` itself).
    fn watch_tree(&mut self, dir: &Path) -> Vec<(PathBuf, bool)> {
        let mut found = Vec::new();
        let walk = ignore::WalkBuilder::new(dir)
            .hidden(false)
            .git_global(false)
            .require_git(false)
            .filter_entry(|e| !IGNORED_NAMES.iter().any(|n| e.file_name() == *n))
            .build();
        for entry in walk.flatten() {
            let path = entry.path().to_path_buf();
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            if is_dir && let Some(d) = self.debouncer.as_mut() {
                if let Err(e) = d.watch(&path, RecursiveMode::NonRecursive) {
                    tracing::warn!(error = %e, dir = %path.display(), "cannot watch a directory");
                    continue;
                }
                self.dirs.insert(path.clone());
            }
            if path != dir {
                found.push((path, is_dir));
            }
        }
        found
    }

    /// Forgets the watches on `dir` and under it; true if it was a watched directory.
    fn forget(&mut self, dir: &Path) -> bool {
        let gone: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|d| d.starts_with(dir))
            .cloned()
            .collect();
        for d in &gone {
            self.dirs.remove(d);
            if let Some(w) = self.debouncer.as_mut() {
                let _ = w.unwatch(d);
            }
        }
        !gone.is_empty()
    }
}

fn file_event(
    event: &str,
    root: &Path,
    rel: String,
    is_dir: bool,
    extra: Option<(&str, String)>,
) -> EventDraft {
    let mut data = json!({
        "root": root.to_string_lossy(),
        "path": rel,
        "kind": if is_dir { "dir" } else { "file" },
    });
    if let (Some((k, v)), Some(o)) = (extra, data.as_object_mut()) {
        o.insert(k.into(), Value::String(v));
    }
    draft(event, data)
}

fn draft(event: &str, data: Value) -> EventDraft {
    EventDraft {
        channel: CHANNEL.into(),
        event: event.into(),
        data,
        source: Source::Watcher,
        except: None,
        replay_of: None,
    }
}

fn error_event(root: &Path, message: &str) -> EventDraft {
    draft(
        "watch.error",
        json!({"root": root.to_string_lossy(), "message": message}),
    )
}

impl Watcher {
    /// Starts the task that publishes what the roots report, and the roots: `pinned` ones (from `--watch`) and
    /// the `kept` ones from the database. The task ends when [`Watcher::stop`] has dropped every root.
    pub(crate) async fn start(hub: &Hub, pinned: &[PathBuf], kept: Vec<PathBuf>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
        *lock(&hub.watcher().batches) = Some(tx);
        // A weak handle: the task must not keep a hub alive that nobody else holds (one never shut down).
        let weak = hub.downgrade();
        tokio::spawn(async move {
            while let Some((root, result)) = rx.recv().await {
                let Some(h) = weak.upgrade() else { break };
                let drafts = h.watcher().translate(&root, result);
                if !drafts.is_empty()
                    && let Err(e) = h.write(Write::Publish(drafts)).await
                {
                    tracing::warn!(error = %e, "file events were not published");
                }
            }
        });
        for p in pinned {
            if let Err(e) = hub.watcher().add(p, true).await {
                tracing::warn!(error = %e, root = %p.display(), "cannot watch a --watch directory");
            }
        }
        for p in kept {
            if let Err(e) = hub.watcher().add(&p, false).await {
                tracing::warn!(error = %e, root = %p.display(), "cannot watch a kept directory");
            }
        }
    }

    /// Drops every watch and the queue, which ends the publishing task.
    pub(crate) fn stop(&self) {
        lock(&self.roots).clear();
        lock(&self.batches).take();
    }

    /// The roots.
    pub(crate) fn list(&self) -> Vec<WatchInfo> {
        lock(&self.roots)
            .iter()
            .map(|(p, r)| WatchInfo {
                root: p.to_string_lossy().into_owned(),
                pinned: r.pinned,
                error: r.error.clone(),
            })
            .collect()
    }

    /// Whether `root` (absolute, canonical) is a root, and whether it is a pinned one.
    pub(crate) fn pinned(&self, root: &Path) -> Option<bool> {
        lock(&self.roots).get(root).map(|r| r.pinned)
    }

    /// Watches `path` (made absolute and canonical). A root already there is started again if it had failed.
    ///
    /// # Errors
    /// 422 when `path` is not a directory; `Internal` when the OS refuses the watch.
    pub(crate) async fn add(&self, path: &Path, pinned: bool) -> Result<WatchInfo> {
        let root = canonical_dir(path)?;
        let tx = lock(&self.batches).clone().ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "shutting_down",
                "the hub is shutting down",
            )
        })?;
        let for_handler = root.clone();
        let debouncer = new_debouncer(DEBOUNCE, None, move |r: DebounceEventResult| {
            let _ = tx.send((for_handler.clone(), r));
        })
        .map_err(|e| Error::internal(format_args!("cannot start watching: {e}")))?;
        let mut r = Root {
            pinned,
            error: None,
            debouncer: Some(debouncer),
            dirs: BTreeSet::new(),
            gitignore: gitignore(&root),
        };
        let root2 = root.clone();
        // Walking a big tree is blocking work.
        let r = tokio::task::spawn_blocking(move || {
            r.watch_tree(&root2);
            r
        })
        .await
        .map_err(Error::internal)?;
        if r.dirs.is_empty() {
            return Err(Error::internal(format_args!(
                "cannot watch {}: the OS refused (see the log)",
                root.display()
            )));
        }
        let info = WatchInfo {
            root: root.to_string_lossy().into_owned(),
            pinned,
            error: None,
        };
        let mut roots = lock(&self.roots);
        let pinned = roots.get(&root).is_some_and(|old| old.pinned) || pinned;
        roots.insert(root, Root { pinned, ..r });
        Ok(WatchInfo { pinned, ..info })
    }

    /// Stops watching `root`; false if it was not a root.
    pub(crate) fn remove(&self, root: &Path) -> bool {
        lock(&self.roots).remove(root).is_some()
    }

    /// One notification batch of `root` as events, keeping the watches in step (new directories watched, removed
    /// ones forgotten). A root that is gone ends its watch with `watch.error`.
    fn translate(&self, root: &Path, result: DebounceEventResult) -> Vec<EventDraft> {
        let mut roots = lock(&self.roots);
        let Some(r) = roots.get_mut(root) else {
            return Vec::new();
        };
        if r.debouncer.is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let events = match result {
            Ok(events) => events,
            Err(errors) => {
                for e in errors {
                    out.push(error_event(root, &e.to_string()));
                }
                Vec::new()
            }
        };
        for ev in events {
            let paths = &ev.event.paths;
            match ev.event.kind {
                EventKind::Create(_) => {
                    for p in paths {
                        out.extend(created(r, root, p, None, true));
                    }
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if paths.len() == 2 => {
                    let (from, to) = (&paths[0], &paths[1]);
                    let to_rel = relative(root, to).filter(|_| !r.ignored(root, to, to.is_dir()));
                    let was_dir = r.forget(from);
                    if let Some(rel) =
                        relative(root, from).filter(|_| !r.ignored(root, from, was_dir))
                    {
                        let extra = to_rel.clone().map(|t| ("renamed_to", t));
                        out.push(file_event("file.removed", root, rel, was_dir, extra));
                    }
                    let from_rel = relative(root, from);
                    out.extend(created(
                        r,
                        root,
                        to,
                        from_rel.map(|f| ("renamed_from", f)),
                        false,
                    ));
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                    for p in paths {
                        out.extend(created(r, root, p, None, false));
                    }
                }
                EventKind::Modify(ModifyKind::Name(_)) => {
                    for p in paths {
                        if p.exists() {
                            out.extend(created(r, root, p, None, false));
                        } else {
                            out.extend(removed(r, root, p, false));
                        }
                    }
                }
                EventKind::Modify(ModifyKind::Metadata(_)) => {}
                EventKind::Modify(_) => {
                    for p in paths {
                        if p.is_file() && !r.ignored(root, p, false) {
                            if p.file_name().is_some_and(|n| n == ".gitignore")
                                && p.parent() == Some(root)
                            {
                                r.gitignore = gitignore(root);
                            }
                            if let Some(rel) = relative(root, p) {
                                out.push(file_event("file.changed", root, rel, false, None));
                            }
                        }
                    }
                }
                EventKind::Remove(k) => {
                    for p in paths {
                        out.extend(removed(r, root, p, k == RemoveKind::Folder));
                    }
                }
                _ => {}
            }
        }
        if !root.is_dir() {
            out.push(error_event(root, "the directory is gone; watching stopped"));
            r.debouncer = None;
            r.dirs.clear();
            r.error = Some("the directory is gone".into());
        }
        out
    }
}

/// `file.created` for `p` (unless ignored); for a directory, it is watched, and with `contents` what is already
/// in it is reported too (it was made before the watch).
fn created(
    r: &mut Root,
    root: &Path,
    p: &Path,
    extra: Option<(&str, String)>,
    contents: bool,
) -> Vec<EventDraft> {
    let is_dir = p.is_dir();
    let Some(rel) = relative(root, p) else {
        return Vec::new();
    };
    if r.ignored(root, p, is_dir) {
        return Vec::new();
    }
    if p.file_name().is_some_and(|n| n == ".gitignore") && p.parent() == Some(root) {
        r.gitignore = gitignore(root);
    }
    let mut out = vec![file_event("file.created", root, rel, is_dir, extra)];
    if is_dir {
        for (q, q_dir) in r.watch_tree(p) {
            if contents
                && !r.ignored(root, &q, q_dir)
                && let Some(rel) = relative(root, &q)
            {
                out.push(file_event("file.created", root, rel, q_dir, None));
            }
        }
    }
    out
}

fn removed(r: &mut Root, root: &Path, p: &Path, folder: bool) -> Vec<EventDraft> {
    let was_dir = r.forget(p) || folder;
    match relative(root, p) {
        Some(rel) if !r.ignored(root, p, was_dir) => {
            vec![file_event("file.removed", root, rel, was_dir, None)]
        }
        _ => Vec::new(),
    }
}

/// `path` made absolute and canonical, if it is a directory.
///
/// # Errors
/// 422 naming `path` otherwise.
pub(crate) fn canonical_dir(path: &Path) -> Result<PathBuf> {
    let p = std::fs::canonicalize(path)
        .map_err(|e| Error::invalid("path", format_args!("{}: {e}", path.display())))?;
    if !p.is_dir() {
        return Err(Error::invalid(
            "path",
            format_args!("{} is not a directory", p.display()),
        ));
    }
    Ok(p)
}

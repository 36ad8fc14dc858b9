//! A plan-time view of a host "as if" earlier changes had been made.
//!
//! `plan` must never write to the target, yet each resource has to be planned
//! against the state the earlier resources would leave (Ansible's check mode
//! fails exactly there). The overlay answers reads from the changes simulated
//! so far and falls through to the real host for everything else.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{Attrs, Cmd, Digest, FileKind, Host, HostError, HostLock, HostResult, Meta, Output};

#[derive(Clone, Debug)]
enum Content {
    /// Unchanged: read it from the real host.
    Real,
    Bytes(Vec<u8>),
    /// Made by a command that has not run: exists, content unknown.
    Unknown,
}

#[derive(Clone, Debug)]
enum Entry {
    Gone,
    /// `fresh`: a directory the simulation created, so nothing beneath it
    /// exists on the real host.
    Present {
        meta: Meta,
        content: Content,
        fresh: bool,
    },
}

pub struct Overlay<'h> {
    inner: &'h dyn Host,
    entries: Mutex<BTreeMap<PathBuf, Entry>>,
    /// Owner and group a new path gets: whoever fixer runs as.
    creator: (u32, u32),
}

fn unsupported(op: &'static str, path: &Path) -> HostError {
    HostError::new(
        op,
        path,
        io::Error::new(io::ErrorKind::Unsupported, "not available while planning"),
    )
}

fn not_found(op: &'static str, path: &Path) -> HostError {
    HostError::new(op, path, io::Error::from(io::ErrorKind::NotFound))
}

impl<'h> Overlay<'h> {
    pub fn new(inner: &'h dyn Host) -> Self {
        Overlay {
            inner,
            entries: Mutex::new(BTreeMap::new()),
            creator: (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            ),
        }
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<PathBuf, Entry>> {
        // A poisoned map only means another planning thread panicked; the
        // data is still a consistent map.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry deciding what `path` is: its own, or `Gone` when an ancestor
    /// was removed or freshly created; `None` means "ask the real host".
    fn lookup(map: &BTreeMap<PathBuf, Entry>, path: &Path) -> Option<Entry> {
        if let Some(e) = map.get(path) {
            return Some(e.clone());
        }
        for anc in path.ancestors().skip(1) {
            match map.get(anc) {
                Some(Entry::Gone) | Some(Entry::Present { fresh: true, .. }) => {
                    return Some(Entry::Gone)
                }
                Some(_) => return None,
                None => {}
            }
        }
        None
    }

    fn clear_below(map: &mut BTreeMap<PathBuf, Entry>, path: &Path) {
        let below: Vec<PathBuf> = map
            .range(path.to_path_buf()..)
            .take_while(|(k, _)| k.starts_with(path))
            .filter(|(k, _)| k.as_path() != path)
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            map.remove(&k);
        }
    }

    /// Make every missing ancestor of `path` exist as a new directory.
    fn ensure_parents(&self, path: &Path) -> HostResult<()> {
        let missing: Vec<PathBuf> = {
            let mut v = Vec::new();
            for anc in path.ancestors().skip(1) {
                if self.stat(anc)?.is_some() {
                    break;
                }
                v.push(anc.to_path_buf());
            }
            v
        };
        let mut map = self.entries();
        for dir in missing.into_iter().rev() {
            Self::clear_below(&mut map, &dir);
            map.insert(
                dir,
                Entry::Present {
                    meta: Meta {
                        kind: FileKind::Dir,
                        mode: 0o755,
                        uid: self.creator.0,
                        gid: self.creator.1,
                        size: 0,
                    },
                    content: Content::Real,
                    fresh: true,
                },
            );
        }
        Ok(())
    }

    /// Record that a command would create `path` with content we cannot know.
    pub fn assume_created(&self, path: &Path) -> HostResult<()> {
        if self.stat(path)?.is_some() {
            return Ok(());
        }
        self.ensure_parents(path)?;
        self.entries().insert(
            path.to_path_buf(),
            Entry::Present {
                meta: Meta {
                    kind: FileKind::File,
                    mode: 0o644,
                    uid: self.creator.0,
                    gid: self.creator.1,
                    size: 0,
                },
                content: Content::Unknown,
                fresh: false,
            },
        );
        Ok(())
    }

    /// Simulate removing `path` and everything beneath it.
    pub fn remove_tree(&self, path: &Path) {
        let mut map = self.entries();
        Self::clear_below(&mut map, path);
        map.insert(path.to_path_buf(), Entry::Gone);
    }

    fn set_meta(&self, path: &Path, f: impl FnOnce(&mut Meta)) -> HostResult<()> {
        let mut meta = self.stat(path)?.ok_or_else(|| not_found("chmod", path))?;
        f(&mut meta);
        let mut map = self.entries();
        let (content, fresh) = match map.get(path) {
            Some(Entry::Present { content, fresh, .. }) => (content.clone(), *fresh),
            _ => (Content::Real, false),
        };
        map.insert(
            path.to_path_buf(),
            Entry::Present {
                meta,
                content,
                fresh,
            },
        );
        Ok(())
    }
}

impl Host for Overlay<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn home(&self) -> HostResult<PathBuf> {
        self.inner.home()
    }

    fn var(&self, name: &str) -> HostResult<Option<String>> {
        self.inner.var(name)
    }

    fn prefetch(&self, paths: &[PathBuf]) -> HostResult<()> {
        self.inner.prefetch(paths)
    }

    fn stat(&self, path: &Path) -> HostResult<Option<Meta>> {
        let found = Self::lookup(&self.entries(), path);
        match found {
            Some(Entry::Gone) => Ok(None),
            Some(Entry::Present { meta, .. }) => Ok(Some(meta)),
            None => self.inner.stat(path),
        }
    }

    fn read(&self, path: &Path) -> HostResult<Vec<u8>> {
        let found = Self::lookup(&self.entries(), path);
        match found {
            Some(Entry::Gone) => Err(not_found("read", path)),
            Some(Entry::Present {
                content: Content::Bytes(b),
                ..
            }) => Ok(b),
            Some(Entry::Present {
                content: Content::Unknown,
                ..
            }) => Err(HostError::new(
                "read",
                path,
                io::Error::other(
                    "an earlier command would create it; its content is unknown until apply",
                ),
            )),
            Some(Entry::Present { .. }) | None => self.inner.read(path),
        }
    }

    fn digest(&self, path: &Path) -> HostResult<Digest> {
        match Self::lookup(&self.entries(), path) {
            Some(Entry::Present {
                content: Content::Bytes(b),
                ..
            }) => Ok(Digest::of(&b)),
            Some(
                Entry::Gone
                | Entry::Present {
                    content: Content::Unknown,
                    ..
                },
            ) => self.read(path).map(|b| Digest::of(&b)),
            Some(Entry::Present { .. }) | None => self.inner.digest(path),
        }
    }

    fn list(&self, dir: &Path) -> HostResult<Vec<String>> {
        let entry = Self::lookup(&self.entries(), dir);
        let mut names = match entry {
            Some(Entry::Gone) => return Err(not_found("list", dir)),
            Some(Entry::Present { fresh: true, .. }) => Vec::new(),
            _ => self.inner.list(dir)?,
        };
        let map = self.entries();
        for (k, e) in map
            .range(dir.to_path_buf()..)
            .take_while(|(k, _)| k.starts_with(dir))
        {
            if k.parent() != Some(dir) {
                continue;
            }
            let Some(name) = k.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            match e {
                Entry::Gone => names.retain(|n| *n != name),
                Entry::Present { .. } => {
                    if !names.contains(&name) {
                        names.push(name)
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn write(&self, path: &Path, content: &[u8], attrs: Attrs) -> HostResult<()> {
        self.ensure_parents(path)?;
        let existing = self.stat(path)?;
        let meta = Meta {
            kind: FileKind::File,
            mode: attrs.mode.or(existing.map(|m| m.mode)).unwrap_or(0o644),
            uid: attrs
                .uid
                .or(existing.map(|m| m.uid))
                .unwrap_or(self.creator.0),
            gid: attrs
                .gid
                .or(existing.map(|m| m.gid))
                .unwrap_or(self.creator.1),
            size: content.len() as u64,
        };
        let mut map = self.entries();
        Self::clear_below(&mut map, path);
        map.insert(
            path.to_path_buf(),
            Entry::Present {
                meta,
                content: Content::Bytes(content.to_vec()),
                fresh: false,
            },
        );
        Ok(())
    }

    fn append(&self, path: &Path, _content: &[u8]) -> HostResult<()> {
        Err(unsupported("append to", path))
    }

    // Backups and restores only: a plan never copies.
    fn copy(&self, _from: &Path, to: &Path, _attrs: Attrs) -> HostResult<()> {
        Err(unsupported("copy to", to))
    }

    fn mkdir(&self, path: &Path, mode: u32) -> HostResult<()> {
        self.ensure_parents(path)?;
        let mut map = self.entries();
        Self::clear_below(&mut map, path);
        map.insert(
            path.to_path_buf(),
            Entry::Present {
                meta: Meta {
                    kind: FileKind::Dir,
                    mode,
                    uid: self.creator.0,
                    gid: self.creator.1,
                    size: 0,
                },
                content: Content::Real,
                fresh: true,
            },
        );
        Ok(())
    }

    fn chmod(&self, path: &Path, mode: u32) -> HostResult<()> {
        self.set_meta(path, |m| m.mode = mode)
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> HostResult<()> {
        self.set_meta(path, |m| {
            if let Some(u) = uid {
                m.uid = u;
            }
            if let Some(g) = gid {
                m.gid = g;
            }
        })
    }

    fn remove(&self, path: &Path) -> HostResult<()> {
        self.remove_tree(path);
        Ok(())
    }

    fn rename(&self, from: &Path, _to: &Path) -> HostResult<()> {
        Err(unsupported("move", from))
    }

    /// Guards (`unless`, `only_if`) are read-only checks and run for real.
    fn run(&self, cmd: &Cmd) -> HostResult<Output> {
        self.inner.run(cmd)
    }

    fn connect(
        &self,
        host: &str,
        port: u16,
        timeout: std::time::Duration,
    ) -> HostResult<std::time::Duration> {
        self.inner.connect(host, port, timeout)
    }

    fn resolve(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> HostResult<Vec<std::net::IpAddr>> {
        self.inner.resolve(name, timeout)
    }

    fn scratch(&self) -> HostResult<Box<dyn super::Scratch>> {
        self.inner.scratch()
    }

    fn lock(&self, path: &Path) -> HostResult<Box<dyn HostLock>> {
        Err(unsupported("lock", path))
    }

    fn lock_held(&self, path: &Path) -> HostResult<bool> {
        self.inner.lock_held(path)
    }

    fn user_id(&self, name: &str) -> HostResult<Option<u32>> {
        self.inner.user_id(name)
    }

    fn group_id(&self, name: &str) -> HostResult<Option<u32>> {
        self.inner.group_id(name)
    }

    fn user_name(&self, uid: u32) -> HostResult<Option<String>> {
        self.inner.user_name(uid)
    }

    fn group_name(&self, gid: u32) -> HostResult<Option<String>> {
        self.inner.group_name(gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::LocalHost;

    #[test]
    fn overlay_sees_simulated_writes_and_removals_without_touching_disk() -> HostResult<()> {
        let dir = tempfile::tempdir().map_err(|e| HostError::new("tempdir", Path::new("/"), e))?;
        let host = LocalHost::new(Some(dir.path().to_path_buf()));
        std::fs::create_dir_all(dir.path().join("old/sub"))
            .map_err(|e| HostError::new("t", dir.path(), e))?;
        std::fs::write(dir.path().join("old/sub/f"), b"x")
            .map_err(|e| HostError::new("t", dir.path(), e))?;
        let o = Overlay::new(&host);

        o.write(Path::new("/new/a/b.txt"), b"hello", Attrs::default())?;
        assert_eq!(o.read(Path::new("/new/a/b.txt"))?, b"hello");
        assert_eq!(
            o.stat(Path::new("/new/a"))?.map(|m| m.kind),
            Some(FileKind::Dir)
        );
        assert_eq!(o.list(Path::new("/"))?, vec!["new", "old"]);

        o.remove_tree(Path::new("/old"));
        assert!(o.stat(Path::new("/old/sub/f"))?.is_none());
        // Re-created after removal: the old children stay gone.
        o.write(Path::new("/old/other"), b"y", Attrs::default())?;
        assert_eq!(o.list(Path::new("/old"))?, vec!["other"]);
        assert!(o.stat(Path::new("/old/sub"))?.is_none());

        o.chmod(Path::new("/new/a/b.txt"), 0o600)?;
        assert_eq!(
            o.stat(Path::new("/new/a/b.txt"))?.map(|m| m.mode),
            Some(0o600)
        );
        assert_eq!(o.read(Path::new("/new/a/b.txt"))?, b"hello");

        // Nothing reached the disk.
        assert!(!dir.path().join("new").exists());
        assert!(dir.path().join("old/sub/f").exists());
        Ok(())
    }
}

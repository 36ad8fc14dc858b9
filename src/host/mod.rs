//! The machine fixer acts on.
//!
//! `Host` is the only way the engine touches a target: planner, executor,
//! journal and resources all go through it, so the same code runs on the
//! local machine, on a `--root` image and (later) over SSH. Every path given
//! to a `Host` is a path *on the target*; mapping it (for `--root`) is the
//! host's business, never the caller's.

pub mod conformance;
mod local;
mod overlay;
mod resolve;
pub mod shell;
mod ssh;
mod ssh_changes;
pub mod ssh_config;
pub mod walk;

pub use local::LocalHost;
pub use overlay::Overlay;
pub use ssh::{known_hosts_entry, ConnectError, SshHost, SshOptions};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What kind of filesystem object a path is. Symlinks are never followed by
/// `stat`, so a link is reported as a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The attributes of a path that fixer manages and restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub kind: FileKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

/// What identifies a file's content without holding it: its size, line
/// count and SHA-256, computed as the bytes stream past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    /// Lines as a diff counts them: a last line without a newline counts.
    pub lines: u64,
    pub sha256: [u8; 32],
}

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        let mut d = Digester::default();
        d.update(bytes);
        d.finish()
    }

    pub fn hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A [`Digest`] being computed, chunk by chunk.
#[derive(Default)]
pub struct Digester {
    sha: sha2::Sha256,
    size: u64,
    newlines: u64,
    last: Option<u8>,
}

impl Digester {
    pub fn update(&mut self, chunk: &[u8]) {
        use sha2::Digest as _;
        self.sha.update(chunk);
        self.size += chunk.len() as u64;
        self.newlines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if let Some(b) = chunk.last() {
            self.last = Some(*b);
        }
    }

    pub fn finish(self) -> Digest {
        use sha2::Digest as _;
        Digest {
            size: self.size,
            lines: self.newlines + u64::from(self.last.is_some_and(|b| b != b'\n')),
            sha256: self.sha.finalize().into(),
        }
    }
}

/// Attributes a write or mkdir should set; `None` keeps what is there (or the
/// default for a new path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Attrs {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.uid.is_none() && self.gid.is_none()
    }
}

/// A command to run on the target: an argv vector, never a shell line built
/// by fixer. A user's own shell line arrives as `["/bin/sh", "-c", line]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cmd {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory, a target path.
    pub cwd: Option<PathBuf>,
    /// Kill the command after this many seconds (a `go` stuck on a
    /// firewalled proxy must not hang a plan forever).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// What the command can change, when fixer knows (its own watchdog
    /// changes only its run folder): a host that caches what it observed
    /// forgets only this path; `None` means anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_only: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when the command was killed by a signal.
    pub code: Option<i32>,
    /// Killed because it ran past `Cmd::timeout_secs`.
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A failed host operation, naming the operation and the target path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", path.display())]
pub struct HostError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl HostError {
    pub fn new(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        HostError {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}

pub type HostResult<T> = Result<T, HostError>;

/// A temporary directory on the target for commands to work in; removed
/// when dropped. Its path is as the host's *commands* see it (argv), which
/// under `--root` is not a path inside the root.
pub trait Scratch: Send {
    fn path(&self) -> &Path;
    /// Write `name` (a relative path; missing directories are created).
    fn write(&self, name: &str, content: &[u8]) -> HostResult<()>;
    /// `None` when the file does not exist.
    fn read(&self, name: &str) -> HostResult<Option<Vec<u8>>>;
}

/// An exclusive lock held on the target until dropped (or until the process
/// holding it dies, so a killed apply never leaves a stale lock behind).
pub trait HostLock: Send {}

/// A target machine. Implementations: [`LocalHost`] (optionally rooted at a
/// directory), [`SshHost`], [`Overlay`] (a plan-time simulation on top of another host).
///
/// Contract every implementation keeps:
/// - `stat` does not follow symlinks and returns `Ok(None)` for a missing path;
/// - `write` is atomic: readers see the old or the new content, never a mix
///   (temp file in the same directory, fsync, rename, fsync of the directory),
///   and keeps the existing mode and owner unless `attrs` sets them;
/// - `append` returns only once the bytes are durable (journals rely on it);
/// - `list` returns entry names sorted, without `.` and `..`.
pub trait Host: Send + Sync {
    /// Human name for messages: `localhost`, `localhost (root /mnt/img)`.
    fn name(&self) -> String;
    /// Home directory of the user fixer acts as on the target (a target path).
    fn home(&self) -> HostResult<PathBuf>;
    /// An environment variable of the user fixer acts as on the target.
    fn var(&self, name: &str) -> HostResult<Option<String>>;
    /// A hint: these paths are about to be observed. A host where each
    /// observation costs a network round trip fetches them all at once.
    fn prefetch(&self, _paths: &[PathBuf]) -> HostResult<()> {
        Ok(())
    }
    fn stat(&self, path: &Path) -> HostResult<Option<Meta>>;
    fn read(&self, path: &Path) -> HostResult<Vec<u8>>;
    /// What identifies the regular file at `path`, read as a stream (on a
    /// remote host, computed there): memory does not grow with the file.
    fn digest(&self, path: &Path) -> HostResult<Digest>;
    fn list(&self, dir: &Path) -> HostResult<Vec<String>>;
    fn write(&self, path: &Path, content: &[u8], attrs: Attrs) -> HostResult<()>;
    /// Copy the regular file `from` to `to` as [`Host::write`] writes
    /// (atomic and durable; `attrs` as there), the bytes streaming on the
    /// host itself: backups and restores of large files cost no memory.
    fn copy(&self, from: &Path, to: &Path, attrs: Attrs) -> HostResult<()>;
    fn append(&self, path: &Path, content: &[u8]) -> HostResult<()>;
    /// Several appends, each durable before this returns (one round trip
    /// on a remote host).
    fn append_all(&self, items: &[(PathBuf, Vec<u8>)]) -> HostResult<()> {
        for (path, content) in items {
            self.append(path, content)?;
        }
        Ok(())
    }
    /// While `on`, changes may be queued and sent together (one round trip
    /// on a remote host), in order; the error of a queued change surfaces
    /// at the next observation or command, or at the next `batch` call:
    /// either value sends what is queued first (`batch(true)` to settle
    /// and keep batching). After a failed change, the ones queued behind
    /// it are dropped. A host without round trips does nothing.
    fn batch(&self, _on: bool) -> HostResult<()> {
        Ok(())
    }
    /// Whether [`Host::batch`] queues anything here.
    fn batches(&self) -> bool {
        false
    }
    /// Whether the user fixer acts as may write the existing `path` (for
    /// a directory: make and remove entries in it), so that `plan` can
    /// warn of what `apply` could not do. `None`: this host cannot tell.
    fn may_write(&self, _path: &Path) -> HostResult<Option<bool>> {
        Ok(None)
    }
    /// Create one directory (the parent must exist).
    fn mkdir(&self, path: &Path, mode: u32) -> HostResult<()>;
    fn chmod(&self, path: &Path, mode: u32) -> HostResult<()>;
    /// Change owner and/or group without following a final symlink.
    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> HostResult<()>;
    /// Remove a file, a symlink or an empty directory.
    fn remove(&self, path: &Path) -> HostResult<()>;
    fn rename(&self, from: &Path, to: &Path) -> HostResult<()>;
    fn run(&self, cmd: &Cmd) -> HostResult<Output>;
    /// Open (then close) a TCP connection *from the target*; how long it took.
    fn connect(
        &self,
        host: &str,
        port: u16,
        timeout: std::time::Duration,
    ) -> HostResult<std::time::Duration>;
    /// Resolve a name with the target's resolver.
    fn resolve(
        &self,
        name: &str,
        timeout: std::time::Duration,
    ) -> HostResult<Vec<std::net::IpAddr>>;
    /// A fresh scratch directory for commands (see [`Scratch`]).
    fn scratch(&self) -> HostResult<Box<dyn Scratch>>;
    /// Take the exclusive lock at `path` (created if missing) without
    /// waiting; `ErrorKind::WouldBlock` when another process holds it.
    fn lock(&self, path: &Path) -> HostResult<Box<dyn HostLock>>;
    /// Whether some process holds the lock at `path`; never creates it.
    fn lock_held(&self, path: &Path) -> HostResult<bool>;
    /// Resolve a user name on the target (`None` when it has no such user).
    fn user_id(&self, name: &str) -> HostResult<Option<u32>>;
    fn group_id(&self, name: &str) -> HostResult<Option<u32>>;
    /// The name of a user id on the target (`None` when it has none).
    fn user_name(&self, uid: u32) -> HostResult<Option<String>>;
    fn group_name(&self, gid: u32) -> HostResult<Option<String>>;
}

/// Attach the host's name to a host error, turning it into the library error.
pub trait OnHost<T> {
    fn on(self, host: &dyn Host) -> Result<T, crate::error::Error>;
}

impl<T> OnHost<T> for HostResult<T> {
    fn on(self, host: &dyn Host) -> Result<T, crate::error::Error> {
        self.map_err(|e| crate::error::Error::host(host, e))
    }
}

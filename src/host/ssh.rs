//! A remote machine over SSH (ssh2/libssh2).
//!
//! Every operation is an exec request running a fixed POSIX sh script (see
//! [`super::shell`]) that receives its values as quoted positional
//! parameters. Exec rather than SFTP because `--become` needs every file
//! operation to go through `sudo -n` (an SFTP subsystem runs as the login
//! user), because SFTP v3 (OpenSSH) cannot rename over an existing file,
//! which an atomic write needs, and because one exec can observe many
//! paths at once.
//!
//! Round trips are the cost that matters on a remote host, so observations
//! are cached: [`Host::prefetch`] fetches the metadata and content of every
//! path a playbook declares in one exec, a directory listing brings the
//! metadata of its entries, and a miss fetches the missed path together with
//! every declared path not in the cache. Any change through this host
//! invalidates what it touched; running a command invalidates everything.
//! Changes are steps of one script; while batching, they queue and go out
//! together (`ssh_changes`).
//!
//! Requirements on the target: a POSIX `sh`, GNU coreutils and findutils
//! (`stat -c`, `sync FILE`, `mv -T`, `find -printf`, `base64`, `timeout`),
//! `flock` and `setsid`; `sudo` for `--become`. Any Debian, Ubuntu, RHEL or SUSE has
//! them.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ssh2::{CheckResult, HostKeyType, KnownHostFileKind, Session};

use super::shell::{command_line, quote, script_line, CHASE};
use super::ssh_changes::{self, Queue, Step};
use super::ssh_config::{HostKeyPolicy, Target};
use super::{
    Attrs, Cmd, Digest, FileKind, Host, HostError, HostLock, HostResult, Meta, Output, Scratch,
};

/// How a connection is made and used, beyond what [`Target`] says.
#[derive(Clone, Debug, Default)]
pub struct SshOptions {
    /// Record unknown host keys instead of refusing them.
    pub accept_new_host_keys: bool,
    /// Act as root through `sudo -n` (never prompts).
    pub become_root: bool,
}

/// Why a connection could not be made; rendered as OpenSSH users expect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("SSH handshake with {addr} failed: {message}")]
    Handshake { addr: String, message: String },
    #[error(
        "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! The {kind} host key for {entry} is \
         now {fingerprint}, which is not the key recorded in {files}. Someone could be \
         eavesdropping on you right now (man-in-the-middle attack), or the host key has just \
         been changed. Host key verification failed. If the change is expected, remove the old \
         key with `ssh-keygen -R '{entry}'`."
    )]
    HostKeyChanged {
        kind: String,
        entry: String,
        fingerprint: String,
        files: String,
    },
    #[error(
        "No {kind} host key is known for {entry} (fingerprint {fingerprint}) in {files}. Host \
         key verification failed. Check the fingerprint, then add the key (ssh-keyscan) or run \
         again with --accept-new-host-keys."
    )]
    HostKeyUnknown {
        kind: String,
        entry: String,
        fingerprint: String,
        files: String,
    },
    #[error("cannot record the host key of {entry} in {}: {source}", path.display())]
    RecordHostKey {
        entry: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{user}@{addr}: Permission denied (publickey); tried {tried}")]
    AuthFailed {
        user: String,
        addr: String,
        tried: String,
    },
    #[error("{addr}: {message}")]
    Setup { addr: String, message: String },
}

impl ConnectError {
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            ConnectError::Unreachable { source, .. } => source.kind(),
            ConnectError::AuthFailed { .. }
            | ConnectError::HostKeyChanged { .. }
            | ConnectError::HostKeyUnknown { .. } => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        }
    }
}

/// The SSH session and what all its users share.
struct Conn {
    session: Session,
    /// A second handle on the session's socket, to wait for it to be
    /// readable while libssh2 is non-blocking.
    socket: TcpStream,
    become_root: bool,
    /// Exec requests made: each costs a few pipelined round trips.
    execs: AtomicUsize,
    /// ssh2 sessions are not safe to drive from two threads at once.
    busy: Mutex<()>,
}

struct Exit {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Exit {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The script's failure as an io::Error, its kind read from the message
    /// the tools print in the C locale.
    fn error(&self) -> io::Error {
        let text = String::from_utf8_lossy(&self.stderr).trim().to_string();
        let text = if text.is_empty() {
            format!("exit status {:?}", self.code)
        } else {
            text
        };
        io::Error::new(error_kind(&text), text)
    }
}

fn error_kind(text: &str) -> io::ErrorKind {
    let table = [
        ("No such file or directory", io::ErrorKind::NotFound),
        ("Permission denied", io::ErrorKind::PermissionDenied),
        ("Operation not permitted", io::ErrorKind::PermissionDenied),
        ("Directory not empty", io::ErrorKind::DirectoryNotEmpty),
        ("File exists", io::ErrorKind::AlreadyExists),
        ("Not a directory", io::ErrorKind::NotADirectory),
        ("Is a directory", io::ErrorKind::IsADirectory),
        ("Read-only file system", io::ErrorKind::ReadOnlyFilesystem),
        ("No space left on device", io::ErrorKind::StorageFull),
        ("a password is required", io::ErrorKind::PermissionDenied),
    ];
    table
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map_or(io::ErrorKind::Other, |(_, k)| *k)
}

fn ssh_err(e: ssh2::Error) -> io::Error {
    io::Error::from(e)
}

impl Conn {
    fn wrap(&self, line: &str) -> String {
        if self.become_root {
            format!("sudo -n -H -- sh -c {}", quote(line))
        } else {
            line.to_string()
        }
    }

    /// Run a command line, feeding `stdin`, collecting both outputs until
    /// the command exits. `limit` bounds the wait (a dead connection is
    /// also detected by TCP keepalive).
    fn exec(&self, line: &str, stdin: &[u8], limit: Option<Duration>) -> io::Result<Exit> {
        let _busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        self.execs.fetch_add(1, Ordering::Relaxed);
        let mut ch = self.session.channel_session().map_err(ssh_err)?;
        ch.exec(&self.wrap(line)).map_err(ssh_err)?;
        if !stdin.is_empty() {
            ch.write_all(stdin)?;
        }
        ch.send_eof().map_err(ssh_err)?;
        // Both streams are drained together: a command that fills its
        // stderr window while we wait on stdout would otherwise hang.
        self.session.set_blocking(false);
        let drained = (|| -> io::Result<(Vec<u8>, Vec<u8>)> {
            let started = Instant::now();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (mut out_done, mut err_done) = (false, false);
            let mut buf = vec![0u8; 64 * 1024];
            while !(out_done && err_done) {
                let mut progressed = false;
                for (done, sink, stream) in
                    [(&mut out_done, &mut out, 0), (&mut err_done, &mut err, 1)]
                {
                    if *done {
                        continue;
                    }
                    let r = if stream == 0 {
                        ch.read(&mut buf)
                    } else {
                        ch.stderr().read(&mut buf)
                    };
                    match r {
                        Ok(0) if ch.eof() => *done = true,
                        Ok(0) => {}
                        Ok(n) => {
                            sink.extend_from_slice(&buf[..n]);
                            progressed = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                if !(progressed || out_done && err_done) {
                    if limit.is_some_and(|l| started.elapsed() > l) {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no answer from the host in time",
                        ));
                    }
                    self.wait_socket()?;
                }
            }
            Ok((out, err))
        })();
        self.session.set_blocking(true);
        let (stdout, stderr) = drained?;
        ch.wait_close().map_err(ssh_err)?;
        let code = match ch.exit_signal().map_err(ssh_err)?.exit_signal {
            Some(_) => None,
            None => Some(ch.exit_status().map_err(ssh_err)?),
        };
        Ok(Exit {
            code,
            stdout,
            stderr,
        })
    }

    /// Block until the socket is readable (or writable, if libssh2 wants
    /// to write), for at most a second.
    fn wait_socket(&self) -> io::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let dirs = self.session.block_directions();
        let mut flags = PollFlags::POLLIN;
        if matches!(
            dirs,
            ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
        ) {
            flags |= PollFlags::POLLOUT;
        }
        let mut fds = [PollFd::new(self.socket.as_fd(), flags)];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A fixed script acting on target paths: [`CHASE`] resolves them.
    fn on_paths(&self, script: &str, args: &[&str], stdin: &[u8]) -> io::Result<Exit> {
        self.script(&with_chase(script), args, stdin)
    }

    /// Run a fixed script with arguments; fail with the script's message.
    fn script(&self, script: &str, args: &[&str], stdin: &[u8]) -> io::Result<Exit> {
        let exit = self.exec(&script_line(script, args), stdin, None)?;
        if exit.ok() {
            Ok(exit)
        } else {
            Err(exit.error())
        }
    }
}

/// Give each of the files `idxs` its part of `bytes`, their contents one
/// after the other, cut by the sizes they were seen with. A file that
/// changed size in between leaves the parts unknown: they are left unset,
/// and reading them asks the host again.
fn split_contents(found: &mut HashMap<usize, Observed>, idxs: &[usize], bytes: Vec<u8>) {
    let sizes: Option<Vec<usize>> = idxs
        .iter()
        .map(|i| match found.get(i) {
            Some(Observed::Present { meta, .. }) => usize::try_from(meta.size).ok(),
            _ => None,
        })
        .collect();
    let Some(sizes) = sizes else { return };
    if sizes.iter().sum::<usize>() != bytes.len() {
        return;
    }
    let mut at = 0;
    for (i, size) in idxs.iter().zip(sizes) {
        if let Some(Observed::Present { content, .. }) = found.get_mut(i) {
            *content = Some(bytes[at..at + size].to_vec());
        }
        at += size;
    }
}

/// What one observation found at a path.
#[derive(Clone, Debug)]
enum Observed {
    Missing,
    /// Exists (or may) but cannot be looked at: the message says why.
    Unreadable(String),
    Present {
        meta: Meta,
        /// A regular file's bytes, when fetched.
        content: Option<Vec<u8>>,
        /// A directory's entries, when fetched.
        names: Option<Vec<String>>,
        /// Whether the user may write it (`test -w`), when observed itself.
        writable: Option<bool>,
    },
}

#[derive(Default)]
struct Cache {
    entries: HashMap<PathBuf, Observed>,
    /// Paths the playbook declared (prefetch): refetched with any miss.
    declared: BTreeSet<PathBuf>,
    /// Directories this connection made (the run folder): no symlink on
    /// the way to what is changed below them.
    made: BTreeSet<PathBuf>,
}

impl Cache {
    /// What is known of `path`: its own entry, or that it is missing
    /// because the nearest ancestor the cache has is missing, is not a
    /// directory, or was listed without it (a new run folder, a file the
    /// playbook creates under a listed directory: no round trip to learn
    /// it is not there).
    fn get(&self, path: &Path) -> Option<Observed> {
        if let Some(o) = self.entries.get(path) {
            return Some(o.clone());
        }
        let mut child = path;
        for dir in path.ancestors().skip(1) {
            match self.entries.get(dir) {
                None => child = dir,
                Some(Observed::Missing) => return Some(Observed::Missing),
                // Observing a path follows symlinks on the way: below one,
                // the cache knows nothing.
                Some(Observed::Present { meta, .. }) if meta.kind == FileKind::Symlink => {
                    return None
                }
                Some(Observed::Present { meta, .. }) if meta.kind != FileKind::Dir => {
                    return Some(Observed::Missing)
                }
                Some(Observed::Present {
                    names: Some(names), ..
                }) => {
                    let name = child.file_name()?.to_string_lossy();
                    return (!names.iter().any(|n| *n == name)).then_some(Observed::Missing);
                }
                Some(_) => return None,
            }
        }
        None
    }

    /// Whether a change of `path` may land somewhere the cache keys
    /// differently: a symlink on the way (a write through it changes the
    /// path it points to), or a folder on the way the cache does not know
    /// to be one.
    fn aliased(&self, path: &Path) -> bool {
        path.ancestors().skip(1).any(|dir| {
            !self.made.contains(dir)
                && !matches!(
                    self.entries.get(dir),
                    Some(Observed::Present { meta, .. }) if meta.kind == FileKind::Dir
                )
        })
    }

    /// Keep the cache true after `step` (queued, so about to happen).
    fn changed(&mut self, step: &Step) {
        if step.touches.iter().any(|p| self.aliased(p)) {
            // What it changes is not known by the name we cache it under.
            self.entries.clear();
        }
        let moved: Vec<PathBuf> = match (step.verb(), step.touches.as_slice()) {
            ("move", [from, to]) => self
                .made
                .iter()
                .filter_map(|m| m.strip_prefix(from).ok().map(|rest| to.join(rest)))
                .collect(),
            _ => Vec::new(),
        };
        for path in &step.touches {
            self.forget(path);
            self.made.retain(|m| !m.starts_with(path));
        }
        self.made.extend(moved);
        if step.verb() == "mkdir" {
            self.made.insert(step.path.clone());
        }
    }

    /// Forget `path`, everything below it, and its parent's listing (not
    /// the parent itself: each change of a directory's entries would
    /// otherwise cost the next one a round trip to stat it again).
    fn forget(&mut self, path: &Path) {
        self.entries.retain(|p, _| !p.starts_with(path));
        if let Some(Observed::Present { names, .. }) = path
            .parent()
            .and_then(|parent| self.entries.get_mut(parent))
        {
            *names = None;
        }
    }
}

/// A script with the path helpers ([`CHASE`]) in front.
fn with_chase(script: &str) -> String {
    format!("{CHASE}{script}")
}

/// Files up to this size come back with their metadata when observed.
const INLINE_LIMIT: u64 = 1 << 20;

/// Observe paths: metadata, the content of small regular files, and the
/// entries (with their metadata) of directories. One line per finding;
/// binary data in base64.
///
/// The work per path is shell builtins only, so a plan of many files costs
/// a fixed number of processes on the host, not a few per file (forks were
/// 60% of a 10-host plan): paths that exist are stat-ed by one `stat`,
/// small files read by one `cat` (`B` line, split by their sizes on our
/// side); a path that does not exist below a searchable directory is
/// missing without asking `stat`. Anything else (a failed batch stat, an
/// unsearchable directory on the way) takes the per-path `one`, which
/// reports the tools' own messages.
const OBSERVE: &str = r#"limit=$1; shift; given=$#; i=0; idx=; NL='
'
one() {
  if s=$(stat -c '%f %u %g %s' -- "$2" 2>&1); then
    if [ -w "$2" ]; then echo "$1 S $s w"; else echo "$1 S $s -"; fi
    case $s in
      8*) if [ "${s##* }" -le "$limit" ]; then
            if [ -r "$2" ]; then printf '%s C ' "$1"; base64 -w0 < "$2"; echo; else echo "$1 R Permission denied"; fi
          fi ;;
      4*) list "$1" "$2" ;;
    esac
  else
    case $s in
      *"No such file"*|*"Not a directory"*) echo "$1 -" ;;
      *) echo "$1 E $(printf '%s' "$s" | tr '\n' ' ')" ;;
    esac
  fi
}
list() {
  if [ -r "$2" ] && [ -x "$2" ]; then
    printf '%s L ' "$1"; find "$2" -mindepth 1 -maxdepth 1 -printf '%f\0%y %m %U %G %s\0' | base64 -w0; echo
  else echo "$1 R Permission denied"; fi
}
absent() {
  b=${1##*/} a=${1%/*}
  [ ${#b} -le 255 ] || return 1
  while :; do
    [ -n "$a" ] || a=/
    if [ -d "$a" ]; then [ -x "$a" ]; return; fi
    if [ -e "$a" ] || [ -L "$a" ]; then return 0; fi
    [ "$a" != / ] || return 1
    a=${a%/*}
  done
}
for q in "$@"; do
  if ! chase "$q"; then
    echo "$i E $(printf '%s' "$E" | tr '\n' ' ')"
  elif [ -e "$R" ] || [ -L "$R" ]; then
    set -- "$@" "$R"; idx="$idx $i"
  elif absent "$R"; then
    echo "$i -"
  else
    one "$i" "$R"
  fi
  i=$((i+1))
done
shift "$given"
[ $# -gt 0 ] || exit 0
if ! st=$(stat -c '%f %u %g %s' -- "$@" 2>/dev/null); then
  j=0; for k in $idx; do j=$((j+1)); eval "one $k \"\${$j}\""; done
  exit 0
fi
m=$#; j=0; ks=
for k in $idx; do
  j=$((j+1)); eval "p=\${$j}"
  s=${st%%"$NL"*}
  case $st in *"$NL"*) st=${st#*"$NL"} ;; *) st= ;; esac
  if [ -w "$p" ]; then echo "$k S $s w"; else echo "$k S $s -"; fi
  case $s in
    8*) if [ "${s##* }" -le "$limit" ]; then
          if [ -r "$p" ]; then set -- "$@" "$p"; ks="$ks,$k"; else echo "$k R Permission denied"; fi
        fi ;;
    4*) list "$k" "$p" ;;
  esac
done
shift "$m"
if [ $# -gt 0 ]; then printf 'B %s ' "${ks#,}"; cat -- "$@" | base64 -w0; echo; fi"#;

const LOCK: &str = r#"umask 077; need "$1"; nolink "$R"
exec flock -n -E 75 -- "$R" sh -c 'echo locked; exec cat'"#;

fn kind_of(raw_mode_hex: &str) -> Option<(FileKind, u32)> {
    let raw = u32::from_str_radix(raw_mode_hex, 16).ok()?;
    let kind = match raw & 0o170000 {
        0o100000 => FileKind::File,
        0o040000 => FileKind::Dir,
        0o120000 => FileKind::Symlink,
        _ => FileKind::Other,
    };
    Some((kind, raw & 0o7777))
}

fn parse_entries(bytes: &[u8]) -> Option<Vec<(String, Meta)>> {
    let fields: Vec<&[u8]> = bytes.split(|b| *b == 0).collect();
    let mut out = Vec::new();
    // Trailing NUL leaves one empty field.
    for pair in fields.chunks(2).filter(|c| c.len() == 2) {
        let name = String::from_utf8_lossy(pair[0]).into_owned();
        let attrs = String::from_utf8_lossy(pair[1]);
        let f: Vec<&str> = attrs.split(' ').collect();
        if f.len() != 5 {
            return None;
        }
        let kind = match f[0] {
            "f" => FileKind::File,
            "d" => FileKind::Dir,
            "l" => FileKind::Symlink,
            _ => FileKind::Other,
        };
        out.push((
            name,
            Meta {
                kind,
                mode: u32::from_str_radix(f[1], 8).ok()?,
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                size: f[4].parse().ok()?,
            },
        ));
    }
    Some(out)
}

/// A host reached over SSH.
pub struct SshHost {
    name: String,
    conn: Arc<Conn>,
    home: PathBuf,
    env: HashMap<String, String>,
    cache: Mutex<Cache>,
    accounts: Mutex<HashMap<(bool, String), Option<u32>>>,
    /// Changes not yet sent (see `ssh_changes`).
    queue: Mutex<Queue>,
}

impl Drop for SshHost {
    /// A caller that batched and never ended the batch still gets its
    /// changes made; one that cared about their errors ended it.
    fn drop(&mut self) {
        let _ = self.settle();
    }
}

fn key_type_name(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

fn key_kind_label(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "RSA",
        HostKeyType::Dss => "DSA",
        HostKeyType::Ecdsa256 | HostKeyType::Ecdsa384 | HostKeyType::Ecdsa521 => "ECDSA",
        HostKeyType::Ed25519 => "ED25519",
        HostKeyType::Unknown => "unknown",
    }
}

fn fingerprint(key: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// How known_hosts names a host: `name`, or `[name]:port` off port 22.
pub fn known_hosts_entry(hostname: &str, port: u16) -> String {
    if port == 22 {
        hostname.to_string()
    } else {
        format!("[{hostname}]:{port}")
    }
}

fn check_host_key(
    session: &Session,
    target: &Target,
    opts: &SshOptions,
    addr: &str,
) -> Result<(), ConnectError> {
    let policy = if opts.accept_new_host_keys && target.policy == HostKeyPolicy::Strict {
        HostKeyPolicy::AcceptNew
    } else {
        target.policy
    };
    if policy == HostKeyPolicy::Off {
        return Ok(());
    }
    let (key, key_type) = session.host_key().ok_or_else(|| ConnectError::Handshake {
        addr: addr.to_string(),
        message: "the server sent no host key".into(),
    })?;
    let setup = |message: String| ConnectError::Setup {
        addr: addr.to_string(),
        message,
    };
    let mut kh = session
        .known_hosts()
        .map_err(|e| setup(format!("known_hosts: {e}")))?;
    let present: Vec<&PathBuf> = target.known_hosts.iter().filter(|p| p.is_file()).collect();
    for file in &present {
        kh.read_file(file, KnownHostFileKind::OpenSSH)
            .map_err(|e| setup(format!("cannot read {}: {e}", file.display())))?;
    }
    let entry = known_hosts_entry(&target.hostname, target.port);
    let files = if present.is_empty() {
        target
            .known_hosts
            .first()
            .map_or_else(|| "known_hosts".to_string(), |p| p.display().to_string())
    } else {
        present
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match kh.check_port(&target.hostname, target.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(ConnectError::HostKeyChanged {
            kind: key_kind_label(key_type).into(),
            entry,
            fingerprint: fingerprint(key),
            files,
        }),
        CheckResult::NotFound if policy == HostKeyPolicy::AcceptNew => {
            let path = target
                .known_hosts
                .first()
                .cloned()
                .ok_or_else(|| setup("no known_hosts file to record the key in".into()))?;
            let line = format!(
                "{entry} {} {}\n",
                key_type_name(key_type),
                base64::engine::general_purpose::STANDARD.encode(key)
            );
            let record = || -> io::Result<()> {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                f.write_all(line.as_bytes())?;
                f.sync_data()
            };
            record().map_err(|source| ConnectError::RecordHostKey {
                entry,
                path,
                source,
            })
        }
        CheckResult::NotFound => Err(ConnectError::HostKeyUnknown {
            kind: key_kind_label(key_type).into(),
            entry,
            fingerprint: fingerprint(key),
            files,
        }),
        CheckResult::Failure => Err(setup("checking the host key failed".into())),
    }
}

fn authenticate(session: &Session, target: &Target, addr: &str) -> Result<(), ConnectError> {
    let mut tried = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        tried.push("ssh-agent".to_string());
        if let Ok(mut agent) = session.agent() {
            if agent.connect().is_ok() && agent.list_identities().is_ok() {
                for id in agent.identities().unwrap_or_default() {
                    if agent.userauth(&target.user, &id).is_ok() {
                        return Ok(());
                    }
                }
            }
        }
    }
    for key in target.identity_files.iter().filter(|k| k.is_file()) {
        tried.push(key.display().to_string());
        let public = key.with_extension(match key.extension() {
            Some(e) => format!("{}.pub", e.to_string_lossy()),
            None => "pub".to_string(),
        });
        // The .pub beside the key first, as ssh does; a stale one must not
        // hide a good private key, so then without it.
        let candidates = [public.is_file().then_some(public), None];
        for public in candidates
            .iter()
            .take(if candidates[0].is_some() { 2 } else { 1 })
        {
            if session
                .userauth_pubkey_file(&target.user, public.as_deref(), key, None)
                .is_ok()
                && session.authenticated()
            {
                return Ok(());
            }
        }
    }
    if tried.is_empty() {
        tried.push("no key: no ssh-agent and no identity file found".into());
    }
    Err(ConnectError::AuthFailed {
        user: target.user.clone(),
        addr: addr.to_string(),
        tried: tried.join(", "),
    })
}

fn keepalive(stream: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    // A host that vanishes (a netplan change cut it off) must turn into an
    // error within about half a minute, not the kernel's fifteen.
    let _ = setsockopt(stream, sockopt::KeepAlive, &true);
    let _ = setsockopt(stream, sockopt::TcpKeepIdle, &10);
    let _ = setsockopt(stream, sockopt::TcpKeepInterval, &5);
    let _ = setsockopt(stream, sockopt::TcpKeepCount, &3);
    let _ = setsockopt(stream, sockopt::TcpUserTimeout, &30_000);
}

impl SshHost {
    /// Connect, verify the host key, authenticate, and read the login
    /// environment. `name` is how the host is called in messages.
    pub fn connect(name: &str, target: &Target, opts: &SshOptions) -> Result<Self, ConnectError> {
        let addr = known_hosts_entry(&target.hostname, target.port);
        let unreachable = |source| ConnectError::Unreachable {
            addr: addr.clone(),
            source,
        };
        let sockaddrs: Vec<_> = (target.hostname.as_str(), target.port)
            .to_socket_addrs()
            .map_err(unreachable)?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut stream = None;
        for sa in sockaddrs {
            match TcpStream::connect_timeout(&sa, target.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| unreachable(last))?;
        keepalive(&stream);
        // libssh2 sends a request as several small writes and waits for
        // the answer: with Nagle on, each such exchange stalls ~40 ms on
        // the peer's delayed ACK (seen as 0.5 s for a one-host plan).
        let _ = stream.set_nodelay(true);
        let socket = stream.try_clone().map_err(unreachable)?;
        let mut session = Session::new().map_err(|e| ConnectError::Handshake {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
        session.set_tcp_stream(stream);
        // Bounds the handshake and authentication; commands are bounded
        // by their own timeouts and by keepalive.
        session.set_timeout(
            target
                .connect_timeout
                .as_millis()
                .try_into()
                .unwrap_or(u32::MAX),
        );
        session.handshake().map_err(|e| ConnectError::Handshake {
            addr: addr.clone(),
            message: e.message().to_string(),
        })?;
        check_host_key(&session, target, opts, &addr)?;
        authenticate(&session, target, &addr)?;
        session.set_timeout(0);
        let conn = Arc::new(Conn {
            session,
            socket,
            become_root: opts.become_root,
            execs: AtomicUsize::new(0),
            busy: Mutex::new(()),
        });
        let setup = |message: String| ConnectError::Setup {
            addr: addr.clone(),
            message,
        };
        let env_out = conn
            .exec("env -0", &[], Some(target.connect_timeout * 3))
            .map_err(|e| setup(format!("cannot run commands: {e}")))?;
        if !env_out.ok() {
            let why = String::from_utf8_lossy(&env_out.stderr).trim().to_string();
            return Err(setup(if opts.become_root {
                format!(
                    "--become: `sudo -n` failed ({why}); the login user needs passwordless sudo"
                )
            } else {
                format!("cannot run commands: {why}")
            }));
        }
        let env: HashMap<String, String> = env_out
            .stdout
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let home = env
            .get("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .ok_or_else(|| setup("the remote login environment has no HOME".into()))?;
        Ok(SshHost {
            name: name.to_string(),
            conn,
            home,
            env,
            cache: Mutex::new(Cache::default()),
            accounts: Mutex::new(HashMap::new()),
            queue: Mutex::new(Queue::default()),
        })
    }

    /// Exec requests made so far (a measure of round trips).
    pub fn exec_count(&self) -> usize {
        self.conn.execs.load(Ordering::Relaxed)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(&self, path: &Path) {
        self.cache().forget(path);
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn change(&self, step: Step) -> HostResult<()> {
        self.changes(vec![step])
    }

    /// Queue changes, or make them now when not batching.
    fn changes(&self, steps: Vec<Step>) -> HostResult<()> {
        let due = {
            let mut q = self.queue();
            for step in steps {
                self.cache().changed(&step);
                q.push(step);
            }
            q.due()
        };
        if due {
            self.settle()
        } else {
            Ok(())
        }
    }

    /// Send the queued changes in one exec, before anything that must see
    /// them. The steps after a failed one are dropped, never retried.
    fn settle(&self) -> HostResult<()> {
        let steps = self.queue().take();
        let Some(first) = steps.first() else {
            return Ok(());
        };
        let (words, stdin) = ssh_changes::script_input(&steps);
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let line = script_line(&with_chase(ssh_changes::CHANGES), &refs);
        let exit = self
            .conn
            .exec(&line, &stdin, None)
            .map_err(|e| HostError::new(first.op, &first.path, e))?;
        if exit.ok() {
            return Ok(());
        }
        let failed = &steps[ssh_changes::failed_step(&exit.stdout, steps.len())];
        Err(HostError::new(failed.op, &failed.path, exit.error()))
    }

    /// Observe `path` together with every declared path not in the cache.
    fn observe(&self, path: &Path) -> HostResult<Observed> {
        let mut batch: Vec<PathBuf> = {
            let c = self.cache();
            c.declared
                .iter()
                .filter(|p| !c.entries.contains_key(*p) && p.as_path() != path)
                .cloned()
                .collect()
        };
        batch.insert(0, path.to_path_buf());
        self.observe_batch(&batch)?;
        Ok(self
            .cache()
            .entries
            .get(path)
            .cloned()
            .unwrap_or(Observed::Missing))
    }

    fn observe_batch(&self, paths: &[PathBuf]) -> HostResult<()> {
        self.settle()?;
        if paths.is_empty() {
            return Ok(());
        }
        let limit = INLINE_LIMIT.to_string();
        let strs: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let mut args: Vec<&str> = vec![&limit];
        args.extend(strs.iter().map(String::as_str));
        let err = |e| HostError::new("observe", &paths[0], e);
        let exit = self.conn.on_paths(OBSERVE, &args, &[]).map_err(err)?;
        let bad = || {
            err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected answer from the observe script",
            ))
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut found: HashMap<usize, Observed> = HashMap::new();
        let mut children: Vec<(PathBuf, Observed)> = Vec::new();
        let mut batched: Vec<(Vec<usize>, Vec<u8>)> = Vec::new();
        for line in exit.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line = String::from_utf8_lossy(line);
            if let Some(rest) = line.strip_prefix("B ") {
                let (list, data) = rest.split_once(' ').unwrap_or((rest, ""));
                let idxs = list
                    .split(',')
                    .map(|i| i.parse().ok())
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(bad)?;
                batched.push((idxs, b64.decode(data.trim()).map_err(|_| bad())?));
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let idx: usize = parts.next().and_then(|i| i.parse().ok()).ok_or_else(bad)?;
            let tag = parts.next().ok_or_else(bad)?;
            let rest = parts.next().unwrap_or("");
            let path = paths.get(idx).ok_or_else(bad)?;
            match tag {
                "-" => {
                    found.insert(idx, Observed::Missing);
                }
                "E" => {
                    found.insert(idx, Observed::Unreadable(rest.to_string()));
                }
                "S" => {
                    let f: Vec<&str> = rest.split(' ').collect();
                    let (kind, mode) = f.first().and_then(|m| kind_of(m)).ok_or_else(bad)?;
                    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
                    let meta = Meta {
                        kind,
                        mode,
                        uid: num(1).ok_or_else(bad)? as u32,
                        gid: num(2).ok_or_else(bad)? as u32,
                        size: num(3).ok_or_else(bad)?,
                    };
                    found.insert(
                        idx,
                        Observed::Present {
                            meta,
                            content: None,
                            names: None,
                            writable: f.get(4).map(|w| *w == "w"),
                        },
                    );
                }
                "C" => {
                    let bytes = b64.decode(rest.trim()).map_err(|_| bad())?;
                    if let Some(Observed::Present { content, .. }) = found.get_mut(&idx) {
                        *content = Some(bytes);
                    }
                }
                "L" => {
                    let bytes = b64.decode(rest.trim()).map_err(|_| bad())?;
                    let mut entries = parse_entries(&bytes).ok_or_else(bad)?;
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    if let Some(Observed::Present { names, .. }) = found.get_mut(&idx) {
                        *names = Some(entries.iter().map(|(n, _)| n.clone()).collect());
                    }
                    for (n, meta) in entries {
                        children.push((
                            path.join(n),
                            Observed::Present {
                                meta,
                                content: None,
                                names: None,
                                writable: None,
                            },
                        ));
                    }
                }
                // The content or listing is unreadable; read and list ask
                // again directly and report the real error.
                "R" => {}
                _ => return Err(bad()),
            }
        }
        for (idxs, bytes) in batched {
            split_contents(&mut found, &idxs, bytes);
        }
        let mut c = self.cache();
        for (p, o) in children {
            c.entries.entry(p).or_insert(o);
        }
        for (i, o) in found {
            if let Some(p) = paths.get(i) {
                c.entries.insert(p.clone(), o);
            }
        }
        Ok(())
    }

    fn invalid_input(op: &'static str, path: &Path, why: &str) -> HostError {
        HostError::new(
            op,
            path,
            io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
        )
    }

    fn path_str<'a>(op: &'static str, path: &'a Path) -> HostResult<&'a str> {
        path.to_str()
            .ok_or_else(|| Self::invalid_input(op, path, "path is not UTF-8"))
    }

    /// The name of a user or group id (getent takes ids too).
    fn account_name(&self, passwd: bool, id: u32) -> HostResult<Option<String>> {
        self.settle()?;
        let db = if passwd { "passwd" } else { "group" };
        let exit = self
            .conn
            .exec(&format!("getent {db} {id}"), &[], None)
            .map_err(|e| HostError::new("look up", Path::new(&id.to_string()), e))?;
        match exit.code {
            Some(0) => Ok(String::from_utf8_lossy(&exit.stdout)
                .split(':')
                .next()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())),
            Some(2) => Ok(None),
            _ => Err(HostError::new(
                "look up",
                Path::new(&id.to_string()),
                exit.error(),
            )),
        }
    }

    fn account(&self, passwd: bool, name: &str) -> HostResult<Option<u32>> {
        let key = (passwd, name.to_string());
        if let Some(v) = self
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(*v);
        }
        self.settle()?;
        let db = if passwd { "passwd" } else { "group" };
        let exit = self
            .conn
            .exec(&format!("getent {db} {}", quote(name)), &[], None)
            .map_err(|e| HostError::new("look up", Path::new(name), e))?;
        let id = match exit.code {
            Some(0) => String::from_utf8_lossy(&exit.stdout)
                .split(':')
                .nth(2)
                .and_then(|v| v.trim().parse().ok()),
            // getent: 2 means "no such key".
            Some(2) => None,
            _ => return Err(HostError::new("look up", Path::new(name), exit.error())),
        };
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, id);
        Ok(id)
    }
}

struct SshLock {
    conn: Arc<Conn>,
    channel: Option<ssh2::Channel>,
}

impl HostLock for SshLock {}

impl Drop for SshLock {
    fn drop(&mut self) {
        if let Some(mut ch) = self.channel.take() {
            let _busy = self.conn.busy.lock().unwrap_or_else(|p| p.into_inner());
            // EOF ends `cat`, which ends flock and releases the lock.
            let _ = ch.send_eof();
            let _ = ch.wait_close();
        }
    }
}

struct SshScratch {
    conn: Arc<Conn>,
    path: PathBuf,
}

impl Scratch for SshScratch {
    fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, name: &str, content: &[u8]) -> HostResult<()> {
        let p = self.path.join(name);
        let ps = p.to_string_lossy();
        self.conn
            .script(
                r#"set -e; umask 077; mkdir -p -- "$(dirname -- "$1")"; cat > "$1""#,
                &[&ps],
                content,
            )
            .map(|_| ())
            .map_err(|e| HostError::new("write", &p, e))
    }

    fn read(&self, name: &str) -> HostResult<Option<Vec<u8>>> {
        let p = self.path.join(name);
        let ps = p.to_string_lossy();
        match self.conn.script(r#"exec cat -- "$1""#, &[&ps], &[]) {
            Ok(exit) => Ok(Some(exit.stdout)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HostError::new("read", &p, e)),
        }
    }
}

impl Drop for SshScratch {
    fn drop(&mut self) {
        let ps = self.path.to_string_lossy();
        // Go leaves read-only directories behind.
        let _ = self.conn.script(
            r#"chmod -R u+w -- "$1" 2>/dev/null; rm -rf -- "$1""#,
            &[&ps],
            &[],
        );
    }
}

/// Size, newlines, whether the last byte is one, and SHA-256 of a regular
/// file: `wc`, `tail` and `sha256sum` each stream it (a failed `wc` or
/// `tail` leaves a field empty, which `parse_digest` refuses). Three reads,
/// not one: a file being written meanwhile may mix versions, as any read
/// of a changing file does.
const DIGEST: &str = r#"need "$1"; nolink "$R"
[ -f "$R" ] || { echo "$R: not a regular file" >&2; exit 1; }
set -- $(wc -l -c < "$R")
last=$(tail -c 1 < "$R" | wc -l)
sum=$(sha256sum < "$R") || exit 1
printf '%s %s %s %s\n' "$1" "$2" "$last" "${sum%% *}""#;

fn parse_digest(text: &str) -> Option<Digest> {
    let mut words = text.split_whitespace();
    let newlines: u64 = words.next()?.parse().ok()?;
    let size: u64 = words.next()?.parse().ok()?;
    let last_is_newline = words.next()? == "1";
    let hex = words.next()?;
    if hex.len() != 64 {
        return None;
    }
    let mut sha256 = [0u8; 32];
    for (i, b) in sha256.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Digest {
        size,
        lines: newlines + u64::from(size > 0 && !last_is_newline),
        sha256,
    })
}

impl Host for SshHost {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn home(&self) -> HostResult<PathBuf> {
        Ok(self.home.clone())
    }

    fn var(&self, name: &str) -> HostResult<Option<String>> {
        Ok(self.env.get(name).cloned())
    }

    fn prefetch(&self, paths: &[PathBuf]) -> HostResult<()> {
        let missing: Vec<PathBuf> = {
            let mut c = self.cache();
            c.declared.extend(paths.iter().cloned());
            paths
                .iter()
                .filter(|p| !c.entries.contains_key(*p))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        self.observe_batch(&missing)
    }

    /// From the observation (`test -w` in the observe script): the
    /// playbook's paths and their folders are prefetched, so a plan asks
    /// no more round trips for it.
    fn may_write(&self, path: &Path) -> HostResult<Option<bool>> {
        let cached = self.cache().entries.get(path).cloned();
        let seen = match cached {
            Some(
                o @ Observed::Present {
                    writable: Some(_), ..
                },
            ) => o,
            _ => self.observe(path)?,
        };
        Ok(match seen {
            Observed::Present { writable, .. } => writable,
            _ => None,
        })
    }

    fn stat(&self, path: &Path) -> HostResult<Option<Meta>> {
        let cached = self.cache().get(path);
        let seen = match cached {
            Some(o) => o,
            None => self.observe(path)?,
        };
        match seen {
            Observed::Missing => Ok(None),
            Observed::Present { meta, .. } => Ok(Some(meta)),
            Observed::Unreadable(why) => Err(HostError::new(
                "stat",
                path,
                io::Error::new(error_kind(&why), why),
            )),
        }
    }

    fn read(&self, path: &Path) -> HostResult<Vec<u8>> {
        let cached = self.cache().get(path);
        let seen = match cached {
            Some(Observed::Present {
                meta,
                content: None,
                ..
            }) if meta.kind == FileKind::File && meta.size <= INLINE_LIMIT => self.observe(path)?,
            Some(o) => o,
            None => self.observe(path)?,
        };
        match seen {
            Observed::Present {
                content: Some(bytes),
                ..
            } => Ok(bytes),
            Observed::Missing => Err(HostError::new(
                "read",
                path,
                io::Error::new(io::ErrorKind::NotFound, "No such file or directory"),
            )),
            Observed::Present { meta, .. } if meta.kind == FileKind::Dir => Err(HostError::new(
                "read",
                path,
                io::Error::new(io::ErrorKind::IsADirectory, "Is a directory"),
            )),
            // Too large to inline, unreadable, or a special file: ask directly.
            _ => {
                self.settle()?;
                let ps = Self::path_str("read", path)?;
                self.conn
                    .on_paths(r#"need "$1"; nolink "$R"; exec cat -- "$R""#, &[ps], &[])
                    .map(|e| e.stdout)
                    .map_err(|e| HostError::new("read", path, e))
            }
        }
    }

    fn digest(&self, path: &Path) -> HostResult<Digest> {
        // A small file comes with its observation (one exec for every
        // declared path); a large one is digested on the host, its bytes
        // never crossing the network.
        if self
            .stat(path)?
            .is_some_and(|m| m.kind == FileKind::File && m.size <= INLINE_LIMIT)
        {
            return self.read(path).map(|b| Digest::of(&b));
        }
        self.settle()?;
        let ps = Self::path_str("read", path)?;
        let out = self
            .conn
            .on_paths(DIGEST, &[ps], &[])
            .map_err(|e| HostError::new("read", path, e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        parse_digest(&text).ok_or_else(|| {
            HostError::new(
                "read",
                path,
                io::Error::other(format!("unexpected digest output {:?}", text.trim())),
            )
        })
    }

    fn list(&self, dir: &Path) -> HostResult<Vec<String>> {
        let cached = self.cache().get(dir);
        let seen = match cached {
            Some(o @ Observed::Present { names: Some(_), .. }) => o,
            Some(Observed::Missing) => Observed::Missing,
            _ => self.observe(dir)?,
        };
        match seen {
            Observed::Present {
                names: Some(names), ..
            } => Ok(names),
            Observed::Missing => Err(HostError::new(
                "list",
                dir,
                io::Error::new(io::ErrorKind::NotFound, "No such file or directory"),
            )),
            Observed::Present { meta, .. } if meta.kind != FileKind::Dir => Err(HostError::new(
                "list",
                dir,
                io::Error::new(io::ErrorKind::NotADirectory, "Not a directory"),
            )),
            Observed::Present { .. } => Err(HostError::new(
                "list",
                dir,
                io::Error::new(io::ErrorKind::PermissionDenied, "Permission denied"),
            )),
            Observed::Unreadable(why) => Err(HostError::new(
                "list",
                dir,
                io::Error::new(error_kind(&why), why),
            )),
        }
    }

    fn batch(&self, on: bool) -> HostResult<()> {
        self.queue().batching = on;
        self.settle()
    }

    fn batches(&self) -> bool {
        true
    }

    fn write(&self, path: &Path, content: &[u8], attrs: Attrs) -> HostResult<()> {
        self.change(Step::write(path, content, attrs)?)
    }

    fn copy(&self, from: &Path, to: &Path, attrs: Attrs) -> HostResult<()> {
        self.change(Step::copy(from, to, attrs)?)
    }

    fn append(&self, path: &Path, content: &[u8]) -> HostResult<()> {
        self.change(Step::append(path, content)?)
    }

    fn append_all(&self, items: &[(PathBuf, Vec<u8>)]) -> HostResult<()> {
        let steps = items
            .iter()
            .map(|(path, content)| Step::append(path, content))
            .collect::<HostResult<Vec<_>>>()?;
        self.changes(steps)
    }

    fn mkdir(&self, path: &Path, mode: u32) -> HostResult<()> {
        self.change(Step::mkdir(path, mode)?)
    }

    fn chmod(&self, path: &Path, mode: u32) -> HostResult<()> {
        self.change(Step::chmod(path, mode)?)
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> HostResult<()> {
        let owner = match (uid, gid) {
            (Some(u), Some(g)) => format!("{u}:{g}"),
            (Some(u), None) => u.to_string(),
            (None, Some(g)) => format!(":{g}"),
            (None, None) => return Ok(()),
        };
        self.change(Step::chown(path, owner)?)
    }

    fn remove(&self, path: &Path) -> HostResult<()> {
        self.change(Step::remove(path)?)
    }

    fn rename(&self, from: &Path, to: &Path) -> HostResult<()> {
        self.change(Step::rename(from, to)?)
    }

    fn run(&self, cmd: &Cmd) -> HostResult<Output> {
        let program = cmd
            .argv
            .first()
            .ok_or_else(|| Self::invalid_input("run", Path::new(""), "empty command"))?;
        self.settle()?;
        match &cmd.changes_only {
            Some(path) => self.forget(path),
            // A command may change anything.
            None => self.cache().entries.clear(),
        }
        let started = Instant::now();
        let limit = cmd.timeout_secs.map(|s| Duration::from_secs(s + 30));
        let exit = self
            .conn
            .exec(&command_line(cmd), &[], limit)
            .map_err(|e| HostError::new("run", Path::new(program), e))?;
        let timed_out = cmd
            .timeout_secs
            .is_some_and(|s| exit.code == Some(124) && started.elapsed() >= Duration::from_secs(s));
        Ok(Output {
            code: if timed_out { None } else { exit.code },
            timed_out,
            stdout: exit.stdout,
            stderr: exit.stderr,
        })
    }

    /// A direct-tcpip channel: sshd on the target makes the connection.
    fn connect(&self, host: &str, port: u16, timeout: Duration) -> HostResult<Duration> {
        self.settle()?;
        let label = format!("{host}:{port}");
        let _busy = self.conn.busy.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        self.conn
            .session
            .set_timeout(timeout.as_millis().try_into().unwrap_or(u32::MAX));
        let res = self.conn.session.channel_direct_tcpip(host, port, None);
        self.conn.session.set_timeout(0);
        match res {
            Ok(mut ch) => {
                let _ = ch.close();
                Ok(started.elapsed())
            }
            Err(e) => Err(HostError::new("connect to", Path::new(&label), ssh_err(e))),
        }
    }

    fn resolve(&self, name: &str, timeout: Duration) -> HostResult<Vec<std::net::IpAddr>> {
        self.settle()?;
        let secs = timeout.as_secs().max(1).to_string();
        let exit = self
            .conn
            .exec(
                &format!("exec timeout {secs} getent ahosts {}", quote(name)),
                &[],
                Some(timeout + Duration::from_secs(10)),
            )
            .map_err(|e| HostError::new("resolve", Path::new(name), e))?;
        match exit.code {
            Some(0) => {
                let mut ips: Vec<std::net::IpAddr> = Vec::new();
                for line in String::from_utf8_lossy(&exit.stdout).lines() {
                    if let Some(ip) = line.split_whitespace().next().and_then(|w| w.parse().ok()) {
                        if !ips.contains(&ip) {
                            ips.push(ip);
                        }
                    }
                }
                Ok(ips)
            }
            Some(124) => Err(HostError::new(
                "resolve",
                Path::new(name),
                io::Error::new(io::ErrorKind::TimedOut, "timed out"),
            )),
            _ => Err(HostError::new(
                "resolve",
                Path::new(name),
                io::Error::new(io::ErrorKind::NotFound, "no such host"),
            )),
        }
    }

    fn scratch(&self) -> HostResult<Box<dyn Scratch>> {
        self.settle()?;
        let exit = self
            .conn
            .script("exec mktemp -d -t fixer-scratch.XXXXXX", &[], &[])
            .map_err(|e| HostError::new("create scratch directory in", Path::new("/tmp"), e))?;
        let path = PathBuf::from(String::from_utf8_lossy(&exit.stdout).trim());
        Ok(Box::new(SshScratch {
            conn: self.conn.clone(),
            path,
        }))
    }

    fn lock(&self, path: &Path) -> HostResult<Box<dyn HostLock>> {
        self.settle()?;
        let ps = Self::path_str("lock", path)?;
        let err = |e| HostError::new("lock", path, e);
        self.forget(path);
        let _busy = self.conn.busy.lock().unwrap_or_else(|p| p.into_inner());
        let mut ch = self
            .conn
            .session
            .channel_session()
            .map_err(|e| err(ssh_err(e)))?;
        ch.exec(&self.conn.wrap(&script_line(&with_chase(LOCK), &[ps])))
            .map_err(|e| err(ssh_err(e)))?;
        let mut first = [0u8; 7];
        let mut got = 0;
        while got < first.len() {
            match ch.read(&mut first[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(err(e)),
            }
        }
        if &first[..got] == b"locked\n" {
            return Ok(Box::new(SshLock {
                conn: self.conn.clone(),
                channel: Some(ch),
            }));
        }
        let mut stderr = String::new();
        let _ = ch.stderr().read_to_string(&mut stderr);
        let _ = ch.wait_close();
        let code = ch.exit_status().unwrap_or(-1);
        if code == 75 {
            return Err(err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "held by another process",
            )));
        }
        Err(err(io::Error::new(
            error_kind(&stderr),
            stderr.trim().to_string(),
        )))
    }

    fn lock_held(&self, path: &Path) -> HostResult<bool> {
        self.settle()?;
        let ps = Self::path_str("check lock", path)?;
        let exit = self
            .conn
            .exec(
                &script_line(
                    &with_chase(
                        r#"need "$1"; [ -e "$R" ] || exit 0; nolink "$R"; exec flock -n -s -E 75 -- "$R" true"#,
                    ),
                    &[ps],
                ),
                &[],
                None,
            )
            .map_err(|e| HostError::new("check lock", path, e))?;
        match exit.code {
            Some(0) => Ok(false),
            Some(75) => Ok(true),
            _ => Err(HostError::new("check lock", path, exit.error())),
        }
    }

    fn user_id(&self, name: &str) -> HostResult<Option<u32>> {
        self.account(true, name)
    }

    fn group_id(&self, name: &str) -> HostResult<Option<u32>> {
        self.account(false, name)
    }

    fn user_name(&self, uid: u32) -> HostResult<Option<String>> {
        self.account_name(true, uid)
    }

    fn group_name(&self, gid: u32) -> HostResult<Option<String>> {
        self.account_name(false, gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(kind: FileKind, size: u64, names: Option<&[&str]>) -> Observed {
        Observed::Present {
            meta: Meta {
                kind,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size,
            },
            content: None,
            names: names.map(|n| n.iter().map(|s| s.to_string()).collect()),
            writable: None,
        }
    }

    fn content(o: Option<&Observed>) -> Option<&[u8]> {
        match o {
            Some(Observed::Present {
                content: Some(c), ..
            }) => Some(c),
            _ => None,
        }
    }

    #[test]
    fn batched_contents_are_cut_by_size_or_left_unknown() {
        let mut found = HashMap::from([
            (0, present(FileKind::File, 2, None)),
            (1, present(FileKind::File, 0, None)),
            (2, present(FileKind::File, 3, None)),
        ]);
        split_contents(&mut found, &[0, 1, 2], b"abxyz".to_vec());
        assert_eq!(content(found.get(&0)), Some(&b"ab"[..]));
        assert_eq!(content(found.get(&1)), Some(&b""[..]));
        assert_eq!(content(found.get(&2)), Some(&b"xyz"[..]));

        // A file that grew between stat and cat: nobody gets a wrong part.
        let mut found = HashMap::from([
            (0, present(FileKind::File, 2, None)),
            (1, present(FileKind::File, 3, None)),
        ]);
        split_contents(&mut found, &[0, 1], b"abxyzz".to_vec());
        assert_eq!(content(found.get(&0)), None);
        assert_eq!(content(found.get(&1)), None);
    }

    #[test]
    fn absence_is_known_from_a_listing_until_a_change_may_alias() {
        let mut c = Cache::default();
        c.entries
            .insert("/".into(), present(FileKind::Dir, 0, None));
        c.entries
            .insert("/srv".into(), present(FileKind::Dir, 0, Some(&["a"])));
        c.entries
            .insert("/srv/link".into(), present(FileKind::Symlink, 0, None));
        c.entries.insert("/gone".into(), Observed::Missing);
        let missing = |c: &Cache, p: &str| matches!(c.get(Path::new(p)), Some(Observed::Missing));
        assert!(missing(&c, "/srv/b"), "not in the listing");
        assert!(missing(&c, "/srv/b/c/d"), "below what is not listed");
        assert!(missing(&c, "/gone/x"), "below a missing path");
        assert!(
            c.get(Path::new("/srv/a")).is_none(),
            "listed: must be looked at"
        );
        assert!(c.get(Path::new("/srv/link/x")).is_none(), "below a symlink");
        assert!(c.get(Path::new("/other/x")).is_none(), "/ was not listed");

        // A write through the symlink may change any listed folder: the
        // cache no longer claims anything is missing.
        let step = Step::write(Path::new("/srv/link/x"), b"x", Attrs::default())
            .unwrap_or_else(|e| panic!("{e}"));
        c.changed(&step);
        assert!(c.get(Path::new("/srv/b")).is_none());

        // Below a folder this connection made, changes alias nothing.
        let mut c = Cache::default();
        c.entries
            .insert("/".into(), present(FileKind::Dir, 0, Some(&["srv"])));
        c.entries
            .insert("/srv".into(), present(FileKind::Dir, 0, Some(&[])));
        for step in [
            Step::mkdir(Path::new("/srv/.new"), 0o700),
            Step::rename(Path::new("/srv/.new"), Path::new("/srv/run")),
            Step::append(Path::new("/srv/run/journal"), b"line\n"),
        ] {
            c.changed(&step.unwrap_or_else(|e| panic!("{e}")));
        }
        assert!(
            missing(&c, "/var"),
            "only the changed folder's listing is dropped"
        );
        assert!(c.get(Path::new("/srv/other")).is_none());
        assert!(c.made.contains(Path::new("/srv/run")));
    }
}

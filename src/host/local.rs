//! The machine fixer runs on, optionally seen through `--root DIR`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use wait_timeout::ChildExt as _;

use super::{Attrs, Cmd, FileKind, Host, HostError, HostLock, HostResult, Meta, Output, Scratch};

/// The local machine. With a root, every target path `/x` means `root/x`,
/// commands run here with their working directory mapped, and users and
/// groups resolve through `root/etc/passwd` and `root/etc/group` when those
/// exist (as `netplan generate --root-dir` and `useradd --root` do).
#[derive(Debug, Clone)]
pub struct LocalHost {
    root: Option<PathBuf>,
}

struct LocalLock(#[allow(dead_code)] Flock<File>);
impl HostLock for LocalLock {}

/// Commands run on this machine even under `--root`, so their scratch space
/// is a plain temp dir here.
struct LocalScratch(tempfile::TempDir);

impl Scratch for LocalScratch {
    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, content: &[u8]) -> HostResult<()> {
        let p = self.0.path().join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| HostError::new("create directory", parent, e))?;
        }
        // Private, as the files copied here may be (netplan insists on 0600).
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| HostError::new("write", &p, e))?;
        f.write_all(content)
            .map_err(|e| HostError::new("write", &p, e))
    }

    fn read(&self, name: &str) -> HostResult<Option<Vec<u8>>> {
        let p = self.0.path().join(name);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HostError::new("read", &p, e)),
        }
    }
}

impl LocalHost {
    pub fn new(root: Option<PathBuf>) -> Self {
        LocalHost { root }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Map a target path to a path on this machine. `..` components are
    /// resolved lexically and never climb above the root.
    pub fn map(&self, path: &Path) -> PathBuf {
        let Some(root) = &self.root else {
            return path.to_path_buf();
        };
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p),
                Component::ParentDir => {
                    parts.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let mut mapped = root.clone();
        mapped.extend(parts);
        mapped
    }

    fn lookup_account(&self, file: &str, name: &str) -> HostResult<Option<u32>> {
        let table = self.root.as_ref().map(|r| r.join("etc").join(file));
        if let Some(table) = table.filter(|t| t.exists()) {
            let text = fs::read_to_string(&table).map_err(|e| HostError::new("read", &table, e))?;
            return Ok(parse_account_table(&text, name));
        }
        let found = if file == "passwd" {
            nix::unistd::User::from_name(name).map(|u| u.map(|u| u.uid.as_raw()))
        } else {
            nix::unistd::Group::from_name(name).map(|g| g.map(|g| g.gid.as_raw()))
        };
        found.map_err(|e| HostError::new("look up", Path::new(name), e.into()))
    }
}

/// Find `name` in a passwd- or group-format table; the id is the third field.
fn parse_account_table(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}

fn meta_of(m: &fs::Metadata) -> Meta {
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    Meta {
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: m.size(),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Host for LocalHost {
    fn name(&self) -> String {
        match &self.root {
            Some(r) => format!("localhost (root {})", r.display()),
            None => "localhost".to_string(),
        }
    }

    fn home(&self) -> HostResult<PathBuf> {
        if let Some(home) = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
        {
            return Ok(home);
        }
        // systemd units and cron jobs often run without HOME.
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.dir)
            .filter(|d| d.is_absolute())
            .ok_or_else(|| {
                HostError::new(
                    "resolve ~",
                    Path::new("~"),
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "HOME is unset and the user has no passwd entry",
                    ),
                )
            })
    }

    /// fixer's own environment, as for `~`: with `--root` too, since the
    /// image has no running user to ask.
    fn var(&self, name: &str) -> HostResult<Option<String>> {
        Ok(std::env::var(name).ok())
    }

    fn stat(&self, path: &Path) -> HostResult<Option<Meta>> {
        match fs::symlink_metadata(self.map(path)) {
            Ok(m) => Ok(Some(meta_of(&m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // A file under a regular file ("not a directory") does not exist either.
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => Ok(None),
            Err(e) => Err(HostError::new("stat", path, e)),
        }
    }

    fn read(&self, path: &Path) -> HostResult<Vec<u8>> {
        fs::read(self.map(path)).map_err(|e| HostError::new("read", path, e))
    }

    fn list(&self, dir: &Path) -> HostResult<Vec<String>> {
        let rd = fs::read_dir(self.map(dir)).map_err(|e| HostError::new("list", dir, e))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| HostError::new("list", dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn write(&self, path: &Path, content: &[u8], attrs: Attrs) -> HostResult<()> {
        let real = self.map(path);
        let err = |e| HostError::new("write", path, e);
        crate::failpoint::check("write").map_err(err)?;
        let dir = real.parent().ok_or_else(|| {
            err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path has no parent directory",
            ))
        })?;
        let existing = match fs::metadata(&real) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(e)),
        };
        let name = real
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.fixer-"))
            .tempfile_in(dir)
            .map_err(err)?;
        tmp.write_all(content).map_err(err)?;
        let mode = attrs
            .mode
            .or(existing.as_ref().map(|m| m.mode() & 0o7777))
            .unwrap_or(0o644);
        let uid = attrs.uid.or(existing.as_ref().map(|m| m.uid()));
        let gid = attrs.gid.or(existing.as_ref().map(|m| m.gid()));
        let tmp_meta = tmp.as_file().metadata().map_err(err)?;
        if uid.is_some_and(|u| u != tmp_meta.uid()) || gid.is_some_and(|g| g != tmp_meta.gid()) {
            std::os::unix::fs::fchown(tmp.as_file(), uid, gid).map_err(|e| {
                if e.raw_os_error() == Some(nix::libc::EPERM) {
                    err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "cannot give it owner {}:{} as uid {}; run fixer as root or as the file's owner",
                            uid.map_or("-".into(), |u| u.to_string()),
                            gid.map_or("-".into(), |g| g.to_string()),
                            nix::unistd::geteuid()
                        ),
                    ))
                } else {
                    err(e)
                }
            })?;
        }
        // After chown: chown clears setuid/setgid bits.
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&real).map_err(|e| err(e.error))?;
        sync_dir(dir).map_err(err)
    }

    fn append(&self, path: &Path, content: &[u8]) -> HostResult<()> {
        let err = |e| HostError::new("append to", path, e);
        crate::failpoint::check("write").map_err(err)?;
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(self.map(path))
            .map_err(err)?;
        f.write_all(content).map_err(err)?;
        f.sync_data().map_err(err)
    }

    fn mkdir(&self, path: &Path, mode: u32) -> HostResult<()> {
        let real = self.map(path);
        let err = |e| HostError::new("create directory", path, e);
        crate::failpoint::check("write").map_err(err)?;
        fs::create_dir(&real).map_err(err)?;
        // Set explicitly: create_dir is subject to the umask.
        fs::set_permissions(&real, fs::Permissions::from_mode(mode)).map_err(err)?;
        if let Some(parent) = real.parent() {
            sync_dir(parent).map_err(err)?;
        }
        Ok(())
    }

    fn chmod(&self, path: &Path, mode: u32) -> HostResult<()> {
        fs::set_permissions(self.map(path), fs::Permissions::from_mode(mode))
            .map_err(|e| HostError::new("chmod", path, e))
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> HostResult<()> {
        std::os::unix::fs::lchown(self.map(path), uid, gid)
            .map_err(|e| HostError::new("chown", path, e))
    }

    fn remove(&self, path: &Path) -> HostResult<()> {
        let real = self.map(path);
        let is_dir = fs::symlink_metadata(&real)
            .map(|m| m.is_dir())
            .map_err(|e| HostError::new("remove", path, e))?;
        let res = if is_dir {
            fs::remove_dir(&real)
        } else {
            fs::remove_file(&real)
        };
        res.map_err(|e| HostError::new("remove", path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> HostResult<()> {
        let real_to = self.map(to);
        fs::rename(self.map(from), &real_to).map_err(|e| HostError::new("move", from, e))?;
        if let Some(parent) = real_to.parent() {
            sync_dir(parent).map_err(|e| HostError::new("move", from, e))?;
        }
        Ok(())
    }

    fn run(&self, cmd: &Cmd) -> HostResult<Output> {
        let program = cmd.argv.first().ok_or_else(|| {
            HostError::new(
                "run",
                Path::new(""),
                io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
            )
        })?;
        let mut c = Command::new(program);
        c.args(&cmd.argv[1..]).stdin(Stdio::null());
        c.envs(cmd.env.iter().map(|(k, v)| (k, v)));
        if let Some(root) = &self.root {
            c.env("FIXER_ROOT", root);
        }
        match (&cmd.cwd, &self.root) {
            (Some(cwd), _) => {
                c.current_dir(self.map(cwd));
            }
            (None, Some(root)) => {
                c.current_dir(root);
            }
            (None, None) => {}
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        // With a timeout: its own process group, so the timeout kills what it
        // started too (go runs git; a shell its children) and no grandchild
        // keeps the output pipes open. Without one it stays in ours, so a
        // Ctrl-C at the terminal reaches it.
        if cmd.timeout_secs.is_some() {
            std::os::unix::process::CommandExt::process_group(&mut c, 0);
        }
        let mut child = c
            .spawn()
            .map_err(|e| HostError::new("run", Path::new(program), e))?;
        // Drain both pipes while waiting, or a chatty command blocks on a
        // full pipe and looks hung.
        let drain = |pipe: Option<Box<dyn io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out_t = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn io::Read + Send>),
        );
        let err_t = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn io::Read + Send>),
        );
        let wait_err = |e| HostError::new("wait for", Path::new(program), e);
        let (status, timed_out) = match cmd.timeout_secs {
            Some(secs) => match child
                .wait_timeout(Duration::from_secs(secs))
                .map_err(wait_err)?
            {
                Some(status) => (status, false),
                None => {
                    let group =
                        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    (child.wait().map_err(wait_err)?, true)
                }
            },
            None => (child.wait().map_err(wait_err)?, false),
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        Ok(Output {
            code: if timed_out { None } else { status.code() },
            timed_out,
            stdout,
            stderr,
        })
    }

    fn connect(&self, host: &str, port: u16, timeout: Duration) -> HostResult<Duration> {
        let started = Instant::now();
        let addrs = self.resolve(host, timeout)?;
        let label = format!("{host}:{port}");
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for ip in addrs {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                last = io::Error::new(io::ErrorKind::TimedOut, "timed out");
                break;
            }
            match std::net::TcpStream::connect_timeout(&std::net::SocketAddr::new(ip, port), left) {
                Ok(_) => return Ok(started.elapsed()),
                Err(e) => last = e,
            }
        }
        Err(HostError::new("connect to", Path::new(&label), last))
    }

    /// This machine's resolver (getaddrinfo), also under `--root`: an image
    /// has no resolver of its own running.
    fn resolve(&self, name: &str, timeout: Duration) -> HostResult<Vec<std::net::IpAddr>> {
        use std::net::ToSocketAddrs as _;
        let (tx, rx) = std::sync::mpsc::channel();
        let owned = name.to_string();
        // getaddrinfo cannot be given a deadline: wait for it on the side.
        std::thread::spawn(move || {
            let _ = tx.send(
                (owned.as_str(), 0)
                    .to_socket_addrs()
                    .map(|a| a.map(|s| s.ip()).collect::<Vec<_>>()),
            );
        });
        let err = |e| HostError::new("resolve", Path::new(name), e);
        match rx.recv_timeout(timeout) {
            Ok(Ok(mut ips)) => {
                ips.dedup();
                Ok(ips)
            }
            Ok(Err(e)) => Err(err(e)),
            Err(_) => Err(err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))),
        }
    }

    fn scratch(&self) -> HostResult<Box<dyn Scratch>> {
        let dir = tempfile::Builder::new()
            .prefix("fixer-scratch-")
            .tempdir()
            .map_err(|e| HostError::new("create scratch directory in", &std::env::temp_dir(), e))?;
        Ok(Box::new(LocalScratch(dir)))
    }

    fn lock(&self, path: &Path) -> HostResult<Box<dyn HostLock>> {
        let err = |e| HostError::new("lock", path, e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.map(path))
            .map_err(err)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Box::new(LocalLock(lock))),
            Err((_, errno)) => Err(err(io::Error::from(errno))),
        }
    }

    fn lock_held(&self, path: &Path) -> HostResult<bool> {
        let file = match File::open(self.map(path)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(HostError::new("check lock", path, e)),
        };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_probe) => Ok(false),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
            Err((_, errno)) => Err(HostError::new("check lock", path, errno.into())),
        }
    }

    fn user_id(&self, name: &str) -> HostResult<Option<u32>> {
        self.lookup_account("passwd", name)
    }

    fn group_id(&self, name: &str) -> HostResult<Option<u32>> {
        self.lookup_account("group", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_paths_inside_root() {
        let h = LocalHost::new(Some(PathBuf::from("/r")));
        assert_eq!(h.map(Path::new("/etc/x")), PathBuf::from("/r/etc/x"));
        assert_eq!(h.map(Path::new("/../../etc/x")), PathBuf::from("/r/etc/x"));
        assert_eq!(h.map(Path::new("/a/../b")), PathBuf::from("/r/b"));
        let plain = LocalHost::new(None);
        assert_eq!(plain.map(Path::new("/etc/x")), PathBuf::from("/etc/x"));
    }

    #[test]
    fn local_host_passes_the_conformance_suite() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::create_dir(dir.path().join("scratch")).map_err(|e| e.to_string())?;
        // Rooted: target paths are mapped into the tempdir.
        let rooted = LocalHost::new(Some(dir.path().to_path_buf()));
        crate::host::conformance::run(&rooted, Path::new("/scratch"))?;
        // Unrooted: target paths are this machine's (here, the tempdir).
        let plain_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        crate::host::conformance::run(&LocalHost::new(None), plain_dir.path())
    }

    #[test]
    fn account_table_lookup() {
        let t = "# comment\nroot:x:0:0::/root:/bin/sh\napp:x:1001:1001::/srv:/bin/sh\n";
        assert_eq!(parse_account_table(t, "app"), Some(1001));
        assert_eq!(parse_account_table(t, "root"), Some(0));
        assert_eq!(parse_account_table(t, "nobody"), None);
    }
}

//! The machine fixer runs on, optionally seen through `--root DIR`.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, Flock, FlockArg, OFlag};
use nix::sys::stat::{fchmodat, fstatat, mkdirat, FchmodatFlags, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, unlinkat, UnlinkatFlags};
use wait_timeout::ChildExt as _;

use super::resolve::{kind_of, Resolver};
use super::{
    Attrs, Cmd, Digest, Digester, FileKind, Host, HostError, HostLock, HostResult, Meta, Output,
    Scratch,
};

/// The local machine. With a root, every target path `/x` means `root/x`,
/// commands run here with their working directory mapped, and users and
/// groups resolve through `root/etc/passwd` and `root/etc/group` when those
/// exist (as `netplan generate --root-dir` and `useradd --root` do).
#[derive(Debug, Clone)]
pub struct LocalHost {
    root: Option<PathBuf>,
    /// Who fixer acts as: symlinks this user (or root) owns are followed.
    uid: u32,
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
        LocalHost {
            root,
            uid: nix::unistd::geteuid().as_raw(),
        }
    }

    /// Every operation resolves its path through this: inside the root,
    /// through trusted symlinks only (see [`super::resolve`]).
    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            root: self.root.as_deref().unwrap_or(Path::new("/")),
            uid: self.uid,
        }
    }

    /// The directory holding `path`'s final component, and that name; an
    /// operation that needs a name refuses a path that has none (`/`).
    fn parent_of(&self, path: &Path) -> io::Result<(OwnedFd, OsString)> {
        let found = self.resolver().parent(path)?;
        match found.name {
            Some(name) => Ok((found.dir, name)),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the root directory itself",
            )),
        }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Where a command runs: `cwd` resolved as every other path is, as a
    /// path on this machine. A missing directory is left for the command
    /// to report.
    fn working_dir(&self, cwd: &Path) -> HostResult<PathBuf> {
        match self.resolver().follow(cwd) {
            Ok(found) => Ok(self.map(&found.path())),
            Err(e) if is_missing(&e) => Ok(self.map(cwd)),
            Err(e) => Err(HostError::new("run in", cwd, e)),
        }
    }

    /// Map a target path to a path on this machine, lexically (`..` never
    /// climbs above the root). Symlinks on the way are the kernel's to
    /// follow: only for what runs outside this host's own operations.
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

    /// The name of a user or group id, as [`Self::lookup_account`] finds ids.
    fn lookup_name(&self, file: &str, id: u32) -> HostResult<Option<String>> {
        if self.root.is_some() {
            let table = Path::new("/etc").join(file);
            if self.stat(&table)?.is_some() {
                let bytes = self.read(&table)?;
                return Ok(name_in_table(&String::from_utf8_lossy(&bytes), id));
            }
        }
        let found = if file == "passwd" {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id)).map(|u| u.map(|u| u.name))
        } else {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(id)).map(|g| g.map(|g| g.name))
        };
        found.map_err(|e| HostError::new("look up", Path::new(&id.to_string()), e.into()))
    }

    fn lookup_account(&self, file: &str, name: &str) -> HostResult<Option<u32>> {
        if self.root.is_some() {
            let table = Path::new("/etc").join(file);
            if self.stat(&table)?.is_some() {
                let bytes = self.read(&table)?;
                return Ok(parse_account_table(&String::from_utf8_lossy(&bytes), name));
            }
        }
        let found = if file == "passwd" {
            nix::unistd::User::from_name(name).map(|u| u.map(|u| u.uid.as_raw()))
        } else {
            nix::unistd::Group::from_name(name).map(|g| g.map(|g| g.gid.as_raw()))
        };
        found.map_err(|e| HostError::new("look up", Path::new(name), e.into()))
    }
}

/// The name of `id` in a passwd- or group-format table.
fn name_in_table(text: &str, id: u32) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2].parse() == Ok(id))
        .map(|f| f[0].to_string())
}

/// Find `name` in a passwd- or group-format table; the id is the third field.
fn parse_account_table(text: &str, name: &str) -> Option<u32> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}

fn meta_of(st: &FileStat) -> Meta {
    let kind = match kind_of(st) {
        SFlag::S_IFLNK => FileKind::Symlink,
        SFlag::S_IFDIR => FileKind::Dir,
        SFlag::S_IFREG => FileKind::File,
        _ => FileKind::Other,
    };
    Meta {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: u64::try_from(st.st_size).unwrap_or(0),
    }
}

/// A missing path, or one below a regular file: "not there" to `stat`.
fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR)
}

/// Opening a final component with O_NOFOLLOW fails with ELOOP on a
/// symlink; say what that means.
fn no_follow(e: Errno) -> io::Error {
    if e == Errno::ELOOP {
        io::Error::other("it is a symlink, which fixer does not follow here")
    } else {
        e.into()
    }
}

/// chmod the entry `name` of `dir` itself, never what a symlink there
/// points to. glibc does that through /proc; without /proc mounted (it
/// then says EOPNOTSUPP, as for a symlink) the entry is checked, then
/// changed by name.
fn chmod_at(dir: &OwnedFd, name: &OsStr, mode: Mode) -> io::Result<()> {
    match fchmodat(dir, name, mode, FchmodatFlags::NoFollowSymlink) {
        Err(Errno::EOPNOTSUPP) => {
            let st = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
            if kind_of(&st) == SFlag::S_IFLNK {
                return Err(io::Error::other(
                    "it is a symlink, which fixer does not follow here",
                ));
            }
            fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink).map_err(io::Error::from)
        }
        other => other.map_err(io::Error::from),
    }
}

/// fsync a directory held as an O_PATH descriptor (which cannot be synced).
fn sync_dir(dir: &OwnedFd) -> io::Result<()> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    nix::unistd::fsync(&fd).map_err(io::Error::from)
}

/// A name for a temporary file beside `name` that no one can guess.
fn temp_name(name: &OsStr) -> OsString {
    use std::hash::{BuildHasher as _, Hasher as _};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    let mut t = OsString::from(".");
    t.push(name);
    t.push(format!(".fixer-{:012x}", h.finish() & 0xffff_ffff_ffff));
    t
}

/// Removes a temporary file unless it was renamed into place.
struct TempGuard<'a> {
    dir: &'a OwnedFd,
    name: OsString,
    armed: bool,
}

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = unlinkat(self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

impl LocalHost {
    /// The file at `path`, opened for reading without following a final
    /// symlink.
    fn open(&self, path: &Path) -> io::Result<File> {
        let (dir, name) = self.parent_of(path)?;
        let fd = openat(
            &dir,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(no_follow)?;
        Ok(File::from(fd))
    }

    /// The regular file at `path`, for the streams of `digest` and `copy`:
    /// a FIFO or device would block or never end (opened without waiting,
    /// which changes nothing for a regular file).
    fn open_regular(&self, path: &Path) -> io::Result<File> {
        let (dir, name) = self.parent_of(path)?;
        let fd = openat(
            &dir,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(no_follow)?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    /// [`Host::write`] of what `content` yields, streamed.
    fn write_from(&self, path: &Path, content: &mut dyn io::Read, attrs: Attrs) -> HostResult<()> {
        let err = |e| HostError::new("write", path, e);
        crate::failpoint::check("write").map_err(err)?;
        let (dir, name) = self.parent_of(path).map_err(err)?;
        // A symlink in the way is replaced, not written through.
        let existing = match fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if kind_of(&st) != SFlag::S_IFLNK => Some(st),
            Ok(_) | Err(Errno::ENOENT) => None,
            Err(e) => return Err(err(e.into())),
        };
        let (tmp_name, fd) = loop {
            let candidate = temp_name(&name);
            match openat(
                &dir,
                candidate.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(fd) => break (candidate, fd),
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(err(e.into())),
            }
        };
        let mut guard = TempGuard {
            dir: &dir,
            name: tmp_name,
            armed: true,
        };
        let mut tmp = File::from(fd);
        io::copy(content, &mut tmp).map_err(err)?;
        let mode = attrs
            .mode
            .or(existing.as_ref().map(|m| m.st_mode & 0o7777))
            .unwrap_or(0o644);
        let uid = attrs.uid.or(existing.as_ref().map(|m| m.st_uid));
        let gid = attrs.gid.or(existing.as_ref().map(|m| m.st_gid));
        let tmp_meta = tmp.metadata().map_err(err)?;
        if uid.is_some_and(|u| u != tmp_meta.uid()) || gid.is_some_and(|g| g != tmp_meta.gid()) {
            std::os::unix::fs::fchown(&tmp, uid, gid).map_err(|e| {
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
        tmp.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err)?;
        tmp.sync_all().map_err(err)?;
        renameat(&dir, guard.name.as_os_str(), &dir, name.as_os_str())
            .map_err(|e| err(e.into()))?;
        guard.armed = false;
        sync_dir(&dir).map_err(err)
    }
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

    fn may_write(&self, path: &Path) -> HostResult<Option<bool>> {
        let found = self
            .resolver()
            .parent(path)
            .map_err(|e| HostError::new("look at", path, e))?;
        let name = found.name.unwrap_or_else(|| OsString::from("."));
        let access = nix::unistd::faccessat(
            &found.dir,
            name.as_os_str(),
            nix::unistd::AccessFlags::W_OK,
            AtFlags::AT_EACCESS,
        );
        match access {
            Ok(()) => Ok(Some(true)),
            Err(Errno::EACCES | Errno::EROFS | Errno::EPERM) => Ok(Some(false)),
            Err(e) => Err(HostError::new("look at", path, e.into())),
        }
    }

    fn stat(&self, path: &Path) -> HostResult<Option<Meta>> {
        let err = |e| HostError::new("stat", path, e);
        let found = match self.resolver().parent(path) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        let st = match &found.name {
            Some(n) => fstatat(&found.dir, n.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW),
            None => nix::sys::stat::fstat(&found.dir),
        };
        match st.map_err(io::Error::from) {
            Ok(st) => Ok(Some(meta_of(&st))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    fn read(&self, path: &Path) -> HostResult<Vec<u8>> {
        let err = |e| HostError::new("read", path, e);
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut self.open(path).map_err(err)?, &mut bytes).map_err(err)?;
        Ok(bytes)
    }

    fn digest(&self, path: &Path) -> HostResult<Digest> {
        let err = |e| HostError::new("read", path, e);
        let mut file = self.open_regular(path).map_err(err)?;
        let mut d = Digester::default();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match io::Read::read(&mut file, &mut chunk) {
                Ok(0) => return Ok(d.finish()),
                Ok(n) => d.update(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(e)),
            }
        }
    }

    fn list(&self, dir: &Path) -> HostResult<Vec<String>> {
        let err = |e| HostError::new("list", dir, e);
        let found = self.resolver().parent(dir).map_err(err)?;
        let name = found.name.unwrap_or_else(|| OsString::from("."));
        let mut d = nix::dir::Dir::openat(
            &found.dir,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(no_follow(e)))?;
        let mut names = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(|e| err(e.into()))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(String::from_utf8_lossy(n).into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn write(&self, path: &Path, content: &[u8], attrs: Attrs) -> HostResult<()> {
        self.write_from(path, &mut &content[..], attrs)
    }

    fn copy(&self, from: &Path, to: &Path, attrs: Attrs) -> HostResult<()> {
        let mut source = self
            .open_regular(from)
            .map_err(|e| HostError::new("read", from, e))?;
        self.write_from(to, &mut source, attrs)
    }

    fn append(&self, path: &Path, content: &[u8]) -> HostResult<()> {
        let err = |e| HostError::new("append to", path, e);
        crate::failpoint::check("write").map_err(err)?;
        let (dir, name) = self.parent_of(path).map_err(err)?;
        let fd = openat(
            &dir,
            name.as_os_str(),
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| err(no_follow(e)))?;
        let mut f = File::from(fd);
        f.write_all(content).map_err(err)?;
        f.sync_data().map_err(err)
    }

    fn mkdir(&self, path: &Path, mode: u32) -> HostResult<()> {
        let err = |e| HostError::new("create directory", path, e);
        crate::failpoint::check("write").map_err(err)?;
        let (dir, name) = self.parent_of(path).map_err(err)?;
        let mode = Mode::from_bits_truncate(mode);
        mkdirat(&dir, name.as_os_str(), mode).map_err(|e| err(e.into()))?;
        // Set explicitly: mkdir is subject to the umask.
        chmod_at(&dir, &name, mode).map_err(err)?;
        sync_dir(&dir).map_err(err)
    }

    fn chmod(&self, path: &Path, mode: u32) -> HostResult<()> {
        let err = |e| HostError::new("chmod", path, e);
        let (dir, name) = self.parent_of(path).map_err(err)?;
        chmod_at(&dir, &name, Mode::from_bits_truncate(mode)).map_err(err)
    }

    fn chown(&self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> HostResult<()> {
        let err = |e| HostError::new("chown", path, e);
        let found = self.resolver().parent(path).map_err(err)?;
        let (name, flags) = match &found.name {
            Some(n) => (n.clone(), AtFlags::AT_SYMLINK_NOFOLLOW),
            None => (OsString::new(), AtFlags::AT_EMPTY_PATH),
        };
        fchownat(
            &found.dir,
            name.as_os_str(),
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
            flags,
        )
        .map_err(|e| err(e.into()))
    }

    fn remove(&self, path: &Path) -> HostResult<()> {
        let err = |e| HostError::new("remove", path, e);
        let (dir, name) = self.parent_of(path).map_err(err)?;
        let st = fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| err(e.into()))?;
        let flag = if kind_of(&st) == SFlag::S_IFDIR {
            UnlinkatFlags::RemoveDir
        } else {
            UnlinkatFlags::NoRemoveDir
        };
        unlinkat(&dir, name.as_os_str(), flag).map_err(|e| err(e.into()))
    }

    fn rename(&self, from: &Path, to: &Path) -> HostResult<()> {
        let err = |e| HostError::new("move", from, e);
        let (from_dir, from_name) = self.parent_of(from).map_err(err)?;
        let (to_dir, to_name) = self.parent_of(to).map_err(err)?;
        renameat(
            &from_dir,
            from_name.as_os_str(),
            &to_dir,
            to_name.as_os_str(),
        )
        .map_err(|e| err(e.into()))?;
        sync_dir(&to_dir).map_err(err)
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
                c.current_dir(self.working_dir(cwd)?);
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
        let (dir, name) = self.parent_of(path).map_err(err)?;
        let fd = openat(
            &dir,
            name.as_os_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| err(no_follow(e)))?;
        match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Box::new(LocalLock(lock))),
            Err((_, errno)) => Err(err(io::Error::from(errno))),
        }
    }

    fn lock_held(&self, path: &Path) -> HostResult<bool> {
        let err = |e| HostError::new("check lock", path, e);
        let (dir, name) = match self.parent_of(path) {
            Ok(found) => found,
            Err(e) if is_missing(&e) => return Ok(false),
            Err(e) => return Err(err(e)),
        };
        let fd = match openat(
            &dir,
            name.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(err(no_follow(e))),
        };
        match Flock::lock(File::from(fd), FlockArg::LockSharedNonblock) {
            Ok(_probe) => Ok(false),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(true),
            Err((_, errno)) => Err(err(errno.into())),
        }
    }

    fn user_id(&self, name: &str) -> HostResult<Option<u32>> {
        self.lookup_account("passwd", name)
    }

    fn group_id(&self, name: &str) -> HostResult<Option<u32>> {
        self.lookup_account("group", name)
    }

    fn user_name(&self, uid: u32) -> HostResult<Option<String>> {
        self.lookup_name("passwd", uid)
    }

    fn group_name(&self, gid: u32) -> HostResult<Option<String>> {
        self.lookup_name("group", gid)
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

    /// Makes symlinks for the conformance suite, under `root` (a target
    /// path `/x` is `root/x`).
    fn link_maker(root: &Path) -> impl Fn(&Path, &Path, Option<u32>) -> Result<bool, String> + '_ {
        move |link: &Path, to: &Path, owner: Option<u32>| {
            let at = root.join(link.strip_prefix("/").unwrap_or(link));
            std::os::unix::fs::symlink(to, &at).map_err(|e| e.to_string())?;
            match owner {
                Some(_) if !nix::unistd::geteuid().is_root() => Ok(false),
                Some(uid) => std::os::unix::fs::lchown(&at, Some(uid), None)
                    .map(|()| true)
                    .map_err(|e| e.to_string()),
                None => Ok(true),
            }
        }
    }

    #[test]
    fn local_host_passes_the_conformance_suite() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        for sub in ["scratch", "links"] {
            std::fs::create_dir(dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        // Rooted: target paths are mapped into the tempdir.
        let rooted = LocalHost::new(Some(dir.path().to_path_buf()));
        crate::host::conformance::run(&rooted, Path::new("/scratch"))?;
        let full = crate::host::conformance::symlinks(
            &rooted,
            Path::new("/links"),
            &link_maker(dir.path()),
        )?;
        // Unrooted: target paths are this machine's (here, the tempdir).
        let plain_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let plain = LocalHost::new(None);
        crate::host::conformance::run(&plain, plain_dir.path())?;
        let links = tempfile::tempdir().map_err(|e| e.to_string())?;
        crate::host::conformance::symlinks(&plain, links.path(), &link_maker(Path::new("/")))?;
        // CI runs as root, where the stranger's link is always checked.
        assert!(
            full || std::env::var_os("CI").is_none(),
            "under CI the tests run as root"
        );
        Ok(())
    }

    /// A link in a `--root` image pointing at a directory of this machine
    /// means that path inside the image: nothing outside is touched.
    #[test]
    fn links_never_lead_out_of_the_root() -> Result<(), Box<dyn std::error::Error>> {
        let outside = tempfile::tempdir()?;
        std::fs::write(outside.path().join("keep"), "outside")?;
        let dir = tempfile::tempdir()?;
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out"))?;
        std::os::unix::fs::symlink("../../../../../..", dir.path().join("up"))?;
        let host = LocalHost::new(Some(dir.path().to_path_buf()));
        assert!(host.stat(Path::new("/out/keep"))?.is_none());
        assert!(host
            .write(Path::new("/out/new"), b"x", Attrs::default())
            .is_err());
        assert!(host.remove(Path::new("/out/keep")).is_err());
        let up = Path::new("/up").join(outside.path().strip_prefix("/")?);
        assert!(host.stat(&up.join("keep"))?.is_none());
        assert!(host.chmod(&up.join("keep"), 0o600).is_err());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("keep"))?,
            "outside"
        );
        assert_eq!(std::fs::read_dir(outside.path())?.count(), 1);
        Ok(())
    }

    #[test]
    fn account_table_lookup() {
        let t = "# comment\nroot:x:0:0::/root:/bin/sh\napp:x:1001:1001::/srv:/bin/sh\n";
        assert_eq!(parse_account_table(t, "app"), Some(1001));
        assert_eq!(parse_account_table(t, "root"), Some(0));
        assert_eq!(parse_account_table(t, "nobody"), None);
        assert_eq!(name_in_table(t, 1001).as_deref(), Some("app"));
        assert_eq!(name_in_table(t, 7), None);
    }
}

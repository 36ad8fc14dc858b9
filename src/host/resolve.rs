//! Resolving a target path on this machine inside the host's root, one
//! component at a time.
//!
//! The kernel follows every symlink on a path wherever it points: out of a
//! `--root` image into the machine running fixer, or (fixer running as
//! root) through a link a user planted in their own home to a place only
//! root may write. So paths are walked here with `O_NOFOLLOW` per
//! component. A symlink is followed only when root or the user fixer acts
//! as owns it (a link anyone else made is refused, naming it), and then
//! inside the root: an absolute target starts again at the root and `..`
//! never climbs above it, as `openat2(RESOLVE_IN_ROOT)` resolves. The walk
//! ends at a directory descriptor and the final name; operations are `*at`
//! calls on that pair, so nothing can be swapped in between the check and
//! the use. The final component itself is never followed.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

/// Symlinks one path may go through, as the kernel allows (MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// Where a path's final component lives.
pub(super) struct Found {
    /// The directory holding the final component, or the directory the
    /// path resolved to when it has none (`/`, or a path ending in `..`).
    pub dir: OwnedFd,
    /// The final component as written, not followed.
    pub name: Option<OsString>,
    /// Where `dir` is, as a target path with every symlink resolved.
    pub at: PathBuf,
}

impl Found {
    /// The path the final component has with its parents resolved.
    pub fn path(&self) -> PathBuf {
        match &self.name {
            Some(n) => self.at.join(n),
            None => self.at.clone(),
        }
    }
}

pub(super) struct Resolver<'a> {
    pub root: &'a Path,
    /// Symlinks owned by root or by this user are followed.
    pub uid: u32,
}

pub(super) fn kind_of(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// The path's components as the walk takes them: names and `..`.
fn components(path: &OsStr) -> VecDeque<OsString> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Why a symlink was not followed, in the same words on every host.
pub fn untrusted_link(link: &Path, owner: u32) -> io::Error {
    io::Error::other(format!(
        "{} is a symlink owned by uid {owner}: fixer follows only symlinks owned by root or by \
         the user it acts as",
        link.display()
    ))
}

impl Resolver<'_> {
    /// Every component but the last resolved; the last as written.
    pub fn parent(&self, path: &Path) -> io::Result<Found> {
        self.walk(path, false)
    }

    /// The last component followed too, when it is a trusted symlink (a
    /// command's working directory).
    pub fn follow(&self, path: &Path) -> io::Result<Found> {
        self.walk(path, true)
    }

    fn walk(&self, path: &Path, follow_last: bool) -> io::Result<Found> {
        let root = open(
            self.root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut todo = components(path.as_os_str());
        let mut links = 0;
        let done = |root: OwnedFd, mut stack: Vec<(OwnedFd, OsString)>, name| {
            let at = at_of(&stack);
            let dir = stack.pop().map_or(root, |(fd, _)| fd);
            Found { dir, name, at }
        };
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                stack.pop();
                continue;
            }
            let last = todo.is_empty();
            if last && !follow_last {
                return Ok(done(root, stack, Some(c)));
            }
            let dir = stack.last().map_or(root.as_fd(), |(fd, _)| fd.as_fd());
            let st = match fstatat(dir, c.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) if last => return Ok(done(root, stack, Some(c))),
                Err(e) => return Err(e.into()),
            };
            let kind = kind_of(&st);
            if kind == SFlag::S_IFLNK {
                if st.st_uid != 0 && st.st_uid != self.uid {
                    return Err(untrusted_link(&at_of(&stack).join(&c), st.st_uid));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Errno::ELOOP.into());
                }
                let target = readlinkat(dir, c.as_os_str())?;
                if target.is_empty() {
                    return Err(Errno::ENOENT.into());
                }
                if target.as_bytes().starts_with(b"/") {
                    stack.clear();
                }
                for (i, t) in components(&target).into_iter().enumerate() {
                    todo.insert(i, t);
                }
                continue;
            }
            if last {
                return Ok(done(root, stack, Some(c)));
            }
            if kind != SFlag::S_IFDIR {
                return Err(Errno::ENOTDIR.into());
            }
            // O_NOFOLLOW: a symlink swapped in since the fstatat fails here.
            let fd = openat(
                dir,
                c.as_os_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            stack.push((fd, c));
        }
        Ok(done(root, stack, None))
    }
}

fn at_of(stack: &[(OwnedFd, OsString)]) -> PathBuf {
    let mut at = PathBuf::from("/");
    at.extend(stack.iter().map(|(_, n)| n));
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn resolver(root: &Path) -> Resolver<'_> {
        Resolver {
            root,
            uid: nix::unistd::geteuid().as_raw(),
        }
    }

    #[test]
    fn links_resolve_inside_the_root() -> Result<(), Box<dyn std::error::Error>> {
        let outside = tempfile::tempdir()?;
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub"))?;
        // Absolute and climbing targets both stay inside the root.
        symlink("/real", root.join("abs"))?;
        symlink("../../../../../../real", root.join("climb"))?;
        symlink(outside.path(), root.join("out"))?;
        let r = resolver(root);
        for p in ["/abs/sub/x", "/climb/sub/x"] {
            let f = r.parent(Path::new(p))?;
            assert_eq!(f.path(), Path::new("/real/sub/x"), "{p}");
        }
        // The outside directory's path, taken inside the root, is not there.
        let e = r.parent(&Path::new("/out").join("x")).err();
        assert_eq!(e.map(|e| e.kind()), Some(io::ErrorKind::NotFound));
        // The final component is not followed; `..` stops at the root.
        assert_eq!(r.parent(Path::new("/abs"))?.path(), Path::new("/abs"));
        assert_eq!(r.parent(Path::new("/../../x"))?.path(), Path::new("/x"));
        assert_eq!(r.follow(Path::new("/abs"))?.path(), Path::new("/real"));
        Ok(())
    }

    #[test]
    fn a_loop_is_an_error_not_a_hang() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        symlink("b", dir.path().join("a"))?;
        symlink("a", dir.path().join("b"))?;
        let e = resolver(dir.path()).parent(Path::new("/a/x")).err();
        assert_eq!(e.and_then(|e| e.raw_os_error()), Some(nix::libc::ELOOP));
        Ok(())
    }

    #[test]
    fn a_link_owned_by_another_user_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("real"))?;
        let link = dir.path().join("link");
        symlink("real", &link)?;
        let me = nix::unistd::geteuid().as_raw();
        // As root, give the link to someone else; otherwise it is ours,
        // and the resolver acts as someone else.
        let (owner, acting) = if me == 0 {
            std::os::unix::fs::lchown(&link, Some(4242), None)?;
            (4242, 0)
        } else {
            (me, me + 1)
        };
        let r = Resolver {
            root: dir.path(),
            uid: acting,
        };
        let e = r.parent(Path::new("/link/x")).err().map(|e| e.to_string());
        assert_eq!(
            e,
            Some(format!(
                "/link is a symlink owned by uid {owner}: fixer follows only symlinks owned by \
                 root or by the user it acts as"
            ))
        );
        // The link itself, as a final component, is not followed: fine.
        assert_eq!(r.parent(Path::new("/link"))?.path(), Path::new("/link"));
        Ok(())
    }
}

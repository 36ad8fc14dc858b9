//! The sandbox every test runs in: a tempdir holding a target root and a
//! playbook directory, and a builder for `fixer` invocations against it.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `HOME` as fixer sees it on the sandbox target.
pub const HOME: &str = "/home/tester";

pub struct Sandbox {
    dir: tempfile::TempDir,
}

/// What a path looked like: kind, mode, owner, group, content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub content: Option<Vec<u8>>,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::create_dir_all(dir.path().join("root")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("pb")).unwrap_or_else(|e| panic!("{e}"));
        Sandbox { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn base(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the target root.
    pub fn at(&self, target: &str) -> PathBuf {
        self.root().join(target.trim_start_matches('/'))
    }

    /// Write a playbook (or any file) into the playbook directory.
    pub fn playbook(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join("pb").join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    /// Create a file on the target, parents included.
    pub fn file(&self, target: &str, content: &str) -> PathBuf {
        let p = self.at(target);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&p, content).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    pub fn chmod(&self, target: &str, mode: u32) {
        std::fs::set_permissions(self.at(target), std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn read(&self, target: &str) -> String {
        std::fs::read_to_string(self.at(target)).unwrap_or_else(|e| panic!("read {target}: {e}"))
    }

    pub fn exists(&self, target: &str) -> bool {
        self.at(target).symlink_metadata().is_ok()
    }

    pub fn mode(&self, target: &str) -> u32 {
        self.at(target)
            .symlink_metadata()
            .unwrap_or_else(|e| panic!("stat {target}: {e}"))
            .mode()
            & 0o7777
    }

    /// `fixer ARGS --root ROOT`, with a fixed HOME and no colour.
    pub fn fixer(&self, args: &[&str]) -> Command {
        Command::from_std(self.command(args))
    }

    /// The same as a plain std command (for runs that die by a signal,
    /// which assert_cmd reports as an error).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"));
        cmd.args(args)
            .arg("--root")
            .arg(self.root())
            .env("HOME", HOME)
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path());
        cmd
    }

    /// `fixer ARGS` with no target option, in the sandbox folder (for the
    /// commands that touch no host: init, completions, man, diagnose).
    pub fn fixer_here(&self, args: &[&str]) -> Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"));
        cmd.args(args)
            .env("HOME", HOME)
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path());
        Command::from_std(cmd)
    }

    /// Every path under the root except fixer's own state folder.
    pub fn tree(&self) -> BTreeMap<String, Entry> {
        let mut out = BTreeMap::new();
        walk(&self.root(), &self.root(), &mut out);
        // /var and /var/lib exist on any real system; in an empty test root
        // fixer creates them for its state folder, which they then only hold.
        for parent in ["/var/lib", "/var"] {
            let prefix = format!("{parent}/");
            if !out.keys().any(|k| k.starts_with(&prefix)) && self.exists("/var/lib/fixer") {
                out.remove(parent);
            }
        }
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let rel = format!(
            "/{}",
            p.strip_prefix(root)
                .map(|r| r.display().to_string())
                .unwrap_or_default()
        );
        if rel == "/var/lib/fixer" {
            continue;
        }
        let Ok(m) = p.symlink_metadata() else {
            continue;
        };
        let kind = if m.file_type().is_symlink() {
            "symlink"
        } else if m.is_dir() {
            "dir"
        } else {
            "file"
        };
        let content = (kind == "file").then(|| std::fs::read(&p).unwrap_or_default());
        out.insert(
            rel,
            Entry {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                content,
            },
        );
        if kind == "dir" {
            walk(root, &p, out);
        }
    }
}

pub fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Replace the sandbox path and run ids so snapshots are stable.
pub fn stable(text: &str, sb: &Sandbox) -> String {
    let mut t = text.replace(&sb.base().display().to_string(), "[SANDBOX]");
    // Run ids: 20261125T071652-469 or with a -N suffix.
    let mut out = String::new();
    let mut rest = t.as_str();
    while let Some(i) = rest.find("T") {
        let (head, tail) = rest.split_at(i);
        let digits_before =
            head.len() >= 8 && head[head.len() - 8..].chars().all(|c| c.is_ascii_digit());
        if digits_before && tail.len() > 7 && tail[1..7].chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&head[..head.len() - 8]);
            out.push_str("[RUN]");
            let skip = tail[7..]
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_digit() || *c == '-'))
                .map_or(tail.len() - 7, |(j, _)| j);
            rest = &tail[7 + skip..];
        } else {
            out.push_str(head);
            out.push('T');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    t = out;
    t
}

/// Whether this process can act as another user (root, in CI).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

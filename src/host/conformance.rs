//! The `Host` contract as executable checks. Every implementation (local,
//! rooted, SSH) runs this same suite in its tests, so "atomic", "keeps mode
//! and owner", "lstat semantics" mean the same on all of them.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{Attrs, Cmd, FileKind, Host};

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("host contract violated: {what}"))
    }
}

fn io<T>(r: super::HostResult<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Run every contract check inside `scratch`, an existing, empty directory
/// on the target (a target path) that the caller owns and throws away.
pub fn run(host: &dyn Host, scratch: &Path) -> Result<(), String> {
    let p = |name: &str| -> PathBuf { scratch.join(name) };

    // stat: missing is None, not an error; below a file is missing too.
    check(
        io(host.stat(&p("missing")), "stat missing")?.is_none(),
        "stat of a missing path is None",
    )?;

    // write: creates with the requested mode; replaces keeping mode.
    io(
        host.write(
            &p("f"),
            b"one",
            Attrs {
                mode: Some(0o640),
                ..Attrs::default()
            },
        ),
        "write new",
    )?;
    let m = io(host.stat(&p("f")), "stat f")?.ok_or("written file missing")?;
    check(
        m.kind == FileKind::File && m.mode == 0o640 && m.size == 3,
        "new file has the given mode and size",
    )?;
    check(
        io(host.stat(&p("f/below")), "stat below a file")?.is_none(),
        "a path below a file is missing",
    )?;
    io(host.write(&p("f"), b"two!", Attrs::default()), "rewrite")?;
    let m2 = io(host.stat(&p("f")), "stat f")?.ok_or("rewritten file missing")?;
    check(
        m2.mode == 0o640 && (m2.uid, m2.gid) == (m.uid, m.gid),
        "rewrite keeps mode and owner",
    )?;
    check(
        io(host.read(&p("f")), "read")? == b"two!",
        "read returns what was written",
    )?;
    let names = io(host.list(scratch), "list")?;
    check(
        names == vec!["f".to_string()],
        "atomic write leaves no temporary file",
    )?;

    // Contents of every shape come back byte for byte, also when several
    // files are observed at once; modes with x bits are exact too.
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let shapes: [(&str, &[u8], u32); 4] = [
        ("quoted", b"it's \"q\" $(x) `y`\n\nend", 0o600),
        ("binary", b"a\0b\xff\n", 0o750),
        ("big", &big, 0o644),
        ("empty", b"", 0o4755),
    ];
    for (name, content, mode) in shapes {
        io(
            host.write(
                &p(name),
                content,
                Attrs {
                    mode: Some(mode),
                    ..Attrs::default()
                },
            ),
            "write shaped",
        )?;
    }
    // digest streams what read returns; copy makes a file as write does.
    for (name, content, _) in shapes {
        check(
            io(host.digest(&p(name)), "digest shaped")? == super::Digest::of(content),
            "digest is size, lines and SHA-256 of the content",
        )?;
        let copy = p(&format!("{name}.copy"));
        io(
            host.copy(
                &p(name),
                &copy,
                Attrs {
                    mode: Some(0o604),
                    ..Attrs::default()
                },
            ),
            "copy shaped",
        )?;
        check(
            io(host.read(&copy), "read copy")? == content
                && io(host.stat(&copy), "stat copy")?.is_some_and(|m| m.mode == 0o604),
            "copy makes a file holding the same bytes, with the given mode",
        )?;
        io(host.remove(&copy), "remove copy")?;
    }
    // Of a directory too: only a regular file is a stream that ends.
    io(host.mkdir(&p("dir"), 0o755), "mkdir")?;
    check(
        host.copy(&p("dir"), &p("nothing"), Attrs::default())
            .is_err()
            && host.digest(&p("dir")).is_err()
            && io(host.stat(&p("nothing")), "stat nothing")?.is_none(),
        "copy and digest of a directory fail, making nothing",
    )?;
    io(host.remove(&p("dir")), "remove dir")?;
    // A FIFO nobody writes to: refused at once, not waited on forever.
    let fifo = p("fifo");
    let made = io(
        host.run(&Cmd {
            // A command sees the real filesystem: under --root, the
            // target path is below $FIXER_ROOT.
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                r#"mkfifo -- "${FIXER_ROOT:-}$1""#.into(),
                "sh".into(),
                fifo.display().to_string(),
            ],
            timeout_secs: Some(30),
            ..Cmd::default()
        }),
        "mkfifo",
    )?;
    check(made.success(), "mkfifo runs")?;
    check(
        host.digest(&fifo).is_err()
            && host.copy(&fifo, &p("nothing"), Attrs::default()).is_err()
            && io(host.stat(&p("nothing")), "stat nothing")?.is_none(),
        "copy and digest of a FIFO fail at once, making nothing",
    )?;
    io(host.remove(&fifo), "remove fifo")?;
    check(
        host.copy(&p("missing"), &p("nothing"), Attrs::default())
            .is_err()
            && io(host.stat(&p("nothing")), "stat nothing")?.is_none()
            && host.digest(&p("missing")).is_err(),
        "copy and digest of a missing file fail, making nothing",
    )?;
    let paths: Vec<PathBuf> = shapes.iter().map(|(n, _, _)| p(n)).collect();
    io(host.prefetch(&paths), "prefetch shaped")?;
    for (name, content, mode) in shapes {
        check(
            io(host.digest(&p(name)), "digest prefetched")? == super::Digest::of(content),
            "digest of a prefetched file is that of its content",
        )?;
        check(
            io(host.read(&p(name)), "read shaped")? == content
                && io(host.stat(&p(name)), "stat shaped")?.is_some_and(|m| m.mode == mode),
            "contents of any shape and modes with x or setuid bits are kept exactly",
        )?;
        io(host.remove(&p(name)), "remove shaped")?;
    }

    // append is cumulative.
    io(host.append(&p("log"), b"a\n"), "append")?;
    io(host.append(&p("log"), b"b\n"), "append")?;
    check(
        io(host.read(&p("log")), "read log")? == b"a\nb\n",
        "append accumulates",
    )?;
    io(
        host.append_all(&[
            (p("log"), b"c\n".to_vec()),
            (p("log2"), Vec::new()),
            (p("log2"), b"x\0y".to_vec()),
        ]),
        "append_all",
    )?;
    check(
        io(host.read(&p("log")), "read log")? == b"a\nb\nc\n"
            && io(host.read(&p("log2")), "read log2")? == b"x\0y",
        "append_all appends each item to its own file",
    )?;
    io(host.remove(&p("log2")), "remove log2")?;

    // mkdir / list sorted / chmod / rename / remove.
    io(host.mkdir(&p("d"), 0o700), "mkdir")?;
    check(
        io(host.stat(&p("d")), "stat d")?
            .is_some_and(|m| m.kind == FileKind::Dir && m.mode == 0o700),
        "mkdir sets the exact mode, whatever the umask",
    )?;
    for n in ["c", "a", "b"] {
        io(
            host.write(&p(&format!("d/{n}")), n.as_bytes(), Attrs::default()),
            "write in d",
        )?;
    }
    check(
        io(host.list(&p("d")), "list d")? == ["a", "b", "c"],
        "list is sorted",
    )?;
    io(host.chmod(&p("d/a"), 0o600), "chmod")?;
    check(
        io(host.stat(&p("d/a")), "stat")?.is_some_and(|m| m.mode == 0o600),
        "chmod sets the mode",
    )?;
    io(host.rename(&p("d"), &p("e")), "rename")?;
    check(
        io(host.stat(&p("d")), "stat d")?.is_none()
            && io(host.read(&p("e/b")), "read e/b")? == b"b",
        "rename moves a tree",
    )?;
    let not_empty = host.remove(&p("e"));
    check(not_empty.is_err(), "remove refuses a non-empty directory")?;
    for n in ["a", "b", "c"] {
        io(host.remove(&p(&format!("e/{n}"))), "remove file")?;
    }
    io(host.remove(&p("e")), "remove empty dir")?;
    check(
        io(host.stat(&p("e")), "stat e")?.is_none(),
        "remove removes",
    )?;

    // Errors carry their kind.
    let err = host
        .read(&p("missing"))
        .err()
        .ok_or("reading a missing file succeeded")?;
    check(
        err.kind() == ErrorKind::NotFound,
        "reading a missing file is NotFound",
    )?;

    // run: argv, exit code, env, cwd.
    let out = io(
        host.run(&Cmd {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "printf '%s' \"$V\"; pwd >&2; exit 3".into(),
            ],
            env: vec![("V".into(), "it's $(x)".into())],
            cwd: Some(scratch.to_path_buf()),
            timeout_secs: Some(30),
            changes_only: None,
        }),
        "run",
    )?;
    check(
        out.code == Some(3) && out.stdout == b"it's $(x)" && !out.timed_out,
        "run passes env verbatim and reports the exit code",
    )?;
    let slow = io(
        host.run(&Cmd {
            argv: vec!["sleep".into(), "20".into()],
            timeout_secs: Some(1),
            ..Cmd::default()
        }),
        "run with timeout",
    )?;
    check(
        slow.timed_out && slow.code.is_none(),
        "a command past its timeout is killed and says so",
    )?;

    // scratch: a directory commands can use, gone when dropped.
    let sc = io(host.scratch(), "scratch")?;
    io(sc.write("go.mod", b"module x\n"), "scratch write")?;
    check(
        io(sc.read("go.mod"), "scratch read")?.as_deref() == Some(&b"module x\n"[..]),
        "scratch read returns what was written",
    )?;
    check(
        io(sc.read("nope"), "scratch read missing")?.is_none(),
        "a missing scratch file is None",
    )?;
    let seen = io(
        host.run(&Cmd {
            argv: vec!["cat".into(), sc.path().join("go.mod").display().to_string()],
            ..Cmd::default()
        }),
        "run in scratch",
    )?;
    check(
        seen.stdout == b"module x\n",
        "commands see scratch files at scratch.path()",
    )?;
    let sc_path = sc.path().to_path_buf();
    drop(sc);
    let gone = io(
        host.run(&Cmd {
            argv: vec!["test".into(), "-e".into(), sc_path.display().to_string()],
            ..Cmd::default()
        }),
        "test scratch gone",
    )?;
    check(
        gone.code == Some(1),
        "a dropped scratch directory is removed",
    )?;

    // lock: exclusive, visible, released on drop.
    let lock_path = p("lock");
    check(
        !io(host.lock_held(&lock_path), "lock_held")?,
        "no lock held initially",
    )?;
    let guard = io(host.lock(&lock_path), "lock")?;
    check(
        io(host.lock_held(&lock_path), "lock_held")?,
        "a held lock is visible",
    )?;
    let second = host.lock(&lock_path);
    check(
        second
            .err()
            .is_some_and(|e| e.kind() == ErrorKind::WouldBlock),
        "a second lock is refused with WouldBlock",
    )?;
    drop(guard);
    check(
        !io(host.lock_held(&lock_path), "lock_held")?,
        "dropping the guard releases the lock",
    )?;

    // batch: queued changes are seen by the next observation, in order;
    // a failing one is reported (at once or when the batch ends), naming
    // its path, and the changes after it are not made.
    io(host.batch(true), "start a batch")?;
    io(host.mkdir(&p("b"), 0o755), "batched mkdir")?;
    io(
        host.write(&p("b/one"), b"1", Attrs::default()),
        "batched write",
    )?;
    check(
        io(host.read(&p("b/one")), "read after a batched write")? == b"1",
        "an observation sees the changes queued before it",
    )?;
    let failed = host
        .write(&p("nodir/x"), b"x", Attrs::default())
        .and_then(|()| host.write(&p("b/after"), b"2", Attrs::default()))
        .and_then(|()| host.batch(false));
    check(
        failed
            .as_ref()
            .err()
            .is_some_and(|e| e.path == p("nodir/x")),
        "a failed batched change is reported with its path",
    )?;
    io(host.batch(false), "end the batch")?;
    check(
        io(host.stat(&p("b/after")), "stat after a failed batch")?.is_none(),
        "changes queued after a failed one are not made",
    )?;
    Ok(())
}

/// Makes a symlink on the target for [`symlinks`]: `link` (a target path)
/// pointing at `to`, owned by `owner` (`None`: whoever makes it). Returns
/// false when it cannot give the link that owner (not running as root).
pub type MakeLink<'a> = &'a dyn Fn(&Path, &Path, Option<u32>) -> Result<bool, String>;

/// A uid that is neither root nor anyone fixer acts as in the tests.
pub const STRANGER: u32 = 4242;

/// How every host treats symlinks (`host/resolve.rs`): a symlink on the
/// way to a path is followed when root or the acting user owns it, any
/// other is refused with the same words and changes nothing, and the
/// final component is never followed. Runs in `scratch`, as [`run`].
/// Returns whether the stranger's link could be made (as root only).
pub fn symlinks(host: &dyn Host, scratch: &Path, link: MakeLink<'_>) -> Result<bool, String> {
    let p = |name: &str| -> PathBuf { scratch.join(name) };
    io(host.mkdir(&p("real"), 0o755), "mkdir real")?;
    io(
        host.write(&p("real/f"), b"inside", Attrs::default()),
        "write f",
    )?;
    let real_mode = io(host.stat(&p("real")), "stat real")?.map(|m| m.mode);
    link(&p("ours"), &p("real"), None)?;
    link(&p("flink"), &p("real/f"), None)?;

    // Through a link we own: the path it points to.
    check(
        io(host.stat(&p("ours/f")), "stat through our link")?.is_some_and(|m| m.size == 6),
        "stat follows a trusted symlink on the way",
    )?;
    io(
        host.write(&p("ours/g"), b"g", Attrs::default()),
        "write through our link",
    )?;
    check(
        io(host.read(&p("real/g")), "read real/g")? == b"g",
        "write lands where a trusted symlink points",
    )?;
    io(host.remove(&p("real/g")), "remove real/g")?;

    // The final component is not followed.
    check(
        io(host.stat(&p("ours")), "stat our link")?.is_some_and(|m| m.kind == FileKind::Symlink),
        "stat does not follow the final symlink",
    )?;
    check(
        host.read(&p("flink")).is_err(),
        "read refuses a final symlink",
    )?;
    check(
        host.list(&p("ours")).is_err(),
        "list refuses a final symlink",
    )?;
    check(
        host.append(&p("flink"), b"x").is_err(),
        "append refuses a final symlink",
    )?;
    check(
        host.chmod(&p("ours"), 0o700).is_err(),
        "chmod refuses a final symlink",
    )?;
    check(
        io(host.stat(&p("real")), "stat real")?.map(|m| m.mode) == real_mode
            && io(host.read(&p("real/f")), "read f")? == b"inside",
        "nothing a final symlink points to changed",
    )?;
    io(
        host.write(&p("flink"), b"replaced", Attrs::default()),
        "write over a final symlink",
    )?;
    check(
        io(host.stat(&p("flink")), "stat flink")?.is_some_and(|m| m.kind == FileKind::File)
            && io(host.read(&p("real/f")), "read f")? == b"inside",
        "write replaces a final symlink instead of writing through it",
    )?;
    io(host.remove(&p("ours")), "remove our link")?;
    check(
        io(host.stat(&p("real/f")), "stat f")?.is_some(),
        "remove of a symlink removes the link only",
    )?;

    // Through a link someone else owns: refused, nothing changed.
    if !link(&p("theirs"), &p("real"), Some(STRANGER))? {
        return Ok(false);
    }
    let words = format!(
        "{} is a symlink owned by uid {STRANGER}: fixer follows only symlinks owned by root or \
         by the user it acts as",
        p("theirs").display()
    );
    let refused = |what: &str, r: Result<(), super::HostError>| -> Result<(), String> {
        match r {
            Ok(()) => Err(format!(
                "host contract violated: {what} through a stranger's symlink succeeded"
            )),
            Err(e) if e.to_string().contains(&words) => Ok(()),
            Err(e) => Err(format!(
                "host contract violated: {what} through a stranger's symlink: `{e}` does not say `{words}`"
            )),
        }
    };
    let via = |name: &str| p("theirs").join(name);
    refused("stat", host.stat(&via("f")).map(drop))?;
    refused("read", host.read(&via("f")).map(drop))?;
    refused("list", host.list(&via("f")).map(drop))?;
    refused("write", host.write(&via("new"), b"x", Attrs::default()))?;
    refused("append", host.append(&via("f"), b"x"))?;
    refused("mkdir", host.mkdir(&via("d"), 0o755))?;
    refused("chmod", host.chmod(&via("f"), 0o600))?;
    refused("chown", host.chown(&via("f"), Some(0), None))?;
    refused("remove", host.remove(&via("f")))?;
    refused("rename from", host.rename(&via("f"), &p("moved")))?;
    refused("rename to", host.rename(&p("flink"), &via("moved")))?;
    refused("lock", host.lock(&via("lock")).map(drop))?;
    check(
        io(host.list(&p("real")), "list real")? == ["f"]
            && io(host.read(&p("real/f")), "read f")? == b"inside"
            && io(host.stat(&p("real/f")), "stat f")?.is_some_and(|m| m.mode != 0o600),
        "nothing behind a stranger's symlink changed",
    )?;
    Ok(true)
}

//! Fault injection: a 30-resource apply is killed (SIGKILL) at every change
//! point in turn, and made to fail with ENOSPC and EIO at every write in
//! turn; each time the target must come back byte for byte, mode and owner
//! included. A read-only target changes nothing. Needs the `failpoints`
//! feature (tests/run-all.sh turns it on): src/failpoint.rs.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;

use crate::support::{is_root, stderr_of, stdout_of, Entry, Sandbox, TestResult};

/// 30 resources: new files in new directories, rewritten files (content,
/// mode and owner), permissions, removals, a read-only cache cleared,
/// directories, an env file edited in place.
fn playbook(owner: bool) -> String {
    let own = if owner {
        "owner = \"app\"\ngroup = \"app\"\n"
    } else {
        ""
    };
    let mut pb = String::from("[playbook]\nname = \"thirty\"\n");
    for i in 0..9 {
        pb += &format!(
            "\n[[resource]]\ntype = \"file\"\npath = \"/srv/new{}/conf/f{i}.conf\"\ncontent = \"new {i}\\n\"\nmode = \"0640\"\n{own}",
            i % 3
        );
    }
    for i in 0..8 {
        pb += &format!(
            "\n[[resource]]\ntype = \"file\"\npath = \"/etc/app/old{i}\"\ncontent = \"rewritten {i}\\n\"\nmode = \"0600\"\n{own}"
        );
    }
    for i in 0..4 {
        pb += &format!(
            "\n[[resource]]\ntype = \"permissions\"\npath = \"/srv/data/p{i}\"\nmode = \"u=rw,g=r,o=\"\n{own}"
        );
    }
    for i in 0..4 {
        pb += &format!(
            "\n[[resource]]\ntype = \"file\"\npath = \"/etc/app/gone{i}\"\nstate = \"absent\"\n"
        );
    }
    pb += "\n[[resource]]\ntype = \"clean\"\npaths = [\"/home/tester/go/pkg/mod/cache/download/example.com\"]\n";
    pb += "\n[[resource]]\ntype = \"clean\"\npaths = [\"/var/cache/app/*.tmp\"]\n";
    for i in 0..2 {
        pb += &format!("\n[[resource]]\ntype = \"file\"\npath = \"/srv/dirs/d{i}\"\nstate = \"directory\"\nmode = \"0750\"\n{own}");
    }
    pb += "\n[[resource]]\ntype = \"env\"\nstyle = \"profile\"\npath = \"/etc/profile.d/app.sh\"\nvars = { GOPROXY = \"https://goproxy.example\", GOPRIVATE = \"corp.example\" }\n";
    pb
}

fn seed(sb: &Sandbox) {
    sb.file(
        "/etc/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1500:1500::/srv:/bin/sh\n",
    );
    sb.file("/etc/group", "root:x:0:\napp:x:1500:\n");
    for i in 0..8 {
        sb.file(&format!("/etc/app/old{i}"), &format!("old {i}\n"));
        sb.chmod(&format!("/etc/app/old{i}"), 0o644);
    }
    for i in 0..4 {
        sb.file(&format!("/srv/data/p{i}"), &format!("data {i}\n"));
        sb.chmod(&format!("/srv/data/p{i}"), 0o666);
        sb.file(&format!("/etc/app/gone{i}"), &format!("doomed {i}\n"));
    }
    let m = "/home/tester/go/pkg/mod/cache/download/example.com/m/@v";
    sb.file(&format!("{m}/v1.0.0.zip"), "zip");
    sb.file(&format!("{m}/list"), "v1.0.0\n");
    sb.chmod(&format!("{m}/v1.0.0.zip"), 0o444);
    sb.chmod(m, 0o555);
    sb.file("/var/cache/app/a.tmp", "a");
    sb.file("/var/cache/app/keep.dat", "k");
    sb.file("/etc/profile.d/app.sh", "# kept\nexport OTHER='x'\n");
    // As on any real system (fixer's state folder goes in it).
    sb.file("/var/lib/dpkg/status", "");
}

/// The paths whose entries differ, for a readable failure.
fn differences(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", a.get(k), b.get(k)))
        .collect()
}

struct Setup {
    sb: Sandbox,
    pb: String,
    before: BTreeMap<String, Entry>,
}

fn setup() -> Result<Setup, Box<dyn std::error::Error>> {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb
        .playbook("thirty.toml", &playbook(is_root()))
        .display()
        .to_string();
    let before = sb.tree();
    Ok(Setup { sb, pb, before })
}

/// The playbook really has 30 resources and really changes the target.
#[test]
fn the_fault_playbook_changes_thirty_things() -> TestResult {
    let s = setup()?;
    let out = s.sb.command(&["apply", &s.pb]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains("Apply complete: 11 added, 13 changed, 6 removed, 0 unchanged."),
        "{text}"
    );
    assert_ne!(s.sb.tree(), s.before);
    Ok(())
}

/// Apply with the failpoint at its `n`-th pass; None once `n` is past the
/// last pass (the apply then succeeds).
fn apply_failing_at(
    s: &Setup,
    spec: &str,
) -> Result<Option<std::process::Output>, Box<dyn std::error::Error>> {
    let out =
        s.sb.command(&["apply", &s.pb])
            .env("FIXER_FAILPOINT", spec)
            .output()?;
    if out.status.success() {
        return Ok(None);
    }
    Ok(Some(out))
}

fn kill_at_every(point: &str) -> TestResult {
    let mut n = 1;
    loop {
        let s = setup()?;
        let Some(out) = apply_failing_at(&s, &format!("{point}:{n}:kill"))? else {
            break;
        };
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point} {n}: expected death by SIGKILL: {}",
            stderr_of(&out)
        );
        let rb = s.sb.command(&["rollback"]).output()?;
        let err = stderr_of(&rb);
        assert!(rb.status.success(), "{point} {n}: rollback failed: {err}");
        let diff = differences(&s.before, &s.sb.tree());
        assert!(
            diff.is_empty(),
            "{point} {n}: target not restored: {diff:#?}"
        );
        // And the target is usable again: nothing interrupted is left.
        let again = s.sb.command(&["plan", &s.pb]).output()?;
        assert!(
            !stderr_of(&again).contains("interrupted"),
            "{point} {n}: {}",
            stderr_of(&again)
        );
        n += 1;
    }
    // Every change passes the point at least once.
    assert!(n > 30, "only {} passes of `{point}`", n - 1);
    Ok(())
}

#[test]
fn sigkill_at_every_change_point_is_rolled_back_exactly() -> TestResult {
    kill_at_every("change")
}

#[test]
fn sigkill_at_every_write_is_rolled_back_exactly() -> TestResult {
    kill_at_every("write")
}

/// A rollback killed at any of its writes is resumed by the next one,
/// which restores the target exactly (issue 17.7). It used to stay
/// "applied", and the next rollback refused its own half-restored paths as
/// edits made since the run.
#[test]
fn a_rollback_killed_at_every_write_is_resumed_exactly() -> TestResult {
    let mut n = 1;
    loop {
        let s = setup()?;
        let out = s.sb.command(&["apply", &s.pb]).output()?;
        assert!(out.status.success(), "{}", stderr_of(&out));
        let rb =
            s.sb.command(&["rollback"])
                .env("FIXER_FAILPOINT", format!("write:{n}:kill"))
                .output()?;
        if rb.status.success() {
            break;
        }
        assert_eq!(
            rb.status.signal(),
            Some(9),
            "write {n}: expected death by SIGKILL: {}",
            stderr_of(&rb)
        );
        if n > 1 {
            // Past its first write (the record), the run says what happened.
            let history = stdout_of(&s.sb.command(&["history"]).output()?);
            assert!(
                history.contains("rollback interrupted"),
                "write {n}: {history}"
            );
            // Nothing may be applied on a half-restored target.
            let again = s.sb.command(&["apply", &s.pb]).output()?;
            assert_eq!(again.status.code(), Some(1), "write {n}: apply went ahead");
            assert!(stderr_of(&again).contains("was interrupted"), "write {n}");
        }
        let resumed = s.sb.command(&["rollback"]).output()?;
        assert!(
            resumed.status.success(),
            "write {n}: the next rollback did not resume: {}",
            stderr_of(&resumed)
        );
        let diff = differences(&s.before, &s.sb.tree());
        assert!(diff.is_empty(), "write {n}: target not restored: {diff:#?}");
        let history = stdout_of(&s.sb.command(&["history"]).output()?);
        assert!(history.contains("rolled back"), "write {n}: {history}");
        n += 1;
    }
    // The record, then at least one write per restored file.
    assert!(n > 10, "only {} writes in a rollback", n - 1);
    Ok(())
}

fn fail_every_write_with(error: &str, message: &str) -> TestResult {
    let mut n = 1;
    loop {
        let s = setup()?;
        let Some(out) = apply_failing_at(&s, &format!("write:{n}:{error}"))? else {
            break;
        };
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "write {n}: {err}");
        assert!(err.contains(message), "write {n}: {err}");
        assert!(!err.contains("ROLLBACK INCOMPLETE"), "write {n}: {err}");
        let diff = differences(&s.before, &s.sb.tree());
        assert!(
            diff.is_empty(),
            "write {n}: target not restored: {err}\n{diff:#?}"
        );
        n += 1;
    }
    assert!(n > 30, "only {} writes", n - 1);
    Ok(())
}

#[test]
fn enospc_at_every_write_is_rolled_back_exactly() -> TestResult {
    fail_every_write_with("enospc", "No space left on device")
}

#[test]
fn eio_at_every_write_is_rolled_back_exactly() -> TestResult {
    fail_every_write_with("eio", "Input/output error")
}

/// A target mounted read-only (an image, a locked-down VM): apply fails
/// with the system's own words and changes nothing. The mount lives in a
/// mount namespace of the test's own.
#[test]
fn a_read_only_target_changes_nothing() -> TestResult {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run as root to mount a read-only target"
        );
        return Ok(());
    }
    let s = setup()?;
    let root = s.sb.root();
    let script = r#"root="$1"; shift
mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" && exec "$@""#;
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&root)
        .arg(assert_cmd::cargo::cargo_bin("fixer"))
        .args(["apply", &s.pb, "--root"])
        .arg(&root)
        .env("HOME", crate::support::HOME)
        .env("NO_COLOR", "1")
        .output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    let diff = differences(&s.before, &s.sb.tree());
    assert!(diff.is_empty(), "{diff:#?}");
    Ok(())
}

//! Rollback: after a failure, after SIGKILL, and on request; the target ends
//! as it was, byte for byte, mode and owner included.

use std::process::Stdio;
use std::time::{Duration, Instant};

use predicates::str::contains;

use crate::plan::{seed, MIXED};
use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

#[test]
fn rollback_restores_the_target_exactly() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let before = sb.tree();
    let pb = sb.playbook("mixed.toml", MIXED);
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    assert_ne!(sb.tree(), before);
    let out = sb.fixer(&["rollback"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("Rolled back run"));
    // Commands without `undo` are reported, and their output stays.
    let err = stderr_of(&out);
    assert!(
        err.contains("command `echo built > built.txt` ran and declares no `undo`"),
        "{err}"
    );
    let mut after = sb.tree();
    after.remove("/built.txt");
    after.remove("/reload.log");
    assert_eq!(after, before);
    // Nothing left to undo: said, and a success, as scripts expect; JSON
    // says it as a field.
    sb.fixer(&["rollback"])
        .assert()
        .code(0)
        .stdout(contains("Nothing to roll back on"));
    sb.fixer(&["rollback", "--format", "json"])
        .assert()
        .code(0)
        .stdout(contains(r#""nothing_to_roll_back": true"#));
    Ok(())
}

#[test]
fn rollback_walks_back_run_by_run_and_by_name() -> TestResult {
    let sb = Sandbox::new();
    let write = |content: &str| {
        sb.playbook(
            "p.toml",
            &format!("[playbook]\nname = \"v\"\n[[resource]]\ntype = \"file\"\npath = \"/v\"\ncontent = \"{content}\"\n"),
        )
    };
    let pb = write("one");
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    let pb = write("two");
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    // A no-change run is recorded but skipped by rollback.
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    let history = stdout_of(&sb.fixer(&["history", "--format", "json"]).output()?);
    let runs: serde_json::Value = serde_json::from_str(&history)?;
    assert_eq!(runs.as_array().map(Vec::len), Some(3));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.read("/v"), "one");
    sb.fixer(&["rollback"]).assert().success();
    assert!(!sb.exists("/v"));
    let first = runs[0]["id"].as_str().ok_or("id")?;
    sb.fixer(&["rollback", first])
        .assert()
        .code(0)
        .stdout(contains("Nothing to roll back: run"))
        .stdout(contains("is already rolled back"));
    sb.fixer(&["rollback", "no-such-run"])
        .assert()
        .code(1)
        .stderr(contains("no run `no-such-run`"));
    sb.fixer(&["history"])
        .assert()
        .success()
        .stdout(contains("rolled back"));
    Ok(())
}

const FAILING: &str = r#"[playbook]
name = "fails"
[[resource]]
type = "file"
path = "/etc/motd"
content = "changed\n"
mode = "0600"
[[resource]]
type = "file"
path = "/new/dir/file"
content = "new\n"
[[resource]]
type = "clean"
paths = ["/var/cache/app"]
[[resource]]
type = "command"
run = "echo partial > partial.txt; echo 'it broke' >&2; exit 3"
[[resource]]
type = "file"
path = "/never"
content = "x"
"#;

#[test]
fn a_command_failing_halfway_rolls_everything_back() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let before = sb.tree();
    let pb = sb.playbook("f.toml", FAILING);
    let out = sb.fixer(&["apply", pb.to_str().ok_or("path")?]).output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("resource `command:echo partial"), "{err}");
    assert!(err.contains("failed (exit status 3)"), "{err}");
    assert!(err.contains("it broke"), "{err}");
    assert!(
        err.contains("changes undone; the target is as it was before this apply"),
        "{err}"
    );
    let mut after = sb.tree();
    after.remove("/partial.txt");
    assert_eq!(after, before);
    sb.fixer(&["history"])
        .assert()
        .success()
        .stdout(contains("failed, rolled back"));
    // A failed run is not offered again for rollback.
    sb.fixer(&["rollback"])
        .assert()
        .code(0)
        .stdout(contains("Nothing to roll back on"));
    Ok(())
}

const KILLED: &str = r#"[playbook]
name = "killed"
[[resource]]
type = "file"
path = "/etc/motd"
content = "changed\n"
[[resource]]
type = "clean"
paths = ["/var/cache/app"]
[[resource]]
type = "command"
run = "kill -9 $PPID; sleep 5"
[[resource]]
type = "file"
path = "/never"
content = "x"
"#;

#[test]
fn sigkill_halfway_is_detected_and_rolled_back() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let before = sb.tree();
    let pb = sb.playbook("k.toml", KILLED);
    let pb = pb.to_str().ok_or("path")?;
    let out = sb.command(&["apply", pb]).output()?;
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "apply was expected to die by SIGKILL"
    );
    assert_eq!(sb.read("/etc/motd"), "changed\n");
    assert!(!sb.exists("/var/cache/app"));

    // plan warns, apply refuses, both name the way out.
    sb.fixer(&["plan", pb])
        .assert()
        .success()
        .stderr(contains(
            "was interrupted before it finished; roll it back with `fixer rollback",
        ))
        .stderr(contains(format!("--root {}`", sb.root().display())));
    let refused = sb.command(&["apply", pb]).output()?;
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        err.contains("was interrupted before it finished; roll it back first with `fixer rollback"),
        "{err}"
    );
    sb.fixer(&["history"])
        .assert()
        .success()
        .stdout(contains("interrupted"));

    // The hint, run as the user would paste it: it names the root, so it
    // acts on the sandbox (never checked by running it without).
    let hint = err
        .split('`')
        .nth(1)
        .ok_or("no command in the message")?
        .to_string();
    let words: Vec<&str> = hint.split_whitespace().collect();
    assert_eq!(
        &words[words.len() - 2..],
        ["--root", sb.root().to_str().ok_or("path")?],
        "{hint}"
    );
    assert_eq!(words[..2], ["fixer", "rollback"], "{hint}");
    let ran = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"))
        .args(&words[1..])
        .env("HOME", crate::support::HOME)
        .output()?;
    assert_eq!(ran.status.code(), Some(0), "{hint}: {:?}", ran);
    assert_eq!(sb.tree(), before);
    sb.fixer(&["history"])
        .assert()
        .success()
        .stdout(contains("rolled back"));
    Ok(())
}

#[test]
fn two_applies_at_once_one_waits_out() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "slow.toml",
        r#"[playbook]
name = "slow"
[[resource]]
type = "command"
run = "touch started; i=0; while [ ! -e release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"
"#,
    );
    let pb = pb.to_str().ok_or("path")?;
    let mut first = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"))
        .args(["apply", pb, "--root"])
        .arg(sb.root())
        .env("HOME", crate::support::HOME)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let t0 = Instant::now();
    while !sb.exists("/started") {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = first.kill();
            return Err("first apply never started".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = sb.fixer(&["apply", pb]).output();
    let rollback = sb.fixer(&["rollback"]).output();
    sb.file("/release", "");
    let status = first.wait()?;
    let (second, rollback) = (second?, rollback?);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr_of(&second).contains("another fixer apply or rollback holds the lock"),
        "{}",
        stderr_of(&second)
    );
    assert_eq!(rollback.status.code(), Some(1));
    assert!(stderr_of(&rollback).contains("holds the lock"));
    assert!(status.success());
    Ok(())
}

fn run_dir(sb: &Sandbox) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let runs = sb.at("/var/lib/fixer/runs");
    let mut ids: Vec<_> = std::fs::read_dir(&runs)?
        .flatten()
        .map(|e| e.path())
        .collect();
    ids.sort();
    ids.pop().ok_or_else(|| "no run".into())
}

const TWO_FILES: &str = "[playbook]\nname = \"two\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\ncontent = \"new a\\n\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/b\"\ncontent = \"new b\\n\"\n";

#[test]
fn torn_last_journal_line_is_ignored_and_a_corrupt_one_is_reported() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/a", "old a\n");
    let before = sb.tree();
    let pb = sb.playbook("p.toml", TWO_FILES);
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    let journal = run_dir(&sb)?.join("journal.jsonl");
    let good = std::fs::read(&journal)?;

    // What a kill in the middle of an append leaves.
    let mut torn = good.clone();
    torn.extend_from_slice(b"{\"entry\":\"begin\",\"step\":9,\"res");
    std::fs::write(&journal, &torn)?;
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);

    // A damaged line in the middle is corruption, named with its line.
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    let journal = run_dir(&sb)?.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal)?;
    std::fs::write(&journal, format!("garbage\n{text}"))?;
    sb.fixer(&["rollback"])
        .assert()
        .code(1)
        .stderr(contains("corrupt run record"))
        .stderr(contains("journal.jsonl: line 1"));
    Ok(())
}

#[test]
fn incomplete_rollback_says_so_and_can_be_retried() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/a", "old a\n");
    sb.file("/etc/b", "old b\n");
    let before = sb.tree();
    let pb = sb.playbook("p.toml", TWO_FILES);
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    let saved = run_dir(&sb)?.join("saved");
    let hidden = sb.base().join("hidden-backup");
    let first_backup = std::fs::read_dir(&saved)?
        .flatten()
        .map(|e| e.path())
        .min()
        .ok_or("backup")?;
    std::fs::rename(&first_backup, &hidden)?;
    sb.fixer(&["rollback"])
        .assert()
        .code(1)
        .stderr(contains("rollback of run"))
        .stderr(contains("is incomplete (1 undone, 1 failed)"));
    sb.fixer(&["history"])
        .assert()
        .success()
        .stdout(contains("rollback incomplete"));
    std::fs::rename(&hidden, &first_backup)?;
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn corrupt_run_record_is_reported() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("p.toml", TWO_FILES);
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    std::fs::write(run_dir(&sb)?.join("run.json"), "{not json")?;
    sb.fixer(&["history"])
        .assert()
        .code(1)
        .stderr(contains("corrupt run record"))
        .stderr(contains("run.json"));
    Ok(())
}

#[test]
fn run_killed_before_its_first_change_can_be_closed() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/a", "old\n");
    let before = sb.tree();
    let pb = sb.playbook(
        "k.toml",
        "[playbook]\nname = \"early\"\n[[resource]]\ntype = \"command\"\nrun = \"true\"\nunless = \"kill -9 $PPID; sleep 5\"\n",
    );
    let out = sb
        .command(&["apply", pb.to_str().ok_or("path")?])
        .output()?;
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(out.status.signal(), Some(9));
    let other = sb.playbook("o.toml", "[playbook]\nname = \"o\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\ncontent = \"new\\n\"\n");
    sb.fixer(&["apply", other.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("was interrupted"));
    sb.fixer(&["rollback"])
        .assert()
        .success()
        .stdout(contains("0 changes undone"));
    assert_eq!(sb.tree(), before);
    sb.fixer(&["apply", other.to_str().ok_or("path")?])
        .assert()
        .success();
    assert_eq!(sb.read("/etc/a"), "new\n");
    Ok(())
}

/// Edits made to a run's paths after it finished are not overwritten
/// unseen: rollback refuses, naming each, and changes nothing; `--force`
/// restores the state before the run anyway.
#[test]
fn rollback_refuses_to_overwrite_changes_made_since_the_run() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let before = sb.tree();
    let pb = sb.playbook("mixed.toml", MIXED);
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    // Someone edits after the run: content, mode, a cleared cache file
    // back again. A new file in /srv/app, whose mode alone the run changed
    // (and rollback restores), is not in the way.
    sb.file("/etc/motd", "edited by hand\n");
    sb.chmod("/srv/app/config.ini", 0o600);
    sb.file("/srv/app/notes.txt", "mine\n");
    sb.file("/var/cache/app/a.tmp", "downloaded again");
    let edited = sb.tree();

    let out = sb.fixer(&["rollback"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: rollback of run ")
            && first.contains("refused: 3 paths changed since the run"),
        "{err}"
    );
    for line in [
        "/etc/motd: content changed",
        "/srv/app/config.ini: mode 0640 -> 0600",
        "/var/cache/app/a.tmp: created since",
    ] {
        assert!(err.contains(line), "`{line}` missing:\n{err}");
    }
    assert!(!err.contains("/srv/app:"), "{err}");
    assert!(
        err.contains(&format!(
            "--force --root {}` restores the state before the run",
            sb.root().display()
        )),
        "{err}"
    );
    assert_eq!(sb.tree(), edited, "a refused rollback changed the target");
    let history = stdout_of(&sb.fixer(&["history"]).output()?);
    assert!(history.contains("applied"), "{history}");

    // JSON says the same in its one error document.
    let out = sb.fixer(&["rollback", "--format", "json"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("/etc/motd: content changed"))
            && v["error"]["kind"] == "changed_since_run",
        "{v}"
    );

    let out = sb.fixer(&["rollback", "--force"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut after = sb.tree();
    // The user's own file in /srv/app is not the run's to remove.
    assert!(after.remove("/srv/app/notes.txt").is_some());
    // Nor is what the command without `undo` made (reported as such).
    after.remove("/built.txt");
    after.remove("/reload.log");
    let mut expected = before.clone();
    expected.remove("/built.txt");
    expected.remove("/reload.log");
    assert_eq!(after, expected);
    Ok(())
}

/// A directory the run created goes whole at rollback: a file added to
/// it since is in the way.
#[test]
fn rollback_refuses_to_remove_a_created_directory_that_gained_files() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "new.toml",
        "[playbook]\nname = \"new\"\n[[resource]]\ntype = \"file\"\npath = \"/srv/new/conf/a.conf\"\ncontent = \"a\\n\"\n",
    );
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    sb.file("/srv/new/conf/b.conf", "mine\n");
    let out = sb.fixer(&["rollback"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("refused: 1 path changed since the run, and rolling back would overwrite it:"),
        "{err}"
    );
    assert!(
        err.contains("/srv/new/conf: now also holds b.conf"),
        "{err}"
    );
    assert_eq!(sb.read("/srv/new/conf/b.conf"), "mine\n");
    sb.fixer(&["rollback", "--force"]).assert().success();
    assert!(!sb.exists("/srv/new"));
    Ok(())
}

/// A run recorded without what it left (interrupted, or by an older fixer)
/// has nothing to compare: rollback goes ahead as before.
#[test]
fn rollback_without_a_record_of_the_result_goes_ahead() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    let after = run_dir(&sb)?.join("after.json");
    assert!(after.exists());
    std::fs::remove_file(&after)?;
    sb.file("/etc/motd", "edited by hand\n");
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.read("/etc/motd"), "Welcome\n");
    Ok(())
}

/// A playbook whose second resource takes a while: the window for Ctrl-C.
/// The command leaves `started` beside the root (outside the target) so the
/// test signals fixer only once it is waiting on the command: a signal that
/// lands between two resources is seen at once, and the rollback it starts
/// could finish before a second signal arrives.
fn slow_playbook(sb: &Sandbox) -> String {
    let started = sb.base().join("started");
    format!(
        r#"[playbook]
name = "slow"

[[resource]]
type = "file"
path = "/etc/motd"
content = "changed\n"

[[resource]]
type = "command"
run = "touch '{}' && sleep 1"

[[resource]]
type = "file"
path = "/etc/later"
content = "never\n"
"#,
        started.display()
    )
}

/// Start the slow apply, wait until it runs its command, and send it
/// `signals` (to fixer alone: the command it runs keeps going, as with `kill`).
fn interrupt_apply(
    sb: &Sandbox,
    signals: &[nix::sys::signal::Signal],
) -> Result<std::process::Output, Box<dyn std::error::Error>> {
    let pb = sb.playbook("slow.toml", &slow_playbook(sb));
    let child = sb
        .command(&["apply", pb.to_str().ok_or("path")?])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sb.base().join("started").exists() {
        assert!(
            Instant::now() < deadline,
            "the apply never reached its command"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sb.read("/etc/motd"), "changed\n");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    for s in signals {
        nix::sys::signal::kill(pid, *s)?;
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.wait_with_output()?)
}

#[test]
fn ctrl_c_stops_before_the_next_change_and_rolls_back() -> TestResult {
    use nix::sys::signal::Signal;
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let sb = Sandbox::new();
        seed(&sb);
        let before = sb.tree();
        let out = interrupt_apply(&sb, &[signal])?;
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{signal}: {err}");
        assert!(
            err.contains("interrupted (Ctrl-C or SIGTERM)"),
            "{signal}: {err}"
        );
        assert!(err.contains("Rolled back run"), "{signal}: {err}");
        assert_eq!(sb.tree(), before, "{signal}");
        assert!(!sb.exists("/etc/later"));
        let history = stdout_of(&sb.fixer(&["history"]).output()?);
        assert!(
            history.contains("failed, rolled back"),
            "{signal}: {history}"
        );
    }
    Ok(())
}

/// A second Ctrl-C ends fixer at once; the run is left interrupted, and
/// rollback from its journal restores the target as after a kill.
#[test]
fn a_second_ctrl_c_ends_fixer_at_once() -> TestResult {
    use nix::sys::signal::Signal;
    let sb = Sandbox::new();
    seed(&sb);
    let before = sb.tree();
    let out = interrupt_apply(&sb, &[Signal::SIGINT, Signal::SIGINT])?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("Rolled back run"));
    let history = stdout_of(&sb.fixer(&["history"]).output()?);
    assert!(history.contains("interrupted"), "{history}");
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);
    Ok(())
}

/// One definition of a change, a resource the run changed, however many
/// steps it took (here a file and the two folders made for it): apply,
/// history and rollback give the same number, in the right number.
#[test]
fn apply_history_and_rollback_count_the_same_changes() -> TestResult {
    for (files, apply_line, undone) in [
        (1, "Apply complete: 1 added,", "1 change undone."),
        (2, "Apply complete: 2 added,", "2 changes undone."),
    ] {
        let sb = Sandbox::new();
        let mut text = String::from("[playbook]\nname = \"counts\"\n");
        for i in 0..files {
            text.push_str(&format!(
                "[[resource]]\ntype = \"file\"\npath = \"/etc/deep/er/f{i}\"\ncontent = \"x\"\n"
            ));
        }
        let pb = sb.playbook("c.toml", &text);
        let pb = pb.to_str().ok_or("path")?;
        sb.fixer(&["apply", pb])
            .assert()
            .success()
            .stdout(contains(apply_line));
        let history = sb.fixer(&["history", "--format", "json"]).output()?;
        let runs: serde_json::Value = serde_json::from_slice(&history.stdout)?;
        assert_eq!(runs[0]["changes"], files, "{runs}");
        sb.fixer(&["rollback"])
            .assert()
            .success()
            .stdout(contains(undone));
    }
    Ok(())
}

//! `apply`: changes made, mode and owner kept, handlers once, idempotence.

use predicates::str::contains;

use crate::plan::{seed, MIXED};
use crate::support::{stdout_of, Sandbox, TestResult};

#[test]
fn apply_then_second_apply_reports_no_changes() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["apply", pb])
        .assert()
        .success()
        .stdout(contains(
            "Apply complete: 1 added, 3 changed, 1 removed, 1 unchanged.",
        ))
        .stdout(contains("undo it with `fixer rollback"));
    assert_eq!(sb.read("/etc/motd"), "Hello world\ntoken=hunter2-secret\n");
    assert_eq!(sb.mode("/etc/motd"), 0o600);
    assert_eq!(sb.read("/srv/app/config.ini"), "[app]\nport = 8080\n");
    assert_eq!(sb.mode("/srv/app"), 0o750);
    assert_eq!(sb.mode("/srv/app/config.ini"), 0o640);
    assert_eq!(sb.mode("/srv/app/run.sh"), 0o750);
    assert!(!sb.exists("/var/cache/app/a.tmp"));
    assert!(sb.exists("/var/cache/app/keep.dat"));
    assert_eq!(sb.read("/built.txt"), "built\n");
    assert_eq!(sb.read("/reload.log"), "reloaded\n");

    let after = sb.tree();
    let out = sb.fixer(&["apply", pb]).output()?;
    assert!(out.status.success());
    let text = stdout_of(&out);
    assert!(
        text.contains("No changes: the target already matches the playbook."),
        "{text}"
    );
    assert!(
        text.contains("Apply complete: 0 added, 0 changed, 0 removed, 6 unchanged."),
        "{text}"
    );
    assert_eq!(sb.tree(), after, "second apply changed something");
    assert_eq!(
        sb.read("/reload.log"),
        "reloaded\n",
        "handler ran without a change"
    );
    Ok(())
}

#[test]
fn content_change_keeps_mode_and_owner() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/app.conf", "old\n");
    sb.chmod("/etc/app.conf", 0o640);
    if crate::support::is_root() {
        std::os::unix::fs::chown(sb.at("/etc/app.conf"), Some(4242), Some(4343))?;
    }
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"k\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/app.conf\"\ncontent = \"new\\n\"\n",
    );
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    assert_eq!(sb.read("/etc/app.conf"), "new\n");
    assert_eq!(sb.mode("/etc/app.conf"), 0o640);
    let e = &sb.tree()["/etc/app.conf"];
    if crate::support::is_root() {
        assert_eq!((e.uid, e.gid), (4242, 4343));
    }
    // The write left no temporary file behind.
    let names: Vec<_> = std::fs::read_dir(sb.at("/etc"))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    Ok(())
}

#[test]
fn handler_runs_once_for_several_notifications_and_only_on_change() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "p.toml",
        r#"[playbook]
name = "h"
[[resource]]
type = "file"
path = "/a"
content = "a"
notify = ["count"]
[[resource]]
type = "file"
path = "/b"
content = "b"
notify = ["count"]
[[resource]]
type = "file"
path = "/c"
content = "c"
notify = ["never"]
[[handler]]
id = "count"
run = "echo ran >> count.log"
[[handler]]
id = "never"
run = "echo ran >> never.log"
"#,
    );
    sb.file("/c", "c");
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["plan", pb])
        .assert()
        .success()
        .stdout(contains("! handler count (would run)"))
        .stdout(contains("never").not());
    sb.fixer(&["apply", pb])
        .assert()
        .success()
        .stdout(contains("! handler count (ran)"));
    assert_eq!(sb.read("/count.log"), "ran\n");
    assert!(!sb.exists("/never.log"));
    sb.fixer(&["apply", pb]).assert().success();
    assert_eq!(sb.read("/count.log"), "ran\n");
    Ok(())
}

use predicates::prelude::PredicateBooleanExt as _;

#[test]
fn json_apply_reports_the_run() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"j\"\n[[resource]]\ntype = \"file\"\npath = \"/x\"\ncontent = \"x\"\n",
    );
    let out = sb
        .fixer(&["apply", pb.to_str().ok_or("path")?, "--format", "json"])
        .output()?;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["status"], "applied");
    assert_eq!(v["summary"]["add"], 1);
    assert!(v["run"].as_str().is_some_and(|r| !r.is_empty()));
    Ok(())
}

#[test]
fn tilde_is_the_home_inside_the_root() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"t\"\n[[resource]]\ntype = \"file\"\npath = \"~/.config/go/env\"\ncontent = \"GOPROXY=off\\n\"\n",
    );
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    assert_eq!(
        sb.read(&format!("{}/.config/go/env", crate::support::HOME)),
        "GOPROXY=off\n"
    );
    Ok(())
}

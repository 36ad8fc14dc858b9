//! `plan`: diffs, summary, exit codes, formats, saved plans — and never a
//! write to the target.

use predicates::prelude::PredicateBooleanExt as _;
use predicates::str::contains;

use crate::support::{stable, stderr_of, stdout_of, Sandbox, TestResult};

pub const MIXED: &str = r#"[playbook]
name = "mixed"

[vars]
who = "world"
token = { value = "hunter2-secret", sensitive = true }

[[resource]]
type = "file"
path = "/etc/motd"
content = "Hello {{who}}\ntoken={{token}}\n"
mode = "0600"
notify = ["reload"]

[[resource]]
type = "file"
path = "/srv/app/config.ini"
content = "[app]\nport = 8080\n"

[[resource]]
type = "permissions"
path = "/srv/app"
mode = "u=rwX,g=rX,o="
recursive = true

[[resource]]
type = "clean"
paths = ["/var/cache/app/*.tmp"]

[[resource]]
type = "command"
run = "echo built > built.txt"
creates = "/built.txt"

[[resource]]
type = "file"
path = "/etc/unchanged"
content = "same\n"

[[handler]]
id = "reload"
run = "echo reloaded >> reload.log"
"#;

pub fn seed(sb: &Sandbox) {
    sb.file("/etc/motd", "Welcome\n");
    sb.chmod("/etc/motd", 0o644);
    sb.file("/srv/app/run.sh", "#!/bin/sh\n");
    sb.chmod("/srv/app/run.sh", 0o755);
    sb.chmod("/srv/app", 0o755);
    sb.file("/var/cache/app/a.tmp", "a");
    sb.file("/var/cache/app/keep.dat", "k");
    sb.file("/etc/unchanged", "same\n");
}

#[test]
fn human_plan_output() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let before = sb.tree();
    let out = sb.fixer(&["plan", pb.to_str().ok_or("path")?]).output()?;
    assert!(out.status.success());
    let text = stdout_of(&out);
    assert!(!text.contains("hunter2-secret"), "secret leaked:\n{text}");
    insta::assert_snapshot!("plan_mixed", stable(&text, &sb));
    assert_eq!(sb.tree(), before, "plan changed the target");
    assert!(
        !sb.exists("/var/lib/fixer"),
        "plan created fixer's state folder"
    );
    Ok(())
}

#[test]
fn plan_sees_what_earlier_resources_would_do() -> TestResult {
    // Ansible's check mode fails here: the directory and file do not exist yet.
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "p.toml",
        r#"[playbook]
name = "chain"
[[resource]]
type = "file"
path = "/opt/new/app.conf"
content = "x\n"
[[resource]]
type = "permissions"
path = "/opt/new/app.conf"
mode = "0600"
[[resource]]
type = "command"
run = "touch made-by-command"
creates = "/opt/made-by-command"
[[resource]]
type = "permissions"
path = "/opt/made-by-command"
mode = "0640"
[[resource]]
type = "clean"
paths = ["/opt/new/*.conf"]
"#,
    );
    let out = sb.fixer(&["plan", pb.to_str().ok_or("path")?]).output()?;
    let text = stdout_of(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("/opt/new/app.conf: mode 0644 -> 0600"),
        "{text}"
    );
    assert!(
        text.contains("/opt/made-by-command: mode 0644 -> 0640"),
        "{text}"
    );
    assert!(
        text.contains("remove /opt/new/app.conf (file; kept for rollback)"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 1 to add, 3 to change, 1 to remove, 0 unchanged."),
        "{text}"
    );
    assert!(sb.tree().is_empty());
    Ok(())
}

#[test]
fn detailed_exitcode_says_whether_there_are_changes() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["plan", pb, "--detailed-exitcode"])
        .assert()
        .code(2);
    sb.fixer(&["plan", pb]).assert().code(0);
    sb.fixer(&["apply", pb]).assert().success();
    sb.fixer(&["plan", pb, "--detailed-exitcode"])
        .assert()
        .code(0)
        .stdout(contains("No changes"))
        .stdout(contains(
            "Plan: 0 to add, 0 to change, 0 to remove, 6 unchanged.",
        ));
    Ok(())
}

#[test]
fn json_plan_is_parseable_and_masked() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let out = sb
        .fixer(&["plan", pb.to_str().ok_or("path")?, "--format", "json"])
        .output()?;
    assert!(out.status.success());
    let text = stdout_of(&out);
    assert!(!text.contains("hunter2-secret"));
    let v: serde_json::Value = serde_json::from_str(&text)?;
    assert_eq!(
        v["summary"],
        serde_json::json!({"add": 1, "change": 3, "remove": 1, "unchanged": 1, "checks": 0})
    );
    assert_eq!(v["changes"], true);
    assert_eq!(v["resources"][0]["id"], "file:/etc/motd");
    assert_eq!(v["resources"][0]["action"], "change");
    let diff = v["resources"][0]["operations"][0]["diff"]
        .as_str()
        .ok_or("diff")?;
    assert!(diff.contains("+token=********"), "{diff}");
    assert_eq!(v["handlers"][0]["id"], "reload");
    assert_eq!(v["resources"][4]["operations"][0]["op"], "run");
    Ok(())
}

#[test]
fn colour_follows_the_flag_and_no_color() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let pb = pb.to_str().ok_or("path")?;
    let coloured = stdout_of(&sb.fixer(&["plan", pb, "--color", "always"]).output()?);
    assert!(
        coloured.contains("\x1b[32m+Hello world\x1b[0m"),
        "{coloured}"
    );
    let plain = stdout_of(&sb.fixer(&["plan", pb, "--color", "never"]).output()?);
    assert!(!plain.contains('\x1b'));
    // auto: not a terminal here, and NO_COLOR set by the sandbox.
    let auto = stdout_of(&sb.fixer(&["plan", pb]).output()?);
    assert!(!auto.contains('\x1b'));
    Ok(())
}

#[test]
fn saved_plan_applies_and_is_refused_after_drift() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let plan = sb.base().join("out.plan");
    let plan_s = plan.to_str().ok_or("path")?;
    sb.fixer(&["plan", pb.to_str().ok_or("path")?, "--out", plan_s])
        .assert()
        .success()
        .stdout(contains("Saved the plan"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&plan)?.permissions().mode() & 0o777,
        0o600
    );

    // Drift: someone edits a managed file after the plan.
    sb.file("/etc/unchanged", "edited by hand\n");
    let before = sb.tree();
    sb.fixer(&["apply", plan_s])
        .assert()
        .code(1)
        .stderr(contains("the saved plan no longer matches"))
        .stderr(contains(format!(
            "run `fixer plan --root {}` again",
            sb.root().display()
        )));
    assert_eq!(sb.tree(), before, "a refused plan changed the target");

    // A fresh plan of the current state applies.
    sb.fixer(&["plan", pb.to_str().ok_or("path")?, "--out", plan_s])
        .assert()
        .success();
    // Its values are the plan's, and say so (not `--var`, never given).
    sb.fixer(&["apply", plan_s, "--dry-run", "--format", "json"])
        .assert()
        .success()
        .stdout(contains(r#""from": "saved_plan""#));
    sb.fixer(&["apply", plan_s])
        .assert()
        .success()
        .stdout(contains("saved plan"))
        .stdout(contains("--var").not());
    assert_eq!(sb.read("/etc/unchanged"), "same\n");
    assert_eq!(sb.read("/etc/motd"), "Hello world\ntoken=hunter2-secret\n");
    Ok(())
}

/// A saved plan holds every variable, secrets included: written over an
/// existing 0644 file it must still end up 0600 (issue 17.3), and a
/// failure to write leaves the old file as it was.
#[test]
fn saved_plan_over_an_existing_file_is_private() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let plan = sb.base().join("old.plan");
    std::fs::write(&plan, "stale\n")?;
    std::fs::set_permissions(&plan, std::fs::Permissions::from_mode(0o644))?;
    let plan_s = plan.to_str().ok_or("path")?;
    sb.fixer(&["plan", pb.to_str().ok_or("path")?, "--out", plan_s])
        .assert()
        .success();
    assert_eq!(
        std::fs::metadata(&plan)?.permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&plan)?.contains("hunter2-secret"));
    sb.fixer(&["apply", plan_s]).assert().success();
    // Into a folder that does not exist: an error naming it, nothing else.
    let nowhere = sb.base().join("no/such/dir/x.plan");
    sb.fixer(&[
        "plan",
        pb.to_str().ok_or("path")?,
        "--out",
        nowhere.to_str().ok_or("path")?,
    ])
    .assert()
    .code(1)
    .stderr(contains("no/such/dir"));
    Ok(())
}

#[test]
fn apply_dry_run_is_a_plan() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let before = sb.tree();
    sb.fixer(&["apply", pb.to_str().ok_or("path")?, "--dry-run"])
        .assert()
        .success()
        .stdout(contains(
            "Plan: 1 to add, 3 to change, 1 to remove, 1 unchanged.",
        ));
    assert_eq!(sb.tree(), before);
    assert!(!sb.exists("/var/lib/fixer"));
    Ok(())
}

#[test]
fn bad_saved_plans_are_refused() -> TestResult {
    let sb = Sandbox::new();
    let not_plan = sb.playbook("x.plan", "{\"format\": \"fixer-plan/1\", \"playbook\": 3}");
    sb.fixer(&["apply", not_plan.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("x.plan:1:"))
        .stderr(contains("not a fixer plan"));
    let future = sb.playbook(
        "y.plan",
        "{\"format\": \"fixer-plan/9\", \"playbook\": \"/p\", \"vars\": [], \"root\": null, \"fingerprint\": \"\", \"summary\": {\"add\":0,\"change\":0,\"remove\":0,\"unchanged\":0}}",
    );
    sb.fixer(&["apply", future.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("plan format `fixer-plan/9` is not supported"));

    // A plan made for one root is not applied to another.
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"p\"\n[[resource]]\ntype = \"file\"\npath = \"/x\"\ncontent = \"x\"\n",
    );
    let plan = sb.base().join("p.plan");
    sb.fixer(&[
        "plan",
        pb.to_str().ok_or("path")?,
        "--out",
        plan.to_str().ok_or("path")?,
    ])
    .assert()
    .success();
    let other = tempfile::tempdir()?;
    assert_cmd::Command::cargo_bin("fixer")?
        .args(["apply", plan.to_str().ok_or("path")?, "--root"])
        .arg(other.path())
        .assert()
        .code(1)
        .stderr(contains("the plan was made for --root"));
    assert_eq!(std::fs::read_dir(other.path())?.count(), 0);

    // Values given to apply PLAN would be silently dropped: refused.
    let before = sb.tree();
    sb.fixer(&["apply", plan.to_str().ok_or("path")?, "--var", "x=1"])
        .assert()
        .code(1)
        .stderr(contains("a saved plan applies the values it was made with"));
    assert_eq!(sb.tree(), before);
    Ok(())
}

/// A file above the shown limit is summarised, not diffed: replacing a
/// 4 MB file with one line took 27 s to plan and printed 600,000 lines
/// (issue 17.5). How long it takes now is measured in benches/diff.rs.
#[test]
fn a_large_file_is_summarised_not_diffed() -> TestResult {
    let sb = Sandbox::new();
    let big: String = (1..=600_000).map(|i| format!("{i}\n")).collect();
    sb.file("/srv/big", &big);
    let pb = sb.playbook(
        "big.toml",
        "[playbook]\nname = \"b\"\n[[resource]]\ntype = \"file\"\npath = \"/srv/big\"\ncontent = \"one\\n\"\n",
    );
    let pb = pb.to_str().ok_or("path")?;
    for args in [
        &["plan", pb][..],
        &["plan", pb, "--format", "json"],
        &["apply", pb],
    ] {
        let out = sb.fixer(args).output()?;
        assert!(out.status.success(), "{}", stderr_of(&out));
        let text = stdout_of(&out);
        assert!(
            text.contains(
                "/srv/big: 3.9 MiB (600000 lines) -> 4 bytes (1 line); the diff is not shown above 1.0 MiB"
            ),
            "{args:?}: {}",
            &text[..text.len().min(2000)]
        );
        assert!(
            text.lines().count() < 40,
            "{args:?} printed {} lines",
            text.lines().count()
        );
    }
    assert_eq!(sb.read("/srv/big"), "one\n");
    // The backup was copied whole, not from what the plan held (a digest).
    sb.fixer(&["rollback"]).assert().success();
    assert!(
        sb.read("/srv/big") == big,
        "rollback restored the file exactly"
    );

    // Content equal to a large file is no change: compared by digest.
    let same = sb.playbook("same.txt", &big);
    let pb = sb.playbook(
        "same.toml",
        &format!(
            "[playbook]\nname = \"s\"\n[[resource]]\ntype = \"file\"\npath = \"/srv/big\"\ntemplate = \"{}\"\n",
            same.display()
        ),
    );
    sb.fixer(&["plan", pb.to_str().ok_or("path")?])
        .assert()
        .success()
        .stdout(contains("No changes"));
    // One byte different, same size: a change.
    sb.file("/srv/big", &big.replacen("1\n", "0\n", 1));
    sb.fixer(&["plan", pb.to_str().ok_or("path")?])
        .assert()
        .success()
        .stdout(contains("1 to change"));
    Ok(())
}

//! Behaviour of each resource type on a real sandbox root.

use std::os::unix::fs::PermissionsExt;

use predicates::str::contains;

use crate::support::{stdout_of, Sandbox, TestResult};

fn pb(sb: &Sandbox, body: &str) -> String {
    sb.playbook("p.toml", &format!("[playbook]\nname = \"r\"\n{body}"))
        .display()
        .to_string()
}

#[test]
fn file_absent_and_directory_states() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/old.conf", "remove me\n");
    sb.file("/etc/olddir/inner", "i");
    let before = sb.tree();
    let p = pb(
        &sb,
        r#"[[resource]]
type = "file"
path = "/etc/old.conf"
state = "absent"
[[resource]]
type = "file"
path = "/etc/olddir"
state = "absent"
[[resource]]
type = "file"
path = "/srv/data/cache"
state = "directory"
mode = "0750"
"#,
    );
    sb.fixer(&["plan", &p])
        .assert()
        .success()
        .stdout(contains("- file:/etc/old.conf (remove)"))
        .stdout(contains("create directory /srv/data/cache (mode 0750)"))
        .stdout(contains(
            "Plan: 1 to add, 0 to change, 2 to remove, 0 unchanged.",
        ));
    sb.fixer(&["apply", &p]).assert().success();
    assert!(!sb.exists("/etc/old.conf") && !sb.exists("/etc/olddir"));
    assert_eq!(sb.mode("/srv/data/cache"), 0o750);
    sb.fixer(&["apply", &p])
        .assert()
        .success()
        .stdout(contains("No changes"));
    sb.fixer(&["rollback", "--format", "json"])
        .assert()
        .success();
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn permissions_symbolic_capital_x_recursive() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/srv/app/bin/run", "#!/bin/sh\n");
    sb.chmod("/srv/app/bin/run", 0o777);
    sb.file("/srv/app/data.txt", "d");
    sb.chmod("/srv/app/data.txt", 0o666);
    std::os::unix::fs::symlink("/etc/passwd", sb.at("/srv/app/link"))?;
    let p = pb(
        &sb,
        "[[resource]]\ntype = \"permissions\"\npath = \"/srv/app\"\nmode = \"u=rwX,g=rX,o=\"\nrecursive = true\n",
    );
    sb.fixer(&["apply", &p]).assert().success();
    assert_eq!(sb.mode("/srv/app"), 0o750);
    assert_eq!(sb.mode("/srv/app/bin"), 0o750);
    assert_eq!(sb.mode("/srv/app/bin/run"), 0o750);
    assert_eq!(sb.mode("/srv/app/data.txt"), 0o640);
    // The symlink was not followed.
    assert!(sb
        .at("/srv/app/link")
        .symlink_metadata()?
        .file_type()
        .is_symlink());
    // Octal, non-recursive.
    let p = pb(
        &sb,
        "[[resource]]\ntype = \"permissions\"\npath = \"/srv/app/data.txt\"\nmode = \"0604\"\n",
    );
    sb.fixer(&["apply", &p])
        .assert()
        .success()
        .stdout(contains("mode 0640 -> 0604"));
    assert_eq!(sb.mode("/srv/app/data.txt"), 0o604);
    Ok(())
}

/// A Go module cache as `go` leaves it: read-only files and directories.
fn go_modcache(sb: &Sandbox) -> TestResult {
    let base = "/home/tester/go/pkg/mod";
    sb.file(
        &format!("{base}/cache/download/example.com/m/@v/v1.0.0.zip"),
        "zip",
    );
    sb.file(
        &format!("{base}/cache/download/example.com/m/@v/list"),
        "v1.0.0\n",
    );
    sb.file(
        &format!("{base}/example.com/m@v1.0.0/go.mod"),
        "module example.com/m\n",
    );
    sb.file(&format!("{base}/example.com/m@v1.0.0/m.go"), "package m\n");
    for f in [
        "cache/download/example.com/m/@v/v1.0.0.zip",
        "cache/download/example.com/m/@v/list",
        "example.com/m@v1.0.0/go.mod",
        "example.com/m@v1.0.0/m.go",
    ] {
        sb.chmod(&format!("{base}/{f}"), 0o444);
    }
    for d in ["example.com/m@v1.0.0", "cache/download/example.com/m/@v"] {
        sb.chmod(&format!("{base}/{d}"), 0o555);
    }
    Ok(())
}

#[test]
fn clean_removes_read_only_go_module_cache_and_rollback_restores_it() -> TestResult {
    let sb = Sandbox::new();
    go_modcache(&sb)?;
    sb.file("/srv/web/node_modules/left-pad/index.js", "x");
    sb.file("/srv/web/src/node_modules/y/i.js", "y");
    sb.file("/srv/py/pkg/__pycache__/a.cpython-311.pyc", "p");
    sb.file("/srv/py/pkg/mod.py", "m");
    sb.file("/home/tester/.cache/pip/http-v2/a/b/c", "wheel");
    sb.file("/home/tester/.cache/pip/selfcheck.json", "{}");
    sb.file("/home/tester/.cache/other/keep", "k");
    let before = sb.tree();
    let p = pb(
        &sb,
        r#"[[resource]]
type = "clean"
paths = ["~/go/pkg/mod/example.com/*", "~/go/pkg/mod/cache/download"]
[[resource]]
type = "clean"
paths = ["/srv/web/**/node_modules", "/srv/py/**/__pycache__"]
[[resource]]
type = "clean"
paths = ["~/.cache/pip"]
"#,
    );
    let out = sb.fixer(&["plan", &p]).output()?;
    let text = stdout_of(&out);
    assert!(
        text.contains("remove /home/tester/go/pkg/mod/example.com/m@v1.0.0 (directory"),
        "{text}"
    );
    assert!(text.contains("remove /srv/web/node_modules"), "{text}");
    assert!(text.contains("remove /srv/web/src/node_modules"), "{text}");
    assert!(text.contains("remove /srv/py/pkg/__pycache__"), "{text}");
    sb.fixer(&["apply", &p]).assert().success();
    assert!(!sb.exists("/home/tester/go/pkg/mod/example.com/m@v1.0.0"));
    assert!(!sb.exists("/home/tester/go/pkg/mod/cache/download"));
    assert!(!sb.exists("/srv/web/node_modules") && !sb.exists("/srv/py/pkg/__pycache__"));
    assert!(sb.exists("/srv/py/pkg/mod.py"));
    assert!(!sb.exists("/home/tester/.cache/pip"));
    assert!(sb.exists("/home/tester/.cache/other/keep"));
    sb.fixer(&["apply", &p])
        .assert()
        .success()
        .stdout(contains("No changes"));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn clean_as_a_normal_user_handles_read_only_directories() -> TestResult {
    // Root ignores permission bits; the same test as an ordinary user is
    // what proves the read-only cache is handled.
    if !crate::support::is_root() {
        return Ok(());
    }
    let sb = Sandbox::new();
    go_modcache(&sb)?;
    for d in [
        "/",
        "/home",
        "/home/tester",
        "/home/tester/go",
        "/home/tester/go/pkg",
    ] {
        sb.chmod(d, 0o777);
    }
    std::fs::set_permissions(sb.base(), std::fs::Permissions::from_mode(0o755))?;
    let status = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(sb.at("/home/tester/go/pkg/mod"))
        .status()?;
    assert!(status.success());
    let p = pb(
        &sb,
        "[[resource]]\ntype = \"clean\"\npaths = [\"~/go/pkg/mod\"]\n",
    );
    std::fs::set_permissions(sb.base().join("pb"), std::fs::Permissions::from_mode(0o755))?;
    let before = sb.tree();
    let run = |args: &[&str]| -> Result<std::process::Output, std::io::Error> {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("fixer"))
            .args(args)
            .arg("--root")
            .arg(sb.root())
            .env("HOME", crate::support::HOME)
            .output()
    };
    let out = run(&["apply", &p])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!sb.exists("/home/tester/go/pkg/mod"));
    let out = run(&["rollback"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn command_guards_decide_and_plan_says_so() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/exists", "");
    let p = pb(
        &sb,
        r#"[[resource]]
type = "command"
run = "echo a >> log"
creates = "/exists"
[[resource]]
type = "command"
run = "echo b >> log"
unless = "test -e exists"
[[resource]]
type = "command"
run = "echo c >> log"
only_if = "test -e exists"
[[resource]]
type = "command"
run = "echo d >> log"
only_if = ["test", "-e", "missing"]
[[resource]]
type = "command"
run = ["sh", "-c", "echo e >> log"]
unless = "false"
"#,
    );
    let out = sb.fixer(&["plan", &p]).output()?;
    let text = stdout_of(&out);
    assert!(text.contains("skipped: /exists exists"), "{text}");
    assert!(
        text.contains("skipped: `unless` succeeded (test -e exists)"),
        "{text}"
    );
    assert!(text.contains("because: `only_if` succeeded"), "{text}");
    assert!(
        text.contains("skipped: `only_if` failed (test -e missing: exit status 1)"),
        "{text}"
    );
    assert!(text.contains("run: sh -c 'echo e >> log'"), "{text}");
    assert!(
        text.contains("because: `unless` failed (exit status 1)"),
        "{text}"
    );
    assert!(!sb.exists("/log"), "plan ran a command");
    sb.fixer(&["apply", &p]).assert().success();
    assert_eq!(sb.read("/log"), "c\ne\n");
    Ok(())
}

#[test]
fn values_reach_commands_quoted() -> TestResult {
    let sb = Sandbox::new();
    let nasty = "it's \"quoted\"; $(touch pwned) `touch pwned2` & | > x\nnext line";
    let p = sb.playbook(
        "p.toml",
        &format!(
            "[playbook]\nname = \"q\"\n[vars]\nv = {}\n[[resource]]\ntype = \"command\"\nrun = \"printf '%s' {{{{v}}}} > out.txt\"\n",
            toml::Value::String(nasty.to_string())
        ),
    );
    sb.fixer(&["apply", p.to_str().ok_or("path")?])
        .assert()
        .success();
    assert_eq!(sb.read("/out.txt"), nasty);
    assert!(!sb.exists("/pwned") && !sb.exists("/pwned2"));
    Ok(())
}

#[test]
fn undo_command_runs_on_rollback() -> TestResult {
    let sb = Sandbox::new();
    let p = pb(
        &sb,
        "[[resource]]\ntype = \"command\"\nrun = \"mkdir made\"\nundo = \"rmdir made\"\ncreates = \"/made\"\n",
    );
    sb.fixer(&["apply", &p]).assert().success();
    assert!(sb.exists("/made"));
    sb.fixer(&["rollback"]).assert().success();
    assert!(!sb.exists("/made"));
    Ok(())
}

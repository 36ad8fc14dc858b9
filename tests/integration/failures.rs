//! Failure paths on the target: unreadable and unwritable files, missing
//! users, conflicts. Each gives a clear error and leaves the target as it was.

use std::os::unix::fs::PermissionsExt;

use predicates::str::contains;

use crate::support::{is_root, stderr_of, Sandbox, TestResult};

/// Run fixer as `nobody` when we are root, so permission checks bite.
fn as_nobody(
    sb: &Sandbox,
    args: &[&str],
) -> Result<std::process::Output, Box<dyn std::error::Error>> {
    // The sandbox is a 0700 tempdir: let nobody in, and read the playbooks.
    std::fs::set_permissions(sb.base(), std::fs::Permissions::from_mode(0o755))?;
    let playbooks = sb.base().join("pb");
    if playbooks.exists() {
        std::fs::set_permissions(&playbooks, std::fs::Permissions::from_mode(0o755))?;
    }
    let bin = assert_cmd::cargo::cargo_bin("fixer");
    let mut cmd = if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        std::process::Command::new(bin)
    };
    Ok(cmd
        .args(args)
        .arg("--root")
        .arg(sb.root())
        .env("HOME", crate::support::HOME)
        .env("NO_COLOR", "1")
        .output()?)
}

fn open_dirs(sb: &Sandbox, dirs: &[&str]) -> TestResult {
    for d in dirs {
        std::fs::set_permissions(sb.at(d), std::fs::Permissions::from_mode(0o777))?;
    }
    Ok(())
}

#[test]
fn unreadable_file_is_a_clear_plan_error() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/secret.conf", "x");
    sb.chmod("/etc/secret.conf", 0o600);
    sb.chmod("/", 0o755);
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"r\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/secret.conf\"\ncontent = \"y\"\n",
    );
    let before = sb.tree();
    let out = as_nobody(&sb, &["plan", pb.to_str().ok_or("path")?])?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("resource `file:/etc/secret.conf`: on localhost (root "),
        "{err}"
    );
    assert!(
        err.contains("cannot read /etc/secret.conf: Permission denied"),
        "{err}"
    );
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn permission_denied_midway_rolls_back_what_was_done() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/open/a.conf", "old a\n");
    sb.file("/locked/b.conf", "old b\n");
    sb.chmod("/locked/b.conf", 0o644);
    sb.chmod("/locked", 0o755);
    std::fs::set_permissions(sb.root(), std::fs::Permissions::from_mode(0o777))?;
    open_dirs(&sb, &["/open"])?;
    if is_root() {
        // Owned by the user fixer runs as, so replacing it keeps its owner.
        std::os::unix::fs::chown(sb.at("/open/a.conf"), Some(65534), Some(65534))?;
    }
    let pb = sb.playbook(
        "p.toml",
        r#"[playbook]
name = "deny"
[[resource]]
type = "file"
path = "/open/a.conf"
content = "new a\n"
[[resource]]
type = "file"
path = "/open/sub/new.conf"
content = "created\n"
[[resource]]
type = "file"
path = "/locked/b.conf"
content = "new b\n"
"#,
    );
    let before = sb.tree();
    let out = as_nobody(&sb, &["apply", pb.to_str().ok_or("path")?])?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("resource `file:/locked/b.conf`"), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains("Rolled back run"), "{err}");
    assert_eq!(sb.tree(), before, "rollback left the target changed");
    Ok(())
}

#[test]
fn missing_owner_fails_before_any_change() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/srv/app/x", "x");
    let pb = sb.playbook(
        "p.toml",
        r#"[playbook]
name = "owner"
[[resource]]
type = "file"
path = "/srv/app/first"
content = "1"
[[resource]]
type = "permissions"
path = "/srv/app"
owner = "nosuchuser"
"#,
    );
    let pb = pb.to_str().ok_or("path")?;
    let before = sb.tree();
    sb.fixer(&["plan", pb]).assert().code(1).stderr(contains(
        "resource `permissions:/srv/app`: user `nosuchuser` does not exist on localhost",
    ));
    sb.fixer(&["apply", pb])
        .assert()
        .code(1)
        .stderr(contains("user `nosuchuser` does not exist"))
        .stderr(contains("Rolled back run"));
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn users_and_groups_resolve_through_the_roots_own_tables() -> TestResult {
    let sb = Sandbox::new();
    sb.file(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\napp:x:4321:4322::/srv/app:/bin/sh\n",
    );
    sb.file("/etc/group", "root:x:0:\napp:x:4322:\n");
    sb.file("/srv/app/data", "d");
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"o\"\n[[resource]]\ntype = \"permissions\"\npath = \"/srv/app\"\nowner = \"app\"\ngroup = \"app\"\nrecursive = true\n",
    );
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["plan", pb])
        .assert()
        .success()
        .stdout(contains("/srv/app/data: owner 0 -> 4321, group 0 -> 4322").or(contains("owner")));
    if !is_root() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run as root to test chown"
        );
        eprintln!("not root: chown part skipped");
        return Ok(());
    }
    let before = sb.tree();
    sb.fixer(&["apply", pb]).assert().success();
    let t = sb.tree();
    assert_eq!(
        (t["/srv/app/data"].uid, t["/srv/app/data"].gid),
        (4321, 4322)
    );
    assert_eq!((t["/srv/app"].uid, t["/srv/app"].gid), (4321, 4322));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);
    Ok(())
}

use predicates::prelude::PredicateBooleanExt as _;

#[test]
fn conflicts_are_explained_and_change_nothing() -> TestResult {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.at("/etc/app.conf"))?;
    sb.file("/f", "x");
    for (body, message) in [
        (
            "[[resource]]\ntype = \"file\"\npath = \"/etc/app.conf\"\ncontent = \"x\"\n",
            "/etc/app.conf is a directory, not a regular file",
        ),
        (
            "[[resource]]\ntype = \"file\"\npath = \"/f/below\"\ncontent = \"x\"\n",
            "/f is not a directory",
        ),
        (
            "[[resource]]\ntype = \"file\"\npath = \"/f\"\nstate = \"directory\"\n",
            "/f is a regular file, not a directory",
        ),
        (
            "[[resource]]\ntype = \"permissions\"\npath = \"/nope\"\nmode = \"0644\"\n",
            "/nope does not exist",
        ),
        (
            "[[resource]]\ntype = \"clean\"\npaths = [\"/*\"]\n",
            "refusing to remove",
        ),
    ] {
        let pb = sb.playbook("c.toml", &format!("[playbook]\nname = \"c\"\n{body}"));
        let before = sb.tree();
        sb.fixer(&["apply", pb.to_str().ok_or("path")?])
            .assert()
            .code(1)
            .stderr(contains(message));
        assert_eq!(sb.tree(), before, "{body}");
    }
    Ok(())
}

#[test]
fn root_must_be_a_directory() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("p.toml", "[playbook]\nname = \"r\"\n");
    let file = sb.base().join("not-a-dir");
    std::fs::write(&file, "")?;
    assert_cmd::Command::cargo_bin("fixer")?
        .args(["plan", pb.to_str().ok_or("path")?, "--root"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(contains("not a directory"));
    assert_cmd::Command::cargo_bin("fixer")?
        .args(["plan", pb.to_str().ok_or("path")?, "--root"])
        .arg(sb.base().join("missing"))
        .assert()
        .code(1)
        .stderr(contains("No such file or directory"));
    Ok(())
}

#[test]
fn a_user_who_cannot_read_the_state_folder_still_gets_a_plan() -> TestResult {
    if !is_root() {
        return Ok(());
    }
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"u\"\n[[resource]]\ntype = \"file\"\npath = \"/x\"\ncontent = \"x\"\n",
    );
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    sb.chmod("/", 0o755);
    let pb2 = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"u\"\n[[resource]]\ntype = \"file\"\npath = \"/x\"\ncontent = \"y\"\n",
    );
    let out = as_nobody(&sb, &["plan", pb2.to_str().ok_or("path")?])?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Plan: 0 to add, 1 to change"));
    Ok(())
}

#[test]
fn home_falls_back_to_the_passwd_entry() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("p.toml", "[playbook]\nname = \"h\"\n[[resource]]\ntype = \"file\"\npath = \"~/x\"\ncontent = \"x\"\n");
    let home = nix::unistd::User::from_uid(nix::unistd::geteuid())?
        .ok_or("no passwd entry for this user")?
        .dir;
    sb.fixer(&["plan", pb.to_str().ok_or("path")?])
        .env_remove("HOME")
        .assert()
        .success()
        .stdout(contains(format!("+++ {}/x", home.display())));
    Ok(())
}

/// Every removal takes the path in normal form first, then refuses what a
/// glob or an empty variable gone wrong would take with it (issue 17.4).
#[test]
fn removals_are_normalised_then_guarded() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/srv/app/data", "x");
    sb.file("/srv/other/data", "y");
    sb.file("/home/tester/go/pkg/mod/x", "z");
    sb.file("/var/lib/fixer/keep", "");
    let absent = |path: &str| {
        format!("[[resource]]\ntype = \"file\"\npath = \"{path}\"\nstate = \"absent\"\n")
    };
    let clean = |path: &str| format!("[[resource]]\ntype = \"clean\"\npaths = [\"{path}\"]\n");
    for (body, message) in [
        // `/home/{{user}}/` with user empty.
        (
            absent("/home/{{user}}/"),
            "refusing to remove /home: it is too close to /",
        ),
        (
            clean("/srv/app/.."),
            "refusing to remove /srv: it is too close to /",
        ),
        (
            clean("/srv/./app/../../srv"),
            "refusing to remove /srv: it is too close to /",
        ),
        (
            clean("~/.."),
            "refusing to remove /home: it is too close to /",
        ),
        (
            absent("~"),
            "refusing to remove /home/tester: it is the home directory /home/tester or holds it",
        ),
        (
            clean("/home/tester/go/../../tester"),
            "refusing to remove /home/tester: it is the home directory",
        ),
        (
            clean("/var/lib"),
            "refusing to remove /var/lib: it holds fixer's state folder /var/lib/fixer",
        ),
        (
            clean("/var/lib/./fixer/"),
            "refusing to remove /var/lib/fixer: it is fixer's own state folder",
        ),
        (
            clean("/var/lib/fixer/*"),
            "refusing to remove /var/lib/fixer/keep: it is inside fixer's own state folder",
        ),
        (
            "[[resource]]\ntype = \"file\"\npath = \"/var/lib/fixer/x\"\ncontent = \"\"\n".into(),
            "refusing to change /var/lib/fixer/x: it is inside fixer's own state folder",
        ),
    ] {
        let pb = sb.playbook(
            "g.toml",
            &format!("[playbook]\nname = \"g\"\n[vars]\nuser = \"\"\n{body}"),
        );
        let before = sb.tree();
        for command in ["plan", "apply"] {
            sb.fixer(&[command, pb.to_str().ok_or("path")?])
                .assert()
                .code(1)
                .stderr(contains(message));
            assert_eq!(sb.tree(), before, "{command}: {body}");
        }
    }
    Ok(())
}

/// A user plans what only root can apply: the plan says so (the state
/// folder and the folder of the change are not writable), and the apply's
/// error names fixer's state folder and what to do, changing nothing.
#[test]
fn a_plan_as_a_user_warns_of_what_apply_could_not_write() -> TestResult {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return Ok(());
    }
    let sb = Sandbox::new();
    sb.file("/etc/app.conf", "old\n");
    sb.chmod("/etc/app.conf", 0o644);
    sb.chmod("/etc", 0o755);
    sb.chmod("/", 0o755);
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"u\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/app.conf\"\ncontent = \"new\\n\"\n",
    );
    let before = sb.tree();
    let out = as_nobody(&sb, &["plan", pb.to_str().ok_or("path")?])?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: apply could not write fixer's state folder /var/lib/fixer (/ is not writable for this user)")
            && err.contains("warning: apply could not change /etc/app.conf as this user: /etc is not writable"),
        "{err}"
    );

    let out = as_nobody(&sb, &["apply", pb.to_str().ok_or("path")?])?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fixer's state folder /var/lib/fixer")
            && err.contains("run fixer as root (sudo; over SSH, --become)"),
        "{err}"
    );
    assert_eq!(sb.tree(), before);

    // As root, no such warning.
    let out = sb.fixer(&["plan", pb.to_str().ok_or("path")?]).output()?;
    assert!(
        !stderr_of(&out).contains("apply could not"),
        "{}",
        stderr_of(&out)
    );
    Ok(())
}

//! Symlinks on the target never take an operation out of `--root`, nor
//! through a link someone other than root or fixer's user made
//! (host/resolve.rs). The SSH host is held to the same rules by the
//! conformance suite (remote.rs) and `remote_clean_refuses_a_strangers_symlink`.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::support::{is_root, stderr_of, Sandbox, TestResult};

fn clean_playbook(sb: &Sandbox, path: &str) -> String {
    sb.playbook(
        "clean.toml",
        &format!(
            "[playbook]\nname = \"c\"\n[[resource]]\ntype = \"clean\"\npaths = [\"{path}\"]\n"
        ),
    )
    .display()
    .to_string()
}

/// A directory outside the sandbox's root holding a Go cache, which must
/// survive whatever fixer does to the root.
fn outside_cache() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let outside = tempfile::tempdir()?;
    std::fs::create_dir_all(outside.path().join("go/pkg/mod/cache/download"))?;
    std::fs::write(
        outside.path().join("go/pkg/mod/cache/download/keep"),
        "mine",
    )?;
    Ok(outside)
}

fn assert_intact(outside: &Path) -> TestResult {
    assert_eq!(
        std::fs::read_to_string(outside.join("go/pkg/mod/cache/download/keep"))?,
        "mine"
    );
    Ok(())
}

#[test]
fn clean_and_absent_through_a_symlink_never_leave_the_root() -> TestResult {
    let outside = outside_cache()?;
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.at("/home/dev"))?;
    // An absolute link, and one climbing with `..` past the root.
    symlink(outside.path().join("go"), sb.at("/home/dev/go"))?;
    let climb = format!(
        "../../../../../../../..{}",
        outside.path().join("go").display()
    );
    symlink(&climb, sb.at("/home/dev/go2"))?;
    for path in ["/home/dev/go/pkg/mod/cache", "/home/dev/go2/pkg/mod/cache"] {
        let pb = clean_playbook(&sb, path);
        let out = sb.fixer(&["apply", &pb]).output()?;
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("0 removed, 1 unchanged"),
            "{path}: the link's target, taken inside the root, is not there"
        );
        assert_intact(outside.path())?;
    }
    let pb = sb.playbook(
        "absent.toml",
        "[playbook]\nname = \"a\"\n[[resource]]\ntype = \"file\"\npath = \"/home/dev/go/pkg/mod/cache/download/keep\"\nstate = \"absent\"\n",
    );
    let out = sb.fixer(&["apply", &pb.display().to_string()]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_intact(outside.path())?;

    // The same link target made inside the root is what the path means.
    let inside = sb.at(&outside
        .path()
        .join("go/pkg/mod/cache")
        .display()
        .to_string());
    std::fs::create_dir_all(&inside)?;
    std::fs::write(inside.join("x"), "image")?;
    let pb = clean_playbook(&sb, "/home/dev/go/pkg/mod/cache");
    sb.fixer(&["apply", &pb]).assert().success();
    assert!(!inside.exists());
    assert_intact(outside.path())?;
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(std::fs::read_to_string(inside.join("x"))?, "image");
    Ok(())
}

#[test]
fn a_symlinked_state_folder_stays_inside_the_root() -> TestResult {
    let outside = tempfile::tempdir()?;
    std::fs::create_dir(outside.path().join("state"))?;
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.at("/var/lib"))?;
    symlink(outside.path().join("state"), sb.at("/var/lib/fixer"))?;
    let pb = sb.playbook(
        "motd.toml",
        "[playbook]\nname = \"m\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/motd\"\ncontent = \"hi\\n\"\n",
    );
    let pb = pb.display().to_string();
    // Read as a path of the image, the link points nowhere: no state
    // folder, so no apply, and nothing written outside the root.
    let before = sb.tree();
    let out = sb.fixer(&["apply", &pb]).output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("fixer's state folder /var/lib/fixer is a symlink to a folder that does not exist on the target"),
        "{err}"
    );
    assert_eq!(sb.tree(), before);
    assert_eq!(std::fs::read_dir(outside.path().join("state"))?.count(), 0);
    // Where it points inside the image, lock, journal and backups go.
    let state = sb.at(&outside.path().join("state").display().to_string());
    std::fs::create_dir_all(&state)?;
    sb.fixer(&["apply", &pb]).assert().success();
    assert!(state.join("lock").is_file());
    assert_eq!(std::fs::read_dir(state.join("runs"))?.count(), 1);
    sb.fixer(&["rollback"]).assert().success();
    assert!(!sb.exists("/etc/motd"));
    assert_eq!(std::fs::read_dir(outside.path().join("state"))?.count(), 0);
    Ok(())
}

#[test]
fn a_symlink_someone_else_owns_is_refused() -> TestResult {
    if !is_root() {
        // Making a link owned by another user takes root; CI runs as root.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return Ok(());
    }
    let sb = Sandbox::new();
    sb.file("/home/dev/realgo/pkg/mod/cache/download/keep", "mine");
    symlink("/home/dev/realgo", sb.at("/home/dev/go"))?;
    std::os::unix::fs::lchown(sb.at("/home/dev/go"), Some(4242), Some(4242))?;
    let before = sb.tree();
    let pb = clean_playbook(&sb, "/home/dev/go/pkg/mod/cache");
    for command in ["plan", "apply"] {
        let out = sb.fixer(&[command, &pb]).output()?;
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains(
                "/home/dev/go is a symlink owned by uid 4242: fixer follows only symlinks owned \
                 by root or by the user it acts as"
            ),
            "{command}: {err}"
        );
        assert_eq!(sb.tree(), before, "{command} changed the target");
    }
    // The state folder too: a link planted there is refused, not used.
    let sb = Sandbox::new();
    sb.file("/srv/elsewhere/.keep", "");
    std::fs::create_dir_all(sb.at("/var/lib"))?;
    symlink("/srv/elsewhere", sb.at("/var/lib/fixer"))?;
    std::os::unix::fs::lchown(sb.at("/var/lib/fixer"), Some(4242), Some(4242))?;
    let pb = sb.playbook(
        "motd.toml",
        "[playbook]\nname = \"m\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/motd\"\ncontent = \"hi\\n\"\n",
    );
    let before = sb.tree();
    let out = sb.fixer(&["apply", &pb.display().to_string()]).output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/var/lib/fixer is a symlink owned by uid 4242"),
        "{err}"
    );
    assert_eq!(sb.tree(), before);
    Ok(())
}

//! `-q` and `-v`: how much text a command prints. The target is changed
//! the same at every level, and JSON does not depend on them.

use crate::plan::{seed, MIXED};
use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

#[test]
fn quiet_plan_prints_only_the_summary_and_verbose_adds_what_is_unchanged() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let pb = pb.to_string_lossy();

    let normal = stdout_of(&sb.fixer(&["plan", &pb]).output()?);
    let summary = normal.lines().last().unwrap_or_default().to_string();
    assert!(summary.starts_with("Plan: "), "{normal}");
    assert!(normal.contains("+++ "), "{normal}");
    assert!(!normal.contains("file:/etc/unchanged"), "{normal}");

    let out = sb.fixer(&["plan", &pb, "-q"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out), format!("{summary}\n"));

    let verbose = stdout_of(&sb.fixer(&["plan", &pb, "--verbose"]).output()?);
    assert!(
        verbose.contains("file:/etc/unchanged (unchanged)"),
        "{verbose}"
    );
    assert!(verbose.ends_with(&format!("{summary}\n")), "{verbose}");

    // JSON is the same at every level.
    let json = |extra: &[&str]| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let out = sb
            .fixer(&[&["plan", &*pb, "--format", "json"][..], extra].concat())
            .output()?;
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    assert_eq!(json(&[])?, json(&["-q"])?);
    assert_eq!(json(&[])?, json(&["-v"])?);
    Ok(())
}

#[test]
fn quiet_apply_changes_the_target_and_says_only_the_result() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let out = sb.fixer(&["apply", &pb.to_string_lossy(), "-q"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/motd"), "Hello world\ntoken=hunter2-secret\n");
    let stdout = stdout_of(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("Apply complete: "), "{stdout}");
    assert!(
        lines[1].starts_with("Run ") && lines[1].contains("undo it with `fixer rollback "),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn verbose_apply_says_how_long_each_change_took() -> TestResult {
    let sb = Sandbox::new();
    seed(&sb);
    let pb = sb.playbook("mixed.toml", MIXED);
    let out = sb.fixer(&["apply", &pb.to_string_lossy(), "-v"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = stdout_of(&out);
    let timed = |id: &str, verb: &str| {
        stdout
            .lines()
            .any(|l| l.contains(&format!("{id} ({verb} in ")) && l.trim_end().ends_with(" s)"))
    };
    assert!(timed("file:/etc/motd", "changed"), "{stdout}");
    assert!(timed("file:/srv/app/config.ini", "added"), "{stdout}");
    assert!(timed("file:/etc/unchanged", "unchanged"), "{stdout}");
    Ok(())
}

#[test]
fn quiet_diagnose_prints_the_command_to_run() -> TestResult {
    let sb = Sandbox::new();
    let log = sb.playbook(
        "tidy.log",
        "go: github.com/gogo/protobuf@v1.3.1: Get https://proxy.golang.org/github.com/gogo/protobuf/@v/v1.3.1.mod: dial tcp 172.217.160.81:443: i/o timeout\n",
    );
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    let out = sb
        .fixer_here(&[
            "diagnose",
            &log.to_string_lossy(),
            "--playbooks",
            &shipped.to_string_lossy(),
            "-q",
        ])
        .output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let expected = format!(
        "fixer plan {}\n",
        shipped.join("go-proxy-mirror.toml").display()
    );
    assert_eq!(stdout_of(&out), expected);
    Ok(())
}

/// clap's own exit code for a usage error is 2, which `--detailed-exitcode`
/// means "the plan has changes".
#[test]
fn usage_errors_exit_1_even_with_detailed_exitcode() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("mixed.toml", MIXED);
    let pb = pb.to_string_lossy();
    for args in [
        &["plan", &*pb, "--detailed-exitcode", "--bogus"][..],
        &["plan", &*pb, "-q", "-v"][..],
        &["plann", &*pb][..],
    ] {
        let out = sb.fixer(args).output()?;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).starts_with("error: "),
            "{}",
            stderr_of(&out)
        );
        assert!(out.stdout.is_empty());
    }
    let out = sb.fixer_here(&["--help"]).output()?;
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout_of(&out).contains("--quiet"));
    Ok(())
}

/// `-q` drops detail, never a warning: a probe failing with
/// `on_fail = "warn"` still says so, on stderr.
#[test]
fn quiet_keeps_warnings() -> TestResult {
    let sb = Sandbox::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener); // nothing listens there now
    let pb = sb.playbook(
        "warn.toml",
        &format!(
            "[playbook]\nname = \"w\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/motd\"\ncontent = \"hi\\n\"\n\
             [[resource]]\ntype = \"probe\"\nid = \"port\"\ntcp = \"127.0.0.1:{port}\"\ntimeout = 2\non_fail = \"warn\"\n"
        ),
    );
    let out = sb.fixer(&["apply", &pb.to_string_lossy(), "-q"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.starts_with("warning: port: warn: cannot connect to 127.0.0.1:"),
        "{err}"
    );
    let stdout = stdout_of(&out);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.starts_with("Apply complete: 1 added"), "{stdout}");
    Ok(())
}

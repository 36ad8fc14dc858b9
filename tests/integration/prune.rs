//! `fixer prune`: old runs and their backups go; a run that may still need
//! undoing never does.

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

const PLAYBOOK: &str = r#"[playbook]
name = "motd"

[vars]
n = "0"

[[resource]]
type = "file"
path = "/etc/motd"
content = "version {{n}}\n"

[[resource]]
type = "clean"
paths = ["/var/cache/app/*.tmp"]
"#;

fn runs(sb: &Sandbox) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let out = sb.fixer(&["history", "--format", "json"]).output()?;
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)?;
    Ok(runs
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect())
}

/// Four applied runs, each of which cleared a cache file into its backups.
fn four_runs() -> Result<(Sandbox, Vec<String>), Box<dyn std::error::Error>> {
    let sb = Sandbox::new();
    let pb = sb.playbook("motd.toml", PLAYBOOK);
    for n in 1..=4 {
        sb.file(&format!("/var/cache/app/{n}.tmp"), "cached");
        sb.fixer(&["apply", &pb.to_string_lossy(), "--var", &format!("n={n}")])
            .assert()
            .success();
    }
    let ids = runs(&sb)?;
    assert_eq!(ids.len(), 4);
    Ok((sb, ids))
}

fn run_dir(sb: &Sandbox, id: &str) -> std::path::PathBuf {
    sb.at(&format!("/var/lib/fixer/runs/{id}"))
}

#[test]
fn prune_keeps_the_newest_runs_and_deletes_the_others_with_their_backups() -> TestResult {
    let (sb, ids) = four_runs()?;
    // Dry: says what would go, deletes nothing.
    let out = sb.fixer(&["prune", "--keep", "2", "--dry-run"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("Would delete run {}", ids[0])),
        "{text}"
    );
    assert!(
        text.contains("Would delete 2 runs with their backups; 2 kept."),
        "{text}"
    );
    assert_eq!(runs(&sb)?, ids);

    let out = sb
        .fixer(&["prune", "--keep", "2", "--format", "json"])
        .output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["pruned"], serde_json::json!([ids[1], ids[0]]));
    assert_eq!(json["kept"], serde_json::json!([ids[3], ids[2]]));
    assert_eq!(runs(&sb)?, ids[2..].to_vec());
    for gone in &ids[..2] {
        assert!(!run_dir(&sb, gone).exists(), "{gone} still has its folder");
        let out = sb.fixer(&["rollback", gone]).output()?;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr_of(&out).contains(&format!("no run `{gone}`")),
            "{}",
            stderr_of(&out)
        );
    }
    // What is kept still rolls back, backups included.
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.read("/etc/motd"), "version 3\n");
    assert!(sb.exists("/var/cache/app/4.tmp"));

    // Young runs are kept by --older-than, whatever --keep says.
    let out = sb
        .fixer(&["prune", "--keep", "0", "--older-than", "30d"])
        .output()?;
    assert!(stdout_of(&out).contains("Deleted 0 runs with their backups; 2 kept."));
    let out = sb.fixer(&["prune", "--keep", "0", "-q"]).output()?;
    assert_eq!(
        stdout_of(&out),
        "Deleted 2 runs with their backups; 0 kept.\n"
    );
    assert!(runs(&sb)?.is_empty());
    Ok(())
}

#[test]
fn prune_removes_folders_of_runs_killed_while_starting() -> TestResult {
    let (sb, _) = four_runs()?;
    // What a kill between creating a run's folder and renaming it into
    // place leaves (journal.rs, Store::begin).
    let staging = sb.at("/var/lib/fixer/runs/.new-20260101T000000-000");
    std::fs::create_dir_all(staging.join("saved"))?;
    let out = sb.fixer(&["prune", "--keep", "10"]).output()?;
    let text = stdout_of(&out);
    assert!(text.contains("Deleted .new-20260101T000000-000"), "{text}");
    assert!(
        text.contains("Deleted 0 runs with their backups; 4 kept."),
        "{text}"
    );
    assert!(!staging.exists());
    Ok(())
}

#[test]
fn prune_refuses_bad_ages() -> TestResult {
    let sb = Sandbox::new();
    let out = sb.fixer(&["prune", "--older-than", "a while"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("--older-than"),
        "{}",
        stderr_of(&out)
    );
    Ok(())
}

/// A run killed mid-apply may still need its rollback: prune keeps it.
#[cfg(feature = "failpoints")]
#[test]
fn prune_never_deletes_an_interrupted_run() -> TestResult {
    use std::os::unix::process::ExitStatusExt as _;
    let (sb, ids) = four_runs()?;
    let pb = sb.playbook("motd.toml", PLAYBOOK);
    let out = sb
        .command(&["apply", &pb.to_string_lossy(), "--var", "n=5"])
        .env("FIXER_FAILPOINT", "change:1:kill")
        .output()?;
    assert_eq!(out.status.signal(), Some(9), "{}", stderr_of(&out));
    let all = runs(&sb)?;
    let interrupted = all.last().cloned().unwrap_or_default();
    assert!(!ids.contains(&interrupted));
    let out = sb.fixer(&["prune", "--keep", "0"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(runs(&sb)?, vec![interrupted]);
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.read("/etc/motd"), "version 4\n");
    Ok(())
}

/// `--keep` counts runs that can be rolled back: applies that changed
/// nothing do not push the last real change out.
#[test]
fn runs_that_changed_nothing_do_not_count_toward_keep() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("motd.toml", PLAYBOOK);
    let pb = pb.to_string_lossy();
    for _ in 0..4 {
        sb.fixer(&["apply", &pb, "--var", "n=1"]).assert().success();
    }
    let ids = runs(&sb)?;
    assert_eq!(ids.len(), 4);
    let out = sb.fixer(&["prune", "--keep", "1"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The first run made the change; the three after it changed nothing
    // and are newer, so all stay.
    assert_eq!(runs(&sb)?, ids);
    sb.fixer(&["rollback"]).assert().success();
    assert!(!sb.exists("/etc/motd"));
    // Now nothing can be rolled back: everything goes.
    sb.fixer(&["prune", "--keep", "1"]).assert().success();
    assert!(runs(&sb)?.is_empty());
    Ok(())
}

/// A remote run inside its confirm window (its `armed` marker still
/// there) may yet be restored by the host itself: prune leaves it.
#[test]
fn prune_keeps_a_run_still_armed_for_self_restore() -> TestResult {
    let (sb, ids) = four_runs()?;
    std::fs::write(run_dir(&sb, &ids[0]).join("armed"), "")?;
    sb.fixer(&["prune", "--keep", "0"]).assert().success();
    assert_eq!(runs(&sb)?, vec![ids[0].clone()]);
    Ok(())
}

//! A sensitive value never appears in anything fixer prints, in any
//! command or format, nor in anything it writes to its state folder. The
//! target itself holds the value: that is the desired state.

use std::path::Path;

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

const SECRET: &str = "Zq9-s3cr3t-VALUE";

/// The secret reaches a file, an env file, git config, a command line,
/// a command's undo and a handler: every place a value can go.
const PLAYBOOK: &str = r#"
[playbook]
name = "secrets"

[vars]
token = { value = "", sensitive = true }

[[resource]]
type = "file"
path = "/etc/app/token"
content = "token={{token}}\n"
mode = "0600"
notify = ["reload"]

[[resource]]
type = "env"
style = "profile"
path = "/etc/profile.d/app.sh"
vars = { APP_TOKEN = "{{token}}" }

[[resource]]
type = "git_config"
scope = "/etc/gitconfig"
key = "http.extraheader"
value = "Authorization: Bearer {{token}}"

[[resource]]
type = "command"
run = "printf '%s' {{token}} > token.out; echo using {{token}}; echo also {{token}} >&2"
creates = "/token.out"

[[handler]]
id = "reload"
type = "command"
run = "echo reloaded with {{token}}"
"#;

/// Every file under `dir` holding `needle`, by path.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            hits.push(p.display().to_string());
        }
    }
    hits
}

#[test]
fn a_sensitive_value_is_never_printed_nor_kept_in_the_state_folder() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/app/token", "token=old\n");
    let pb = sb.playbook("secrets.toml", PLAYBOOK);
    let failing = sb.playbook(
        "failing.toml",
        &format!(
            "{PLAYBOOK}\n[[resource]]\ntype = \"command\"\nrun = \"echo {{{{token}}}}; exit 3\"\n"
        ),
    );
    let vars_file = sb.playbook("vars.toml", &format!("token = \"{SECRET}\"\n"));
    let (pb, failing, vars_file) = (
        pb.display().to_string(),
        failing.display().to_string(),
        vars_file.display().to_string(),
    );
    let var = format!("token={SECRET}");
    let runs: Vec<Vec<&str>> = vec![
        vec!["validate", &pb, "--var", &var],
        vec!["plan", &pb, "--var", &var],
        vec!["plan", &pb, "--vars", &vars_file, "--format", "json"],
        vec!["apply", &pb, "--var", &var, "--dry-run"],
        vec!["apply", &failing, "--var", &var],
        vec!["apply", &failing, "--var", &var, "--format", "json"],
        vec!["apply", &pb, "--var", &var],
        vec!["apply", &pb, "--var", &var, "--format", "json"],
        vec!["plan", &pb, "--var", &var, "--format", "json"],
        vec!["history"],
        vec!["history", "--format", "json"],
        vec!["rollback"],
        vec!["apply", &pb, "--vars", &vars_file, "--format", "json"],
        vec!["rollback", "--format", "json"],
        vec!["history", "--format", "json"],
    ];
    for args in &runs {
        let out = sb.command(args).output()?;
        for (stream, text) in [("stdout", stdout_of(&out)), ("stderr", stderr_of(&out))] {
            assert!(
                !text.contains(SECRET),
                "`fixer {}` printed the secret on {stream}:\n{text}",
                args.join(" ")
            );
        }
        if args.as_slice() == ["rollback"] {
            // The handler holds the secret, so it is not kept to be re-run.
            assert!(
                stderr_of(&out).contains(
                    "command `echo reloaded with ********` ran; it uses a sensitive value"
                ),
                "{}",
                stderr_of(&out)
            );
        }
        let state = sb.root().join("var/lib/fixer");
        let leaked = files_containing(&state, SECRET.as_bytes());
        assert!(
            leaked.is_empty(),
            "after `fixer {}`, the state folder holds the secret in {leaked:?}",
            args.join(" ")
        );
    }
    // The checks above saw real work: the value does reach the target.
    let out = sb.command(&["apply", &pb, "--var", &var]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/app/token"), format!("token={SECRET}\n"));
    assert_eq!(sb.read("/token.out"), SECRET);
    Ok(())
}

/// When a sensitive value replaces another, the old one is a secret too,
/// though nothing declares it: every diff hides both sides (issue 17.2).
#[test]
fn the_value_a_sensitive_one_replaces_is_hidden_too() -> TestResult {
    let sb = Sandbox::new();
    let old = ["OLD-env-1111", "OLD-file-2222", "OLD-git-3333"];
    sb.file(
        "/etc/profile.d/app.sh",
        &format!("export PATH_EXTRA='/opt'\nexport APP_TOKEN='{}'\n", old[0]),
    );
    sb.file("/etc/app/token", &format!("# app\ntoken={}\n", old[1]));
    sb.file(
        "/etc/gitconfig",
        &format!("[http]\n\textraheader = Authorization: Bearer {}\n", old[2]),
    );
    let pb = sb.playbook("secrets.toml", PLAYBOOK);
    let pb = pb.display().to_string();
    let var = format!("token={SECRET}");
    for args in [
        vec!["plan", &pb, "--var", &var],
        vec!["plan", &pb, "--var", &var, "--format", "json"],
        vec!["apply", &pb, "--var", &var, "--dry-run"],
        vec!["apply", &pb, "--var", &var],
    ] {
        let out = sb.command(&args).output()?;
        let all = format!("{}{}", stdout_of(&out), stderr_of(&out));
        for secret in old.iter().chain([&SECRET]) {
            assert!(
                !all.contains(secret),
                "`fixer {}` printed {secret}:\n{all}",
                args.join(" ")
            );
        }
        if args.len() == 4 && args[0] == "plan" {
            // Still a diff: the changed lines are there, hidden past
            // where they differ.
            for line in [
                "-export APP_TOKEN='********",
                "+export APP_TOKEN='********'",
                " export PATH_EXTRA='/opt'",
                "-token=********",
                "+token=********",
                "-\textraheader = Authorization: Bearer ********",
            ] {
                assert!(all.contains(line), "no `{line}` in:\n{all}");
            }
        }
    }
    assert_eq!(sb.read("/etc/app/token"), format!("token={SECRET}\n"));
    Ok(())
}

//! `fixer fix LOG`: from an error log to a fixed target in one run. The
//! playbooks the log calls for, with the values it and the target give,
//! planned as one, applied (with `--yes`, or a "y" on a terminal) as one
//! run with one rollback; and every way it refuses, changing nothing.

use predicates::str::contains;
use serde_json::Value;

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

const CLOUD_INIT: &str = "network:\n    ethernets:\n        enp0s3:\n            dhcp4: true\n            match:\n                macaddress: 52:54:00:12:34:56\n            set-name: enp0s3\n    version: 2\n";

/// A DNS failure while fetching a private module through the public
/// proxy: two fixes, DNS and GOPRIVATE.
const LOG: &str = "go: downloading git.corp.example/team/lib v1.2.0\n\
go: git.corp.example/team/lib@v1.2.0: Get \"https://proxy.golang.org/git.corp.example/team/lib/@v/v1.2.0.mod\": dial tcp: lookup proxy.golang.org on 10.0.2.3:53: no such host\n";

fn vm() -> Sandbox {
    let sb = Sandbox::new();
    sb.file("/etc/netplan/50-cloud-init.yaml", CLOUD_INIT);
    sb.chmod("/etc/netplan/50-cloud-init.yaml", 0o600);
    sb
}

fn log(sb: &Sandbox, text: &str) -> String {
    sb.playbook("tidy.log", text).display().to_string()
}

#[test]
fn one_log_one_plan_one_run_one_rollback() -> TestResult {
    let _ = crate::gotools::tool("netplan");
    let sb = vm();
    let log = log(&sb, LOG);
    let before = sb.tree();
    // Off a terminal, without --yes: the plan only.
    let out = sb.fixer(&["fix", &log]).output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    for want in [
        "tidy.log (2 lines): 2 playbooks fix it, planned as one:",
        "  netplan-static-dns (80%)\n    line 2: the name does not resolve",
        "  go-private-modules (60%, also needed)",
        "Plan: playbooks `netplan-static-dns`, `go-private-modules` on localhost",
        "  check_host     proxy.golang.org                 log line 2",
        "  interface      enp0s3                           host: ethernet in /etc/netplan/50-cloud-init.yaml",
        "  private_host  git.corp.example  log line 2",
        "Planned only: run again with --yes to apply it.",
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
    // Network first, then modules: the phases.
    assert!(text.find("~ netplan-static-dns/netplan") < text.find("+ go-private-modules/go-env"));
    assert_eq!(sb.tree(), before, "a plan changed the target");

    let out = sb.fixer(&["fix", &log, "--yes"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(sb
        .read("/etc/netplan/50-cloud-init.yaml")
        .contains("use-dns: false"));
    assert!(sb
        .read("/home/tester/.config/go/env")
        .contains("GOPRIVATE=git.corp.example"));
    assert!(sb
        .read("/home/tester/.gitconfig")
        .contains("git@git.corp.example:"));
    // The probe confirming the fix ran after everything (it warns here:
    // the sandbox's resolver is this machine's).
    assert!(
        stdout_of(&out).contains("netplan-static-dns/dns-works"),
        "{}",
        stdout_of(&out)
    );
    let history = stdout_of(&sb.fixer(&["history"]).output()?);
    assert_eq!(history.lines().count(), 2, "one run: {history}");
    assert!(
        history.contains("netplan-static-dns+go-private-modules"),
        "{history}"
    );
    // Again: nothing left to do, and it says what that means.
    sb.fixer(&["fix", &log, "--yes"])
        .assert()
        .success()
        .stdout(contains(
            "Nothing to change: the target already matches these playbooks",
        ));
    sb.fixer(&["rollback"]).assert().success();
    let restored: Vec<_> = sb
        .tree()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("/run"))
        .collect();
    assert_eq!(restored, before.into_iter().collect::<Vec<_>>());
    Ok(())
}

#[test]
fn on_a_terminal_it_asks_before_applying() -> TestResult {
    let sb = Sandbox::new();
    let log = log(
        &sb,
        "fatal: could not read Username for 'https://git.corp.example': terminal prompts disabled\n",
    );
    let ask = |answer: &str| -> Result<std::process::Output, Box<dyn std::error::Error>> {
        // A terminal of its own: script(1) runs fixer on a pty.
        let line = format!(
            "{} fix {log} --root {} --color never",
            assert_cmd::cargo::cargo_bin("fixer").display(),
            sb.root().display()
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("HOME", crate::support::HOME)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write as _;
            stdin.write_all(answer.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    };
    let out = ask("n\n")?;
    let text = stdout_of(&out);
    assert!(text.contains("Apply these changes to localhost"), "{text}");
    assert!(text.contains("Not applied."), "{text}");
    assert!(!sb.exists("/home/tester/.gitconfig"));
    let out = ask("y\n")?;
    assert!(
        stdout_of(&out).contains("Apply complete"),
        "{}",
        stdout_of(&out)
    );
    assert!(sb
        .read("/home/tester/.gitconfig")
        .contains("git@git.corp.example:"));
    Ok(())
}

#[test]
fn it_refuses_clearly_and_changes_nothing() -> TestResult {
    let sb = vm();
    let before = sb.tree();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"./main.go:7:2: undefined: fmt.Printn\n".to_vec(),
            "nothing to fix: no known remedy in",
        ),
        (
            b"go: go.mod file indicates go 1.21, but maximum version supported by tidy is 1.19\n"
                .to_vec(),
            "nothing to fix: no known remedy in",
        ),
        (
            b"\x7fELF\x02\x01\x01\x00\x00\x00binary".to_vec(),
            "it is not a text log: it holds a NUL byte",
        ),
        (
            // https credentials rejected (-> ssh) and an SSH key refused
            // (-> https): the log points both ways.
            b"fatal: Authentication failed for 'https://github.com/acme/x/'\n\
              git@github.com: Permission denied (publickey).\n"
                .to_vec(),
            "points two ways for `git-ssh-rewrite`",
        ),
        (Vec::new(), "nothing to fix: no known remedy in"),
    ];
    for (text, message) in cases {
        let p = sb.base().join("case.log");
        std::fs::write(&p, &text)?;
        let out = sb
            .fixer(&["fix", &p.display().to_string(), "--yes"])
            .output()?;
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(message), "{message}: {err}");
        assert_eq!(sb.tree(), before);
    }
    // The go version mismatch is shown as what was read.
    let p = sb.base().join("version.log");
    std::fs::write(
        &p,
        "go: go.mod file indicates go 1.21, but maximum version supported by tidy is 1.19\n",
    )?;
    sb.fixer(&["fix", &p.display().to_string()])
        .assert()
        .code(1)
        .stdout(contains("line 1: go: go.mod file indicates go 1.21, but maximum version supported by tidy is 1.19"));
    // Choosing the value the log is torn about lets it go ahead.
    let p = sb.base().join("torn.log");
    std::fs::write(
        &p,
        "fatal: Authentication failed for 'https://github.com/acme/x/'\ngit@github.com: Permission denied (publickey).\n",
    )?;
    sb.fixer(&["fix", &p.display().to_string(), "--var", "via=https"])
        .assert()
        .success()
        .stdout(contains("  via       https       --var"));
    Ok(())
}

#[test]
fn json_is_one_document_of_diagnosis_plan_and_apply() -> TestResult {
    let sb = Sandbox::new();
    let log = log(
        &sb,
        "fatal: could not read Username for 'https://git.corp.example': terminal prompts disabled\n",
    );
    let out = sb
        .fixer(&["fix", &log, "--yes", "--format", "json"])
        .output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        v["diagnosis"]["chosen"],
        serde_json::json!(["go-private-modules"])
    );
    assert_eq!(v["diagnosis"]["remedies"][0]["values"][0]["line"], 1);
    assert_eq!(v["plan"]["playbook"], "go-private-modules");
    assert_eq!(v["plan"]["values"][0]["origin"]["from"], "log");
    assert_eq!(v["apply"]["status"], "applied");
    Ok(())
}

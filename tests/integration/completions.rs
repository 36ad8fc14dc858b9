//! `fixer completions SHELL` and `fixer man`: what packagers install, read
//! back by the real bash and by checks on the roff.

use std::process::Command;

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

const COMMANDS: &[&str] = &[
    "validate",
    "plan",
    "apply",
    "rollback",
    "history",
    "diagnose",
    "completions",
    "man",
    "init",
    "schema",
    "prune",
];

#[test]
fn bash_completion_is_valid_bash_and_completes_commands_and_options() -> TestResult {
    let sb = Sandbox::new();
    let out = sb.fixer_here(&["completions", "bash"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let script = sb.base().join("fixer.bash");
    std::fs::write(&script, &out.stdout)?;
    // Source it in a real bash and ask it to complete `fixer pl` and
    // `fixer plan --ro`, as the shell does on TAB.
    let probe = format!(
        "source {}\n\
         COMP_WORDS=(fixer pl); COMP_CWORD=1; _fixer fixer pl fixer; echo \"${{COMPREPLY[@]}}\"\n\
         COMP_WORDS=(fixer plan --ro); COMP_CWORD=2; _fixer fixer --ro plan; echo \"${{COMPREPLY[@]}}\"\n",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let lines: Vec<String> = stdout_of(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.first().map(String::as_str), Some("plan"), "{lines:?}");
    assert_eq!(
        lines.get(1).map(String::as_str),
        Some("--root"),
        "{lines:?}"
    );
    Ok(())
}

#[test]
fn every_shell_gets_a_script_naming_every_command() -> TestResult {
    let sb = Sandbox::new();
    for (shell, marker) in [
        ("bash", "complete -F _fixer"),
        ("zsh", "#compdef fixer"),
        ("fish", "complete -c fixer"),
        ("elvish", "edit:completion:arg-completer[fixer]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = sb.fixer_here(&["completions", shell]).output()?;
        assert!(out.status.success(), "{shell}: {}", stderr_of(&out));
        let text = stdout_of(&out);
        assert!(text.contains(marker), "{shell}: no `{marker}`");
        for c in COMMANDS {
            assert!(text.contains(c), "{shell}: `{c}` missing");
        }
    }
    let out = sb.fixer_here(&["completions", "tcsh"]).output()?;
    // A usage error is an error (1), never 2, which --detailed-exitcode
    // gives to "the plan has changes".
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("invalid value 'tcsh'"));
    Ok(())
}

#[test]
fn man_pages_document_every_command() -> TestResult {
    let sb = Sandbox::new();
    let out = sb.fixer_here(&["man"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let page = stdout_of(&out);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH fixer 1"),
        "{page}"
    );
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section}");
    }
    for c in COMMANDS {
        assert!(
            page.contains(&format!("fixer\\-{c}(1)")),
            "fixer-{c}(1) not listed"
        );
    }
    let dir = sb.base().join("man1");
    std::fs::create_dir_all(&dir)?;
    sb.fixer_here(&["man", "--dir", dir.to_str().ok_or("path")?])
        .assert()
        .success();
    for c in COMMANDS {
        let sub = std::fs::read_to_string(dir.join(format!("fixer-{c}.1")))?;
        assert!(
            sub.contains(&format!(".TH fixer-{c} 1")),
            "fixer-{c}.1: {sub}"
        );
    }
    assert!(dir.join("fixer.1").exists());
    Ok(())
}

#[test]
fn target_options_are_refused_and_nothing_is_written() -> TestResult {
    let sb = Sandbox::new();
    for args in [
        &["completions", "bash", "--root", "/tmp"][..],
        &["man", "--host", "example.invalid"],
    ] {
        let out = sb.fixer_here(args).output()?;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr_of(&out).contains("touches no host"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let missing = sb.base().join("no/such/dir");
    let out = sb
        .fixer_here(&["man", "--dir", missing.to_str().ok_or("path")?])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains(&format!("cannot write {}", missing.display())),
        "{}",
        stderr_of(&out)
    );
    Ok(())
}

//! `fixer diagnose` on real error logs (tests/data/diagnose: each file
//! names its source, the fix that worked and its category), on the same
//! logs as a terminal or a web page would mangle them, and on playbooks a
//! user adds.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::support::{stderr_of, stdout_of};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/diagnose")
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks")
}

struct Case {
    path: PathBuf,
    category: String,
    /// The log as posted, without the corpus header.
    log: String,
}

fn corpus() -> Result<Vec<Case>, Box<dyn std::error::Error>> {
    let mut cases = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|x| x == "txt"));
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        let mut category = None;
        let mut body = Vec::new();
        for line in text.split_inclusive('\n') {
            match line.strip_prefix("# category:") {
                Some(c) => category = Some(c.trim().to_string()),
                None if body.is_empty()
                    && (line.starts_with("# source:") || line.starts_with("# fix:")) => {}
                None => body.push(line),
            }
        }
        let category = category.ok_or(format!("{}: no # category:", path.display()))?;
        cases.push(Case {
            path,
            category,
            log: body.concat(),
        });
    }
    Ok(cases)
}

/// `fixer diagnose ARGS` with HOME in `home` (no user playbooks unless a
/// test puts some there).
fn diagnose(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("fixer"));
    cmd.arg("diagnose")
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env("NO_COLOR", "1");
    cmd
}

fn json_of(home: &Path, log: &Path, extra: &[&str]) -> Result<Value, Box<dyn std::error::Error>> {
    let log = log.display().to_string();
    let out = diagnose(
        home,
        &[&[log.as_str(), "--format", "json"][..], extra].concat(),
    )
    .output()?;
    if out.status.code() != Some(0) {
        return Err(format!("exit {:?}: {}", out.status.code(), stderr_of(&out)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The playbook diagnose answers with: the first remedy shown strongly
/// enough (the others are only possible).
fn top(v: &Value) -> Option<&str> {
    v["remedies"]
        .as_array()?
        .iter()
        .find(|r| r["answers"] == true)?["playbook"]
        .as_str()
}

/// Logs whose right answer cannot be read from the log: the same lines
/// mean something else in other cases. diagnose gives the answer below,
/// and this list says so rather than pretending otherwise.
const KNOWN_MISSES: [(&str, Option<&str>, &str); 4] = [
    (
        "34_dns_bad-resolver-403-xml-error.txt",
        None,
        "the log shows only an HTTP 403 and an XML error, nothing of DNS",
    ),
    (
        "35_dns_opendns-tls-handshake-timeout.txt",
        None,
        "a TLS handshake timeout to golang.org (not a module proxy); the resolver was the cause",
    ),
    (
        "63_other_checksum-mismatch-fixed-by-other-mirror.txt",
        Some("go-clean-modcache"),
        "a checksum mismatch as any other: that a retagged module was the cause is not in the log",
    ),
    (
        "65_other_checksum-mismatch-direct-vs-proxy-retag.txt",
        Some("go-clean-modcache"),
        "a checksum mismatch as any other: that a retagged module was the cause is not in the log",
    ),
];

#[test]
fn every_corpus_log_gets_the_playbook_of_its_category() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let cases = corpus()?;
    assert!(cases.len() >= 7, "the corpus has {} logs", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let file = case.path.file_name().and_then(|f| f.to_str()).unwrap_or("");
        let want = match KNOWN_MISSES.iter().find(|(f, _, _)| *f == file) {
            Some((_, answer, _)) => *answer,
            None => crate::categories::expected_playbook(&case.category)?,
        };
        // The log alone: the corpus header names the fix.
        let log = dir.path().join(file);
        std::fs::write(&log, &case.log)?;
        let v = json_of(home.path(), &log, &[])?;
        if top(&v) != want {
            wrong.push(format!(
                "{}: {} expected {want:?}, got {:?}",
                case.path.display(),
                case.category,
                v["remedies"]
                    .as_array()
                    .map(|r| r.iter().map(|r| r["playbook"].clone()).collect::<Vec<_>>())
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for (file, _, _) in KNOWN_MISSES {
        assert!(corpus_dir().join(file).is_file(), "{file} is gone");
    }
    Ok(())
}

/// The same logs as they reach us in practice: CRLF line ends, ANSI colours,
/// hard-wrapped by a narrow terminal, or re-flowed at word boundaries by a
/// web page. Derived from the real logs, so the answer must not change.
#[test]
fn mangled_logs_get_the_same_answer_and_values() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    for case in corpus()? {
        let clean = dir.path().join("clean.log");
        std::fs::write(&clean, &case.log)?;
        let want = json_of(home.path(), &clean, &[])?;
        let variants: [(&str, String); 4] = [
            ("crlf", case.log.replace('\n', "\r\n")),
            (
                "ansi",
                case.log
                    .lines()
                    .map(|l| format!("\x1b[1;31m{l}\x1b[0m\x1b]0;title\x07\n"))
                    .collect(),
            ),
            ("terminal wrap", wrap_chars(&case.log, 60)),
            ("word wrap", wrap_words(&case.log, 50)),
        ];
        // A log a terminal already wrapped (a Windows console's 80
        // columns) is not wrapped again, by a terminal or a web page: that
        // would cut its words twice.
        let width = case
            .log
            .lines()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        let wrapped = width >= 40
            && case
                .log
                .lines()
                .filter(|l| l.chars().count() == width)
                .count()
                >= 2;
        for (name, text) in variants {
            if wrapped && name.ends_with(" wrap") {
                continue;
            }
            let p = dir.path().join("mangled.log");
            std::fs::write(&p, text)?;
            let got = json_of(home.path(), &p, &[])?;
            assert_eq!(
                top(&got),
                top(&want),
                "{} ({name}): {got}",
                case.path.display()
            );
            assert_eq!(
                got["remedies"][0]["vars"],
                want["remedies"][0]["vars"],
                "{} ({name})",
                case.path.display()
            );
        }
    }
    Ok(())
}

/// As copied from a terminal `width` columns wide: tabs became spaces, and
/// long lines were cut at the last column.
fn wrap_chars(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut chars: Vec<char> = Vec::new();
        for c in line.chars() {
            if c == '\t' {
                chars.extend(std::iter::repeat_n(' ', 8 - chars.len() % 8));
            } else {
                chars.push(c);
            }
        }
        if chars.is_empty() {
            out.push('\n');
        }
        for chunk in chars.chunks(width) {
            out.extend(chunk);
            out.push('\n');
        }
    }
    out
}

fn wrap_words(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut len = 0;
        for (i, word) in line.split(' ').enumerate() {
            if i > 0 && len + word.len() > width {
                out.push('\n');
                len = 0;
            } else if i > 0 {
                out.push(' ');
                len += 1;
            }
            out.push_str(word);
            len += word.len();
        }
        out.push('\n');
    }
    out
}

fn case(name: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let p = corpus_dir().join(name);
    if !p.is_file() {
        return Err(format!("{} is missing", p.display()).into());
    }
    Ok(p)
}

#[test]
fn values_read_from_the_log_fill_the_suggested_command() -> TestResult {
    let home = tempfile::tempdir()?;
    let v = json_of(home.path(), &case("07_dns.txt")?, &[])?;
    let r = &v["remedies"][0];
    assert_eq!(r["vars"]["check_host"], "proxy.golang.org");
    assert_eq!(r["category"], "dns");
    assert_eq!(
        r["command"],
        format!(
            "fixer plan {}/netplan-static-dns.toml --var check_host=proxy.golang.org",
            shipped().display()
        )
    );
    // The evidence is the line that matched, by its number in the file.
    assert_eq!(r["evidence"][0]["line"], 5);

    let v = json_of(home.path(), &case("05_checksum_mismatch.txt")?, &[])?;
    assert_eq!(
        v["remedies"][0]["vars"]["module"],
        "github.com/gen2brain/go-fitz"
    );
    let v = json_of(home.path(), &case("03_private_module.txt")?, &[])?;
    assert_eq!(v["remedies"][0]["vars"]["private_host"], "github.com");
    // Two lines agree: more confident than either alone (each lowered: on
    // github.com, a missing public module looks the same).
    assert!(v["remedies"][0]["confidence"].as_f64() > Some(0.75), "{v}");
    assert_eq!(
        v["remedies"][0]["against"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
    let v = json_of(home.path(), &case("04_git_auth.txt")?, &[])?;
    assert_eq!(v["remedies"][0]["vars"]["via"], "https");
    assert_eq!(v["remedies"][0]["vars"]["git_host"], "github.com");
    Ok(())
}

#[test]
fn a_quoted_value_survives_the_shell() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("log");
    std::fs::write(
        &log,
        "go: writing stat cache: open /srv/o'neil$(id)/go/pkg/mod/cache/x: permission denied\n",
    )?;
    let v = json_of(home.path(), &log, &[])?;
    let command = v["remedies"][0]["command"]
        .as_str()
        .ok_or("no command")?
        .to_string();
    assert!(command.contains(" --var 'gomodcache="), "{command}");
    // The shell hands `--var` exactly the value read from the log.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -- {}; for a; do printf '%s\\n' \"$a\"; done",
            command.trim_start_matches("fixer ")
        ))
        .output()?;
    assert!(
        stdout_of(&out).contains("gomodcache=/srv/o'neil$(id)/go/pkg/mod\n"),
        "{}",
        stdout_of(&out)
    );
    Ok(())
}

#[test]
fn an_unknown_error_gets_no_known_remedy_and_what_was_read() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("build.log");
    std::fs::write(
        &log,
        "go: downloading example.com/x v1.0.0\n./main.go:7:2: undefined: fmt.Printn\nnote: module requires Go 1.22\n",
    )?;
    let out = diagnose(home.path(), &[&log.display().to_string()]).output()?;
    let stdout = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("No known remedy"), "{stdout}");
    assert!(
        stdout.contains("line 2: ./main.go:7:2: undefined: fmt.Printn"),
        "{stdout}"
    );
    let v = json_of(home.path(), &log, &[])?;
    assert_eq!(v["remedies"], serde_json::json!([]));
    assert_eq!(v["lines"], 3);
    Ok(())
}

#[test]
fn text_output_names_playbook_evidence_and_command() -> TestResult {
    let home = tempfile::tempdir()?;
    let out = diagnose(
        home.path(),
        &[&case("07_dns.txt")?.display().to_string(), "--playbooks"],
    )
    .arg(shipped())
    .output()?;
    let text = stdout_of(&out)
        .replace(&corpus_dir().display().to_string(), "[CORPUS]")
        .replace(&shipped().display().to_string(), "[PLAYBOOKS]");
    assert_eq!(out.status.code(), Some(0), "{text}");
    insta::assert_snapshot!("diagnose_dns", text);
    Ok(())
}

#[test]
fn reads_stdin() -> TestResult {
    let home = tempfile::tempdir()?;
    let mut child = diagnose(home.path(), &["-", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin
            .write_all(b"missing go.sum entry for module providing package golang.org/x/text\n")?;
    }
    let out = child.wait_with_output()?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(top(&v), Some("go-mod-tidy"));
    assert_eq!(v["log"], "standard input");
    Ok(())
}

const USER_PLAYBOOK: &str = r#"
[playbook]
name = "vault-token"
description = "Renew the vault token file"

[vars]
vault_addr = "https://vault.example"

[[symptom]]
category = "vault"
pattern = 'vault: permission denied talking to (?P<vault_addr>https://\S+)'
confidence = 0.9

[[resource]]
type = "file"
path = "/etc/vault-agent/token"
content = "renew\n"
"#;

#[test]
fn playbooks_a_user_adds_are_known_without_code() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("log");
    std::fs::write(
        &log,
        "Error: vault: permission denied talking to https://vault.corp:8200\n",
    )?;
    // Not known before...
    let v = json_of(home.path(), &log, &[])?;
    assert_eq!(top(&v), None, "{v}");
    // ...known once in ~/.config/fixer/playbooks, next to the shipped ones.
    let user_dir = home.path().join(".config/fixer/playbooks");
    std::fs::create_dir_all(&user_dir)?;
    std::fs::write(user_dir.join("vault.toml"), USER_PLAYBOOK)?;
    let v = json_of(home.path(), &log, &[])?;
    assert_eq!(top(&v), Some("vault-token"), "{v}");
    assert_eq!(
        v["remedies"][0]["vars"]["vault_addr"],
        "https://vault.corp:8200"
    );
    assert!(v["playbooks"].as_u64() > Some(1), "{v}");
    // --playbooks replaces the default directories.
    let only = dir.path().join("only");
    std::fs::create_dir_all(&only)?;
    std::fs::write(only.join("vault.toml"), USER_PLAYBOOK)?;
    let v = json_of(
        home.path(),
        &case("07_dns.txt")?,
        &["--playbooks", &only.display().to_string()],
    )?;
    assert_eq!(top(&v), None, "{v}");
    assert_eq!(v["playbooks"], 1);
    Ok(())
}

#[test]
fn a_broken_user_playbook_is_reported_and_the_others_still_answer() -> TestResult {
    let home = tempfile::tempdir()?;
    let user_dir = home.path().join(".config/fixer/playbooks");
    std::fs::create_dir_all(&user_dir)?;
    std::fs::write(
        user_dir.join("broken.toml"),
        "[playbook]\nname = \"broken\"\n\n[[symptom]]\npattern = 'unclosed (group'\n",
    )?;
    let out = diagnose(
        home.path(),
        &[&case("06_missing_go_sum.txt")?.display().to_string()],
    )
    .output()?;
    assert_eq!(out.status.code(), Some(0));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("broken.toml:5:") && stderr.contains("symptom[0].pattern"),
        "{stderr}"
    );
    assert!(
        stdout_of(&out).contains("1. go-mod-tidy"),
        "{}",
        stdout_of(&out)
    );
    let v = json_of(home.path(), &case("06_missing_go_sum.txt")?, &[])?;
    assert!(
        v["skipped"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("symptom[0].pattern")),
        "{v}"
    );
    assert_eq!(top(&v), Some("go-mod-tidy"));
    Ok(())
}

#[test]
fn bad_symptoms_are_refused_with_file_line_and_field() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            "pattern = 'a(b'",
            8,
            "symptom[0].pattern",
            "not a valid regular expression",
        ),
        (
            "pattern = '(?P<nope>x)'",
            8,
            "symptom[0].pattern",
            "the capture `nope` is not a variable",
        ),
        (
            "pattern = 'x'\nconfidence = 1.5",
            9,
            "symptom[0].confidence",
            "at most 1",
        ),
        (
            "pattern = 'x'\nvars = { nope = \"1\" }",
            9,
            "symptom[0].vars.nope",
            "not a variable",
        ),
        (
            "pattern = '(?P<host>x)'\nvars = { host = \"{{user}}\" }",
            9,
            "symptom[0].vars.host",
            "not a named capture",
        ),
        ("pattern = 'x'\nweight = 2", 9, "weight", "unknown field"),
        (
            "pattern = 'x'\nconfidence = nan",
            9,
            "symptom[0].confidence",
            "more than 0",
        ),
        (
            "pattern = '(?P<host>a*)'",
            8,
            "symptom[0].pattern",
            "matches an empty text",
        ),
        (
            "pattern = 'token=(?P<token>\\S+)'",
            8,
            "symptom[0].pattern",
            "`token` is a sensitive variable",
        ),
        (
            "pattern = 'x'\nvars = { token = \"1\" }",
            9,
            "symptom[0].vars.token",
            "is sensitive",
        ),
    ];
    for (body, line, field, message) in cases {
        let pb = dir.path().join("pb.toml");
        std::fs::write(
            &pb,
            format!(
                "[playbook]\nname = \"t\"\n\n[vars]\nhost = \"h\"\ntoken = {{ value = \"s\", sensitive = true }}\n[[symptom]]\n{body}\n"
            ),
        )?;
        let out = Command::new(assert_cmd::cargo::cargo_bin("fixer"))
            .args(["validate", &pb.display().to_string()])
            .output()?;
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{body}: {stderr}");
        assert!(
            stderr.contains(&format!("pb.toml:{line}:")),
            "{body}: {stderr}"
        );
        assert!(
            stderr.contains(field) && stderr.contains(message),
            "{body}: {stderr}"
        );
    }
    Ok(())
}

#[test]
fn usage_errors() -> TestResult {
    let home = tempfile::tempdir()?;
    let log = case("07_dns.txt")?.display().to_string();
    let missing = home.path().join("nope");
    let empty = home.path().join("empty");
    std::fs::create_dir_all(&empty)?;
    let cases: [(Vec<String>, &str); 6] = [
        (
            vec![log.clone(), "--var".into(), "user=x".into()],
            "belong to the `fixer plan`",
        ),
        (
            vec![
                log.clone(),
                "--playbooks".into(),
                empty.display().to_string(),
            ],
            "no playbook to diagnose with",
        ),
        (
            vec!["/nonexistent/build.log".into()],
            "/nonexistent/build.log",
        ),
        (
            vec![
                log.clone(),
                "--playbooks".into(),
                missing.display().to_string(),
            ],
            "nope",
        ),
        (
            vec![log.clone(), "--host".into(), "web1".into()],
            "touches no host",
        ),
        (
            vec![log.clone(), "--root".into(), "/tmp".into()],
            "touches no host",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = diagnose(home.path(), &args).output()?;
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    Ok(())
}

/// docs/symptoms.md is generated from the shipped playbooks so it cannot
/// drift: `FIXER_UPDATE_DOCS=1 cargo test symptom_docs` rewrites it.
#[test]
fn symptom_docs_match_the_shipped_playbooks() -> TestResult {
    let catalog = fixer::diagnose::Catalog::load(&[shipped()], true)?;
    assert!(catalog.skipped.is_empty(), "{:?}", catalog.skipped);
    let mut md = String::from(
        "# Symptoms the shipped playbooks cover\n\n\
         What `fixer diagnose` recognises, playbook by playbook: each row is one \
         `[[symptom]]` (docs/playbook.md). Generated from `playbooks/*.toml`; \
         refresh with `FIXER_UPDATE_DOCS=1 cargo test symptom_docs`.\n",
    );
    let mut playbooks: Vec<_> = catalog.playbooks.iter().collect();
    playbooks.sort_by(|a, b| a.name.cmp(&b.name));
    for pb in playbooks {
        md.push_str(&format!(
            "\n## {}\n\n{}\n\n",
            pb.name,
            pb.description.as_deref().unwrap_or("")
        ));
        if pb.symptoms.is_empty() {
            md.push_str("No symptoms: diagnose never suggests it.\n");
            continue;
        }
        md.push_str(
            "| category | confidence | meaning | pattern | sets | counted against by |\n|---|---|---|---|---|---|\n",
        );
        let cell = |t: &str| t.replace('|', "\\|");
        for s in &pb.symptoms {
            let mut sets: Vec<String> = s
                .regex
                .capture_names()
                .flatten()
                .map(|n| format!("`{n}` (read)"))
                .collect();
            sets.extend(s.vars.iter().map(|(k, v)| format!("`{k}={v}`")));
            let against: Vec<String> = s
                .counters
                .iter()
                .map(|c| {
                    let effect = if c.factor == 0.0 {
                        "vetoes".to_string()
                    } else {
                        format!("x{}", c.factor)
                    };
                    format!("`{}` ({effect})", cell(&c.pattern))
                })
                .collect();
            md.push_str(&format!(
                "| {} | {}{} | {} | `{}` | {} | {} |\n",
                s.category.as_deref().unwrap_or(""),
                s.confidence,
                if s.also { ", also needed" } else { "" },
                s.description.as_deref().unwrap_or(""),
                cell(&s.pattern),
                sets.join(", "),
                against.join("<br>")
            ));
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/symptoms.md");
    if std::env::var_os("FIXER_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &md)?;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == md,
        "docs/symptoms.md is out of date: FIXER_UPDATE_DOCS=1 cargo test symptom_docs"
    );
    Ok(())
}

/// A log, the playbook it needs (or none), values it must yield, and the
/// line the top evidence is on.
type Expected = (
    String,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
    u64,
);

/// What a log says, read right: each case is a real-looking log that an
/// earlier version misread (values glued across lines, cut by escapes,
/// one incident's values mixed with another's).
#[test]
fn adversarial_logs_are_read_right() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let long = "x".repeat(70);
    let cases: Vec<Expected> = vec![
        (
            // The longest line next to the match is not a terminal wrap.
            "Warning: Permanently added the RSA host key for IP address '192.30.252.129' to the list of known hosts.\n\
             git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.\n"
                .into(),
            Some("git-ssh-rewrite"),
            &[("ssh_user", "git"), ("git_host", "github.com"), ("via", "https")],
            2,
        ),
        (
            "ssh: Could not resolve hostname gitlab.corp.example: Name or service not known\nfatal: Could not read from remote repository.\n"
                .into(),
            Some("netplan-static-dns"),
            &[("check_host", "gitlab.corp.example")],
            1,
        ),
        (
            "fatal: unable to access 'https://github.com/acme/tool/': Could not resolve host: github.com\n".into(),
            Some("netplan-static-dns"),
            &[("check_host", "github.com")],
            1,
        ),
        (
            // tput sgr0 writes ESC ( B.
            "\x1b(B\x1b[mgit@github.com: Permission denied (publickey).\n".into(),
            Some("git-ssh-rewrite"),
            &[("ssh_user", "git")],
            1,
        ),
        (
            // Progress redrawn with CRs: line numbers stay the file's.
            "downloading 10%\rdownloading 50%\rdownloading 100%\n\
             dial tcp: lookup proxy.golang.org on 10.0.0.2:53: read udp 10.0.0.9:5353->10.0.0.2:53: i/o timeout\n"
                .into(),
            Some("netplan-static-dns"),
            &[("check_host", "proxy.golang.org")],
            2,
        ),
        (
            // Two incidents: root's module cache and deploy's build cache.
            "go: writing go.mod cache: mkdir /root/go/pkg/mod/cache/download/x: permission denied\n\
             open /home/deploy/.cache/go-build/ab/abc-d: permission denied\n"
                .into(),
            Some("go-cache-permissions"),
            &[("user", "deploy"), ("group", "deploy"), ("gocache", "/home/deploy/.cache/go-build")],
            2,
        ),
        (
            // Not a user's home: /mnt/data/home/bob is not bob's cache.
            "mkdir /mnt/data/home/bob/go/pkg/mod/cache: permission denied\n".into(),
            Some("go-cache-permissions"),
            &[("gomodcache", "/mnt/data/home/bob/go/pkg/mod")],
            1,
        ),
        (
            "fatal: could not read Username for 'https://git.corp.example:8443': terminal prompts disabled\n".into(),
            Some("go-private-modules"),
            &[("private_host", "git.corp.example")],
            1,
        ),
        (
            "{\"error\": \"github.com/Azure/go-autorest@v14.2.0+incompatible: verifying module: checksum mismatch\"}\n".into(),
            Some("go-clean-modcache"),
            &[("module", "github.com/Azure/go-autorest")],
            1,
        ),
        (
            // A refused SSH login to a server is not a git rewrite.
            "ubuntu@10.0.0.5: Permission denied (publickey).\n".into(),
            Some("git-ssh-rewrite"),
            &[("via", "https")],
            1,
        ),
        (
            "dial tcp [2607:f8b0:4004:c07::8d]:443: connect: network is unreachable\n".into(),
            None,
            &[],
            0,
        ),
        (
            // A terminal 60 columns wide cut the host name.
            wrap_chars(
                &format!(
                    "fatal: could not read Username for 'https://gitlab.internal.corporation-example.com': \
                     terminal prompts disabled\ngo: downloading {long}\n"
                ),
                60,
            ),
            Some("go-private-modules"),
            &[("private_host", "gitlab.internal.corporation-example.com")],
            1,
        ),
    ];
    for (i, (text, want, vars, line)) in cases.into_iter().enumerate() {
        let log = dir.path().join(format!("case{i}.log"));
        std::fs::write(&log, &text)?;
        let v = json_of(home.path(), &log, &[])?;
        assert_eq!(top(&v), want, "case {i}: {v}");
        let r = &v["remedies"][0];
        for (k, val) in vars {
            assert_eq!(r["vars"][k], *val, "case {i} {k}: {v}");
        }
        if want.is_some() {
            assert_eq!(r["evidence"][0]["line"], line, "case {i}: {v}");
        }
    }
    Ok(())
}

#[test]
fn a_users_playbook_replaces_the_shipped_one_of_the_same_name() -> TestResult {
    let home = tempfile::tempdir()?;
    let config = tempfile::tempdir()?;
    let user_dir = config.path().join("fixer/playbooks");
    std::fs::create_dir_all(&user_dir)?;
    std::fs::write(
        user_dir.join("tidy.toml"),
        "[playbook]\nname = \"go-mod-tidy\"\ndescription = \"ours\"\n\n\
         [[symptom]]\npattern = 'our own marker'\nconfidence = 0.9\n\n\
         [[resource]]\ntype = \"file\"\npath = \"/srv/x\"\ncontent = \"x\"\n",
    )?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("log");
    std::fs::write(
        &log,
        "missing go.sum entry for module providing package x\n",
    )?;
    let mut cmd = diagnose(
        home.path(),
        &[&log.display().to_string(), "--format", "json"],
    );
    let out = cmd.env("XDG_CONFIG_HOME", config.path()).output()?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    // The shipped go-mod-tidy is gone, so its symptom no longer matches.
    assert_eq!(top(&v), None, "{v}");
    std::fs::write(&log, "our own marker\n")?;
    let out = diagnose(
        home.path(),
        &[&log.display().to_string(), "--format", "json"],
    )
    .env("XDG_CONFIG_HOME", config.path())
    .output()?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["remedies"][0]["description"], "ours", "{v}");
    Ok(())
}

/// The wordings an earlier diagnose misread (issue 14): caches outside
/// /home/USER, counter-evidence, a go version mismatch, a private module
/// fetched through the public proxy, and one line shown once.
#[test]
fn what_the_log_says_against_a_remedy_and_for_a_second_one() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let run = |text: &str| -> Result<Value, Box<dyn std::error::Error>> {
        let log = dir.path().join("log");
        std::fs::write(&log, text)?;
        json_of(home.path(), &log, &[])
    };
    for (text, var, value) in [
        ("go: writing go.mod cache: mkdir /go/pkg: permission denied\n", "gomodcache", "/go/pkg"),
        (
            "go: could not create module cache: mkdir /go/pkg/mod: permission denied\n",
            "gomodcache",
            "/go/pkg/mod",
        ),
        (
            "failed to initialize build cache at /go/.cache: open /go/.cache/README: permission denied\n",
            "gocache",
            "/go/.cache",
        ),
    ] {
        let v = run(text)?;
        assert_eq!(top(&v), Some("go-cache-permissions"), "{text}: {v}");
        assert_eq!(v["remedies"][0]["vars"][var], value, "{text}: {v}");
    }
    // "Repository not found" rules the private-module fix out.
    let v = run(
        "fatal: could not read Username for 'https://github.com': terminal prompts disabled\n\
                 remote: Repository not found.\n",
    )?;
    assert_eq!(top(&v), None, "{v}");
    assert_eq!(v["remedies"][0]["confidence"], 0.0, "{v}");
    let veto = v["remedies"][0]["against"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["factor"] == 0.0).cloned())
        .unwrap_or_default();
    assert_eq!(veto["line"], 2, "{v}");
    // "Confirm the import path" lowers it below an answer on github.com...
    let v = run(
        "fatal: could not read Username for 'https://github.com': terminal prompts disabled\n\
                 Confirm the import path was entered correctly.\n",
    )?;
    assert_eq!(top(&v), None, "{v}");
    assert!(v["remedies"][0]["confidence"].as_f64() > Some(0.3), "{v}");
    // ... not for a host that is no public forge.
    let v = run(
        "fatal: could not read Username for 'https://git.vdb.to': terminal prompts disabled\n\
                 Confirm the import path was entered correctly.\n",
    )?;
    assert_eq!(top(&v), Some("go-private-modules"), "{v}");
    // A go version mismatch: no remedy, and the line is what was read.
    let v =
        run("go: go.mod file indicates go 1.21, but maximum version supported by tidy is 1.19\n")?;
    assert_eq!(top(&v), None, "{v}");
    assert_eq!(v["error_lines"][0]["line"], 1, "{v}");
    // DNS fails for a private module's public-proxy URL: DNS first, and
    // GOPRIVATE also needed.
    let v = run("go: git.corp.example/team/lib@v1.2.0: Get \"https://proxy.golang.org/git.corp.example/team/lib/@v/v1.2.0.mod\": dial tcp: lookup proxy.golang.org on 10.0.2.3:53: no such host\n")?;
    assert_eq!(top(&v), Some("netplan-static-dns"), "{v}");
    let chosen: Vec<&str> = v["remedies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["chosen"] == true)
        .filter_map(|r| r["playbook"].as_str())
        .collect();
    assert_eq!(chosen, ["netplan-static-dns", "go-private-modules"], "{v}");
    // Two symptoms on one line: the line once, both meanings under it.
    let log = dir.path().join("log");
    std::fs::write(&log, "dial tcp: lookup proxy.golang.org on 10.0.0.2:53: read udp 10.0.0.9:5353->10.0.0.2:53: i/o timeout\n")?;
    let out = diagnose(home.path(), &[&log.display().to_string()]).output()?;
    let text = stdout_of(&out);
    assert_eq!(text.matches("line 1:").count(), 1, "{text}");
    assert!(
        text.contains("the DNS server does not answer\n     a query to a DNS server times out"),
        "{text}"
    );
    Ok(())
}

/// Bad input: clear words and the documented exit codes.
#[test]
fn binary_empty_and_huge_logs() -> TestResult {
    let home = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("core");
    std::fs::write(&bin, b"\x7fELF\x02\x01\x01\x00\x00")?;
    let out = diagnose(home.path(), &[&bin.display().to_string()]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("core: it is not a text log: it holds a NUL byte at offset 7"),
        "{}",
        stderr_of(&out)
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "")?;
    let out = diagnose(home.path(), &[&empty.display().to_string()]).output()?;
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout_of(&out).contains("No line of it looks like an error."));
    // A long CI log, read in pieces (memory is measured in benches): the
    // cause on its last line, one overlong line on the way.
    let big = dir.path().join("ci.log");
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big)?);
        for i in 0..300_000 {
            writeln!(f, "step {i}: building package example.com/pkg{i}")?;
        }
        writeln!(f, "{}", "x".repeat(1 << 20))?;
        writeln!(
            f,
            "missing go.sum entry for module providing package golang.org/x/text"
        )?;
    }
    let v = json_of(home.path(), &big, &[])?;
    assert_eq!(top(&v), Some("go-mod-tidy"), "{}", v["remedies"]);
    assert_eq!(v["lines"], 300_002);
    assert_eq!(v["remedies"][0]["evidence"][0]["line"], 300_002);
    Ok(())
}

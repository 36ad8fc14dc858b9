//! The guide's examples are what the commands print: each command marked
//! `<!-- run: fixer ARGS -->` in docs/guide.md is run from the repository's
//! top folder, and its output compared with the text block after it.
//! `FIXER_UPDATE_DOCS=1 cargo test --test integration docs` rewrites them.

use std::path::Path;

use crate::support::{is_root, TestResult};

const MARK: &str = "<!-- run: fixer ";

/// What may differ from one machine to the next: where the repository is,
/// and what a DNS probe finds (this machine's resolver).
fn normal(text: &str, repo: &str) -> String {
    text.replace(&format!("{repo}/"), "")
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if ["pass", "fail", "warn"]
                .iter()
                .any(|w| t.starts_with(&format!("{w} ")) || t.starts_with(&format!("{w}:")))
            {
                format!("{}<probe result>", &l[..l.len() - t.len()])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_guides_examples_are_what_fixer_prints() -> TestResult {
    if !is_root() {
        // The example image's files must be root's, as on a real VM.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return Ok(());
    }
    let _ = crate::gotools::tool("netplan");
    let repo = env!("CARGO_MANIFEST_DIR");
    let guide_path = Path::new(repo).join("docs/guide.md");
    let guide = std::fs::read_to_string(&guide_path)?;
    // netplan wants its files private; git cannot keep that mode.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        Path::new(repo).join("tests/data/guide/vm/etc/netplan/50-cloud-init.yaml"),
        std::fs::Permissions::from_mode(0o600),
    )?;
    let config = tempfile::tempdir()?;
    let mut rewritten = String::new();
    let mut wrong = Vec::new();
    let mut ran = 0;
    let mut lines = guide.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        rewritten.push_str(line);
        // A marker inside a list item is indented, and so is its block.
        let indent = &line[..line.len() - line.trim_start().len()];
        let Some(args) = line
            .trim()
            .strip_prefix(MARK)
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        // The fenced block that follows holds the expected output.
        let open = lines.next().ok_or("a run marker at the end of the guide")?;
        rewritten.push_str(open);
        let mut expected = String::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            expected.push_str(l.strip_prefix(indent).unwrap_or(l));
        }
        let args: Vec<&str> = args.split_whitespace().collect();
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"))
            .args(&args)
            .current_dir(repo)
            .env("HOME", "/root")
            .env("XDG_CONFIG_HOME", config.path())
            .env("NO_COLOR", "1")
            .output()?;
        let got = String::from_utf8_lossy(&out.stdout).into_owned();
        // The reader sees the command, which the marker hides.
        // Its own config folder keeps this machine's playbooks out; go's
        // env file is under it, where a user's would be under ~/.config.
        let got = got.replace(&config.path().display().to_string(), "/root/.config");
        let got = format!("$ fixer {}\n{}", args.join(" "), normal(&got, repo));
        for l in got.trim_end().lines() {
            if !l.is_empty() {
                rewritten.push_str(indent);
            }
            rewritten.push_str(l);
            rewritten.push('\n');
        }
        rewritten.push_str(indent);
        rewritten.push_str("```\n");
        ran += 1;
        if normal(expected.trim_end(), repo) != got.trim_end() {
            wrong.push(format!(
                "fixer {}:\n--- guide\n{expected}\n--- fixer\n{got}",
                args.join(" ")
            ));
        }
    }
    if std::env::var_os("FIXER_UPDATE_DOCS").is_some() {
        std::fs::write(&guide_path, rewritten)?;
        return Ok(());
    }
    assert!(ran >= 2, "only {ran} examples marked in the guide");
    assert!(
        wrong.is_empty(),
        "the guide shows other output than fixer prints (FIXER_UPDATE_DOCS=1 to rewrite):\n{}",
        wrong.join("\n")
    );
    Ok(())
}

/// A `fixer` command shown in a doc: where, and its words.
struct Shown {
    file: String,
    line: usize,
    words: Vec<String>,
}

/// Every `fixer ...` command in the code blocks and inline code of
/// README.md and docs/*.md, without shell around it (`# comment`, `|`,
/// `>`, `2>&1`).
fn shown_commands(repo: &Path) -> Result<Vec<Shown>, Box<dyn std::error::Error>> {
    let mut files = vec![repo.join("README.md")];
    for entry in std::fs::read_dir(repo.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        let file = path
            .strip_prefix(repo)
            .unwrap_or(&path)
            .display()
            .to_string();
        let mut fenced = false;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with("```") {
                fenced = !fenced;
                continue;
            }
            let mut candidates = Vec::new();
            if fenced {
                candidates.push(t.strip_prefix("$ ").unwrap_or(t).to_string());
            } else {
                // Inline code: every other backtick-delimited span.
                candidates.extend(t.split('`').skip(1).step_by(2).map(str::to_string));
            }
            for c in candidates {
                // What the shell takes before fixer sees it.
                let c = c.split(" # ").next().unwrap_or("");
                let c = c.split(['|', '>']).next().unwrap_or("");
                let c = c.trim();
                let c = c.strip_suffix(" 2").unwrap_or(c);
                let c = c.strip_prefix("sudo ").unwrap_or(c);
                let Some(rest) = c.strip_prefix("fixer ") else {
                    continue;
                };
                out.push(Shown {
                    file: file.clone(),
                    line: i + 1,
                    words: rest.split_whitespace().map(str::to_string).collect(),
                });
            }
        }
    }
    Ok(out)
}

/// Every command the docs show is one fixer has: its subcommand exists
/// and each option it uses is one `fixer SUBCOMMAND --help` lists. (The
/// examples marked in the guide are also run, their output compared, by
/// the test above, and the README's first playbook by the one below; the
/// rest need what a test cannot give them: a fleet, a company's git
/// server, this machine's own /var/lib/fixer.)
#[test]
fn every_command_in_the_docs_is_one_fixer_has() -> TestResult {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shown = shown_commands(repo)?;
    assert!(shown.len() > 50, "only {} commands found", shown.len());
    let help = |sub: &[&str]| -> Result<String, Box<dyn std::error::Error>> {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"))
            .args(sub)
            .arg("--help")
            .output()?;
        Ok(if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            String::new()
        })
    };
    let top = help(&[])?;
    let subcommands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(subcommands.iter().any(|s| s == "plan"), "{top}");
    let mut helps = std::collections::HashMap::new();
    let mut wrong = Vec::new();
    for s in &shown {
        let at = format!("{}:{}: `fixer {}`", s.file, s.line, s.words.join(" "));
        // Global options may come first (`fixer --format json plan`).
        let first = s
            .words
            .iter()
            .find(|w| !w.starts_with('-') && subcommands.contains(*w));
        let sub = match first.or(s.words.first()) {
            Some(w) if subcommands.contains(w) => w.clone(),
            Some(w) if w.starts_with('-') => String::new(),
            Some(w) => {
                wrong.push(format!("{at}: no subcommand `{w}`"));
                continue;
            }
            None => String::new(),
        };
        let text = match helps.get(&sub) {
            Some(t) => t,
            None => {
                let t = if sub.is_empty() {
                    top.clone()
                } else {
                    help(&[&sub])?
                };
                helps.entry(sub.clone()).or_insert(t)
            }
        };
        for w in &s.words {
            let Some(flag) = w
                .strip_prefix('-')
                .map(|_| w.split('=').next().unwrap_or(w))
            else {
                continue;
            };
            let listed = [text.as_str(), top.as_str()].iter().any(|text| {
                text.split(|c: char| {
                    c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '<'
                })
                .any(|t| t == flag || t.strip_suffix("...") == Some(flag))
            });
            if !listed {
                wrong.push(format!("{at}: `fixer {sub} --help` lists no `{flag}`"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the docs show commands fixer does not have:\n{}",
        wrong.join("\n")
    );
    Ok(())
}

/// The README's first playbook, run as the README shows it: its TOML block
/// is the playbook, its commands run in order with `/tmp/img` a fresh
/// folder, and each does what its comment says.
#[test]
fn the_readmes_first_playbook_does_what_it_says() -> TestResult {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md"))?;
    let section = readme
        .split("## A first playbook")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .ok_or("no first playbook in the README")?;
    let block = |lang: &str| -> Result<&str, String> {
        section
            .split(&format!("```{lang}\n"))
            .nth(1)
            .and_then(|s| s.split("```").next())
            .ok_or(format!("no {lang} block"))
    };
    let work = tempfile::tempdir()?;
    std::fs::write(work.path().join("motd.toml"), block("toml")?)?;
    let img = work.path().join("img");
    std::fs::create_dir(&img)?;
    let motd = img.join("etc/motd");
    let mut ran = Vec::new();
    for line in block("sh")?.lines() {
        let command = line.split(" # ").next().unwrap_or("").trim();
        let img_s = img.display().to_string();
        let words: Vec<String> = command
            .split_whitespace()
            .skip(1)
            .map(|w| w.replace("/tmp/img", &img_s))
            .collect();
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"))
            .args(&words)
            .current_dir(work.path())
            .env("NO_COLOR", "1")
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let said = format!(
            "{command}:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{said}");
        let sub = words.first().map(String::as_str).unwrap_or("");
        match sub {
            "validate" => assert!(!motd.exists(), "{said}"),
            "plan" => {
                assert!(
                    stdout.contains("+This host is managed by platform."),
                    "{said}"
                );
                assert!(!motd.exists(), "plan changed the image: {said}");
            }
            "apply" => assert_eq!(
                std::fs::read_to_string(&motd)?,
                "This host is managed by platform.\n",
                "{said}"
            ),
            "history" => assert!(
                stdout.contains("motd") && stdout.contains("applied"),
                "{said}"
            ),
            "rollback" => assert!(!motd.exists(), "{said}"),
            other => panic!(
                "the README's first playbook shows `fixer {other}`, which this test does not know"
            ),
        }
        ran.push(sub.to_string());
    }
    assert_eq!(ran, ["validate", "plan", "apply", "history", "rollback"]);
    Ok(())
}

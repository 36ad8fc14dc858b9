//! The docs name only what fixer has: every `fixer` command in README.md
//! and docs/*.md, in code blocks and inline, uses a subcommand and options
//! fixer lists. (Running every example and comparing its output:
//! examples.rs.)

use std::path::Path;

use crate::support::TestResult;

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
    let mut out = Vec::new();
    for doc in crate::examples::read_docs(repo)? {
        let (file, text) = (doc.name, doc.text);
        let mut fenced = false;
        // In a terminal session, only what follows `$ ` was typed.
        let mut console = false;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if let Some(lang) = t.strip_prefix("```") {
                fenced = !fenced;
                console = fenced && lang == "console";
                continue;
            }
            let mut candidates = Vec::new();
            if console {
                candidates.extend(t.strip_prefix("$ ").map(str::to_string));
            } else if fenced {
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
/// and each option it uses is one `fixer SUBCOMMAND --help` lists. This
/// covers what examples.rs cannot run: commands named in the text
/// (`fixer rollback RUN`) and synopses.
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

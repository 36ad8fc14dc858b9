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

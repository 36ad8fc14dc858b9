//! Every command the docs show is run, and prints what the docs show.
//!
//! In README.md and docs/*.md, a fenced block after `<!-- example -->` (or
//! `<!-- example: WORLD -->`) is a terminal session: each `$ ` line is
//! typed into `sh`, and the lines up to the next `$ ` are what it printed
//! (stdout and stderr interleaved, as a terminal shows them), ending with
//! `[exit N]` when it failed. A block after `<!-- file: PATH -->` is a file
//! the examples of that document use (PATH relative to the working folder,
//! or `~/...`), written before they run. A block after `<!-- synopsis -->`
//! shows commands' shapes with placeholders (PLAYBOOK, `[RUN]`) and is not
//! run. Any other fenced `fixer` command fails the test: a command a reader
//! can copy from a code block is one this test ran.
//!
//! The examples of one document naming the same WORLD run in order on one
//! machine, so `apply`, then `history`, then `rollback` show what a user
//! sees. A world is this machine seen through a private mount namespace in
//! which /root (HOME, with an ssh key and config), /srv, /var/lib, /mnt
//! (with an empty image at /mnt/img) and /etc/netplan are the world's own
//! folders: an example acts on the paths it names, never on this
//! machine's, nor on the repository (this machine's /etc, /home, /opt,
//! /usr, /var and the repository are read-only there). Its host name is
//! `app-01`; its working folder holds copies of `playbooks/`, `templates/`
//! and `tests/data/`. `git.corp.example`'s repositories `ops/fixes.git` (the shipped
//! go-proxy-mirror playbook) and `ops/fleet-results.git` are bare
//! repositories of the world, reached through git's own
//! `url.<base>.insteadOf` in ~/.config/git/config. A world whose name
//! starts with `fleet` also has three real sshd test hosts, `vm1` to `vm3`
//! in ~/.ssh/config, each with a user `deploy` who may sudo, and `vm4`,
//! which is down (nothing listens on its port).
//!
//! `FIXER_UPDATE_DOCS=1 cargo test --test integration examples` rewrites
//! the blocks with what the commands printed.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::sshd::{Client, TestHost};
use crate::support::{is_root, TestResult};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// How long one example command may take before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(180);

/// A fenced block and what its marker says it is.
enum Block {
    /// Each command typed, with what the block shows it printed.
    Example {
        world: String,
        steps: Vec<(String, String)>,
    },
    File {
        path: String,
        text: String,
    },
    Synopsis,
}

/// One document's marked blocks, and where each example's text sits.
struct Marked {
    block: Block,
    /// Lines of the document (0-based) inside the fence, exclusive.
    body: std::ops::Range<usize>,
    indent: String,
}

/// The markers and fenced blocks of one document.
fn marked_blocks(text: &str) -> Res<Vec<Marked>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        let Some(marker) = t.strip_prefix("<!-- ").and_then(|r| r.strip_suffix(" -->")) else {
            i += 1;
            continue;
        };
        let kind = marker.split(':').next().unwrap_or("").trim();
        if !["example", "file", "synopsis"].contains(&kind) {
            i += 1;
            continue;
        }
        let arg = marker
            .split_once(':')
            .map(|(_, a)| a.trim().to_string())
            .unwrap_or_default();
        let open = lines
            .get(i + 1)
            .filter(|l| l.trim_start().starts_with("```"))
            .ok_or(format!(
                "line {}: `<!-- {marker} -->` is not followed by a fenced block",
                i + 1
            ))?;
        let indent = open[..open.len() - open.trim_start().len()].to_string();
        let start = i + 2;
        let end = (start..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .ok_or(format!("line {}: a fenced block that never ends", i + 2))?;
        let body: Vec<&str> = lines[start..end]
            .iter()
            .map(|l| l.strip_prefix(indent.as_str()).unwrap_or(l))
            .collect();
        let block = match kind {
            "example" => {
                let mut steps: Vec<(String, String)> = Vec::new();
                for l in &body {
                    if let Some(cmd) = l.strip_prefix("$ ") {
                        steps.push((cmd.to_string(), String::new()));
                    } else if let Some((_, printed)) = steps.last_mut() {
                        printed.push_str(l);
                        printed.push('\n');
                    } else {
                        return Err(format!(
                            "line {}: an example's first line is not a `$ ` command",
                            start + 1
                        )
                        .into());
                    }
                }
                Block::Example {
                    world: if arg.is_empty() {
                        "default".into()
                    } else {
                        arg
                    },
                    steps,
                }
            }
            "file" => {
                // Written before the world exists, so outside it: only
                // into the world's own folders.
                if arg.is_empty()
                    || arg.starts_with('/')
                    || Path::new(&arg)
                        .components()
                        .any(|c| c == std::path::Component::ParentDir)
                {
                    return Err(format!(
                        "line {}: `<!-- file: {arg} -->` must name a path in the working folder or ~/",
                        i + 1
                    )
                    .into());
                }
                Block::File {
                    path: arg,
                    text: body.iter().map(|l| format!("{l}\n")).collect(),
                }
            }
            _ => Block::Synopsis,
        };
        out.push(Marked {
            block,
            body: start..end,
            indent,
        });
        i = end + 1;
    }
    Ok(out)
}

/// A machine an example runs on (see the module's comment).
struct World {
    dir: tempfile::TempDir,
    client: Client,
    _hosts: Vec<TestHost>,
}

fn sh(cmd: &mut Command) -> Res<()> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Res<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

impl World {
    fn new(name: &str, files: &[(String, String)]) -> Res<World> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        for sub in ["srv", "var-lib", "etc-netplan", "mnt/img", "bin", "git"] {
            std::fs::create_dir_all(d.join(sub))?;
        }
        let work = d.join("work");
        copy_tree(&repo.join("playbooks"), &work.join("playbooks"))?;
        copy_tree(&repo.join("templates"), &work.join("templates"))?;
        copy_tree(&repo.join("tests/data"), &work.join("tests/data"))?;
        // netplan wants its files private; git cannot keep that mode.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            work.join("tests/data/guide/vm/etc/netplan/50-cloud-init.yaml"),
            std::fs::Permissions::from_mode(0o600),
        )?;
        std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("fixer"), d.join("bin/fixer"))?;
        // The reader is root already; sudo changes nothing else here.
        let sudo = d.join("bin/sudo");
        std::fs::write(&sudo, "#!/bin/sh\nexec \"$@\"\n")?;
        std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755))?;

        let client = Client::new();
        let home = client.home.path().to_path_buf();
        let mut hosts = Vec::new();
        if name.starts_with("fleet") {
            let mut config = String::new();
            for n in 1..=3 {
                let host = TestHost::start_with_users(&client, &[("deploy", true)]);
                client.trust(&host);
                config.push_str(&format!(
                    "Host vm{n}\n    HostName 127.0.0.1\n    Port {}\n",
                    host.port
                ));
                hosts.push(host);
            }
            // A VM that is down: nothing listens there.
            config.push_str("Host vm4\n    HostName 127.0.0.1\n    Port 9\n");
            client.write_config(&config);
        }
        let world = World {
            dir,
            client,
            _hosts: hosts,
        };
        world.serve_git(repo, &home)?;
        for (path, text) in files {
            let dest = match path.strip_prefix("~/") {
                Some(rest) => home.join(rest),
                None => work.join(path),
            };
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(dest, text)?;
        }
        Ok(world)
    }

    /// git.corp.example's repositories, as bare repositories of the world
    /// that git (and libgit2 in fixer) reach through `insteadOf`.
    fn serve_git(&self, repo: &Path, home: &Path) -> Res<()> {
        let git = self.dir.path().join("git");
        let git_cmd = || {
            let mut c = Command::new("git");
            c.env("HOME", home)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "ops")
                .env("GIT_AUTHOR_EMAIL", "ops@corp.example")
                .env("GIT_COMMITTER_NAME", "ops")
                .env("GIT_COMMITTER_EMAIL", "ops@corp.example");
            c
        };
        let mut gitconfig = String::new();
        for name in ["fixes", "fleet-results"] {
            let bare = git.join(format!("{name}.git"));
            sh(git_cmd()
                .args(["init", "-q", "--bare", "-b", "main"])
                .arg(&bare))?;
            for base in [
                format!("https://git.corp.example/ops/{name}.git"),
                format!("ssh://git@git.corp.example/ops/{name}.git"),
            ] {
                gitconfig.push_str(&format!(
                    "[url \"file://{}\"]\n\tinsteadOf = {base}\n",
                    bare.display()
                ));
            }
        }
        // git's second global file, so that ~/.gitconfig stays the user's
        // (examples show it).
        std::fs::create_dir_all(home.join(".config/git"))?;
        std::fs::write(home.join(".config/git/config"), gitconfig)?;
        // The fixes repository holds one shipped playbook.
        let checkout = git.join("fixes");
        std::fs::create_dir_all(checkout.join("playbooks"))?;
        std::fs::copy(
            repo.join("playbooks/go-proxy-mirror.toml"),
            checkout.join("playbooks/go-proxy-mirror.toml"),
        )?;
        sh(git_cmd().args(["init", "-q", "-b", "main"]).arg(&checkout))?;
        sh(git_cmd().current_dir(&checkout).args(["add", "."]))?;
        sh(git_cmd()
            .current_dir(&checkout)
            .args(["commit", "-q", "-m", "The shipped playbooks"]))?;
        sh(git_cmd()
            .current_dir(&checkout)
            .arg("push")
            .arg("-q")
            .arg(git.join("fixes.git"))
            .arg("main"))?;
        Ok(())
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Type `line` into `sh` on this world; what it printed and its exit
    /// status.
    fn run(&self, line: &str) -> Res<(String, i32)> {
        let d = self.dir.path();
        // This machine's own folders are read-only in the world (an example
        // that named one by mistake fails instead of changing it), then the
        // world's folders go over the paths examples act on.
        let script = r#"set -e
umask 022
hostname app-01
for dir in /etc /home /opt /usr /var "$4"; do
  [ -d "$dir" ] || continue
  mount --rbind "$dir" "$dir"
  mount -o remount,bind,ro "$dir"
done
mount --bind "$1" /root
mount --bind "$2/srv" /srv
mount --bind "$2/var-lib" /var/lib
mount --bind "$2/mnt" /mnt
if [ -d /etc/netplan ]; then mount --bind "$2/etc-netplan" /etc/netplan; fi
cd "$2/work"
set +e
eval "$3""#;
        let printed = tempfile::tempfile()?;
        let path = format!(
            "{}:{}",
            d.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("unshare")
            .args([
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
            ])
            .arg(script)
            .arg("sh")
            .arg(self.client.home.path())
            .arg(d)
            .arg(line)
            .arg(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", path)
            .env("HOME", "/root")
            .env("USER", "root")
            .env("LOGNAME", "root")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .env("LANG", "C.UTF-8")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(printed.try_clone()?)
            .stderr(printed.try_clone()?)
            // Its own group, so that a command that hangs is ended with
            // everything it started.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("unshare (util-linux): {e}"))?;
        use wait_timeout::ChildExt as _;
        let status = match child.wait_timeout(PATIENCE)? {
            Some(s) => s,
            None => {
                let group = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!("`{line}` did not finish in {PATIENCE:?}").into());
            }
        };
        let mut printed = printed;
        use std::io::{Read as _, Seek as _};
        printed.rewind()?;
        let mut text = String::new();
        printed.read_to_string(&mut text)?;
        // fixer's own playbooks (diagnose's catalog) are the reader's
        // `playbooks/` too.
        let repo = env!("CARGO_MANIFEST_DIR");
        let work = self.work().display().to_string();
        let text = text
            .replace(&format!("{work}/"), "")
            .replace(&work, ".")
            .replace(&format!("{repo}/"), "");
        Ok((text, status.code().unwrap_or(-1)))
    }
}

/// The same example printed on another day, machine or port: run ids,
/// times, durations, ports, commit ids, and what a DNS probe finds (this
/// machine's resolver) are not compared, nor the order in which hosts
/// worked on at once finished (each host's `== HOST` block).
fn normal(text: &str) -> Res<String> {
    // What varies in width takes the padding after it along, so that a
    // table's columns are still compared.
    let rules = [
        (r"\d{8}T\d{6}(-\d+)* *", "<run> "),
        (
            r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?",
            "<time>",
        ),
        (r"\b\d+(\.\d+)? ?(ms|s)\b *", "<duration> "),
        (r"127\.0\.0\.1\]?:\d+ *", "127.0.0.1:<port> "),
        // A DNS probe's answer is this machine's resolver's.
        (
            r"(?m)^(\s*)(pass|fail|warn)( \([^)]*\))?: .*resolve.*$",
            "$1<dns probe result>",
        ),
    ];
    let mut t = text.trim_end().to_string();
    for (pattern, with) in rules {
        t = regex::Regex::new(pattern)?
            .replace_all(&t, with)
            .into_owned();
    }
    // Commit ids; a number of as many digits is not one.
    t = regex::Regex::new(r"\b[0-9a-f]{7,40}\b")?
        .replace_all(&t, |c: &regex::Captures<'_>| {
            if c[0].bytes().any(|b| b.is_ascii_alphabetic()) {
                "<commit>".to_string()
            } else {
                c[0].to_string()
            }
        })
        .into_owned();
    let mut out: Vec<String> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    for line in t.lines() {
        if line.starts_with("== ") {
            hosts.push(String::new());
        } else if line.starts_with("HOST ") || line.starts_with("-- batch ") {
            hosts.sort();
            out.append(&mut hosts);
        }
        match hosts.last_mut() {
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => out.push(format!("{line}\n")),
        }
    }
    hosts.sort();
    out.append(&mut hosts);
    Ok(out.concat())
}

/// README.md and docs/*.md, in name order.
fn documents(repo: &Path) -> Res<Vec<PathBuf>> {
    let mut files = vec![repo.join("README.md")];
    for entry in std::fs::read_dir(repo.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Whether worlds can be made here: they are mount namespaces, and the
/// example image's files must be root's, as on a real VM. CI is root.
fn worlds_can_be_made() -> bool {
    assert!(
        is_root() || std::env::var_os("CI").is_none(),
        "CI runs the tests as root"
    );
    is_root()
}

/// A document, named as from the repository's top, with its marked blocks.
pub struct Doc {
    path: PathBuf,
    pub name: String,
    pub text: String,
    blocks: Vec<Marked>,
}

/// README.md and docs/*.md, read; a marker that cannot be read is an error.
pub fn read_docs(repo: &Path) -> Res<Vec<Doc>> {
    let mut out = Vec::new();
    for path in documents(repo)? {
        let name = path
            .strip_prefix(repo)
            .unwrap_or(&path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(&path)?;
        let blocks = marked_blocks(&text).map_err(|e| format!("{name}: {e}"))?;
        out.push(Doc {
            path,
            name,
            text,
            blocks,
        });
    }
    Ok(out)
}

#[test]
fn every_example_in_the_docs_prints_what_it_shows() -> TestResult {
    if !worlds_can_be_made() {
        return Ok(());
    }
    let _ = crate::gotools::tool("netplan");
    let _ = crate::gotools::tool("git");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("FIXER_UPDATE_DOCS").is_some();
    let mut wrong = Vec::new();
    let mut ran = 0;
    for Doc {
        path,
        name,
        text,
        blocks,
    } in read_docs(repo)?
    {
        let files: Vec<(String, String)> = blocks
            .iter()
            .filter_map(|b| match &b.block {
                Block::File { path, text } => Some((path.clone(), text.clone())),
                _ => None,
            })
            .collect();
        let mut worlds: BTreeMap<String, World> = BTreeMap::new();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        // Rewritten from the end, so earlier ranges stay where they are.
        let mut rewrites = Vec::new();
        for b in &blocks {
            let Block::Example { world, steps } = &b.block else {
                continue;
            };
            if !worlds.contains_key(world) {
                worlds.insert(world.clone(), World::new(world, &files)?);
            }
            let w = &worlds[world];
            let mut got = Vec::new();
            let mut differs = false;
            for (cmd, shown) in steps {
                let (printed, code) = w.run(cmd)?;
                let mut printed = printed.trim_end().to_string();
                if code != 0 {
                    if !printed.is_empty() {
                        printed.push('\n');
                    }
                    printed.push_str(&format!("[exit {code}]"));
                }
                ran += 1;
                // Such a line would end the block, or read as a command.
                if let Some(l) = printed
                    .lines()
                    .find(|l| l.trim_start().starts_with("```") || l.starts_with("$ "))
                {
                    return Err(format!(
                        "{name}: `{cmd}` printed {l:?}, which an example cannot show"
                    )
                    .into());
                }
                if normal(shown)? != normal(&printed)? {
                    differs = true;
                    wrong.push(format!(
                        "{name}:{}: `{cmd}`\n--- the docs show\n{}\n--- it printed\n{printed}\n",
                        b.body.start + 1,
                        shown.trim_end()
                    ));
                }
                got.push(format!("$ {cmd}"));
                got.extend(printed.lines().map(str::to_string));
            }
            // Only what differs: a rewrite of every block would churn
            // every run id and time, hiding the change that matters.
            if differs {
                rewrites.push((b.body.clone(), b.indent.clone(), got));
            }
        }
        if update && !rewrites.is_empty() {
            for (body, indent, got) in rewrites.into_iter().rev() {
                let indented = got.into_iter().map(|l| {
                    if l.is_empty() {
                        l
                    } else {
                        format!("{indent}{l}")
                    }
                });
                lines.splice(body, indented);
            }
            std::fs::write(&path, lines.join("\n") + "\n")?;
        }
    }
    if update {
        return Ok(());
    }
    assert!(ran >= 20, "only {ran} example commands in the docs");
    assert!(
        wrong.is_empty(),
        "the docs show other output than their commands print (FIXER_UPDATE_DOCS=1 rewrites them):\n{}",
        wrong.join("\n")
    );
    Ok(())
}

/// A fenced line a reader could copy as a fixer command.
fn is_fixer_command(line: &str) -> bool {
    let t = line.trim();
    let t = t.strip_prefix("$ ").unwrap_or(t);
    let t = t.strip_prefix("sudo ").unwrap_or(t);
    t.starts_with("fixer ") || t.contains("| fixer ")
}

/// Every fenced fixer command is in an example (run) or a synopsis, and a
/// synopsis has placeholders: a block of commands that could be copied as
/// they stand is run.
#[test]
fn every_fixer_command_in_a_code_block_is_run() -> TestResult {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut unrun = Vec::new();
    let mut examples = 0;
    for Doc {
        path: _,
        name,
        text,
        blocks,
    } in read_docs(repo)?
    {
        let mut covered = vec![false; text.lines().count()];
        for b in &blocks {
            match &b.block {
                Block::Synopsis => {
                    let body: Vec<&str> =
                        text.lines().skip(b.body.start).take(b.body.len()).collect();
                    covered[b.body.clone()].iter_mut().for_each(|c| *c = true);
                    let placeholder = body.iter().flat_map(|l| l.split_whitespace()).any(|w| {
                        w.starts_with('[')
                            || (w.len() > 1
                                && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                    });
                    if body.iter().any(|l| is_fixer_command(l)) && !placeholder {
                        unrun.push(format!(
                            "{name}:{}: a synopsis without a placeholder (PLAYBOOK, [RUN]): \
                             mark it `<!-- example -->`",
                            b.body.start + 1
                        ));
                    }
                }
                Block::Example { .. } => {
                    examples += 1;
                    covered[b.body.clone()].iter_mut().for_each(|c| *c = true);
                }
                Block::File { .. } => {}
            }
        }
        let mut fenced = false;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if fenced && !covered[i] && is_fixer_command(line) {
                unrun.push(format!("{name}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(examples > 0, "no examples marked in the docs");
    assert!(
        unrun.is_empty(),
        "fixer commands in code blocks that no test runs (mark the block \
         `<!-- example -->`, or `<!-- synopsis -->` for a shape with placeholders):\n{}",
        unrun.join("\n")
    );
    Ok(())
}

/// The README's first command, the one a newcomer runs: its `cargo run
/// --release -- ARGS` is `fixer ARGS` here (the test's own build), on a
/// fresh world. It plans, succeeds and changes nothing (no run recorded,
/// no state folder made).
#[test]
fn the_readmes_first_command_plans_and_changes_nothing() -> TestResult {
    if !worlds_can_be_made() {
        return Ok(());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md"))?;
    let first = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.lines().next())
        .ok_or("no sh block in the README")?;
    let args = first
        .split(" # ")
        .next()
        .and_then(|c| c.split("cargo run --release -- ").nth(1))
        .ok_or(format!("the README's first command runs no fixer: {first}"))?;
    let world = World::new("readme", &[])?;
    let (printed, code) = world.run(&format!("fixer {args}"))?;
    assert_eq!(code, 0, "{printed}");
    assert!(printed.contains("\nPlan: "), "{printed}");
    assert_eq!(
        std::fs::read_dir(world.dir.path().join("var-lib"))?.count(),
        0,
        "a plan made fixer's state folder: {printed}"
    );
    Ok(())
}

/// A marker the runner cannot read fails with its line, never passes
/// silently; a good one gives each command what it printed.
#[test]
fn markers_are_read_or_refused_by_line() {
    let good = "text\n<!-- example: w -->\n```console\n$ fixer a\nout 1\nout 2\n$ fixer b\n```\n";
    let blocks = marked_blocks(good).unwrap_or_else(|e| panic!("{e}"));
    match blocks.first().map(|b| &b.block) {
        Some(Block::Example { world, steps }) => {
            assert_eq!(world, "w");
            assert_eq!(
                steps,
                &[
                    ("fixer a".to_string(), "out 1\nout 2\n".to_string()),
                    ("fixer b".to_string(), String::new())
                ]
            );
        }
        _ => panic!("not an example"),
    }
    for (bad, says) in [
        (
            "<!-- example -->\ntext\n",
            "line 1: `<!-- example -->` is not followed",
        ),
        (
            "<!-- file: x -->\n```\nno end\n",
            "line 2: a fenced block that never ends",
        ),
        (
            "<!-- example -->\n```\nout\n```\n",
            "line 3: an example's first line",
        ),
        (
            "<!-- file: /etc/x -->\n```\nx\n```\n",
            "line 1: `<!-- file: /etc/x -->` must",
        ),
        (
            "<!-- file: ../x -->\n```\nx\n```\n",
            "line 1: `<!-- file: ../x -->` must",
        ),
    ] {
        let e = marked_blocks(bad).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.starts_with(says)),
            "{bad:?}: {e:?}"
        );
    }
}

/// What an example writes lands in its world: this machine's /etc stays
/// as it was (read-only there), /root is the world's.
#[test]
fn a_world_never_changes_this_machine() -> TestResult {
    if !worlds_can_be_made() {
        return Ok(());
    }
    let probe = "fixer-world-probe";
    let world = World::new("guard", &[])?;
    let (printed, code) = world.run(&format!("touch /etc/{probe}"))?;
    assert_ne!(code, 0, "{printed}");
    assert!(printed.contains("Read-only file system"), "{printed}");
    assert!(!Path::new("/etc").join(probe).exists());
    let (printed, code) = world.run(&format!("touch /root/{probe}"))?;
    assert_eq!(code, 0, "{printed}");
    assert!(!Path::new("/root").join(probe).exists());
    assert!(world.client.home.path().join(probe).exists());
    Ok(())
}

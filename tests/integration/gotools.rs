//! The Go-toolchain remedies, each read back by the real tool: `go env`,
//! `sh`, `git config`, `git ls-remote`, `go mod tidy` against an offline
//! file proxy built here.

use std::path::PathBuf;
use std::process::Command;

use predicates::str::contains;

pub use crate::go_proxy::go_proxy;
use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

/// The real tool, or a failing test naming the package (tests/run-all.sh
/// installs it): a missing tool is never a silent skip.
pub fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is not installed: run tests/run-all.sh, which installs every tool the tests use"
    );
    Command::new(name)
}

fn run_ok(cmd: &mut Command) -> Result<String, Box<dyn std::error::Error>> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Environment that keeps go offline and inside the sandbox.
pub fn go_env(sb: &Sandbox) -> Vec<(String, String)> {
    let b = sb.base();
    vec![
        (
            "GOPROXY".into(),
            format!("file://{}", b.join("proxy").display()),
        ),
        ("GOSUMDB".into(), "off".into()),
        ("GOFLAGS".into(), "-mod=mod -modcacherw".into()),
        (
            "GOMODCACHE".into(),
            b.join("modcache").display().to_string(),
        ),
        ("GOCACHE".into(), b.join("gocache").display().to_string()),
        ("GOENV".into(), "off".into()),
        ("GOTOOLCHAIN".into(), "local".into()),
    ]
}

fn toml_env(env: &[(String, String)]) -> String {
    let parts: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k} = {}", toml::Value::String(v.clone())))
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

const TRICKY: &[(&str, &str)] = &[
    ("spaces", "a b  c"),
    ("quotes", "it's \"quoted\""),
    ("dollar", "$HOME and ${X} and $(id)"),
    ("commas", "https://a.example,https://b.example,direct"),
    ("unicode", "ünïcødé ✓"),
];

#[test]
fn env_go_style_is_read_back_by_go() -> TestResult {
    let sb = Sandbox::new();
    let file = "/home/tester/.config/go/env";
    sb.file(
        file,
        "# kept\nGOFLAGS=-mod=mod\nGOPROXY=https://old.example\n",
    );
    let mut vars = String::new();
    for (i, (_, v)) in TRICKY.iter().enumerate() {
        // Any variable go knows works; these are read back verbatim.
        let key = [
            "GOPROXY",
            "GOPRIVATE",
            "GONOSUMDB",
            "GONOPROXY",
            "GOINSECURE",
        ][i];
        vars.push_str(&format!("{key} = {}, ", toml::Value::String(v.to_string())));
    }
    let pb = sb.playbook(
        "p.toml",
        &format!("[playbook]\nname = \"g\"\n[[resource]]\ntype = \"env\"\nstyle = \"go\"\nvars = {{ {} }}\n", vars.trim_end_matches(", ")),
    );
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    let text = sb.read(file);
    assert!(text.starts_with("# kept\nGOFLAGS=-mod=mod\n"), "{text}");
    for (i, (what, v)) in TRICKY.iter().enumerate() {
        let key = [
            "GOPROXY",
            "GOPRIVATE",
            "GONOSUMDB",
            "GONOPROXY",
            "GOINSECURE",
        ][i];
        let got = run_ok(
            tool("go")
                .args(["env", key])
                .env_clear()
                .env("PATH", std::env::var("PATH")?)
                .env("HOME", sb.base())
                .env("GOENV", sb.at(file)),
        )?;
        assert_eq!(got.trim_end_matches('\n'), *v, "{what} via go env {key}");
    }
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

#[test]
fn env_profile_style_is_read_back_by_sh() -> TestResult {
    let sb = Sandbox::new();
    let mut vars = String::new();
    for (i, (_, v)) in TRICKY.iter().enumerate() {
        vars.push_str(&format!("V{i} = {}, ", toml::Value::String(v.to_string())));
    }
    let pb = sb.playbook(
        "p.toml",
        &format!("[playbook]\nname = \"p\"\n[[resource]]\ntype = \"env\"\nstyle = \"profile\"\nvars = {{ {} }}\n", vars.trim_end_matches(", ")),
    );
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    let file = sb.at("/etc/profile.d/fixer.sh");
    for (i, (what, v)) in TRICKY.iter().enumerate() {
        let got = run_ok(
            Command::new("sh")
                .arg("-c")
                .arg(format!(". '{}'; printf %s \"$V{i}\"", file.display())),
        )?;
        assert_eq!(got, *v, "{what}");
    }
    Ok(())
}

#[test]
fn env_environment_style_keeps_other_lines_and_refuses_what_it_cannot_write() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/environment", "PATH=\"/usr/bin:/bin\"\nLANG=C.UTF-8\n");
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"e\"\n[[resource]]\ntype = \"env\"\nstyle = \"environment\"\nvars = { GOPROXY = \"https://m.example,direct\", NO_PROXY = \"a b,ü\" }\nunset = [\"LANG\"]\n",
    );
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .success();
    assert_eq!(
        sb.read("/etc/environment"),
        "PATH=\"/usr/bin:/bin\"\nGOPROXY=\"https://m.example,direct\"\nNO_PROXY=\"a b,ü\"\n"
    );
    let got = run_ok(Command::new("sh").arg("-c").arg(format!(
        ". '{}'; printf %s \"$NO_PROXY\"",
        sb.at("/etc/environment").display()
    )))?;
    assert_eq!(got, "a b,ü");

    let bad = sb.playbook(
        "bad.toml",
        "[playbook]\nname = \"e\"\n[[resource]]\ntype = \"env\"\nstyle = \"environment\"\nvars = { X = \"costs $5\" }\n",
    );
    let before = sb.tree();
    sb.fixer(&["apply", bad.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("bad.toml:6:14: field `resource[0].vars.X`"))
        .stderr(contains("'$' cannot be represented in /etc/environment"));
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn env_refuses_a_file_that_is_not_text() -> TestResult {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.at("/etc"))?;
    std::fs::write(sb.at("/etc/environment"), b"A=\"\xff\xfe\"\n")?;
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"e\"\n[[resource]]\ntype = \"env\"\nstyle = \"environment\"\nvars = { A = \"b\" }\n",
    );
    let before = sb.tree();
    sb.fixer(&["apply", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("/etc/environment is not UTF-8 text"));
    assert_eq!(sb.tree(), before);
    Ok(())
}

fn git(sb: &Sandbox) -> Command {
    let mut c = tool("git");
    c.env("HOME", sb.at(crate::support::HOME))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("XDG_CONFIG_HOME")
        .env("GIT_TERMINAL_PROMPT", "0");
    c
}

/// A bare repository with one commit on `main`, reachable as file://.
fn bare_repo(sb: &Sandbox) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let work = sb.base().join("work");
    let bare = sb.base().join("repos/app.git");
    std::fs::create_dir_all(&work)?;
    run_ok(git(sb).args(["init", "-q", "-b", "main"]).arg(&work))?;
    std::fs::write(work.join("README"), "hi\n")?;
    run_ok(git(sb).current_dir(&work).args(["add", "README"]))?;
    run_ok(git(sb).current_dir(&work).args([
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        "commit",
        "-qm",
        "init",
    ]))?;
    run_ok(
        git(sb)
            .args(["clone", "-q", "--bare"])
            .arg(&work)
            .arg(&bare),
    )?;
    Ok(bare)
}

#[test]
fn git_url_rewrite_is_read_back_by_git_and_routes_ls_remote() -> TestResult {
    let sb = Sandbox::new();
    let gitconfig = "/home/tester/.gitconfig";
    sb.file(gitconfig, "# my settings\n[user]\n\tname = Me\n[url \"ssh://other/\"]\n\tinsteadOf = https://other/\n");
    let bare = bare_repo(&sb)?;
    let repos = bare.parent().ok_or("parent")?;
    let pb = sb.playbook(
        "p.toml",
        &format!(
            "[playbook]\nname = \"r\"\n[vars]\nrepos = \"{}\"\n[[resource]]\ntype = \"git_url_rewrite\"\nbase = \"file://{{{{repos}}}}/\"\ninstead_of = [\"https://git.corp.invalid/\", \"git@git.corp.invalid:\"]\n",
            repos.display()
        ),
    );
    let pb = pb.to_str().ok_or("path")?;
    // Before: the https URL does not resolve.
    let before = git(&sb)
        .args(["ls-remote", "https://git.corp.invalid/app.git"])
        .output()?;
    assert!(!before.status.success());
    sb.fixer(&["apply", pb]).assert().success();
    let file = sb.at(gitconfig);
    let key = format!("url.file://{}/.insteadof", repos.display());
    let values = run_ok(
        tool("git")
            .args(["config", "--file"])
            .arg(&file)
            .args(["--get-all", &key]),
    )?;
    assert_eq!(values, "https://git.corp.invalid/\ngit@git.corp.invalid:\n");
    let text = sb.read(gitconfig);
    assert!(
        text.starts_with("# my settings\n[user]\n\tname = Me\n[url \"ssh://other/\"]"),
        "{text}"
    );
    for url in [
        "https://git.corp.invalid/app.git",
        "git@git.corp.invalid:app.git",
    ] {
        let refs = run_ok(git(&sb).args(["ls-remote", url]))?;
        assert!(refs.contains("refs/heads/main"), "{url}: {refs}");
    }
    sb.fixer(&["apply", pb])
        .assert()
        .success()
        .stdout(contains("No changes"));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(
        sb.read(gitconfig),
        "# my settings\n[user]\n\tname = Me\n[url \"ssh://other/\"]\n\tinsteadOf = https://other/\n"
    );
    Ok(())
}

#[test]
fn git_config_sets_single_and_multi_values_at_each_scope() -> TestResult {
    let sb = Sandbox::new();
    sb.file(
        "/etc/gitconfig",
        "[safe]\n\tdirectory = /old\n\tdirectory = /older\n[core]\n\teditor = vi\n",
    );
    let pb = sb.playbook(
        "p.toml",
        r#"[playbook]
name = "c"
[[resource]]
type = "git_config"
scope = "system"
key = "safe.directory"
value = ["/srv/a", "/srv/b c"]
[[resource]]
type = "git_config"
key = "http.https://proxy.corp.invalid.sslVerify"
value = "false"
[[resource]]
type = "git_config"
scope = "/srv/repo/.git/config"
key = "remote.origin.url"
value = "git@corp.invalid:app.git"
"#,
    );
    std::fs::create_dir_all(sb.at("/srv/repo/.git"))?;
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["apply", pb]).assert().success();
    let get = |file: &str, key: &str| {
        run_ok(
            tool("git")
                .args(["config", "--file"])
                .arg(sb.at(file))
                .args(["--get-all", key]),
        )
    };
    assert_eq!(
        get("/etc/gitconfig", "safe.directory")?,
        "/srv/a\n/srv/b c\n"
    );
    assert_eq!(get("/etc/gitconfig", "core.editor")?, "vi\n");
    assert_eq!(
        get(
            "/home/tester/.gitconfig",
            "http.https://proxy.corp.invalid.sslverify"
        )?,
        "false\n"
    );
    assert_eq!(
        get("/srv/repo/.git/config", "remote.origin.url")?,
        "git@corp.invalid:app.git\n"
    );
    sb.fixer(&["apply", pb])
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

/// Found by fuzzing: git2's set_multivar writes a value unescaped. Values
/// with a leading tab, quotes, backslashes, `;`, `#` and a newline are read
/// back by the git CLI exactly, and re-applying changes nothing.
#[test]
fn git_config_values_with_special_characters_are_read_back_by_git() -> TestResult {
    let sb = Sandbox::new();
    let values = [
        "\tleading tab",
        "say \"hi\" \\ back",
        " spaced ; not # a comment ",
        "two\nlines",
        "\rcarriage",
    ];
    let list = values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    // TOML basic strings take the same escapes as Rust's Debug for these.
    let pb = sb.playbook(
        "p.toml",
        &format!("[playbook]\nname = \"c\"\n[[resource]]\ntype = \"git_config\"\nkey = \"fixer.test\"\nvalue = [{list}]\n"),
    );
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["apply", pb]).assert().success();
    let out = tool("git")
        .args(["config", "--file"])
        .arg(sb.at("/home/tester/.gitconfig"))
        .args(["--null", "--get-all", "fixer.test"])
        .output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let got: Vec<&str> = std::str::from_utf8(&out.stdout)?
        .split_terminator('\0')
        .collect();
    assert_eq!(got, values);
    sb.fixer(&["apply", pb])
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

/// Found by fuzzing, two layouts libgit2 cannot edit safely:
/// - a key written without a value (`[http] sslVerify`, boolean true) made
///   git2 panic, and libgit2 crash (SIGSEGV) when editing the key;
/// - on a key written on its section's header line (`[ecr]o`,
///   `[core] pager = more`), libgit2's rewrite adds a second entry of
///   another key, or leaves the old value of the declared key in place.
///
/// Every edit is read back; such an edit is refused, naming the file and
/// the key, and nothing is written.
#[test]
fn edits_libgit2_cannot_make_safely_are_refused() -> TestResult {
    let valueless = "[http]\n\tsslVerify\n[url \"ssh://x/\"]\n\tinsteadOf\n";
    let pager = "type = \"git_config\"\nkey = \"core.pager\"\nvalue = \"less -R\"\n";
    for (config, resource, message) in [
        (
            valueless,
            "type = \"git_config\"\nkey = \"http.sslVerify\"\nvalue = \"false\"\n",
            "/home/tester/.gitconfig: `http.sslVerify` has an entry without a value",
        ),
        (
            valueless,
            "type = \"git_url_rewrite\"\nbase = \"ssh://x/\"\ninstead_of = \"https://x/\"\n",
            "/home/tester/.gitconfig: `url.ssh://x/.insteadOf` has an entry without a value",
        ),
        (
            "[ecr]o\n\tpager = more\n",
            pager,
            "/home/tester/.gitconfig: libgit2 would also change entries other than `core.pager`",
        ),
        (
            "[core]\tpager = more\n\tpager = less\n",
            pager,
            "/home/tester/.gitconfig: libgit2 would leave `core.pager` holding",
        ),
    ] {
        let sb = Sandbox::new();
        sb.file("/home/tester/.gitconfig", config);
        let pb = sb.playbook(
            "p.toml",
            &format!("[playbook]\nname = \"c\"\n[[resource]]\n{resource}"),
        );
        let before = sb.tree();
        let out = sb.fixer(&["apply", pb.to_str().ok_or("path")?]).output()?;
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(message), "{config:?}: {err}");
        assert_eq!(sb.tree(), before);
    }
    Ok(())
}

#[test]
fn git_config_failures_are_clear_and_change_nothing() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/home/tester/.gitconfig", "[user\n\tname = broken\n");
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"c\"\n[[resource]]\ntype = \"git_config\"\nkey = \"user.email\"\nvalue = \"a@b\"\n",
    );
    let before = sb.tree();
    let out = sb.fixer(&["apply", pb.to_str().ok_or("path")?]).output()?;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    // libgit2's own message names the real file, never fixer's scratch copy.
    assert!(
        err.contains("resource `git_config:~/.gitconfig:user.email`: /home/tester/.gitconfig: failed to parse config file: missing ']' in section header (in /home/tester/.gitconfig:1)"),
        "{err}"
    );
    assert_eq!(sb.tree(), before);
    // Found by fuzzing: libgit2 reads up to a NUL on some paths only.
    sb.file("/home/tester/.gitconfig", "[user]\n\tname = a\0b\n");
    let before = sb.tree();
    let out = sb.fixer(&["apply", pb.to_str().ok_or("path")?]).output()?;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("/home/tester/.gitconfig:2: holds a NUL byte: not a git config file"),
        "{err}"
    );
    assert_eq!(sb.tree(), before);

    for (body, message) in [
        (
            "key = \"nodot\"\nvalue = \"x\"\n",
            "`nodot` is not a git config key",
        ),
        (
            "key = \"a.b\"\nvalue = \"nul\\u0000byte\"\n",
            "cannot contain a NUL byte",
        ),
        (
            "key = \"a.b\"\nvalue = [\"x\", \"x\"]\n",
            "`x` is listed twice",
        ),
        (
            "key = \"url.a\\tb.insteadOf\"\nvalue = \"x\"\n",
            "is not a git config key",
        ),
        (
            "key = \"-http.sslVerify\"\nvalue = \"x\"\n",
            "`-http.sslVerify` is not a git config key",
        ),
        (
            "key = \"a.b\"\nvalue = \"x\"\nscope = \"relative/file\"\n",
            "scope is global, system or a file path",
        ),
    ] {
        let pb = sb.playbook(
            "bad.toml",
            &format!("[playbook]\nname = \"c\"\n[[resource]]\ntype = \"git_config\"\n{body}"),
        );
        sb.fixer(&["validate", pb.to_str().ok_or("path")?])
            .assert()
            .code(1)
            .stderr(contains(message))
            .stderr(contains("bad.toml:"));
    }
    let pb = sb.playbook(
        "bad.toml",
        "[playbook]\nname = \"c\"\n[[resource]]\ntype = \"git_url_rewrite\"\nbase = \"https://a\\tb/\"\ninstead_of = \"x\"\n",
    );
    sb.fixer(&["plan", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("bad.toml:5:8: field `resource[0].base`"))
        .stderr(contains("cannot contain a control character"));
    let pb = sb.playbook(
        "bad.toml",
        "[playbook]\nname = \"c\"\n[[resource]]\ntype = \"git_url_rewrite\"\nbase = \"ssh://a/\"\ninstead_of = [\"https://a/\", \"https://a/\"]\n",
    );
    sb.fixer(&["plan", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("bad.toml:6:14: field `resource[0].instead_of`"))
        .stderr(contains("`https://a/` is listed twice"));
    assert_eq!(sb.tree(), before);
    Ok(())
}

pub const APP_MAIN: &str =
    "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(dep.Hello()) }\n";

/// /srv/app: a module importing example.com/dep, served by the sandbox proxy.
pub fn go_module(sb: &Sandbox, main_go: &str) -> TestResult {
    go_proxy(
        &sb.base().join("proxy"),
        &[(
            "example.com/dep",
            &[(
                "dep.go",
                "package dep\n\nfunc Hello() string { return \"hi\" }\n",
            )],
        )],
    )?;
    sb.file("/srv/app/go.mod", "module example.com/app\n\ngo 1.19\n");
    sb.file("/srv/app/main.go", main_go);
    Ok(())
}

fn tidy_playbook(sb: &Sandbox, extra: &str) -> PathBuf {
    sb.playbook(
        "tidy.toml",
        &format!(
            "[playbook]\nname = \"tidy\"\n[[resource]]\ntype = \"go_mod_tidy\"\ndir = \"/srv/app\"\nenv = {}\n{extra}",
            toml_env(&go_env(sb))
        ),
    )
}

#[test]
fn go_mod_tidy_plans_the_exact_diff_without_touching_the_module() -> TestResult {
    let sb = Sandbox::new();
    go_module(&sb, APP_MAIN)?;
    let pb = tidy_playbook(&sb, "");
    let pb = pb.to_str().ok_or("path")?;
    let module_before: Vec<_> = ["/srv/app/go.mod", "/srv/app/main.go"]
        .iter()
        .map(|p| sb.read(p))
        .collect();
    let out = sb.fixer(&["plan", pb]).output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("+require example.com/dep v1.0.0"), "{text}");
    assert!(text.contains("+++ /srv/app/go.sum"), "{text}");
    assert!(text.contains("+example.com/dep v1.0.0 h1:"), "{text}");
    let module_after: Vec<_> = ["/srv/app/go.mod", "/srv/app/main.go"]
        .iter()
        .map(|p| sb.read(p))
        .collect();
    assert_eq!(module_before, module_after, "plan touched the module");
    assert!(!sb.exists("/srv/app/go.sum"));

    sb.fixer(&["apply", pb]).assert().success();
    // The module is now tidy by go's own judgement: tidy changes nothing and it builds.
    let tidy_check = tool("go")
        .args(["mod", "tidy"])
        .current_dir(sb.at("/srv/app"))
        .envs(go_env(&sb))
        .output()?;
    assert!(
        tidy_check.status.success(),
        "{}",
        String::from_utf8_lossy(&tidy_check.stderr)
    );
    assert!(sb
        .read("/srv/app/go.mod")
        .contains("require example.com/dep v1.0.0"));
    let build = tool("go")
        .args(["build", "-o", "/dev/null", "."])
        .current_dir(sb.at("/srv/app"))
        .envs(go_env(&sb))
        .output()?;
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    sb.fixer(&["plan", pb])
        .assert()
        .success()
        .stdout(contains("No changes"));

    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(
        sb.read("/srv/app/go.mod"),
        "module example.com/app\n\ngo 1.19\n"
    );
    assert!(!sb.exists("/srv/app/go.sum"));
    Ok(())
}

#[test]
fn go_mod_tidy_errors_quote_go_and_change_nothing() -> TestResult {
    let sb = Sandbox::new();
    go_module(
        &sb,
        "package main\n\nimport \"example.com/missing\"\n\nfunc main() { missing.X() }\n",
    )?;
    let before = sb.tree();
    let pb = tidy_playbook(&sb, "");
    let out = sb.fixer(&["apply", pb.to_str().ok_or("path")?]).output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("resource `go_mod_tidy:/srv/app`: command `go mod tidy (in /srv/app)` failed (exit status 1)"), "{err}");
    assert!(
        err.contains("example.com/missing"),
        "go's own message is quoted: {err}"
    );
    assert_eq!(sb.tree(), before);

    let missing_go = tidy_playbook(&sb, "go = \"/nonexistent/bin/go\"\n");
    sb.fixer(&["plan", missing_go.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("`/nonexistent/bin/go` not found on localhost"));

    std::fs::remove_file(sb.at("/srv/app/go.mod"))?;
    let pb = tidy_playbook(&sb, "");
    sb.fixer(&["plan", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("/srv/app has no go.mod"));
    Ok(())
}

#[test]
fn go_mod_tidy_that_hangs_is_stopped_by_its_timeout() -> TestResult {
    let sb = Sandbox::new();
    go_module(&sb, APP_MAIN)?;
    // A stand-in for go stuck on a firewalled proxy.
    let fake = sb.base().join("slow-go");
    std::fs::write(&fake, "#!/bin/sh\nsleep 30\n")?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
    let pb = tidy_playbook(&sb, &format!("go = \"{}\"\ntimeout = 1\n", fake.display()));
    sb.fixer(&["plan", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("timed out after 1 s"));
    Ok(())
}

#[test]
fn env_go_style_follows_goenv_and_xdg_config_home() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"g\"\n[[resource]]\ntype = \"env\"\nstyle = \"go\"\nvars = { GOPROXY = \"off\" }\n",
    );
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["apply", pb])
        .env("GOENV", "/etc/go/env")
        .assert()
        .success();
    assert_eq!(sb.read("/etc/go/env"), "GOPROXY=off\n");
    sb.fixer(&["apply", pb])
        .env("XDG_CONFIG_HOME", "/xdg")
        .assert()
        .success();
    assert_eq!(sb.read("/xdg/go/env"), "GOPROXY=off\n");
    sb.fixer(&["plan", pb])
        .env("GOENV", "off")
        .assert()
        .code(1)
        .stderr(contains("GOENV=off: go reads no env file"));
    Ok(())
}

#[test]
fn unreadable_gitconfig_is_a_clear_error() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/home/tester/.gitconfig", "[user]\n\tname = Root\n");
    let pb = sb.playbook(
        "p.toml",
        "[playbook]\nname = \"c\"\n[[resource]]\ntype = \"git_config\"\nkey = \"user.email\"\nvalue = \"a@b\"\n",
    );
    let out = if crate::support::is_root() {
        // Root reads any file: fixer runs as nobody, the file is root's.
        sb.chmod("/home/tester/.gitconfig", 0o600);
        use std::os::unix::fs::PermissionsExt as _;
        for d in [sb.base().to_path_buf(), sb.base().join("pb")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        }
        let before = sb.tree();
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("fixer"))
            .args(["plan", pb.to_str().ok_or("path")?, "--root"])
            .arg(sb.root())
            .env("HOME", crate::support::HOME)
            .output()?;
        assert_eq!(sb.tree(), before);
        out
    } else {
        // Not root: a file of ours with no read bit is unreadable to us.
        sb.chmod("/home/tester/.gitconfig", 0o000);
        let out = sb.fixer(&["plan", pb.to_str().ok_or("path")?]).output()?;
        sb.chmod("/home/tester/.gitconfig", 0o600);
        out
    };
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read /home/tester/.gitconfig: Permission denied"),
        "{err}"
    );
    Ok(())
}

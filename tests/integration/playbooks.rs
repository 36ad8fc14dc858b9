//! Every shipped playbook, planned and applied on a sandbox root, its effect
//! read back by the tool it is for.

use predicates::str::contains;
use std::path::PathBuf;

use crate::gotools::{go_env, go_module, tool, APP_MAIN};
use crate::support::{is_root, stdout_of, Sandbox, TestResult, HOME};

fn shipped(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks")
        .join(name)
        .display()
        .to_string()
}

fn go_env_of(sb: &Sandbox, key: &str) -> Result<String, Box<dyn std::error::Error>> {
    let out = tool("go")
        .args(["env", key])
        .env("GOENV", sb.at(&format!("{HOME}/.config/go/env")))
        .env("HOME", sb.base())
        .env_remove(key)
        .output()?;
    Ok(String::from_utf8(out.stdout)?.trim_end().to_string())
}

fn rewritten(sb: &Sandbox, url: &str) -> Result<String, Box<dyn std::error::Error>> {
    // --get-url applies insteadOf without connecting anywhere.
    let out = tool("git")
        .args(["ls-remote", "--get-url", url])
        .env("HOME", sb.at(HOME))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()?;
    Ok(String::from_utf8(out.stdout)?.trim_end().to_string())
}

#[test]
fn every_shipped_playbook_validates_and_says_when_to_use_it() -> TestResult {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        count += 1;
        let text = std::fs::read_to_string(&path)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).ok_or("name")?;
        assert!(
            text.starts_with(&format!("# {stem} — ")),
            "{stem}: header comment missing"
        );
        assert!(
            text.contains("\n# Use when "),
            "{stem}: no 'Use when' paragraph"
        );
        assert!(text.contains("[[symptom]]"), "{stem}: no symptom");
        let sb = Sandbox::new();
        sb.fixer(&["validate", path.to_str().ok_or("path")?])
            .assert()
            .success()
            .stdout(contains(format!("valid playbook `{stem}`")));
    }
    assert!(count >= 6, "only {count} playbooks shipped");
    Ok(())
}

#[test]
fn go_proxy_mirror() -> TestResult {
    let sb = Sandbox::new();
    sb.file(&format!("{HOME}/.config/go/env"), "GOFLAGS=-mod=mod\n");
    let pb = shipped("go-proxy-mirror.toml");
    let args = ["--var", "mirror=https://mirror.corp.invalid"];
    sb.fixer(&[&["plan", &pb][..], &args].concat())
        .assert()
        .success()
        .stdout(contains("+GOPROXY=https://mirror.corp.invalid,direct"));
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .assert()
        .success();
    assert_eq!(
        go_env_of(&sb, "GOPROXY")?,
        "https://mirror.corp.invalid,direct"
    );
    assert_eq!(go_env_of(&sb, "GOFLAGS")?, "-mod=mod");
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

#[test]
fn go_private_modules() -> TestResult {
    let sb = Sandbox::new();
    let pb = shipped("go-private-modules.toml");
    let args = ["--var", "private_host=git.corp.invalid"];
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .assert()
        .success();
    assert_eq!(go_env_of(&sb, "GOPRIVATE")?, "git.corp.invalid");
    assert_eq!(go_env_of(&sb, "GONOSUMDB")?, "git.corp.invalid");
    assert_eq!(
        rewritten(&sb, "https://git.corp.invalid/team/lib.git")?,
        "git@git.corp.invalid:team/lib.git"
    );
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

#[test]
fn git_ssh_rewrite() -> TestResult {
    let sb = Sandbox::new();
    sb.file(&format!("{HOME}/.gitconfig"), "[user]\n\tname = Kept\n");
    let pb = shipped("git-ssh-rewrite.toml");
    sb.fixer(&["apply", &pb]).assert().success();
    assert_eq!(
        rewritten(&sb, "https://github.com/acme/tool")?,
        "git@github.com:acme/tool"
    );
    assert!(sb
        .read(&format!("{HOME}/.gitconfig"))
        .starts_with("[user]\n\tname = Kept\n"));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(
        sb.read(&format!("{HOME}/.gitconfig")),
        "[user]\n\tname = Kept\n"
    );
    // The other way, for "Permission denied (publickey)": SSH URLs of the
    // host are fetched over https.
    sb.fixer(&[
        "apply",
        &pb,
        "--var",
        "via=https",
        "--var",
        "git_host=git.corp.example",
    ])
    .assert()
    .success();
    assert_eq!(
        rewritten(&sb, "git@git.corp.example:acme/tool")?,
        "https://git.corp.example/acme/tool"
    );
    assert_eq!(
        rewritten(&sb, "https://git.corp.example/acme/tool")?,
        "https://git.corp.example/acme/tool"
    );
    Ok(())
}

#[test]
fn go_clean_modcache() -> TestResult {
    let sb = Sandbox::new();
    let m = format!("{HOME}/go/pkg/mod");
    for f in [
        "cache/download/github.com/acme/tool/@v/v1.2.0.zip",
        "cache/download/github.com/acme/tool/@v/list",
        "github.com/acme/tool@v1.2.0/tool.go",
        "cache/download/github.com/other/lib/@v/list",
        "github.com/other/lib@v0.1.0/lib.go",
    ] {
        sb.file(&format!("{m}/{f}"), "x");
        sb.chmod(&format!("{m}/{f}"), 0o444);
    }
    sb.chmod(&format!("{m}/github.com/acme/tool@v1.2.0"), 0o555);
    let before = sb.tree();
    let pb = shipped("go-clean-modcache.toml");
    let args = ["--var", "module=github.com/acme/tool"];
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .assert()
        .success();
    assert!(!sb.exists(&format!("{m}/cache/download/github.com/acme/tool")));
    assert!(!sb.exists(&format!("{m}/github.com/acme/tool@v1.2.0")));
    assert!(sb.exists(&format!("{m}/github.com/other/lib@v0.1.0/lib.go")));
    assert!(sb.exists(&format!("{m}/cache/download/github.com/other/lib/@v/list")));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);
    Ok(())
}

/// A module path with capitals, as go itself lays it out in the cache: the
/// path from the error message must find `!`-escaped directories.
#[test]
fn go_clean_modcache_finds_modules_with_capitals_where_go_put_them() -> TestResult {
    let sb = Sandbox::new();
    let proxy = sb.base().join("proxy");
    let body: &[(&str, &str)] = &[("x.go", "package x\n")];
    crate::gotools::go_proxy(
        &proxy,
        &[
            ("example.com/Acme/Tool", body),
            ("example.com/acme/other", body),
        ],
    )?;
    let modcache = sb.at(&format!("{HOME}/go/pkg/mod"));
    for module in [
        "example.com/Acme/Tool@v1.0.0",
        "example.com/acme/other@v1.0.0",
    ] {
        let mut go = tool("go");
        go.args(["mod", "download", module])
            .current_dir(sb.base())
            .envs(go_env(&sb))
            .env("GOMODCACHE", &modcache);
        let out = go.output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let m = format!("{HOME}/go/pkg/mod");
    assert!(sb.exists(&format!("{m}/example.com/!acme/!tool@v1.0.0/x.go")));
    let before = sb.tree();
    let pb = shipped("go-clean-modcache.toml");
    sb.fixer(&["apply", &pb, "--var", "module=example.com/Acme/Tool"])
        .assert()
        .success();
    assert!(!sb.exists(&format!("{m}/example.com/!acme/!tool@v1.0.0")));
    assert!(!sb.exists(&format!("{m}/cache/download/example.com/!acme/!tool")));
    assert!(sb.exists(&format!("{m}/example.com/acme/other@v1.0.0/x.go")));
    assert!(sb.exists(&format!(
        "{m}/cache/download/example.com/acme/other/@v/v1.0.0.zip"
    )));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn go_mod_tidy_playbook() -> TestResult {
    let sb = Sandbox::new();
    go_module(&sb, APP_MAIN)?;
    let pb = shipped("go-mod-tidy.toml");
    let proxy = format!("goproxy=file://{}", sb.base().join("proxy").display());
    let args = [
        "--var",
        "module_dir=/srv/app",
        "--var",
        &proxy,
        "--var",
        "gosumdb=off",
    ];
    // GOMODCACHE and GOCACHE reach go from fixer's own environment.
    let cache_env: Vec<(String, String)> = go_env(&sb)
        .into_iter()
        .filter(|(k, _)| k == "GOMODCACHE" || k == "GOCACHE")
        .collect();
    let out = sb
        .fixer(&[&["plan", &pb][..], &args].concat())
        .envs(cache_env.clone())
        .output()?;
    assert!(
        stdout_of(&out).contains("+require example.com/dep v1.0.0"),
        "{}",
        stdout_of(&out)
    );
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .envs(cache_env.clone())
        .assert()
        .success();
    assert!(sb
        .read("/srv/app/go.sum")
        .contains("example.com/dep v1.0.0 h1:"));
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .envs(cache_env)
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

#[test]
fn go_cache_permissions() -> TestResult {
    let sb = Sandbox::new();
    sb.file(
        "/etc/passwd",
        "root:x:0:0::/root:/bin/sh\ndeploy:x:1500:1500::/home/deploy:/bin/sh\n",
    );
    sb.file("/etc/group", "root:x:0:\ndeploy:x:1500:\n");
    sb.file(
        "/home/deploy/go/pkg/mod/example.com/m@v1.0.0/m.go",
        "package m\n",
    );
    sb.chmod("/home/deploy/go/pkg/mod/example.com/m@v1.0.0/m.go", 0o444);
    sb.file("/home/deploy/.cache/go-build/ab/abcdef-d", "obj");
    let pb = shipped("go-cache-permissions.toml");
    let args = ["--var", "user=deploy", "--var", "group=deploy"];
    sb.fixer(&[&["plan", &pb][..], &args].concat())
        .assert()
        .success()
        .stdout(contains(
            "/home/deploy/go/pkg/mod/example.com/m@v1.0.0/m.go: owner 0 -> 1500, group 0 -> 1500",
        ))
        .stdout(contains("remove /home/deploy/.cache/go-build/ab"));
    // No caches at all: the module cache is skipped, not an error, and the
    // build cache is created for the user (go could not create it).
    let empty = Sandbox::new();
    empty.file("/etc/passwd", "deploy:x:1500:1500::/home/deploy:/bin/sh\n");
    empty.file("/etc/group", "deploy:x:1500:\n");
    empty
        .fixer(&[&["plan", &pb][..], &args].concat())
        .assert()
        .success()
        .stdout(contains("skipped: /home/deploy/go/pkg/mod does not exist"))
        .stdout(contains("/home/deploy/.cache/go-build"));
    if !is_root() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run as root to test chown"
        );
        return Ok(());
    }
    let before = sb.tree();
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .assert()
        .success();
    let t = sb.tree();
    let f = &t["/home/deploy/go/pkg/mod/example.com/m@v1.0.0/m.go"];
    assert_eq!((f.uid, f.gid, f.mode), (1500, 1500, 0o444));
    let cache = &t["/home/deploy/.cache/go-build"];
    assert_eq!((cache.uid, cache.gid, cache.mode), (1500, 1500, 0o755));
    assert!(!sb.exists("/home/deploy/.cache/go-build/ab"));
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .assert()
        .success()
        .stdout(contains("No changes"));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);

    // HOME=/ in a container: "failed to initialize build cache at
    // /.cache/go-build: mkdir /.cache: permission denied".
    empty
        .fixer(
            &[
                &["apply", &pb][..],
                &args,
                &["--var", "gocache=/.cache/go-build"],
            ]
            .concat(),
        )
        .assert()
        .success();
    let t = empty.tree();
    let cache = &t["/.cache/go-build"];
    assert_eq!((cache.uid, cache.gid), (1500, 1500));
    Ok(())
}

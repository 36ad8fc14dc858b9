//! Benchmark: the incident playbook — the fix for a Go build VM behind a
//! firewall — written for fixer, Ansible (ansible-core only) and pyinfra,
//! applied to a fresh local tree: the go env file (GOPROXY, GOPRIVATE set,
//! GOFLAGS unset), a git `url.<base>.insteadOf` rewrite, a static netplan
//! file (then `netplan generate` on the tree), the module download cache
//! cleared, the real `go mod tidy` on a module against an offline file
//! proxy, and permissions on the module tree. First apply and a no-change
//! re-apply; every first apply is checked with the real tools (git config,
//! the files, the modes). Needs go and netplan (tests/run-all.sh installs
//! them), python3 with venv, and PyPI.
//!
//! `cargo bench --bench incident`; `FIXER_BENCH_WRITE_DOCS=1` also writes
//! docs/benchmarks-incident.md (and reassembles docs/benchmarks.md).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
#[path = "../tests/integration/go_proxy.rs"]
mod go_proxy;
use common::{median, ratio, Result};

const GOENV: &str = "home/bench/.config/go/env";
const GITCONFIG: &str = "home/bench/.gitconfig";
const NETPLAN: &str = "etc/netplan/01-netcfg.yaml";
const DOWNLOADS: &str = "home/bench/go/pkg/mod/cache/download";
const APP: &str = "srv/app";
const BASE: &str = "ssh://git@git.corp.invalid/";
const INSTEAD_OF: &str = "https://git.corp.invalid/";
const GOPRIVATE: &str = "git.corp.invalid";

const NETPLAN_YAML: &str = "\
# Managed: static address and working DNS.
network:
  version: 2
  renderer: networkd
  ethernets:
    eth0:
      dhcp4: false
      addresses:
        - 192.168.122.10/24
      routes:
        - to: default
          via: 192.168.122.1
      nameservers:
        addresses: [1.1.1.1, 8.8.8.8]
";

const MAIN_GO: &str =
    "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(dep.Hello()) }\n";

/// The broken host: DHCP netplan, GOFLAGS forcing vendor mode, a stale
/// download cache (read-only, as go leaves it), a module whose go.mod lacks
/// its dependency, files readable by the owner only.
fn prepare(root: &Path) -> Result<()> {
    let write = |rel: &str, text: &str, mode: u32| -> Result<()> {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().ok_or("no parent")?)?;
        std::fs::write(&p, text)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    write(
        GOENV,
        "GOPROXY=https://proxy.golang.org,direct\nGOFLAGS=-mod=vendor\n",
        0o644,
    )?;
    write(GITCONFIG, "[user]\n\tname = Bench\n", 0o644)?;
    write(
        NETPLAN,
        "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n",
        0o600,
    )?;
    for m in 0..20 {
        for f in 0..25 {
            write(
                &format!("{DOWNLOADS}/example.com/m{m}/@v/v1.0.{f}.zip"),
                "stale",
                0o444,
            )?;
        }
        let dir = root.join(format!("{DOWNLOADS}/example.com/m{m}/@v"));
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))?;
    }
    write(
        &format!("{APP}/go.mod"),
        "module example.com/app\n\ngo 1.19\n",
        0o600,
    )?;
    write(&format!("{APP}/main.go"), MAIN_GO, 0o600)?;
    std::fs::set_permissions(root.join(APP), std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn fixer_playbook(dir: &Path, proxy: &str) -> Result<PathBuf> {
    std::fs::write(dir.join("netplan.yaml"), NETPLAN_YAML)?;
    let text = format!(
        r#"[playbook]
name = "incident"

[[resource]]
type = "env"
style = "go"
path = "/{GOENV}"
vars = {{ GOPROXY = "{proxy}", GOPRIVATE = "{GOPRIVATE}" }}
unset = ["GOFLAGS"]

[[resource]]
type = "git_url_rewrite"
scope = "/{GITCONFIG}"
base = "{BASE}"
instead_of = ["{INSTEAD_OF}"]

[[resource]]
type = "netplan"
path = "/{NETPLAN}"
template = "netplan.yaml"
notify = ["netplan-generate"]

[[resource]]
type = "clean"
paths = ["/{DOWNLOADS}"]

[[resource]]
type = "go_mod_tidy"
dir = "/{APP}"

[[resource]]
type = "permissions"
path = "/{APP}"
mode = "u=rwX,go=rX"
recursive = true

[[handler]]
id = "netplan-generate"
type = "command"
run = 'netplan generate --root-dir "$FIXER_ROOT"'
"#
    );
    let p = dir.join("fixer.toml");
    std::fs::write(&p, text)?;
    Ok(p)
}

/// ansible-core has no git_config module (that is community.general), so
/// the rewrite is the shell line an operator writes, reporting a change
/// only when it adds the value.
fn ansible_playbook(dir: &Path, proxy: &str) -> Result<PathBuf> {
    let text = format!(
        r#"- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: GOPROXY
      ansible.builtin.lineinfile:
        path: "{{{{ root }}}}/{GOENV}"
        regexp: '^GOPROXY='
        line: "GOPROXY={proxy}"
        create: true
    - name: GOPRIVATE
      ansible.builtin.lineinfile:
        path: "{{{{ root }}}}/{GOENV}"
        regexp: '^GOPRIVATE='
        line: "GOPRIVATE={GOPRIVATE}"
    - name: no GOFLAGS
      ansible.builtin.lineinfile:
        path: "{{{{ root }}}}/{GOENV}"
        regexp: '^GOFLAGS='
        state: absent
    - name: git rewrite
      ansible.builtin.shell: >-
        git config --file "{{{{ root }}}}/{GITCONFIG}" --get-all 'url.{BASE}.insteadOf'
        | grep -qxF '{INSTEAD_OF}' && echo present
        || git config --file "{{{{ root }}}}/{GITCONFIG}" --add 'url.{BASE}.insteadOf' '{INSTEAD_OF}'
      register: rewrite
      changed_when: "'present' not in rewrite.stdout"
    - name: netplan
      ansible.builtin.copy:
        src: "{}/netplan.yaml"
        dest: "{{{{ root }}}}/{NETPLAN}"
        mode: "0600"
      notify: netplan generate
    - name: clean the download cache
      ansible.builtin.file:
        path: "{{{{ root }}}}/{DOWNLOADS}"
        state: absent
    - name: go mod tidy
      ansible.builtin.command:
        cmd: go mod tidy
        chdir: "{{{{ root }}}}/{APP}"
    - name: permissions
      ansible.builtin.file:
        path: "{{{{ root }}}}/{APP}"
        mode: "u=rwX,go=rX"
        recurse: true
  handlers:
    - name: netplan generate
      ansible.builtin.command: netplan generate --root-dir "{{{{ root }}}}"
"#,
        dir.display()
    );
    std::fs::write(dir.join("netplan.yaml"), NETPLAN_YAML)?;
    let p = dir.join("ansible.yml");
    std::fs::write(&p, text)?;
    Ok(p)
}

fn pyinfra_deploy(dir: &Path, proxy: &str) -> Result<PathBuf> {
    let text = format!(
        r#"import os
from pyinfra.operations import files, server
ROOT = os.environ["BENCH_ROOT"]
GOENV = f"{{ROOT}}/{GOENV}"
files.line(name="GOPROXY", path=GOENV, line="^GOPROXY=.*$", replace="GOPROXY={proxy}")
files.line(name="GOPRIVATE", path=GOENV, line="^GOPRIVATE=.*$", replace="GOPRIVATE={GOPRIVATE}")
files.line(name="no GOFLAGS", path=GOENV, line="^GOFLAGS=.*$", present=False)
server.shell(
    name="git rewrite",
    commands=[
        f"git config --file {{ROOT}}/{GITCONFIG} --get-all 'url.{BASE}.insteadOf' | grep -qxF '{INSTEAD_OF}'"
        f" || git config --file {{ROOT}}/{GITCONFIG} --add 'url.{BASE}.insteadOf' '{INSTEAD_OF}'"
    ],
)
netplan = files.put(name="netplan", src="{dir}/netplan.yaml", dest=f"{{ROOT}}/{NETPLAN}", mode="600")
server.shell(name="netplan generate", commands=[f"netplan generate --root-dir {{ROOT}}"], _if=netplan.did_change)
files.directory(name="clean the download cache", path=f"{{ROOT}}/{DOWNLOADS}", present=False)
server.shell(name="go mod tidy", commands=[f"cd {{ROOT}}/{APP} && go mod tidy"])
server.shell(name="permissions", commands=[f"chmod -R u=rwX,go=rX {{ROOT}}/{APP}"])
"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("netplan.yaml"), NETPLAN_YAML)?;
    let p = dir.join("deploy.py");
    std::fs::write(&p, text)?;
    Ok(p)
}

/// The fix is in place, read back with the real tools: a tool that
/// "succeeded" without doing the work would otherwise look fast.
fn check(root: &Path, proxy: &str, tool: &str) -> Result<()> {
    let fail = |what: String| -> Result<()> { Err(format!("{tool}: {what}").into()) };
    let goenv = std::fs::read_to_string(root.join(GOENV))?;
    let mut lines: Vec<&str> = goenv.lines().collect();
    lines.sort_unstable();
    let want_proxy = format!("GOPROXY={proxy}");
    let want_private = format!("GOPRIVATE={GOPRIVATE}");
    if lines != [want_private.as_str(), want_proxy.as_str()] {
        return fail(format!("go env file is {goenv:?}"));
    }
    let out = Command::new("git")
        .args(["config", "--file"])
        .arg(root.join(GITCONFIG))
        .args(["--get-all", &format!("url.{BASE}.insteadof")])
        .output()?;
    if String::from_utf8_lossy(&out.stdout) != format!("{INSTEAD_OF}\n") {
        return fail(format!(
            "git reads {:?}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let netplan = root.join(NETPLAN);
    if std::fs::read_to_string(&netplan)? != NETPLAN_YAML
        || std::fs::metadata(&netplan)?.permissions().mode() & 0o777 != 0o600
    {
        return fail("netplan file is not the static one with mode 0600".into());
    }
    if !root
        .join("run/systemd/network/10-netplan-eth0.network")
        .exists()
    {
        return fail("netplan generate did not run".into());
    }
    if root.join(DOWNLOADS).exists() {
        return fail("the download cache is still there".into());
    }
    let gomod = std::fs::read_to_string(root.join(APP).join("go.mod"))?;
    if !gomod.contains("example.com/dep v1.0.0") || !root.join(APP).join("go.sum").exists() {
        return fail(format!("go.mod is {gomod:?}"));
    }
    for (rel, mode) in [
        ("", 0o755),
        ("go.mod", 0o644),
        ("go.sum", 0o644),
        ("main.go", 0o644),
    ] {
        let p = root.join(APP).join(rel);
        let m = std::fs::metadata(&p)?.permissions().mode() & 0o777;
        if m != mode {
            return fail(format!("{} has mode {m:o}, not {mode:o}", p.display()));
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    if common::is_child() {
        return common::child_main();
    }
    for needed in ["go", "netplan", "git"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {needed}")])
            .stdout(std::process::Stdio::null())
            .status()?
            .success()
        {
            return Err(format!("`{needed}` is not installed: run tests/run-all.sh first").into());
        }
    }
    let tc = common::Toolchain::new()?;
    let versions = format!(
        "{}, {}",
        tc.versions(),
        String::from_utf8_lossy(&Command::new("go").arg("version").output()?.stdout).trim()
    );
    let rounds: usize = std::env::var("FIXER_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let work = tempfile::tempdir()?;
    go_proxy::go_proxy(
        &work.path().join("proxy"),
        &[(
            "example.com/dep",
            &[(
                "dep.go",
                "package dep\n\nfunc Hello() string { return \"hi\" }\n",
            )],
        )],
    )?;
    let proxy = format!("file://{}/proxy", work.path().display());
    let fixer_pb = fixer_playbook(work.path(), &proxy)?;
    let ansible_pb = ansible_playbook(work.path(), &proxy)?;
    let deploy = pyinfra_deploy(work.path(), &proxy)?;
    let tools = tc.local_tools(fixer_pb, ansible_pb, deploy);
    let mut first: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let mut again: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let mut rss: Vec<u64> = vec![0; tools.len()];
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        let mut order: Vec<usize> = (0..tools.len()).collect();
        order.rotate_left(round % tools.len());
        for k in order {
            let tool = &tools[k];
            let root = work.path().join(format!("{}-{round}", tool.name));
            prepare(&root)?;
            // go runs inside every tool with the same offline settings, its
            // caches fresh for each run (nothing carried over between tools).
            let caches = work.path().join(format!("cache-{}-{round}", tool.name));
            let (root_s, modcache, gocache) = (
                root.display().to_string(),
                caches.join("mod").display().to_string(),
                caches.join("build").display().to_string(),
            );
            let envs = [
                ("BENCH_ROOT", root_s.as_str()),
                ("GOPROXY", proxy.as_str()),
                ("GOSUMDB", "off"),
                ("GOFLAGS", "-mod=mod -modcacherw"),
                ("GOMODCACHE", modcache.as_str()),
                ("GOCACHE", gocache.as_str()),
                ("GOENV", "off"),
                ("GOTOOLCHAIN", "local"),
                ("ANSIBLE_NOCOLOR", "1"),
                ("ANSIBLE_LOCALHOST_WARNING", "False"),
                ("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False"),
            ];
            let args = (tool.args)(&root);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (t, kib) = common::measured(&tool.program, &args, work.path(), &envs)?;
            check(&root, &proxy, tool.name)?;
            first[k].push(t.as_secs_f64());
            rss[k] = rss[k].max(kib);
            let (t, kib) = common::measured(&tool.program, &args, work.path(), &envs)?;
            check(&root, &proxy, tool.name)?;
            again[k].push(t.as_secs_f64());
            rss[k] = rss[k].max(kib);
            // go leaves its module cache read-only.
            Command::new("chmod")
                .arg("-R")
                .arg("u+w")
                .arg(&caches)
                .status()?;
            std::fs::remove_dir_all(&caches)?;
            std::fs::remove_dir_all(&root)?;
        }
    }
    let fixer_first = median(first[0].clone());
    let fixer_again = median(again[0].clone());
    let mut table = String::from(
        "| tool | first apply s | fixer/tool | no-change apply s | fixer/tool | peak RSS MiB |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for (k, tool) in tools.iter().enumerate() {
        let (f, a) = (median(first[k].clone()), median(again[k].clone()));
        table.push_str(&format!(
            "| {} | {f:.3} | {} | {a:.3} | {} | {:.1} |\n",
            tool.name,
            ratio(fixer_first / f),
            ratio(fixer_again / a),
            rss[k] as f64 / 1024.0
        ));
    }
    println!("{table}");
    if std::env::var_os("FIXER_BENCH_WRITE_DOCS").is_some() {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        common::write_page(
            "benchmarks-incident.md",
            &format!(
                "# Benchmark: the incident playbook in fixer, Ansible and pyinfra\n\n\
                 The fix for a Go build VM behind a firewall, on a fresh local tree each \
                 run: the go env file (GOPROXY and GOPRIVATE set, GOFLAGS removed), a git \
                 `url.<base>.insteadOf` rewrite, a static netplan file then `netplan \
                 generate` on the tree, the module download cache (500 read-only files) \
                 cleared, the real `go mod tidy` on a module against an offline file \
                 proxy (fresh go caches each run), and `u=rwX,go=rX` on the module tree. \
                 Ansible uses ansible-core modules only (`lineinfile`, `copy` with a \
                 handler, `file`, `command`; the git rewrite is a shell line, since \
                 `git_config` is in community.general); pyinfra uses `files.line`, \
                 `files.put`, `files.directory` and `server.shell`. Each run is its own \
                 process; the tools alternate round by round; medians of {rounds} rounds; \
                 every run's result is read back with git and checked (files, modes, \
                 generated networkd file). fixer/tool below 1 means fixer is faster.\n\n\
                 What each does beyond the others: fixer validates the netplan file with \
                 `netplan generate` on a scratch root before writing it, runs `go mod \
                 tidy` on scratch copies to plan the exact go.mod/go.sum diff, journals \
                 every change for rollback, and on the re-apply runs tidy again to \
                 confirm nothing changed. Ansible and pyinfra run `go mod tidy` on every \
                 apply and keep no undo.\n\n\
                 Versions: {versions}. Reproduce: `FIXER_BENCH_WRITE_DOCS=1 cargo bench \
                 --bench incident` (this table: {cores} cores).\n\n{table}"
            ),
        )?;
    }
    Ok(())
}

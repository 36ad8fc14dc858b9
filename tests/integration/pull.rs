//! `fixer pull`: real git repositories (made with the git CLI), served
//! from a folder, over a real sshd test host, and over https by the real
//! `git http-backend` (tests/data/git-https-server.py); `--root` sandboxes as the
//! pulling hosts; systemd units checked by `systemd-analyze verify`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

const V1: &str = "[playbook]\nname = \"demo\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/demo.conf\"\ncontent = \"v1\\n\"\n";

fn git(dir: &Path, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = crate::gotools::tool("git")
        .args(["-c", "user.name=Ops", "-c", "user.email=ops@corp.example"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()?;
    if !out.status.success() {
        return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// A repository of playbooks with one commit of `demo.toml`.
fn repo(sb: &Sandbox) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = sb.base().join("repo");
    std::fs::create_dir_all(dir.join("playbooks"))?;
    git(&dir, &["init", "-q", "-b", "main"])?;
    commit(&dir, V1, "v1")?;
    Ok(dir)
}

fn commit(dir: &Path, playbook: &str, message: &str) -> Result<String, Box<dyn std::error::Error>> {
    std::fs::write(dir.join("playbooks/demo.toml"), playbook)?;
    git(dir, &["add", "."])?;
    git(dir, &["commit", "-q", "-m", message])?;
    git(dir, &["rev-parse", "HEAD"])
}

fn state(sb: &Sandbox) -> Result<Value, Box<dyn std::error::Error>> {
    let dir = sb.at("/var/lib/fixer/pull");
    let one = std::fs::read_dir(&dir)?.next().ok_or("no pull state")??;
    Ok(serde_json::from_slice(&std::fs::read(
        one.path().join("state.json"),
    )?)?)
}

fn runs(sb: &Sandbox) -> usize {
    std::fs::read_dir(sb.at("/var/lib/fixer/runs")).map_or(0, |d| d.count())
}

fn pull(sb: &Sandbox, repo: &str, extra: &[&str]) -> std::process::Output {
    sb.command(&[&["pull", repo][..], extra].concat())
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_commit_is_applied_once_and_again_only_on_drift() -> TestResult {
    let sb = Sandbox::new();
    let repo = repo(&sb)?;
    let r = repo.to_str().ok_or("path")?;
    let v1 = git(&repo, &["rev-parse", "HEAD"])?;
    let out = pull(&sb, r, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    assert_eq!(state(&sb)?["converged"], v1.as_str());
    assert_eq!(runs(&sb), 1);
    // The same commit, nothing drifted: no run at all.
    let out = pull(&sb, r, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout_of(&out).contains(&format!("Up to date at {v1}")),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(runs(&sb), 1);
    // Drift: the same commit is applied again.
    sb.file("/etc/demo.conf", "edited\n");
    let out = pull(&sb, r, &[]);
    assert!(stdout_of(&out).contains("drifted"), "{}", stdout_of(&out));
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    assert_eq!(runs(&sb), 2);
    // A new commit.
    let v2 = commit(&repo, &V1.replace("v1", "v2"), "v2")?;
    let out = pull(&sb, r, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/demo.conf"), "v2\n");
    assert_eq!(state(&sb)?["converged"], v2.as_str());
    Ok(())
}

#[test]
fn an_unreachable_repo_or_a_broken_commit_applies_nothing() -> TestResult {
    let sb = Sandbox::new();
    let repo = repo(&sb)?;
    let r = repo.to_str().ok_or("path")?;
    let store = sb.base().join("store");
    let to = store.to_str().ok_or("path")?;
    let v1 = git(&repo, &["rev-parse", "HEAD"])?;
    assert_eq!(pull(&sb, r, &["--report-to", to]).status.code(), Some(0));

    // A commit whose playbook does not load: refused, naming file and line.
    commit(
        &repo,
        &format!("{V1}[[resource]]\ntype = \"file\"\npath = 7\n"),
        "broken",
    )?;
    let out = pull(&sb, r, &["--report-to", to]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("playbooks/demo.toml:9:8: field `resource[1].path`"),
        "{err}"
    );
    assert!(err.contains(&format!("the host stays at {v1}")), "{err}");
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    assert_eq!(state(&sb)?["converged"], v1.as_str());
    assert_eq!(state(&sb)?["last_status"], "failed");

    // The repository gone: nothing applied, the converged commit kept.
    std::fs::rename(&repo, sb.base().join("moved"))?;
    let out = pull(&sb, r, &["--report-to", to]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("nothing was applied"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(state(&sb)?["converged"], v1.as_str());
    assert_eq!(state(&sb)?["last_status"], "unreachable");
    assert_eq!(runs(&sb), 1);

    // The store has all three, the last one saying why.
    let out = sb
        .fixer_here(&["report", to, "--format", "json"])
        .output()?;
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let last = &report["hosts"][0]["last"];
    assert_eq!(report["records"], 3, "{report}");
    assert_eq!(last["status"], "unreachable", "{report}");
    assert_eq!(last["source"], "pull");
    assert_eq!(last["commit"], v1.as_str(), "{report}");
    Ok(())
}

#[test]
fn a_failed_run_rolls_back_and_the_next_tick_retries() -> TestResult {
    let sb = Sandbox::new();
    let repo = repo(&sb)?;
    let r = repo.to_str().ok_or("path")?;
    // The host cannot take it yet: /etc/demo.conf is a folder.
    std::fs::create_dir_all(sb.at("/etc/demo.conf"))?;
    let out = pull(&sb, r, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(state(&sb)?["converged"].is_null());
    assert_eq!(state(&sb)?["last_status"], "failed");
    std::fs::remove_dir(sb.at("/etc/demo.conf"))?;
    let out = pull(&sb, r, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    Ok(())
}

#[test]
fn only_commits_signed_by_an_allowed_signer_are_applied() -> TestResult {
    let sb = Sandbox::new();
    let dir = sb.base().join("repo");
    std::fs::create_dir_all(dir.join("playbooks"))?;
    git(&dir, &["init", "-q", "-b", "main"])?;
    let key = sb.base().join("signing");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()?;
    assert!(ok.success());
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let signers = sb.base().join("allowed_signers");
    std::fs::write(
        &signers,
        format!("ops@corp.example namespaces=\"git\" {public}"),
    )?;
    std::fs::write(dir.join("playbooks/demo.toml"), V1)?;
    git(&dir, &["add", "."])?;
    let k = key.to_str().ok_or("path")?;
    git(
        &dir,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={k}"),
            "commit",
            "-q",
            "-S",
            "-m",
            "signed",
        ],
    )?;
    let r = dir.to_str().ok_or("path")?;
    let s = signers.to_str().ok_or("path")?;
    let out = pull(&sb, r, &["--allowed-signers", s]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    // An unsigned commit on top is refused; nothing changes.
    commit(&dir, &V1.replace("v1", "v2"), "unsigned")?;
    let out = pull(&sb, r, &["--allowed-signers", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("is not signed by an allowed signer"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    Ok(())
}

#[test]
fn the_timer_units_are_valid_systemd_units() -> TestResult {
    let sb = Sandbox::new();
    let repo = repo(&sb)?;
    let out = pull(
        &sb,
        repo.to_str().ok_or("path")?,
        &[
            "--install-timer",
            "--every",
            "30min",
            "--randomized-delay",
            "10min",
            "--var",
            "x=50%$HOME",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let units: Vec<PathBuf> = std::fs::read_dir(sb.at("/etc/systemd/system"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    assert_eq!(units.len(), 2, "{units:?}");
    let timer = units
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "timer"))
        .ok_or("timer")?;
    let service = timer.with_extension("service");
    let t = std::fs::read_to_string(timer)?;
    assert!(
        t.contains("OnUnitActiveSec=30min") && t.contains("RandomizedDelaySec=10min"),
        "{t}"
    );
    let s = std::fs::read_to_string(&service)?;
    // % and $ reach fixer as given, not as systemd specifiers or variables.
    assert!(s.contains("\"x=50%%$$HOME\""), "{s}");
    let verify = crate::gotools::tool("systemd-analyze")
        .arg("verify")
        .arg(&service)
        .arg(timer)
        .output()?;
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    Ok(())
}

#[test]
fn fifty_hosts_pull_one_repo_into_one_store() -> TestResult {
    let origin = Sandbox::new();
    let repo = repo(&origin)?;
    let store = origin.base().join("store");
    let hosts: Vec<Sandbox> = (0..50).map(|_| Sandbox::new()).collect();
    let r = repo.to_str().ok_or("path")?;
    let to = store.to_str().ok_or("path")?;
    let codes: Vec<Option<i32>> = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| s.spawn(move || pull(h, r, &["--report-to", to, "-q"]).status.code()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    assert!(codes.iter().all(|c| *c == Some(0)), "{codes:?}");
    for h in &hosts {
        assert_eq!(h.read("/etc/demo.conf"), "v1\n");
    }
    let out = origin.fixer_here(&["report", to]).output()?;
    let text = stdout_of(&out);
    assert!(text.contains("50 hosts: 50 changed."), "{text}");
    Ok(())
}

#[test]
fn pulls_over_ssh_only_from_a_known_host() -> TestResult {
    use crate::sshd::{Client, TestHost};
    let client = Client::new();
    let server = TestHost::start(&client);
    let origin = Sandbox::new();
    let work = repo(&origin)?;
    let bare = server.fs("/srv/fixes.git");
    git(
        &work,
        &["clone", "-q", "--bare", ".", bare.to_str().ok_or("path")?],
    )?;
    let url = format!("ssh://root@127.0.0.1:{}/srv/fixes.git", server.port);
    let sb = Sandbox::new();
    let run = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"))
            .args(["pull", &url, "--root"])
            .arg(sb.root())
            .env("HOME", client.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env("NO_COLOR", "1")
            .output()
    };
    // The server's key is not in known_hosts yet: refused, nothing applied.
    let out = run()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("not in known_hosts"),
        "{}",
        stderr_of(&out)
    );
    assert!(!sb.exists("/etc/demo.conf"));
    client.trust(&server);
    let out = run()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    assert_eq!(
        state(&sb)?["converged"],
        git(&work, &["rev-parse", "HEAD"])?.as_str()
    );
    Ok(())
}

#[test]
fn a_second_pull_of_the_same_repo_waits_for_none_and_does_nothing() -> TestResult {
    let sb = Sandbox::new();
    let repo = repo(&sb)?;
    let r = repo.to_str().ok_or("path")?;
    assert_eq!(pull(&sb, r, &[]).status.code(), Some(0));
    let base = std::fs::read_dir(sb.at("/var/lib/fixer/pull"))?
        .next()
        .ok_or("no pull folder")??
        .path();
    commit(&repo, &V1.replace("v1", "v2"), "v2")?;
    // Another pull holds the lock, as a running pull would.
    let held = nix::fcntl::Flock::lock(
        std::fs::File::open(base.join("pull.lock"))?,
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, e)| e)?;
    let out = pull(&sb, r, &[]);
    drop(held);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("another `fixer pull` of this repository is running"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    assert_eq!(pull(&sb, r, &[]).status.code(), Some(0));
    assert_eq!(sb.read("/etc/demo.conf"), "v2\n");
    Ok(())
}

/// The https server of `tests/data/git-https-server.py`, ended (by its PID)
/// when dropped.
struct HttpsGit {
    child: std::process::Child,
    port: u16,
}

impl Drop for HttpsGit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pulls_over_https_only_from_a_trusted_certificate() -> TestResult {
    use std::io::BufRead as _;
    let origin = Sandbox::new();
    let work = repo(&origin)?;
    let served = origin.base().join("served");
    std::fs::create_dir_all(&served)?;
    git(
        &work,
        &[
            "clone",
            "-q",
            "--bare",
            ".",
            served.join("fixes.git").to_str().ok_or("path")?,
        ],
    )?;
    let (cert, key) = (
        origin.base().join("cert.pem"),
        origin.base().join("key.pem"),
    );
    let made = crate::gotools::tool("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    assert!(made.status.success(), "{}", stderr_of(&made));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/git-https-server.py");
    let mut child = crate::gotools::tool("python3")
        .arg(&script)
        .args([&served, &cert, &key])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().ok_or("stdout")?).read_line(&mut line)?;
    let server = HttpsGit {
        port: line.trim().parse()?,
        child,
    };
    let url = format!("https://127.0.0.1:{}/fixes.git", server.port);
    let sb = Sandbox::new();

    // A certificate nobody trusts: refused, nothing applied.
    let out = sb
        .command(&["pull", &url])
        .env("SSL_CERT_FILE", origin.base().join("no-ca.pem"))
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("nothing was applied")
            && stderr_of(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr_of(&out)
    );
    assert!(!sb.exists("/etc/demo.conf"));

    // Trusted: fetched over TLS from the real git http-backend, applied.
    let out = sb
        .command(&["pull", &url])
        .env("SSL_CERT_FILE", &cert)
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/demo.conf"), "v1\n");
    assert_eq!(
        state(&sb)?["converged"],
        git(&work, &["rev-parse", "HEAD"])?.as_str()
    );
    drop(server);
    Ok(())
}

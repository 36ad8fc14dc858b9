//! Pull mode: a host fetches a git repository of playbooks (git2), and
//! applies them when the commit is new or the host drifted from it. What
//! it converged to is kept in the state folder, so no commit is applied
//! twice unless the plan finds drift, and an unreachable repository or a
//! playbook that does not load leaves the last converged commit in place.
//!
//! Only the fetching and the bookkeeping live here; planning and applying
//! are the engine's, through the same [`crate::host::Host`] as every other
//! command.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where pull keeps its clone and its state, inside the target's state
/// folder: one folder per repository URL and branch.
pub const PULL_DIR: &str = "/var/lib/fixer/pull";

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("cannot fetch {url} (branch {branch}): {message}")]
    Fetch {
        url: String,
        branch: String,
        message: String,
    },
    #[error("commit {commit} of {url} is not signed by an allowed signer: {message}")]
    Unsigned {
        url: String,
        commit: String,
        message: String,
    },
    #[error("pull state {}: {message}", path.display())]
    State { path: PathBuf, message: String },
}

/// Held while one pull fetches, checks out and applies: a pull started by
/// hand while the timer's runs must not check out over it.
pub struct Busy {
    _held: nix::fcntl::Flock<std::fs::File>,
}

/// Take the lock of the pull folder `base`, or say that another pull of
/// the same repository holds it.
pub fn lock(base: &Path) -> Result<Busy, PullError> {
    let path = base.join("pull.lock");
    let err = |message: String| PullError::State {
        path: path.clone(),
        message,
    };
    std::fs::create_dir_all(base).map_err(|e| err(e.to_string()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(e.to_string()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map(|held| Busy { _held: held })
        .map_err(|(_, e)| {
            err(if e == nix::errno::Errno::EWOULDBLOCK {
                "another `fixer pull` of this repository is running; this one did nothing".into()
            } else {
                e.to_string()
            })
        })
}

/// What pull remembers between ticks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub url: String,
    pub branch: String,
    /// The commit the host last converged to (applied, probes passed).
    pub converged: Option<String>,
    /// The last commit tried, and how that went (`ok`, `changed`,
    /// `failed`, `unreachable`...), for `fixer pull --status`.
    pub last_commit: Option<String>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub last_at: Option<String>,
}

/// The folder of one repository and branch: a name that is the same on
/// every tick and differs between repositories.
pub fn folder(url: &str, branch: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{url}\n{branch}").as_bytes());
    let tail: String = url
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{tail}-{hex}")
}

impl State {
    pub fn load(path: &Path, url: &str, branch: &str) -> Result<State, PullError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PullError::State {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
                url: url.into(),
                branch: branch.into(),
                ..State::default()
            }),
            Err(e) => Err(PullError::State {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        }
    }

    /// Written whole (temp file, fsync, rename): a tick killed midway
    /// leaves the previous state.
    pub fn save(&self, path: &Path) -> Result<(), PullError> {
        let err = |e: std::io::Error| PullError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        let text = serde_json::to_vec_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        use std::io::Write as _;
        tmp.write_all(&text)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

/// How to reach the repository and what to trust.
#[derive(Clone, Debug, Default)]
pub struct Fetch {
    pub url: String,
    pub branch: String,
    /// known_hosts files an ssh:// repository's host key must be in.
    pub known_hosts: Vec<PathBuf>,
    /// Private keys to offer over ssh (after the agent's).
    pub identities: Vec<PathBuf>,
    /// With `--allowed-signers FILE`: every commit applied must carry an
    /// SSH signature by a key in FILE (ssh-keygen's allowed signers
    /// format), checked with `ssh-keygen -Y verify`.
    pub allowed_signers: Option<PathBuf>,
}

impl Fetch {
    /// `url`'s `branch`, trusting the known_hosts files and offering the
    /// identity files of the user whose home is `home`, as `ssh` would.
    pub fn with_user_keys(url: &str, branch: &str, home: Option<&Path>) -> Fetch {
        let ssh = home.map(|h| h.join(".ssh"));
        Fetch {
            url: url.to_string(),
            branch: branch.to_string(),
            known_hosts: ssh
                .iter()
                .map(|s| s.join("known_hosts"))
                .chain([PathBuf::from("/etc/ssh/ssh_known_hosts")])
                .collect(),
            identities: ssh
                .iter()
                .flat_map(|s| ["id_ed25519", "id_ecdsa", "id_rsa"].map(|k| s.join(k)))
                .collect(),
            allowed_signers: None,
        }
    }
}

fn fetch_error(f: &Fetch, e: impl std::fmt::Display) -> PullError {
    PullError::Fetch {
        url: f.url.clone(),
        branch: f.branch.clone(),
        message: e.to_string(),
    }
}

/// Check an ssh host key against known_hosts with libssh2's parser, the
/// same as `--host` connections are checked.
fn host_key_known(f: &Fetch, host: &str, key: &[u8]) -> bool {
    let Ok(session) = ssh2::Session::new() else {
        return false;
    };
    let Ok(mut known) = session.known_hosts() else {
        return false;
    };
    for file in f.known_hosts.iter().filter(|p| p.is_file()) {
        let _ = known.read_file(file, ssh2::KnownHostFileKind::OpenSSH);
    }
    // git2 gives the host as the URL names it, without the port.
    let port = f
        .url
        .strip_prefix("ssh://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(22);
    matches!(known.check_port(host, port, key), ssh2::CheckResult::Match)
}

/// Fetch `f.branch` of `f.url` into the clone at `dir` (made if missing)
/// and check its tree out there; the commit id.
pub fn fetch(f: &Fetch, dir: &Path) -> Result<String, PullError> {
    let repo = match git2::Repository::open(dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(dir).map_err(|e| fetch_error(f, e))?;
            git2::Repository::init(dir).map_err(|e| fetch_error(f, e))?
        }
    };
    let mut opts = git2::FetchOptions::new();
    opts.remote_callbacks(callbacks(f));
    let tracking = format!("refs/remotes/origin/{}", f.branch);
    let mut remote = repo
        .remote_anonymous(&f.url)
        .map_err(|e| fetch_error(f, e))?;
    remote
        .fetch(
            &[format!("+refs/heads/{}:{tracking}", f.branch)],
            Some(&mut opts),
            None,
        )
        .map_err(|e| fetch_error(f, transfer_message(f, &e)))?;
    let commit = repo
        .find_reference(&tracking)
        .and_then(|r| r.peel_to_commit())
        .map_err(|e| fetch_error(f, format!("no branch `{}`: {}", f.branch, e.message())))?;
    let id = commit.id().to_string();
    if let Some(signers) = &f.allowed_signers {
        verify_signature(f, &repo, commit.id(), signers)?;
    }
    repo.checkout_tree(
        commit.as_object(),
        Some(
            git2::build::CheckoutBuilder::new()
                .force()
                .remove_untracked(true),
        ),
    )
    .map_err(|e| fetch_error(f, e))?;
    repo.set_head_detached(commit.id())
        .map_err(|e| fetch_error(f, e))?;
    Ok(id)
}

/// What a failed fetch or push says, with the way out when the server's
/// host key is the reason.
pub fn transfer_message(f: &Fetch, e: &git2::Error) -> String {
    if e.code() == git2::ErrorCode::Certificate || e.message().contains("hostkey") {
        format!(
            "{}: the server's host key is not in known_hosts ({}); add it with a first `ssh` to the server or ssh-keyscan",
            e.message(),
            f.known_hosts
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        e.message().to_string()
    }
}

/// Credentials (the agent, then the identity files) and the host key
/// check (known_hosts) for a transfer with `f`'s repository.
pub fn callbacks(f: &Fetch) -> git2::RemoteCallbacks<'static> {
    let mut callbacks = git2::RemoteCallbacks::new();
    let mut tried_agent = false;
    let mut keys = f.identities.clone().into_iter().filter(|p| p.is_file());
    callbacks.credentials(move |_url, user, allowed| {
        let user = user.unwrap_or("git");
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            if !tried_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
                tried_agent = true;
                return git2::Cred::ssh_key_from_agent(user);
            }
            if let Some(key) = keys.next() {
                return git2::Cred::ssh_key(user, None, &key, None);
            }
        }
        Err(git2::Error::from_str("no credential left to try"))
    });
    let known = f.clone();
    callbacks.certificate_check(move |cert, host| {
        match cert.as_hostkey().and_then(|k| k.hostkey()) {
            Some(key) if host_key_known(&known, host, key) => {
                Ok(git2::CertificateCheckStatus::CertificateOk)
            }
            Some(_) => Err(git2::Error::from_str(&format!(
                "the host key of {host} is not in known_hosts ({}): add it with ssh-keyscan or a first `ssh {host}`",
                known
                    .known_hosts
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            // TLS: libgit2 has verified the certificate chain already.
            None => Ok(git2::CertificateCheckStatus::CertificatePassthrough),
        }
    });
    callbacks
}

/// `ssh-keygen -Y verify` of the commit's SSH signature against the
/// allowed signers, with the committer's email as the principal.
fn verify_signature(
    f: &Fetch,
    repo: &git2::Repository,
    id: git2::Oid,
    signers: &Path,
) -> Result<(), PullError> {
    let unsigned = |message: String| PullError::Unsigned {
        url: f.url.clone(),
        commit: id.to_string(),
        message,
    };
    let (signature, data) = repo
        .extract_signature(&id, None)
        .map_err(|e| unsigned(e.message().to_string()))?;
    let principal = repo
        .find_commit(id)
        .ok()
        .and_then(|c| c.committer().email().ok().map(str::to_string))
        .ok_or_else(|| unsigned("the commit names no committer email".into()))?;
    let dir = tempfile::tempdir().map_err(|e| unsigned(e.to_string()))?;
    let sig = dir.path().join("commit.sig");
    std::fs::write(&sig, &*signature).map_err(|e| unsigned(e.to_string()))?;
    let mut child = std::process::Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "git", "-f"])
        .arg(signers)
        .arg("-I")
        .arg(&principal)
        .arg("-s")
        .arg(&sig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| unsigned(format!("cannot run ssh-keygen: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(&data)
            .map_err(|e| unsigned(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| unsigned(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(unsigned(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The playbooks of a checkout: the `*.toml` files of its `playbooks/`
/// folder if it has one, else of its top folder, in name order.
pub fn playbooks(checkout: &Path) -> Vec<PathBuf> {
    let dir = if checkout.join("playbooks").is_dir() {
        checkout.join("playbooks")
    } else {
        checkout.to_path_buf()
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    found.sort();
    found
}

/// A value as systemd reads it in `ExecStart=`: double-quoted, with `%`
/// and `$` doubled so neither specifiers nor variables are expanded.
fn systemd_quote(arg: &str) -> String {
    let mut q = String::from("\"");
    for c in arg.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '%' => q.push_str("%%"),
            '$' => q.push_str("$$"),
            _ => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The systemd service and timer that run `argv` (the fixer binary and
/// its `pull` arguments) every `every`, each host at its own random delay.
pub fn units(
    argv: &[String],
    url: &str,
    branch: &str,
    every: &str,
    delay: &str,
) -> Result<(String, String), String> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    // Values a unit file would misread: a newline ends the setting.
    for v in [url, branch, every, delay]
        .into_iter()
        .chain(argv.iter().map(String::as_str))
    {
        if v.contains(['\n', '\r']) {
            return Err(format!(
                "`{}`: a systemd unit value cannot hold a newline",
                v.escape_debug()
            ));
        }
    }
    let data = serde_json::json!({
        "repo": url.replace('%', "%%"),
        "branch": branch.replace('%', "%%"),
        "every": every,
        "delay": delay,
        "exec": argv.iter().map(|a| systemd_quote(a)).collect::<Vec<_>>().join(" "),
    });
    let render = |t: &str| hb.render_template(t, &data).map_err(|e| e.to_string());
    Ok((
        render(include_str!("../templates/systemd/fixer-pull.service.hbs"))?,
        render(include_str!("../templates/systemd/fixer-pull.timer.hbs"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_differ_by_url_and_branch_and_stay_put() {
        let a = folder("ssh://git@git.corp.example/ops/fixes.git", "main");
        assert!(a.starts_with("fixes-"), "{a}");
        assert_eq!(
            a,
            folder("ssh://git@git.corp.example/ops/fixes.git", "main")
        );
        assert_ne!(
            a,
            folder("ssh://git@git.corp.example/ops/fixes.git", "next")
        );
        assert_ne!(a, folder("ssh://git@other.example/ops/fixes.git", "main"));
        assert!(folder("/", "main").starts_with("repo-"));
    }

    #[test]
    fn unit_values_are_quoted_for_systemd_and_newlines_refused() -> Result<(), String> {
        let argv = ["/usr/bin/fixer", "pull", "a \"b\" 50%$X\\"].map(String::from);
        let (service, _) = units(&argv, "r", "main", "15min", "5min")?;
        assert!(
            service.contains("ExecStart=\"/usr/bin/fixer\" \"pull\" \"a \\\"b\\\" 50%%$$X\\\\\""),
            "{service}"
        );
        let bad = ["x\nExecStartPre=/bin/evil".to_string()];
        assert!(units(&bad, "r", "main", "15min", "5min").is_err());
        Ok(())
    }
}

//! Naming remote hosts the way OpenSSH users do: `[user@]host[:port]`, with
//! aliases and defaults from `~/.ssh/config` (ssh2/libssh2 read no config).
//!
//! Supported keywords: Host, HostName, User, Port, IdentityFile,
//! UserKnownHostsFile, GlobalKnownHostsFile, StrictHostKeyChecking,
//! ConnectTimeout and ProxyJump (refused with a clear error: not supported
//! yet). `Match` blocks are skipped; other keywords are ignored, as they
//! change nothing fixer does. As in OpenSSH, the first value obtained for a
//! keyword wins, except IdentityFile, which accumulates.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to do with a host key missing from known_hosts, or a changed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse unknown and changed keys (OpenSSH `yes`; also its default
    /// `ask`, since fixer never prompts).
    Strict,
    /// Record unknown keys, refuse changed ones (`accept-new`).
    AcceptNew,
    /// Check nothing (`StrictHostKeyChecking no` in the user's config).
    Off,
}

/// `[user@]host[:port]` as typed on the command line or in an inventory;
/// an IPv6 address with a port is written `[addr]:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Destination {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (user, rest) = match spec.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("`{spec}`: empty user name before `@`")),
            None => (None, spec),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("`{spec}`: `[` without `]`"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("`{spec}`: unexpected `{after}` after `]`")),
            };
            (addr.to_string(), port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address: no port.
            (rest.to_string(), None)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{spec}`: no host name"));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("`{spec}`: `{p}` is not a port number"))
            })
            .transpose()?;
        Ok(Destination { user, host, port })
    }
}

/// Everything needed to open one SSH connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The name the user gave (an alias, an address), for messages.
    pub name: String,
    /// What to connect to, after `HostName`.
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    pub known_hosts: Vec<PathBuf>,
    pub policy: HostKeyPolicy,
    pub connect_timeout: Duration,
}

/// The `Host` blocks of one config file, in order.
#[derive(Clone, Debug, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
    /// Where the config came from, for messages.
    path: Option<PathBuf>,
}

#[derive(Clone, Debug)]
struct Block {
    /// `None` for options before the first `Host` line (apply to all), and
    /// for `Match` blocks, which never apply.
    patterns: Option<Vec<String>>,
    is_match: bool,
    options: Vec<(String, String, usize)>,
}

fn glob_match(pattern: &str, text: &str) -> bool {
    fn rec(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], t) || (!t.is_empty() && rec(p, &t[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => rec(&p[1..], &t[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), text.as_bytes())
}

impl Block {
    fn applies_to(&self, host: &str) -> bool {
        if self.is_match {
            return false;
        }
        let Some(patterns) = &self.patterns else {
            return true;
        };
        let mut matched = false;
        for p in patterns {
            for alt in p.split(',') {
                if let Some(neg) = alt.strip_prefix('!') {
                    if glob_match(neg, host) {
                        return false;
                    }
                } else if glob_match(alt, host) {
                    matched = true;
                }
            }
        }
        matched
    }
}

impl SshConfig {
    /// `~/.ssh/config` of the controlling user; empty when there is none.
    pub fn load_default(home: &Path) -> Result<Self, String> {
        let path = home.join(".ssh").join("config");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, Some(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn parse(text: &str, path: Option<PathBuf>) -> Result<Self, String> {
        let mut blocks = vec![Block {
            patterns: None,
            is_match: false,
            options: Vec::new(),
        }];
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once(|c: char| c == '=' || c.is_whitespace()) {
                Some((k, v)) => (k.trim(), v.trim().trim_start_matches('=').trim()),
                None => (line, ""),
            };
            let value = value.trim_matches('"').to_string();
            let key = key.to_ascii_lowercase();
            match key.as_str() {
                "host" => blocks.push(Block {
                    patterns: Some(value.split_whitespace().map(str::to_string).collect()),
                    is_match: false,
                    options: Vec::new(),
                }),
                "match" => blocks.push(Block {
                    patterns: None,
                    is_match: true,
                    options: Vec::new(),
                }),
                _ => {
                    if let Some(b) = blocks.last_mut() {
                        b.options.push((key, value, i + 1));
                    }
                }
            }
        }
        Ok(SshConfig { blocks, path })
    }

    fn where_(&self, line: usize) -> String {
        match &self.path {
            Some(p) => format!("{}:{line}", p.display()),
            None => format!("ssh config line {line}"),
        }
    }

    /// Resolve `dest` into a connection target. `home` expands `~`;
    /// `local_user` is the default remote user, as for ssh.
    pub fn resolve(
        &self,
        dest: &Destination,
        home: &Path,
        local_user: &str,
    ) -> Result<Target, String> {
        let mut first: std::collections::HashMap<String, (String, usize)> = Default::default();
        let mut identity = Vec::new();
        for b in self.blocks.iter().filter(|b| b.applies_to(&dest.host)) {
            for (k, v, line) in &b.options {
                if k == "identityfile" {
                    identity.push((v.clone(), *line));
                } else {
                    first.entry(k.clone()).or_insert((v.clone(), *line));
                }
            }
        }
        if let Some((v, line)) = first.get("proxyjump") {
            if !v.eq_ignore_ascii_case("none") {
                return Err(format!(
                    "{}: ProxyJump {v} for `{}`: fixer does not support jump hosts yet; \
                     reach the host directly or run fixer on the jump host",
                    self.where_(*line),
                    dest.host
                ));
            }
        }
        let user = dest
            .user
            .clone()
            .or_else(|| first.get("user").map(|(v, _)| v.clone()))
            .unwrap_or_else(|| local_user.to_string());
        let hostname = first
            .get("hostname")
            .map(|(v, _)| v.replace("%h", &dest.host).replace("%%", "%"))
            .unwrap_or_else(|| dest.host.clone());
        let port = match (dest.port, first.get("port")) {
            (Some(p), _) => p,
            (None, Some((v, line))) => v
                .parse::<u16>()
                .map_err(|_| format!("{}: Port `{v}` is not a port number", self.where_(*line)))?,
            (None, None) => 22,
        };
        let expand = |v: &str| -> PathBuf {
            let v = v
                .replace("%d", &home.to_string_lossy())
                .replace("%u", local_user)
                .replace("%r", &user)
                .replace("%h", &hostname)
                .replace("%%", "%");
            match v.strip_prefix("~/") {
                Some(rest) => home.join(rest),
                None if v == "~" => home.to_path_buf(),
                None => PathBuf::from(v),
            }
        };
        let identity_files = if identity.is_empty() {
            ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .map(|n| home.join(".ssh").join(n))
                .collect()
        } else {
            identity.iter().map(|(v, _)| expand(v)).collect()
        };
        let mut known_hosts: Vec<PathBuf> = match first.get("userknownhostsfile") {
            Some((v, _)) => v.split_whitespace().map(expand).collect(),
            None => vec![
                home.join(".ssh/known_hosts"),
                home.join(".ssh/known_hosts2"),
            ],
        };
        match first.get("globalknownhostsfile") {
            Some((v, _)) => known_hosts.extend(v.split_whitespace().map(expand)),
            None => known_hosts.push(PathBuf::from("/etc/ssh/ssh_known_hosts")),
        }
        let policy = match first.get("stricthostkeychecking") {
            None => HostKeyPolicy::Strict,
            Some((v, line)) => match v.to_ascii_lowercase().as_str() {
                "yes" | "ask" => HostKeyPolicy::Strict,
                "accept-new" => HostKeyPolicy::AcceptNew,
                "no" | "off" => HostKeyPolicy::Off,
                _ => {
                    return Err(format!(
                        "{}: StrictHostKeyChecking `{v}`: expected yes, ask, accept-new or no",
                        self.where_(*line)
                    ))
                }
            },
        };
        let connect_timeout = match first.get("connecttimeout") {
            None => Duration::from_secs(10),
            Some((v, line)) => Duration::from_secs(v.parse().map_err(|_| {
                format!(
                    "{}: ConnectTimeout `{v}` is not a number",
                    self.where_(*line)
                )
            })?),
        };
        Ok(Target {
            name: dest.host.clone(),
            hostname,
            port,
            user,
            identity_files,
            known_hosts,
            policy,
            connect_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let d = |s| Destination::parse(s);
        assert_eq!(
            d("root@web1:2222"),
            Ok(Destination {
                user: Some("root".into()),
                host: "web1".into(),
                port: Some(2222)
            })
        );
        assert_eq!(d("web1").map(|d| (d.user, d.port)), Ok((None, None)));
        assert_eq!(d("[::1]:22").map(|d| d.host), Ok("::1".into()));
        assert_eq!(d("fe80::1").map(|d| d.port), Ok(None));
        assert!(d("web1:http").is_err());
        assert!(d("web1:0").is_err());
        assert!(d("@web1").is_err());
        assert!(d("").is_err());
    }

    const CONFIG: &str = "
# defaults for everything below come last in OpenSSH order
Host web-*  !web-old
    HostName %h.corp.example
    User deploy
    IdentityFile ~/.ssh/deploy_key
Host db
    HostName=10.0.0.7
    Port 2200
    StrictHostKeyChecking accept-new
    UserKnownHostsFile /dev/null
Match host db
    User nobody
Host jump-*
    ProxyJump bastion
Host *
    User fallback
    Port 22
    IdentityFile ~/.ssh/id_ed25519
";

    #[test]
    fn first_value_wins_and_identity_files_accumulate() -> Result<(), String> {
        let c = SshConfig::parse(CONFIG, None)?;
        let home = Path::new("/home/me");
        let t = c.resolve(&Destination::parse("web-1")?, home, "me")?;
        assert_eq!(t.hostname, "web-1.corp.example");
        assert_eq!(t.user, "deploy");
        assert_eq!(t.port, 22);
        assert_eq!(
            t.identity_files,
            vec![
                PathBuf::from("/home/me/.ssh/deploy_key"),
                PathBuf::from("/home/me/.ssh/id_ed25519")
            ]
        );
        assert_eq!(t.policy, HostKeyPolicy::Strict);

        let old = c.resolve(&Destination::parse("web-old")?, home, "me")?;
        assert_eq!(
            (old.hostname.as_str(), old.user.as_str()),
            ("web-old", "fallback")
        );

        let db = c.resolve(&Destination::parse("admin@db")?, home, "me")?;
        assert_eq!(
            (db.hostname.as_str(), db.port, db.user.as_str()),
            ("10.0.0.7", 2200, "admin")
        );
        assert_eq!(db.policy, HostKeyPolicy::AcceptNew);
        assert_eq!(db.known_hosts[0], PathBuf::from("/dev/null"));

        // The command line's port beats the config's.
        let db2 = c.resolve(&Destination::parse("db:2300")?, home, "me")?;
        assert_eq!((db2.port, db2.user.as_str()), (2300, "fallback"));
        Ok(())
    }

    #[test]
    fn proxy_jump_is_refused_with_its_line() -> Result<(), String> {
        let c = SshConfig::parse(CONFIG, Some(PathBuf::from("/home/me/.ssh/config")))?;
        let err = c
            .resolve(&Destination::parse("jump-a")?, Path::new("/h"), "me")
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("/home/me/.ssh/config:15: ProxyJump bastion"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn no_config_means_ssh_defaults() -> Result<(), String> {
        let t = SshConfig::default().resolve(&Destination::parse("h")?, Path::new("/h"), "me")?;
        assert_eq!((t.user.as_str(), t.port), ("me", 22));
        assert_eq!(t.identity_files.len(), 3);
        assert_eq!(t.known_hosts[0], PathBuf::from("/h/.ssh/known_hosts"));
        Ok(())
    }
}

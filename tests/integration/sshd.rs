//! Real OpenSSH test hosts: each an `sshd` of the test's own on a loopback
//! port, with its own host key, inside its own mount namespace where
//! /root, /srv, /var/lib and /etc/netplan are per-host directories. A
//! playbook applied "remotely" therefore never touches this machine's own
//! /root, /var/lib or /etc. Stopped by PID when dropped.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fail clearly when a tool the test hosts need is missing (CI installs
/// them through tests/deps.sh; nothing is ever skipped).
fn tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{name}` is not installed: run tests/deps.sh test, which installs every tool the tests use"
    );
}

/// Directories bind-mounted over the host's view of these target paths.
const VIEWS: &[(&str, &str)] = &[
    ("/root", "root"),
    ("/srv", "srv"),
    ("/var/lib", "var-lib"),
    ("/etc/netplan", "etc-netplan"),
];

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "fixer-test", "-f"])
        .arg(path));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The controlling user's side: a HOME with `.ssh/id_ed25519`,
/// `.ssh/known_hosts` and `.ssh/config`, used as fixer's `$HOME`.
pub struct Client {
    pub home: tempfile::TempDir,
}

impl Client {
    pub fn new() -> Self {
        tool("ssh-keygen");
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let ssh = home.path().join(".ssh");
        std::fs::create_dir(&ssh).unwrap_or_else(|e| panic!("{e}"));
        keygen(&ssh.join("id_ed25519"));
        Client { home }
    }

    pub fn ssh_dir(&self) -> PathBuf {
        self.home.path().join(".ssh")
    }

    pub fn public_key(&self) -> String {
        std::fs::read_to_string(self.ssh_dir().join("id_ed25519.pub"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Trust `host`'s key, as `ssh-keyscan >> known_hosts` would.
    pub fn trust(&self, host: &TestHost) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.ssh_dir().join("known_hosts"))
            .unwrap_or_else(|e| panic!("{e}"));
        writeln!(f, "{}", host.known_hosts_line()).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.ssh_dir().join("config"), text).unwrap_or_else(|e| panic!("{e}"));
    }

    /// `fixer ARGS` as this user: its HOME, no agent, no colour.
    pub fn fixer(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("fixer").unwrap_or_else(|e| panic!("{e}"));
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("USER", "root")
            .env_remove("SSH_AUTH_SOCK")
            .env("NO_COLOR", "1")
            .current_dir(self.home.path());
        cmd
    }
}

pub struct TestHost {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    /// Everything sshd printed, for failure messages.
    pub log: Arc<Mutex<String>>,
}

impl TestHost {
    /// Start a host that accepts `client`'s key for root.
    pub fn start(client: &Client) -> Self {
        Self::start_with_users(client, &[])
    }

    /// Also give the host unprivileged users (`name`, may sudo without a
    /// password), homes under /srv/home, through its own copies of
    /// /etc/passwd, group, shadow and sudoers bound over the real ones.
    pub fn start_with_users(client: &Client, users: &[(&str, bool)]) -> Self {
        tool("unshare");
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is missing: install openssh-server (tests/run-all.sh does)"
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let d = dir.path();
        for (_, name) in VIEWS {
            std::fs::create_dir(d.join(name)).unwrap_or_else(|e| panic!("{e}"));
        }
        keygen(&d.join("host_key"));
        if !users.is_empty() {
            tool("sudo");
            let read = |p: &str| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            let (mut passwd, mut group, mut shadow) =
                (read("/etc/passwd"), read("/etc/group"), read("/etc/shadow"));
            let mut sudoers = String::from("Defaults !requiretty\nroot ALL=(ALL:ALL) ALL\n");
            for (i, (name, sudo)) in users.iter().enumerate() {
                let id = 2001 + i as u32;
                passwd.push_str(&format!("{name}:x:{id}:{id}::/srv/home/{name}:/bin/sh\n"));
                group.push_str(&format!("{name}:x:{id}:\n"));
                shadow.push_str(&format!("{name}:*:19000:0:99999:7:::\n"));
                if *sudo {
                    sudoers.push_str(&format!("{name} ALL=(ALL) NOPASSWD: ALL\n"));
                }
                let home = d.join("srv/home").join(name);
                std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
                std::os::unix::fs::chown(&home, Some(id), Some(id))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            for (f, text, mode) in [
                ("passwd", passwd, 0o644),
                ("group", group, 0o644),
                ("shadow", shadow, 0o640),
                ("sudoers", sudoers, 0o440),
            ] {
                let p = d.join("etc").join(f);
                std::fs::create_dir_all(d.join("etc")).unwrap_or_else(|e| panic!("{e}"));
                std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        std::fs::write(d.join("authorized_keys"), client.public_key())
            .unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        let config = format!(
            "ListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all("/run/sshd").unwrap_or_else(|e| panic!("/run/sshd: {e}"));
        // Each view is bound over the real path inside a private mount
        // namespace; /etc/netplan only where netplan is installed.
        let script = r#"set -e
d=$1; port=$2
mount --bind "$d/root" /root
mount --bind "$d/srv" /srv
mount --bind "$d/var-lib" /var/lib
if [ -d /etc/netplan ]; then mount --bind "$d/etc-netplan" /etc/netplan; fi
if [ -d "$d/etc" ]; then
  for f in passwd group shadow sudoers; do mount --bind "$d/etc/$f" "/etc/$f"; done
fi
exec /usr/sbin/sshd -D -e -f "$d/sshd_config" -p "$port""#;
        let mut child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(d)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sshd: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take();
        let sink = log.clone();
        std::thread::spawn(move || {
            let Some(stderr) = stderr else { return };
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server listening") {
                    let _ = tx.send(());
                }
                if let Ok(mut l) = sink.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        let host = TestHost {
            dir,
            port,
            child,
            log,
        };
        let started = Instant::now();
        if rx.recv_timeout(Duration::from_secs(15)).is_err() {
            panic!(
                "sshd did not start within {:?}: {}",
                started.elapsed(),
                host.log.lock().map(|l| l.clone()).unwrap_or_default()
            );
        }
        host
    }

    /// `root@127.0.0.1:PORT`
    pub fn spec(&self) -> String {
        format!("root@127.0.0.1:{}", self.port)
    }

    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.dir.path().join("host_key.pub"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut words = public.split_whitespace();
        let (kind, key) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        format!("[127.0.0.1]:{} {kind} {key}", self.port)
    }

    /// Where target path `path` of this host lives on this machine.
    pub fn fs(&self, path: &str) -> PathBuf {
        for (target, name) in VIEWS {
            if let Some(rest) = path.strip_prefix(target) {
                return self
                    .dir
                    .path()
                    .join(name)
                    .join(rest.trim_start_matches('/'));
            }
        }
        panic!("{path} is not inside a per-host view ({VIEWS:?})")
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // Ours by PID: the sshd we started (unshare and sh exec into it).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay between fixer and a test host's sshd, which a test can cut
/// (a VM whose network just went away) and which counts round trips: a
/// round trip is a client-to-server burst answered by the server.
pub struct Relay {
    pub port: u16,
    conns: Arc<Mutex<Vec<std::net::TcpStream>>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
    turns: Arc<std::sync::atomic::AtomicUsize>,
    down: Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    pub fn start(to: u16) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("relay bind: {e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let cut = Arc::new(AtomicBool::new(false));
        let turns = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicUsize::new(0));
        let (c2, cut2, turns2, down2) = (conns.clone(), cut.clone(), turns.clone(), down.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if cut2.load(Ordering::SeqCst) {
                    continue; // dropped: the host is gone
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                // Forward each read at once, as a wire would: with Nagle
                // the relay itself would add delayed-ACK stalls.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                // Which side spoke last: a server reply after client data
                // completes one round trip.
                let last_from_client = Arc::new(AtomicBool::new(false));
                if let Ok(mut list) = c2.lock() {
                    for s in [&client, &server] {
                        if let Ok(c) = s.try_clone() {
                            list.push(c);
                        }
                    }
                }
                for (from, to, upstream) in [(&client, &server, true), (&server, &client, false)] {
                    let (Ok(mut r), Ok(mut w)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let (last, turns, down) =
                        (last_from_client.clone(), turns2.clone(), down2.clone());
                    std::thread::spawn(move || {
                        use std::io::{Read as _, Write as _};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match r.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if upstream {
                                last.store(true, Ordering::SeqCst);
                            } else {
                                down.fetch_add(n, Ordering::SeqCst);
                                if last.swap(false, Ordering::SeqCst) {
                                    turns.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            if w.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = w.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Relay {
            port,
            conns,
            cut,
            turns,
            down,
        }
    }

    /// Refuse new connections; those open go on (a route that went away
    /// for new flows only, as after a netplan change).
    pub fn refuse_new(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drop every connection now and refuse new ones.
    pub fn cut(&self) {
        self.refuse_new();
        if let Ok(list) = self.conns.lock() {
            for s in list.iter() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    pub fn round_trips(&self) -> usize {
        self.turns.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Bytes the host sent through the relay so far.
    pub fn bytes_from_host(&self) -> usize {
        self.down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The known_hosts line for `host` as reached through this relay.
    pub fn known_hosts_line(&self, host: &TestHost) -> String {
        host.known_hosts_line().replacen(
            &format!("]:{}", host.port),
            &format!("]:{}", self.port),
            1,
        )
    }
}

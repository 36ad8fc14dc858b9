//! Benchmark: one 50-resource playbook on 10 sshd test hosts at once, fixer
//! against `ansible-playbook` (ansible-core from PyPI, in a venv this bench
//! makes under target/) on the equivalent playbook and the same hosts.
//!
//! Each host is a real OpenSSH sshd of our own in its own mount namespace
//! (tests/integration/sshd.rs), reached through a counting TCP relay, so the
//! round trips each tool makes per host are counted on the wire, not
//! estimated. Runs alternate between the tools; medians over the rounds.
//!
//! `cargo bench --bench fleet`; `FIXER_BENCH_WRITE_DOCS=1` also rewrites
//! docs/benchmarks-ssh.md. Needs root (mount namespaces), openssh-server,
//! python3 with venv, and PyPI.

#[allow(dead_code)]
#[path = "../tests/integration/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sshd::{Client, Relay, TestHost};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const HOSTS: usize = 10;
const RESOURCES: usize = 50;
const ROUNDS: usize = 3;

fn fixer_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Always rebuild: a stale binary would measure old code.
    if !Command::new(cargo)
        .args(["build", "--release", "--bin", "fixer"])
        .status()?
        .success()
    {
        return Err("cargo build --release failed".into());
    }
    Ok(release.join("fixer"))
}

fn content(i: usize) -> String {
    format!("value {i}\n")
}

fn fixer_playbook() -> String {
    let mut pb = String::from("[playbook]\nname = \"fleet-bench\"\n");
    for i in 0..RESOURCES {
        pb.push_str(&format!(
            "\n[[resource]]\ntype = \"file\"\npath = \"/srv/many/f{i:03}.conf\"\ncontent = {:?}\nmode = \"0644\"\n",
            content(i)
        ));
    }
    pb
}

fn ansible_playbook() -> String {
    let mut pb = String::from("- hosts: all\n  gather_facts: false\n  tasks:\n");
    for i in 0..RESOURCES {
        pb.push_str(&format!(
            "    - ansible.builtin.copy:\n        dest: /srv/many/f{i:03}.conf\n        content: {:?}\n        mode: \"0644\"\n",
            content(i)
        ));
    }
    pb
}

/// A venv with ansible-core, made once.
fn ansible(target: &Path) -> Result<PathBuf> {
    let venv = target.join("bench-venv");
    let bin = venv.join("bin/ansible-playbook");
    if !bin.exists() {
        let py = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        if !Command::new(py)
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()?
            .success()
        {
            return Err("python3 -m venv failed".into());
        }
        if !Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "ansible-core"])
            .status()?
            .success()
        {
            return Err("pip install ansible-core failed".into());
        }
    }
    Ok(bin)
}

fn reset(hosts: &[TestHost]) -> Result<()> {
    for h in hosts {
        let _ = std::fs::remove_dir_all(h.fs("/srv/many"));
        let _ = std::fs::remove_dir_all(h.fs("/var/lib/fixer"));
        std::fs::create_dir_all(h.fs("/srv/many"))?;
    }
    Ok(())
}

struct Sample {
    secs: f64,
    round_trips: f64,
}

fn timed(cmd: &mut Command, relays: &[Relay]) -> Result<Sample> {
    let before: usize = relays.iter().map(Relay::round_trips).sum();
    let started = Instant::now();
    let out = cmd.output()?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    // The relay threads count the last replies a moment after the exit.
    std::thread::sleep(Duration::from_millis(200));
    let after: usize = relays.iter().map(Relay::round_trips).sum();
    Ok(Sample {
        secs,
        round_trips: (after - before) as f64 / relays.len() as f64,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let fixer = fixer_binary()?;
    let target = fixer
        .parent()
        .and_then(Path::parent)
        .ok_or("no target dir")?
        .to_path_buf();
    let ansible_bin = ansible(&target)?;
    let ansible_version = Command::new(&ansible_bin).arg("--version").output()?;
    let ansible_version = String::from_utf8_lossy(&ansible_version.stdout)
        .lines()
        .next()
        .unwrap_or("ansible")
        .to_string();

    let client = Client::new();
    let hosts: Vec<TestHost> = (0..HOSTS).map(|_| TestHost::start(&client)).collect();
    let relays: Vec<Relay> = hosts.iter().map(|h| Relay::start(h.port)).collect();
    let home = client.home.path();
    let known = hosts
        .iter()
        .zip(&relays)
        .map(|(h, r)| r.known_hosts_line(h))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(home.join(".ssh/known_hosts"), format!("{known}\n"))?;

    let fixer_pb = home.join("fleet.toml");
    std::fs::write(&fixer_pb, fixer_playbook())?;
    let ansible_pb = home.join("fleet.yml");
    std::fs::write(&ansible_pb, ansible_playbook())?;
    let mut inventory = String::from("[all]\n");
    for (i, r) in relays.iter().enumerate() {
        inventory.push_str(&format!(
            "h{i} ansible_host=127.0.0.1 ansible_port={} ansible_user=root\n",
            r.port
        ));
    }
    std::fs::write(home.join("hosts.ini"), inventory)?;
    std::fs::write(
        home.join("ansible.cfg"),
        format!(
            "[defaults]\nforks = {HOSTS}\ninterpreter_python = /usr/bin/python3\n\
             host_key_checking = True\nprivate_key_file = {key}\n\
             [ssh_connection]\npipelining = True\n\
             ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o IdentitiesOnly=yes \
             -o UserKnownHostsFile={kh}\n",
            key = home.join(".ssh/id_ed25519").display(),
            kh = home.join(".ssh/known_hosts").display()
        ),
    )?;

    let fixer_cmd = |verb: &str| {
        let mut c = Command::new(&fixer);
        c.arg(verb)
            .arg(&fixer_pb)
            .args(["--forks", &HOSTS.to_string()]);
        for r in &relays {
            c.arg("--host").arg(format!("root@127.0.0.1:{}", r.port));
        }
        c.env("HOME", home)
            .env("USER", "root")
            .env_remove("SSH_AUTH_SOCK")
            .env("NO_COLOR", "1");
        c
    };
    let ansible_cmd = |check: bool| {
        let mut c = Command::new(&ansible_bin);
        c.arg("-i").arg(home.join("hosts.ini")).arg(&ansible_pb);
        if check {
            c.args(["--check", "--diff"]);
        }
        c.env("HOME", home)
            .env("ANSIBLE_CONFIG", home.join("ansible.cfg"))
            .env_remove("SSH_AUTH_SOCK")
            .current_dir(home);
        c
    };

    // (operation, fixer samples, ansible samples)
    let ops = [
        "plan / --check (empty hosts)",
        "apply (first)",
        "apply (no change)",
    ];
    let mut fixer_s: Vec<Vec<Sample>> = ops.iter().map(|_| Vec::new()).collect();
    let mut ansible_s: Vec<Vec<Sample>> = ops.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        eprintln!("round {}/{ROUNDS}", round + 1);
        reset(&hosts)?;
        fixer_s[0].push(timed(&mut fixer_cmd("plan"), &relays)?);
        fixer_s[1].push(timed(&mut fixer_cmd("apply"), &relays)?);
        fixer_s[2].push(timed(&mut fixer_cmd("apply"), &relays)?);
        reset(&hosts)?;
        ansible_s[0].push(timed(&mut ansible_cmd(true), &relays)?);
        ansible_s[1].push(timed(&mut ansible_cmd(false), &relays)?);
        ansible_s[2].push(timed(&mut ansible_cmd(false), &relays)?);
    }
    for h in &hosts {
        let got = std::fs::read_to_string(h.fs("/srv/many/f049.conf"))?;
        if got != content(49) {
            return Err("a host does not hold the playbook's content".into());
        }
    }

    let mut table = String::from(
        "| operation | fixer s | ansible s | fixer/ansible | fixer round trips per host | ansible round trips per host |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for (i, op) in ops.iter().enumerate() {
        let f = median(fixer_s[i].iter().map(|s| s.secs).collect());
        let a = median(ansible_s[i].iter().map(|s| s.secs).collect());
        let frt = median(fixer_s[i].iter().map(|s| s.round_trips).collect());
        let art = median(ansible_s[i].iter().map(|s| s.round_trips).collect());
        table.push_str(&format!(
            "| {op} | {f:.2} | {a:.2} | {:.2}x | {frt:.0} | {art:.0} |\n",
            f / a
        ));
    }
    println!("{table}");
    if std::env::var_os("FIXER_BENCH_WRITE_DOCS").is_some() {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let text = format!(
            "# Benchmark: SSH fan-out\n\n\
             One playbook of {RESOURCES} `file` resources (content and mode) applied to \
             {HOSTS} sshd test hosts at once (`--forks {HOSTS}`), against \
             `ansible-playbook` ({ansible_version}, from PyPI, with pipelining, \
             ControlPersist and no fact gathering: its fastest setup) on the \
             equivalent playbook of `ansible.builtin.copy` tasks and the same hosts. \
             Each host is a real OpenSSH sshd on loopback in its own mount namespace, \
             reached through a TCP relay that counts round trips (a client burst \
             answered by the server). Wall time of the whole command; medians of \
             {ROUNDS} rounds, the tools alternating; hosts emptied before each tool's \
             first run. fixer's apply also journals every change on the host and \
             arms the self-restore watchdog.\n\n\
             Reproduce: `FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench fleet` \
             (as root; this table: {cores} cores, loopback, so latency is ~0 and \
             round trips, not time, are what a real network multiplies).\n\n{table}"
        );
        std::fs::write(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks-ssh.md"),
            text,
        )?;
    }
    Ok(())
}

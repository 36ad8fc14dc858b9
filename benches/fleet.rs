//! Benchmark: one 50-resource playbook on 10 sshd test hosts at once, fixer
//! against `ansible-playbook` (ansible-core) and `pyinfra`, both from PyPI in
//! a venv this bench makes under target/, on the equivalent playbook and
//! deploy and the same hosts.
//!
//! Each host is a real OpenSSH sshd of our own in its own mount namespace
//! (tests/integration/sshd.rs), reached through a counting TCP relay, so the
//! round trips each tool makes per host are counted on the wire, not
//! estimated. Runs alternate between the tools; medians over the rounds.
//!
//! `cargo bench --bench fleet`; `FIXER_BENCH_WRITE_DOCS=1` also writes
//! docs/benchmarks-ssh.md (and reassembles docs/benchmarks.md). Needs root
//! (mount namespaces), openssh-server, python3 with venv, and PyPI.

#[allow(dead_code)]
#[path = "../tests/integration/sshd.rs"]
mod sshd;

use std::process::Command;
use std::time::{Duration, Instant};

use sshd::{Client, Relay, TestHost};

mod common;
use common::{median, Result};

const HOSTS: usize = 10;
const RESOURCES: usize = 50;

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

fn pyinfra_deploy() -> String {
    let mut d = String::from("from io import StringIO\nfrom pyinfra.operations import files\n");
    for i in 0..RESOURCES {
        d.push_str(&format!(
            "files.put(src=StringIO({:?}), dest=\"/srv/many/f{i:03}.conf\", mode=\"644\")\n",
            content(i)
        ));
    }
    d
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

fn main() -> Result<()> {
    let tc = common::Toolchain::new()?;
    let (fixer, ansible_bin, pyinfra_bin) = (&tc.fixer, &tc.ansible, &tc.pyinfra);
    let ansible_version = common::version(ansible_bin);
    let pyinfra_version = common::version(pyinfra_bin);

    let rounds: usize = std::env::var("FIXER_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
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
    let deploy = home.join("deploy.py");
    std::fs::write(&deploy, pyinfra_deploy())?;
    // Strict host keys, our key only, no agent: as for the others.
    let mut pyinventory = String::from("hosts = [\n");
    for (i, r) in relays.iter().enumerate() {
        pyinventory.push_str(&format!(
            "    (\"h{i}\", {{\"ssh_hostname\": \"127.0.0.1\", \"ssh_port\": {}, \"ssh_user\": \"root\", \
             \"ssh_key\": \"{key}\", \"ssh_known_hosts_file\": \"{kh}\", \
             \"ssh_strict_host_key_checking\": \"yes\", \"ssh_allow_agent\": False, \
             \"ssh_look_for_keys\": False}}),\n",
            r.port,
            key = home.join(".ssh/id_ed25519").display(),
            kh = home.join(".ssh/known_hosts").display()
        ));
    }
    pyinventory.push_str("]\n");
    let pyinventory_path = home.join("inventory.py");
    std::fs::write(&pyinventory_path, pyinventory)?;
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
        let mut c = Command::new(fixer);
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
        let mut c = Command::new(ansible_bin);
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

    let pyinfra_cmd = |dry: bool| {
        let mut c = Command::new(pyinfra_bin);
        c.args(["-y", "--parallel", &HOSTS.to_string()]);
        if dry {
            c.arg("--dry");
        }
        c.arg(&pyinventory_path)
            .arg(&deploy)
            .env("HOME", home)
            .env_remove("SSH_AUTH_SOCK")
            .current_dir(home);
        c
    };

    let ops = [
        "plan / --check / --dry (empty hosts)",
        "apply (first)",
        "apply (no change)",
    ];
    // samples[tool][operation]
    let mut samples: Vec<Vec<Vec<Sample>>> = (0..3)
        .map(|_| ops.iter().map(|_| Vec::new()).collect())
        .collect();
    let check_hosts = |tool: &str| -> Result<()> {
        for h in &hosts {
            for i in 0..RESOURCES {
                let p = h.fs(&format!("/srv/many/f{i:03}.conf"));
                let got = std::fs::read_to_string(&p)?;
                let mode =
                    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p)?.permissions());
                if got != content(i) || mode & 0o777 != 0o644 {
                    return Err(format!("{tool}: {} is wrong", p.display()).into());
                }
            }
        }
        Ok(())
    };
    // FIXER_BENCH_HOLD=FILE writes a shell script running fixer against the
    // hosts to FILE and keeps the hosts up until FILE is removed: for
    // profiling by hand (perf, strace) on the same setup; FILE.reset empties
    // the hosts.
    if let Some(hold) = std::env::var_os("FIXER_BENCH_HOLD") {
        let cmd = fixer_cmd("\"$1\"");
        let mut script = String::from("#!/bin/sh\nset -e\n");
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => script.push_str(&format!(
                    "export {}='{}'\n",
                    k.to_string_lossy(),
                    v.to_string_lossy()
                )),
                None => script.push_str(&format!("unset {}\n", k.to_string_lossy())),
            }
        }
        script.push_str("exec ${PROFILE:-} ");
        script.push_str(&cmd.get_program().to_string_lossy());
        for a in cmd.get_args() {
            script.push_str(&format!(" {}", a.to_string_lossy()));
        }
        script.push('\n');
        std::fs::write(&hold, script)?;
        // FILE.reset empties the hosts, as before each tool's first run.
        let mut reset_script = String::from("#!/bin/sh\n");
        for h in &hosts {
            let (many, state) = (h.fs("/srv/many"), h.fs("/var/lib/fixer"));
            reset_script.push_str(&format!(
                "rm -rf '{}' '{}'; mkdir -p '{}'\n",
                many.display(),
                state.display(),
                many.display()
            ));
        }
        std::fs::write(format!("{}.reset", hold.to_string_lossy()), reset_script)?;
        eprintln!(
            "hosts up; run sh {} plan|apply; remove it to stop",
            hold.to_string_lossy()
        );
        while std::path::Path::new(&hold).exists() {
            std::thread::sleep(Duration::from_millis(500));
        }
        return Ok(());
    }
    // FIXER_BENCH_ONLY_FIXER=1 times fixer alone (for profiling; no table
    // of ratios is written then).
    let only_fixer = std::env::var_os("FIXER_BENCH_ONLY_FIXER").is_some();
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        // Alternate the order, so no tool always runs first.
        let mut order = [0, 1, 2];
        order.rotate_left(round % 3);
        for tool in order {
            if only_fixer && tool != 0 {
                continue;
            }
            reset(&hosts)?;
            let run = |op: usize| -> Result<Sample> {
                match (tool, op) {
                    (0, 0) => timed(&mut fixer_cmd("plan"), &relays),
                    (0, _) => timed(&mut fixer_cmd("apply"), &relays),
                    (1, op) => timed(&mut ansible_cmd(op == 0), &relays),
                    (_, op) => timed(&mut pyinfra_cmd(op == 0), &relays),
                }
            };
            for (op, taken) in samples[tool].iter_mut().enumerate() {
                taken.push(run(op)?);
            }
            check_hosts(["fixer", "ansible", "pyinfra"][tool])?;
        }
    }

    if only_fixer {
        for (i, op) in ops.iter().enumerate() {
            let s = &samples[0][i];
            println!(
                "{op}: fixer {:.2} s, {:.0} round trips per host",
                median(s.iter().map(|s| s.secs).collect()),
                median(s.iter().map(|s| s.round_trips).collect())
            );
        }
        return Ok(());
    }
    let mut table = String::from(
        "| operation | fixer s | ansible s | pyinfra s | fixer/ansible | fixer/pyinfra | round trips per host: fixer | ansible | pyinfra |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (i, op) in ops.iter().enumerate() {
        let secs: Vec<f64> = (0..3)
            .map(|t| median(samples[t][i].iter().map(|s| s.secs).collect()))
            .collect();
        let trips: Vec<f64> = (0..3)
            .map(|t| median(samples[t][i].iter().map(|s| s.round_trips).collect()))
            .collect();
        table.push_str(&format!(
            "| {op} | {:.2} | {:.2} | {:.2} | {} | {} | {:.0} | {:.0} | {:.0} |\n",
            secs[0],
            secs[1],
            secs[2],
            common::ratio(secs[0] / secs[1]),
            common::ratio(secs[0] / secs[2]),
            trips[0],
            trips[1],
            trips[2]
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
             equivalent playbook of `ansible.builtin.copy` tasks, and `pyinfra` \
             ({pyinfra_version}, `--parallel {HOSTS}`, one `files.put` per file), on \
             the same hosts, all with strict host key checking. \
             Each host is a real OpenSSH sshd on loopback in its own mount namespace, \
             reached through a TCP relay that counts round trips (a client burst \
             answered by the server) and forwards each read at once (TCP_NODELAY, \
             as a wire would). Wall time of the whole command; medians of \
             {rounds} rounds, the tools alternating; hosts emptied before each tool's \
             first run, and every file's content and mode checked on every host after \
             each tool's apply. fixer's apply also journals every change on the host and \
             arms the self-restore watchdog.\n\n\
             Reproduce: `FIXER_BENCH_ROUNDS={rounds} FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench fleet` \
             (as root; this table: {cores} cores, loopback, so latency is ~0 and \
             round trips, not time, are what a real network multiplies).\n\n{table}"
        );
        common::write_page("benchmarks-ssh.md", &text)?;
    }
    Ok(())
}

//! Remote hosts over real OpenSSH: the `Host` contract, trust, failures and
//! fan-out, against sshd test hosts of the tests' own.

use std::path::Path;

use fixer::host::ssh_config::{Destination, SshConfig};
use fixer::host::{Host, SshHost, SshOptions};

use super::sshd::{Client, TestHost};
use super::support::TestResult;

fn connect(client: &Client, host: &TestHost) -> Result<SshHost, Box<dyn std::error::Error>> {
    let target = SshConfig::default().resolve(
        &Destination::parse(&host.spec())?,
        client.home.path(),
        "root",
    )?;
    Ok(SshHost::connect(
        &host.spec(),
        &target,
        &SshOptions::default(),
    )?)
}

#[test]
fn ssh_host_passes_the_conformance_suite() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    client.trust(&host);
    std::fs::create_dir(host.fs("/srv/conformance"))?;
    let ssh = connect(&client, &host)?;
    assert_eq!(ssh.home()?, Path::new("/root"));
    fixer::host::conformance::run(&ssh, Path::new("/srv/conformance"))?;
    // The same symlink rules as the local host: links made on the host's
    // own filesystem (its /srv is a directory of this machine).
    std::fs::create_dir(host.fs("/srv/links"))?;
    let make = |link: &Path, to: &Path, owner: Option<u32>| -> Result<bool, String> {
        let at = host.fs(&link.display().to_string());
        std::os::unix::fs::symlink(to, &at).map_err(|e| e.to_string())?;
        if let Some(uid) = owner {
            std::os::unix::fs::lchown(&at, Some(uid), None).map_err(|e| e.to_string())?;
        }
        Ok(true)
    };
    assert!(fixer::host::conformance::symlinks(
        &ssh,
        Path::new("/srv/links"),
        &make
    )?);
    Ok(())
}

const PLAYBOOK: &str = r#"
[playbook]
name = "remote-basics"

[vars]
message = "hello"

[[resource]]
type = "file"
path = "/srv/app/existing.txt"
content = "new\n"

[[resource]]
type = "file"
path = "/srv/app/config.txt"
content = "message={{message}}\n"
mode = "0640"
"#;

fn write_playbook(client: &Client, text: &str) -> std::path::PathBuf {
    let p = client.home.path().join("playbook.toml");
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn apply_on_three_hosts_one_failing_leaves_the_others_applied() -> TestResult {
    let client = Client::new();
    let hosts: Vec<TestHost> = (0..3).map(|_| TestHost::start(&client)).collect();
    for h in &hosts {
        client.trust(h);
        std::fs::create_dir_all(h.fs("/srv/app"))?;
        std::fs::write(h.fs("/srv/app/existing.txt"), "old\n")?;
    }
    // The third host cannot take the change: its config.txt is a directory.
    std::fs::create_dir(hosts[2].fs("/srv/app/config.txt"))?;
    let pb = write_playbook(&client, PLAYBOOK);
    let mut args = vec!["apply".to_string(), pb.display().to_string()];
    for h in &hosts {
        args.push("--host".into());
        args.push(h.spec());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = client.fixer(&argv).output()?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for h in &hosts[..2] {
        assert_eq!(
            std::fs::read_to_string(h.fs("/srv/app/config.txt"))?,
            "message=hello\n"
        );
        assert_eq!(
            std::fs::read_to_string(h.fs("/srv/app/existing.txt"))?,
            "new\n"
        );
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&h.spec()) && !l.starts_with("=="))
            .unwrap_or_default();
        assert!(
            row.contains("changed") && row.contains(" 2 "),
            "{row}\n{stdout}"
        );
        // The journal lives on the host itself.
        assert!(h.fs("/var/lib/fixer/runs").is_dir());
    }
    // The failing host is exactly as it was: existing.txt, changed
    // before config.txt failed, is restored.
    assert!(stdout.contains("1 change undone"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(hosts[2].fs("/srv/app/existing.txt"))?,
        "old\n"
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&hosts[2].spec()))
        .unwrap_or_default();
    assert!(
        row.contains("failed") && row.ends_with("yes"),
        "{row}\n{stdout}"
    );
    assert!(stdout.contains("3 hosts: 2 ok, 1 failed."), "{stdout}");

    // JSON: one record per host.
    let out = client
        .fixer(
            &[
                &["plan", &pb.display().to_string(), "--format", "json"][..],
                &argv[2..],
            ]
            .concat(),
        )
        .output()?;
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 3, "{}", text(&out.stdout));
    for r in &records {
        let host = r["host"].as_str().unwrap_or_default();
        if host == hosts[2].spec() {
            assert_eq!(r["status"], "failed", "{r}");
        } else {
            assert_eq!(
                (r["status"].as_str(), r["changed"].as_u64()),
                (Some("ok"), Some(0)),
                "{r}"
            );
            assert_eq!(r["result"]["summary"]["unchanged"], 2, "{r}");
        }
    }

    // Quiet: the summary table, and a block only for the host that failed.
    let out = client
        .fixer(&[&["plan", &pb.display().to_string(), "-q"][..], &argv[2..]].concat())
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let blocks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(blocks.len(), 1, "{stdout}");
    assert!(
        blocks[0].starts_with(&format!("== {} (failed)", hosts[2].spec())),
        "{stdout}"
    );
    assert!(stdout.contains("3 hosts: 2 ok, 1 failed."), "{stdout}");
    Ok(())
}

fn plan_on(client: &Client, pb: &Path, extra: &[&str]) -> std::process::Output {
    let pbs = pb.display().to_string();
    client
        .fixer(&[&["plan", pbs.as_str()][..], extra].concat())
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn host_keys_are_checked_like_openssh() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    let pb = write_playbook(&client, PLAYBOOK);
    let spec = host.spec();

    // Unknown key: refused, and nothing recorded.
    let out = plan_on(&client, &pb, &["--host", &spec]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "No ED25519 host key is known for [127.0.0.1]:{}",
            host.port
        )) && stdout.contains("Host key verification failed")
            && stdout.contains("unreachable"),
        "{stdout}"
    );
    assert!(!client.ssh_dir().join("known_hosts").exists());

    // --accept-new-host-keys records it; later runs need no flag.
    let out = plan_on(&client, &pb, &["--host", &spec, "--accept-new-host-keys"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let known = std::fs::read_to_string(client.ssh_dir().join("known_hosts"))?;
    assert_eq!(known.trim(), host.known_hosts_line());
    let out = plan_on(&client, &pb, &["--host", &spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // The real ssh client accepts what we recorded.
    let ssh = std::process::Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            client.ssh_dir().join("known_hosts").display()
        ))
        .arg("-i")
        .arg(client.ssh_dir().join("id_ed25519"))
        .args(["-p", &host.port.to_string(), "root@127.0.0.1", "true"])
        .output()?;
    assert!(ssh.status.success(), "ssh: {}", text(&ssh.stderr));

    // A changed key (the host was reinstalled, or someone is in the middle)
    // is refused even with --accept-new-host-keys.
    let other = client.home.path().join("other_key");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()?;
    let other_pub = std::fs::read_to_string(other.with_extension("pub"))?;
    let fake: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    std::fs::write(
        client.ssh_dir().join("known_hosts"),
        format!("[127.0.0.1]:{} {}\n", host.port, fake.join(" ")),
    )?;
    let out = plan_on(&client, &pb, &["--host", &spec, "--accept-new-host-keys"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            && stdout.contains("Host key verification failed")
            && stdout.contains(&format!("ssh-keygen -R '[127.0.0.1]:{}'", host.port)),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn a_wrong_client_key_and_an_unreachable_host_fail_alone() -> TestResult {
    let client = Client::new();
    let good = TestHost::start(&client);
    let stranger = Client::new();
    let locked = TestHost::start(&stranger);
    client.trust(&good);
    client.trust(&locked);
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    std::fs::create_dir_all(good.fs("/srv/app"))?;
    let pb = write_playbook(&client, PLAYBOOK);
    let dead_spec = format!("root@127.0.0.1:{dead}");
    let pbs = pb.display().to_string();
    let out = client
        .fixer(&[
            "apply",
            &pbs,
            "--host",
            &good.spec(),
            "--host",
            &locked.spec(),
            "--host",
            &dead_spec,
        ])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "root@[127.0.0.1]:{}: Permission denied (publickey)",
            locked.port
        )),
        "{stdout}"
    );
    assert!(stdout.contains("Connection refused"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(good.fs("/srv/app/config.txt"))?,
        "message=hello\n"
    );
    assert!(!locked.fs("/srv/app").exists() && !locked.fs("/var/lib/fixer").exists());
    assert!(stdout.contains("3 hosts: 1 ok, 2 failed."), "{stdout}");
    Ok(())
}

#[test]
fn ssh_config_aliases_name_hosts() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    client.trust(&host);
    // The key is somewhere ssh would not look unless told.
    let key = client.ssh_dir().join("id_ed25519");
    let moved = client.ssh_dir().join("deploy_key");
    std::fs::rename(&key, &moved)?;
    std::fs::rename(key.with_extension("pub"), moved.with_extension("pub"))?;
    client.write_config(&format!(
        "Host vm1\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile ~/.ssh/deploy_key\n",
        host.port
    ));
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    let pb = write_playbook(&client, PLAYBOOK);
    let out = plan_on(&client, &pb, &["--host", "vm1"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("== vm1 (changed)") && stdout.contains("+++ /srv/app/config.txt"),
        "{stdout}"
    );
    // A plan changes nothing, and leaves no state behind.
    assert!(!host.fs("/srv/app/config.txt").exists() && !host.fs("/var/lib/fixer").exists());
    Ok(())
}

#[test]
fn values_reach_remote_commands_quoted_never_spliced() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    client.trust(&host);
    std::fs::create_dir_all(host.fs("/srv/out"))?;
    let pb = write_playbook(
        &client,
        r#"
[playbook]
name = "quoting"

[vars]
value = "plain"
name = "plain"

[[resource]]
type = "command"
run = "printf '%s' {{value}} > /srv/out/arg.txt"

[[resource]]
type = "file"
path = "/srv/out/{{name}}"
content = "{{value}}"
"#,
    );
    let value = "it's; $(touch /srv/out/pwned) `touch /srv/out/pwned2` \"q\" \\ $HOME\nline2 *";
    let name = "we ird'$(touch /srv/out/pwned3);.txt";
    let pbs = pb.display().to_string();
    let out = client
        .fixer(&[
            "apply",
            &pbs,
            "--host",
            &host.spec(),
            "--var",
            &format!("value={value}"),
            "--var",
            &format!("name={name}"),
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(host.fs("/srv/out/arg.txt"))?, value);
    assert_eq!(
        std::fs::read_to_string(host.fs(&format!("/srv/out/{name}")))?,
        value
    );
    for canary in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !host.fs(&format!("/srv/out/{canary}")).exists(),
            "{canary} was created"
        );
    }
    Ok(())
}

#[test]
fn inventory_groups_vars_and_limit() -> TestResult {
    let client = Client::new();
    let a = TestHost::start(&client);
    let b = TestHost::start(&client);
    let c = TestHost::start(&client);
    for h in [&a, &b, &c] {
        client.trust(h);
        std::fs::create_dir_all(h.fs("/srv/app"))?;
    }
    let inv = client.home.path().join("inventory.toml");
    std::fs::write(
        &inv,
        format!(
            r#"
[vars]
message = "from-inventory"
unrelated = "ignored by playbooks that do not declare it"

[hosts.web1]
address = "{}"
vars = {{ message = "web1's own" }}

[hosts.web2]
address = "{}"

[hosts.db1]
address = "{}"

[groups.web]
hosts = ["web1", "web2"]
vars = {{ message = "from-group" }}
"#,
            a.spec(),
            b.spec(),
            c.spec()
        ),
    )?;
    let pb = write_playbook(&client, PLAYBOOK);
    let (pbs, invs) = (pb.display().to_string(), inv.display().to_string());
    let out = client
        .fixer(&["apply", &pbs, "-i", &invs, "--limit", "web", "--forks", "2"])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(a.fs("/srv/app/config.txt"))?,
        "message=web1's own\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.fs("/srv/app/config.txt"))?,
        "message=from-group\n"
    );
    assert!(
        !c.fs("/srv/app/config.txt").exists(),
        "db1 is not in --limit web"
    );
    // The rollback hint names the host the way the inventory does.
    assert!(
        stdout.contains(&format!("-i {invs} --limit web1`")),
        "{stdout}"
    );

    // --var beats the inventory.
    let out = client
        .fixer(&[
            "apply",
            &pbs,
            "-i",
            &invs,
            "--limit",
            "db1",
            "--var",
            "message=cli",
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        std::fs::read_to_string(c.fs("/srv/app/config.txt"))?,
        "message=cli\n"
    );

    let out = client
        .fixer(&["plan", &pbs, "-i", &invs, "--limit", "nope"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--limit nope: no host or group"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn rollback_works_from_another_controller() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    client.trust(&host);
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    std::fs::write(host.fs("/srv/app/existing.txt"), "old\n")?;
    let pb = write_playbook(&client, PLAYBOOK);
    let pbs = pb.display().to_string();
    let out = client
        .fixer(&["apply", &pbs, "--host", &host.spec()])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        std::fs::read_to_string(host.fs("/srv/app/existing.txt"))?,
        "new\n"
    );

    // A second machine: same key, its own HOME; it has no local record of
    // the run, only the host does.
    let other = Client::new();
    for f in ["id_ed25519", "id_ed25519.pub"] {
        std::fs::copy(client.ssh_dir().join(f), other.ssh_dir().join(f))?;
    }
    other.trust(&host);
    let out = other.fixer(&["history", "--host", &host.spec()]).output()?;
    assert!(
        text(&out.stdout).contains("applied"),
        "{}",
        text(&out.stdout)
    );
    // An edit on the host since the run: refused, with the command to
    // force it naming the host.
    std::fs::write(host.fs("/srv/app/existing.txt"), "edited\n")?;
    let out = other
        .fixer(&["rollback", "--host", &host.spec()])
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let block = text(&out.stdout);
    assert!(
        block.contains("/srv/app/existing.txt: content changed"),
        "{block}"
    );
    assert!(
        block.contains(&format!("--force --host {}`", host.spec())),
        "{block}"
    );
    assert_eq!(
        std::fs::read_to_string(host.fs("/srv/app/existing.txt"))?,
        "edited\n"
    );
    let out = other
        .fixer(&["rollback", "--force", "--host", &host.spec()])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("2 changes undone"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(host.fs("/srv/app/existing.txt"))?,
        "old\n"
    );
    assert!(!host.fs("/srv/app/config.txt").exists());

    // Pruning on the host, from either machine, removes the run folder.
    let runs = host.fs("/var/lib/fixer/runs");
    assert_eq!(std::fs::read_dir(&runs)?.count(), 1);
    let out = other
        .fixer(&["prune", "--keep", "0", "--host", &host.spec()])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("Deleted 1 run with its backups; 0 kept."),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read_dir(&runs)?.count(), 0);
    Ok(())
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The run folders on a test host.
fn runs(host: &TestHost) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(host.fs("/var/lib/fixer/runs"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn connection_dropped_mid_apply_the_host_restores_itself() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    let relay = super::sshd::Relay::start(host.port);
    std::fs::write(
        client.ssh_dir().join("known_hosts"),
        format!("{}\n", relay.known_hosts_line(&host)),
    )?;
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    std::fs::write(host.fs("/srv/app/existing.txt"), "old\n")?;
    let pb = write_playbook(
        &client,
        &format!(
            "{PLAYBOOK}\n[[resource]]\ntype = \"command\"\nrun = \"sleep 30\"\ntimeout = 60\n"
        ),
    );
    let pbs = pb.display().to_string();
    let spec = format!("root@127.0.0.1:{}", relay.port);
    let mut apply = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"));
    apply
        .args(["apply", &pbs, "--host", &spec, "--confirm-timeout", "5"])
        .env("HOME", client.home.path())
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = apply.spawn()?;
    // Both files changed, the command is running: now the network goes.
    wait_for("the apply to reach its command", 30, || {
        host.fs("/srv/app/config.txt").exists()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    relay.cut();
    let out = child.wait_with_output()?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("the host restores run") && stdout.contains("by itself within 5 s"),
        "{stdout}"
    );
    // Nobody can reach the host; it restores itself.
    wait_for("the host to restore itself", 30, || {
        std::fs::read_to_string(host.fs("/srv/app/existing.txt")).is_ok_and(|t| t == "old\n")
            && !host.fs("/srv/app/config.txt").exists()
    });
    let run = runs(&host).pop().ok_or("no run recorded")?;
    wait_for("the run to be marked", 10, || {
        run.join("restored-by-host").exists()
    });
    let record = std::fs::read_to_string(run.join("run.json"))?;
    let log = std::fs::read_to_string(run.join("watchdog.log")).unwrap_or_default();
    assert!(
        record.contains("\"status\": \"rolled_back\""),
        "{record}\n{log}"
    );
    // The next apply over a working connection is not blocked by it.
    client.trust(&host);
    let basics = write_playbook(&client, PLAYBOOK);
    let out = client
        .fixer(&[
            "apply",
            &basics.display().to_string(),
            "--host",
            &host.spec(),
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    Ok(())
}

#[test]
fn a_confirmed_apply_stays_applied_after_the_timeout() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    client.trust(&host);
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    // A netplan file: the kind of change that can cut the connection, so
    // the controller confirms over a fresh one.
    let pb = write_playbook(
        &client,
        r#"
[playbook]
name = "netplan-confirmed"

[[resource]]
type = "netplan"
path = "/etc/netplan/60-test.yaml"
notify = ["apply-network"]
network = { version = 2, ethernets = { fixertest0 = { dhcp4 = true } } }

[[handler]]
id = "apply-network"
type = "command"
run = "echo applied >> /srv/app/handler.log"
"#,
    );
    let pbs = pb.display().to_string();
    let out = client
        .fixer(&[
            "apply",
            &pbs,
            "--host",
            &host.spec(),
            "--confirm-timeout",
            "5",
        ])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Reconnecting to confirm"), "{stdout}");
    let run = runs(&host).pop().ok_or("no run recorded")?;
    assert!(!run.join("armed").exists(), "confirmed runs are disarmed");
    std::thread::sleep(std::time::Duration::from_secs(7));
    assert!(
        host.fs("/etc/netplan/60-test.yaml").exists(),
        "the change stays"
    );
    assert!(!run.join("restored-by-host").exists());
    assert_eq!(
        std::fs::read_to_string(host.fs("/srv/app/handler.log"))?,
        "applied\n"
    );

    // A rollback restores the file and re-runs the handler after it, so
    // the restored configuration takes effect.
    let out = client
        .fixer(&["rollback", "--host", &host.spec()])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!host.fs("/etc/netplan/60-test.yaml").exists());
    assert_eq!(
        std::fs::read_to_string(host.fs("/srv/app/handler.log"))?,
        "applied\napplied\n"
    );
    Ok(())
}

/// A playbook of `n` file resources under /srv/many.
pub fn many_files(n: usize) -> String {
    let mut pb = String::from("[playbook]\nname = \"many\"\n");
    for i in 0..n {
        pb.push_str(&format!(
            "\n[[resource]]\ntype = \"file\"\npath = \"/srv/many/f{i:03}.conf\"\ncontent = \"value {i}\\n\"\nmode = \"0644\"\n"
        ));
    }
    pb
}

/// A counting relay in front of `host`, trusted by `client`, and the
/// `--host` that reaches the host through it.
fn through_relay(
    client: &Client,
    host: &TestHost,
) -> Result<(super::sshd::Relay, String), Box<dyn std::error::Error>> {
    let relay = super::sshd::Relay::start(host.port);
    std::fs::write(
        client.ssh_dir().join("known_hosts"),
        format!("{}\n", relay.known_hosts_line(host)),
    )?;
    let spec = format!("root@127.0.0.1:{}", relay.port);
    Ok((relay, spec))
}

/// Round trips of one fixer command through a counting relay.
fn round_trips(
    client: &Client,
    host: &TestHost,
    args: &[&str],
) -> Result<usize, Box<dyn std::error::Error>> {
    let (relay, spec) = through_relay(client, host)?;
    let out = client
        .fixer(&[args, &["--host", &spec]].concat())
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    Ok(relay.round_trips())
}

#[test]
fn observing_a_host_does_not_cost_a_round_trip_per_file() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    std::fs::create_dir_all(host.fs("/srv/many"))?;
    let small = write_playbook(&client, &many_files(5));
    let small = small.with_file_name("small.toml");
    std::fs::write(&small, many_files(5))?;
    let big = client.home.path().join("big.toml");
    std::fs::write(&big, many_files(50))?;
    let (s, b) = (small.display().to_string(), big.display().to_string());
    let plan5 = round_trips(&client, &host, &["plan", &s])?;
    let plan50 = round_trips(&client, &host, &["plan", &b])?;
    let apply5 = round_trips(&client, &host, &["apply", &s])?;
    std::fs::remove_dir_all(host.fs("/srv/many"))?;
    std::fs::create_dir_all(host.fs("/srv/many"))?;
    let apply50 = round_trips(&client, &host, &["apply", &b])?;
    for i in 0..50 {
        assert_eq!(
            std::fs::read_to_string(host.fs(&format!("/srv/many/f{i:03}.conf")))?,
            format!("value {i}\n")
        );
    }
    let noop50 = round_trips(&client, &host, &["apply", &b])?;
    let noop5 = round_trips(&client, &host, &["apply", &s])?;
    eprintln!(
        "round trips: plan 5 files {plan5}, plan 50 files {plan50}, apply 5 {apply5}, \
         apply 50 {apply50}, no-change apply 5 {noop5}, no-change apply 50 {noop50}"
    );
    // Changes go out in one exec per batch, journal entries first.
    assert!(
        apply50 <= apply5 + 3,
        "first apply: 5 files {apply5}, 50 files {apply50}"
    );
    // Ten times the files, the same number of round trips (give or take
    // what libssh2 happens to pipeline).
    assert!(
        plan50 <= plan5 + 2,
        "plan: 5 files {plan5}, 50 files {plan50}"
    );
    assert!(
        noop50 <= noop5 + 3,
        "no-change apply: 5 files {noop5}, 50 files {noop50}"
    );
    Ok(())
}

/// A change that fails on the host after later resources were planned
/// (changes go out together): the error names the resource and path of
/// the change that failed, the changes before it are undone, and the ones
/// after it never happen.
#[test]
fn a_change_failing_in_a_batch_is_named_and_the_run_undone() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    client.trust(&host);
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    std::fs::write(host.fs("/srv/app/existing.txt"), "old\n")?;
    // A legal name (250 bytes) whose temporary file name is not: the plan
    // sees nothing wrong, the write fails on the host.
    let long = "n".repeat(250);
    let pb = write_playbook(
        &client,
        &format!(
            r#"[playbook]
name = "batch-failure"

[[resource]]
type = "file"
path = "/srv/app/existing.txt"
content = "new\n"

[[resource]]
type = "file"
path = "/srv/app/{long}"
content = "x\n"

[[resource]]
type = "file"
path = "/srv/app/after.txt"
content = "never\n"
"#
        ),
    );
    let out = client
        .fixer(&["apply", &pb.display().to_string(), "--host", &host.spec()])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("file:/srv/app/{long}")) && stdout.contains("File name too long"),
        "{stdout}"
    );
    // Only what was made is told: after.txt was queued, never written.
    assert!(
        stdout.contains("file:/srv/app/existing.txt (changed)"),
        "{stdout}"
    );
    assert!(!stdout.contains("after.txt"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(host.fs("/srv/app/existing.txt"))?,
        "old\n"
    );
    assert!(!host.fs("/srv/app/after.txt").exists());
    let history = client
        .fixer(&["history", "--host", &host.spec()])
        .output()?;
    assert!(
        text(&history.stdout).contains("failed, rolled back"),
        "{}",
        text(&history.stdout)
    );
    Ok(())
}

#[test]
fn become_acts_as_root_through_sudo() -> TestResult {
    use std::os::unix::fs::MetadataExt as _;
    let client = Client::new();
    let host = TestHost::start_with_users(&client, &[("deploy", true), ("nosudo", false)]);
    client.trust(&host);
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    std::fs::write(host.fs("/srv/app/existing.txt"), "old\n")?;
    let pb = write_playbook(&client, PLAYBOOK);
    let pbs = pb.display().to_string();
    let deploy = format!("deploy@127.0.0.1:{}", host.port);

    // Without --become the login user cannot write root's directory: the
    // apply fails and changes nothing.
    let out = client.fixer(&["apply", &pbs, "--host", &deploy]).output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Permission denied"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(host.fs("/srv/app/existing.txt"))?,
        "old\n"
    );

    // With --become, as root, and the run's state is root's.
    let out = client
        .fixer(&["apply", &pbs, "--host", &deploy, "--become"])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let meta = std::fs::metadata(host.fs("/srv/app/config.txt"))?;
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o640));
    assert_eq!(std::fs::metadata(host.fs("/var/lib/fixer/runs"))?.uid(), 0);

    // The rollback it suggests is root's too, and works as printed.
    let hint = stdout
        .split("undo it with `")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .ok_or(format!("no rollback hint: {stdout}"))?;
    assert!(
        hint.ends_with(&format!("--host {deploy} --become")),
        "{hint}"
    );
    let words: Vec<&str> = hint.split_whitespace().skip(1).collect();
    let out = client.fixer(&words).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!host.fs("/srv/app/config.txt").exists());

    // A user who may not sudo gets a clear error, not a password prompt.
    let nosudo = format!("nosudo@127.0.0.1:{}", host.port);
    let out = client
        .fixer(&["plan", &pbs, "--host", &nosudo, "--become"])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("--become: `sudo -n` failed"), "{stdout}");
    assert!(stdout.contains("passwordless sudo"), "{stdout}");
    Ok(())
}

/// Apply through the inventory that `write` makes (given the two hosts'
/// ports) on hosts web1 and web2 of group `prod`: each gets its own
/// message, web1 its host var, web2 the group's.
fn an_inventory_reaches_its_hosts(name: &str, write: impl Fn(u16, u16) -> String) -> TestResult {
    let client = Client::new();
    let a = TestHost::start(&client);
    let b = TestHost::start(&client);
    for h in [&a, &b] {
        client.trust(h);
        std::fs::create_dir_all(h.fs("/srv/app"))?;
    }
    let inv = client.home.path().join(name);
    std::fs::write(&inv, write(a.port, b.port))?;
    let pb = write_playbook(&client, PLAYBOOK);
    let (pbs, invs) = (pb.display().to_string(), inv.display().to_string());
    let out = client
        .fixer(&["apply", &pbs, "-i", &invs, "--limit", "prod"])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("== web1") && stdout.contains("== web2"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(a.fs("/srv/app/config.txt"))?,
        "message=web1's own\n"
    );
    assert_eq!(
        std::fs::read_to_string(b.fs("/srv/app/config.txt"))?,
        "message=from-prod\n"
    );
    // web1's rollback hint, pasted into a shell as it stands (the
    // inventory's name may hold a space), undoes web1's run alone.
    let hint = stdout
        .lines()
        .filter_map(|l| l.split("undo it with `").nth(1))
        .filter_map(|r| r.split('`').next())
        .find(|h| h.contains("web1"))
        .ok_or(format!("no rollback hint for web1: {stdout}"))?;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("fixer() {{ \"$FIXER\" \"$@\"; }}; {hint}"))
        .env("FIXER", assert_cmd::cargo::cargo_bin("fixer"))
        .env("HOME", client.home.path())
        .env("USER", "root")
        .env_remove("SSH_AUTH_SOCK")
        .current_dir(client.home.path())
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{hint}: {}", text(&out.stdout));
    assert!(!a.fs("/srv/app/config.txt").exists(), "{hint}");
    assert!(b.fs("/srv/app/config.txt").exists(), "{hint}");
    Ok(())
}

#[test]
fn an_ansible_ini_inventory_reaches_its_hosts() -> TestResult {
    an_inventory_reaches_its_hosts("hosts", |a, b| {
        format!(
            "[web]\nweb1 ansible_host=127.0.0.1 ansible_port={a} message=\"web1's own\"\n\
             web2 ansible_host=127.0.0.1 ansible_port={b}\n\n[prod:children]\nweb\n\n\
             [prod:vars]\nansible_user=root\nmessage=from-prod\n"
        )
    })
}

#[test]
fn an_ansible_yaml_inventory_reaches_its_hosts() -> TestResult {
    an_inventory_reaches_its_hosts("fleet hosts.yml", |a, b| {
        format!(
            "all:\n  vars:\n    ansible_user: root\n  children:\n    prod:\n      vars:\n        message: from-prod\n      children:\n        web:\n          hosts:\n            web1:\n              ansible_host: 127.0.0.1\n              ansible_port: {a}\n              message: \"web1's own\"\n            web2: {{ansible_host: 127.0.0.1, ansible_port: {b}}}\n"
        )
    })
}

#[test]
fn an_unconfirmed_netplan_apply_is_restored_by_the_host() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    let relay = super::sshd::Relay::start(host.port);
    std::fs::write(
        client.ssh_dir().join("known_hosts"),
        format!("{}\n", relay.known_hosts_line(&host)),
    )?;
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    let pb = write_playbook(
        &client,
        r#"
[playbook]
name = "netplan-unreachable"

[[resource]]
type = "netplan"
path = "/etc/netplan/60-test.yaml"
notify = ["apply-network"]
network = { version = 2, ethernets = { fixertest0 = { dhcp4 = true } } }

[[handler]]
id = "apply-network"
type = "command"
run = "echo applied >> /srv/app/handler.log; sleep 2"
"#,
    );
    let spec = format!("root@127.0.0.1:{}", relay.port);
    let mut apply = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"));
    apply
        .args([
            "apply",
            &pb.display().to_string(),
            "--host",
            &spec,
            "--confirm-timeout",
            "5",
        ])
        .env("HOME", client.home.path())
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = apply.spawn()?;
    // The "network change" ran: from now on the host cannot be reached
    // again, though the connection that made the change lives on.
    wait_for("the handler", 30, || {
        host.fs("/srv/app/handler.log").exists()
    });
    relay.refuse_new();
    let out = child.wait_with_output()?;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("could not be confirmed") && stdout.contains("restores it by itself"),
        "{stdout}"
    );
    wait_for("the host to restore itself", 30, || {
        !host.fs("/etc/netplan/60-test.yaml").exists()
            && std::fs::read_to_string(host.fs("/srv/app/handler.log"))
                .is_ok_and(|t| t == "applied\napplied\n")
    });
    let run = runs(&host).pop().ok_or("no run recorded")?;
    wait_for("the run to be marked", 10, || {
        run.join("restored-by-host").exists()
    });
    Ok(())
}

#[test]
fn remote_usage_errors_are_refused_before_connecting() -> TestResult {
    let client = Client::new();
    let pb = write_playbook(&client, PLAYBOOK);
    let pbs = pb.display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--host", "h1", "--root", "/tmp"],
            "cannot be combined with remote hosts",
        ),
        (&["--host", "h1", "-i", "inv.toml"], "not both"),
        (
            &["--host", "h1", "--out", "x.plan"],
            "plan --out is not supported for remote hosts",
        ),
        (
            &["--host", "h1:notaport"],
            "`notaport` is not a port number",
        ),
        (&["--host", "h1", "--forks", "0"], "--forks"),
    ];
    for (extra, expected) in cases {
        let out = client
            .fixer(&[&["plan", pbs.as_str()][..], extra].concat())
            .output()?;
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_ne!(out.status.code(), Some(0), "{extra:?}: {all}");
        assert!(all.contains(expected), "{extra:?}: {all}");
    }
    // Something that is not an SSH server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        use std::io::Write as _;
        for mut s in listener.incoming().map_while(Result::ok) {
            let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
        }
    });
    let out = client
        .fixer(&["plan", &pbs, "--host", &format!("root@127.0.0.1:{port}")])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("SSH handshake with [127.0.0.1]"),
        "{stdout}"
    );
    Ok(())
}

/// The remote twin of symlinks.rs: over SSH (as root) a link someone else
/// planted on the way to a path, or as the state folder, is refused and
/// nothing changes; a link root made is followed.
#[test]
fn remote_clean_refuses_a_strangers_symlink() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    client.trust(&host);
    std::fs::create_dir_all(host.fs("/srv/realgo/pkg/mod/cache"))?;
    std::fs::write(host.fs("/srv/realgo/pkg/mod/cache/keep"), "mine")?;
    std::fs::create_dir_all(host.fs("/srv/home/dev"))?;
    std::os::unix::fs::symlink("/srv/realgo", host.fs("/srv/home/dev/go"))?;
    std::os::unix::fs::lchown(host.fs("/srv/home/dev/go"), Some(4242), Some(4242))?;
    let pb = write_playbook(
        &client,
        "[playbook]\nname = \"c\"\n[[resource]]\ntype = \"clean\"\npaths = [\"/srv/home/dev/go/pkg/mod/cache\"]\n",
    );
    let pb = pb.display().to_string();
    for command in ["plan", "apply"] {
        let out = client
            .fixer(&[command, &pb, "--host", &host.spec()])
            .output()?;
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{command}: {all}");
        assert!(
            all.contains(
                "/srv/home/dev/go is a symlink owned by uid 4242: fixer follows only symlinks \
                 owned by root or by the user it acts as"
            ),
            "{command}: {all}"
        );
        assert_eq!(
            std::fs::read_to_string(host.fs("/srv/realgo/pkg/mod/cache/keep"))?,
            "mine"
        );
    }
    // Root's own link is followed: the cache it points to is cleared.
    std::os::unix::fs::lchown(host.fs("/srv/home/dev/go"), Some(0), Some(0))?;
    let out = client
        .fixer(&["apply", &pb, "--host", &host.spec()])
        .output()?;
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(!host.fs("/srv/realgo/pkg/mod/cache").exists());

    // A state folder planted by someone else: no lock, no journal there.
    std::fs::create_dir_all(host.fs("/srv/elsewhere"))?;
    std::fs::remove_dir_all(host.fs("/var/lib/fixer"))?;
    std::os::unix::fs::symlink("/srv/elsewhere", host.fs("/var/lib/fixer"))?;
    std::os::unix::fs::lchown(host.fs("/var/lib/fixer"), Some(4242), Some(4242))?;
    std::fs::write(host.fs("/srv/realgo/again"), "x")?;
    let pb = write_playbook(
        &client,
        "[playbook]\nname = \"c\"\n[[resource]]\ntype = \"clean\"\npaths = [\"/srv/realgo/again\"]\n",
    );
    let out = client
        .fixer(&["apply", &pb.display().to_string(), "--host", &host.spec()])
        .output()?;
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("/var/lib/fixer is a symlink owned by uid 4242"),
        "{all}"
    );
    assert_eq!(std::fs::read_dir(host.fs("/srv/elsewhere"))?.count(), 0);
    assert!(host.fs("/srv/realgo/again").exists());
    Ok(())
}

/// `fixer fix` on remote hosts: diagnosed once on the controller, planned
/// on each host with that host's own values, applied with --yes.
#[test]
fn fix_diagnoses_here_and_fixes_each_host() -> TestResult {
    let client = Client::new();
    let hosts: Vec<TestHost> = (0..2).map(|_| TestHost::start(&client)).collect();
    for h in &hosts {
        client.trust(h);
    }
    let log = client.home.path().join("go.log");
    std::fs::write(
        &log,
        "fatal: could not read Username for 'https://git.corp.example': terminal prompts disabled\n",
    )?;
    let log = log.display().to_string();
    let mut args = vec!["fix".to_string(), log.clone()];
    for h in &hosts {
        args.push("--host".into());
        args.push(h.spec());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    // Off a terminal: each host's plan, nothing applied.
    let out = client.fixer(&argv).output()?;
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("private_host  git.corp.example  log line 1"),
        "{all}"
    );
    assert!(all.contains("Planned only: run again with --yes"), "{all}");
    for h in &hosts {
        assert!(!h.fs("/root/.gitconfig").exists());
    }
    let mut yes = argv.clone();
    yes.push("--yes");
    let out = client.fixer(&yes).output()?;
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(all.contains("2 hosts: 2 ok, 0 failed."), "{all}");
    for h in &hosts {
        assert!(
            std::fs::read_to_string(h.fs("/root/.gitconfig"))?.contains("git@git.corp.example:")
        );
        assert!(std::fs::read_to_string(h.fs("/root/.config/go/env"))?
            .contains("GOPRIVATE=git.corp.example"));
    }
    Ok(())
}

/// A remote observation decides "missing" without asking `stat` only where
/// the folder above can be searched: as a user who cannot search it, the
/// plan says Permission denied for the file, not "will create it", and
/// a file that really is missing below a folder the user can search is
/// planned as created.
#[test]
fn a_file_in_a_folder_the_user_cannot_search_is_an_error_not_missing() -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;
    let client = Client::new();
    let host = TestHost::start_with_users(&client, &[("nosudo", false)]);
    client.trust(&host);
    std::fs::create_dir_all(host.fs("/srv/secret"))?;
    std::fs::write(host.fs("/srv/secret/app.conf"), "root only\n")?;
    std::fs::set_permissions(
        host.fs("/srv/secret"),
        std::fs::Permissions::from_mode(0o700),
    )?;
    std::fs::create_dir_all(host.fs("/srv/open"))?;
    std::fs::set_permissions(host.fs("/srv/open"), std::fs::Permissions::from_mode(0o777))?;
    let pb = write_playbook(
        &client,
        "[playbook]\nname = \"search\"\n\n\
         [[resource]]\ntype = \"file\"\npath = \"/srv/open/new.conf\"\ncontent = \"x\\n\"\n\n\
         [[resource]]\ntype = \"file\"\npath = \"/srv/secret/app.conf\"\ncontent = \"x\\n\"\n",
    );
    let pbs = pb.display().to_string();
    let nosudo = format!("nosudo@127.0.0.1:{}", host.port);
    let out = client.fixer(&["plan", &pbs, "--host", &nosudo]).output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("/srv/secret/app.conf") && stdout.contains("Permission denied"),
        "{stdout}"
    );

    let open_only = write_playbook(
        &client,
        "[playbook]\nname = \"open\"\n\n\
         [[resource]]\ntype = \"file\"\npath = \"/srv/open/new.conf\"\ncontent = \"x\\n\"\n",
    );
    let out = client
        .fixer(&["plan", &open_only.display().to_string(), "--host", &nosudo])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("file:/srv/open/new.conf (add)"), "{stdout}");
    Ok(())
}

/// The run folder's changes go out together before any resource is
/// touched: when they fail, the apply says which and changes nothing.
#[test]
fn a_run_folder_that_cannot_be_made_stops_the_apply_before_any_change() -> TestResult {
    let client = Client::new();
    let host = TestHost::start_with_users(&client, &[("ops", false)]);
    client.trust(&host);
    let ops = 2001; // the first user's id (tests/integration/sshd.rs)
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    std::os::unix::fs::chown(host.fs("/srv/app"), Some(ops), Some(ops))?;
    // The user may take the lock, but not make a run folder.
    std::fs::create_dir_all(host.fs("/var/lib/fixer/runs"))?;
    std::os::unix::fs::chown(host.fs("/var/lib/fixer"), Some(ops), Some(ops))?;
    let pb = write_playbook(
        &client,
        "[playbook]\nname = \"begin\"\n\n\
         [[resource]]\ntype = \"file\"\npath = \"/srv/app/config.txt\"\ncontent = \"x\\n\"\n",
    );
    let target = format!("ops@127.0.0.1:{}", host.port);
    let out = client
        .fixer(&["apply", &pb.display().to_string(), "--host", &target])
        .output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("/var/lib/fixer/runs/.new-") && stdout.contains("Permission denied"),
        "{stdout}"
    );
    assert!(!host.fs("/srv/app/config.txt").exists());
    assert_eq!(
        std::fs::read_dir(host.fs("/var/lib/fixer/runs"))?.count(),
        0
    );
    Ok(())
}

/// Over SSH too, a plan as a user who could not apply it says so, from
/// what the observation already fetched.
#[test]
fn a_remote_plan_as_a_user_warns_of_what_apply_could_not_write() -> TestResult {
    let client = Client::new();
    let host = TestHost::start_with_users(&client, &[("nosudo", false)]);
    client.trust(&host);
    std::fs::create_dir_all(host.fs("/srv/app"))?;
    let pb = write_playbook(
        &client,
        "[playbook]\nname = \"user\"\n\n\
         [[resource]]\ntype = \"file\"\npath = \"/srv/app/new.conf\"\ncontent = \"x\\n\"\n",
    );
    let pbs = pb.display().to_string();
    let user = format!("nosudo@127.0.0.1:{}", host.port);
    let out = client.fixer(&["plan", &pbs, "--host", &user]).output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("apply could not write fixer's state folder /var/lib/fixer")
            && stdout.contains(
                "apply could not change /srv/app/new.conf as this user: /srv/app is not writable"
            )
            // Over SSH, sudo on the controller would not help.
            && stdout.contains("over SSH, --become"),
        "{stdout}"
    );
    // As root: nothing to warn of.
    let root = format!("root@127.0.0.1:{}", host.port);
    let out = client.fixer(&["plan", &pbs, "--host", &root]).output()?;
    assert!(
        !text(&out.stdout).contains("apply could not"),
        "{}",
        text(&out.stdout)
    );
    Ok(())
}

/// A file above the diff limit over SSH: planned from a digest computed on
/// the host, backed up and restored by copies made there: its bytes never
/// cross the connection (counted by a relay).
#[test]
fn a_large_remote_file_is_replaced_and_restored_exactly() -> TestResult {
    let client = Client::new();
    let host = TestHost::start(&client);
    std::fs::create_dir_all(host.fs("/srv"))?;
    let big: String = (1..=400_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(host.fs("/srv/big"), &big)?;
    let pb = write_playbook(
        &client,
        "[playbook]\nname = \"b\"\n[[resource]]\ntype = \"file\"\npath = \"/srv/big\"\ncontent = \"one\\n\"\n",
    );
    let pbs = pb.display().to_string();
    let (relay, spec) = through_relay(&client, &host)?;
    let out = client.fixer(&["apply", &pbs, "--host", &spec]).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("/srv/big: 2.6 MiB (400000 lines) -> 4 bytes (1 line)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read_to_string(host.fs("/srv/big"))?, "one\n");
    let out = client.fixer(&["rollback", "--host", &spec]).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(host.fs("/srv/big"))? == big);
    let sent = relay.bytes_from_host();
    assert!(
        sent < big.len() / 10,
        "the host sent {sent} bytes for a {} byte file",
        big.len()
    );
    Ok(())
}

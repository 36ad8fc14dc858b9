//! Rolling rollouts (`apply --serial`, `--max-fail`) on real sshd test
//! hosts: batches in order, a failure stops the rollout, the hosts not yet
//! reached are untouched and listed.

use super::sshd::{Client, TestHost};
use super::support::TestResult;

const PLAYBOOK: &str = r#"
[playbook]
name = "rollout"

[[resource]]
type = "file"
path = "/srv/app/existing.txt"
content = "new\n"

[[resource]]
type = "file"
path = "/srv/app/config.txt"
content = "v2\n"
"#;

struct Fleet {
    client: Client,
    hosts: Vec<TestHost>,
}

/// `n` hosts holding the old state; the hosts in `broken` cannot take the
/// change (their config.txt is a directory).
fn fleet(n: usize, broken: &[usize]) -> Result<Fleet, Box<dyn std::error::Error>> {
    let client = Client::new();
    let hosts: Vec<TestHost> = (0..n).map(|_| TestHost::start(&client)).collect();
    for (i, h) in hosts.iter().enumerate() {
        client.trust(h);
        std::fs::create_dir_all(h.fs("/srv/app"))?;
        std::fs::write(h.fs("/srv/app/existing.txt"), "old\n")?;
        if broken.contains(&i) {
            std::fs::create_dir(h.fs("/srv/app/config.txt"))?;
        }
    }
    Ok(Fleet { client, hosts })
}

impl Fleet {
    fn apply(&self, playbook: &str, extra: &[&str]) -> std::process::Output {
        let pb = self.client.home.path().join("rollout.toml");
        std::fs::write(&pb, playbook).unwrap_or_else(|e| panic!("{e}"));
        let mut args = vec!["apply".to_string(), pb.display().to_string()];
        for h in &self.hosts {
            args.push("--host".into());
            args.push(h.spec());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        self.client
            .fixer(&argv)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn applied(&self, i: usize) -> bool {
        std::fs::read_to_string(self.hosts[i].fs("/srv/app/existing.txt")).ok()
            == Some("new\n".into())
    }

    fn untouched(&self, i: usize) -> bool {
        std::fs::read_to_string(self.hosts[i].fs("/srv/app/existing.txt")).ok()
            == Some("old\n".into())
            && !self.hosts[i].fs("/var/lib/fixer").exists()
    }

    fn row(&self, stdout: &str, i: usize) -> String {
        let spec = self.hosts[i].spec();
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{spec} ")))
            .unwrap_or_default()
            .to_string()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_failure_stops_the_rollout_and_the_rest_is_untouched() -> TestResult {
    // Batches: [0], [1, 2], [3, 4]; host 1 fails in the second batch.
    let f = fleet(5, &[1])?;
    let store = f.client.home.path().join("results");
    let to = store.display().to_string();
    let out = f.apply(PLAYBOOK, &["--serial", "1,2", "--report-to", &to]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(f.applied(0) && f.applied(2), "{stdout}");
    // The failing host rolled back; the third batch never started.
    assert!(f.untouched(3) && f.untouched(4), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(f.hosts[1].fs("/srv/app/existing.txt"))?,
        "old\n"
    );
    let batches: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("-- batch"))
        .collect();
    assert_eq!(
        batches,
        [
            format!("-- batch 1 of 3 (1 host): {}", f.hosts[0].spec()),
            format!(
                "-- batch 2 of 3 (2 hosts): {}, {}",
                f.hosts[1].spec(),
                f.hosts[2].spec()
            ),
        ],
        "{stdout}"
    );
    assert!(f.row(&stdout, 1).contains("failed"), "{stdout}");
    for i in [3, 4] {
        assert!(f.row(&stdout, i).contains("not reached"), "{stdout}");
    }
    assert!(
        stdout.contains("5 hosts: 2 ok, 1 failed, 2 not reached."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Rollout stopped after batch 2 of 3: 1 of 5 hosts failed or did not pass their probes, more than --max-fail 0 allows."),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Not reached, untouched: {}, {}.",
            f.hosts[3].spec(),
            f.hosts[4].spec()
        )),
        "{stdout}"
    );

    // The store has a record for every host, the ones not reached too.
    let mut statuses = Vec::new();
    for (i, h) in f.hosts.iter().enumerate() {
        let dir = std::fs::read_dir(&store)?
            .filter_map(Result::ok)
            .find(|d| {
                d.file_name()
                    .to_string_lossy()
                    .ends_with(&h.port.to_string())
            })
            .ok_or(format!("no records of host {i}"))?;
        for r in std::fs::read_dir(dir.path())? {
            let r: serde_json::Value = serde_json::from_slice(&std::fs::read(r?.path())?)?;
            assert_eq!(r["host"], h.spec().as_str());
            statuses.push(r["status"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(
        statuses,
        ["changed", "failed", "changed", "not_reached", "not_reached"],
        "{stdout}"
    );
    let out = f.client.fixer(&["report", &to]).output()?;
    let report = text(&out.stdout);
    assert!(
        report.contains("5 hosts: 2 changed, 1 failing, 2 not reached."),
        "{report}"
    );

    // Allowing one failure, the rollout goes on to the end; the failure
    // still makes the exit code 1.
    let out = f.apply(
        PLAYBOOK,
        &["--serial", "1,2", "--max-fail", "1", "--format", "json"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(f.applied(3) && f.applied(4), "{stdout}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let batches: Vec<u64> = records
        .iter()
        .filter_map(|r| r["batch"].as_u64().filter(|_| r["host"].is_null()))
        .collect();
    assert_eq!(batches, [1, 2, 3], "{stdout}");
    let host_batch: Vec<(String, u64)> = records
        .iter()
        .filter_map(|r| Some((r["host"].as_str()?.to_string(), r["batch"].as_u64()?)))
        .collect();
    assert_eq!(host_batch.len(), 5, "{stdout}");
    assert!(
        host_batch.contains(&(f.hosts[4].spec(), 3)),
        "{host_batch:?}"
    );
    assert!(records.iter().all(|r| r["rollout"].is_null()), "{stdout}");
    Ok(())
}

#[test]
fn a_canary_whose_probe_does_not_pass_stops_the_rollout() -> TestResult {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let playbook = format!(
        "{PLAYBOOK}\n[[resource]]\ntype = \"probe\"\ntcp = \"127.0.0.1:{closed}\"\non_fail = \"warn\"\n"
    );
    let f = fleet(3, &[])?;
    let out = f.apply(&playbook, &["--serial", "1", "--format", "json"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    // `warn` keeps the canary's change; the rollout still does not go on.
    assert!(f.applied(0), "{stdout}");
    assert!(f.untouched(1) && f.untouched(2), "{stdout}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let status = |i: usize| {
        records
            .iter()
            .find(|r| r["host"] == f.hosts[i].spec().as_str())
            .map(|r| r["status"].clone())
    };
    assert_eq!(status(0), Some("unconfirmed".into()), "{stdout}");
    assert_eq!(status(1), Some("not_reached".into()), "{stdout}");
    assert_eq!(status(2), Some("not_reached".into()), "{stdout}");
    let stop = records
        .iter()
        .find(|r| !r["rollout"].is_null())
        .ok_or("no rollout record")?;
    assert_eq!(
        stop["rollout"]["not_reached"],
        serde_json::json!([f.hosts[1].spec(), f.hosts[2].spec()]),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn rollout_options_are_checked_before_any_host_is_contacted() -> TestResult {
    let f = fleet(1, &[])?;
    for (args, says) in [
        (&["--serial", "0"][..], "a batch holds at least one host"),
        (&["--serial", "1,x%"][..], "`x%`"),
        (&["--max-fail", "1"][..], "--serial"),
        (&["--serial", "1", "--max-fail", "200%"][..], "0% to 100%"),
        (&["--serial", "1", "--dry-run"][..], "cannot be used with"),
    ] {
        let out = f.apply(PLAYBOOK, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(f.untouched(0), "{args:?}");
    }
    let pb = f.client.home.path().join("local.toml");
    std::fs::write(&pb, PLAYBOOK)?;
    let root = tempfile::tempdir()?;
    let out = f
        .client
        .fixer(&[
            "apply",
            &pb.display().to_string(),
            "--root",
            &root.path().display().to_string(),
            "--serial",
            "1",
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--serial rolls out across remote hosts"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(root.path())?.count(), 0);
    Ok(())
}

#[test]
fn ctrl_c_stops_the_rollout_after_the_batch_rolls_back() -> TestResult {
    let f = fleet(3, &[])?;
    const SLOW: &str = r#"
[playbook]
name = "slow"

[[resource]]
type = "file"
path = "/srv/app/existing.txt"
content = "new\n"

[[resource]]
type = "command"
run = "sleep 2"

[[resource]]
type = "file"
path = "/srv/app/later.txt"
content = "never\n"
"#;
    let pb = f.client.home.path().join("slow.toml");
    std::fs::write(&pb, SLOW)?;
    let mut args = vec!["apply".to_string(), pb.display().to_string()];
    for h in &f.hosts {
        args.extend(["--host".to_string(), h.spec()]);
    }
    args.extend(["--serial".to_string(), "1".to_string()]);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"))
        .args(&args)
        .env("HOME", f.client.home.path())
        .env("USER", "root")
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !f.applied(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the canary never made its first change"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    let out = child.wait_with_output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Rollout stopped after batch 1 of 3: interrupted."),
        "{stdout}"
    );
    // The canary rolled back; the others were never contacted.
    assert_eq!(
        std::fs::read_to_string(f.hosts[0].fs("/srv/app/existing.txt"))?,
        "old\n"
    );
    assert!(!f.hosts[0].fs("/srv/app/later.txt").exists());
    assert!(f.untouched(1) && f.untouched(2), "{stdout}");
    assert!(f.row(&stdout, 2).contains("not reached"), "{stdout}");
    Ok(())
}

#[test]
fn a_canary_dropping_out_mid_batch_stops_the_rollout_and_restores_itself() -> TestResult {
    let f = fleet(3, &[])?;
    // The canary is reached through a relay that the test cuts mid-apply.
    let relay = super::sshd::Relay::start(f.hosts[0].port);
    std::fs::write(
        f.client.ssh_dir().join("known_hosts"),
        format!(
            "{}\n{}\n{}\n",
            relay.known_hosts_line(&f.hosts[0]),
            f.hosts[1].known_hosts_line(),
            f.hosts[2].known_hosts_line()
        ),
    )?;
    let pb = f.client.home.path().join("slow.toml");
    std::fs::write(
        &pb,
        format!("{PLAYBOOK}\n[[resource]]\ntype = \"command\"\nrun = \"sleep 30\"\ntimeout = 60\n"),
    )?;
    let canary = format!("root@127.0.0.1:{}", relay.port);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("fixer"))
        .args(["apply", &pb.display().to_string(), "--host", &canary])
        .args(["--host", &f.hosts[1].spec(), "--host", &f.hosts[2].spec()])
        .args(["--serial", "1", "--confirm-timeout", "5"])
        .env("HOME", f.client.home.path())
        .env_remove("SSH_AUTH_SOCK")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !f.hosts[0].fs("/srv/app/config.txt").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the canary never changed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    relay.cut();
    let out = child.wait_with_output()?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Rollout stopped after batch 1 of 3"),
        "{stdout}"
    );
    assert!(f.untouched(1) && f.untouched(2), "{stdout}");
    // Cut off from the controller, the canary puts itself back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(f.hosts[0].fs("/srv/app/existing.txt"))? != "old\n"
        || f.hosts[0].fs("/srv/app/config.txt").exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the canary did not restore itself"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

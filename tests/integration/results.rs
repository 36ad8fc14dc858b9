//! The results store (`--report-to DIR`) and `fixer report`: records of
//! real runs, checked against the published schema; drift read back; a
//! store that cannot take a record never fails a run; the HTML page looked
//! at in headless Chromium.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

const PLAYBOOK: &str = r#"
[playbook]
name = "demo"

[[resource]]
type = "file"
path = "/etc/demo.conf"
content = "wanted\n"
"#;

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/results.schema.json")
}

fn records(store: &Path) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for host in std::fs::read_dir(store)? {
        for f in std::fs::read_dir(host?.path())? {
            out.push(serde_json::from_slice(&std::fs::read(f?.path())?)?);
        }
    }
    Ok(out)
}

#[test]
fn the_published_schema_is_the_records_schema() -> TestResult {
    let generated = serde_json::to_string_pretty(&fixer::results::schema())? + "\n";
    if std::env::var_os("FIXER_UPDATE_DOCS").is_some() {
        std::fs::write(schema_path(), &generated)?;
    }
    assert_eq!(
        std::fs::read_to_string(schema_path())?,
        generated,
        "docs/results.schema.json is stale (FIXER_UPDATE_DOCS=1 to rewrite)"
    );
    Ok(())
}

#[test]
fn runs_are_recorded_and_drift_is_read_back() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("demo.toml", PLAYBOOK);
    let pb = pb.to_str().ok_or("path")?;
    let store = sb.base().join("store");
    let to = store.to_str().ok_or("path")?;
    sb.fixer(&["apply", pb, "--report-to", to])
        .assert()
        .success();
    let report = |args: &[&str]| -> Result<String, Box<dyn std::error::Error>> {
        let out = sb
            .fixer_here(&[&["report", to][..], args].concat())
            .output()?;
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        Ok(stdout_of(&out))
    };
    let row = |text: &str| {
        text.lines()
            .find(|l| l.contains("(root "))
            .unwrap_or_default()
            .to_string()
    };
    assert!(row(&report(&[])?).contains(" changed "), "{}", report(&[])?);
    sb.fixer(&["apply", pb, "--report-to", to])
        .assert()
        .success();
    let text = report(&[])?;
    assert!(row(&text).contains("converged"), "{text}");
    assert!(text.contains("1 host: 1 converged."), "{text}");
    // Someone edits the file: the next run changes it back, which is drift.
    sb.file("/etc/demo.conf", "edited\n");
    sb.fixer(&["apply", pb, "--report-to", to])
        .assert()
        .success();
    let text = report(&[])?;
    assert!(row(&text).contains("drifted"), "{text}");
    assert!(text.contains(": 3 runs of 1 host."), "{text}");

    // Every record is valid against the published schema.
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(schema_path())?)?;
    let validator = jsonschema::validator_for(&schema)?;
    let all = records(&store)?;
    assert_eq!(all.len(), 3);
    for r in &all {
        let errors: Vec<String> = validator.iter_errors(r).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{r}: {errors:?}");
        assert_eq!(r["source"], "push");
        assert_eq!(r["playbooks"], serde_json::json!(["demo"]));
    }
    let changed: Vec<&Value> = all.iter().filter(|r| r["status"] == "changed").collect();
    assert_eq!(changed.len(), 2, "{all:?}");
    assert!(changed.iter().all(|r| r["run"].is_string()), "{all:?}");
    // The schema is not a formality: a record missing a field fails it.
    let mut broken = all[0].clone();
    broken.as_object_mut().ok_or("object")?.remove("status");
    assert!(!validator.is_valid(&broken));

    // JSON: the same states.
    let json: Value = serde_json::from_str(&report(&["--format", "json"])?)?;
    assert_eq!(json["records"], 3);
    assert_eq!(json["hosts"][0]["state"], "drifted");
    Ok(())
}

#[test]
fn a_failed_run_is_recorded_as_rolled_back() -> TestResult {
    let sb = Sandbox::new();
    // The second resource cannot be written: /etc/blocked is a folder.
    std::fs::create_dir_all(sb.at("/etc/blocked"))?;
    let pb = sb.playbook(
        "fails.toml",
        &format!("{PLAYBOOK}\n[[resource]]\ntype = \"file\"\npath = \"/etc/blocked\"\ncontent = \"x\\n\"\n"),
    );
    let store = sb.base().join("store");
    let out = sb
        .fixer(&[
            "apply",
            pb.to_str().ok_or("path")?,
            "--report-to",
            store.to_str().ok_or("path")?,
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let all = records(&store)?;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["status"], "failed", "{}", all[0]);
    assert_eq!(all[0]["rolled_back"], true, "{}", all[0]);
    assert!(all[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("/etc/blocked")));
    assert!(!sb.exists("/etc/demo.conf"));
    let out = sb
        .fixer_here(&["report", store.to_str().ok_or("path")?])
        .output()?;
    assert!(stdout_of(&out).contains("failing"), "{}", stdout_of(&out));
    Ok(())
}

#[test]
fn a_store_that_cannot_take_the_record_never_fails_the_run() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("demo.toml", PLAYBOOK);
    // Unwritable: a file stands where the store's folder would be.
    let blocker = sb.base().join("blocker");
    std::fs::write(&blocker, "")?;
    let out = sb
        .fixer(&[
            "apply",
            pb.to_str().ok_or("path")?,
            "--report-to",
            blocker.join("store").to_str().ok_or("path")?,
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("the run is done, but its result was not recorded"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(sb.read("/etc/demo.conf"), "wanted\n");

    // Full: a 64 KiB tmpfs, filled, in a mount namespace of this test's own.
    crate::gotools::tool("unshare");
    if !crate::support::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return Ok(());
    }
    let sb = Sandbox::new();
    let pb = sb.playbook("demo.toml", PLAYBOOK);
    let full = sb.base().join("full");
    std::fs::create_dir(&full)?;
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o size=64k tmpfs \"$1\" && mkdir \"$1/store\" && \
             { dd if=/dev/zero of=\"$1/fill\" bs=4k 2>/dev/null; true; } && \
             shift && exec \"$@\"",
        )
        .arg("sh")
        .arg(&full)
        .arg(assert_cmd::cargo::cargo_bin("fixer"))
        .args(["apply", pb.to_str().ok_or("path")?, "--root"])
        .arg(sb.root())
        .arg("--report-to")
        .arg(full.join("store"))
        .env("HOME", "/root")
        .env("NO_COLOR", "1")
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("its result was not recorded") && err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(sb.read("/etc/demo.conf"), "wanted\n");
    Ok(())
}

#[test]
fn report_names_what_it_cannot_read() -> TestResult {
    let sb = Sandbox::new();
    let store = sb.base().join("store");
    let to = store.to_str().ok_or("path")?;
    // No store at all: an error naming it.
    let out = sb.fixer_here(&["report", to]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains(to), "{}", stderr_of(&out));
    // A record from elsewhere and a broken file are skipped, by name.
    std::fs::create_dir_all(store.join("web1"))?;
    std::fs::write(store.join("web1/a.json"), "{\"schema\": \"other/9\"}")?;
    std::fs::write(store.join("web1/b.json"), "{")?;
    let out = sb.fixer_here(&["report", to]).output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("web1/a.json") && err.contains("web1/b.json"),
        "{err}"
    );
    assert!(
        stdout_of(&out).contains("No results in"),
        "{}",
        stdout_of(&out)
    );
    // report takes no target.
    let out = sb.fixer(&["report", to]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("takes no --root"),
        "{}",
        stderr_of(&out)
    );
    // And --report-to only goes with apply or fix.
    let out = sb.fixer(&["plan", "x.toml", "--report-to", to]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("--report-to records runs"));
    Ok(())
}

/// Count the pixels of `png` within a small distance of `rgb`.
fn pixels_of(png: &Path, rgb: [u8; 3]) -> Result<usize, Box<dyn std::error::Error>> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    let step = info.color_type.samples();
    Ok(buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p.len() >= 3 && p[..3].iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 12))
        .count())
}

#[test]
fn the_html_report_shows_the_fleet_in_chromium() -> TestResult {
    crate::gotools::tool("chromium");
    let sb = Sandbox::new();
    let store = sb.base().join("store");
    // Three hosts: one converged, one drifted, one failing.
    let put = |host: &str, minute: u32, status: &str, changes: u64| -> TestResult {
        let record = serde_json::json!({
            "schema": "fixer-result/1", "host": host, "playbooks": ["demo"],
            "commit": null, "source": "push", "status": status, "changes": changes,
            "rolled_back": if status == "failed" { Some(true) } else { None },
            "run": null, "started": format!("2026-12-01T10:{minute:02}:00Z"),
            "duration_ms": 100, "error": null, "fixer": "0.1.0"
        });
        let dir = store.join(host);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{minute}.json")), record.to_string())?;
        Ok(())
    };
    put("web1", 0, "changed", 1)?;
    put("web1", 30, "ok", 0)?;
    put("web2", 5, "changed", 1)?;
    put("web2", 40, "changed", 1)?;
    put("db1", 10, "ok", 0)?;
    put("db1", 50, "failed", 0)?;
    let page = sb.base().join("fleet.html");
    let out = sb
        .fixer_here(&[
            "report",
            store.to_str().ok_or("path")?,
            "--html",
            page.to_str().ok_or("path")?,
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains("3 hosts: 1 converged, 1 drifted, 1 failing."),
        "{text}"
    );
    let html = std::fs::read_to_string(&page)?;
    // Self-contained: nothing is fetched.
    for fetch in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(fetch), "{fetch}: {html}");
    }
    assert_eq!(html.matches("<circle").count(), 6, "{html}");

    let shot = sb.base().join("fleet.png");
    let profile = tempfile::tempdir()?;
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1000,700",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()?;
    assert!(
        shot.exists(),
        "chromium made no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The failing host's dot and state are red, the converged one green,
    // the drifted one orange: the page rendered what the store holds.
    let red = pixels_of(&shot, [0xc6, 0x28, 0x28])?;
    let green = pixels_of(&shot, [0x2e, 0x7d, 0x32])?;
    let blue = pixels_of(&shot, [0x15, 0x65, 0xc0])?;
    let orange = pixels_of(&shot, [0xef, 0x6c, 0x00])?;
    assert!(
        red > 50 && green > 50 && blue > 50 && orange > 10,
        "red {red}, green {green}, blue {blue}, orange {orange}"
    );
    Ok(())
}

/// `git` from the machine (tests/deps.sh installs it), to read back what
/// git2 pushed.
fn git(args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = crate::gotools::tool("git").args(args).output()?;
    if !out.status.success() {
        return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn hosts_reporting_at_once_to_a_git_branch_lose_no_record() -> TestResult {
    let store = tempfile::tempdir()?;
    let bare = store.path().join("results.git");
    git(&["init", "-q", "--bare", bare.to_str().ok_or("path")?])?;
    let spec = format!("git+file://{}#fleet", bare.display());
    // Eight machines at once, each with its own cache, as separate hosts
    // would be: their pushes race and the losers commit again on top (with
    // eight, an unlocked local push once lost a record).
    const HOSTS: usize = 8;
    let boxes: Vec<Sandbox> = (0..HOSTS).map(|_| Sandbox::new()).collect();
    let mut running = Vec::new();
    for sb in &boxes {
        let pb = sb.playbook("demo.toml", PLAYBOOK);
        let mut cmd = sb.command(&["apply", pb.to_str().ok_or("path")?, "--report-to", &spec]);
        cmd.env("XDG_CACHE_HOME", sb.base().join("cache"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        running.push(cmd.spawn()?);
    }
    for child in running {
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        assert!(
            !stderr_of(&out).contains("not recorded"),
            "{}",
            stderr_of(&out)
        );
    }
    let gitdir = format!("--git-dir={}", bare.display());
    let files = git(&[&gitdir, "ls-tree", "-r", "--name-only", "fleet"])?;
    let folders: std::collections::BTreeSet<&str> = files
        .lines()
        .filter(|f| f.ends_with(".json"))
        .filter_map(|f| f.split('/').next())
        .collect();
    assert_eq!(folders.len(), HOSTS, "{files}");
    assert_eq!(files.lines().count(), HOSTS, "{files}");
    assert_eq!(
        git(&[&gitdir, "rev-list", "--count", "fleet"])?.trim(),
        HOSTS.to_string()
    );
    // Each file is a record of the schema, as git itself reads it.
    for f in files.lines() {
        let text = git(&[&gitdir, "show", &format!("fleet:{f}")])?;
        let record: Value = serde_json::from_str(&text)?;
        assert_eq!(record["schema"], "fixer-result/1", "{text}");
    }

    let reader = &boxes[0];
    let out = reader
        .fixer_here(&["report", &spec])
        .env("XDG_CACHE_HOME", reader.base().join("reader-cache"))
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains(&format!("{HOSTS} hosts:")),
        "{}",
        stdout_of(&out)
    );
    Ok(())
}

#[test]
fn a_git_store_that_cannot_be_reached_never_fails_the_run() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("demo.toml", PLAYBOOK);
    let missing = sb.base().join("no-such-repo.git");
    let spec = format!("git+file://{}", missing.display());
    let out = sb
        .fixer(&["apply", pb.to_str().ok_or("path")?, "--report-to", &spec])
        .env("XDG_CACHE_HOME", sb.base().join("cache"))
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("the run is done, but its result was not recorded")
            && err.contains("no-such-repo.git (branch fixer-results)"),
        "{err}"
    );
    assert_eq!(sb.read("/etc/demo.conf"), "wanted\n");

    // A branch no run has reported to yet: report says so.
    let bare = sb.base().join("empty.git");
    git(&["init", "-q", "--bare", bare.to_str().ok_or("path")?])?;
    let out = sb
        .fixer_here(&["report", &format!("git+file://{}#fleet", bare.display())])
        .env("XDG_CACHE_HOME", sb.base().join("cache"))
        .output()?;
    assert_eq!(out.status.code(), Some(1), "{}", stdout_of(&out));
    let text = format!("{}{}", stdout_of(&out), stderr_of(&out));
    assert!(text.contains("the branch does not exist yet"), "{text}");
    Ok(())
}

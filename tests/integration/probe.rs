//! `probe`: pass/fail reported in plan and apply, never a change; a failed
//! probe after apply rolls the run back unless `on_fail = "warn"`. Servers
//! are loopback listeners of the test's own.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;

use predicates::str::contains;

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

/// A loopback HTTP server answering every request with `status`, serving at
/// most `max` connections (its thread ends with the test process).
fn http_server(status: &str, max: usize) -> Result<u16, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let line = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max).flatten() {
            let mut s = stream;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(line.as_bytes());
        }
    });
    Ok(port)
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> Result<u16, std::io::Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn playbook(sb: &Sandbox, probe: &str) -> String {
    sb.playbook(
        "p.toml",
        &format!(
            "[playbook]\nname = \"p\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/fixed\"\ncontent = \"yes\\n\"\nnotify = [\"h\"]\n[[resource]]\ntype = \"probe\"\n{probe}\n[[handler]]\nid = \"h\"\nrun = \"touch handler-ran\"\n"
        ),
    )
    .display()
    .to_string()
}

#[test]
fn tcp_probe_passes_and_never_changes_anything() -> TestResult {
    let sb = Sandbox::new();
    let port = http_server("204 No Content", 8)?;
    let pb = playbook(&sb, &format!("tcp = \"127.0.0.1:{port}\""));
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains(format!("pass: connected to 127.0.0.1:{port}")))
        .stdout(contains(
            "Plan: 1 to add, 0 to change, 0 to remove, 0 unchanged; 1 check.",
        ));
    // A check is rendered as one, never as an unchanged resource.
    let plan = stdout_of(&sb.fixer(&["plan", &pb]).output()?);
    assert!(
        plan.contains(&format!("? check probe:tcp:127.0.0.1:{port}\n"))
            && !plan.contains("(unchanged)"),
        "{plan}"
    );
    let out = sb.fixer(&["apply", &pb]).output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The probe ran after the handler.
    let handler = text.find("handler h (ran)").ok_or("no handler line")?;
    let probe = text
        .find(&format!("pass: connected to 127.0.0.1:{port}"))
        .ok_or("no probe line")?;
    assert!(handler < probe, "{text}");
    Ok(())
}

#[test]
fn failed_probe_after_apply_rolls_back_unless_warn() -> TestResult {
    let sb = Sandbox::new();
    let port = closed_port()?;
    let pb = playbook(&sb, &format!("tcp = \"127.0.0.1:{port}\"\ntimeout = 2"));
    // In a plan, a failure is reported, not an error.
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains(format!(
            "fail (now, before the changes): cannot connect to 127.0.0.1:{port}"
        )));
    let before = sb.tree();
    let out = sb.fixer(&["apply", &pb]).output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "resource `probe:tcp:127.0.0.1:{port}`: probe failed: cannot connect"
        )),
        "{err}"
    );
    assert!(err.contains("Rolled back run"), "{err}");
    let mut after = sb.tree();
    after.remove("/handler-ran");
    assert_eq!(after, before);

    let pb = playbook(
        &sb,
        &format!("tcp = \"127.0.0.1:{port}\"\ntimeout = 2\non_fail = \"warn\""),
    );
    sb.fixer(&["apply", &pb])
        .assert()
        .success()
        .stdout(contains("warn: cannot connect"));
    assert_eq!(sb.read("/etc/fixed"), "yes\n");
    Ok(())
}

#[test]
fn dns_and_http_probes() -> TestResult {
    let sb = Sandbox::new();
    let pb = playbook(&sb, "dns = \"localhost\"");
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains("pass: localhost resolves to"));
    let pb = playbook(&sb, "dns = \"no-such-host.invalid\"\ntimeout = 3");
    sb.fixer(&["plan", &pb]).assert().success().stdout(contains(
        "fail (now, before the changes): cannot resolve no-such-host.invalid",
    ));

    let _ = crate::gotools::tool("curl");
    let port = http_server("204 No Content", 8)?;
    let pb = playbook(&sb, &format!("http = \"http://127.0.0.1:{port}/health\""));
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains(format!(
            "pass: GET http://127.0.0.1:{port}/health: 204"
        )));
    let pb = playbook(
        &sb,
        &format!("http = \"http://127.0.0.1:{port}/health\"\nexpect_status = [200]"),
    );
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains("204, expected [200]"));
    let down = closed_port()?;
    let pb = playbook(
        &sb,
        &format!("http = \"http://127.0.0.1:{down}/\"\ntimeout = 2"),
    );
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains(format!(
            "fail (now, before the changes): GET http://127.0.0.1:{down}/"
        )));
    Ok(())
}

#[test]
fn malformed_probes_are_refused() -> TestResult {
    let sb = Sandbox::new();
    for (probe, message) in [
        ("tcp = \"no-port\"", "write tcp as HOST:PORT"),
        ("http = \"ftp://x\"", "http:// or https:// URL"),
        (
            "tcp = \"a:1\"\ndns = \"b\"",
            "exactly one of `tcp`, `dns`, `http`",
        ),
        (
            "dns = \"x\"\non_fail = \"ignore\"",
            "unknown variant `ignore`",
        ),
    ] {
        let pb = playbook(&sb, probe);
        sb.fixer(&["validate", &pb])
            .assert()
            .code(1)
            .stderr(contains(message))
            .stderr(contains("p.toml:"));
    }
    Ok(())
}

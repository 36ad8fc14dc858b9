//! `--format json` of every command has the fields docs/json.md documents.

use serde_json::Value;

use crate::support::{stderr_of, Sandbox, TestResult};

const PLAYBOOK: &str = "[playbook]\nname = \"j\"\n[[resource]]\nid = \"motd\"\ntype = \"file\"\npath = \"/etc/motd\"\ncontent = \"hi\\n\"\nmode = \"0644\"\n";

fn json_of(out: &std::process::Output) -> Result<Value, Box<dyn std::error::Error>> {
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)).into())
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

#[test]
fn every_command_prints_the_documented_json() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("p.toml", PLAYBOOK);
    let pb = pb.to_str().ok_or("path")?;
    let run = |args: &[&str]| -> Result<Value, Box<dyn std::error::Error>> {
        let mut full = args.to_vec();
        full.extend(["--format", "json"]);
        let out = sb.fixer(&full).output()?;
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        json_of(&out)
    };

    let v = run(&["validate", pb])?;
    assert_eq!(keys(&v), ["handlers", "playbook", "resources", "valid"]);

    let v = run(&["plan", pb])?;
    assert_eq!(
        keys(&v),
        [
            "changes",
            "handlers",
            "host",
            "interrupted_runs",
            "playbook",
            "resources",
            "summary",
            "values",
            "warnings"
        ]
    );
    let change = &v["resources"][0];
    assert_eq!(
        keys(change),
        ["action", "id", "notes", "operations", "type"]
    );
    assert_eq!(change["action"], "add");
    let op = &change["operations"][0];
    assert_eq!(
        keys(op),
        ["diff", "gid", "mode", "new", "op", "path", "uid"]
    );
    assert_eq!(
        (op["op"].as_str(), op["mode"].as_str()),
        (Some("write"), Some("0644"))
    );
    assert_eq!(
        keys(&v["summary"]),
        ["add", "change", "checks", "remove", "unchanged"]
    );

    let v = run(&["apply", pb])?;
    assert_eq!(
        keys(&v),
        [
            "handlers",
            "host",
            "playbook",
            "resources",
            "run",
            "status",
            "summary",
            "values"
        ]
    );
    assert_eq!(v["status"], "applied");

    let v = run(&["rollback"])?;
    assert_eq!(
        keys(&v),
        [
            "failures",
            "not_undoable",
            "playbook",
            "run",
            "status",
            "undone"
        ]
    );
    assert_eq!(v["status"], "rolled_back");

    // history names statuses as apply and rollback do.
    let v = run(&["history"])?;
    let first = &v[0];
    assert_eq!(
        keys(first),
        ["changes", "finished", "id", "playbook", "started", "status"]
    );
    assert_eq!(first["status"], "rolled_back");

    let v = run(&["prune", "--keep", "0"])?;
    assert_eq!(keys(&v), ["dry_run", "kept", "pruned", "staging"]);
    assert_eq!(v["pruned"].as_array().map(Vec::len), Some(1));

    // An error is JSON too, with the same exit code.
    let out = sb
        .fixer(&["plan", "missing.toml", "--format", "json"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out)?;
    assert_eq!(keys(&v), ["error"]);
    let error = &v["error"];
    assert_eq!(
        keys(error),
        [
            "column", "field", "file", "host", "kind", "line", "message", "path", "playbook",
            "resource"
        ]
    );
    assert_eq!(error["kind"], "read", "{v}");
    assert!(error["message"]
        .as_str()
        .is_some_and(|e| e.contains("missing.toml")));

    // A malformed playbook: where, as fields, not only in the message.
    let bad = sb.playbook(
        "bad.toml",
        "[playbook]\nname = \"b\"\n[[resource]]\ntype = \"file\"\npath = \"/x\"\nmode = \"rwx\"\n",
    );
    let out = sb
        .fixer(&["plan", bad.to_str().ok_or("path")?, "--format", "json"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out)?;
    let error = &v["error"];
    assert_eq!(
        (
            error["kind"].as_str(),
            error["line"].as_u64(),
            error["column"].as_u64(),
            error["field"].as_str()
        ),
        (Some("input"), Some(6), Some(8), Some("resource[0].mode")),
        "{v}"
    );
    assert!(
        error["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("bad.toml")),
        "{v}"
    );
    Ok(())
}

#[test]
fn diagnose_and_init_print_the_documented_json() -> TestResult {
    let sb = Sandbox::new();
    let log = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/diagnose/01_proxy_unreachable.txt"
    );
    let out = sb
        .fixer_here(&["diagnose", log, "--format", "json"])
        .output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_of(&out)?;
    assert_eq!(
        keys(&v),
        [
            "error_lines",
            "lines",
            "log",
            "playbooks",
            "remedies",
            "skipped"
        ]
    );
    assert_eq!(
        keys(&v["remedies"][0]),
        [
            "against",
            "also",
            "answers",
            "category",
            "chosen",
            "command",
            "confidence",
            "conflicts",
            "defaults",
            "description",
            "discovered",
            "evidence",
            "path",
            "playbook",
            "values",
            "vars"
        ]
    );

    let out = sb.fixer_here(&["init", "--format", "json"]).output()?;
    let v = json_of(&out)?;
    assert_eq!(keys(&v[0]), ["description", "name", "path"]);
    let out = sb
        .fixer_here(&["init", "go-mod-tidy", "--format", "json"])
        .output()?;
    let v = json_of(&out)?;
    assert_eq!(keys(&v), ["playbook", "templates"]);
    assert_eq!(v["playbook"], "go-mod-tidy.toml");
    Ok(())
}

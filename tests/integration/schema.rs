//! `fixer schema`: the JSON Schema editors use, and docs/playbook.md, both
//! made from the loader's types. The schema must accept what the loader
//! accepts (every shipped playbook, and one that sets every field of every
//! type) and reject the structural mistakes the loader rejects.

use std::path::Path;

use serde_json::Value;

use crate::support::{Sandbox, TestResult};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn schema_from_binary() -> Result<Value, Box<dyn std::error::Error>> {
    let out = Sandbox::new().fixer_here(&["schema"]).output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn validator() -> Result<jsonschema::Validator, Box<dyn std::error::Error>> {
    let schema = schema_from_binary()?;
    jsonschema::draft7::meta::validate(&schema).map_err(|e| format!("not draft-07: {e}"))?;
    Ok(jsonschema::draft7::new(&schema).map_err(|e| e.to_string())?)
}

/// What the schema says about a playbook's text: the errors, empty if valid.
fn schema_errors(v: &jsonschema::Validator, text: &str) -> Result<Vec<String>, toml::de::Error> {
    let doc: Value = toml::from_str(text)?;
    Ok(v.iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect())
}

/// docs/playbook.schema.json and docs/playbook.md are what `fixer schema`
/// prints: `FIXER_UPDATE_DOCS=1 cargo test --test integration schema`
/// rewrites them.
#[test]
fn schema_and_reference_docs_are_current() -> TestResult {
    let sandbox = Sandbox::new();
    for (args, file) in [
        (&["schema"][..], "docs/playbook.schema.json"),
        (&["schema", "--markdown"][..], "docs/playbook.md"),
    ] {
        let out = sandbox.fixer_here(args).output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = manifest().join(file);
        if std::env::var_os("FIXER_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &out.stdout)?;
        }
        let current = std::fs::read(&path).unwrap_or_default();
        assert!(
            current == out.stdout,
            "{file} is out of date: FIXER_UPDATE_DOCS=1 cargo test --test integration schema"
        );
    }
    Ok(())
}

#[test]
fn every_shipped_playbook_matches_the_schema() -> TestResult {
    let v = validator()?;
    let mut seen = 0;
    for entry in std::fs::read_dir(manifest().join("playbooks"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let errors = schema_errors(&v, &std::fs::read_to_string(&path)?)?;
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 8, "only {seen} shipped playbooks found");
    Ok(())
}

/// Sets every field of every resource type (over one or more tables of it)
/// and of a handler, a symptom and a variable.
const EVERY_FIELD: &str = r#"
[playbook]
name = "every-field"
description = "One of each resource type, with every field set somewhere."
phase = "build"
requires = ">=0.1"

[vars]
user = "deploy"
via = "https"
retries = 3
debug = false
token = { value = "s3cret", sensitive = true }
level = { value = "warn", choices = ["warn", "fail"] }
module = { value = "/srv/app", discover = ["module_root"], from_log = ['(?P<module>/\S+)/go\.mod'] }

[[symptom]]
pattern = 'unknown user (?P<user>[a-z]+)'
description = "a user name in the log"
category = "auth"
confidence = 0.8
vars = { via = "ssh-{{user}}" }
also = true

[[symptom.counter]]
pattern = 'user [a-z]+ is locked'
description = "a locked user is no mistake to fix"
factor = 0.5

[[counter]]
pattern = 'not a real log'
description = "said in tests"

[[resource]]
type = "file"
id = "motd"
notify = ["reload"]
path = "/etc/motd"
content = "hello {{user}}\n"
mode = "0644"
owner = "root"
group = 0
state = "present"

[[resource]]
type = "file"
path = "~/greeting"
template = "greeting.hbs"
vars = { who = "world" }

[[resource]]
type = "permissions"
path = "/srv/app"
mode = "u=rwX,go=rX"
owner = 1000
group = "staff"
recursive = true
skip_missing = true

[[resource]]
type = "clean"
paths = ["~/.cache/go-build", "/var/tmp/fixer-*/**/cache"]

[[resource]]
type = "command"
run = "echo {{user}} > /tmp/fixer-who"
creates = "/tmp/fixer-who"
unless = ["test", "-e", "/tmp/fixer-other"]
only_if = "true"
cwd = "/"
env = { LANG = "C" }
undo = "rm -f /tmp/fixer-who"
timeout = 30

[[resource]]
type = "env"
style = "profile"
path = "/etc/profile.d/go.sh"
vars = { GOPROXY = "https://proxy.example" }
unset = ["GOFLAGS"]

[[resource]]
type = "git_url_rewrite"
scope = "global"
base = "git@git.example.com:"
instead_of = ["https://git.example.com/"]

[[resource]]
type = "git_config"
scope = "/etc/gitconfig"
key = "safe.directory"
value = ["/srv/a", "/srv/b"]

[[resource]]
type = "go_mod_tidy"
dir = "/srv/app"
env = { GOPROXY = "off" }
go = "/usr/bin/go"
timeout = 60

[[resource]]
type = "netplan"
path = "/etc/netplan/60-fixer.yaml"
template = "net.yaml.hbs"
vars = { iface = "eth0" }
netplan = "/usr/sbin/netplan"
merge = true

[[resource]]
type = "netplan"
path = "/etc/netplan/61-fixer.yaml"
[resource.network]
version = 2
ethernets = { eth1 = { dhcp4 = true } }

[[resource]]
type = "probe"
tcp = "127.0.0.1:22"
timeout = 2
on_fail = "warn"

[[resource]]
type = "probe"
dns = "example.com"

[[resource]]
type = "probe"
http = "https://proxy.example/"
expect_status = [200, 204]

[[handler]]
type = "command"
id = "reload"
run = ["true"]
creates = "/run/never"
unless = "false"
only_if = ["true"]
cwd = "/tmp"
env = { A = "1" }
undo = "true"
timeout = 5
"#;

fn every_field_sandbox() -> (Sandbox, std::path::PathBuf) {
    let sb = Sandbox::new();
    sb.playbook("greeting.hbs", "hello {{who}}\n");
    sb.playbook(
        "net.yaml.hbs",
        "network:\n  version: 2\n  ethernets:\n    {{iface}}:\n      dhcp4: true\n",
    );
    let pb = sb.playbook("every.toml", EVERY_FIELD);
    (sb, pb)
}

#[test]
fn a_playbook_setting_every_field_passes_both_the_schema_and_validate() -> TestResult {
    let (sb, pb) = every_field_sandbox();
    sb.fixer_here(&["validate", &pb.to_string_lossy()])
        .assert()
        .success();
    let errors = schema_errors(&validator()?, EVERY_FIELD)?;
    assert!(errors.is_empty(), "{errors:#?}");

    // Every field the schema knows is set above, so a field added to a type
    // (and so to the schema) must be added here, and is checked both ways.
    let schema = schema_from_binary()?;
    let doc: Value = toml::from_str(EVERY_FIELD)?;
    let tables = |section: &str| doc[section].as_array().cloned().unwrap_or_default();
    let mut missing = Vec::new();
    for (name, def) in schema["definitions"].as_object().into_iter().flatten() {
        let (section, kind) = if name == "handler" {
            ("handler", "command")
        } else {
            ("resource", name.as_str())
        };
        for field in def["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|p| p.0)
        {
            // `id` and `notify` are common to every resource type.
            let common = section == "resource" && (field == "id" || field == "notify");
            let set = tables(section)
                .iter()
                .any(|t| (common || t["type"] == kind) && t.get(field).is_some());
            if !set {
                missing.push(format!("{section} {kind}.{field}"));
            }
        }
    }
    for (section, def) in [
        ("playbook", &schema["properties"]["playbook"]),
        ("symptom", &schema["properties"]["symptom"]["items"]),
    ] {
        for field in def["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|p| p.0)
        {
            let table = if section == "symptom" {
                &doc["symptom"][0]
            } else {
                &doc["playbook"]
            };
            if table.get(field).is_none() {
                missing.push(format!("{section}.{field}"));
            }
        }
    }
    assert!(missing.is_empty(), "EVERY_FIELD does not set: {missing:?}");
    Ok(())
}

/// Structural mistakes: the schema (what an editor underlines) and
/// `fixer validate` both refuse each one.
#[test]
fn schema_and_validate_refuse_the_same_mistakes() -> TestResult {
    let head = "[playbook]\nname = \"t\"\n";
    let cases: &[(&str, String)] = &[
        ("unknown section", format!("{head}[resources]\nx = 1\n")),
        ("no [playbook]", "[[resource]]\ntype = \"clean\"\npaths = [\"/a/b\"]\n".into()),
        ("[playbook] without name", "[playbook]\ndescription = \"x\"\n".into()),
        ("unknown field", format!("{head}[[resource]]\ntype = \"file\"\npath = \"/a\"\ncontnet = \"x\"\n")),
        ("no type", format!("{head}[[resource]]\npath = \"/a\"\ncontent = \"x\"\n")),
        ("unknown type", format!("{head}[[resource]]\ntype = \"files\"\npath = \"/a\"\n")),
        ("type not a string", format!("{head}[[resource]]\ntype = 1\n")),
        ("missing required field", format!("{head}[[resource]]\ntype = \"file\"\ncontent = \"x\"\n")),
        ("relative path", format!("{head}[[resource]]\ntype = \"file\"\npath = \"etc/motd\"\ncontent = \"x\"\n")),
        ("mode as a number", format!("{head}[[resource]]\ntype = \"file\"\npath = \"/a\"\ncontent = \"x\"\nmode = 644\n")),
        ("bad enum value", format!("{head}[[resource]]\ntype = \"file\"\npath = \"/a\"\nstate = \"gone\"\n")),
        ("handler of another type", format!("{head}[[handler]]\nid = \"h\"\ntype = \"file\"\npath = \"/a\"\n")),
        ("handler without id", format!("{head}[[handler]]\nrun = \"true\"\n")),
        ("handler with notify", format!("{head}[[handler]]\nid = \"h\"\nrun = \"true\"\nnotify = [\"h\"]\n")),
        ("two probe checks", format!("{head}[[resource]]\ntype = \"probe\"\ntcp = \"a:1\"\ndns = \"a\"\n")),
        ("no probe check", format!("{head}[[resource]]\ntype = \"probe\"\n")),
        ("probe timeout 0", format!("{head}[[resource]]\ntype = \"probe\"\ndns = \"a\"\ntimeout = 0\n")),
        ("empty clean", format!("{head}[[resource]]\ntype = \"clean\"\npaths = []\n")),
        ("permissions with nothing to set", format!("{head}[[resource]]\ntype = \"permissions\"\npath = \"/a\"\n")),
        ("netplan template and network", format!("{head}[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan/a.yaml\"\ntemplate = \"t.hbs\"\n[resource.network]\nversion = 2\n")),
        ("go_mod_tidy timeout 0", format!("{head}[[resource]]\ntype = \"go_mod_tidy\"\ndir = \"/a\"\ntimeout = 0\n")),
        ("unknown env style", format!("{head}[[resource]]\ntype = \"env\"\nstyle = \"bash\"\n")),
        ("notify not an array", format!("{head}[[resource]]\ntype = \"clean\"\npaths = [\"/a/b\"]\nnotify = \"h\"\n")),
        ("run a number", format!("{head}[[resource]]\ntype = \"command\"\nrun = 5\n")),
        ("confidence 0", format!("{head}[vars]\nv = \"x\"\n[[symptom]]\npattern = \"a\"\nconfidence = 0\n")),
        ("confidence over 1", format!("{head}[[symptom]]\npattern = \"a\"\nconfidence = 1.5\n")),
        ("unknown symptom field", format!("{head}[[symptom]]\npattern = \"a\"\nweight = 1\n")),
        ("variable table without value", format!("{head}[vars]\nv = {{ sensitive = true }}\n")),
        ("unknown variable field", format!("{head}[vars]\nv = {{ value = 1, secret = true }}\n")),
        ("variable as an array", format!("{head}[vars]\nv = [1]\n")),
        ("empty choices", format!("{head}[vars]\nv = {{ value = 1, choices = [] }}\n")),
        ("file without content", format!("{head}[[resource]]\ntype = \"file\"\npath = \"/a\"\n")),
        ("empty id", format!("{head}[[resource]]\ntype = \"clean\"\nid = \"\"\npaths = [\"/a/b\"]\n")),
        ("git scope relative", format!("{head}[[resource]]\ntype = \"git_config\"\nscope = \"gitconfig\"\nkey = \"a.b\"\nvalue = \"c\"\n")),
        ("empty rewrite base", format!("{head}[[resource]]\ntype = \"git_url_rewrite\"\nbase = \"\"\ninstead_of = \"https://a/\"\n")),
    ];
    let v = validator()?;
    let sb = Sandbox::new();
    let mut disagreements = Vec::new();
    for (what, text) in cases {
        let pb = sb.playbook("case.toml", text);
        let out = sb
            .fixer_here(&["validate", &pb.to_string_lossy()])
            .output()?;
        if out.status.code() != Some(1) {
            disagreements.push(format!("{what}: fixer validate accepted it"));
        }
        if schema_errors(&v, text)?.is_empty() {
            disagreements.push(format!("{what}: the schema accepted it"));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    Ok(())
}

#[test]
fn schema_takes_no_target() -> TestResult {
    let sb = Sandbox::new();
    let out = sb.fixer(&["schema"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("touches no host"), "{stderr}");
    assert!(out.stdout.is_empty());
    Ok(())
}

/// taplo, the TOML engine of Even Better TOML, installed by tests/deps.sh.
fn taplo() -> std::path::PathBuf {
    let path = manifest().join("target/tools/taplo/node_modules/.bin/taplo");
    assert!(
        path.exists(),
        "{} is missing: run tests/deps.sh test",
        path.display()
    );
    path
}

/// What an editor does with the schema: taplo accepts every shipped
/// playbook and underlines a mistyped field and a bad value, on their lines.
#[test]
fn taplo_checks_playbooks_against_the_schema() -> TestResult {
    let sb = Sandbox::new();
    let schema = sb.playbook("playbook.schema.json", "");
    let out = sb.fixer_here(&["schema"]).output()?;
    std::fs::write(&schema, &out.stdout)?;
    let lint = |files: &[std::path::PathBuf]| {
        std::process::Command::new(taplo())
            .args(["lint", "--no-auto-config", "--colors", "never", "--schema"])
            .arg(format!("file://{}", schema.display()))
            .args(files)
            .output()
    };
    let mut shipped = Vec::new();
    for entry in std::fs::read_dir(manifest().join("playbooks"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            shipped.push(path);
        }
    }
    assert!(shipped.len() >= 8);
    let out = lint(&shipped)?;
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains(&format!("total={}", shipped.len())),
        "taplo did not check every playbook: {report}"
    );

    let bad = sb.playbook(
        "bad.toml",
        "[playbook]\nname = \"t\"\n\n[[resource]]\ntype = \"file\"\npath = \"/a\"\ncontnet = \"x\"\n\n\
         [[resource]]\ntype = \"probe\"\ndns = \"a\"\non_fail = \"maybe\"\n",
    );
    let out = lint(&[bad])?;
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("'contnet' was unexpected"), "{report}");
    assert!(report.contains("bad.toml:7:1"), "{report}");
    assert!(report.contains("\"maybe\" is not valid"), "{report}");
    assert!(report.contains("bad.toml:12:11"), "{report}");
    Ok(())
}

//! Several playbooks planned and applied as one (`fixer plan A B`, `fixer
//! apply A B`, and what `fixer fix` composes): in phase order, one plan,
//! one run, one rollback.

use predicates::str::contains;

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

const PROXY: &str = r#"[playbook]
name = "proxy"
phase = "proxy"

[vars]
mirror = "https://goproxy.example"

[[resource]]
id = "env"
type = "env"
style = "profile"
path = "/etc/profile.d/go.sh"
vars = { GOPROXY = "{{mirror}}" }
"#;

const NETWORK: &str = r#"[playbook]
name = "network"
phase = "network"

[vars]
dns = "10.0.0.53"

[[resource]]
id = "resolv"
type = "file"
path = "/etc/resolv.conf"
content = "nameserver {{dns}}\n"
notify = ["reload"]

[[handler]]
id = "reload"
run = "echo reloaded >> reloads.log"
"#;

const TIDY: &str = r#"[playbook]
name = "tidy"

[[resource]]
id = "marker"
type = "file"
path = "/srv/app/tidied"
content = "yes\n"
"#;

#[test]
fn several_playbooks_are_one_plan_and_one_run_in_phase_order() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/etc/resolv.conf", "nameserver 192.0.2.1\n");
    let (tidy, proxy, network) = (
        sb.playbook("tidy.toml", TIDY),
        sb.playbook("proxy.toml", PROXY),
        sb.playbook("network.toml", NETWORK),
    );
    let paths: Vec<String> = [&tidy, &proxy, &network]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let before = sb.tree();
    let mut plan = vec!["plan"];
    plan.extend(paths.iter().map(String::as_str));
    plan.extend(["--var", "dns=10.9.9.9"]);
    let out = sb.fixer(&plan).output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        text.starts_with("Plan: playbooks `network`, `proxy`, `tidy` on localhost"),
        "{text}"
    );
    // network, then proxy, then the playbook naming no phase; ids prefixed.
    let at = |s: &str| text.find(s).ok_or(format!("no `{s}` in:\n{text}"));
    assert!(at("~ network/resolv")? < at("+ proxy/env")?);
    assert!(at("+ proxy/env")? < at("+ tidy/marker")?);
    assert!(
        text.contains("! handler network/reload (would run)"),
        "{text}"
    );
    // Each playbook's values, and where they came from.
    assert!(
        text.contains("Values of `network`:\n  dns  10.9.9.9  --var"),
        "{text}"
    );
    assert!(
        text.contains("Values of `proxy`:\n  mirror  https://goproxy.example  default"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 2 to add, 1 to change, 0 to remove, 0 unchanged."),
        "{text}"
    );
    assert_eq!(sb.tree(), before, "plan changed the target");

    let mut apply = plan.clone();
    apply[0] = "apply";
    let out = sb.fixer(&apply).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(sb.read("/etc/resolv.conf"), "nameserver 10.9.9.9\n");
    assert_eq!(sb.read("/srv/app/tidied"), "yes\n");
    // One run, named after all of them; one rollback undoes all.
    let history = stdout_of(&sb.fixer(&["history"]).output()?);
    assert_eq!(history.lines().count(), 2, "{history}");
    assert!(history.contains("network+proxy+tidy"), "{history}");
    sb.fixer(&["rollback"]).assert().success();
    let after: Vec<_> = sb
        .tree()
        .into_iter()
        .filter(|(k, _)| k != "/reloads.log")
        .collect();
    assert_eq!(after, before.into_iter().collect::<Vec<_>>());
    Ok(())
}

#[test]
fn a_saved_plan_of_several_playbooks_applies_as_planned() -> TestResult {
    let sb = Sandbox::new();
    let (proxy, tidy) = (
        sb.playbook("proxy.toml", PROXY),
        sb.playbook("tidy.toml", TIDY),
    );
    let saved = sb.base().join("both.plan");
    let (proxy, tidy, saved) = (
        proxy.display().to_string(),
        tidy.display().to_string(),
        saved.display().to_string(),
    );
    sb.fixer(&[
        "plan",
        &proxy,
        &tidy,
        "--var",
        "mirror=https://m.example",
        "--out",
        &saved,
    ])
    .assert()
    .success();
    let text = std::fs::read_to_string(&saved)?;
    assert!(text.contains("\"fixer-plan/2\""), "{text}");
    // The values were saved with the plan: none is needed again.
    sb.fixer(&["apply", &saved]).assert().success();
    assert!(sb
        .read("/etc/profile.d/go.sh")
        .contains("https://m.example"));
    assert!(sb.exists("/srv/app/tidied"));
    // A saved plan goes alone.
    sb.fixer(&["apply", &saved, &tidy])
        .assert()
        .code(1)
        .stderr(contains("is a saved plan: apply it alone"));
    Ok(())
}

#[test]
fn playbooks_managing_the_same_thing_are_refused_together() -> TestResult {
    let sb = Sandbox::new();
    let a = sb.playbook(
        "a.toml",
        "[playbook]\nname = \"a\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/x\"\ncontent = \"a\"\n",
    );
    let b = sb.playbook(
        "b.toml",
        "[playbook]\nname = \"b\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/./x\"\ncontent = \"b\"\n",
    );
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let before = sb.tree();
    for command in ["plan", "apply"] {
        sb.fixer(&[command, &a, &b])
            .assert()
            .code(1)
            .stderr(contains("playbooks `a` ("))
            .stderr(contains("and `b` ("))
            .stderr(contains("both manage /etc/x"));
    }
    sb.fixer(&["plan", &a, &a])
        .assert()
        .code(1)
        .stderr(contains("playbook `a` is given twice"));
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn a_var_goes_to_the_playbooks_declaring_it_and_must_be_declared_by_one() -> TestResult {
    let sb = Sandbox::new();
    let (proxy, tidy) = (
        sb.playbook("proxy.toml", PROXY),
        sb.playbook("tidy.toml", TIDY),
    );
    let (proxy, tidy) = (proxy.display().to_string(), tidy.display().to_string());
    sb.fixer(&["plan", &proxy, &tidy, "--var", "mirror=https://x.example"])
        .assert()
        .success()
        .stdout(contains("GOPROXY='https://x.example'"));
    sb.fixer(&["plan", &proxy, &tidy, "--var", "mirorr=https://x.example"])
        .assert()
        .code(1)
        .stderr(contains(
            "--var mirorr: variable `mirorr` is not declared in the [vars] of any of the playbooks",
        ));
    let vars = sb.playbook("vars.toml", "nope = 1\n");
    sb.fixer(&["plan", &proxy, &tidy, "--vars", &vars.display().to_string()])
        .assert()
        .code(1)
        .stderr(contains("vars.toml:1:1"))
        .stderr(contains(
            "`nope` is not declared in the [vars] of any of the playbooks",
        ));
    // Each file on its own for validate.
    sb.fixer(&["validate", &proxy, &tidy])
        .assert()
        .success()
        .stdout(contains("valid playbook `proxy`"))
        .stdout(contains("valid playbook `tidy`"));
    Ok(())
}

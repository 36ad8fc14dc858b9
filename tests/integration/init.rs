//! `fixer init`: a new playbook from a shipped one, self-contained, never
//! overwriting.

use predicates::str::contains;

use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

#[test]
fn without_a_name_it_lists_the_shipped_playbooks() -> TestResult {
    let sb = Sandbox::new();
    let out = sb.fixer_here(&["init"]).output()?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    for name in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks"))? {
        let name = name?.path();
        let stem = name.file_stem().and_then(|s| s.to_str()).ok_or("name")?;
        assert!(
            text.lines().any(|l| l.starts_with(stem)),
            "{stem} not listed:\n{text}"
        );
    }
    assert!(
        text.lines().any(|l| l.starts_with("netplan-static-dns")
            && l.ends_with("Static address, default route and working nameservers via netplan")),
        "{text}"
    );
    let out = sb.fixer_here(&["init", "--format", "json"]).output()?;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert!(list
        .as_array()
        .ok_or("array")?
        .iter()
        .any(|p| p["name"] == "go-proxy-mirror"));
    Ok(())
}

#[test]
fn init_copies_the_playbook_and_its_template_and_the_copy_validates() -> TestResult {
    let sb = Sandbox::new();
    sb.fixer_here(&["init", "netplan-static-dns", "--to", "site/dns.toml"])
        .assert()
        .success()
        .stdout(contains("Wrote site/dns.toml"))
        .stdout(contains("Wrote site/templates/netplan/static.yaml.hbs"));
    let text = std::fs::read_to_string(sb.base().join("site/dns.toml"))?;
    assert!(text.starts_with("# Started from the shipped playbook `netplan-static-dns`"));
    assert!(
        text.contains("template = \"templates/netplan/static.yaml.hbs\""),
        "{text}"
    );
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates/netplan/static.yaml.hbs"
    ))?;
    assert_eq!(
        std::fs::read_to_string(sb.base().join("site/templates/netplan/static.yaml.hbs"))?,
        shipped
    );
    sb.fixer(&["validate", "site/dns.toml"])
        .assert()
        .success()
        .stdout(contains("valid playbook `netplan-static-dns`"));
    // The default destination is ./NAME.toml.
    sb.fixer_here(&["init", "go-proxy-mirror"])
        .assert()
        .success();
    assert!(sb.base().join("go-proxy-mirror.toml").is_file());
    Ok(())
}

#[test]
fn init_never_overwrites_and_refuses_unknown_names_and_targets() -> TestResult {
    let sb = Sandbox::new();
    std::fs::write(sb.base().join("mine.toml"), "my own\n")?;
    sb.fixer_here(&["init", "go-mod-tidy", "--to", "mine.toml"])
        .assert()
        .code(1)
        .stderr(contains("mine.toml exists: fixer init never overwrites"));
    assert_eq!(
        std::fs::read_to_string(sb.base().join("mine.toml"))?,
        "my own\n"
    );

    // A template in the way stops it before the playbook is written.
    std::fs::create_dir_all(sb.base().join("templates/netplan"))?;
    std::fs::write(sb.base().join("templates/netplan/dhcp.yaml.hbs"), "mine\n")?;
    sb.fixer_here(&["init", "netplan-dhcp"])
        .assert()
        .code(1)
        .stderr(contains("templates/netplan/dhcp.yaml.hbs exists"));
    assert!(!sb.base().join("netplan-dhcp.toml").exists());

    sb.fixer_here(&["init", "no-such"])
        .assert()
        .code(1)
        .stderr(contains(
            "no shipped playbook `no-such`; choose one of: git-ssh-rewrite,",
        ));
    assert!(!sb.base().join("no-such.toml").exists());

    let out = sb.fixer(&["init", "go-mod-tidy"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("`fixer init` touches no host"));
    assert!(!sb.base().join("go-mod-tidy.toml").exists());
    Ok(())
}

/// A write failing part-way (a full disk) leaves nothing behind: the
/// template already copied and the folders made for it are removed.
#[cfg(feature = "failpoints")]
#[test]
fn init_failing_part_way_leaves_nothing_behind() -> TestResult {
    let sb = Sandbox::new();
    // Writes: the scratch template, the scratch playbook, the template,
    // then the playbook, which fails.
    let out = sb
        .fixer_here(&["init", "netplan-static-dns", "--to", "site/dns.toml"])
        .env("FIXER_FAILPOINT", "write:4:enospc")
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("site/dns.toml") && err.contains("No space left"),
        "{err}"
    );
    assert!(!sb.base().join("site").exists(), "init left site/ behind");
    // The same with the first real write failing.
    let out = sb
        .fixer_here(&["init", "netplan-static-dns", "--to", "site/dns.toml"])
        .env("FIXER_FAILPOINT", "write:3:enospc")
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(!sb.base().join("site").exists());
    Ok(())
}

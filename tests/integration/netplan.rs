//! netplan files: compared as YAML, validated by the real `netplan generate`
//! before anything is written, 0600 root:root, applied by a handler.

use predicates::str::contains;

use crate::gotools::tool;
use crate::support::{stderr_of, stdout_of, Sandbox, TestResult};

fn shipped(name: &str) -> String {
    format!("{}/playbooks/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn require_netplan() {
    let _ = tool("netplan");
}

fn inline(sb: &Sandbox, network: &str) -> String {
    sb.playbook(
        "n.toml",
        &format!("[playbook]\nname = \"n\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan/01-netcfg.yaml\"\n[resource.network]\n{network}"),
    )
    .display()
    .to_string()
}

#[test]
fn dhcp_playbook_writes_validates_and_generates() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    sb.file(
        "/etc/netplan/01-netcfg.yaml",
        "network:\n  version: 2\n  ethernets:\n    ens3:\n      addresses: [10.9.9.9/24]\n",
    );
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    sb.file(
        "/etc/netplan/50-cloud.yaml",
        "network:\n  version: 2\n  ethernets:\n    ens4:\n      dhcp4: true\n",
    );
    sb.chmod("/etc/netplan/50-cloud.yaml", 0o600);
    let other_before = sb.read("/etc/netplan/50-cloud.yaml");
    let pb = shipped("netplan-dhcp.toml");
    let out = sb
        .fixer(&["plan", &pb, "--var", "interface=ens3"])
        .output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        text.contains("-      addresses:\n    -      - 10.9.9.9/24\n    +      dhcp4: true")
            || text.contains("+      dhcp4: true"),
        "{text}"
    );
    assert!(
        text.contains("! handler netplan-apply (would run)"),
        "{text}"
    );
    sb.fixer(&["apply", &pb, "--var", "interface=ens3"])
        .assert()
        .success();
    assert!(sb
        .read("/etc/netplan/01-netcfg.yaml")
        .contains("dhcp4: true"));
    let t = sb.tree();
    let f = &t["/etc/netplan/01-netcfg.yaml"];
    assert_eq!((f.mode, f.uid, f.gid), (0o600, 0, 0));
    assert_eq!(sb.read("/etc/netplan/50-cloud.yaml"), other_before);
    // The handler ran netplan generate on the root: networkd units exist.
    assert!(sb.exists("/run/systemd/network/10-netplan-ens3.network"));
    assert!(sb.exists("/run/systemd/network/10-netplan-ens4.network"));
    sb.fixer(&["plan", &pb, "--var", "interface=ens3"])
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

#[test]
fn static_dns_playbook_sets_nameservers() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    let pb = shipped("netplan-static-dns.toml");
    // An empty image: nothing to read the interface from.
    let args = [
        "--var",
        "interface=eth0",
        "--var",
        "address=10.1.2.3/24",
        "--var",
        "gateway=10.1.2.1",
        "--var",
        "nameservers=10.1.2.53, 9.9.9.9",
        "--var",
        "search=corp.example",
    ];
    sb.fixer(&[&["apply", &pb][..], &args].concat())
        .assert()
        .success();
    let net = sb.read("/run/systemd/network/10-netplan-eth0.network");
    assert!(net.contains("DNS=10.1.2.53"), "{net}");
    assert!(net.contains("DNS=9.9.9.9"), "{net}");
    assert!(net.contains("Domains=corp.example"), "{net}");
    assert!(net.contains("Gateway=10.1.2.1"), "{net}");
    Ok(())
}

#[test]
fn formatting_key_order_and_comments_are_not_changes() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    sb.file(
        "/etc/netplan/01-netcfg.yaml",
        "# hand-written\nnetwork: {ethernets: {eth0: {dhcp4: true}}, version: 2}\n",
    );
    let pb = inline(
        &sb,
        "version = 2\n[resource.network.ethernets.eth0]\ndhcp4 = true\n",
    );
    // Same data, but 0644: only the mode changes.
    let out = sb.fixer(&["plan", &pb]).output()?;
    let text = stdout_of(&out);
    assert!(
        text.contains("/etc/netplan/01-netcfg.yaml: mode 0644 -> 0600"),
        "{text}"
    );
    assert!(
        !text.contains("+++"),
        "a formatting difference was shown as a change:\n{text}"
    );
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

#[test]
fn deprecated_keys_are_reported_in_the_plan() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    let pb = inline(&sb, "version = 2\n[resource.network.ethernets.eth0]\naddresses = [\"10.0.0.5/24\"]\ngateway4 = \"10.0.0.1\"\n");
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains("netplan warns: `gateway4` has been deprecated"));
    Ok(())
}

#[test]
fn invalid_files_are_refused_before_anything_is_written() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    sb.file("/etc/netplan/01-netcfg.yaml", "network:\n  version: 2\n");
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    let before = sb.tree();

    // netplan's schema: a misspelt key and a bad boolean, in netplan's words.
    for (network, message) in [
        (
            "version = 2\n[resource.network.ethernets.eth0]\nadresses = [\"10.0.0.5/24\"]\n",
            "unknown key 'adresses'",
        ),
        (
            "version = 2\n[resource.network.ethernets.eth0]\ndhcp4 = \"maybe\"\n",
            "invalid boolean value 'maybe'",
        ),
    ] {
        let pb = inline(&sb, network);
        let out = sb.fixer(&["apply", &pb]).output()?;
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("netplan generate (validating the new file)` rejected it"),
            "{err}"
        );
        assert!(err.contains(message), "{err}");
        assert!(
            err.contains("/etc/netplan/01-netcfg.yaml:"),
            "netplan's location is kept: {err}"
        );
        assert_eq!(sb.tree(), before);
    }

    // YAML syntax, caught at validate time with the template's line and column.
    sb.playbook(
        "bad.yaml.hbs",
        "network:\n  version: 2\n  ethernets: [unclosed\n",
    );
    let pb = sb.playbook(
        "t.toml",
        "[playbook]\nname = \"t\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan/01-netcfg.yaml\"\ntemplate = \"bad.yaml.hbs\"\n",
    );
    sb.fixer(&["validate", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("t.toml:6:12: field `resource[0].template`"))
        .stderr(contains(
            "template bad.yaml.hbs renders to invalid YAML at line",
        ));

    // Not a netplan location.
    let pb = sb.playbook(
        "w.toml",
        "[playbook]\nname = \"w\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/network/interfaces.yaml\"\n[resource.network]\nversion = 2\n",
    );
    sb.fixer(&["validate", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains(
            "netplan reads only *.yaml files directly in /etc/netplan",
        ));

    let pb = sb.playbook(
        "m.toml",
        "[playbook]\nname = \"m\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan/01-netcfg.yaml\"\nnetplan = \"/nonexistent/netplan\"\n[resource.network]\nversion = 2\n",
    );
    sb.fixer(&["plan", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("`/nonexistent/netplan` not found on localhost"))
        .stderr(contains("install netplan.io"));
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn rollback_restores_the_previous_netplan_file() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    sb.file(
        "/etc/netplan/01-netcfg.yaml",
        "network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true}\n",
    );
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    let before = sb.tree();
    let pb = inline(
        &sb,
        "version = 2\n[resource.network.ethernets.eth0]\naddresses = [\"10.0.0.5/24\"]\n",
    );
    sb.fixer(&["apply", &pb]).assert().success();
    assert!(sb
        .read("/etc/netplan/01-netcfg.yaml")
        .contains("10.0.0.5/24"));
    sb.fixer(&["rollback"]).assert().success();
    assert_eq!(sb.tree(), before);
    Ok(())
}

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

    // netplan's schema: a misspelt key and a bad boolean, in netplan's
    // words, named by the playbook line that set them.
    for (network, message, set_by) in [
        (
            "version = 2\n[resource.network.ethernets.eth0]\nadresses = [\"10.0.0.5/24\"]\n",
            "unknown key 'adresses'",
            "n.toml:9:1: field `resource[0].network.ethernets.eth0.adresses`: netplan rejects the setting here",
        ),
        (
            "version = 2\n[resource.network.ethernets.eth0]\ndhcp4 = \"maybe\"\n",
            "invalid boolean value 'maybe'",
            "n.toml:9:1: field `resource[0].network.ethernets.eth0.dhcp4`: netplan rejects the setting here",
        ),
        (
            "version = 2\n[resource.network.ethernets.eth0]\ndhcp4 = true\naddresses = [\"10.0.0.5/24\", \"10.0.0.1/33\"]\n",
            "invalid prefix length in address '10.0.0.1/33'",
            "n.toml:10:1: field `resource[0].network.ethernets.eth0.addresses`",
        ),
    ] {
        let pb = inline(&sb, network);
        let out = sb.fixer(&["apply", &pb]).output()?;
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("`netplan generate` (validating the new file) rejected it"),
            "{err}"
        );
        assert!(err.contains(message), "{err}");
        assert!(err.contains(set_by), "{set_by:?} not in {err}");
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

/// The file as a user wrote it: a comment in Chinese, a flow list, a
/// comment at the end of a line, another interface.
const HAND_WRITTEN: &str = "# 启用DHCP获取IP
network:
  version: 2
  renderer: networkd   # 默认
  ethernets:
    enp0s3:
      dhcp4: true
      nameservers:
        addresses: [8.8.8.8, 1.1.1.1]
    enp0s8:
      dhcp4: false  # unused
";

#[test]
fn a_change_edits_the_file_keeping_comments_and_flow_lists() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    sb.file("/etc/netplan/01-netcfg.yaml", HAND_WRITTEN);
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    let pb = inline(
        &sb,
        "version = 2\nrenderer = \"networkd\"\n[resource.network.ethernets.enp0s3]\ndhcp4 = true\nnameservers = { addresses = [\"9.9.9.9\", \"1.1.1.1\"] }\n",
    );
    let out = sb.fixer(&["plan", &pb]).output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The diff is between the file's bytes (not a re-serialisation) and
    // what will be written: the list changes in its own style, the
    // interface the playbook does not declare goes with its lines.
    for line in [
        "    @@ -6,6 +6,4 @@\n         enp0s3:\n",
        "    -        addresses: [8.8.8.8, 1.1.1.1]\n",
        "    -    enp0s8:\n    -      dhcp4: false  # unused\n",
        "    +        addresses: [9.9.9.9, 1.1.1.1]\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    sb.fixer(&["apply", &pb]).assert().success();
    let want = HAND_WRITTEN
        .replace("[8.8.8.8, 1.1.1.1]", "[9.9.9.9, 1.1.1.1]")
        .replace("    enp0s8:\n      dhcp4: false  # unused\n", "");
    assert_eq!(sb.read("/etc/netplan/01-netcfg.yaml"), want);
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

#[test]
fn a_merge_edits_only_the_keys_it_sets() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    sb.file("/etc/netplan/01-netcfg.yaml", HAND_WRITTEN);
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    let pb = sb.playbook(
        "m.toml",
        "[playbook]\nname = \"m\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan/01-netcfg.yaml\"\nmerge = true\n[resource.network.ethernets.enp0s3]\ndhcp4 = false\naddresses = [\"10.0.0.5/24\"]\n",
    );
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["apply", pb]).assert().success();
    let want = HAND_WRITTEN
        .replace("      dhcp4: true\n", "      dhcp4: false\n")
        .replace(
            "        addresses: [8.8.8.8, 1.1.1.1]\n",
            "        addresses: [8.8.8.8, 1.1.1.1]\n      addresses:\n      - 10.0.0.5/24\n",
        );
    assert_eq!(sb.read("/etc/netplan/01-netcfg.yaml"), want);
    Ok(())
}

#[test]
fn a_file_that_is_not_yaml_is_replaced_whole() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    sb.file("/etc/netplan/01-netcfg.yaml", "network: [unclosed\n");
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    let pb = inline(
        &sb,
        "version = 2\n[resource.network.ethernets.eth0]\ndhcp4 = true\n",
    );
    let out = sb.fixer(&["plan", &pb]).output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("    -network: [unclosed\n"), "{text}");
    sb.fixer(&["apply", &pb]).assert().success();
    assert_eq!(
        sb.read("/etc/netplan/01-netcfg.yaml"),
        "network:\n  ethernets:\n    eth0:\n      dhcp4: true\n  version: 2\n"
    );
    Ok(())
}

#[test]
fn a_rejected_value_names_the_template_variable_or_no_line_when_the_file_had_it() -> TestResult {
    require_netplan();
    let sb = Sandbox::new();
    sb.playbook(
        "net.yaml.hbs",
        "network:\n  version: 2\n  ethernets:\n    {{iface}}:\n      dhcp4: {{dhcp}}\n",
    );
    let pb = sb.playbook(
        "t.toml",
        "[playbook]\nname = \"t\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan/01-netcfg.yaml\"\ntemplate = \"net.yaml.hbs\"\nvars = { iface = \"eth0\", dhcp = \"maybe\" }\n",
    );
    let before = sb.tree();
    let out = sb.fixer(&["plan", pb.to_str().ok_or("path")?]).output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("t.toml:7:26: field `resource[0].vars.dhcp`: netplan rejects `dhcp`, which the template puts at `network.ethernets.eth0.dhcp4`"),
        "{err}"
    );
    assert!(err.contains("invalid boolean value 'maybe'"), "{err}");
    assert_eq!(sb.tree(), before);

    // Written in the template itself: the template is named.
    sb.playbook(
        "fixed.yaml.hbs",
        "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: maybe\n",
    );
    let pb = sb.playbook(
        "f.toml",
        "[playbook]\nname = \"f\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan/01-netcfg.yaml\"\ntemplate = \"fixed.yaml.hbs\"\n",
    );
    let out = sb.fixer(&["plan", pb.to_str().ok_or("path")?]).output()?;
    let err = stderr_of(&out);
    assert!(
        err.contains("f.toml:6:12: field `resource[0].template`: netplan rejects what this template renders at `network.ethernets.eth0.dhcp4`"),
        "{err}"
    );

    // A value the file already had, kept by a merge, is no line's doing.
    sb.file(
        "/etc/netplan/01-netcfg.yaml",
        "network:\n  version: 2\n  ethernets:\n    eth1: {dhcp4: maybe}\n",
    );
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    let before_merge = sb.tree();
    let pb = sb.playbook(
        "m.toml",
        "[playbook]\nname = \"m\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan/01-netcfg.yaml\"\nmerge = true\n[resource.network.ethernets.eth0]\ndhcp4 = true\n",
    );
    let out = sb.fixer(&["apply", pb.to_str().ok_or("path")?]).output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("command `netplan generate (validating the new file)` rejected it"),
        "{err}"
    );
    assert!(!err.contains("m.toml:"), "{err}");
    assert_eq!(sb.tree(), before_merge);
    Ok(())
}

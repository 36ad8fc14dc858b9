//! Values read from the target (`discover`): the host's own interface,
//! addressing, cache owner and module instead of a playbook's defaults,
//! each shown in the plan with where it came from; a default the host
//! shows wrong is an error, not a silent rewrite.

use predicates::str::contains;

use crate::gotools::tool;
use crate::support::{is_root, stderr_of, stdout_of, Sandbox, TestResult};

fn shipped(name: &str) -> String {
    format!("{}/playbooks/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// What cloud-init writes on a DHCP VM.
const CLOUD_INIT: &str = "# This file is generated from information provided by the datasource.\n\
network:\n    ethernets:\n        enp0s3:\n            dhcp4: true\n            match:\n                macaddress: 52:54:00:12:34:56\n            set-name: enp0s3\n    version: 2\n";

#[test]
fn a_dhcp_vm_keeps_its_interface_and_dhcp_and_only_gets_dns() -> TestResult {
    let _ = tool("netplan");
    let sb = Sandbox::new();
    sb.file("/etc/netplan/50-cloud-init.yaml", CLOUD_INIT);
    sb.chmod("/etc/netplan/50-cloud-init.yaml", 0o600);
    let pb = shipped("netplan-static-dns.toml");
    let out = sb.fixer(&["plan", &pb]).output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    for line in [
        "  interface      enp0s3                           host: ethernet in /etc/netplan/50-cloud-init.yaml",
        "  file           /etc/netplan/50-cloud-init.yaml  host: the file configuring enp0s3",
        "  dhcp4          true                             host: enp0s3 dhcp4 in /etc/netplan/50-cloud-init.yaml",
        "  nameservers    '1.1.1.1, 8.8.8.8'               default",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    // Not eth0, not 192.168.122.10: the playbook's examples stay out.
    assert!(
        !text.contains("eth0") && !text.contains("192.168.122"),
        "{text}"
    );
    sb.fixer(&["apply", &pb]).assert().success();
    let written = sb.read("/etc/netplan/50-cloud-init.yaml");
    for kept in [
        "macaddress: 52:54:00:12:34:56",
        "set-name: enp0s3",
        "dhcp4: true",
    ] {
        assert!(written.contains(kept), "lost `{kept}`:\n{written}");
    }
    // netplan itself: DHCP stays, its DNS servers give way to ours.
    let net = sb.read("/run/systemd/network/10-netplan-enp0s3.network");
    assert!(net.contains("DHCP=ipv4"), "{net}");
    assert!(
        net.contains("DNS=1.1.1.1") && net.contains("DNS=8.8.8.8"),
        "{net}"
    );
    assert!(net.contains("UseDNS=false"), "{net}");
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains("No changes"));
    Ok(())
}

#[test]
fn a_static_host_keeps_its_address_and_route() -> TestResult {
    let _ = tool("netplan");
    let sb = Sandbox::new();
    sb.file(
        "/etc/netplan/01-netcfg.yaml",
        "network:\n  version: 2\n  renderer: networkd\n  ethernets:\n    ens3:\n      addresses: [10.0.0.5/24]\n      routes:\n        - to: default\n          via: 10.0.0.1\n      nameservers:\n        addresses: [10.0.0.250]\n        search: [corp.example]\n",
    );
    sb.chmod("/etc/netplan/01-netcfg.yaml", 0o600);
    let pb = shipped("netplan-static-dns.toml");
    sb.fixer(&["apply", &pb, "--var", "nameservers=10.0.0.53"])
        .assert()
        .success()
        .stdout(contains("address        10.0.0.5/24"))
        .stdout(contains(
            "host: ens3 default route in /etc/netplan/01-netcfg.yaml",
        ));
    let net = sb.read("/run/systemd/network/10-netplan-ens3.network");
    for want in [
        "Address=10.0.0.5/24",
        "Gateway=10.0.0.1",
        "DNS=10.0.0.53",
        "Domains=corp.example",
    ] {
        assert!(net.contains(want), "no {want}:\n{net}");
    }
    assert!(!net.contains("10.0.0.250"), "{net}");
    Ok(())
}

#[test]
fn a_default_the_host_contradicts_is_an_error_not_a_rewrite() -> TestResult {
    let sb = Sandbox::new();
    // No netplan configuration to read the interface from.
    sb.file("/etc/netplan/.keep", "");
    let pb = shipped("netplan-static-dns.toml");
    let before = sb.tree();
    for command in ["plan", "apply"] {
        let out = sb.fixer(&[command, &pb]).output()?;
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(
                "variable `interface` (netplan.interface): no netplan file of the target \
                 configures an ethernet interface, so its default `eth0` would be wrong on"
            ) && err.contains("give it with --var interface=..."),
            "{err}"
        );
        assert_eq!(sb.tree(), before);
    }
    // A static interface without an address of its own is no better.
    sb.file(
        "/etc/netplan/01.yaml",
        "network:\n  ethernets:\n    ens3:\n      dhcp4: false\n      addresses: [\"fe80::1/64\"]\n",
    );
    sb.fixer(&["plan", &pb]).assert().code(1).stderr(contains(
        "variable `address` (netplan.address): ens3 has no static IPv4 address",
    ));
    // Given on the command line, the value is taken as it is.
    sb.fixer(&[
        "plan",
        &pb,
        "--var",
        "interface=ens3",
        "--var",
        "address=10.1.0.2/24",
        "--var",
        "gateway=10.1.0.1",
    ])
    .assert()
    .success()
    .stdout(contains("address        10.1.0.2/24"))
    .stdout(contains("--var"));
    Ok(())
}

#[test]
fn whose_cache_it_is_is_read_from_the_owner_on_the_way_to_it() -> TestResult {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return Ok(());
    }
    let sb = Sandbox::new();
    sb.file(
        "/etc/passwd",
        "root:x:0:0::/root:/bin/sh\nbuilder:x:1600:1601::/srv/build:/bin/sh\n",
    );
    sb.file("/etc/group", "root:x:0:\nbuilders:x:1601:\n");
    // Not under /home: the user is the owner of /srv/build; the cache
    // itself was left root's by a `sudo go`.
    sb.file("/srv/build/go/pkg/mod/cache/download/x", "x");
    std::os::unix::fs::chown(sb.at("/srv/build"), Some(1600), Some(1601))?;
    let pb = shipped("go-cache-permissions.toml");
    let out = sb
        .fixer(&[
            "plan",
            &pb,
            "--var",
            "gomodcache=/srv/build/go/pkg/mod",
            "--var",
            "gocache=/srv/build/.cache/go-build",
        ])
        .output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("  user        builder"), "{text}");
    assert!(text.contains("host: owner of /srv/build"), "{text}");
    assert!(text.contains("  group       builders"), "{text}");
    assert!(text.contains("owner 0 -> 1600, group 0 -> 1601"), "{text}");

    // Everything on the way is root's: whose it is cannot be told.
    let sb = Sandbox::new();
    sb.file("/go/pkg/mod/cache/download/x", "x");
    let before = sb.tree();
    sb.fixer(&["apply", &pb, "--var", "gomodcache=/go/pkg/mod"])
        .assert()
        .code(1)
        .stderr(contains(
            "/go/pkg/mod and every folder above it belong to root: whose it is cannot be told",
        ))
        .stderr(contains("give it with --var"));
    assert_eq!(sb.tree(), before);
    Ok(())
}

#[test]
fn the_module_is_the_one_fixer_runs_in() -> TestResult {
    let sb = Sandbox::new();
    sb.file("/srv/shop/go.mod", "module shop\n");
    sb.file("/srv/shop/cmd/main.go", "package main\n");
    let pb = sb.playbook(
        "m.toml",
        "[playbook]\nname = \"m\"\n[vars]\nmodule_dir = { value = \"/srv/app\", discover = \"module_root\" }\n\
         [[resource]]\ntype = \"file\"\npath = \"{{module_dir}}/.fixed\"\ncontent = \"\"\n",
    );
    let pb = pb.display().to_string();
    let out = sb
        .fixer(&["plan", &pb])
        .current_dir(sb.at("/srv/shop/cmd"))
        .output()?;
    let text = stdout_of(&out);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        text.contains("module_dir  /srv/shop  host: /srv/shop/go.mod (where fixer runs)"),
        "{text}"
    );
    assert!(text.contains("+ file:/srv/shop/.fixed"), "{text}");
    // Outside the root nothing can be read: the default stays, and says so.
    sb.fixer(&["plan", &pb])
        .assert()
        .success()
        .stdout(contains("module_dir  /srv/app  default"));
    Ok(())
}

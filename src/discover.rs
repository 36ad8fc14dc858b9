//! Facts read from the target to fill the variables a playbook declares as
//! discovered (`interface = { value = "eth0", discover = "netplan.interface" }`),
//! so that a fix uses the host's own interface, addressing, cache owner or
//! module, not the playbook author's example.
//!
//! A fact is read only for a variable nobody gave a value (inventory,
//! `--vars`, `--var`, the error log). It answers with a value and where it
//! was read; or that the target cannot tell (the default stays, and the
//! plan says "default"); or that the target shows the default is wrong for
//! it, with no value to offer (a DHCP host has no static address to keep,
//! a cache belongs to no one but root): then planning fails, naming the
//! variable, rather than writing the example's value onto the host.
//!
//! Facts are read through [`Host`], so they come from the target: a
//! `--root` image's own files, a remote host's over SSH.

use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

use crate::error::Error;
use crate::host::{FileKind, Host, OnHost};
use crate::playbook::vars::{Found, Origin, Vars};

/// The facts a playbook may name in `discover`.
pub const FACTS: &[(&str, &str)] = &[
    (
        "netplan.interface",
        "the ethernet interface the target's netplan files configure (the one with the default \
         route when there are several)",
    ),
    (
        "netplan.file",
        "the netplan file configuring that interface (the last, in netplan's order)",
    ),
    (
        "netplan.renderer",
        "that file's `renderer`, else the last one a netplan file names",
    ),
    (
        "netplan.dhcp4",
        "whether that interface gets its IPv4 address by DHCP (true or false)",
    ),
    (
        "netplan.address",
        "its static IPv4 address with prefix (`10.0.0.5/24`); empty on DHCP",
    ),
    (
        "netplan.gateway",
        "its default route's gateway; empty on DHCP",
    ),
    ("netplan.nameservers", "its nameservers, comma-separated"),
    ("netplan.search", "its DNS search domains, comma-separated"),
    (
        "owner:VAR",
        "the user owning the path in variable VAR: the nearest folder on the way to / that root \
         does not own (a cache root's `sudo go` left root-owned inside stays the user's)",
    ),
    ("group:VAR", "that folder's group"),
    (
        "module_root",
        "the Go module (the folder holding go.mod) fixer runs in or below, when the target is \
         this machine",
    ),
];

/// Refuse a `discover` naming no known fact.
pub fn check_fact(fact: &str) -> Result<(), String> {
    let known = FACTS.iter().any(|(name, _)| match name.split_once(':') {
        Some((kind, _)) => fact
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|v| !v.is_empty()),
        None => *name == fact,
    });
    if known {
        Ok(())
    } else {
        let names: Vec<&str> = FACTS.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "unknown fact `{fact}`: discover one of {}",
            names.join(", ")
        ))
    }
}

/// The variable a fact refers to (`owner:gomodcache` -> `gomodcache`).
pub fn referenced_var(fact: &str) -> Option<&str> {
    fact.strip_prefix("owner:")
        .or_else(|| fact.strip_prefix("group:"))
}

/// What reading a fact gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The value, and where it was read.
    Value(Value, String),
    /// The target cannot tell: the default stays.
    Unknown(String),
    /// The target shows the default is wrong here, and offers no value.
    Wrong(String),
}

/// Where discovery stands on the target, besides the host itself.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The directory fixer runs in, as a path on the target, when the
    /// target is this machine (`module_root`).
    pub cwd: Option<PathBuf>,
}

/// The values the target gives for `vars`' discovered variables that
/// nobody set, lowest precedence (below a log's). A default the target
/// shows wrong is an error naming the variable and why.
pub fn values(vars: &Vars, host: &dyn Host, cx: &Context) -> Result<Vec<Found>, Error> {
    let mut netplan: Option<Netplan> = None;
    let mut found = Vec::new();
    // The interface first: the other netplan facts are about it.
    let mut names: Vec<(&str, &crate::playbook::vars::Var)> = vars
        .iter()
        .filter(|(_, v)| !v.discover.is_empty())
        .collect();
    names.sort_by_key(|(_, v)| !v.discover.iter().any(|f| f == "netplan.interface"));
    let mut interface: Option<String> = None;
    for (name, var) in names {
        let given = var.origin != Origin::Default;
        if given {
            if var.discover.iter().any(|f| f == "netplan.interface") {
                interface = Some(text(&var.value));
            }
            continue;
        }
        // The first fact that gives a value; else why the default is
        // wrong, if one of them says so.
        let mut wrong = None;
        let mut value = None;
        for fact in &var.discover {
            let outcome = if let Some(field) = fact.strip_prefix("netplan.") {
                // Read once, for every netplan fact.
                let np = match netplan.take() {
                    Some(np) => np,
                    None => Netplan::read(host)?,
                };
                let outcome = np.fact(field, interface.as_deref());
                netplan = Some(np);
                outcome
            } else if let Some(of) = referenced_var(fact) {
                owner_fact(vars, of, fact.starts_with("group:"), host)?
            } else {
                module_root(host, cx)?
            };
            match outcome {
                Outcome::Value(v, detail) => {
                    value = Some((v, detail));
                    break;
                }
                Outcome::Unknown(_) => {}
                Outcome::Wrong(why) => {
                    wrong.get_or_insert((fact.clone(), why));
                }
            }
        }
        match (value, wrong) {
            (Some((v, detail)), _) => {
                if var.discover.iter().any(|f| f == "netplan.interface") {
                    interface = Some(text(&v));
                }
                found.push(Found {
                    name: name.to_string(),
                    value: v,
                    origin: Origin::Host { detail },
                });
            }
            (None, Some((fact, why))) => {
                return Err(Error::Conflict(format!(
                    "variable `{name}` ({fact}): {why}, so its default `{}` would be wrong on {}: \
                     give it with --var {name}=...",
                    text(&var.value),
                    host.name()
                )))
            }
            (None, None) => {}
        }
    }
    Ok(found)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `owner:VAR` / `group:VAR`.
fn owner_fact(vars: &Vars, of: &str, group: bool, host: &dyn Host) -> Result<Outcome, Error> {
    let Some(var) = vars.get(of) else {
        return Ok(Outcome::Unknown(format!("no variable `{of}`")));
    };
    if var.origin == Origin::Default {
        return Ok(Outcome::Unknown(format!("`{of}` is itself a default")));
    }
    let raw = text(&var.value);
    let path = match raw.strip_prefix('~') {
        Some(rest) => host.home().on(host)?.join(rest.trim_start_matches('/')),
        None => PathBuf::from(&raw),
    };
    if !path.is_absolute() {
        return Ok(Outcome::Unknown(format!("`{of}` is not an absolute path")));
    }
    let mut at: &Path = &path;
    loop {
        if let Some(meta) = host.stat(at).on(host)? {
            if meta.uid != 0 {
                let (id, name) = if group {
                    (meta.gid, host.group_name(meta.gid).on(host)?)
                } else {
                    (meta.uid, host.user_name(meta.uid).on(host)?)
                };
                let what = if group { "group" } else { "owner" };
                return Ok(Outcome::Value(
                    Value::String(name.unwrap_or_else(|| id.to_string())),
                    format!("{what} of {}", at.display()),
                ));
            }
        }
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    Ok(Outcome::Wrong(format!(
        "{} and every folder above it belong to root: whose it is cannot be told",
        path.display()
    )))
}

/// `module_root`: the working directory's Go module.
fn module_root(host: &dyn Host, cx: &Context) -> Result<Outcome, Error> {
    let Some(cwd) = &cx.cwd else {
        return Ok(Outcome::Unknown(
            "the target is not the machine fixer runs on".into(),
        ));
    };
    let mut dir: &Path = cwd;
    loop {
        let gomod = dir.join("go.mod");
        if host
            .stat(&gomod)
            .on(host)?
            .is_some_and(|m| m.kind == FileKind::File)
        {
            return Ok(Outcome::Value(
                Value::String(dir.display().to_string()),
                format!("{} (where fixer runs)", gomod.display()),
            ));
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
    Ok(Outcome::Unknown(format!(
        "no go.mod in {} or above",
        cwd.display()
    )))
}

/// One interface as the target's netplan files configure it.
#[derive(Clone, Debug)]
struct Ethernet {
    name: String,
    /// The last file configuring it (netplan reads them in name order).
    file: PathBuf,
    config: Yaml,
}

/// The netplan files of the target, read as netplan reads them.
struct Netplan {
    ethernets: Vec<Ethernet>,
    /// Files netplan could not read either, with why.
    invalid: Vec<String>,
    /// file -> its renderer.
    files: Vec<(PathBuf, Option<String>)>,
}

fn truthy(v: Option<&Yaml>) -> bool {
    match v {
        Some(Yaml::Bool(b)) => *b,
        Some(Yaml::String(s)) => matches!(s.as_str(), "true" | "yes" | "on" | "y"),
        _ => false,
    }
}

fn list(v: Option<&Yaml>) -> Vec<String> {
    match v {
        Some(Yaml::Sequence(items)) => items
            .iter()
            .filter_map(|i| match i {
                Yaml::String(s) => Some(s.clone()),
                Yaml::Mapping(m) => m.keys().next().and_then(|k| k.as_str()).map(str::to_string),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl Netplan {
    fn read(host: &dyn Host) -> Result<Netplan, Error> {
        let paths = crate::resource::netplan::yaml_files(host)?;
        let mut np = Netplan {
            ethernets: Vec::new(),
            invalid: Vec::new(),
            files: Vec::new(),
        };
        for path in paths {
            if !host
                .stat(&path)
                .on(host)?
                .is_some_and(|m| m.kind == FileKind::File)
            {
                continue;
            }
            let bytes = host.read(&path).on(host)?;
            // A broken file may be what is being fixed: it tells nothing.
            let doc: Yaml = match serde_yaml_ng::from_slice(&bytes) {
                Ok(doc) => doc,
                Err(e) => {
                    np.invalid
                        .push(format!("{} is not valid YAML: {e}", path.display()));
                    continue;
                }
            };
            let network = doc.get("network");
            let renderer = network
                .and_then(|n| n.get("renderer"))
                .and_then(Yaml::as_str)
                .map(str::to_string);
            if let Some(Yaml::Mapping(sections)) = network {
                for (section, items) in sections {
                    let (Some(section), Yaml::Mapping(items)) = (section.as_str(), items) else {
                        continue;
                    };
                    for (name, config) in items {
                        let Some(name) = name.as_str() else { continue };
                        if section == "ethernets" {
                            np.ethernets.retain(|e| e.name != name);
                            np.ethernets.push(Ethernet {
                                name: name.to_string(),
                                file: path.clone(),
                                config: config.clone(),
                            });
                        }
                    }
                }
            }
            np.files.push((path, renderer));
        }
        Ok(np)
    }

    fn has_default_route(e: &Ethernet) -> bool {
        let routes = match e.config.get("routes") {
            Some(Yaml::Sequence(r)) => r.clone(),
            _ => Vec::new(),
        };
        e.config.get("gateway4").is_some()
            || routes.iter().any(|r| {
                matches!(
                    r.get("to").and_then(Yaml::as_str),
                    Some("default" | "0.0.0.0/0")
                )
            })
    }

    fn configured(e: &Ethernet) -> bool {
        truthy(e.config.get("dhcp4")) || !list(e.config.get("addresses")).is_empty()
    }

    /// The interface a fix is about: the configured one, or of several
    /// the one with the default route.
    fn interface(&self) -> Result<&Ethernet, Outcome> {
        let configured: Vec<&Ethernet> = self
            .ethernets
            .iter()
            .filter(|e| Self::configured(e))
            .collect();
        match configured.as_slice() {
            [] if self.invalid.is_empty() => Err(Outcome::Wrong(
                "no netplan file of the target configures an ethernet interface".into(),
            )),
            [] => Err(Outcome::Wrong(format!(
                "no netplan file of the target configures an ethernet interface that can be \
                 read ({})",
                self.invalid.join("; ")
            ))),
            [one] => Ok(one),
            several => {
                let routed: Vec<&&Ethernet> = several
                    .iter()
                    .filter(|e| Self::has_default_route(e))
                    .collect();
                match routed.as_slice() {
                    [one] => Ok(one),
                    _ => {
                        let names: Vec<&str> = several.iter().map(|e| e.name.as_str()).collect();
                        Err(Outcome::Wrong(format!(
                            "the target's netplan configures several interfaces ({}), and not \
                             one of them alone has the default route",
                            names.join(", ")
                        )))
                    }
                }
            }
        }
    }

    fn fact(&self, field: &str, interface: Option<&str>) -> Outcome {
        let eth = match interface {
            Some(name) => match self.ethernets.iter().find(|e| e.name == name) {
                Some(e) => e,
                None => {
                    return Outcome::Unknown(format!(
                        "no netplan file of the target configures {name}"
                    ))
                }
            },
            None => match self.interface() {
                Ok(e) => e,
                Err(outcome) => return outcome,
            },
        };
        let at = |what: &str| format!("{what} in {}", eth.file.display());
        let dhcp = truthy(eth.config.get("dhcp4"));
        let s = |v: String| Value::String(v);
        match field {
            "interface" => Outcome::Value(s(eth.name.clone()), at("ethernet")),
            "file" => Outcome::Value(
                s(eth.file.display().to_string()),
                format!("the file configuring {}", eth.name),
            ),
            // The interface's file's, else the one netplan would use (the
            // last file naming one); none named is netplan's own default.
            "renderer" => {
                let own = self
                    .files
                    .iter()
                    .find(|(p, _)| *p == eth.file)
                    .and_then(|(p, r)| r.clone().map(|r| (p, r)));
                let last = self
                    .files
                    .iter()
                    .rev()
                    .find_map(|(p, r)| r.clone().map(|r| (p, r)));
                match own.or(last) {
                    Some((p, r)) => Outcome::Value(s(r), format!("renderer in {}", p.display())),
                    None => Outcome::Unknown("no netplan file names a renderer".into()),
                }
            }
            "dhcp4" => Outcome::Value(Value::Bool(dhcp), at(&format!("{} dhcp4", eth.name))),
            "address" if dhcp => Outcome::Value(s(String::new()), at("none: DHCP")),
            "address" => match list(eth.config.get("addresses"))
                .into_iter()
                .find(|a| a.contains('.') && a.contains('/'))
            {
                Some(a) => Outcome::Value(s(a), at(&format!("{} address", eth.name))),
                None => Outcome::Wrong(format!(
                    "{} has no static IPv4 address in {}",
                    eth.name,
                    eth.file.display()
                )),
            },
            "gateway" if dhcp => Outcome::Value(s(String::new()), at("none: DHCP")),
            "gateway" => {
                let via = match eth.config.get("routes") {
                    Some(Yaml::Sequence(routes)) => routes
                        .iter()
                        .find(|r| {
                            matches!(
                                r.get("to").and_then(Yaml::as_str),
                                Some("default" | "0.0.0.0/0")
                            )
                        })
                        .and_then(|r| r.get("via"))
                        .and_then(Yaml::as_str)
                        .map(str::to_string),
                    _ => None,
                }
                .or_else(|| {
                    eth.config
                        .get("gateway4")
                        .and_then(Yaml::as_str)
                        .map(str::to_string)
                });
                match via {
                    Some(g) => Outcome::Value(s(g), at(&format!("{} default route", eth.name))),
                    None => Outcome::Wrong(format!(
                        "{} has no default route in {}",
                        eth.name,
                        eth.file.display()
                    )),
                }
            }
            "nameservers" | "search" => {
                let key = if field == "search" {
                    "search"
                } else {
                    "addresses"
                };
                let values = list(eth.config.get("nameservers").and_then(|n| n.get(key)));
                Outcome::Value(
                    s(values.join(", ")),
                    at(&format!("{} nameservers", eth.name)),
                )
            }
            other => Outcome::Unknown(format!("no netplan fact `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::LocalHost;

    fn host_with(files: &[(&str, &str)]) -> Result<(tempfile::TempDir, LocalHost), std::io::Error> {
        let dir = tempfile::tempdir()?;
        for (path, text) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, text)?;
        }
        let host = LocalHost::new(Some(dir.path().to_path_buf()));
        Ok((dir, host))
    }

    const CLOUD: &str = "network:\n  version: 2\n  ethernets:\n    enp0s3:\n      dhcp4: true\n";
    const STATIC: &str = "network:\n  renderer: networkd\n  ethernets:\n    ens3:\n      addresses: [10.0.0.5/24]\n      routes:\n        - to: default\n          via: 10.0.0.1\n      nameservers:\n        addresses: [10.0.0.53]\n        search: [corp.example]\n";

    fn fact(host: &LocalHost, field: &str) -> Result<Outcome, Error> {
        Ok(Netplan::read(host)?.fact(field, None))
    }

    #[test]
    fn netplan_facts_of_a_dhcp_and_a_static_host() -> Result<(), Box<dyn std::error::Error>> {
        let (_d, host) = host_with(&[("/etc/netplan/50-cloud-init.yaml", CLOUD)])?;
        let value = |o: Outcome| match o {
            Outcome::Value(v, _) => Some(v),
            _ => None,
        };
        assert_eq!(
            value(fact(&host, "interface")?),
            Some(Value::from("enp0s3"))
        );
        assert_eq!(value(fact(&host, "dhcp4")?), Some(Value::Bool(true)));
        assert_eq!(value(fact(&host, "address")?), Some(Value::from("")));
        assert_eq!(
            value(fact(&host, "file")?),
            Some(Value::from("/etc/netplan/50-cloud-init.yaml"))
        );
        let (_d, host) = host_with(&[("/etc/netplan/01.yaml", STATIC)])?;
        assert_eq!(
            value(fact(&host, "address")?),
            Some(Value::from("10.0.0.5/24"))
        );
        assert_eq!(
            value(fact(&host, "gateway")?),
            Some(Value::from("10.0.0.1"))
        );
        assert_eq!(
            value(fact(&host, "search")?),
            Some(Value::from("corp.example"))
        );
        assert_eq!(
            value(fact(&host, "renderer")?),
            Some(Value::from("networkd"))
        );
        Ok(())
    }

    #[test]
    fn netplan_facts_refuse_to_guess() -> Result<(), Box<dyn std::error::Error>> {
        let (_d, empty) = host_with(&[])?;
        assert!(matches!(fact(&empty, "interface")?, Outcome::Wrong(_)));
        let two = "network:\n  ethernets:\n    a:\n      dhcp4: true\n    b:\n      dhcp4: true\n";
        let (_d, host) = host_with(&[("/etc/netplan/01.yaml", two)])?;
        assert!(matches!(fact(&host, "interface")?, Outcome::Wrong(w) if w.contains("a, b")));
        // The file configuring the interface also configures another one.
        let shared = "network:\n  ethernets:\n    a:\n      dhcp4: true\n      routes: [{to: default, via: 1.2.3.4}]\n    b:\n      addresses: [10.1.0.2/24]\n";
        let (_d, host) = host_with(&[("/etc/netplan/01.yaml", shared)])?;
        assert!(matches!(fact(&host, "interface")?, Outcome::Value(v, _) if v == "a"));
        Ok(())
    }

    #[test]
    fn netplan_files_are_read_in_netplans_order() -> Result<(), Box<dyn std::error::Error>> {
        // /lib's file of a name is replaced by /etc's, which /run's replaces;
        // across names, the later name is read last.
        let lib = "network:\n  ethernets:\n    lib0:\n      dhcp4: true\n";
        let (_d, host) = host_with(&[
            ("/lib/netplan/50-x.yaml", lib),
            ("/etc/netplan/50-x.yaml", CLOUD),
            ("/lib/netplan/10-y.yaml", lib),
        ])?;
        assert_eq!(
            crate::resource::netplan::yaml_files(&host)?,
            [
                "/lib/netplan/10-y.yaml",
                "/lib/netplan/50-x.yaml",
                "/etc/netplan/50-x.yaml"
            ]
            .map(PathBuf::from)
        );
        let (_d, host) = host_with(&[("/lib/netplan/50-x.yaml", lib)])?;
        assert!(matches!(fact(&host, "interface")?, Outcome::Value(v, _) if v == "lib0"));
        Ok(())
    }

    #[test]
    fn facts_are_checked_by_name() {
        assert!(check_fact("netplan.interface").is_ok());
        assert!(check_fact("owner:gomodcache").is_ok());
        assert!(check_fact("owner:").is_err());
        assert!(check_fact("netplan.mtu").is_err());
    }
}

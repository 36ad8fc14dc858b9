//! Which remote hosts a command acts on: `--host` specs, or an inventory
//! (fixer's TOML, or an Ansible INI or YAML file: see `ini` and `yaml`) with hosts, groups and
//! their variables, narrowed by `--limit`.
//!
//! ```toml
//! [vars]                       # every host
//! goproxy = "https://proxy.corp.example"
//!
//! [hosts.web1]
//! address = "deploy@10.0.0.5:2222"   # default: the name, through ~/.ssh/config
//! vars = { private_host = "git.corp.example" }
//!
//! [groups.web]
//! hosts = ["web1", "web2"]           # web2 needs no [hosts] entry
//! vars = { goprivate = "corp.example/*" }
//! ```
//!
//! Variables: inventory `[vars]`, then each group the host is in (in name
//! order), then the host's own, override the playbook's defaults; `--vars`
//! files and `--var` override all of them. A variable the playbook does not
//! declare is ignored, since one inventory serves many playbooks.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;
use crate::playbook::source::Source;

mod ini;
mod yaml;

/// One host to act on.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// How the host is called in output (`web1`, `root@10.0.0.5:2222`).
    pub name: String,
    /// `[user@]host[:port]` to connect to.
    pub address: String,
    /// Inventory variables, lowest precedence first.
    pub vars: Vec<(String, serde_json::Value)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    hosts: BTreeMap<String, HostEntry>,
    #[serde(default)]
    groups: BTreeMap<String, Group>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    address: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
}

fn json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
    }
}

fn pairs(
    m: &BTreeMap<String, toml::Value>,
) -> impl Iterator<Item = (String, serde_json::Value)> + '_ {
    m.iter().map(|(k, v)| (k.clone(), json(v)))
}

/// Members for `--host` specs, in the order given.
pub fn from_specs(specs: &[String]) -> Vec<Member> {
    specs
        .iter()
        .map(|s| Member {
            name: s.clone(),
            address: s.clone(),
            vars: Vec::new(),
        })
        .collect()
}

/// An inventory in either format, before selection.
#[derive(Default)]
struct Model {
    vars: Vars,
    hosts: BTreeMap<String, Entry>,
    /// Groups in precedence order: a later group's vars win.
    groups: Vec<(String, GroupModel)>,
}

type Vars = Vec<(String, serde_json::Value)>;

#[derive(Default)]
struct Entry {
    address: Option<String>,
    vars: Vars,
}

#[derive(Default)]
struct GroupModel {
    hosts: Vec<String>,
    vars: Vars,
}

/// Load an inventory and select hosts by `limit` (host or group names, or
/// `all`; empty selects all). Hosts come out in name order.
///
/// `*.toml` is fixer's format; `*.yml`/`*.yaml` Ansible's YAML form;
/// `*.json` is refused; any other file is read as an Ansible INI inventory.
pub fn load(path: &Path, limit: &[String]) -> Result<Vec<Member>, Error> {
    let src = Source::read(path)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let model = match ext {
        "toml" => from_toml(&src)?,
        "yml" | "yaml" => yaml::parse(&src)?,
        "json" => {
            return Err(Error::Usage(format!(
                "{}: JSON inventories are not supported; write it as TOML \
                 (inventory.toml), Ansible YAML (hosts.yml) or an Ansible INI file",
                path.display()
            )))
        }
        _ => ini::parse(&src)?,
    };
    select(path, &model, limit)
}

fn from_toml(src: &Source) -> Result<Model, Error> {
    let table = toml::de::DeTable::parse(&src.text).map_err(|e| src.toml_error(&e, None, ""))?;
    let file: File =
        toml::from_str(&src.text).map_err(|e| src.toml_error(&e, Some(table.get_ref()), ""))?;
    let mut model = Model {
        vars: pairs(&file.vars).collect(),
        ..Model::default()
    };
    for (name, h) in &file.hosts {
        model.hosts.insert(
            name.clone(),
            Entry {
                address: h.address.clone(),
                vars: pairs(&h.vars).collect(),
            },
        );
    }
    for (gname, g) in &file.groups {
        for h in &g.hosts {
            if file.groups.contains_key(h) && !file.hosts.contains_key(h) {
                return Err(src.error(
                    &span_of(&src.text, h),
                    Some(format!("groups.{gname}.hosts")),
                    format!("`{h}` is a group; groups of groups are not supported"),
                ));
            }
            model.hosts.entry(h.clone()).or_default();
        }
        model.groups.push((
            gname.clone(),
            GroupModel {
                hosts: g.hosts.clone(),
                vars: pairs(&g.vars).collect(),
            },
        ));
    }
    Ok(model)
}

fn select(path: &Path, model: &Model, limit: &[String]) -> Result<Vec<Member>, Error> {
    let group = |name: &str| model.groups.iter().find(|(n, _)| n == name).map(|(_, g)| g);
    let mut selected: Vec<&String> = Vec::new();
    if limit.is_empty() || limit.iter().any(|l| l == "all") {
        selected.extend(model.hosts.keys());
    } else {
        for l in limit.iter().flat_map(|l| l.split(',')).map(str::trim) {
            if let Some((k, _)) = model.hosts.get_key_value(l) {
                selected.push(k);
            } else if let Some(g) = group(l) {
                selected.extend(g.hosts.iter());
            } else {
                return Err(Error::Usage(format!(
                    "--limit {l}: no host or group of that name in {}",
                    path.display()
                )));
            }
        }
        selected.sort();
        selected.dedup();
    }
    Ok(selected
        .into_iter()
        .map(|name| {
            let entry = model.hosts.get(name);
            let mut vars = model.vars.clone();
            for (_, g) in model.groups.iter().filter(|(_, g)| g.hosts.contains(name)) {
                vars.extend(g.vars.iter().cloned());
            }
            if let Some(e) = entry {
                vars.extend(e.vars.iter().cloned());
            }
            let address = entry
                .and_then(|e| e.address.clone())
                .unwrap_or_else(|| ansible_address(name, &vars));
            Member {
                name: name.clone(),
                address,
                vars,
            }
        })
        .collect())
}

/// The address Ansible's connection variables describe (`ansible_host`,
/// `ansible_port`, `ansible_user`, or their older `ansible_ssh_*` names),
/// defaulting to the host's name.
fn ansible_address(name: &str, vars: &Vars) -> String {
    let last = |keys: [&str; 2]| {
        vars.iter()
            .rev()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .map(|(_, v)| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    };
    let host = last(["ansible_host", "ansible_ssh_host"]).unwrap_or_else(|| name.to_string());
    let mut address = match last(["ansible_user", "ansible_ssh_user"]) {
        Some(user) => format!("{user}@"),
        None => String::new(),
    };
    let port = last(["ansible_port", "ansible_ssh_port"]);
    if host.contains(':') && !host.starts_with('[') {
        address.push_str(&format!("[{host}]"));
    } else {
        address.push_str(&host);
    }
    if let Some(port) = port {
        address.push_str(&format!(":{port}"));
    }
    address
}

/// Where `"needle"` first appears quoted in `text` (for messages).
fn span_of(text: &str, needle: &str) -> std::ops::Range<usize> {
    let quoted = format!("\"{needle}\"");
    text.find(&quoted).map_or(0..0, |i| i..i + quoted.len())
}

/// Run `work` on every member, at most `forks` at once, each on its own
/// thread; results come back in the members' order. One member's failure
/// or panic is its own: the others carry on.
pub fn for_each<T: Send>(
    members: &[Member],
    forks: usize,
    work: impl Fn(usize, &Member) -> T + Sync,
) -> Vec<Option<T>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<T>>> = members
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..forks.clamp(1, members.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(m) = members.get(i) else { break };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(i, m)));
                if let (Ok(r), Some(slot)) = (r, results.get(i)) {
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("inventory.toml");
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        (dir, p)
    }

    const INV: &str = r#"
[vars]
proxy = "all"
level = 1

[hosts.web1]
address = "root@10.0.0.5:2222"
vars = { proxy = "web1" }

[groups.web]
hosts = ["web1", "web2"]
vars = { proxy = "web", level = 2 }

[groups.db]
hosts = ["db1"]
"#;

    #[test]
    fn vars_layer_inventory_group_host() -> Result<(), Error> {
        let (_d, p) = write(INV);
        let all = load(&p, &[])?;
        let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["db1", "web1", "web2"]);
        let web1 = &all[1];
        assert_eq!(web1.address, "root@10.0.0.5:2222");
        // Later entries win when applied in order.
        let last = |m: &Member, k: &str| {
            m.vars
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(last(web1, "proxy"), Some("web1".into()));
        assert_eq!(last(&all[2], "proxy"), Some("web".into()));
        assert_eq!(last(&all[2], "level"), Some(2.into()));
        assert_eq!(last(&all[0], "proxy"), Some("all".into()));
        assert_eq!(all[2].address, "web2");
        Ok(())
    }

    #[test]
    fn limit_selects_hosts_and_groups() -> Result<(), Error> {
        let (_d, p) = write(INV);
        let names = |l: &[&str]| -> Result<Vec<String>, Error> {
            let l: Vec<String> = l.iter().map(|s| s.to_string()).collect();
            Ok(load(&p, &l)?.into_iter().map(|m| m.name).collect())
        };
        assert_eq!(names(&["web"])?, ["web1", "web2"]);
        assert_eq!(names(&["db1,web2"])?, ["db1", "web2"]);
        assert_eq!(names(&["web", "web1"])?, ["web1", "web2"]);
        let err = names(&["nope"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--limit nope: no host or group"), "{err}");
        Ok(())
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let (_d, p) = write("[hosts.web1]\nadress = \"x\"\n");
        let err = load(&p, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("inventory.toml:2:"), "{err}");
        assert!(err.contains("hosts.web1.adress"), "{err}");
    }

    #[test]
    fn ansible_ini_inventories_are_read() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Usage(e.to_string()))?;
        let p = dir.path().join("hosts");
        std::fs::write(
            &p,
            "# an Ansible inventory\nbastion ansible_host=10.0.0.1\n\n[web]\n\
             web1 ansible_host=10.0.0.5 ansible_port=2222 ansible_user=deploy proxy=\"web1 own\"\n\
             web2\n\n[db]\ndb1 ansible_host=fe80::1\n\n[prod:children]\nweb\ndb\n\n\
             [web:vars]\nproxy=from-group\n\n[all:vars]\nproxy=everyone\n",
        )
        .map_err(|e| Error::Usage(e.to_string()))?;
        let all = load(&p, &[])?;
        let by = |n: &str| all.iter().find(|m| m.name == n).cloned();
        let web1 = by("web1").ok_or(Error::Usage("no web1".into()))?;
        assert_eq!(web1.address, "deploy@10.0.0.5:2222");
        assert_eq!(
            web1.vars.last(),
            Some(&("proxy".to_string(), serde_json::Value::from("web1 own")))
        );
        assert_eq!(by("db1").map(|m| m.address), Some("[fe80::1]".into()));
        assert_eq!(by("bastion").map(|m| m.address), Some("10.0.0.1".into()));
        let prod: Vec<String> = load(&p, &["prod".into()])?
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(prod, ["db1", "web1", "web2"]);
        std::fs::write(&p, "[web]\nweb[01:10]\n").map_err(|e| Error::Usage(e.to_string()))?;
        let err = load(&p, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("hosts:2:") && err.contains("host ranges"),
            "{err}"
        );
        let json = dir.path().join("hosts.json");
        std::fs::write(&json, "{}\n").map_err(|e| Error::Usage(e.to_string()))?;
        let err = load(&json, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("JSON inventories are not supported"), "{err}");
        // An empty YAML inventory is one with no hosts, not an error.
        let yaml = dir.path().join("hosts.yml");
        std::fs::write(&yaml, "all: {}\n").map_err(|e| Error::Usage(e.to_string()))?;
        assert_eq!(load(&yaml, &[])?, Vec::new());
        Ok(())
    }

    #[test]
    fn for_each_keeps_order_and_survives_a_panic() {
        let members = from_specs(&["a".into(), "b".into(), "c".into()]);
        let out = for_each(&members, 2, |i, m| {
            assert!(i != 1, "boom");
            m.name.clone()
        });
        assert_eq!(out, vec![Some("a".into()), None, Some("c".into())]);
    }
}

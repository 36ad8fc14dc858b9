//! Ansible's YAML inventory: groups (top level, usually just `all`), each
//! with `hosts` (a host's value: its variables, or nothing), `vars` and
//! `children` (groups again, nested to any depth).
//!
//! ```yaml
//! all:
//!   vars: {goproxy: "https://proxy.corp.example"}
//!   children:
//!     web:
//!       hosts:
//!         web1: {ansible_host: 10.0.0.5, ansible_user: deploy}
//!         web2:
//!       vars: {goprivate: "corp.example/*"}
//! ```
//!
//! Precedence is the INI form's (`ini::resolve`); unlike INI, values keep
//! their YAML types. Host ranges (`web[01:10]`) are refused, not misread.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::ini::{host_spec, resolve, Group};
use super::{Model, Vars};
use crate::error::Error;
use crate::playbook::source::Source;

pub(super) fn parse(src: &Source) -> Result<Model, Error> {
    let doc: Value = serde_yaml_ng::from_str(&src.text).map_err(|e| {
        let at = e.location().map_or(0, |l| l.index());
        src.error(&(at..at), None, format!("not YAML: {e}"))
    })?;
    let mut model = Model::default();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    match doc {
        Value::Null => {}
        Value::Mapping(top) => {
            for (name, body) in &top {
                let name = key(src, name, "")?;
                group(src, &mut model, &mut groups, &name, body, &name)?;
            }
        }
        _ => {
            return Err(src.error(
                &(0..0),
                None,
                "an inventory is a mapping of groups (`all:`, ...)",
            ))
        }
    }
    resolve(src, model, &groups)
}

/// A mapping key as a string, or an error at `field`.
fn key(src: &Source, k: &Value, field: &str) -> Result<String, Error> {
    match k {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(at_text(
            src,
            "",
            field,
            format!("`{other:?}` is not a name"),
        )),
    }
}

/// An error placed at the first line that writes `needle:` (YAML values
/// carry no position once parsed).
fn at_text(src: &Source, needle: &str, field: &str, message: String) -> Error {
    let at = if needle.is_empty() {
        0
    } else {
        src.text
            .find(&format!("{needle}:"))
            .or_else(|| src.text.find(needle))
            .unwrap_or(0)
    };
    src.error(
        &(at..at),
        (!field.is_empty()).then(|| field.to_string()),
        message,
    )
}

/// The mapping `what` (`hosts`, `children`) holds, `None` when empty;
/// anything else is an error naming what it should map.
fn mapping<'v>(
    src: &Source,
    v: &'v Value,
    what: &str,
    field: &str,
    of: &str,
) -> Result<Option<&'v serde_yaml_ng::Mapping>, Error> {
    match v {
        Value::Mapping(m) => Ok(Some(m)),
        Value::Null => Ok(None),
        _ => Err(at_text(
            src,
            what,
            field,
            format!("{what} are a mapping of {of}"),
        )),
    }
}

fn vars(src: &Source, v: &Value, field: &str) -> Result<Vars, Error> {
    match v {
        Value::Null => Ok(Vars::new()),
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let k = key(src, k, field)?;
                let v =
                    serde_json::to_value(v).map_err(|e| at_text(src, &k, field, e.to_string()))?;
                Ok((k, v))
            })
            .collect(),
        _ => Err(at_text(
            src,
            field.rsplit('.').next().unwrap_or(""),
            field,
            "variables are a mapping of names to values".into(),
        )),
    }
}

fn group(
    src: &Source,
    model: &mut Model,
    groups: &mut BTreeMap<String, Group>,
    name: &str,
    body: &Value,
    field: &str,
) -> Result<(), Error> {
    if name != "all" {
        groups.entry(name.to_string()).or_default();
    }
    let body = match body {
        Value::Null => return Ok(()),
        Value::Mapping(m) => m,
        _ => {
            return Err(at_text(
                src,
                name,
                field,
                format!("group `{name}` is a mapping with hosts, vars and children"),
            ))
        }
    };
    for (k, v) in body {
        let k = key(src, k, field)?;
        let here = format!("{field}.{k}");
        match k.as_str() {
            "vars" => {
                let vars = vars(src, v, &here)?;
                if name == "all" {
                    model.vars.extend(vars);
                } else {
                    groups
                        .entry(name.to_string())
                        .or_default()
                        .vars
                        .extend(vars);
                }
            }
            "hosts" => {
                let Some(hosts) = mapping(src, v, "hosts", &here, "host names to their variables")?
                else {
                    continue;
                };
                for (h, hv) in hosts {
                    let spec = key(src, h, &here)?;
                    let at = format!("{here}.{spec}");
                    let dest = host_spec(&spec).map_err(|m| at_text(src, &spec, &at, m))?;
                    let entry = model.hosts.entry(dest.host.clone()).or_default();
                    if let Some(port) = dest.port {
                        entry
                            .vars
                            .push(("ansible_port".into(), serde_json::Value::from(port)));
                    }
                    entry.vars.extend(vars(src, hv, &at)?);
                    if name != "all" {
                        groups
                            .entry(name.to_string())
                            .or_default()
                            .hosts
                            .push(dest.host);
                    }
                }
            }
            "children" => {
                let Some(children) = mapping(src, v, "children", &here, "group names")? else {
                    continue;
                };
                for (c, cv) in children {
                    let child = key(src, c, &here)?;
                    if name != "all" {
                        groups
                            .entry(name.to_string())
                            .or_default()
                            .children
                            .push(child.clone());
                    }
                    group(src, model, groups, &child, cv, &format!("{here}.{child}"))?;
                }
            }
            other => {
                return Err(at_text(
                    src,
                    other,
                    &here,
                    format!(
                    "unknown key `{other}` in group `{name}` (expected hosts, vars or children)"
                ),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Member;

    fn load(text: &str, limit: &[&str]) -> Result<Vec<Member>, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let p = dir.path().join("hosts.yml");
        std::fs::write(&p, text).map_err(|e| e.to_string())?;
        let limit: Vec<String> = limit.iter().map(|s| s.to_string()).collect();
        super::super::load(&p, &limit).map_err(|e| e.to_string())
    }

    fn last(m: &Member, k: &str) -> Option<serde_json::Value> {
        m.vars
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn groups_nest_deeper_wins_and_addresses_come_from_ansible_vars() -> Result<(), String> {
        let text = "all:\n  vars:\n    proxy: all\n    retries: 3\n  children:\n    prod:\n      vars: {proxy: prod}\n      children:\n        web:\n          vars: {proxy: web}\n          hosts:\n            w1: {ansible_host: 10.0.0.5, ansible_user: deploy, ansible_port: 2222}\n            w2:\n            'w3:2200':\n    db:\n      hosts:\n        d1: {proxy: own}\n";
        let all = load(text, &[])?;
        let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["d1", "w1", "w2", "w3"]);
        assert_eq!(all[1].address, "deploy@10.0.0.5:2222");
        assert_eq!(all[2].address, "w2");
        assert_eq!(all[3].address, "w3:2200");
        assert_eq!(last(&all[0], "proxy"), Some("own".into()));
        assert_eq!(last(&all[2], "proxy"), Some("web".into()));
        assert_eq!(
            last(&all[2], "retries"),
            Some(3.into()),
            "YAML types are kept"
        );
        let prod = load(text, &["prod"])?;
        assert_eq!(prod.len(), 3, "a group selects its children's hosts");
        Ok(())
    }

    #[test]
    fn malformed_inventories_are_refused_with_their_line_and_field() {
        for (text, at, what) in [
            (
                "all:\n  hosts:\n    web[01:10]:\n",
                "hosts.yml:3:",
                "host ranges",
            ),
            (
                "all:\n  children:\n    web:\n      hostz: {}\n",
                "hosts.yml:4:",
                "unknown key `hostz`",
            ),
            (
                "all:\n  hosts:\n    root@w1:\n",
                "hosts.yml:3:",
                "ansible_user",
            ),
            ("all:\n  vars: [a, b]\n", "hosts.yml:2:", "mapping of names"),
            (
                "all:\n  hosts: [w1]\n",
                "hosts.yml:2:",
                "hosts are a mapping of host names",
            ),
            (
                "all:\n  children: web\n",
                "hosts.yml:2:",
                "children are a mapping of group names",
            ),
            ("all: [\n", "hosts.yml:", "not YAML"),
        ] {
            let err = load(text, &[]).err().unwrap_or_default();
            assert!(err.contains(at) && err.contains(what), "{text:?}: {err}");
        }
    }
}

//! Ansible's INI inventory, as far as fixer needs it: host lines with
//! `key=value` vars, `[group]`, `[group:vars]`, `[group:children]` (nested
//! to any depth) and `[all:vars]`. Host ranges (`web[01:10]`) are refused
//! rather than misread.
//!
//! As in Ansible, vars in `:vars` sections are strings; a group's vars win
//! over its parents' (groups are ordered by depth, then name), and a host's
//! own vars win over every group's.

use std::collections::{BTreeMap, BTreeSet};

use super::{GroupModel, Model, Vars};
use crate::error::Error;
use crate::host::ssh_config::Destination;
use crate::playbook::source::Source;

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// A group as both Ansible formats write it: before its children are
/// resolved into hosts.
#[derive(Default)]
pub(super) struct Group {
    pub hosts: Vec<String>,
    pub vars: Vars,
    pub children: Vec<String>,
}

pub(super) fn parse(src: &Source) -> Result<Model, Error> {
    let mut model = Model::default();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut section = Section::Hosts("ungrouped".to_string());
    let mut offset = 0;
    for raw in src.text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim();
        let at = start + (raw.len() - raw.trim_start().len());
        let err = |msg: String| src.error(&(at..at + line.len()), None, msg);
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header
                .strip_suffix(']')
                .ok_or_else(|| err(format!("`{line}`: a section header ends with `]`")))?;
            section = match header.split_once(':') {
                None => Section::Hosts(header.to_string()),
                Some((g, "vars")) => Section::Vars(g.to_string()),
                Some((g, "children")) => Section::Children(g.to_string()),
                Some((_, kind)) => {
                    return Err(err(format!(
                        "`[{header}]`: unknown section kind `:{kind}` (expected `:vars` or `:children`)"
                    )))
                }
            };
            let name = match &section {
                Section::Hosts(g) | Section::Vars(g) | Section::Children(g) => g,
            };
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(err(format!("`{line}`: not a group name")));
            }
            if name != "all" {
                groups.entry(name.clone()).or_default();
            }
            continue;
        }
        match &section {
            Section::Hosts(group) => {
                let words = split_words(line).map_err(&err)?;
                let Some((spec, pairs)) = words.split_first() else {
                    continue;
                };
                let dest = host_spec(spec).map_err(&err)?;
                let entry = model.hosts.entry(dest.host.clone()).or_default();
                if let Some(port) = dest.port {
                    entry
                        .vars
                        .push(("ansible_port".into(), port.to_string().into()));
                }
                for pair in pairs {
                    let (k, v) = pair.split_once('=').ok_or_else(|| {
                        err(format!("`{pair}`: host variables are written key=value"))
                    })?;
                    entry.vars.push((k.to_string(), v.into()));
                }
                if group != "all" {
                    groups
                        .entry(group.clone())
                        .or_default()
                        .hosts
                        .push(dest.host);
                }
            }
            Section::Vars(group) => {
                let (k, v) = line.split_once('=').ok_or_else(|| {
                    err(format!("`{line}`: group variables are written key=value"))
                })?;
                let value = unquote(v.trim()).into();
                if group == "all" {
                    model.vars.push((k.trim().to_string(), value));
                } else {
                    groups
                        .entry(group.clone())
                        .or_default()
                        .vars
                        .push((k.trim().to_string(), value));
                }
            }
            Section::Children(group) => {
                if line.chars().any(char::is_whitespace) {
                    return Err(err(format!("`{line}`: one child group name per line")));
                }
                groups.entry(line.to_string()).or_default();
                if group != "all" {
                    groups
                        .entry(group.clone())
                        .or_default()
                        .children
                        .push(line.to_string());
                }
            }
        }
    }

    resolve(src, model, &groups)
}

/// A host as both Ansible formats name it, `name` or `name:port`; host
/// ranges and `user@host` are refused rather than misread.
pub(super) fn host_spec(spec: &str) -> Result<Destination, String> {
    if spec.contains('[') && !spec.starts_with('[') {
        return Err(format!(
            "`{spec}`: host ranges are not supported; list the hosts one by one"
        ));
    }
    let dest = Destination::parse(spec).map_err(|e| e.to_string())?;
    if dest.user.is_some() {
        return Err(format!(
            "`{spec}`: write the user as ansible_user, not user@host"
        ));
    }
    Ok(dest)
}

/// Order `groups` as Ansible does (by depth, then name: deeper wins) with
/// each group's hosts including its descendants', into `model`.
pub(super) fn resolve(
    src: &Source,
    mut model: Model,
    groups: &BTreeMap<String, Group>,
) -> Result<Model, Error> {
    let mut ordered: Vec<(usize, String)> = Vec::new();
    for name in groups.keys() {
        let depth = depth(groups, name, &mut Vec::new()).map_err(|cycle| {
            Error::Usage(format!(
                "{}: groups are their own children: {}",
                src.path.display(),
                cycle.join(" -> ")
            ))
        })?;
        ordered.push((depth, name.clone()));
    }
    ordered.sort();
    for (_, name) in ordered {
        let mut hosts = BTreeSet::new();
        members(groups, &name, &mut hosts);
        let vars = groups
            .get(&name)
            .map(|g| g.vars.clone())
            .unwrap_or_default();
        model.groups.push((
            name,
            GroupModel {
                hosts: hosts.into_iter().collect(),
                vars,
            },
        ));
    }
    for (_, g) in &model.groups {
        for h in &g.hosts {
            model.hosts.entry(h.clone()).or_default();
        }
    }
    Ok(model)
}

/// How far `name` is from the top (1 = no parent). Err is the cycle found.
fn depth(
    groups: &BTreeMap<String, Group>,
    name: &str,
    path: &mut Vec<String>,
) -> Result<usize, Vec<String>> {
    if path.iter().any(|p| p == name) {
        let mut cycle = path.clone();
        cycle.push(name.to_string());
        return Err(cycle);
    }
    path.push(name.to_string());
    let mut d = 1;
    for (parent, g) in groups {
        if g.children.iter().any(|c| c == name) {
            d = d.max(1 + depth(groups, parent, path)?);
        }
    }
    path.pop();
    Ok(d)
}

/// Hosts of `name` and of all its descendants (cycles were refused above).
fn members(groups: &BTreeMap<String, Group>, name: &str, out: &mut BTreeSet<String>) {
    if let Some(g) = groups.get(name) {
        out.extend(g.hosts.iter().cloned());
        for c in &g.children {
            members(groups, c, out);
        }
    }
}

/// Split a host line into words the way Ansible's shlex does: whitespace
/// separates, quotes group and are removed, `\` escapes outside single quotes.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, '#') if word.is_none() => break,
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.get_or_insert_with(String::new).push(c),
            (_, '\\') => {
                let next = chars.next().ok_or("a line ends with `\\`")?;
                word.get_or_insert_with(String::new).push(next);
            }
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    words.extend(word);
    Ok(words)
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    fn load(text: &str) -> Result<Vec<super::super::Member>, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let p = dir.path().join("hosts.ini");
        std::fs::write(&p, text).map_err(|e| e.to_string())?;
        super::super::load(&p, &[]).map_err(|e| e.to_string())
    }

    #[test]
    fn deeper_groups_win_and_children_nest() -> Result<(), String> {
        let all = load(
            "[eu:children]\nprod\n[prod:children]\nweb\n[web]\nw1 proxy=own\nw2\n\
             [web:vars]\nproxy=web\n[eu:vars]\nproxy=eu\nregion=eu\n[prod:vars]\nproxy=prod\n",
        )?;
        let last = |i: usize, k: &str| {
            all[i]
                .vars
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(last(0, "proxy"), Some("own".into()));
        assert_eq!(last(1, "proxy"), Some("web".into()));
        assert_eq!(last(1, "region"), Some("eu".into()));
        Ok(())
    }

    #[test]
    fn malformed_lines_are_refused_with_their_line() {
        for (text, line, what) in [
            ("[web]\nw1 proxy\n", ":2:", "key=value"),
            ("[web]\nw1 a='open\n", ":2:", "unterminated"),
            ("[web:hostvars]\n", ":1:", "unknown section kind"),
            ("\n[web\n", ":2:", "ends with `]`"),
            ("[web:vars]\nnothing\n", ":2:", "key=value"),
            ("[web]\nroot@w1\n", ":2:", "ansible_user"),
            ("[web]\nw1:99999\n", ":2:", "port"),
        ] {
            let err = load(text).err().unwrap_or_default();
            assert!(err.contains(&format!("hosts.ini{line}")), "{text:?}: {err}");
            assert!(err.contains(what), "{text:?}: {err}");
        }
        let err = load("[a:children]\nb\n[b:children]\na\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("their own children"), "{err}");
    }
}

//! Playbooks: TOML in, typed and validated resources out.
//!
//! Loading never touches a host. It parses with spans, checks the document's
//! shape, renders every string through Handlebars (strictly), and hands each
//! `[[resource]]` table to the builder its `type` names. Every error points at
//! `file:line:column` and the field.

pub mod reference;
pub mod schema;
pub mod source;
pub mod symptom;
pub mod template;
pub mod vars;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::Error;
use crate::resource::{self, Build, Resource};
use source::Source;
pub use symptom::Symptom;
use template::Renderer;
pub use vars::{Found, Masker, Origin, Overrides, Vars};

/// A resource (or handler) as declared: its id, whom it notifies, and the
/// typed resource itself.
#[derive(Debug)]
pub struct Declared {
    pub id: String,
    pub notify: Vec<String>,
    pub resource: Box<dyn Resource>,
}

#[derive(Debug)]
pub struct Playbook {
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub vars: Vars,
    pub symptoms: Vec<Symptom>,
    pub resources: Vec<Declared>,
    pub handlers: Vec<Declared>,
    pub phase: Option<Phase>,
    /// The playbook files this one is made of: itself, or the ones
    /// [`Playbook::compose`] put together, in the order they run.
    pub parts: Vec<Part>,
}

/// One playbook file of a (possibly composed) playbook, with the values
/// its variables had.
#[derive(Clone, Debug)]
pub struct Part {
    pub name: String,
    pub path: PathBuf,
    pub vars: Vars,
}

/// Where a playbook goes when several fix one host together: what a fix
/// at one phase needs is fixed at the phases before it (the host must
/// resolve names before go can reach a proxy, and reach one before a
/// module can be tidied). Playbooks of one phase keep the order given; a
/// playbook naming no phase goes last.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Addressing, routes, name resolution (netplan).
    Network,
    /// Where go fetches modules from (GOPROXY).
    Proxy,
    /// How git authenticates (URL rewrites, keys).
    Auth,
    /// Which modules are private (GOPRIVATE).
    Modules,
    /// Go's module and build caches.
    Cache,
    /// The module itself (go.mod, go.sum).
    Build,
}

/// What the playbook is. Required.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Header {
    /// Recorded with each run, shown by `fixer history`.
    name: String,
    /// One line on what the playbook fixes; `fixer init` lists it.
    #[serde(default)]
    description: Option<String>,
    /// When it runs among several playbooks fixing one host together
    /// (`fixer fix`, `fixer plan A B`): `network`, `proxy`, `auth`,
    /// `modules`, `cache`, `build`, in that order; none: last.
    #[serde(default)]
    phase: Option<Phase>,
    /// The fixer versions that can run it, as a semver requirement
    /// (`">=0.3"`, `"^1.2"`): an older fixer refuses the playbook with the
    /// version it needs instead of an unknown field or section.
    // Read from the document by `check_requires`, before this is parsed.
    #[serde(default)]
    #[allow(dead_code)]
    requires: Option<String>,
}

/// Refuse a playbook whose `[playbook] requires` this fixer does not meet.
/// Checked before anything else in the file, which may use what only a
/// newer fixer knows.
fn check_requires(source: &Source, doc: &DeTable<'_>) -> Result<(), Error> {
    let Some(value) = doc
        .iter()
        .find(|(k, _)| k.get_ref() == "playbook")
        .and_then(|(_, v)| v.get_ref().as_table())
        .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == "requires"))
        .map(|(_, v)| v)
    else {
        return Ok(());
    };
    let field = Some("playbook.requires".to_string());
    let Some(text) = value.get_ref().as_str() else {
        return Err(source.error(
            &value.span(),
            field,
            "must be a version requirement such as \">=0.3\"",
        ));
    };
    let wanted = semver::VersionReq::parse(text).map_err(|e| {
        source.error(
            &value.span(),
            field.clone(),
            format!("`{text}` is not a version requirement ({e}); write one such as \">=0.3\""),
        )
    })?;
    let have = semver::Version::parse(env!("CARGO_PKG_VERSION"))
        .map_err(|e| source.error(&value.span(), field.clone(), e.to_string()))?;
    if wanted.matches(&have) {
        Ok(())
    } else {
        Err(source.error(
            &value.span(),
            field,
            format!("this playbook needs fixer {text}; you have {have}"),
        ))
    }
}

/// One playbook to load among several, with values for it alone (`found`):
/// read from an error log, or kept in a saved plan.
#[derive(Clone, Debug, Default)]
pub struct Pick {
    pub path: PathBuf,
    pub found: Vec<Found>,
}

impl Pick {
    pub fn path(path: &Path) -> Pick {
        Pick {
            path: path.to_path_buf(),
            ..Pick::default()
        }
    }
}

const SECTIONS: &str = "playbook, vars, symptom, counter, resource, handler";

fn take<'i>(table: &mut DeTable<'i>, key: &str) -> Option<(Spanned<String>, Spanned<DeValue<'i>>)> {
    let k = table
        .iter()
        .map(|(k, _)| k)
        .find(|k| k.get_ref() == key)?
        .clone();
    let v = table.remove(&k)?;
    Some((Spanned::new(k.span(), k.get_ref().to_string()), v))
}

impl Playbook {
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Playbook, Error> {
        Self::from_source(Source::read(path)?, overrides)
    }

    /// Load a playbook from its text, as if read from `path` (which names
    /// it in errors; template files are looked up next to it).
    pub fn parse(path: &Path, text: String, overrides: &Overrides) -> Result<Playbook, Error> {
        Self::from_source(
            Source {
                path: path.to_path_buf(),
                text,
            },
            overrides,
        )
    }

    fn from_source(source: Source, overrides: &Overrides) -> Result<Playbook, Error> {
        let path = source.path.as_path();
        let doc = DeTable::parse(&source.text).map_err(|e| source.toml_error(&e, None, ""))?;
        let doc_span = doc.span();
        let doc = doc.into_inner();
        check_requires(&source, &doc)?;
        for (k, _) in doc.iter() {
            if !SECTIONS.split(", ").any(|s| s == k.get_ref()) {
                return Err(source.error(
                    &k.span(),
                    Some(k.get_ref().to_string()),
                    format!(
                        "unknown section `{}`, expected one of: {SECTIONS}",
                        k.get_ref()
                    ),
                ));
            }
        }
        let whole = doc.clone();

        let header: Header = match doc.iter().find(|(k, _)| k.get_ref() == "playbook") {
            Some((_, v)) => Header::deserialize(toml::de::ValueDeserializer::from(v.clone()))
                .map_err(|e| source.toml_error(&e, Some(&whole), ""))?,
            None => {
                return Err(source.error(
                    &(doc_span.start..doc_span.start),
                    Some("playbook".into()),
                    "missing [playbook] table with a `name`",
                ))
            }
        };

        let mut vars = match doc.iter().find(|(k, _)| k.get_ref() == "vars") {
            Some((_, v)) => match v.get_ref() {
                DeValue::Table(t) => Vars::declare(&source, t)?,
                _ => {
                    return Err(source.error(
                        &v.span(),
                        Some("vars".into()),
                        "[vars] must be a table",
                    ))
                }
            },
            None => Vars::default(),
        };
        vars.apply_overrides(overrides)?;
        let first = Renderer::new(vars.data());
        vars.resolve_references(|name, template| {
            first.render(template, false).map_err(|m| {
                let span = whole
                    .iter()
                    .find(|(k, _)| k.get_ref() == "vars")
                    .and_then(|(_, v)| v.get_ref().as_table())
                    .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == name))
                    .map_or(0..0, |(_, v)| v.span());
                source.error(&span, Some(format!("vars.{name}")), m)
            })
        })?;
        let renderer = Renderer::new(vars.data());
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();

        check_discovered(&source, &whole, &vars)?;
        let counters = symptom::declare_counters(&source, &whole)?;
        let symptoms = symptom::declare_all(&source, &whole, &vars, &counters)?;

        // Handlers first, so a resource's `notify` can be checked where it is written.
        let handlers = declare_all(&source, &whole, "handler", &dir, &renderer, &[])?;
        let handler_ids: Vec<&str> = handlers.iter().map(|h| h.id.as_str()).collect();
        let resources = declare_all(&source, &whole, "resource", &dir, &renderer, &handler_ids)?;
        check_claims(&source, &whole, &resources)?;
        check_unique_ids(&source, &whole, &resources, &handlers)?;

        let parts = vec![Part {
            name: header.name.clone(),
            path: path.to_path_buf(),
            vars: vars.clone(),
        }];
        Ok(Playbook {
            path: path.to_path_buf(),
            name: header.name,
            description: header.description,
            vars,
            symptoms,
            resources,
            handlers,
            phase: header.phase,
            parts,
        })
    }

    /// Every sensitive value of every part.
    pub fn masker(&self) -> Masker {
        let mut m = Masker::default();
        for part in &self.parts {
            m.extend(&part.vars.masker());
        }
        m
    }

    /// Load `picks` for a target and put them together: each playbook's
    /// discovered variables are read from `host` (when given; `validate`
    /// has none) unless a value was given for them, then the playbooks are
    /// composed in phase order. A `--var` or `--vars` name that no
    /// playbook declares is an error, as for one playbook.
    pub fn load_for(
        picks: &[Pick],
        overrides: &Overrides,
        host: Option<&dyn crate::host::Host>,
        cx: &crate::discover::Context,
    ) -> Result<Playbook, Error> {
        let several = picks.len() > 1;
        let mut members = Vec::new();
        for pick in picks {
            let mut o = overrides.clone();
            o.partial = several;
            o.found = pick.found.clone();
            let mut pb = Playbook::load(&pick.path, &o)?;
            if let Some(host) = host {
                let from_host = crate::discover::values(&pb.vars, host, cx)
                    .map_err(|e| e.in_playbook(&pb.name))?;
                if !from_host.is_empty() {
                    // Below what the log said: the log is what failed.
                    o.found = from_host
                        .into_iter()
                        .chain(pick.found.iter().cloned())
                        .collect();
                    pb = Playbook::load(&pick.path, &o)?;
                }
            }
            members.push(pb);
        }
        if several {
            overrides.check_declared(&members.iter().map(|m| &m.vars).collect::<Vec<_>>())?;
        }
        Playbook::compose(members)
    }

    /// One playbook made of several, run as one: in phase order, each
    /// resource and handler id prefixed with its playbook's name
    /// (`go-proxy-mirror/go-env`). Two playbooks managing the same thing
    /// are refused, as two resources of one playbook are.
    pub fn compose(mut members: Vec<Playbook>) -> Result<Playbook, Error> {
        if members.len() == 1 {
            if let Some(one) = members.pop() {
                return Ok(one);
            }
        }
        if members.is_empty() {
            return Err(Error::Usage("no playbook given".into()));
        }
        // Stable: playbooks of one phase keep the order given.
        members.sort_by_key(|m| m.phase.map_or(usize::MAX, |p| p as usize));
        for (i, m) in members.iter().enumerate() {
            if let Some(first) = members[..i].iter().find(|o| o.name == m.name) {
                return Err(Error::Usage(format!(
                    "playbook `{}` is given twice ({} and {})",
                    m.name,
                    first.path.display(),
                    m.path.display()
                )));
            }
        }
        let mut claimed: Vec<(&Playbook, &Declared, resource::Claim)> = Vec::new();
        for m in &members {
            for d in &m.resources {
                for claim in d.resource.claims() {
                    if let Some((other, od, _)) = claimed
                        .iter()
                        .find(|(o, _, c)| o.name != m.name && c.clashes(&claim))
                    {
                        return Err(Error::Conflict(format!(
                            "playbooks `{}` ({}) and `{}` ({}) both manage {} (resources `{}` \
                             and `{}`): each apply would undo the other; plan them one at a time",
                            other.name,
                            other.path.display(),
                            m.name,
                            m.path.display(),
                            claim.describe(),
                            od.id,
                            d.id
                        )));
                    }
                    claimed.push((m, d, claim));
                }
            }
        }
        drop(claimed);
        let name = members
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join("+");
        let path = members[0].path.clone();
        let mut resources = Vec::new();
        let mut handlers = Vec::new();
        let mut parts = Vec::new();
        for m in members {
            let prefix = |id: &str| format!("{}/{id}", m.name);
            for mut d in m.resources {
                d.id = prefix(&d.id);
                d.notify = d.notify.iter().map(|n| prefix(n)).collect();
                resources.push(d);
            }
            for mut h in m.handlers {
                h.id = prefix(&h.id);
                handlers.push(h);
            }
            parts.extend(m.parts);
        }
        Ok(Playbook {
            path,
            name,
            description: None,
            vars: Vars::default(),
            symptoms: Vec::new(),
            resources,
            handlers,
            phase: None,
            parts,
        })
    }
}

/// A variable discovered from another one (`owner:gomodcache`) must name
/// a declared variable.
fn check_discovered(source: &Source, doc: &DeTable<'_>, vars: &Vars) -> Result<(), Error> {
    for (name, var) in vars.iter() {
        for of in var
            .discover
            .iter()
            .filter_map(|f| crate::discover::referenced_var(f))
        {
            if vars.contains(of) && of != name {
                continue;
            }
            let span = doc
                .iter()
                .find(|(k, _)| k.get_ref() == "vars")
                .and_then(|(_, v)| v.get_ref().as_table())
                .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == name))
                .map_or(0..0, |(_, v)| v.span());
            return Err(source.error(
                &span,
                Some(format!("vars.{name}.discover")),
                format!("`{of}` is not another variable of this playbook"),
            ));
        }
    }
    Ok(())
}

fn array_of_tables<'a, 'i>(
    source: &Source,
    doc: &'a DeTable<'i>,
    section: &str,
) -> Result<Vec<&'a Spanned<DeValue<'i>>>, Error> {
    let Some((k, v)) = doc.iter().find(|(k, _)| k.get_ref() == section) else {
        return Ok(Vec::new());
    };
    match v.get_ref() {
        DeValue::Array(items) => Ok(items.iter().collect()),
        _ => Err(source.error(
            &k.span(),
            Some(section.to_string()),
            format!("`{section}` must be an array of tables: write [[{section}]]"),
        )),
    }
}

fn declare_all(
    source: &Source,
    doc: &DeTable<'_>,
    section: &str,
    dir: &Path,
    renderer: &Renderer,
    handler_ids: &[&str],
) -> Result<Vec<Declared>, Error> {
    let mut out = Vec::new();
    for (i, item) in array_of_tables(source, doc, section)?
        .into_iter()
        .enumerate()
    {
        let prefix = format!("{section}[{i}]");
        let DeValue::Table(table) = item.get_ref() else {
            return Err(source.error(&item.span(), Some(prefix), "expected a table"));
        };
        let scope = Scope {
            source,
            dir,
            renderer,
            handler_ids,
        };
        out.push(scope.declare(table, item.span(), &prefix, section)?);
    }
    Ok(out)
}

fn string_field(
    source: &Source,
    prefix: &str,
    (key, value): &(Spanned<String>, Spanned<DeValue<'_>>),
) -> Result<Spanned<String>, Error> {
    match value.get_ref().as_str() {
        Some(s) => Ok(Spanned::new(value.span(), s.to_string())),
        None => Err(source.error(
            &value.span(),
            Some(format!("{prefix}.{}", key.get_ref())),
            format!("`{}` must be a string", key.get_ref()),
        )),
    }
}

/// What declaring one resource or handler needs besides its table.
struct Scope<'a> {
    source: &'a Source,
    dir: &'a Path,
    renderer: &'a Renderer,
    handler_ids: &'a [&'a str],
}

impl Scope<'_> {
    fn declare(
        &self,
        original: &DeTable<'_>,
        span: std::ops::Range<usize>,
        prefix: &str,
        section: &str,
    ) -> Result<Declared, Error> {
        let Scope {
            source,
            dir,
            renderer,
            handler_ids,
        } = *self;
        let mut table = original.clone();
        let kind_name = match take(&mut table, "type") {
            Some(t) => string_field(source, prefix, &t)?,
            None if section == "handler" => Spanned::new(span.clone(), "command".to_string()),
            None => {
                return Err(source.error(
                    &span,
                    Some(format!("{prefix}.type")),
                    format!(
                        "missing field `type`, expected one of: {}",
                        resource::kind_names()
                    ),
                ))
            }
        };
        let kind = resource::KINDS
            .iter()
            .find(|k| k.name == kind_name.get_ref())
            .filter(|k| section == "resource" || k.name == "command")
            .ok_or_else(|| {
                let expected = if section == "handler" {
                    "command".to_string()
                } else {
                    resource::kind_names()
                };
                source.error(
                    &kind_name.span(),
                    Some(format!("{prefix}.type")),
                    format!(
                        "unknown {section} type `{}`, expected one of: {expected}",
                        kind_name.get_ref()
                    ),
                )
            })?;
        let id = take(&mut table, "id")
            .map(|t| string_field(source, prefix, &t))
            .transpose()?;
        if let Some(id) = id.as_ref().filter(|id| id.get_ref().is_empty()) {
            return Err(source.error(
                &id.span(),
                Some(format!("{prefix}.id")),
                "`id` is empty: leave it out for the default, or name the resource",
            ));
        }
        let notify = match take(&mut table, "notify") {
            Some((k, v)) => Vec::<Spanned<String>>::deserialize(toml::de::ValueDeserializer::from(
                v,
            ))
            .map_err(|e| {
                source.error(
                    &e.span().unwrap_or(k.span()),
                    Some(format!("{prefix}.notify")),
                    e.message().to_string(),
                )
            })?,
            None => Vec::new(),
        };
        if section == "handler" && !notify.is_empty() {
            return Err(source.error(
                &notify[0].span(),
                Some(format!("{prefix}.notify")),
                "handlers cannot notify other handlers",
            ));
        }
        for (j, n) in notify.iter().enumerate() {
            if !handler_ids.contains(&n.get_ref().as_str()) {
                return Err(source.error(
                    &n.span(),
                    Some(format!("{prefix}.notify[{j}]")),
                    format!(
                        "notify names `{}`, which is not a declared [[handler]] (declared: {})",
                        n.get_ref(),
                        if handler_ids.is_empty() {
                            "none".to_string()
                        } else {
                            handler_ids.join(", ")
                        }
                    ),
                ));
            }
        }
        if section == "handler" && id.is_none() {
            return Err(source.error(
                &span,
                Some(format!("{prefix}.id")),
                "a handler needs an `id` for resources to notify",
            ));
        }

        // Render every string in place, keeping spans for later errors.
        for (k, v) in table.iter_mut() {
            let shell = kind.shell_fields.contains(&k.get_ref().as_ref());
            render_value(
                source,
                v,
                &format!("{prefix}.{}", k.get_ref()),
                shell,
                renderer,
            )?;
        }
        let build = Build {
            source,
            table: original,
            prefix: prefix.to_string(),
            dir,
            renderer,
        };
        let value = Spanned::new(span, DeValue::Table(table));
        let resource = (kind.build)(value, &build)?;
        let id = match id {
            Some(id) => id.into_inner(),
            None => format!("{}:{}", kind.name, resource.subject()),
        };
        Ok(Declared {
            id,
            notify: notify.into_iter().map(Spanned::into_inner).collect(),
            resource,
        })
    }
}

fn render_value(
    source: &Source,
    v: &mut Spanned<DeValue<'_>>,
    field: &str,
    shell: bool,
    renderer: &Renderer,
) -> Result<(), Error> {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) => {
            let rendered = renderer
                .render(s, shell)
                .map_err(|m| source.error(&span, Some(field.to_string()), m))?;
            *s = std::borrow::Cow::Owned(rendered);
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                // Array elements are argv words: never shell-quoted.
                render_value(source, item, &format!("{field}[{i}]"), false, renderer)?;
            }
        }
        DeValue::Table(t) => {
            for (k, item) in t.iter_mut() {
                render_value(
                    source,
                    item,
                    &format!("{field}.{}", k.get_ref()),
                    false,
                    renderer,
                )?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Refuse two resources that manage the same thing (the same file's
/// content, one key, a path's mode): each apply would undo the other and
/// the playbook would never converge.
fn check_claims(source: &Source, doc: &DeTable<'_>, resources: &[Declared]) -> Result<(), Error> {
    let items = array_of_tables(source, doc, "resource")?;
    let mut seen: Vec<(usize, resource::Claim)> = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let claims = r.resource.claims();
        for claim in &claims {
            let Some((first, earlier)) = seen.iter().find(|(_, c)| c.clashes(claim)) else {
                continue;
            };
            let (first, earlier) = (*first, earlier.clone());
            let span = |j: usize, field: &str| {
                items.get(j).map_or(0..0, |item| {
                    item.get_ref()
                        .as_table()
                        .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == field))
                        .map_or(item.span(), |(_, v)| v.span())
                })
            };
            let first_line = source.location(span(first, earlier.field).start, None).line;
            return Err(source.error(
                &span(i, claim.field),
                Some(format!("resource[{i}].{}", claim.field)),
                format!(
                    "`{}` and `{}` (line {first_line}) both manage {}: each apply would undo \
                     the other; keep one of them",
                    r.id,
                    resources[first].id,
                    claim.describe()
                ),
            ));
        }
        seen.extend(claims.into_iter().map(|c| (i, c)));
    }
    Ok(())
}

fn check_unique_ids(
    source: &Source,
    doc: &DeTable<'_>,
    resources: &[Declared],
    handlers: &[Declared],
) -> Result<(), Error> {
    for (section, declared) in [("resource", resources), ("handler", handlers)] {
        let spans: Vec<std::ops::Range<usize>> = array_of_tables(source, doc, section)?
            .iter()
            .map(|i| i.span())
            .collect();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, r) in declared.iter().enumerate() {
            if let Some(first) = seen.insert(&r.id, i) {
                let first_line = source.location(spans[first].start, None).line;
                return Err(source.error(
                    &spans[i],
                    Some(format!("{section}[{i}].id")),
                    format!(
                        "duplicate {section} id `{}` (first declared on line {first_line}); give one of them an explicit `id`",
                        r.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

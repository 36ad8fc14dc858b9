//! Resource types. Each module turns its playbook table into a typed value
//! implementing [`Resource`]; adding a type is one new module and one line in
//! [`KINDS`].

pub mod attributes;
mod clean;
mod command;
mod env;
pub(crate) use env::{Env as EnvFile, Style as EnvStyle};
pub(crate) use gitconfig::{normal_key as gitconfig_normal_key, value_of as gitconfig_value_of};
mod git_config;
mod git_url_rewrite;
mod gitconfig;
mod go_mod_tidy;
pub(crate) mod netplan;
pub use command::{exit_text, outcome_text};
mod file;
mod permissions;
mod probe;
mod yaml_edit;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::change::Delta;
use crate::error::Error;
use crate::host::Host;
use crate::playbook::source::{field_at, Source};
use crate::playbook::template::Renderer;

/// Facts about the target that resolve playbook paths, and what is being
/// done with them.
#[derive(Clone, Debug)]
pub struct Context {
    /// `~` on the target.
    pub home: PathBuf,
    /// Whether changes are being made (apply) or only shown (plan).
    pub applying: bool,
}

/// One piece of desired state.
///
/// The contract: `plan` *observes* the host (read-only) and returns the
/// operations that take it from what it is to what the resource declares;
/// none when it already is. The engine applies those operations, journals
/// the prior state of everything they touch first, and derives undo from
/// that journal (see [`crate::change::Op`]). `plan` may be given an
/// [`crate::host::Overlay`] that already carries the effects of earlier
/// resources, and must not care.
pub trait Resource: Send + Sync + fmt::Debug {
    /// The type name as written in playbooks (`file`, `clean`, ...).
    fn kind(&self) -> &'static str;
    /// What the resource is about (a path, a command line); the default id
    /// is `<kind>:<subject>`.
    fn subject(&self) -> String;
    /// Paths `plan` will look at, when known up front: a host where every
    /// observation is a network round trip fetches them all at once.
    fn observes(&self, _cx: &Context) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Observe and compute the change.
    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error>;
    /// A read-only check confirming the fix (`probe`): planned and applied
    /// after the handlers, so it sees the host as the whole run leaves it.
    fn is_check(&self) -> bool {
        false
    }
    /// Whether applying it may cut the connection to a remote host
    /// (network configuration): such a run is confirmed over a new one.
    fn may_cut_connection(&self) -> bool {
        false
    }
    /// What it manages, as far as the playbook alone tells: two resources
    /// claiming the same thing would undo each other on every apply, so
    /// the loader refuses them ([`Claim::clashes`]).
    fn claims(&self) -> Vec<Claim> {
        Vec::new()
    }
}

/// One thing a resource manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The path in normal form (`~/x` as written), or a default location
    /// by name (`(go env file)`).
    pub path: String,
    pub part: Part,
    /// The field naming it, for the error.
    pub field: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// The whole content (or existence) of the path.
    Content,
    /// Its mode and ownership.
    Attrs,
    /// One key of a config file, set to exactly the declared value(s).
    Key(String),
    /// Values added to a multi-valued key, others kept.
    AddsTo(String),
}

impl Claim {
    pub fn new(path: &TargetPath, part: Part, field: &'static str) -> Self {
        Claim {
            path: path.as_str().to_string(),
            part,
            field,
        }
    }

    /// A claim on a location the playbook names without a path.
    pub fn named(path: &str, part: Part, field: &'static str) -> Self {
        Claim {
            path: path.to_string(),
            part,
            field,
        }
    }

    /// Whether two resources claiming these could not both hold.
    pub fn clashes(&self, other: &Claim) -> bool {
        use Part::*;
        self.path == other.path
            && match (&self.part, &other.part) {
                (Attrs, Attrs) => true,
                (Attrs, _) | (_, Attrs) => false,
                (Content, _) | (_, Content) => true,
                (Key(a), Key(b)) | (Key(a), AddsTo(b)) | (AddsTo(a), Key(b)) => a == b,
                (AddsTo(_), AddsTo(_)) => false,
            }
    }

    /// How the claim reads in an error.
    pub fn describe(&self) -> String {
        match &self.part {
            Part::Content => self.path.clone(),
            Part::Attrs => format!("the mode and owner of {}", self.path),
            Part::Key(k) | Part::AddsTo(k) => format!("`{k}` in {}", self.path),
        }
    }
}

pub type Builder = fn(Spanned<DeValue<'_>>, &Build<'_>) -> Result<Box<dyn Resource>, Error>;

/// A registered resource type.
pub struct Kind {
    pub name: &'static str,
    pub build: Builder,
    /// Fields holding a shell line: values substituted into them are quoted.
    pub shell_fields: &'static [&'static str],
    /// The JSON Schema of the type's table (without `type`, `id` and
    /// `notify`): the same `Spec` the builder deserializes, so the schema
    /// and docs/playbook.md cannot drift from what is accepted.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

/// The registry of resource types.
pub const KINDS: &[Kind] = &[
    file::KIND,
    permissions::KIND,
    clean::KIND,
    command::KIND,
    env::KIND,
    git_url_rewrite::KIND,
    git_config::KIND,
    go_mod_tidy::KIND,
    netplan::KIND,
    probe::KIND,
];

pub fn kind_names() -> String {
    KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// What a resource builder gets: its (rendered) table and the means to
/// report errors at the right place.
pub struct Build<'a> {
    pub source: &'a Source,
    /// The table as written, for locating fields by span.
    pub table: &'a DeTable<'a>,
    /// `resource[3]` or `handler[0]`.
    pub prefix: String,
    /// The playbook's directory: template paths are relative to it.
    pub dir: &'a Path,
    pub renderer: &'a Renderer,
}

impl Build<'_> {
    pub fn deserialize<T: DeserializeOwned>(
        &self,
        value: Spanned<DeValue<'_>>,
    ) -> Result<T, Error> {
        T::deserialize(toml::de::ValueDeserializer::from(value))
            .map_err(|e| self.source.toml_error(&e, Some(self.table), &self.prefix))
    }

    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> Error {
        Error::Input {
            at: self.location(span),
            message: message.into(),
        }
    }

    /// Where `span` is in the playbook, with the field it is part of.
    pub fn location(&self, span: &Range<usize>) -> crate::error::Location {
        let field = field_at(self.table, span, &self.prefix).or_else(|| Some(self.prefix.clone()));
        self.source.location(span.start, field)
    }

    /// Read and render a template file named relative to the playbook.
    pub fn template(
        &self,
        rel: &Spanned<String>,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<String, Error> {
        let path = self.dir.join(rel.get_ref());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            self.error(
                &rel.span(),
                format!("cannot read template {}: {e}", path.display()),
            )
        })?;
        self.renderer
            .render_with(&text, false, extra)
            .map_err(|m| self.error(&rel.span(), format!("{}: {m}", path.display())))
    }
}

/// Refuse what no resource may do, whatever its declaration says, before
/// anything happens: a glob or a variable gone wrong (`/home/{{user}}/`
/// with an empty user is `/home`) must not remove a whole system, a home
/// or fixer's own records, and fixer's state folder is fixer's alone.
/// Checked by the engine for every change of every resource.
pub fn guard(delta: &Delta, cx: &Context) -> Result<(), Error> {
    let state = Path::new(crate::journal::STATE_DIR);
    for op in &delta.ops {
        let Some(path) = op.path() else { continue };
        let path = normal(path);
        let why = if path == state {
            Some("it is fixer's own state folder".to_string())
        } else if path.starts_with(state) {
            Some("it is inside fixer's own state folder".to_string())
        } else if !matches!(op, crate::change::Op::Remove { .. }) {
            None
        } else if path.components().count() < 3 {
            Some("it is too close to /".to_string())
        } else if cx.home.starts_with(&path) {
            Some(format!(
                "it is the home directory {} or holds it",
                cx.home.display()
            ))
        } else if state.starts_with(&path) {
            Some(format!("it holds fixer's state folder {}", state.display()))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::Conflict(format!(
                "refusing to {} {}: {why}",
                match op {
                    crate::change::Op::Remove { .. } => "remove",
                    _ => "change",
                },
                path.display()
            )));
        }
    }
    Ok(())
}

/// The bytes and attributes of the regular file at `path`; `None` when it
/// does not exist, an error when something else (a directory, a symlink)
/// is there. What resources that edit a file read before changing it.
pub fn read_regular_file(
    host: &dyn Host,
    path: &Path,
) -> Result<Option<(Vec<u8>, crate::host::Meta)>, Error> {
    use crate::host::{FileKind, OnHost};
    match host.stat(path).on(host)? {
        None => Ok(None),
        Some(m) if m.kind == FileKind::File => Ok(Some((host.read(path).on(host)?, m))),
        Some(m) => Err(Error::Conflict(format!(
            "{} is not a regular file ({:?})",
            path.display(),
            m.kind
        ))),
    }
}

/// A path on the target as a playbook writes it: absolute, or starting
/// with `~` (the home of the user fixer acts as on the target). Kept in
/// normal form (`/etc/./x//` is `/etc/x`, `/a/b/..` is `/a`), so two
/// spellings of one path are one path, and a removal guard sees the path
/// that will be removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetPath(String);

/// `path` with `.`, empty and `..` components resolved lexically; `..`
/// never climbs above `/`.
pub fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl TargetPath {
    pub fn resolve(&self, cx: &Context) -> PathBuf {
        match self.0.strip_prefix('~') {
            Some(rest) => normal(&cx.home.join(rest.trim_start_matches('/'))),
            None => PathBuf::from(&self.0),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        if s.contains('\0') {
            return Err("a path cannot hold a NUL byte".into());
        }
        if s.starts_with('/') {
            Ok(TargetPath(
                normal(Path::new(s)).to_string_lossy().into_owned(),
            ))
        } else if s == "~" || s.starts_with("~/") {
            // `..` just below `~` stays: only the target knows where `~` is.
            let mut parts: Vec<&str> = Vec::new();
            for part in s[1..].split('/') {
                match part {
                    "" | "." => {}
                    ".." if parts.last().is_some_and(|p| *p != "..") => {
                        parts.pop();
                    }
                    other => parts.push(other),
                }
            }
            let mut out = String::from("~");
            for p in parts {
                out.push('/');
                out.push_str(p);
            }
            Ok(TargetPath(out))
        } else if s.is_empty() {
            Err("path is empty".into())
        } else {
            Err(format!(
                "`{s}` is a relative path: target paths must be absolute or start with ~/"
            ))
        }
    }
}

impl schemars::JsonSchema for TargetPath {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TargetPath".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // A value may be a template (`{{home}}/x`): only what cannot be a
        // target path once rendered is ruled out.
        schemars::json_schema!({
            "title": "path",
            "type": "string",
            "pattern": "^(/|~/|~$|\\{\\{)",
            "description": "A path on the target: absolute, or starting with `~/` (the home of the user fixer acts as on the target); a relative path is an error. With `--root DIR` it is taken inside DIR."
        })
    }
}

impl<'de> Deserialize<'de> for TargetPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TargetPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

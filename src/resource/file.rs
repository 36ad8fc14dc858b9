//! `file`: a regular file with given content (inline or from a template),
//! a directory, or nothing at a path; optionally its mode and owner.

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::attributes::{attrs_to_change, resolve_owner, Account, Mode};
use super::{Build, Claim, Context, Kind, Part, Resource, TargetPath};
use crate::change::{Delta, Op, Prior};
use crate::error::Error;
use crate::host::{Attrs, FileKind, Host, OnHost};

pub const KIND: Kind = Kind {
    name: "file",
    build,
    shell_fields: &[],
    schema: <Spec as schemars::JsonSchema>::json_schema,
};

#[derive(
    Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
enum State {
    #[default]
    Present,
    Absent,
    Directory,
}

/// A regular file with given content (inline or from a template), a
/// directory, or nothing at a path; optionally its mode and owner.
///
/// Only regular files are replaced: a directory or symlink at `path` is a
/// conflict, reported at plan time. Missing parent directories are created
/// (0755) and removed again on rollback.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
// A present file needs its content (`state` absent means present).
#[schemars(extend("anyOf" = [{"required": ["content"]}, {"required": ["template"]}, {"required": ["state"]}]))]
struct Spec {
    /// The file (or directory) on the target.
    path: TargetPath,
    /// The whole content (`state = "present"` only); exclusive with `template`.
    #[serde(default)]
    content: Option<String>,
    /// A Handlebars file, relative to the playbook, rendered as the content.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    template: Option<Spanned<String>>,
    /// Extra variables for the template only.
    #[serde(default)]
    vars: Option<serde_json::Map<String, serde_json::Value>>,
    /// The mode; unset leaves an existing file's mode alone.
    #[serde(default)]
    mode: Option<Mode>,
    /// The owning user; unset leaves it alone.
    #[serde(default)]
    owner: Option<Account>,
    /// The owning group; unset leaves it alone.
    #[serde(default)]
    group: Option<Account>,
    /// `absent` removes a file, symlink or whole directory (kept for rollback).
    #[serde(default)]
    state: State,
}

#[derive(Debug)]
struct File {
    path: TargetPath,
    content: Option<Vec<u8>>,
    mode: Option<Mode>,
    owner: Option<Account>,
    group: Option<Account>,
    state: State,
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let spec: Spec = b.deserialize(value)?;
    let content = match (&spec.content, &spec.template, spec.state) {
        (Some(_), Some(t), _) => {
            return Err(b.error(&t.span(), "set either `content` or `template`, not both"))
        }
        (Some(c), None, State::Present) => Some(c.clone().into_bytes()),
        (None, Some(t), State::Present) => Some(b.template(t, spec.vars.as_ref())?.into_bytes()),
        (None, None, State::Present) => {
            return Err(b.error(
                &span,
                "a present file needs `content` or `template` (use a `permissions` resource to manage only mode and owner)",
            ))
        }
        (None, None, _) => None,
        (_, _, state) => {
            return Err(b.error(
                &span,
                format!("`content`/`template` make no sense with state = \"{}\"", if state == State::Absent { "absent" } else { "directory" }),
            ))
        }
    };
    if spec.state == State::Absent
        && (spec.mode.is_some() || spec.owner.is_some() || spec.group.is_some())
    {
        return Err(b.error(
            &span,
            "mode/owner/group make no sense with state = \"absent\"",
        ));
    }
    Ok(Box::new(File {
        path: spec.path,
        content,
        mode: spec.mode,
        owner: spec.owner,
        group: spec.group,
        state: spec.state,
    }))
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "a regular file",
        FileKind::Dir => "a directory",
        FileKind::Symlink => "a symlink",
        FileKind::Other => "a special file",
    }
}

impl Resource for File {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn subject(&self) -> String {
        self.path.as_str().to_string()
    }

    fn observes(&self, cx: &Context) -> Vec<std::path::PathBuf> {
        vec![self.path.resolve(cx)]
    }

    fn claims(&self) -> Vec<Claim> {
        let mut claims = vec![Claim::new(&self.path, Part::Content, "path")];
        if self.state == State::Absent
            || self.mode.is_some()
            || self.owner.is_some()
            || self.group.is_some()
        {
            claims.push(Claim::new(&self.path, Part::Attrs, "path"));
        }
        claims
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let path = self.path.resolve(cx);
        let meta = host.stat(&path).on(host)?;
        let new_attrs = |default_mode: u32, is_dir: bool| -> Result<Attrs, Error> {
            let (uid, gid) = resolve_owner(host, self.owner.as_ref(), self.group.as_ref())?;
            Ok(Attrs {
                mode: self.mode.as_ref().map(|m| m.apply(default_mode, is_dir)),
                uid,
                gid,
            })
        };
        let changed_attrs = |m: &crate::host::Meta| -> Result<Attrs, Error> {
            let (uid, gid) = resolve_owner(host, self.owner.as_ref(), self.group.as_ref())?;
            Ok(attrs_to_change(m, self.mode.as_ref(), uid, gid))
        };
        let conflict = |what: &str, kind: FileKind| {
            Error::Conflict(format!("{} is {}, {what}", path.display(), kind_name(kind)))
        };
        let mut ops = Vec::new();
        match (self.state, meta) {
            (State::Absent, None) => {}
            (State::Absent, Some(before)) => ops.push(Op::Remove { path, before }),
            (State::Directory, None) => ops.push(Op::Mkdir {
                attrs: new_attrs(0o755, true)?,
                path,
            }),
            (State::Directory, Some(m)) if m.kind == FileKind::Dir => {
                let attrs = changed_attrs(&m)?;
                if !attrs.is_empty() {
                    ops.push(Op::SetMeta {
                        path,
                        before: m,
                        attrs,
                    });
                }
            }
            (State::Directory, Some(m)) => return Err(conflict("not a directory", m.kind)),
            (State::Present, None) => ops.push(Op::Write {
                attrs: new_attrs(0o644, false)?,
                path,
                before: None,
                content: self.content.clone().unwrap_or_default(),
            }),
            (State::Present, Some(m)) if m.kind == FileKind::File => {
                // A large file is compared by digest, streamed.
                let current = Prior::read(host, &path, &m).on(host)?;
                let attrs = changed_attrs(&m)?;
                let content = self.content.as_deref().unwrap_or_default();
                if !current.holds(content) {
                    ops.push(Op::Write {
                        path,
                        before: Some((current, m)),
                        content: content.to_vec(),
                        attrs,
                    });
                } else if !attrs.is_empty() {
                    ops.push(Op::SetMeta {
                        path,
                        before: m,
                        attrs,
                    });
                }
            }
            (State::Present, Some(m)) => {
                return Err(conflict(
                    "not a regular file; fixer replaces only regular files",
                    m.kind,
                ))
            }
        }
        Ok(Delta::ops(ops))
    }
}

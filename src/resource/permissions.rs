//! `permissions`: mode, owner and group of an existing path, optionally of
//! everything beneath it.

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::attributes::{attrs_to_change, resolve_owner, Account, Mode};
use super::{Build, Claim, Context, Kind, Part, Resource, TargetPath};
use crate::change::{Delta, Op};
use crate::error::Error;
use crate::host::{walk, FileKind, Host, OnHost};

pub const KIND: Kind = Kind {
    name: "permissions",
    build,
    shell_fields: &[],
    schema: <Permissions as schemars::JsonSchema>::json_schema,
};

/// Mode, owner and group of an existing path, optionally of everything
/// beneath it. At least one of `mode`, `owner`, `group`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["mode"]}, {"required": ["owner"]}, {"required": ["group"]}]))]
struct Permissions {
    /// Must exist (or be created by an earlier resource), unless `skip_missing`.
    path: TargetPath,
    /// The mode to set.
    #[serde(default)]
    mode: Option<Mode>,
    /// The owning user to set.
    #[serde(default)]
    owner: Option<Account>,
    /// The owning group to set.
    #[serde(default)]
    group: Option<Account>,
    /// Also everything beneath `path`; symlinks inside are left alone.
    #[serde(default)]
    recursive: bool,
    /// A missing `path` is in order (nothing to fix) rather than an error.
    #[serde(default)]
    skip_missing: bool,
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let p: Permissions = b.deserialize(value)?;
    if p.mode.is_none() && p.owner.is_none() && p.group.is_none() {
        return Err(b.error(&span, "set at least one of `mode`, `owner`, `group`"));
    }
    Ok(Box::new(p))
}

impl Resource for Permissions {
    fn kind(&self) -> &'static str {
        "permissions"
    }

    fn subject(&self) -> String {
        self.path.as_str().to_string()
    }

    fn claims(&self) -> Vec<Claim> {
        vec![Claim::new(&self.path, Part::Attrs, "path")]
    }

    fn observes(&self, cx: &Context) -> Vec<std::path::PathBuf> {
        vec![self.path.resolve(cx)]
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let path = self.path.resolve(cx);
        let (uid, gid) = resolve_owner(host, self.owner.as_ref(), self.group.as_ref())?;
        let meta = match host.stat(&path).on(host)? {
            Some(m) => m,
            None if self.skip_missing => {
                return Ok(Delta {
                    ops: Vec::new(),
                    notes: vec![format!("skipped: {} does not exist", path.display())],
                    warnings: Vec::new(),
                })
            }
            None => {
                return Err(Error::Conflict(format!(
                    "{} does not exist (set skip_missing = true if that is fine)",
                    path.display()
                )))
            }
        };
        if meta.kind == FileKind::Symlink {
            return Err(Error::Conflict(format!(
                "{} is a symlink; name the file it points to",
                path.display()
            )));
        }
        let paths = if self.recursive {
            walk::tree(host, &path).on(host)?
        } else {
            vec![(path, meta)]
        };
        let ops = paths
            .into_iter()
            // Symlinks inside a tree are left alone: chmod would follow them.
            .filter(|(_, m)| m.kind != FileKind::Symlink)
            .filter_map(|(p, m)| {
                let attrs = attrs_to_change(&m, self.mode.as_ref(), uid, gid);
                (!attrs.is_empty()).then_some(Op::SetMeta {
                    path: p,
                    before: m,
                    attrs,
                })
            })
            .collect();
        Ok(Delta::ops(ops))
    }
}

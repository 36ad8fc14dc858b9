//! `clean`: paths (globs allowed) that must not exist — caches, mostly.
//! Removal is a move into the run's backup area, so a run can be rolled back
//! until it is pruned.

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::{Build, Claim, Context, Kind, Part, Resource, TargetPath};
use crate::change::{Delta, Op};
use crate::error::Error;
use crate::host::{walk, Host, OnHost};

pub const KIND: Kind = Kind {
    name: "clean",
    build,
    shell_fields: &[],
    schema: <Clean as schemars::JsonSchema>::json_schema,
};

/// Paths that must not exist: caches, mostly.
///
/// Every match is removed with everything beneath it, read-only trees such
/// as Go's module cache included. Removal moves the tree into the run's
/// `saved/` area (free on the same filesystem; copied otherwise), so rollback
/// puts it back. Paths are taken in normal form first (`/srv/app/..` is
/// `/srv`); then a match with fewer than two components (`/tmp`, `/srv`),
/// the home directory or one holding it, and fixer's state folder or one
/// holding it, are refused, as for every removal.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Clean {
    /// Paths or globs: `*`, `?`, `[..]` within a component (not matching a
    /// leading dot), `**` for any number of directories (hidden directories
    /// not entered).
    #[schemars(length(min = 1))]
    paths: Vec<TargetPath>,
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let c: Clean = b.deserialize(value)?;
    if c.paths.is_empty() {
        return Err(b.error(&span, "`paths` is empty: name at least one path or glob"));
    }
    Ok(Box::new(c))
}

impl Resource for Clean {
    fn kind(&self) -> &'static str {
        "clean"
    }

    fn claims(&self) -> Vec<Claim> {
        // A glob's matches are known only on the target.
        self.paths
            .iter()
            .filter(|p| !p.as_str().contains(['*', '?', '[']))
            .map(|p| Claim::new(p, Part::Content, "paths"))
            .collect()
    }

    fn subject(&self) -> String {
        self.paths
            .iter()
            .map(TargetPath::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let mut ops = Vec::new();
        for pattern in &self.paths {
            let pattern = pattern.resolve(cx);
            let matches = walk::expand(host, &pattern).map_err(|e| match e {
                walk::GlobError::Host(h) => Error::host(host, h),
                walk::GlobError::Pattern(m) => {
                    Error::Conflict(format!("{}: {m}", pattern.display()))
                }
            })?;
            // What a glob gone wrong may not remove is refused by the
            // engine (`resource::guard`), for every resource alike.
            for path in matches {
                if ops
                    .iter()
                    .any(|o: &Op| o.path().is_some_and(|p| path.starts_with(p)))
                {
                    continue;
                }
                if let Some(before) = host.stat(&path).on(host)? {
                    ops.push(Op::Remove { path, before });
                }
            }
        }
        Ok(Delta::ops(ops))
    }
}

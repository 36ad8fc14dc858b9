//! `clean`: paths (globs allowed) that must not exist — caches, mostly.
//! Removal is a move into the run's backup area, so a run can be rolled back
//! until it is pruned.

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::{Build, Context, Kind, Resource, TargetPath};
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
/// puts it back. A match with fewer than two components (`/tmp`, `/srv`) or
/// equal to the home directory is refused.
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
            for path in matches {
                // A glob gone wrong must not take a whole system or home with it.
                if path.components().count() < 3 || path == cx.home {
                    return Err(Error::Conflict(format!(
                        "refusing to remove {} (matched by {}): too close to / or the home directory",
                        path.display(),
                        pattern.display()
                    )));
                }
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

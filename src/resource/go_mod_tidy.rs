//! `go_mod_tidy`: go.mod and go.sum as `go mod tidy` leaves them.
//!
//! The plan runs the real `go mod tidy` with `-modfile` pointing at a copy of
//! go.mod (and go.sum) in a scratch directory: go reads the module's sources
//! in place but writes only the copies, so the plan shows the exact diff and
//! the module stays untouched. Apply writes the results as ordinary file
//! changes, backed up for rollback. go may still download modules into its
//! module cache while planning, as it would for `go list`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::{
    outcome_text, read_regular_file, Build, Claim, Context, Kind, Part, Resource, TargetPath,
};
use crate::change::{Delta, Op, Prior};
use crate::error::Error;
use crate::host::{Attrs, Cmd, Host, OnHost};

pub const KIND: Kind = Kind {
    name: "go_mod_tidy",
    build,
    shell_fields: &[],
    schema: <GoModTidy as schemars::JsonSchema>::json_schema,
};

/// go.mod and go.sum as `go mod tidy` leaves them.
///
/// `plan` runs the real `go mod tidy -modfile=<scratch>/go.mod` in `dir`: go
/// reads the module's sources in place but writes only copies of go.mod and
/// go.sum in a scratch directory, so the plan shows the exact diff and the
/// module is untouched. go may still download modules into its module cache
/// while planning. `apply` writes the two files (backed up for rollback). A
/// missing go binary, a module that does not resolve, or any go error fails
/// with go's own message and changes nothing. With `--root`, go runs on this
/// machine in the mapped directory.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct GoModTidy {
    /// The module root (the directory holding go.mod).
    dir: TargetPath,
    /// Environment for go: `GOPROXY`, `GOFLAGS`, `GOPRIVATE`, ... (added to
    /// fixer's own environment); `GOFLAGS` may not set `-modfile`.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// The go binary (default: `go` from `PATH`).
    #[serde(default = "default_go")]
    go: String,
    /// Seconds before go is killed: a go stuck on a blocked proxy is
    /// stopped, and says so.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1))]
    timeout: u64,
}

fn default_go() -> String {
    "go".into()
}

fn default_timeout() -> u64 {
    300
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let g: GoModTidy = b.deserialize(value)?;
    if g.env.get("GOFLAGS").is_some_and(|f| f.contains("-modfile")) {
        return Err(b.error(
            &span,
            "GOFLAGS may not set -modfile: fixer uses it to plan without touching go.mod",
        ));
    }
    if g.timeout == 0 {
        return Err(b.error(&span, "`timeout` must be at least 1 second"));
    }
    Ok(Box::new(g))
}

impl Resource for GoModTidy {
    fn kind(&self) -> &'static str {
        "go_mod_tidy"
    }

    fn subject(&self) -> String {
        self.dir.as_str().to_string()
    }

    fn claims(&self) -> Vec<Claim> {
        ["go.mod", "go.sum"]
            .iter()
            .map(|f| {
                let path = format!("{}/{f}", self.dir.as_str().trim_end_matches('/'));
                Claim::named(&path, Part::Content, "dir")
            })
            .collect()
    }

    fn observes(&self, cx: &Context) -> Vec<std::path::PathBuf> {
        let dir = self.dir.resolve(cx);
        vec![dir.join("go.mod"), dir.join("go.sum")]
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let dir = self.dir.resolve(cx);
        let gomod = dir.join("go.mod");
        let gosum = dir.join("go.sum");
        let mod_before = read_regular_file(host, &gomod)?.ok_or_else(|| {
            Error::Conflict(format!(
                "{} has no go.mod: not a Go module root",
                dir.display()
            ))
        })?;
        let sum_before = read_regular_file(host, &gosum)?;

        let scratch = host.scratch().on(host)?;
        scratch.write("go.mod", &mod_before.0).on(host)?;
        if let Some((bytes, _)) = &sum_before {
            scratch.write("go.sum", bytes).on(host)?;
        }
        let cmd = Cmd {
            argv: vec![
                self.go.clone(),
                "mod".into(),
                "tidy".into(),
                format!("-modfile={}", scratch.path().join("go.mod").display()),
            ],
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cwd: Some(dir.clone()),
            timeout_secs: Some(self.timeout),
            changes_only: None,
        };
        let out = match host.run(&cmd) {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Conflict(format!(
                    "`{}` not found on {}: install Go (apt-get install golang-go) or set `go` to its path",
                    self.go,
                    host.name()
                )))
            }
            Err(e) => return Err(Error::host(host, e)),
        };
        if !out.success() {
            return Err(Error::CommandFailed {
                command: format!("{} mod tidy (in {})", self.go, dir.display()),
                status: format!("failed ({})", outcome_text(&out, &cmd)),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let mod_after = scratch.read("go.mod").on(host)?.unwrap_or_default();
        let sum_after = scratch.read("go.sum").on(host)?;

        let mut ops = Vec::new();
        if mod_after != mod_before.0 {
            ops.push(Op::Write {
                path: gomod,
                before: Some((Prior::Bytes(mod_before.0), mod_before.1)),
                content: mod_after,
                attrs: Attrs::default(),
            });
        }
        match (sum_before, sum_after) {
            (Some(before), Some(after)) if before.0 != after => ops.push(Op::Write {
                path: gosum,
                before: Some((Prior::Bytes(before.0), before.1)),
                content: after,
                attrs: Attrs::default(),
            }),
            (None, Some(after)) if !after.is_empty() => ops.push(Op::Write {
                path: gosum,
                before: None,
                content: after,
                attrs: Attrs::default(),
            }),
            // go never deletes go.sum; an emptied one shows as a change above.
            _ => {}
        }
        Ok(Delta::ops(ops))
    }
}

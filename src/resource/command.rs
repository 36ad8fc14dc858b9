//! `command` (and every `[[handler]]`): a command run when its guards say so.
//! `creates`: skip when that path exists; `unless`: skip when that command
//! succeeds; `only_if`: run only when that command succeeds. Guards are
//! checks and run during `plan` too; the command itself never does.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::{Build, Context, Kind, Resource, TargetPath};
use crate::change::{Delta, Op};
use crate::error::Error;
use crate::host::{Cmd, Host, OnHost};
use crate::playbook::template::shell_quote;

pub const KIND: Kind = Kind {
    name: "command",
    build,
    shell_fields: &["run", "unless", "only_if", "undo"],
    schema: <Command as schemars::JsonSchema>::json_schema,
};

/// A shell line (run by `/bin/sh -c`) or an argv vector (run directly).
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[schemars(title = "command line")]
enum Line {
    Shell(String),
    Argv(Vec<String>),
}

impl Line {
    fn display(&self) -> String {
        match self {
            Line::Shell(s) => s.clone(),
            Line::Argv(v) => v
                .iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Line::Shell(s) => s.trim().is_empty(),
            Line::Argv(v) => v.is_empty(),
        }
    }
}

/// A command, run when its guards say so.
///
/// Guards (`creates`, `unless`, `only_if`) are checks: they run during
/// `plan` too, so they must not change anything. The command itself never
/// runs during `plan`; a non-zero exit fails the apply (with the command's
/// stderr) and rolls the run back. A command line written as a string is a
/// shell line: playbook values substituted into it are shell-quoted. In an
/// array (argv), values are passed as they are.
///
/// `[[handler]]` takes the same fields plus a required `id`; `type` defaults
/// to `"command"` (the only handler type). A handler runs once, after all
/// resources, if at least one resource that notifies it changed something.
/// When its run is rolled back (by a failure, `fixer rollback`, or a remote
/// host restoring itself), a handler without `undo` runs again after every
/// file is restored, so the old configuration takes effect again.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Command {
    /// The command: a string is a shell line (`/bin/sh -c`), an array is argv.
    run: Line,
    /// Skip when this path exists; later resources plan as if the command created it.
    #[serde(default)]
    creates: Option<TargetPath>,
    /// Skip when this command succeeds.
    #[serde(default)]
    unless: Option<Line>,
    /// Run only when this command succeeds.
    #[serde(default)]
    only_if: Option<Line>,
    /// Working directory (default: `/` of the target, i.e. DIR with `--root`).
    #[serde(default)]
    cwd: Option<TargetPath>,
    /// Extra environment.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// How rollback reverses the command; without it rollback warns that the
    /// effects stay.
    #[serde(default)]
    undo: Option<Line>,
    /// Seconds before the command, its guards, and everything they started
    /// are killed.
    #[serde(default)]
    timeout: Option<u64>,
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let c: Command = b.deserialize(value)?;
    for (name, line) in [
        ("run", Some(&c.run)),
        ("unless", c.unless.as_ref()),
        ("only_if", c.only_if.as_ref()),
        ("undo", c.undo.as_ref()),
    ] {
        if line.is_some_and(Line::is_empty) {
            return Err(b.error(&span, format!("`{name}` is empty")));
        }
    }
    Ok(Box::new(c))
}

impl Command {
    fn cmd(&self, line: &Line, cx: &Context) -> Cmd {
        let argv = match line {
            Line::Shell(s) => vec!["/bin/sh".to_string(), "-c".to_string(), s.clone()],
            Line::Argv(v) => v.clone(),
        };
        Cmd {
            argv,
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cwd: self.cwd.as_ref().map(|c| c.resolve(cx)),
            timeout_secs: self.timeout,
            changes_only: None,
        }
    }

    fn guard(&self, host: &dyn Host, line: &Line, cx: &Context) -> Result<Option<i32>, Error> {
        let cmd = self.cmd(line, cx);
        let out = host.run(&cmd).on(host)?;
        if out.timed_out {
            return Err(Error::CommandFailed {
                command: line.display(),
                status: outcome_text(&out, &cmd),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(out.code)
    }
}

impl Resource for Command {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn subject(&self) -> String {
        self.run.display()
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let skip = |note: String| {
            Ok(Delta {
                ops: Vec::new(),
                notes: vec![note],
                warnings: Vec::new(),
            })
        };
        let mut reasons = Vec::new();
        if let Some(creates) = &self.creates {
            let p = creates.resolve(cx);
            if host.stat(&p).on(host)?.is_some() {
                return skip(format!("skipped: {} exists", p.display()));
            }
            reasons.push(format!("{} does not exist", p.display()));
        }
        if let Some(unless) = &self.unless {
            match self.guard(host, unless, cx)? {
                Some(0) => {
                    return skip(format!(
                        "skipped: `unless` succeeded ({})",
                        unless.display()
                    ))
                }
                code => reasons.push(format!("`unless` failed ({})", exit_text(code))),
            }
        }
        if let Some(only_if) = &self.only_if {
            match self.guard(host, only_if, cx)? {
                Some(0) => reasons.push("`only_if` succeeded".to_string()),
                code => {
                    return skip(format!(
                        "skipped: `only_if` failed ({}: {})",
                        only_if.display(),
                        exit_text(code)
                    ))
                }
            }
        }
        Ok(Delta::ops(vec![Op::Run {
            cmd: self.cmd(&self.run, cx),
            display: self.run.display(),
            undo: self.undo.as_ref().map(|u| self.cmd(u, cx)),
            reason: if reasons.is_empty() {
                "no guard: runs on every apply".to_string()
            } else {
                reasons.join(", ")
            },
            creates: self.creates.as_ref().map(|c| c.resolve(cx)),
        }]))
    }
}

pub fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".to_string(),
    }
}

/// How a finished command ended, for messages.
pub fn outcome_text(out: &crate::host::Output, cmd: &Cmd) -> String {
    if out.timed_out {
        format!("timed out after {} s", cmd.timeout_secs.unwrap_or_default())
    } else {
        exit_text(out.code)
    }
}

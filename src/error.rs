//! The library's one error type. Every variant carries what the user needs to
//! act on it (file, line, field, host, run); the CLI renders it once.

use std::fmt;
use std::path::PathBuf;

use crate::host::HostError;

/// A place in a playbook (or vars / plan file) the user can jump to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field, e.g. `resource[2].mode`.
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)?;
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        Ok(())
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed playbook, vars file or saved plan.
    #[error("{at}: {message}")]
    Input { at: Location, message: String },

    /// A file on the controlling machine (playbook, template, vars, plan).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {}: {source}", path.display())]
    WriteLocal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Bad command-line input that has no file location.
    #[error("{0}")]
    Usage(String),

    /// A remote host could not be reached, trusted or logged into.
    #[error("cannot connect to {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: Box<crate::host::ConnectError>,
    },

    #[error("on {host}: {source}")]
    Host {
        host: String,
        #[source]
        source: HostError,
    },

    /// One playbook of several could not be loaded for a target.
    #[error("playbook `{name}`: {source}")]
    Playbook {
        name: String,
        #[source]
        source: Box<Error>,
    },

    /// A resource could not be planned or applied.
    #[error("resource `{id}`: {source}")]
    Resource {
        id: String,
        #[source]
        source: Box<Error>,
    },

    /// The resource's desired state cannot be reached on this target
    /// (missing user, a directory where a file is wanted...).
    #[error("{0}")]
    Conflict(String),

    /// A tool on the target refused a value the playbook set (netplan's
    /// validation): where the playbook set it, and the tool's own words.
    #[error("{at}: {message}{}", stderr_tail(stderr))]
    Rejected {
        at: Location,
        message: String,
        stderr: String,
    },

    #[error("command `{command}` {status}{}", stderr_tail(stderr))]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("another fixer apply or rollback holds the lock on {host} ({lock})")]
    Locked { host: String, lock: String },

    #[error(
        "run {run} on {host} was interrupted before it finished; \
         roll it back first with `fixer rollback {run}`"
    )]
    Interrupted { host: String, run: String },

    #[error("the saved plan no longer matches {host}: {detail}; run `fixer plan` again")]
    Drift { host: String, detail: String },

    /// `fixer rollback` of a run whose changes were edited since: restoring
    /// would throw those edits away without anyone having seen them.
    #[error(
        "rollback of run {run} on {host} refused: {} changed since the run, and rolling back would overwrite {}:{}\n\
         Look at those changes, then `fixer rollback {run} --force` restores the state before the run anyway.",
        plural(changes.len(), "path"),
        if changes.len() == 1 { "it" } else { "them" },
        changes.iter().map(|c| format!("\n  {c}")).collect::<String>()
    )]
    ChangedSinceRun {
        host: String,
        run: String,
        changes: Vec<String>,
    },

    #[error("{message}")]
    NoSuchRun { message: String },

    /// `rollback` found nothing left to undo (no run, or the run is
    /// already undone): not a failure, scripts get exit 0 and the message.
    #[error("{message}")]
    NothingToUndo { message: String },

    /// Ctrl-C or SIGTERM during an apply: it stops before the next change
    /// and rolls back, as for any failure.
    #[error("interrupted (Ctrl-C or SIGTERM) before the next change")]
    Cancelled,

    /// An apply failed and was rolled back (fully, or not: see `rollback`).
    #[error("{source}")]
    ApplyFailed {
        run: String,
        #[source]
        source: Box<Error>,
        rollback: RollbackReport,
    },

    /// A commit-confirmed apply that the controller could not confirm: the
    /// host restores the run by itself.
    #[error(
        "run {run} was applied on {host} but could not be confirmed ({why}); \
         the host restores it by itself within {secs} s of the apply"
    )]
    NotConfirmed {
        host: String,
        run: String,
        secs: u64,
        why: String,
    },

    /// A state file of ours under var/lib/fixer could not be understood.
    #[error("corrupt run record {}: {message}", path.display())]
    Journal { path: PathBuf, message: String },
}

/// An error's kind and place, as `--format json` gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// `input`, `read`, `write`, `usage`, `connect`, `host`, `conflict`,
    /// `command_failed`, `locked`, `interrupted`, `drift`,
    /// `changed_since_run`, `no_such_run`, `nothing_to_undo`, `cancelled`,
    /// `not_confirmed`, `journal`.
    pub kind: &'static str,
    /// A file on the controlling machine (a playbook, vars, a plan, or a
    /// run record on the target's state folder for `journal`).
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The dotted field of a playbook, e.g. `resource[2].mode`.
    pub field: Option<String>,
    pub host: Option<String>,
    /// The target path a host operation failed on.
    pub path: Option<PathBuf>,
    pub playbook: Option<String>,
    pub resource: Option<String>,
}

/// What undoing a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackReport {
    /// Changes restored.
    pub undone: usize,
    /// Changes that could not be restored, each with the reason.
    pub failures: Vec<String>,
    /// Commands that ran and declare no `undo`: reported, not reversed.
    pub not_undoable: Vec<String>,
    /// What this rollback could not restore, the host's self-restore
    /// watchdog will, this long after the apply began.
    pub host_restores_in: Option<std::time::Duration>,
}

impl RollbackReport {
    pub fn complete(&self) -> bool {
        self.failures.is_empty()
    }
}

fn stderr_tail(stderr: &str) -> String {
    let trimmed = stderr.trim_end();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(":\n{trimmed}")
    }
}

impl Error {
    pub fn host(host: &dyn crate::host::Host, source: HostError) -> Self {
        Error::Host {
            host: host.name(),
            source,
        }
    }

    pub fn in_playbook(self, name: &str) -> Self {
        Error::Playbook {
            name: name.to_string(),
            source: Box::new(self),
        }
    }

    /// The resource an error happened in.
    pub fn resource_id(&self) -> Option<&str> {
        match self {
            Error::Resource { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The target path a host error is about.
    pub fn host_path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Host { source, .. } => Some(&source.path),
            Error::Resource { source, .. } => source.host_path(),
            _ => None,
        }
    }

    /// What kind of error this is, where, and on which host, for
    /// `--format json`: through the wrappers (a playbook, a resource, a
    /// failed apply) to the error itself.
    pub fn details(&self) -> Details {
        let mut d = Details::default();
        self.fill(&mut d);
        d
    }

    fn fill(&self, d: &mut Details) {
        let host = |h: &str| Some(h.to_string());
        d.kind = match self {
            Error::Input { at, .. } | Error::Rejected { at, .. } => {
                d.file = Some(at.file.clone());
                d.line = Some(at.line);
                d.column = Some(at.column);
                d.field = at.field.clone();
                if matches!(self, Error::Input { .. }) {
                    "input"
                } else {
                    "rejected"
                }
            }
            Error::Read { path, .. } => {
                d.file = Some(path.clone());
                "read"
            }
            Error::WriteLocal { path, .. } => {
                d.file = Some(path.clone());
                "write"
            }
            Error::Usage(_) => "usage",
            Error::Connect { host: h, .. } => {
                d.host = host(h);
                "connect"
            }
            Error::Host { host: h, source } => {
                d.host = host(h);
                d.path = Some(source.path.clone());
                "host"
            }
            Error::Playbook { name, source } => {
                d.playbook.get_or_insert_with(|| name.clone());
                return source.fill(d);
            }
            Error::Resource { id, source } => {
                d.resource.get_or_insert_with(|| id.clone());
                return source.fill(d);
            }
            Error::ApplyFailed { source, .. } => return source.fill(d),
            Error::Conflict(_) => "conflict",
            Error::CommandFailed { .. } => "command_failed",
            Error::Locked { host: h, .. } => {
                d.host = host(h);
                "locked"
            }
            Error::Interrupted { host: h, .. } => {
                d.host = host(h);
                "interrupted"
            }
            Error::Drift { host: h, .. } => {
                d.host = host(h);
                "drift"
            }
            Error::ChangedSinceRun { host: h, .. } => {
                d.host = host(h);
                "changed_since_run"
            }
            Error::NoSuchRun { .. } => "no_such_run",
            Error::NothingToUndo { .. } => "nothing_to_undo",
            Error::Cancelled => "cancelled",
            Error::NotConfirmed { host: h, .. } => {
                d.host = host(h);
                "not_confirmed"
            }
            Error::Journal { path, .. } => {
                d.file = Some(path.clone());
                "journal"
            }
        };
    }

    pub fn in_resource(self, id: &str) -> Self {
        match self {
            e @ Error::Resource { .. } => e,
            other => Error::Resource {
                id: id.to_string(),
                source: Box::new(other),
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_come_from_the_error_inside_its_wrappers() {
        let inner = Error::Host {
            host: "web1".into(),
            source: HostError::new(
                "write",
                std::path::Path::new("/etc/x"),
                std::io::Error::other("disk full"),
            ),
        };
        let e = Error::ApplyFailed {
            run: "r1".into(),
            source: Box::new(inner.in_resource("file:/etc/x").in_playbook("demo")),
            rollback: RollbackReport::default(),
        };
        let d = e.details();
        assert_eq!(d.kind, "host");
        assert_eq!(d.host.as_deref(), Some("web1"));
        assert_eq!(d.path.as_deref(), Some(std::path::Path::new("/etc/x")));
        assert_eq!(d.resource.as_deref(), Some("file:/etc/x"));
        assert_eq!(d.playbook.as_deref(), Some("demo"));
        assert_eq!(d.file, None);
    }
}

//! What a plan proposes: primitive operations on a host.
//!
//! Resources translate desired state into `Op`s; the engine alone performs
//! them. Because every effect is one of these few shapes, the journal knows
//! how to record the prior state of each and rollback how to restore it:
//! a new resource type cannot get undo wrong.

use std::path::PathBuf;

use serde::Serialize;

use crate::host::{Attrs, Cmd, Digest, Meta};

/// A file's content as a plan saw it: the bytes, when a diff of them can
/// be shown, else only what identifies them, read as a stream so that a
/// plan's memory does not grow with the files it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prior {
    Bytes(Vec<u8>),
    Large(Digest),
}

impl Prior {
    /// What the regular file `path` (seen as `meta`) holds now: its bytes
    /// up to [`crate::diff::SHOWN_LIMIT`], else its digest.
    pub fn read(
        host: &dyn crate::host::Host,
        path: &std::path::Path,
        meta: &Meta,
    ) -> crate::host::HostResult<Prior> {
        if meta.size > crate::diff::SHOWN_LIMIT as u64 {
            host.digest(path).map(Prior::Large)
        } else {
            host.read(path).map(Prior::Bytes)
        }
    }

    /// Whether the file holds exactly `content`.
    pub fn holds(&self, content: &[u8]) -> bool {
        match self {
            Prior::Bytes(b) => b == content,
            Prior::Large(d) => d.size == content.len() as u64 && *d == Digest::of(content),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Op {
    /// Create or replace a regular file (parents created as needed).
    Write {
        path: PathBuf,
        /// Content and attributes before, `None` when the file is new.
        before: Option<(Prior, Meta)>,
        content: Vec<u8>,
        attrs: Attrs,
    },
    Mkdir {
        path: PathBuf,
        attrs: Attrs,
    },
    /// Change mode and/or ownership of an existing path.
    SetMeta {
        path: PathBuf,
        before: Meta,
        attrs: Attrs,
    },
    /// Remove a path and everything beneath it (kept in the run's backup
    /// area until the run is pruned, so it can be put back).
    Remove {
        path: PathBuf,
        before: Meta,
    },
    /// Run a command. It cannot be undone unless `undo` is given.
    Run {
        cmd: Cmd,
        /// How the command reads to a person (the user's own line).
        display: String,
        undo: Option<Cmd>,
        /// Why it would run (which guard passed).
        reason: String,
        /// A path the command promises to create (`creates`), so later
        /// resources can plan against it.
        creates: Option<PathBuf>,
    },
}

impl Op {
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Op::Write { path, .. }
            | Op::Mkdir { path, .. }
            | Op::SetMeta { path, .. }
            | Op::Remove { path, .. } => Some(path),
            Op::Run { .. } => None,
        }
    }
}

/// The resource-level verdict shown in plans and summaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Change,
    Remove,
    Unchanged,
}

/// What one resource would do: the operations plus notes for the reader
/// (e.g. why a command would not run).
#[derive(Clone, Debug, Default)]
pub struct Delta {
    pub ops: Vec<Op>,
    pub notes: Vec<String>,
    /// What the user must see even with `-q`: a probe failing with
    /// `on_fail = "warn"`, netplan's deprecation warnings.
    pub warnings: Vec<String>,
}

impl Delta {
    pub fn ops(ops: Vec<Op>) -> Self {
        Delta {
            ops,
            notes: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn action(&self) -> Action {
        if self.ops.is_empty() {
            Action::Unchanged
        } else if self
            .ops
            .iter()
            .all(|o| matches!(o, Op::Write { before: None, .. } | Op::Mkdir { .. }))
        {
            Action::Add
        } else if self.ops.iter().all(|o| matches!(o, Op::Remove { .. })) {
            Action::Remove
        } else {
            Action::Change
        }
    }
}

/// A resource's delta under its declared id, as plans and runs report it.
#[derive(Clone, Debug)]
pub struct Change {
    pub id: String,
    pub kind: &'static str,
    /// A check (a probe): it changes nothing, it passes or it does not.
    pub check: bool,
    pub delta: Delta,
}

impl Change {
    pub fn action(&self) -> Action {
        self.delta.action()
    }
}

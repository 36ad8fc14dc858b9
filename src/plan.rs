//! Planning: observe the target and compute every resource's change without
//! writing anything.
//!
//! Resources are planned in order against an [`Overlay`] on which the
//! changes of the earlier ones have been simulated, so resource 5 sees the
//! file resource 1 would create. Changes are streamed to the caller one by
//! one (memory stays flat in the number of resources), and folded into a
//! fingerprint that lets `apply PLAN` refuse a target that drifted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::change::{Action, Change, Op, Prior};
use crate::error::Error;
use crate::host::{Host, OnHost, Overlay};
use crate::journal::{RunRecord, Store};
use crate::playbook::{Declared, Playbook};
use crate::resource::Context;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub remove: usize,
    pub unchanged: usize,
    /// Checks (probes) run: neither changes nor unchanged resources.
    #[serde(default)]
    pub checks: usize,
}

impl Summary {
    /// Count `change` as what it is: a check, or a resource's action.
    pub fn count_change(&mut self, change: &Change) {
        if change.check {
            self.checks += 1;
        } else {
            self.count(change.action());
        }
    }

    pub fn count(&mut self, action: Action) {
        match action {
            Action::Add => self.add += 1,
            Action::Change => self.change += 1,
            Action::Remove => self.remove += 1,
            Action::Unchanged => self.unchanged += 1,
        }
    }

    pub fn has_changes(&self) -> bool {
        self.add + self.change + self.remove > 0
    }
}

/// What a plan concluded, beyond the changes streamed to the caller.
#[derive(Debug)]
pub struct Outcome {
    pub summary: Summary,
    /// Handlers that would run (notified by a changing resource).
    pub handlers: Vec<Change>,
    pub fingerprint: String,
    /// Earlier runs on this target that were interrupted.
    pub interrupted: Vec<RunRecord>,
    /// What `apply` could not do as the user this plan ran as (the state
    /// folder, or the folders changes are made in, are not writable).
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn has_changes(&self) -> bool {
        self.summary.has_changes() || !self.handlers.is_empty()
    }
}

pub fn context(host: &dyn Host, applying: bool) -> Result<Context, Error> {
    Ok(Context {
        home: host.home().on(host)?,
        applying,
    })
}

fn plan_one(d: &Declared, host: &dyn Host, cx: &Context) -> Result<Change, Error> {
    let delta = d
        .resource
        .plan(host, cx)
        .and_then(|delta| crate::resource::guard(&delta, cx).map(|()| delta))
        .map_err(|e| e.in_resource(&d.id))?;
    Ok(Change {
        id: d.id.clone(),
        kind: d.resource.kind(),
        check: d.resource.is_check(),
        delta,
    })
}

/// Plan `playbook` on `host`, calling `on_change` for each resource in order.
/// Tell the host every path the playbook will observe (with their
/// ancestors, which apply and the plan's simulation check, and the state
/// folder's), so a remote host fetches them in one round trip instead of
/// one per path.
pub fn prefetch(playbook: &Playbook, host: &dyn Host, cx: &Context) -> Result<(), Error> {
    let mut paths: Vec<PathBuf> = Store::observes();
    // Their folders too: the plan's access check looks at the nearest one
    // that exists.
    paths.extend(
        Path::new(crate::journal::STATE_DIR)
            .ancestors()
            .skip(1)
            .map(Path::to_path_buf),
    );
    for d in playbook.resources.iter().chain(&playbook.handlers) {
        for p in d.resource.observes(cx) {
            paths.extend(p.ancestors().skip(1).map(Path::to_path_buf));
            paths.push(p);
        }
    }
    paths.sort();
    paths.dedup();
    host.prefetch(&paths).on(host)
}

pub fn plan(
    playbook: &Playbook,
    host: &dyn Host,
    on_change: &mut dyn FnMut(&Change),
) -> Result<Outcome, Error> {
    // Someone without access to the state folder (root applied, a user
    // plans) still gets a plan, just without the interrupted-run check.
    let cx = context(host, false)?;
    prefetch(playbook, host, &cx)?;
    let interrupted = match Store::new(host).interrupted() {
        Err(Error::Host { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Vec::new()
        }
        other => other?,
    };
    let overlay = Overlay::new(host);
    let mut summary = Summary::default();
    let mut hasher = Sha256::new();
    let mut notified: Vec<&str> = Vec::new();
    let mut touched: Vec<PathBuf> = Vec::new();
    for d in &playbook.resources {
        let change = plan_one(d, &overlay, &cx)?;
        touched.extend(
            change
                .delta
                .ops
                .iter()
                .filter(|op| matches!(op, Op::Write { .. } | Op::Mkdir { .. } | Op::Remove { .. }))
                .filter_map(|op| op.path().map(Path::to_path_buf)),
        );
        for op in &change.delta.ops {
            simulate(&overlay, op).map_err(|e| e.in_resource(&d.id))?;
        }
        fingerprint(&mut hasher, &change);
        summary.count_change(&change);
        if change.action() != Action::Unchanged {
            notified.extend(d.notify.iter().map(String::as_str));
        }
        on_change(&change);
    }
    let mut handlers = Vec::new();
    for h in playbook
        .handlers
        .iter()
        .filter(|h| notified.contains(&h.id.as_str()))
    {
        let change = plan_one(h, &overlay, &cx)?;
        fingerprint(&mut hasher, &change);
        if change.action() != Action::Unchanged {
            handlers.push(change);
        }
    }
    Ok(Outcome {
        summary,
        handlers,
        fingerprint: format!("{:x}", hasher.finalize()),
        interrupted,
        warnings: access_warnings(host, &touched),
    })
}

/// The nearest existing folder at or above `path`, if this user may not
/// write it (where apply would make, replace or remove `path`).
fn unwritable_folder(host: &dyn Host, path: &Path) -> Option<PathBuf> {
    let dir = path
        .ancestors()
        .find(|a| host.stat(a).ok().flatten().is_some())?;
    (host.may_write(dir).ok().flatten() == Some(false)).then(|| dir.to_path_buf())
}

/// What apply could not write as this user: fixer's state folder (every
/// apply records its run there, even one with nothing to change) and the
/// folders the changes `touched` are made in. A plan as a user, of a
/// playbook that root applies, says so instead of succeeding silently.
fn access_warnings(host: &dyn Host, touched: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    let state = Path::new(crate::journal::STATE_DIR);
    if let Some(dir) = unwritable_folder(host, state) {
        out.push(format!(
            "apply could not write fixer's state folder {} ({} is not writable for this user), \
             where every apply records its run: apply as root (sudo; over SSH, --become), or with --root on a folder you can write",
            state.display(),
            dir.display()
        ));
    }
    let mut by_folder: std::collections::BTreeMap<PathBuf, Vec<&Path>> = Default::default();
    for path in touched {
        // The parent, not the path: a file is replaced by a rename there.
        if let Some(dir) = path.parent().and_then(|p| unwritable_folder(host, p)) {
            by_folder.entry(dir).or_default().push(path);
        }
    }
    for (dir, paths) in by_folder {
        let shown: Vec<String> = paths
            .iter()
            .take(3)
            .map(|p| p.display().to_string())
            .collect();
        let more = paths.len().saturating_sub(shown.len());
        out.push(format!(
            "apply could not change {}{} as this user: {} is not writable; apply as root (sudo; over SSH, --become)",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            dir.display()
        ));
    }
    out
}

/// Make `op`'s effect visible on the overlay.
fn simulate(o: &Overlay<'_>, op: &Op) -> Result<(), Error> {
    match op {
        Op::Write {
            path,
            content,
            attrs,
            ..
        } => o.write(path, content, *attrs),
        Op::Mkdir { path, attrs } => o
            .mkdir(path, attrs.mode.unwrap_or(0o755))
            .and_then(|()| o.chown(path, attrs.uid, attrs.gid)),
        Op::SetMeta { path, attrs, .. } => {
            let r = match attrs.mode {
                Some(m) => o.chmod(path, m),
                None => Ok(()),
            };
            r.and_then(|()| o.chown(path, attrs.uid, attrs.gid))
        }
        Op::Remove { path, .. } => {
            o.remove_tree(path);
            Ok(())
        }
        Op::Run { creates, .. } => match creates {
            Some(p) => o.assume_created(p),
            None => Ok(()),
        },
    }
    .on(o)
}

/// Everything the change depends on: what was observed and what would be
/// done. Two plans with equal fingerprints would make the same changes.
fn fingerprint(h: &mut Sha256, change: &Change) {
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(change.id.as_bytes());
    for note in change.delta.notes.iter().chain(&change.delta.warnings) {
        field(note.as_bytes());
    }
    for op in &change.delta.ops {
        match op {
            Op::Write {
                path,
                before,
                content,
                attrs,
                ..
            } => {
                field(b"write");
                field(path.as_os_str().as_encoded_bytes());
                if let Some((old, meta)) = before {
                    match old {
                        Prior::Bytes(b) => field(b),
                        Prior::Large(d) => field(&d.sha256),
                    }
                    field(format!("{meta:?}").as_bytes());
                }
                field(content);
                field(format!("{attrs:?}").as_bytes());
            }
            other => field(format!("{other:?}").as_bytes()),
        }
    }
}

/// A plan saved by `plan --out`: enough to re-load the same playbooks with
/// the same values and to recognise drift. It holds variable values,
/// sensitive ones included, so it is written with mode 0600.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    /// Each playbook with every value it had (`fixer-plan/2`).
    #[serde(default)]
    pub playbooks: Vec<SavedPart>,
    /// `fixer-plan/1`: the one playbook and its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<(String, String)>,
    pub root: Option<PathBuf>,
    pub fingerprint: String,
    pub summary: Summary,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPart {
    pub path: PathBuf,
    pub vars: Vec<(String, String)>,
}

const SAVED_FORMAT: &str = "fixer-plan/2";
const SAVED_FORMATS: [&str; 2] = ["fixer-plan/1", SAVED_FORMAT];

impl SavedPlan {
    pub fn new(playbook: &Playbook, root: Option<&Path>, outcome: &Outcome) -> Result<Self, Error> {
        let mut playbooks = Vec::new();
        for part in &playbook.parts {
            let abs = std::fs::canonicalize(&part.path).map_err(|source| Error::Read {
                path: part.path.clone(),
                source,
            })?;
            playbooks.push(SavedPart {
                path: abs,
                vars: part.vars.as_overrides(),
            });
        }
        Ok(SavedPlan {
            format: SAVED_FORMAT.to_string(),
            playbooks,
            playbook: None,
            vars: Vec::new(),
            root: root.map(Path::to_path_buf),
            fingerprint: outcome.fingerprint.clone(),
            summary: outcome.summary,
        })
    }

    /// Write the plan to `path` as a new 0600 file renamed into place: an
    /// existing file's mode (0644, say) must not be what a secret gets.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        use std::io::Write as _;
        let err = |source| Error::WriteLocal {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // tempfile creates it 0600, whatever the umask.
        let mut tmp = tempfile::Builder::new()
            .prefix(".fixer-plan-")
            .tempfile_in(dir)
            .map_err(err)?;
        tmp.write_all(&json).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// Read `path` if it is a saved plan; `Ok(None)` if it is something else
    /// (a playbook).
    pub fn read(path: &Path) -> Result<Option<Self>, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Ok(None);
        }
        let plan: SavedPlan = serde_json::from_slice(&bytes).map_err(|e| Error::Input {
            at: crate::error::Location {
                file: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                field: None,
            },
            message: format!("not a fixer plan: {e}"),
        })?;
        if !SAVED_FORMATS.contains(&plan.format.as_str()) {
            return Err(Error::Usage(format!(
                "{}: plan format `{}` is not supported (expected {SAVED_FORMAT})",
                path.display(),
                plan.format
            )));
        }
        Ok(Some(plan))
    }

    /// The playbooks to load again, each with the values it had.
    pub fn picks(&self) -> Vec<crate::playbook::Pick> {
        let v1 = self.playbook.iter().map(|p| (p, &self.vars));
        let v2 = self.playbooks.iter().map(|p| (&p.path, &p.vars));
        v1.chain(v2)
            .map(|(path, vars)| crate::playbook::Pick {
                path: path.clone(),
                // Found values, not --var ones: the plan says where each
                // came from, and nothing read from the host replaces them.
                found: vars
                    .iter()
                    .map(|(name, value)| crate::playbook::vars::Found {
                        name: name.clone(),
                        value: serde_json::Value::String(value.clone()),
                        origin: crate::playbook::vars::Origin::SavedPlan,
                    })
                    .collect(),
            })
            .collect()
    }
}

//! Runs recorded on the target, under `/var/lib/fixer/` (inside `--root`).
//!
//! Before each change, the executor appends to the run's journal what the
//! changed thing was before (and stores its old bytes in the run's backup
//! area), fsyncs, and only then makes the change. A run killed at any point
//! can therefore be undone from the target alone, without the controller
//! that started it. Every undo step restores a prior state rather than
//! reversing an operation, so undoing twice, or undoing a step whose change
//! never happened, is harmless.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::host::{Attrs, Cmd, FileKind, Host, HostError, HostLock, Meta, OnHost};

pub const STATE_DIR: &str = "/var/lib/fixer";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In progress — or, when no apply holds the lock, interrupted.
    Running,
    Applied,
    /// Failed and rolled back by the apply itself.
    Failed,
    RolledBack,
    /// An undo was attempted and some steps failed; `rollback` retries.
    RollbackIncomplete,
    /// `fixer rollback` is undoing it — or, when no process holds the
    /// lock, was killed doing so: the next rollback resumes it.
    RollingBack,
}

impl Status {
    pub fn describe(self, interrupted: bool) -> &'static str {
        match self {
            Status::Running if interrupted => "interrupted",
            Status::Running => "running",
            Status::Applied => "applied",
            Status::Failed => "failed, rolled back",
            Status::RolledBack => "rolled back",
            Status::RollbackIncomplete => "rollback incomplete",
            Status::RollingBack if interrupted => "rollback interrupted",
            Status::RollingBack => "rolling back",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub playbook: String,
    pub started: String,
    #[serde(default)]
    pub finished: Option<String>,
    pub status: Status,
    /// Changes made (journal steps completed).
    #[serde(default)]
    pub changes: usize,
}

/// How to restore one thing a run changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum Undo {
    /// The path did not exist: remove it.
    Absent {
        path: PathBuf,
    },
    /// A file with these bytes (in the backup area) and attributes.
    Restore {
        path: PathBuf,
        backup: PathBuf,
        meta: Meta,
    },
    /// Attributes of a path that stays.
    Meta {
        path: PathBuf,
        meta: Meta,
    },
    /// The path was moved into the backup area: move it back.
    MoveBack {
        path: PathBuf,
        saved: PathBuf,
        /// Mode to restore after moving back (a read-only directory is made
        /// writable to be moved).
        mode: Option<u32>,
    },
    Command {
        cmd: Cmd,
        display: String,
    },
    /// A command that declares no undo, or whose undo (or re-run) would
    /// need a sensitive value kept on the target: `reason` says which.
    Irreversible {
        display: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A handler (`netplan apply`, a service reload): run it again once
    /// everything else is restored, so the restored files take effect.
    Rerun {
        cmd: Cmd,
        display: String,
    },
}

impl Undo {
    /// The same undo as one line of POSIX sh, for the self-restore script a
    /// remote host runs on its own (see [`Journal::arm`]). Like the undo
    /// itself, each line restores a state, so running it twice is harmless.
    pub fn shell(&self) -> Option<String> {
        use crate::host::shell::{command_line, quote_path};
        // Each path is resolved as every operation resolves it (the
        // watchdog sources CHASE); one that cannot be is skipped, and
        // said in the watchdog's log.
        let resolved = |paths: &[(&str, &Path)], body: String| {
            let mut line = String::from("E=; ");
            for (var, p) in paths {
                line.push_str(&format!("chase {} && {var}=$R && ", quote_path(p)));
            }
            line.push_str(&format!(
                "{{ {body}; }} || echo \"not restored: \"{}\": ${{E:-failed}}\" >&2",
                quote_path(paths.last().map_or(Path::new(""), |(_, p)| p))
            ));
            line
        };
        const REMOVE_TREE: &str = r#"if [ -e "$p" ] || [ -L "$p" ]; then [ -L "$p" ] || chmod -R u+w -- "$p"; rm -rf -- "$p"; fi"#;
        Some(match self {
            Undo::Absent { path } => resolved(&[("p", path)], REMOVE_TREE.into()),
            Undo::Restore { path, backup, meta } => resolved(
                &[("b", backup), ("p", path)],
                format!(
                    r#"cp -- "$b" "$p.fixer-restore" && chown -- {u}:{g} "$p.fixer-restore" && chmod -- {m:o} "$p.fixer-restore" && mv -f -T -- "$p.fixer-restore" "$p""#,
                    u = meta.uid,
                    g = meta.gid,
                    m = meta.mode
                ),
            ),
            Undo::Meta { path, meta } => resolved(
                &[("p", path)],
                format!(
                    r#"chown -h -- {}:{} "$p"; [ -L "$p" ] || chmod -- {:o} "$p""#,
                    meta.uid, meta.gid, meta.mode
                ),
            ),
            Undo::MoveBack { path, saved, mode } => {
                let mut body = format!(
                    r#"if [ -e "$s" ] || [ -L "$s" ]; then {REMOVE_TREE}; mv -T -- "$s" "$p"; fi"#
                );
                if let Some(m) = mode {
                    body.push_str(&format!(r#"; chmod -- {m:o} "$p""#));
                }
                resolved(&[("s", saved), ("p", path)], body)
            }
            Undo::Command { cmd, .. } | Undo::Rerun { cmd, .. } => {
                format!("({})", command_line(cmd))
            }
            Undo::Irreversible { .. } => return None,
        })
    }
}

/// The self-restore watchdog: `$1` run folder, `$2` lock file, `$3`
/// seconds. Started detached before the first change of a confirmed apply;
/// unless the controller removes `$1/armed` in time, it takes the lock,
/// runs the run's restore lines newest first (complete lines only: a torn
/// last line is a change that never started), then its handler re-runs,
/// and marks the run rolled back. It needs nothing but sh and coreutils.
const WATCHDOG: &str = r#"exec </dev/null >/dev/null 2>>"$1/watchdog.log"
echo $$ > "$1/watchdog.pid"
sleep "$3"
[ -e "$1/armed" ] || exit 0
exec flock "$2" sh -c '
  [ -e "$1/armed" ] || exit 0
  . "$1/chase.sh" || exit 1
  rev=""
  if [ -e "$1/restore.sh" ]; then
    while IFS= read -r line; do rev="$line
$rev"; done < "$1/restore.sh"
  fi
  printf "%s" "$rev" | while IFS= read -r line; do [ -z "$line" ] || eval "$line"; done
  if [ -e "$1/rerun.sh" ]; then
    while IFS= read -r line; do [ -z "$line" ] || eval "$line"; done < "$1/rerun.sh"
  fi
  q=\"
  sed -i "s/${q}status${q}: ${q}[a-z_]*${q}/${q}status${q}: ${q}rolled_back${q}/" "$1/run.json"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$1/restored-by-host"
  rm -f "$1/armed"
' sh "$1""#;

/// Stop the watchdog: `$1` run folder. Exit 3 when it has already fired.
const DISARM: &str = r#"[ -e "$1/armed" ] || { [ -e "$1/restored-by-host" ] && exit 3; exit 0; }
rm -f "$1/armed"
pid=$(cat "$1/watchdog.pid" 2>/dev/null) && kill -- "-$pid" 2>/dev/null
exit 0"#;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum Entry {
    Begin {
        step: usize,
        resource: String,
        #[serde(flatten)]
        undo: Undo,
    },
    Done {
        step: usize,
    },
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The state folder of one target.
pub struct Store<'h> {
    host: &'h dyn Host,
}

impl<'h> Store<'h> {
    pub fn new(host: &'h dyn Host) -> Self {
        Store { host }
    }

    fn runs_dir() -> PathBuf {
        Path::new(STATE_DIR).join("runs")
    }

    /// The paths every plan and apply looks at first (is a run
    /// unfinished?), for the host to fetch with the playbook's.
    pub fn observes() -> Vec<PathBuf> {
        vec![PathBuf::from(STATE_DIR), Self::runs_dir()]
    }

    fn lock_path() -> PathBuf {
        Path::new(STATE_DIR).join("lock")
    }

    fn run_dir(id: &str) -> PathBuf {
        Self::runs_dir().join(id)
    }

    fn mkdir_p(&self, dir: &Path) -> Result<(), Error> {
        let mut missing = Vec::new();
        for anc in dir.ancestors() {
            if self.host.stat(anc).on(self.host)?.is_some() {
                break;
            }
            missing.push(anc);
        }
        for d in missing.into_iter().rev() {
            // /var and /var/lib as a system has them; our own folder private.
            let mode = if d.starts_with(STATE_DIR) {
                0o700
            } else {
                0o755
            };
            self.host.mkdir(d, mode).on(self.host)?;
        }
        Ok(())
    }

    /// A permission error making the state folder, said as what it is and
    /// what to do: the bare "cannot create directory /var" left users to
    /// guess that it is fixer's own folder.
    fn state_folder_denied(&self, e: Error) -> Error {
        match e {
            Error::Host { host, source } if source.kind() == io::ErrorKind::PermissionDenied => {
                Error::Host {
                    host,
                    source: HostError::new(
                        "create fixer's state folder",
                        Path::new(STATE_DIR),
                        io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            format!(
                                "{} (making {}): every apply and rollback records its run there; \
                                 run fixer as root (sudo; over SSH, --become), or with --root on a folder you can write",
                                source.source,
                                source.path.display()
                            ),
                        ),
                    ),
                }
            }
            other => other,
        }
    }

    /// Take the target's lock for an apply or rollback.
    pub fn lock(&self) -> Result<Box<dyn HostLock>, Error> {
        // One round trip for the folders above ours; their listings give
        // the state folder's own metadata. Not the state folder itself: a
        // listing of it taken before the lock is held could be stale.
        let above: Vec<PathBuf> = Path::new(STATE_DIR)
            .ancestors()
            .skip(1)
            .map(Path::to_path_buf)
            .collect();
        self.host.prefetch(&above).on(self.host)?;
        self.mkdir_p(Path::new(STATE_DIR))
            .map_err(|e| self.state_folder_denied(e))?;
        self.host.lock(&Self::lock_path()).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                return Error::Locked {
                    host: self.host.name(),
                    lock: Self::lock_path().display().to_string(),
                };
            }
            let dangling = e.kind() == io::ErrorKind::NotFound
                && self
                    .host
                    .stat(Path::new(STATE_DIR))
                    .is_ok_and(|m| m.is_some_and(|m| m.kind == FileKind::Symlink));
            if dangling {
                return Error::host(
                    self.host,
                    HostError::new(
                        "lock",
                        &Self::lock_path(),
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!(
                                "fixer's state folder {STATE_DIR} is a symlink to a folder that \
                                 does not exist on the target (under --root, a link is read \
                                 inside the root): create that folder, or remove the link"
                            ),
                        ),
                    ),
                );
            }
            Error::host(self.host, e)
        })
    }

    /// All runs, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, Error> {
        let dir = Self::runs_dir();
        if self.host.stat(&dir).on(self.host)?.is_none() {
            return Ok(Vec::new());
        }
        let mut ids = self.host.list(&dir).on(self.host)?;
        // `.new-*`: a run being created, or killed while it was (it had
        // not changed anything yet).
        ids.retain(|id| !id.starts_with('.'));
        // One round trip for all records on a remote host.
        let records: Vec<PathBuf> = ids
            .iter()
            .map(|id| Self::run_dir(id).join("run.json"))
            .collect();
        self.host.prefetch(&records).on(self.host)?;
        let mut runs = Vec::new();
        for id in ids {
            runs.push(self.record(&id)?);
        }
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(runs)
    }

    pub fn record(&self, id: &str) -> Result<RunRecord, Error> {
        let path = Self::run_dir(id).join("run.json");
        let bytes = match self.host.read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoSuchRun {
                    message: format!("no run `{id}` on {}; see `fixer history`", self.host.name()),
                })
            }
            Err(e) => return Err(Error::host(self.host, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Journal {
            path,
            message: e.to_string(),
        })
    }

    /// Whether an apply or rollback is running right now.
    pub fn busy(&self) -> Result<bool, Error> {
        self.host.lock_held(&Self::lock_path()).on(self.host)
    }

    /// Runs that started and never finished, with no process still on them.
    /// For a caller that does not hold the lock.
    pub fn interrupted(&self) -> Result<Vec<RunRecord>, Error> {
        let unfinished = self.unfinished()?;
        // Asking about the lock costs a command; only ask when it matters.
        if unfinished.is_empty() || self.busy()? {
            return Ok(Vec::new());
        }
        Ok(unfinished)
    }

    /// Runs recorded as running, or as being rolled back. Once the caller
    /// holds the lock, these are exactly the interrupted ones.
    pub fn unfinished(&self) -> Result<Vec<RunRecord>, Error> {
        Ok(self
            .runs()?
            .into_iter()
            .filter(|r| matches!(r.status, Status::Running | Status::RollingBack))
            .collect())
    }

    fn save(&self, record: &RunRecord) -> Result<(), Error> {
        self.save_at(&Self::run_dir(&record.id).join("run.json"), record)
    }

    fn save_at(&self, path: &Path, record: &RunRecord) -> Result<(), Error> {
        let path = path.to_path_buf();
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::Journal {
            path: path.clone(),
            message: e.to_string(),
        })?;
        self.host
            .write(
                &path,
                &bytes,
                Attrs {
                    mode: Some(0o600),
                    ..Attrs::default()
                },
            )
            .on(self.host)
    }

    pub fn set_status(&self, record: &mut RunRecord, status: Status) -> Result<(), Error> {
        record.status = status;
        record.finished = Some(now());
        self.save(record)
    }

    /// Start a run: its folder, its record, an empty journal. Requires the lock.
    pub fn begin(&self, playbook: &str) -> Result<Journal<'h>, Error> {
        let stamp = now().replace(['-', ':'], "");
        let mut id = stamp.trim_end_matches('Z').replace('.', "-");
        let mut n = 1;
        while self.host.stat(&Self::run_dir(&id)).on(self.host)?.is_some() {
            n += 1;
            id = format!("{}-{n}", stamp.trim_end_matches('Z').replace('.', "-"));
        }
        let dir = Self::run_dir(&id);
        // Made under a hidden name and renamed into place with its record,
        // so that a run directory always has one, whenever fixer is killed.
        let staging = Self::runs_dir().join(format!(".new-{id}"));
        self.mkdir_p(&staging.join("saved"))?;
        let record = RunRecord {
            id,
            playbook: playbook.to_string(),
            started: now(),
            finished: None,
            status: Status::Running,
            changes: 0,
        };
        self.save_at(&staging.join("run.json"), &record)?;
        self.host.rename(&staging, &dir).on(self.host)?;
        Ok(Journal {
            host: self.host,
            dir,
            step: 0,
            record,
            armed: false,
            pending: None,
            arm_before_change: None,
            touched: Vec::new(),
            touched_at: std::collections::HashMap::new(),
            counting: true,
            resource_at: std::collections::HashMap::new(),
            changed: std::collections::HashSet::new(),
        })
    }

    /// Remove the runs `policy` lets go, with their backups (a cleared Go
    /// cache can be gigabytes), and the half-made folders of runs killed
    /// while starting. Never a run that may still need undoing: running or
    /// interrupted, with a rollback left incomplete, or still armed for the
    /// host to restore by itself. Takes the lock.
    pub fn prune(&self, policy: &Prune) -> Result<Pruned, Error> {
        let _lock = self.lock()?;
        let now = std::time::SystemTime::now();
        let runs = self.runs()?;
        let armed: Vec<PathBuf> = runs
            .iter()
            .map(|r| Self::run_dir(&r.id).join("armed"))
            .collect();
        self.host.prefetch(&armed).on(self.host)?;
        let mut out = Pruned::default();
        // Newest first. `keep` counts runs that can still be rolled back
        // (runs that changed nothing must not push the last one out); every
        // run newer than the last of those kept stays too.
        let newest_first: Vec<(&RunRecord, &PathBuf)> = runs.iter().zip(&armed).rev().collect();
        let undoable: Vec<usize> = newest_first
            .iter()
            .enumerate()
            .filter(|(_, (r, _))| r.status == Status::Applied && r.changes > 0)
            .map(|(i, _)| i)
            .collect();
        let last_kept = match policy.keep {
            0 => None,
            n => undoable.get(n - 1).or(undoable.last()).copied(),
        };
        for (i, (run, armed)) in newest_first.into_iter().enumerate() {
            let settled = matches!(
                run.status,
                Status::Applied | Status::Failed | Status::RolledBack
            ) && self.host.stat(armed).on(self.host)?.is_none();
            let within_keep = last_kept.is_some_and(|last| i <= last);
            let old_enough = policy.older_than.is_none_or(|age| {
                humantime::parse_rfc3339_weak(&run.started)
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|elapsed| elapsed >= age)
            });
            if within_keep || !settled || !old_enough {
                out.kept.push(run.id.clone());
            } else {
                out.pruned.push(run.id.clone());
            }
        }
        let dir = Self::runs_dir();
        if self.host.stat(&dir).on(self.host)?.is_some() {
            out.staging = self
                .host
                .list(&dir)
                .on(self.host)?
                .into_iter()
                .filter(|name| name.starts_with(".new-"))
                .collect();
        }
        if !policy.dry_run {
            let doomed = out.pruned.iter().chain(&out.staging);
            for name in doomed {
                remove_tree(self.host, &Self::runs_dir().join(name)).on(self.host)?;
            }
        }
        Ok(out)
    }

    /// How the paths run `id` changed differ now from how it left them,
    /// one line each (`/etc/motd: content changed`). Empty for a run that
    /// recorded nothing to compare (interrupted, or from an older fixer).
    pub fn changed_since(&self, id: &str) -> Result<Vec<String>, Error> {
        let path = Self::run_dir(id).join("after.json");
        let Some(bytes) = self.read_if_there(&path)? else {
            return Ok(Vec::new());
        };
        let after: std::collections::BTreeMap<PathBuf, Seen> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Journal {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let paths: Vec<PathBuf> = after.keys().cloned().collect();
        self.host.prefetch(&paths).on(self.host)?;
        let mut changes = Vec::new();
        for (path, left) in &after {
            let now = match left {
                Seen::Other { .. } => Seen::observe_attrs(self.host, path),
                _ => Seen::observe(self.host, path),
            }
            .on(self.host)?;
            if let Some(what) = left.change_to(&now) {
                changes.push(format!("{}: {what}", path.display()));
            }
        }
        Ok(changes)
    }

    /// A file of a run folder, or `None` when the run never wrote it.
    fn read_if_there(&self, path: &Path) -> Result<Option<Vec<u8>>, Error> {
        match self.host.read(path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::host(self.host, e)),
        }
    }

    pub fn entries(&self, id: &str) -> Result<Vec<Entry>, Error> {
        let path = Self::run_dir(id).join("journal.jsonl");
        let Some(bytes) = self.read_if_there(&path)? else {
            return Ok(Vec::new());
        };
        // A kill during an append leaves a torn last line without its
        // newline; the change it announced was never started, so it is
        // dropped. Any other bad line is corruption.
        let complete = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(end) => &bytes[..end],
            None => &[][..],
        };
        let mut out = Vec::new();
        for (i, line) in complete.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            out.push(serde_json::from_slice(line).map_err(|e| Error::Journal {
                path: path.clone(),
                message: format!("line {}: {e}", i + 1),
            })?);
        }
        Ok(out)
    }
}

/// What one path a run changed looked like when the run finished, kept in
/// the run's `after.json`: `fixer rollback` compares it with the path now,
/// so that edits made since are not overwritten unseen. Content is kept as
/// a hash only (it may hold a secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Seen {
    Absent,
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        sha256: String,
    },
    /// A directory and the names in it (not below: each path the run
    /// created below it has its own entry).
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
        entries: Vec<String>,
    },
    /// Anything else, or a path whose attributes alone the run changed.
    Other {
        kind: FileKind,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

impl Seen {
    /// Kind and attributes only, for a path rollback only chmods/chowns.
    pub fn observe_attrs(host: &dyn Host, path: &Path) -> Result<Seen, HostError> {
        Ok(match host.stat(path)? {
            None => Seen::Absent,
            Some(m) => Seen::Other {
                kind: m.kind,
                mode: m.mode,
                uid: m.uid,
                gid: m.gid,
            },
        })
    }

    pub fn observe(host: &dyn Host, path: &Path) -> Result<Seen, HostError> {
        let Some(m) = host.stat(path)? else {
            return Ok(Seen::Absent);
        };
        let (mode, uid, gid) = (m.mode, m.uid, m.gid);
        Ok(match m.kind {
            FileKind::File => Seen::File {
                mode,
                uid,
                gid,
                sha256: host.digest(path)?.hex(),
            },
            FileKind::Dir => {
                let mut entries = host.list(path)?;
                entries.sort();
                Seen::Dir {
                    mode,
                    uid,
                    gid,
                    entries,
                }
            }
            kind => Seen::Other {
                kind,
                mode,
                uid,
                gid,
            },
        })
    }

    fn attrs(&self) -> Option<(u32, u32, u32)> {
        match self {
            Seen::Absent => None,
            Seen::File { mode, uid, gid, .. }
            | Seen::Dir { mode, uid, gid, .. }
            | Seen::Other { mode, uid, gid, .. } => Some((*mode, *uid, *gid)),
        }
    }

    /// How `now` differs from `self` (what the run left), in words; `None`
    /// when it does not.
    pub fn change_to(&self, now: &Seen) -> Option<String> {
        if self == now {
            return None;
        }
        let mut what = Vec::new();
        match (self, now) {
            (Seen::Absent, _) => return Some("created since".into()),
            (_, Seen::Absent) => return Some("removed since".into()),
            (Seen::File { sha256: a, .. }, Seen::File { sha256: b, .. }) if a != b => {
                what.push("content changed".to_string())
            }
            (Seen::Dir { entries: a, .. }, Seen::Dir { entries: b, .. }) => {
                let added: Vec<&str> = b
                    .iter()
                    .filter(|e| !a.contains(e))
                    .map(String::as_str)
                    .collect();
                let gone: Vec<&str> = a
                    .iter()
                    .filter(|e| !b.contains(e))
                    .map(String::as_str)
                    .collect();
                if !added.is_empty() {
                    what.push(format!("now also holds {}", added.join(", ")));
                }
                if !gone.is_empty() {
                    what.push(format!("no longer holds {}", gone.join(", ")));
                }
            }
            (Seen::File { .. }, Seen::File { .. }) => {}
            (Seen::Other { kind: a, .. }, Seen::Other { kind: b, .. }) if a == b => {}
            _ => what.push("replaced by another kind of file".to_string()),
        }
        if let (Some((m1, u1, g1)), Some((m2, u2, g2))) = (self.attrs(), now.attrs()) {
            if m1 != m2 {
                what.push(format!("mode {m1:04o} -> {m2:04o}"));
            }
            if (u1, g1) != (u2, g2) {
                what.push(format!("owner {u1}:{g1} -> {u2}:{g2}"));
            }
        }
        Some(what.join("; "))
    }
}

/// Which runs `fixer prune` removes: the finished ones older than the
/// `keep`-th newest run that can still be rolled back (or the oldest such
/// run, when there are fewer; all of them when there is none), and of
/// those only the ones older than `older_than` when given.
#[derive(Clone, Debug)]
pub struct Prune {
    pub keep: usize,
    pub older_than: Option<std::time::Duration>,
    /// Say what would go, remove nothing.
    pub dry_run: bool,
}

/// What `prune` removed (or, dry, would remove), newest first.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pruned {
    pub pruned: Vec<String>,
    pub kept: Vec<String>,
    /// Folders of runs killed before their record was in place.
    pub staging: Vec<String>,
}

/// The journal of the run in progress.
pub struct Journal<'h> {
    host: &'h dyn Host,
    dir: PathBuf,
    step: usize,
    pub record: RunRecord,
    /// Armed for self-restore: every undo is also written as shell.
    armed: bool,
    /// Undos written only once their change completed (commands).
    pending: Option<(usize, Undo)>,
    /// Arm the watchdog with this timeout just before the first change (a
    /// run that changes nothing needs no watchdog).
    arm_before_change: Option<std::time::Duration>,
    /// Every path a change was journaled for, in order, once each, and
    /// whether rollback replaces it whole (or only restores attributes).
    touched: Vec<(PathBuf, bool)>,
    touched_at: std::collections::HashMap<PathBuf, usize>,
    /// Whether the steps begun now are a resource's (counted as changes)
    /// or a handler's (not: apply and history count resources).
    counting: bool,
    /// The resource of each begun step not done yet, and the resources
    /// with a step done: `changes` is how many, one per resource however
    /// many steps it took (a file and the folder made for it are one).
    resource_at: std::collections::HashMap<usize, String>,
    changed: std::collections::HashSet<String>,
}

impl Journal<'_> {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Where a path removed at `step` is kept.
    pub fn saved_path(&self, step: usize) -> PathBuf {
        self.dir.join("saved").join(step.to_string())
    }

    /// The next step number, to name backups before `begin` records them.
    pub fn next_step(&self) -> usize {
        self.step + 1
    }

    /// Keep a copy of the file `of` for `step`, copied on the host (its
    /// bytes never held in memory, whatever its size).
    pub fn backup(&self, step: usize, of: &Path) -> Result<PathBuf, Error> {
        let path = self.saved_path(step);
        self.host
            .copy(
                of,
                &path,
                Attrs {
                    mode: Some(0o600),
                    ..Attrs::default()
                },
            )
            .on(self.host)?;
        Ok(path)
    }

    fn line(&self, entry: &Entry) -> Result<(PathBuf, Vec<u8>), Error> {
        let path = self.dir.join("journal.jsonl");
        let mut line = serde_json::to_vec(entry).map_err(|e| Error::Journal {
            path: path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        Ok((path, line))
    }

    /// The undo as a line of the self-restore script, when armed.
    fn mirror(&self, file: &str, undo: &Undo) -> Option<(PathBuf, Vec<u8>)> {
        let line = undo.shell().filter(|_| self.armed)?;
        Some((self.dir.join(file), format!("{line}\n").into_bytes()))
    }

    /// Durably record how to undo the change about to be made (with its
    /// self-restore line, in the same write).
    pub fn begin(&mut self, resource: &str, undo: Undo) -> Result<usize, Error> {
        if let Some(timeout) = self.arm_before_change.take() {
            self.arm(timeout)?;
        }
        // Rollback of a mode or owner change touches nothing else of the
        // path: only its attributes are worth comparing later.
        let (path, whole) = match &undo {
            Undo::Meta { path, .. } => (Some(path), false),
            Undo::Absent { path } | Undo::Restore { path, .. } | Undo::MoveBack { path, .. } => {
                (Some(path), true)
            }
            Undo::Command { .. } | Undo::Rerun { .. } | Undo::Irreversible { .. } => (None, false),
        };
        if let Some(path) = path {
            // An index, not a search: a recursive `permissions` over a Go
            // module cache journals a change per file.
            match self.touched_at.get(path) {
                Some(&i) => self.touched[i].1 |= whole,
                None => {
                    self.touched_at.insert(path.clone(), self.touched.len());
                    self.touched.push((path.clone(), whole));
                }
            }
        }
        self.step += 1;
        if self.counting {
            self.resource_at.insert(self.step, resource.to_string());
        }
        let command = matches!(
            undo,
            Undo::Command { .. } | Undo::Rerun { .. } | Undo::Irreversible { .. }
        );
        // A command's undo applies only once it has run: its self-restore
        // line is written by `done`.
        let mirrored = if command {
            self.pending = Some((self.step, undo.clone()));
            None
        } else {
            self.mirror("restore.sh", &undo)
        };
        let mut writes = vec![self.line(&Entry::Begin {
            step: self.step,
            resource: resource.to_string(),
            undo,
        })?];
        writes.extend(mirrored);
        self.host.append_all(&writes).on(self.host)?;
        crate::failpoint::check("change")
            .map_err(|e| HostError::new("journal", Path::new("failpoint"), e))
            .on(self.host)?;
        Ok(self.step)
    }

    /// The change of `step` was made. Only a command's completion is
    /// recorded: every other undo restores a state, which is right whether
    /// or not the change happened, so recording it would cost a write per
    /// change for nothing.
    pub fn done(&mut self, step: usize) -> Result<(), Error> {
        crate::failpoint::check("change")
            .map_err(|e| HostError::new("journal", Path::new("failpoint"), e))
            .on(self.host)?;
        if let Some(resource) = self.resource_at.remove(&step) {
            if self.changed.insert(resource) {
                self.record.changes += 1;
            }
        }
        let Some((_, undo)) = self.pending.take_if(|(s, _)| *s == step) else {
            return Ok(());
        };
        let file = match undo {
            Undo::Rerun { .. } => "rerun.sh",
            _ => "restore.sh",
        };
        let mut writes = vec![self.line(&Entry::Done { step })?];
        writes.extend(self.mirror(file, &undo));
        self.host.append_all(&writes).on(self.host)
    }

    /// Record what every path the run changed looks like now that it is
    /// done (`after.json`), for `fixer rollback` to notice later edits.
    pub fn seal(&self) -> Result<(), Error> {
        if self.touched.is_empty() {
            return Ok(());
        }
        let paths: Vec<PathBuf> = self.touched.iter().map(|(p, _)| p.clone()).collect();
        self.host.prefetch(&paths).on(self.host)?;
        let mut after = std::collections::BTreeMap::new();
        for (path, whole) in &self.touched {
            let seen = if *whole {
                Seen::observe(self.host, path)
            } else {
                Seen::observe_attrs(self.host, path)
            };
            after.insert(path.clone(), seen.on(self.host)?);
        }
        let path = self.dir.join("after.json");
        let bytes = serde_json::to_vec_pretty(&after).map_err(|e| Error::Journal {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let attrs = Attrs {
            mode: Some(0o600),
            ..Attrs::default()
        };
        self.host.write(&path, &bytes, attrs).on(self.host)
    }

    /// Commit-confirmed: start a detached watchdog on the target that
    /// restores this run by itself after `timeout` unless [`disarm`]ed.
    /// From here on every undo is also written as shell for it.
    pub fn arm(&mut self, timeout: std::time::Duration) -> Result<(), Error> {
        let dir = self.dir.display().to_string();
        // The restore lines resolve paths with it, as every operation does.
        self.host
            .write(
                &self.dir.join("chase.sh"),
                crate::host::shell::CHASE.as_bytes(),
                Attrs::default(),
            )
            .on(self.host)?;
        self.host
            .write(&self.dir.join("armed"), b"", Attrs::default())
            .on(self.host)?;
        let cmd = Cmd {
            argv: [
                "setsid",
                "-f",
                "sh",
                "-c",
                WATCHDOG,
                "sh",
                &dir,
                &Store::lock_path().display().to_string(),
                &timeout.as_secs().max(1).to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            changes_only: Some(self.dir.clone()),
            ..Cmd::default()
        };
        let out = self.host.run(&cmd).on(self.host)?;
        if !out.success() {
            return Err(Error::Host {
                host: self.host.name(),
                source: HostError::new(
                    "start the self-restore watchdog in",
                    &self.dir,
                    io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
                ),
            });
        }
        self.armed = true;
        Ok(())
    }

    /// Whether the steps begun from now on are a resource's changes
    /// (counted) or a handler's run (not).
    pub fn count_changes(&mut self, counting: bool) {
        self.counting = counting;
    }

    /// [`Self::arm`] just before the first change, if there is one.
    pub fn arm_before_change(&mut self, timeout: std::time::Duration) {
        self.arm_before_change = Some(timeout);
    }

    pub fn is_armed(&self) -> bool {
        self.armed
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Stop the watchdog of the run in `dir`, through `host` (a fresh
/// connection proves the host is still reachable). `Ok(false)` when it
/// had already restored the run.
pub fn disarm(host: &dyn Host, dir: &Path) -> Result<bool, Error> {
    let cmd = Cmd {
        argv: ["sh", "-c", DISARM, "sh", &dir.display().to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        changes_only: Some(dir.to_path_buf()),
        ..Cmd::default()
    };
    let out = host.run(&cmd).on(host)?;
    match out.code {
        Some(0) => Ok(true),
        Some(3) => Ok(false),
        _ => Err(Error::Host {
            host: host.name(),
            source: HostError::new(
                "stop the self-restore watchdog in",
                dir,
                io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ),
        }),
    }
}

/// Undo a run's journal, newest change first. Keeps going past failures so
/// that as much as possible is restored, and reports each.
pub fn undo(host: &dyn Host, entries: &[Entry]) -> crate::error::RollbackReport {
    let done: std::collections::HashSet<usize> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Done { step } => Some(*step),
            Entry::Begin { .. } => None,
        })
        .collect();
    let mut report = crate::error::RollbackReport::default();
    // A change is a resource, however many steps it took: as apply and
    // history count them. Handlers re-run are not changes.
    let mut undone: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let begins = entries.iter().filter_map(|e| match e {
        Entry::Begin {
            step,
            resource,
            undo,
        } => Some((step, resource, undo)),
        Entry::Done { .. } => None,
    });
    let (reruns, restores): (Vec<_>, Vec<_>) =
        begins.partition(|(_, _, u)| matches!(u, Undo::Rerun { .. }));
    // Restore newest first, then re-run the handlers in their order.
    for (step, resource, undo) in restores.into_iter().rev().chain(reruns) {
        match undo_one(host, undo, done.contains(step)) {
            Ok(Some(note)) => report.not_undoable.push(format!("{resource}: {note}")),
            Ok(None) => {
                if !matches!(undo, Undo::Rerun { .. }) && undone.insert(resource.as_str()) {
                    report.undone += 1;
                }
            }
            Err(e) => report.failures.push(format!("{resource}: {e}")),
        }
    }
    report
}

fn undo_one(host: &dyn Host, undo: &Undo, completed: bool) -> Result<Option<String>, HostError> {
    match undo {
        Undo::Absent { path } => {
            if let Some(m) = host.stat(path)? {
                if m.kind == FileKind::Dir {
                    remove_tree(host, path)?;
                } else {
                    host.remove(path)?;
                }
            }
        }
        Undo::Restore { path, backup, meta } => {
            // Compared and copied as streams: a backup may be large.
            let kept = host.digest(backup)?;
            // Already as it was (the change never happened): touch nothing,
            // which also spares an unprivileged user an impossible chown.
            let current = host.stat(path)?;
            if current.is_some_and(|m| {
                (m.kind, m.mode, m.uid, m.gid) == (meta.kind, meta.mode, meta.uid, meta.gid)
            }) && host.digest(path)? == kept
            {
                return Ok(None);
            }
            host.copy(
                backup,
                path,
                Attrs {
                    mode: Some(meta.mode),
                    uid: Some(meta.uid),
                    gid: Some(meta.gid),
                },
            )?;
        }
        Undo::Meta { path, meta } => {
            host.chown(path, Some(meta.uid), Some(meta.gid))?;
            // After chown, which clears setuid/setgid.
            host.chmod(path, meta.mode)?;
        }
        Undo::MoveBack { path, saved, mode } => {
            if host.stat(saved)?.is_some() {
                if host.stat(path)?.is_some() {
                    // Something re-created it since: the old one wins.
                    remove_tree(host, path)?;
                }
                host.rename(saved, path)?;
            }
            if let Some(mode) = mode {
                host.chmod(path, *mode)?;
            }
        }
        Undo::Command { cmd, display } | Undo::Rerun { cmd, display } => {
            if !completed {
                return Ok(Some(format!(
                    "`{display}` was interrupted; its undo was not run"
                )));
            }
            let out = host.run(cmd)?;
            if !out.success() {
                return Err(HostError::new(
                    "run undo command",
                    Path::new(display),
                    io::Error::other(format!(
                        "{}: {}",
                        crate::resource::exit_text(out.code),
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                ));
            }
        }
        Undo::Irreversible { display, reason } => {
            return Ok(Some(match reason {
                Some(reason) => format!("command `{display}` ran; {reason}"),
                None => format!("command `{display}` ran and declares no `undo`"),
            }));
        }
    }
    Ok(None)
}

/// Remove a tree through the host, making read-only directories (Go's
/// module cache) writable first.
pub fn remove_tree(host: &dyn Host, path: &Path) -> Result<(), HostError> {
    let Some(meta) = host.stat(path)? else {
        return Ok(());
    };
    if meta.kind == FileKind::Dir {
        if meta.mode & 0o700 != 0o700 {
            host.chmod(path, meta.mode | 0o700)?;
        }
        for name in host.list(path)? {
            remove_tree(host, &path.join(name))?;
        }
    }
    host.remove(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    /// Run restore lines as the watchdog does: CHASE sourced, each line
    /// eval'd. Returns what they said on stderr.
    fn run_lines(lines: &[String]) -> Result<String, Box<dyn std::error::Error>> {
        let mut script = crate::host::shell::CHASE.to_string();
        for l in lines {
            script.push_str(&format!("eval {}\n", crate::host::shell::quote(l)));
        }
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    #[test]
    fn restore_lines_restore_each_kind_of_change() -> Result<(), Box<dyn std::error::Error>> {
        let d = tempfile::tempdir()?;
        let p = |n: &str| d.path().join(n);
        std::fs::write(p("backup"), "old")?;
        std::fs::write(p("f"), "new")?;
        std::fs::create_dir_all(p("created/sub"))?;
        std::fs::create_dir_all(p("saved"))?;
        std::fs::write(p("saved/x"), "kept")?;
        std::fs::write(p("m"), "")?;
        let me = std::fs::metadata(p("f"))?;
        let meta = |mode| Meta {
            kind: FileKind::File,
            mode,
            uid: me.uid(),
            gid: me.gid(),
            size: 0,
        };
        let lines: Vec<String> = [
            Undo::Restore {
                path: p("f"),
                backup: p("backup"),
                meta: meta(0o640),
            },
            Undo::Absent { path: p("created") },
            Undo::MoveBack {
                path: p("moved"),
                saved: p("saved"),
                mode: Some(0o700),
            },
            Undo::Meta {
                path: p("m"),
                meta: meta(0o600),
            },
        ]
        .iter()
        .filter_map(Undo::shell)
        .collect();
        let said = run_lines(&lines)?;
        assert_eq!(said, "");
        assert_eq!(std::fs::read_to_string(p("f"))?, "old");
        assert_eq!(
            std::fs::metadata(p("f"))?.permissions().mode() & 0o7777,
            0o640
        );
        assert!(!p("created").exists());
        assert_eq!(std::fs::read_to_string(p("moved/x"))?, "kept");
        assert_eq!(
            std::fs::metadata(p("m"))?.permissions().mode() & 0o7777,
            0o600
        );
        Ok(())
    }

    /// The watchdog resolves paths as every operation does: through a
    /// symlink someone else planted since the apply it restores nothing.
    #[test]
    fn restore_lines_skip_a_path_through_a_strangers_symlink(
    ) -> Result<(), Box<dyn std::error::Error>> {
        if !nix::unistd::geteuid().is_root() {
            // Giving a link to another user takes root; CI runs as root.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the tests as root"
            );
            return Ok(());
        }
        let d = tempfile::tempdir()?;
        let victim = d.path().join("victim");
        std::fs::create_dir_all(victim.join("tree"))?;
        std::fs::write(victim.join("tree/data"), "precious")?;
        std::os::unix::fs::symlink(&victim, d.path().join("app"))?;
        std::os::unix::fs::lchown(d.path().join("app"), Some(4242), Some(4242))?;
        let line = Undo::Absent {
            path: d.path().join("app/tree"),
        }
        .shell()
        .ok_or("no line")?;
        let said = run_lines(&[line])?;
        assert!(said.contains("is a symlink owned by uid 4242"), "{said}");
        assert!(said.contains("not restored"), "{said}");
        assert_eq!(
            std::fs::read_to_string(victim.join("tree/data"))?,
            "precious"
        );
        Ok(())
    }
}

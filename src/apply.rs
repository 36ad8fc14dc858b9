//! Applying a playbook, and undoing runs.
//!
//! Resources are applied in order, each planned against the real target
//! right before its changes are made (so it sees what earlier resources and
//! commands really did). Every operation is journaled before it happens; on
//! the first failure the run is undone from its journal and the error says
//! so. Handlers run once, at the end, if something they watch changed.

use std::io;
use std::path::Path;

use crate::change::{Action, Change, Op};
use crate::error::{Error, RollbackReport};
use crate::host::{Attrs, FileKind, Host, OnHost};
use crate::journal::{self, Journal, RunRecord, Status, Store, Undo};
use crate::plan::{self, Summary};
use crate::playbook::{Masker, Playbook};
use crate::resource::outcome_text;

/// What the caller hears while an apply runs.
pub enum Event<'a> {
    Resource(&'a Change),
    Handler(&'a Change),
    /// Something the user should know that is not a change.
    Note(&'a str),
}

/// Opens a new connection to the same host.
pub type Reconnect<'a> = &'a (dyn Fn() -> Result<Box<dyn Host>, Error> + Sync);

/// How an apply protects a host it may lose contact with.
#[derive(Default)]
pub struct ApplyOptions<'a> {
    /// Commit-confirmed: before the first change the target starts a
    /// watchdog that restores the run by itself after this long unless the
    /// controller confirms (remote hosts).
    pub confirm_timeout: Option<std::time::Duration>,
    /// Confirm over a fresh connection when the playbook may cut the
    /// current one (netplan): only a new connection proves the host is
    /// still reachable.
    pub reconnect: Option<Reconnect<'a>>,
    /// Set (by a Ctrl-C or SIGTERM handler) to stop before the next change
    /// and roll the run back, rather than die and leave it interrupted.
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
pub struct Outcome {
    pub run: RunRecord,
    pub summary: Summary,
}

/// Apply `playbook` on `host`. With `expect` (a saved plan's fingerprint),
/// refuse to start if planning now gives a different result.
pub fn apply(
    playbook: &Playbook,
    host: &dyn Host,
    expect: Option<&str>,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Outcome, Error> {
    apply_with(playbook, host, expect, &ApplyOptions::default(), on_event)
}

/// [`apply`] with options for remote hosts.
pub fn apply_with(
    playbook: &Playbook,
    host: &dyn Host,
    expect: Option<&str>,
    opts: &ApplyOptions<'_>,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Outcome, Error> {
    let store = Store::new(host);
    let _lock = store.lock()?;
    // Observed only once the lock is held: another run may change it until.
    let cx = plan::context(host, true)?;
    plan::prefetch(playbook, host, &cx)?;
    if let Some(run) = store.unfinished()?.into_iter().next_back() {
        return Err(Error::Interrupted {
            host: host.name(),
            run: run.id,
        });
    }
    if let Some(expected) = expect {
        let now = plan::plan(playbook, host, &mut |_| {})?;
        if now.fingerprint != expected {
            return Err(Error::Drift {
                host: host.name(),
                detail: "the target (or the playbook) changed since the plan was made".into(),
            });
        }
    }
    let masker = playbook.masker();
    let cancelled = || {
        if opts
            .cancel
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst))
        {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    };
    // Interrupted before anything changed: no run to record at all.
    cancelled()?;
    // The run folder's few changes go out in one round trip, and any
    // failure of them is known here, before a resource is touched.
    host.batch(true).on(host)?;
    let begun = store.begin(&playbook.name);
    let sent = host.batch(begun.is_ok());
    let mut journal = begun?;
    if let Err(e) = sent {
        let _ = host.batch(false);
        return Err(Error::host(host, e));
    }
    if let Some(timeout) = opts.confirm_timeout {
        journal.arm_before_change(timeout);
    }
    let mut summary = Summary::default();
    let mut notified: Vec<&str> = Vec::new();
    // Changes (journal appends first) go out together at the next
    // observation or command: a remote host's round trips stay few
    // however many files change. A queued change that fails is reported
    // later, so each path remembers the resource that changed it last.
    let mut owners = Owners::default();

    let mut held = Held::default();
    let mut work = || -> Result<(), Error> {
        let mut each = Applier {
            host,
            journal: &mut journal,
            owners: &mut owners,
            cx: &cx,
            masker: &masker,
            cancelled: &cancelled,
        };
        // Changes first, then the handlers they notified, then the checks
        // (probes), which must see the host as the whole run leaves it.
        for d in playbook.resources.iter().filter(|d| !d.resource.is_check()) {
            cancelled()?;
            let change = each.apply(d, false)?;
            summary.count_change(&change);
            if change.action() != Action::Unchanged {
                notified.extend(d.notify.iter().map(String::as_str));
            }
            held.hold(host, each.owners, false, change, on_event)?;
        }
        held.settle(host, each.owners, on_event)?;
        for h in playbook
            .handlers
            .iter()
            .filter(|h| notified.contains(&h.id.as_str()))
        {
            cancelled()?;
            let change = each.apply(h, true)?;
            held.hold(host, each.owners, true, change, on_event)?;
        }
        held.settle(host, each.owners, on_event)?;
        for d in playbook.resources.iter().filter(|d| d.resource.is_check()) {
            cancelled()?;
            let change = each.apply(d, false)?;
            summary.count_change(&change);
            held.hold(host, each.owners, false, change, on_event)?;
        }
        held.settle(host, each.owners, on_event)?;
        cancelled()
    };
    // Recording the run as applied is part of the apply: if that fails
    // (a full disk), the run is rolled back like any other failure, so
    // that exit 1 always means "nothing half-done".
    let result = work()
        .and_then(|()| {
            journal.seal()?;
            let mut record = journal.record.clone();
            store.set_status(&mut record, Status::Applied)?;
            // Applied only once every queued change is on the host.
            host.batch(false).on(host)?;
            Ok(record)
        })
        .map_err(|e| owners.attribute(e));
    // After a failure, what is still queued goes out in order (each
    // change behind its journal entry) so that the undo sees all of it;
    // the undo itself runs step by step, to report each step.
    if let Err(e) = &result {
        let _ = host.batch(false);
        held.release_before(e.resource_id(), on_event);
    }
    let armed = journal.is_armed().then(|| journal.dir().to_path_buf());
    match result {
        Ok(record) => {
            if let Some(dir) = armed {
                confirm(playbook, host, opts, &dir, &record, on_event)?;
            }
            Ok(Outcome {
                run: record,
                summary,
            })
        }
        Err(e) => {
            // Restore what we can; a lost connection fails here too, and
            // then the watchdog (if armed) restores the rest on the host.
            let mut report = match store.entries(journal.id()) {
                Ok(entries) => journal::undo(host, &entries),
                Err(read) => RollbackReport {
                    failures: vec![format!("cannot read the run's journal: {read}")],
                    ..RollbackReport::default()
                },
            };
            if let Some(dir) = &armed {
                if report.complete() {
                    // Restored by us: the watchdog must not run again.
                    if journal::disarm(host, dir).is_err() {
                        report.host_restores_in = opts.confirm_timeout;
                    }
                } else {
                    report.host_restores_in = opts.confirm_timeout;
                }
            }
            let mut record = journal.record.clone();
            let status = if report.complete() {
                Status::Failed
            } else {
                Status::RollbackIncomplete
            };
            if let Err(se) = store.set_status(&mut record, status) {
                report
                    .failures
                    .push(format!("cannot record the run as {status:?}: {se}"));
            }
            Err(Error::ApplyFailed {
                run: record.id,
                source: Box::new(e),
                rollback: report,
            })
        }
    }
}

/// Confirm a commit-confirmed run: stop the target's watchdog, over a
/// fresh connection when the playbook may have cut this one.
fn confirm(
    playbook: &Playbook,
    host: &dyn Host,
    opts: &ApplyOptions<'_>,
    dir: &Path,
    record: &RunRecord,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<(), Error> {
    let timeout = opts.confirm_timeout.unwrap_or_default();
    let not_confirmed = |why: String| Error::NotConfirmed {
        host: host.name(),
        run: record.id.clone(),
        secs: timeout.as_secs(),
        why,
    };
    let may_cut = playbook
        .resources
        .iter()
        .chain(&playbook.handlers)
        .any(|d| d.resource.may_cut_connection());
    let fresh;
    let via: &dyn Host = match opts.reconnect {
        Some(reconnect) if may_cut => {
            on_event(Event::Note(
                "Reconnecting to confirm the host is still reachable after the change...",
            ));
            let deadline = std::time::Instant::now() + timeout;
            fresh = loop {
                match reconnect() {
                    Ok(h) => break h,
                    Err(e) if std::time::Instant::now() >= deadline => {
                        return Err(not_confirmed(e.to_string()))
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_secs(2)),
                }
            };
            fresh.as_ref()
        }
        _ => host,
    };
    match journal::disarm(via, dir) {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_confirmed(
            "the confirm timeout passed first and the host restored the run".into(),
        )),
        Err(e) => Err(not_confirmed(e.to_string())),
    }
}

/// The resource that last changed each path in this run: a change that
/// failed in a batch is reported after later resources started.
#[derive(Default)]
struct Owners(std::collections::HashMap<std::path::PathBuf, String>);

impl Owners {
    fn record(&mut self, id: &str, op: &Op) {
        let path = match op {
            Op::Write { path, .. }
            | Op::Mkdir { path, .. }
            | Op::SetMeta { path, .. }
            | Op::Remove { path, .. } => path,
            Op::Run { .. } => return,
        };
        self.0.insert(path.clone(), id.to_string());
    }

    /// Name the resource whose change failed, rather than the one that
    /// happened to be running when its error came back.
    fn attribute(&self, e: Error) -> Error {
        let Some(owner) = e.host_path().and_then(|p| self.0.get(p)) else {
            return e;
        };
        match e {
            Error::Resource { id, source } if id != *owner => (*source).in_resource(owner),
            e @ Error::Resource { .. } => e,
            e => e.in_resource(owner),
        }
    }
}

/// Changes told to the caller only once the host has them: a batched
/// change is not made until its batch goes out.
#[derive(Default)]
struct Held(Vec<(bool, Change)>);

impl Held {
    /// On a host that does not batch, told at once. A resource that ran a
    /// command settles the batch anyway (to see what the command did):
    /// its changes and those before it are told.
    fn hold(
        &mut self,
        host: &dyn Host,
        owners: &Owners,
        handler: bool,
        change: Change,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error> {
        let ran = change
            .delta
            .ops
            .iter()
            .any(|op| matches!(op, Op::Run { .. }));
        self.0.push((handler, change));
        if ran || !host.batches() {
            self.settle(host, owners, on_event)?;
        }
        Ok(())
    }

    /// Send what is queued, then tell what it made.
    fn settle(
        &mut self,
        host: &dyn Host,
        owners: &Owners,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error> {
        host.batch(true).on(host).map_err(|e| owners.attribute(e))?;
        self.release_before(None, on_event);
        Ok(())
    }

    /// Tell the changes held before the resource `failed` (all, without
    /// one): the ones after it never happened.
    fn release_before(&mut self, failed: Option<&str>, on_event: &mut dyn FnMut(Event<'_>)) {
        let upto = failed
            .and_then(|id| self.0.iter().position(|(_, c)| c.id == id))
            .unwrap_or(self.0.len());
        for (handler, change) in self.0.drain(..).take(upto) {
            on_event(if handler {
                Event::Handler(&change)
            } else {
                Event::Resource(&change)
            });
        }
    }
}

/// What applying each resource of one run needs.
struct Applier<'a, 'h> {
    host: &'a dyn Host,
    journal: &'a mut Journal<'h>,
    owners: &'a mut Owners,
    cx: &'a crate::resource::Context,
    masker: &'a Masker,
    cancelled: &'a dyn Fn() -> Result<(), Error>,
}

impl Applier<'_, '_> {
    /// Plan one resource against the real host and make its changes.
    fn apply(&mut self, d: &crate::playbook::Declared, handler: bool) -> Result<Change, Error> {
        let (host, cx, masker) = (self.host, self.cx, self.masker);
        let delta = d
            .resource
            .plan(host, cx)
            .and_then(|delta| crate::resource::guard(&delta, cx).map(|()| delta))
            .map_err(|e| self.owners.attribute(e.in_resource(&d.id)))?;
        // A command's default id is its rendered line: it may hold a secret.
        let journal_id = masker.mask(&d.id);
        for op in &delta.ops {
            // A recursive `permissions` can be 100,000 operations.
            (self.cancelled)()?;
            // Only a batched change fails after its resource: elsewhere
            // the map would be 100,000 paths of a recursive `permissions`
            // for nothing.
            if host.batches() {
                self.owners.record(&d.id, op);
            }
            execute(host, self.journal, &journal_id, op, masker, handler)
                .map_err(|e| self.owners.attribute(e.in_resource(&d.id)))?;
        }
        Ok(Change {
            id: d.id.clone(),
            kind: d.resource.kind(),
            check: d.resource.is_check(),
            delta,
        })
    }
}

/// Create the missing ancestors of `path`, each journaled as "was absent".
fn ensure_parents(
    host: &dyn Host,
    j: &mut Journal<'_>,
    id: &str,
    path: &Path,
) -> Result<(), Error> {
    let mut missing = Vec::new();
    for anc in path.ancestors().skip(1) {
        match host.stat(anc).on(host)? {
            Some(m) if m.kind == FileKind::Dir => break,
            Some(_) => {
                return Err(Error::Conflict(format!(
                    "{} is not a directory",
                    anc.display()
                )))
            }
            None => missing.push(anc),
        }
    }
    for dir in missing.into_iter().rev() {
        let step = j.begin(
            id,
            Undo::Absent {
                path: dir.to_path_buf(),
            },
        )?;
        host.mkdir(dir, 0o755).on(host)?;
        j.done(step)?;
    }
    Ok(())
}

fn execute(
    host: &dyn Host,
    j: &mut Journal<'_>,
    id: &str,
    op: &Op,
    masker: &Masker,
    handler: bool,
) -> Result<(), Error> {
    j.count_changes(!handler);
    match op {
        Op::Write {
            path,
            content,
            attrs,
            ..
        } => {
            ensure_parents(host, j, id, path)?;
            // Record what is there now, not what the plan saw.
            let undo = match host.stat(path).on(host)? {
                Some(meta) => {
                    let backup = j.backup(j.next_step(), path)?;
                    Undo::Restore {
                        path: path.clone(),
                        backup,
                        meta,
                    }
                }
                None => Undo::Absent { path: path.clone() },
            };
            let step = j.begin(id, undo)?;
            host.write(path, content, *attrs).on(host)?;
            j.done(step)
        }
        Op::Mkdir { path, attrs } => {
            ensure_parents(host, j, id, path)?;
            let step = j.begin(id, Undo::Absent { path: path.clone() })?;
            host.mkdir(path, attrs.mode.unwrap_or(0o755)).on(host)?;
            if attrs.uid.is_some() || attrs.gid.is_some() {
                host.chown(path, attrs.uid, attrs.gid).on(host)?;
            }
            j.done(step)
        }
        Op::SetMeta { path, attrs, .. } => {
            let meta = host
                .stat(path)
                .on(host)?
                .ok_or_else(|| Error::Conflict(format!("{} disappeared", path.display())))?;
            let step = j.begin(
                id,
                Undo::Meta {
                    path: path.clone(),
                    meta,
                },
            )?;
            set_attrs(host, path, *attrs)?;
            j.done(step)
        }
        Op::Remove { path, .. } => {
            let Some(meta) = host.stat(path).on(host)? else {
                return Ok(());
            };
            let saved = j.saved_path(j.next_step());
            // Moving a directory to another parent rewrites its `..`, which
            // needs write permission on it: Go's module cache is read-only.
            let unwritable = meta.kind == FileKind::Dir && meta.mode & 0o200 == 0;
            let step = j.begin(
                id,
                Undo::MoveBack {
                    path: path.clone(),
                    saved: saved.clone(),
                    mode: unwritable.then_some(meta.mode),
                },
            )?;
            if unwritable {
                host.chmod(path, meta.mode | 0o200).on(host)?;
            }
            match host.rename(path, &saved) {
                Ok(()) => {}
                Err(e) if e.source.raw_os_error() == Some(nix::libc::EXDEV) => {
                    copy_tree(host, path, &saved)?;
                    journal::remove_tree(host, path).on(host)?;
                }
                Err(e) => return Err(Error::host(host, e)),
            }
            j.done(step)
        }
        Op::Run {
            cmd, display, undo, ..
        } => {
            let masked = masker.mask(display);
            // The journal lives on the target and outlives the run: a
            // command holding a secret is not kept there to be run later.
            const SECRET: &str = "its undo would need a sensitive value, which fixer does not \
                                  keep on the target: undo it by hand";
            const SECRET_RERUN: &str = "it uses a sensitive value, which fixer does not keep on \
                                        the target, so it was not run again: run it by hand";
            let entry = match undo {
                Some(u) if holds_secret(u, masker) => Undo::Irreversible {
                    display: masked.clone(),
                    reason: Some(SECRET.into()),
                },
                Some(u) => Undo::Command {
                    cmd: u.clone(),
                    display: masked.clone(),
                },
                None if handler && holds_secret(cmd, masker) => Undo::Irreversible {
                    display: masked.clone(),
                    reason: Some(SECRET_RERUN.into()),
                },
                // A handler makes restored files take effect again.
                None if handler => Undo::Rerun {
                    cmd: cmd.clone(),
                    display: masked.clone(),
                },
                None => Undo::Irreversible {
                    display: masked.clone(),
                    reason: None,
                },
            };
            let step = j.begin(id, entry)?;
            let out = host.run(cmd).on(host)?;
            if !out.success() {
                return Err(Error::CommandFailed {
                    command: masked,
                    status: format!("failed ({})", outcome_text(&out, cmd)),
                    stderr: masker.mask(&String::from_utf8_lossy(&out.stderr)),
                });
            }
            j.done(step)
        }
    }
}

/// Whether a sensitive value is in the command's arguments or environment.
fn holds_secret(cmd: &crate::host::Cmd, masker: &Masker) -> bool {
    cmd.argv
        .iter()
        .chain(cmd.env.iter().map(|(_, v)| v))
        .any(|s| masker.mask(s) != *s)
}

fn set_attrs(host: &dyn Host, path: &Path, attrs: Attrs) -> Result<(), Error> {
    if attrs.uid.is_some() || attrs.gid.is_some() {
        host.chown(path, attrs.uid, attrs.gid).on(host)?;
    }
    if let Some(mode) = attrs.mode {
        host.chmod(path, mode).on(host)?;
    }
    Ok(())
}

/// Copy a tree through the host (for removals across filesystems).
fn copy_tree(host: &dyn Host, from: &Path, to: &Path) -> Result<(), Error> {
    let Some(meta) = host.stat(from).on(host)? else {
        return Ok(());
    };
    match meta.kind {
        FileKind::Dir => {
            host.mkdir(to, 0o700).on(host)?;
            for name in host.list(from).on(host)? {
                copy_tree(host, &from.join(&name), &to.join(&name))?;
            }
            host.chmod(to, meta.mode).on(host)?;
        }
        FileKind::File => {
            host.copy(
                from,
                to,
                Attrs {
                    mode: Some(meta.mode),
                    uid: Some(meta.uid),
                    gid: Some(meta.gid),
                },
            )
            .on(host)?;
        }
        FileKind::Symlink | FileKind::Other => {
            return Err(Error::host(
                host,
                crate::host::HostError::new(
                    "move across filesystems",
                    from,
                    io::Error::new(io::ErrorKind::Unsupported, "special file or symlink"),
                ),
            ))
        }
    }
    Ok(())
}

/// Undo a run: the named one, or the newest that changed something and is
/// not undone yet.
/// Undo a run (the newest that changed something, or `run`). Unless
/// `force`, an applied run whose paths were edited since it finished is
/// refused, naming them: restoring would silently throw those edits away.
pub fn rollback(
    host: &dyn Host,
    run: Option<&str>,
    force: bool,
) -> Result<(RunRecord, RollbackReport), Error> {
    let store = Store::new(host);
    let _lock = store.lock()?;
    let mut record = match run {
        Some(id) => store.record(id)?,
        None => store
            .runs()?
            .into_iter()
            .rev()
            // Interrupted and half-undone runs always qualify (an interrupted
            // run with nothing to undo must still be closed, or apply would
            // refuse forever); applied runs only if they changed something.
            .find(|r| match r.status {
                Status::Running | Status::RollbackIncomplete | Status::RollingBack => true,
                Status::Applied => r.changes > 0,
                Status::Failed | Status::RolledBack => false,
            })
            .ok_or_else(|| Error::NothingToUndo {
                message: format!(
                    "Nothing to roll back on {}: no run that changed something is left.",
                    host.name()
                ),
            })?,
    };
    if matches!(record.status, Status::RolledBack | Status::Failed) {
        return Err(Error::NothingToUndo {
            message: format!(
                "Nothing to roll back: run {} is already {}.",
                record.id,
                record.status.describe(false)
            ),
        });
    }
    if !force && record.status == Status::Applied {
        let changes = store.changed_since(&record.id)?;
        if !changes.is_empty() {
            return Err(Error::ChangedSinceRun {
                host: host.name(),
                run: record.id,
                changes,
            });
        }
    }
    let entries = store.entries(&record.id)?;
    // Recorded first, so that a rollback killed halfway is resumed by the
    // next one (undo steps restore states: replaying them is harmless),
    // instead of leaving an "applied" run whose half-restored paths the
    // next rollback would take for edits made since.
    if record.status != Status::RollingBack {
        store.set_status(&mut record, Status::RollingBack)?;
    }
    let report = journal::undo(host, &entries);
    let status = if report.complete() {
        Status::RolledBack
    } else {
        Status::RollbackIncomplete
    };
    store.set_status(&mut record, status)?;
    Ok((record, report))
}

//! Remote hosts: connect to each (at most `--forks` at once), run the
//! command on it, print each host's output as one block (or one JSON
//! record) as soon as it is done, then a summary table. A host that fails
//! only fails itself.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use fixer::apply::{self, ApplyOptions, Event};
use fixer::error::Error;
use fixer::host::ssh_config::{Destination, SshConfig};
use fixer::host::{SshHost, SshOptions};
use fixer::inventory::{self, Member};
use fixer::journal::{Prune, Store};
use fixer::plan;
use fixer::playbook::{Overrides, Pick, Playbook};
use fixer::results::{self, Record, Source, Status};
use fixer::rollout::{MaxFail, Serial};

use super::render::{Printer, Verbosity};
use super::Format;

/// What to do on each host.
pub enum Job<'a> {
    Plan { picks: &'a [Pick] },
    Apply { picks: &'a [Pick], dry_run: bool },
    Rollback { run: Option<&'a str>, force: bool },
    History,
    Prune(&'a Prune),
}

/// How a command names one member: `--host SPEC` or `-i FILE --limit NAME`.
pub type MemberFlag = Box<dyn Fn(&Member) -> String + Sync>;

pub struct Fleet {
    pub members: Vec<Member>,
    pub flag: MemberFlag,
    pub forks: usize,
    pub ssh: SshOptions,
    pub config: SshConfig,
    pub home: PathBuf,
    pub local_user: String,
    pub overrides: Overrides,
    pub format: Format,
    pub color: bool,
    pub verbosity: Verbosity,
    /// Set by Ctrl-C / SIGTERM: every host's apply stops and rolls back.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    pub detailed_exitcode: bool,
    pub confirm_timeout: Duration,
    /// `apply --serial`: batch by batch, stopping at `--max-fail`.
    pub rollout: Option<Rollout>,
    /// `apply --report-to DIR`: one record per host into the store.
    pub report_to: Option<Reporting>,
}

pub struct Reporting {
    pub store: PathBuf,
    /// The playbooks applied, by name, as every host's record names them.
    pub playbooks: Vec<String>,
}

pub struct Rollout {
    pub serial: Serial,
    pub max_fail: MaxFail,
}

/// What stops a rollout: a host that failed, or whose probes did not all
/// pass.
fn holds_back_a_rollout(s: Status) -> bool {
    matches!(
        s,
        Status::Failed | Status::Unreachable | Status::Unconfirmed
    )
}

fn json_label(s: Status) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

struct Report {
    status: Status,
    changed: Option<usize>,
    unchanged: Option<usize>,
    failed: usize,
    /// For a failed apply: whether its rollback completed.
    rolled_back: Option<bool>,
    run: Option<String>,
    error: Option<String>,
}

impl Report {
    fn not_reached() -> Self {
        Report {
            status: Status::NotReached,
            changed: None,
            unchanged: None,
            failed: 0,
            rolled_back: None,
            run: None,
            error: None,
        }
    }

    fn failure(status: Status, error: String) -> Self {
        Report {
            status,
            changed: None,
            unchanged: None,
            failed: 1,
            rolled_back: None,
            run: None,
            error: Some(error),
        }
    }
}

impl Fleet {
    fn connect(&self, m: &Member) -> Result<SshHost, Error> {
        let dest =
            Destination::parse(&m.address).map_err(|e| Error::Usage(format!("{}: {e}", m.name)))?;
        let target = self
            .config
            .resolve(&dest, &self.home, &self.local_user)
            .map_err(|e| Error::Usage(format!("{}: {e}", m.name)))?;
        SshHost::connect(&m.name, &target, &self.ssh).map_err(|e| Error::Connect {
            host: m.name.clone(),
            source: Box::new(e),
        })
    }

    fn overrides_for(&self, m: &Member) -> Overrides {
        Overrides {
            inventory: m.vars.clone(),
            ..self.overrides.clone()
        }
    }

    fn one(&self, job: &Job<'_>, m: &Member, p: &mut Printer, tick: &dyn Fn(&str)) -> Report {
        // After Ctrl-C, hosts still waiting for a fork are left alone.
        if self.cancelled() {
            let e = Error::Cancelled;
            p.error(&e);
            return Report::failure(Status::Failed, e.to_string());
        }
        tick("connecting");
        let host = match self.connect(m) {
            Ok(h) => h,
            Err(e) => {
                p.error(&e);
                let status = match &e {
                    Error::Connect { .. } => Status::Unreachable,
                    _ => Status::Failed,
                };
                return Report::failure(status, e.to_string());
            }
        };
        match self.job_on(job, m, &host, p, tick) {
            Ok(r) => r,
            Err(e) => {
                p.error(&e);
                let rolled_back = match &e {
                    Error::ApplyFailed { rollback, .. } => Some(rollback.complete()),
                    _ => None,
                };
                let run = match &e {
                    Error::ApplyFailed { run, .. } => Some(run.clone()),
                    _ => None,
                };
                Report {
                    rolled_back,
                    run,
                    ..Report::failure(Status::Failed, e.to_string())
                }
            }
        }
    }

    fn job_on(
        &self,
        job: &Job<'_>,
        m: &Member,
        host: &SshHost,
        p: &mut Printer,
        tick: &dyn Fn(&str),
    ) -> Result<Report, Error> {
        let ok = |changed: usize, unchanged: usize, run: Option<String>| Report {
            status: if changed > 0 {
                Status::Changed
            } else {
                Status::Ok
            },
            changed: Some(changed),
            unchanged: Some(unchanged),
            failed: 0,
            rolled_back: None,
            run,
            error: None,
        };
        // Each host's own values: its inventory's, and what it gives for
        // the discovered variables.
        let load = |picks: &[Pick]| {
            Playbook::load_for(
                picks,
                &self.overrides_for(m),
                Some(host),
                &fixer::discover::Context::default(),
            )
        };
        match job {
            Job::Plan { picks }
            | Job::Apply {
                picks,
                dry_run: true,
            } => {
                let pb = load(picks)?;
                p.plan_header(&pb, &m.name);
                let total = pb.resources.len();
                let mut n = 0;
                let outcome = plan::plan(&pb, host, &mut |c| {
                    n += 1;
                    tick(&format!("planned {n}/{total}"));
                    p.change(c, false);
                })?;
                p.plan_footer(&outcome, None);
                let s = outcome.summary;
                Ok(ok(s.add + s.change + s.remove, s.unchanged, None))
            }
            Job::Apply { picks, .. } => {
                let pb = load(picks)?;
                p.apply_header(&pb, &m.name);
                let total = pb.resources.len();
                let mut n = 0;
                let mut unconfirmed = false;
                let opts = ApplyOptions {
                    confirm_timeout: Some(self.confirm_timeout),
                    reconnect: Some(&|| {
                        self.connect(m)
                            .map(|h| Box::new(h) as Box<dyn fixer::host::Host>)
                    }),
                    cancel: self.cancel.as_deref(),
                };
                let outcome = apply::apply_with(&pb, host, None, &opts, &mut |ev| match ev {
                    Event::Resource(c) => {
                        n += 1;
                        tick(&format!("applied {n}/{total}"));
                        unconfirmed |= c.check && !c.delta.warnings.is_empty();
                        p.change(c, true);
                    }
                    Event::Handler(c) => p.handler(c, true),
                    Event::Note(text) => p.note(text),
                })?;
                p.applied(&outcome, None);
                let s = outcome.summary;
                let report = ok(
                    s.add + s.change + s.remove,
                    s.unchanged,
                    (outcome.run.changes > 0).then(|| outcome.run.id.clone()),
                );
                Ok(if unconfirmed {
                    Report {
                        status: Status::Unconfirmed,
                        ..report
                    }
                } else {
                    report
                })
            }
            Job::Rollback { run, force } => {
                tick("rolling back");
                let (record, report) = match apply::rollback(host, *run, *force) {
                    Err(Error::NothingToUndo { message }) => {
                        p.nothing_to_undo(&message);
                        return Ok(ok(0, 0, None));
                    }
                    other => other?,
                };
                p.rolled_back(&record, &report);
                Ok(Report {
                    status: if report.complete() {
                        Status::Changed
                    } else {
                        Status::Failed
                    },
                    changed: Some(report.undone),
                    unchanged: None,
                    failed: report.failures.len(),
                    rolled_back: Some(report.complete()),
                    run: Some(record.id),
                    error: None,
                })
            }
            Job::History => {
                let store = Store::new(host);
                let busy = store.busy()?;
                p.history(&store.runs()?, busy);
                Ok(ok(0, 0, None))
            }
            Job::Prune(policy) => {
                tick("pruning");
                let pruned = Store::new(host).prune(policy)?;
                p.pruned(&pruned, policy.dry_run);
                let removed = if policy.dry_run {
                    0
                } else {
                    pruned.pruned.len()
                };
                Ok(ok(removed, pruned.kept.len(), None))
            }
        }
    }

    /// Run `job` on every member (with a rollout, batch by batch); the
    /// exit code.
    pub fn run(&self, job: &Job<'_>) -> u8 {
        let progress = (self.format == Format::Text && std::io::stderr().is_terminal())
            .then(indicatif::MultiProgress::new);
        let printed = Mutex::new(());
        let emit = |text: &str| {
            let _one_at_a_time = printed.lock().unwrap_or_else(|e| e.into_inner());
            let print = || {
                let mut so = std::io::stdout().lock();
                let _ = so.write_all(text.as_bytes());
                let _ = so.flush();
            };
            match &progress {
                Some(mp) => mp.suspend(print),
                None => print(),
            }
        };
        let total = self.members.len();
        let rollout = match job {
            Job::Apply { dry_run: false, .. } => self.rollout.as_ref(),
            _ => None,
        };
        let batches = rollout.map_or_else(|| vec![total], |r| r.serial.batches(total));
        let mut reports: Vec<Report> = Vec::with_capacity(total);
        let mut stopped: Option<String> = None;
        for (b, &size) in batches.iter().enumerate() {
            let start = reports.len();
            let members = &self.members[start..start + size];
            if rollout.is_some() {
                let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                match self.format {
                    Format::Text => emit(&format!(
                        "-- batch {} of {} ({} {}): {}\n",
                        b + 1,
                        batches.len(),
                        size,
                        if size == 1 { "host" } else { "hosts" },
                        names.join(", ")
                    )),
                    Format::Json => emit(&format!(
                        "{}\n",
                        json!({"batch": b + 1, "of": batches.len(), "hosts": names})
                    )),
                }
            }
            reports.extend(self.batch(job, members, b + 1, rollout.is_some(), &emit, &progress));
            let Some(r) = rollout else { continue };
            if reports.len() == total {
                break;
            }
            let held_back = reports
                .iter()
                .filter(|r| holds_back_a_rollout(r.status))
                .count();
            if self.cancelled() {
                stopped = Some(format!(
                    "Rollout stopped after batch {} of {}: interrupted.",
                    b + 1,
                    batches.len()
                ));
                break;
            }
            if r.max_fail.exceeded(held_back, total) {
                stopped = Some(format!(
                    "Rollout stopped after batch {} of {}: {} of {} hosts failed or did not pass their probes, more than --max-fail {} allows.",
                    b + 1,
                    batches.len(),
                    held_back,
                    total,
                    r.max_fail
                ));
                break;
            }
        }
        let reached = reports.len();
        reports.extend((reached..total).map(|_| Report::not_reached()));
        if rollout.is_some() {
            let now = std::time::SystemTime::now();
            let mut p = Printer::buffered(self.format, self.color, self.verbosity, String::new());
            for (m, r) in self.members[reached..].iter().zip(&reports[reached..]) {
                self.record(m, r, now, &mut p);
            }
            let out = p.take();
            if self.format == Format::Text && !out.text.is_empty() {
                emit(&out.text);
            }
        }
        let reports: Vec<(&Member, Report)> = self.members.iter().zip(reports).collect();
        if let Some(why) = &stopped {
            let left: Vec<&str> = reports[reached..]
                .iter()
                .map(|(m, _)| m.name.as_str())
                .collect();
            match self.format {
                Format::Text => {}
                Format::Json => {
                    for (m, _) in &reports[reached..] {
                        emit(&format!(
                            "{}\n",
                            json!({"host": m.name, "status": json_label(Status::NotReached)})
                        ));
                    }
                    emit(&format!(
                        "{}\n",
                        json!({"rollout": {"stopped": why, "not_reached": left}})
                    ));
                }
            }
        }
        if self.format == Format::Text {
            let mut table = summary_table(&reports);
            if let Some(why) = &stopped {
                let left: Vec<&str> = reports[reached..]
                    .iter()
                    .map(|(m, _)| m.name.as_str())
                    .collect();
                table.push_str(&format!(
                    "{why}\nNot reached, untouched: {}.\n",
                    left.join(", ")
                ));
            }
            emit(&table);
        }
        let any_failed = stopped.is_some() || reports.iter().any(|(_, r)| r.failed > 0);
        let any_changes = reports
            .iter()
            .any(|(_, r)| r.changed.is_some_and(|c| c > 0));
        let planning = matches!(job, Job::Plan { .. } | Job::Apply { dry_run: true, .. });
        if any_failed {
            1
        } else if planning && self.detailed_exitcode && any_changes {
            2
        } else {
            0
        }
    }

    /// Put `report` in the results store, if one was given; a store that
    /// cannot take it is a warning on the host's output, never a failure
    /// of a run that is already done.
    fn record(&self, m: &Member, report: &Report, started: std::time::SystemTime, p: &mut Printer) {
        let Some(to) = &self.report_to else { return };
        let record = Record {
            status: report.status,
            changes: report.changed.map(|c| c as u64),
            rolled_back: report.rolled_back,
            run: report.run.clone(),
            error: report.error.clone(),
            ..Record::of(&m.name, to.playbooks.clone(), Source::Push, started)
        }
        .ended(started);
        if let Err(e) = results::Store::new(&to.store).put(&record) {
            p.warn(&format!(
                "the run is done, but its result was not recorded: {e}"
            ));
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Run `job` on `members`, `--forks` at a time, printing each host's
    /// block (or JSON record) as it finishes.
    fn batch(
        &self,
        job: &Job<'_>,
        members: &[Member],
        batch: usize,
        rolling: bool,
        emit: &(dyn Fn(&str) + Sync),
        progress: &Option<indicatif::MultiProgress>,
    ) -> Vec<Report> {
        let reports = inventory::for_each(members, self.forks, |_, m| {
            let bar = progress.as_ref().map(|mp| {
                let b = mp.add(indicatif::ProgressBar::new_spinner());
                b.set_prefix(m.name.clone());
                b.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                b.enable_steady_tick(Duration::from_millis(120));
                b
            });
            let tick = |msg: &str| {
                if let Some(b) = &bar {
                    b.set_message(msg.to_string());
                }
            };
            let mut p = Printer::buffered(self.format, self.color, self.verbosity, (self.flag)(m));
            let started = std::time::SystemTime::now();
            let report = self.one(job, m, &mut p, &tick);
            if let Job::Apply { dry_run: false, .. } = job {
                self.record(m, &report, started, &mut p);
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            let out = p.take();
            match self.format {
                // Quiet: the summary table says how each host went; only a
                // failure's or a warning's own words are worth more lines.
                Format::Text
                    if self.verbosity == Verbosity::Quiet
                        && out.warnings == 0
                        && matches!(report.status, Status::Ok | Status::Changed) => {}
                Format::Text => {
                    let rule = format!("== {} ({}) ", m.name, report.status.label());
                    emit(&format!("{rule:=<72}\n{}\n", out.text));
                }
                Format::Json => {
                    let mut record = json!({
                        "host": m.name,
                        "status": json_label(report.status),
                        "changed": report.changed,
                        "unchanged": report.unchanged,
                        "failed": report.failed,
                        "rolled_back": report.rolled_back,
                        "run": report.run,
                        "error": report.error,
                        "result": out.json.into_iter().next().unwrap_or(Value::Null),
                    });
                    if rolling {
                        record["batch"] = json!(batch);
                    }
                    emit(&format!("{record}\n"));
                }
            }
            report
        });
        reports
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Report::failure(Status::Failed, "internal error (panic)".into())
                })
            })
            .collect()
    }
}

fn summary_table(reports: &[(&Member, Report)]) -> String {
    let width = reports
        .iter()
        .map(|(m, _)| m.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let num = |v: Option<usize>| v.map_or("-".to_string(), |n| n.to_string());
    let mut t = format!(
        "{:<width$}  {:<11}  {:>7}  {:>9}  {:>6}  ROLLED BACK\n",
        "HOST", "STATUS", "CHANGED", "UNCHANGED", "FAILED"
    );
    for (m, r) in reports {
        let rolled = match r.rolled_back {
            Some(true) => "yes",
            Some(false) => "INCOMPLETE",
            None => "-",
        };
        t.push_str(&format!(
            "{:<width$}  {:<11}  {:>7}  {:>9}  {:>6}  {rolled}\n",
            m.name,
            r.status.label(),
            num(r.changed),
            num(r.unchanged),
            r.failed
        ));
    }
    let count = |s: Status| reports.iter().filter(|(_, r)| r.status == s).count();
    let failed = reports.iter().filter(|(_, r)| r.failed > 0).count();
    let unconfirmed = count(Status::Unconfirmed);
    let not_reached = count(Status::NotReached);
    let mut line = format!(
        "{}: {} ok",
        super::render::count(reports.len(), "host"),
        reports.len() - failed - unconfirmed - not_reached
    );
    if unconfirmed > 0 {
        line.push_str(&format!(", {unconfirmed} unconfirmed"));
    }
    line.push_str(&format!(", {failed} failed"));
    if not_reached > 0 {
        line.push_str(&format!(", {not_reached} not reached"));
    }
    t.push_str(&line);
    t.push_str(".\n");
    t
}

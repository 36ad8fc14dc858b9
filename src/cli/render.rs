//! Human and JSON output. Every string printed passes through the
//! playbook's masker, so sensitive values never reach a terminal or a log.

use std::io::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use fixer::apply::Outcome as ApplyOutcome;
use fixer::change::{Action, Change, Op, Prior};
use fixer::error::{Error, RollbackReport};
use fixer::host::shell::quote;
use fixer::host::{Attrs, Meta};
use fixer::journal::RunRecord;
use fixer::plan::{Outcome as PlanOutcome, Summary};
use fixer::playbook::{Masker, Playbook};

use super::Format;

mod diagnosis;

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// How much text output says (`-q`, default, `-v`); JSON is the same at
/// every level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Results only: the summary line, the run recorded, what rollback did,
    /// the suggested command; warnings and errors as always.
    Quiet,
    Normal,
    /// Also what did not change, and how long each applied change took.
    Verbose,
}

pub struct Printer {
    format: Format,
    color: bool,
    verbosity: Verbosity,
    /// Warnings printed: a quiet fan-out still shows that host's block.
    warned: std::cell::Cell<usize>,
    /// When the previous resource finished (or the apply began): `-v`
    /// shows the time each one took.
    since: std::cell::Cell<std::time::Instant>,
    masker: Masker,
    json_resources: Vec<Value>,
    json_handlers: Vec<Value>,
    header: Value,
    /// For one host of many: text and JSON are kept, to be printed as one
    /// block (or one JSON record) when the host is done.
    buffer: Option<std::cell::RefCell<Buffered>>,
    /// How commands the user is told to run name the target
    /// (`--host web1`); `None` for the local machine.
    target_flag: Option<String>,
    /// JSON documents kept to be printed as one (`fixer fix`).
    gathered: Option<std::cell::RefCell<Vec<Value>>>,
}

#[derive(Default)]
pub struct Buffered {
    pub text: String,
    pub json: Vec<Value>,
    /// How many warnings `text` holds.
    pub warnings: usize,
}

/// `n` and the noun, singular for one: `1 change`, `2 changes`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn rollback_hint(id: &str, root: Option<&Path>) -> String {
    match root {
        Some(r) => format!("fixer rollback {id} --root {}", r.display()),
        None => format!("fixer rollback {id}"),
    }
}

impl Printer {
    pub fn new(format: Format, color: bool, verbosity: Verbosity) -> Self {
        Printer {
            format,
            color,
            verbosity,
            warned: std::cell::Cell::new(0),
            since: std::cell::Cell::new(std::time::Instant::now()),
            masker: Masker::default(),
            json_resources: Vec::new(),
            json_handlers: Vec::new(),
            header: Value::Null,
            buffer: None,
            target_flag: None,
            gathered: None,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Keep each JSON document instead of printing it (see [`Self::emit_gathered`]).
    pub fn gather_json(&mut self) {
        self.gathered = Some(Default::default());
    }

    /// Print the documents kept as one, under `keys` in order (a missing
    /// one is null): `{"diagnosis": ..., "plan": ..., "apply": ...}`.
    pub fn emit_gathered(&mut self, keys: &[&str]) {
        let Some(docs) = self.gathered.take() else {
            return;
        };
        let mut docs = docs.into_inner().into_iter();
        let mut out = serde_json::Map::new();
        for k in keys {
            out.insert((*k).to_string(), docs.next().unwrap_or(Value::Null));
        }
        self.emit_json(&Value::Object(out));
    }

    /// A printer for one remote host: output is kept until [`Self::take`].
    pub fn buffered(
        format: Format,
        color: bool,
        verbosity: Verbosity,
        target_flag: String,
    ) -> Self {
        Printer {
            buffer: Some(Default::default()),
            target_flag: Some(target_flag),
            ..Printer::new(format, color, verbosity)
        }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    pub fn quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }

    pub fn take(&self) -> Buffered {
        let mut out: Buffered = self
            .buffer
            .as_ref()
            .map(|b| std::mem::take(&mut *b.borrow_mut()))
            .unwrap_or_default();
        out.warnings = self.warned.replace(0);
        out
    }

    fn hint(&self, id: &str, root: Option<&Path>) -> String {
        match &self.target_flag {
            Some(flag) => format!("fixer rollback {id} {flag}"),
            None => rollback_hint(id, root),
        }
    }

    /// Diagnostics: stderr, or the host's block when buffered.
    fn diag(&self, text: &str) {
        let text = self.masker.mask(text);
        match &self.buffer {
            Some(b) if self.format == Format::Text => {
                let mut b = b.borrow_mut();
                b.text.push_str(&text);
                b.text.push('\n');
            }
            _ => eprintln!("{text}"),
        }
    }

    pub fn color(&self) -> bool {
        self.color
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    fn out(&self, text: &str) {
        if let Some(b) = &self.buffer {
            let mut b = b.borrow_mut();
            b.text.push_str(&self.masker.mask(text));
            b.text.push('\n');
            return;
        }
        let mut so = std::io::stdout().lock();
        // A closed pipe (`fixer plan | head`) is not an error worth a panic.
        let _ = writeln!(so, "{}", self.masker.mask(text));
    }

    /// A command's one JSON document, as is.
    pub fn document(&self, v: &Value) {
        self.emit_json(v);
    }

    fn emit_json(&self, v: &Value) {
        if let Some(g) = &self.gathered {
            let masked = serde_json::from_str(&self.masker.mask(&v.to_string()))
                .unwrap_or_else(|_| v.clone());
            g.borrow_mut().push(masked);
            return;
        }
        if let Some(b) = &self.buffer {
            // Masked like everything printed.
            let masked = serde_json::from_str(&self.masker.mask(&v.to_string()))
                .unwrap_or_else(|_| v.clone());
            b.borrow_mut().json.push(masked);
            return;
        }
        let text = serde_json::to_string_pretty(v).unwrap_or_default();
        self.out(&text);
    }

    pub fn validated(&mut self, pb: &Playbook) {
        self.masker = pb.masker();
        let ids =
            |v: &[fixer::playbook::Declared]| v.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        match self.format {
            Format::Json => self.emit_json(&json!({
                "valid": true,
                "playbook": pb.name,
                "resources": ids(&pb.resources),
                "handlers": ids(&pb.handlers),
            })),
            Format::Text if pb.parts.len() > 1 => self.out(&format!(
                "{}: valid playbooks, as one: `{}` ({}, {})",
                pb.parts
                    .iter()
                    .map(|p| p.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                pb.name,
                count(pb.resources.len(), "resource"),
                count(pb.handlers.len(), "handler")
            )),
            Format::Text => self.out(&format!(
                "{}: valid playbook `{}` ({}, {})",
                pb.path.display(),
                pb.name,
                count(pb.resources.len(), "resource"),
                count(pb.handlers.len(), "handler")
            )),
        }
    }

    pub fn shipped_playbooks(&mut self, shipped: &[fixer::scaffold::Shipped]) {
        match self.format {
            Format::Json => self.emit_json(&json!(shipped
                .iter()
                .map(|s| json!({
                    "name": s.name,
                    "description": s.description,
                    "path": s.path.display().to_string(),
                }))
                .collect::<Vec<_>>())),
            Format::Text => {
                let width = shipped.iter().map(|s| s.name.len()).max().unwrap_or(0);
                for s in shipped {
                    self.out(&format!(
                        "{:width$}  {}",
                        s.name,
                        s.description.as_deref().unwrap_or("")
                    ));
                }
                self.out("");
                self.out("Start from one with `fixer init NAME`.");
            }
        }
    }

    pub fn scaffolded(&mut self, made: &fixer::scaffold::Scaffold) {
        match self.format {
            Format::Json => self.emit_json(&json!({
                "playbook": made.playbook.display().to_string(),
                "templates": made
                    .templates
                    .iter()
                    .map(|t| t.display().to_string())
                    .collect::<Vec<_>>(),
            })),
            Format::Text => {
                self.out(&format!("Wrote {}", made.playbook.display()));
                for t in &made.templates {
                    self.out(&format!("Wrote {}", t.display()));
                }
                self.out(&format!(
                    "Edit its [vars], then `fixer plan {}`.",
                    made.playbook.display()
                ));
            }
        }
    }

    pub fn plan_header(&mut self, pb: &Playbook, host: &str) {
        self.header_for("Plan", pb, host);
    }

    pub fn apply_header(&mut self, pb: &Playbook, host: &str) {
        self.since.set(std::time::Instant::now());
        self.header_for("Apply", pb, host);
    }

    /// The title, and every variable's value with where it came from.
    fn header_for(&mut self, verb: &str, pb: &Playbook, host: &str) {
        self.masker = pb.masker();
        let shown = |v: &fixer::playbook::vars::Var| {
            if v.sensitive {
                fixer::playbook::vars::MASK.to_string()
            } else {
                match &v.value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            }
        };
        let values: Vec<Value> = pb
            .parts
            .iter()
            .flat_map(|part| {
                part.vars.iter().map(move |(name, v)| {
                    json!({"playbook": part.name, "name": name, "value": shown(v), "origin": v.origin})
                })
            })
            .collect();
        self.header = json!({"playbook": pb.name, "host": host, "values": values});
        if self.format != Format::Text || self.quiet() {
            return;
        }
        let title = match pb.parts.as_slice() {
            [_] => format!("{verb}: playbook `{}` on {host}", pb.name),
            parts => format!(
                "{verb}: playbooks {} on {host}",
                parts
                    .iter()
                    .map(|p| format!("`{}`", p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.out(&self.paint(BOLD, &title));
        self.out("");
        for part in &pb.parts {
            if part.vars.iter().next().is_none() {
                continue;
            }
            if pb.parts.len() > 1 {
                self.out(&format!("Values of `{}`:", part.name));
            } else {
                self.out("Values:");
            }
            let rows: Vec<(String, String, String)> = part
                .vars
                .iter()
                .map(|(name, v)| (name.to_string(), quote(&shown(v)), v.origin.to_string()))
                .collect();
            let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            let w1 = rows
                .iter()
                .map(|r| r.1.chars().count())
                .max()
                .unwrap_or(0)
                .min(40);
            for (name, value, origin) in rows {
                self.out(&format!("  {name:w0$}  {value:w1$}  {origin}"));
            }
            self.out("");
        }
    }

    /// Progress worth telling a person, not a result (quiet drops it).
    pub fn note(&self, msg: &str) {
        match self.format {
            Format::Text if self.quiet() => {}
            Format::Text => self.out(msg),
            Format::Json => eprintln!("{}", self.masker.mask(msg)),
        }
    }

    /// A warning: stderr (or the host's block), at every level.
    pub fn warn(&self, msg: &str) {
        self.warned.set(self.warned.get() + 1);
        self.diag(&self.with_target(&format!("warning: {msg}")));
    }

    /// A result of the command, printed at every level.
    pub fn result(&self, msg: &str) {
        match self.format {
            Format::Text => self.out(msg),
            Format::Json => eprintln!("{}", self.masker.mask(msg)),
        }
    }

    /// `rollback` with nothing left to undo: a result, not an error.
    pub fn nothing_to_undo(&self, msg: &str) {
        match self.format {
            Format::Text => self.out(msg),
            Format::Json => self.emit_json(&json!({"nothing_to_roll_back": true, "message": msg})),
        }
    }

    fn action_mark(&self, a: Action) -> String {
        match a {
            Action::Add => self.paint(GREEN, "+"),
            Action::Change => self.paint(YELLOW, "~"),
            Action::Remove => self.paint(RED, "-"),
            Action::Unchanged => " ".to_string(),
        }
    }

    pub fn change(&mut self, c: &Change, applied: bool) {
        if self.format == Format::Json {
            let v = self.change_json(c);
            self.json_resources.push(v);
            return;
        }
        let took = self.since.replace(std::time::Instant::now()).elapsed();
        if self.quiet() {
            for w in &c.delta.warnings {
                self.warn(&format!("{}: {w}", c.id));
            }
            return;
        }
        let unchanged = c.action() == Action::Unchanged
            && c.delta.notes.is_empty()
            && c.delta.warnings.is_empty();
        if unchanged && self.verbosity < Verbosity::Verbose {
            return;
        }
        if c.check {
            // A check is not a change: what it found is the whole story.
            let verb = if applied { "checked" } else { "check" };
            self.out(&format!(
                "{} {verb} {}",
                self.paint(CYAN, "?"),
                self.paint(BOLD, &c.id)
            ));
            for note in c.delta.notes.iter().chain(&c.delta.warnings) {
                self.out(&format!("    {note}"));
            }
            self.out("");
            return;
        }
        let verb = match (c.action(), applied) {
            (Action::Add, false) => "add",
            (Action::Add, true) => "added",
            (Action::Change, false) => "change",
            (Action::Change, true) => "changed",
            (Action::Remove, false) => "remove",
            (Action::Remove, true) => "removed",
            (Action::Unchanged, _) => "unchanged",
        };
        let took = if applied && self.verbosity == Verbosity::Verbose {
            format!(" in {:.2} s", took.as_secs_f64())
        } else {
            String::new()
        };
        self.out(&format!(
            "{} {} ({verb}{took})",
            self.action_mark(c.action()),
            self.paint(BOLD, &c.id)
        ));
        for note in c.delta.notes.iter().chain(&c.delta.warnings) {
            self.out(&format!("    {note}"));
        }
        for op in &c.delta.ops {
            for line in self.op_lines(op, applied) {
                self.out(&format!("    {line}"));
            }
        }
        self.out("");
    }

    pub fn handler(&mut self, c: &Change, applied: bool) {
        if self.format == Format::Json {
            let v = self.change_json(c);
            self.json_handlers.push(v);
            return;
        }
        if self.quiet() {
            return;
        }
        let verb = if applied { "ran" } else { "would run" };
        self.out(&format!(
            "{} handler {} ({verb})",
            self.paint(YELLOW, "!"),
            self.paint(BOLD, &c.id)
        ));
        for op in &c.delta.ops {
            for line in self.op_lines(op, applied) {
                self.out(&format!("    {line}"));
            }
        }
        self.out("");
    }

    fn diff_lines(&self, path: &Path, before: Option<&Prior>, after: &[u8]) -> Vec<String> {
        use fixer::diff::Line;
        fixer::diff::of_prior(path, before, after, &self.masker)
            .into_iter()
            .map(|line| {
                let style = match &line {
                    Line::Header(_) => BOLD,
                    Line::Added(_) => GREEN,
                    Line::Removed(_) => RED,
                    Line::Hunk(_) => CYAN,
                    Line::Context(_) | Line::Note(_) => "",
                };
                let text = line.text();
                if style.is_empty() {
                    text
                } else {
                    self.paint(style, &text)
                }
            })
            .collect()
    }

    fn attr_text(before: Option<&Meta>, attrs: &Attrs) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(m) = attrs.mode {
            parts.push(match before {
                Some(b) => format!("mode {:04o} -> {m:04o}", b.mode),
                None => format!("mode {m:04o}"),
            });
        }
        if let Some(u) = attrs.uid {
            parts.push(match before {
                Some(b) => format!("owner {} -> {u}", b.uid),
                None => format!("owner {u}"),
            });
        }
        if let Some(g) = attrs.gid {
            parts.push(match before {
                Some(b) => format!("group {} -> {g}", b.gid),
                None => format!("group {g}"),
            });
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    fn op_lines(&self, op: &Op, applied: bool) -> Vec<String> {
        match op {
            Op::Write {
                path,
                before,
                content,
                attrs,
            } => {
                let (old, new) = (before.as_ref().map(|(b, _)| b), content.as_slice());
                let mut lines = self.diff_lines(path, old, new);
                if let Some(a) = Self::attr_text(before.as_ref().map(|(_, m)| m), attrs) {
                    lines.push(format!("{}: {a}", path.display()));
                }
                lines
            }
            Op::Mkdir { path, attrs } => {
                let extra = Self::attr_text(None, attrs)
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default();
                vec![self.paint(
                    GREEN,
                    &format!("create directory {}{extra}", path.display()),
                )]
            }
            Op::SetMeta {
                path,
                before,
                attrs,
            } => {
                vec![format!(
                    "{}: {}",
                    path.display(),
                    Self::attr_text(Some(before), attrs).unwrap_or_default()
                )]
            }
            Op::Remove { path, before } => {
                let what = match before.kind {
                    fixer::host::FileKind::Dir => "directory and everything in it",
                    fixer::host::FileKind::Symlink => "symlink",
                    _ => "file",
                };
                vec![self.paint(
                    RED,
                    &format!("remove {} ({what}; kept for rollback)", path.display()),
                )]
            }
            Op::Run {
                display, reason, ..
            } => {
                let verb = if applied { "ran" } else { "run" };
                vec![format!("{verb}: {display}"), format!("because: {reason}")]
            }
        }
    }

    fn op_json(&self, op: &Op) -> Value {
        match op {
            Op::Write {
                path,
                before,
                content,
                attrs,
            } => {
                let (old, new) = (before.as_ref().map(|(b, _)| b), content.as_slice());
                json!({
                    "op": "write", "path": path, "new": before.is_none(),
                    "diff": self.diff_lines_plain(path, old, new),
                    "mode": attrs.mode.map(|m| format!("{m:04o}")), "uid": attrs.uid, "gid": attrs.gid,
                })
            }
            Op::Mkdir { path, attrs } => json!({
                "op": "mkdir", "path": path, "mode": attrs.mode.map(|m| format!("{m:04o}")), "uid": attrs.uid, "gid": attrs.gid,
            }),
            Op::SetMeta {
                path,
                before,
                attrs,
            } => json!({
                "op": "set_meta", "path": path,
                "before": {"mode": format!("{:04o}", before.mode), "uid": before.uid, "gid": before.gid},
                "mode": attrs.mode.map(|m| format!("{m:04o}")), "uid": attrs.uid, "gid": attrs.gid,
            }),
            Op::Remove { path, before } => {
                json!({"op": "remove", "path": path, "kind": before.kind})
            }
            Op::Run {
                display, reason, ..
            } => json!({"op": "run", "command": display, "reason": reason}),
        }
    }

    fn diff_lines_plain(&self, path: &Path, before: Option<&Prior>, after: &[u8]) -> String {
        let plain = Printer {
            masker: self.masker.clone(),
            ..Printer::new(self.format, false, self.verbosity)
        };
        plain.diff_lines(path, before, after).join("\n")
    }

    fn change_json(&self, c: &Change) -> Value {
        json!({
            "id": c.id,
            "type": c.kind,
            // A check changes nothing; it is not "unchanged" either.
            "action": if c.check { json!("check") } else { json!(c.action()) },
            "operations": c.delta.ops.iter().map(|o| self.op_json(o)).collect::<Vec<_>>(),
            "notes": c.delta.notes.iter().chain(&c.delta.warnings).collect::<Vec<_>>(),
        })
    }

    fn summary_line(s: &Summary) -> String {
        format!(
            "{} to add, {} to change, {} to remove, {} unchanged{}.",
            s.add,
            s.change,
            s.remove,
            s.unchanged,
            Self::checks(s)
        )
    }

    /// `; 1 check` after the counts of a summary that ran any.
    fn checks(s: &Summary) -> String {
        match s.checks {
            0 => String::new(),
            1 => "; 1 check".into(),
            n => format!("; {n} checks"),
        }
    }

    pub fn plan_footer(&mut self, o: &PlanOutcome, root: Option<&Path>) {
        for w in &o.warnings {
            self.warn(w);
        }
        for run in &o.interrupted {
            self.warn(&format!(
                "run {} ({}) on this target was interrupted before it finished; roll it back with `{}`",
                run.id,
                run.playbook,
                self.hint(&run.id, root)
            ));
        }
        match self.format {
            Format::Json => {
                for h in &o.handlers {
                    let v = self.change_json(h);
                    self.json_handlers.push(v);
                }
                let mut v = self.header.clone();
                v["resources"] = Value::Array(std::mem::take(&mut self.json_resources));
                v["handlers"] = Value::Array(std::mem::take(&mut self.json_handlers));
                v["summary"] = json!(o.summary);
                v["changes"] = json!(o.has_changes());
                v["interrupted_runs"] =
                    json!(o.interrupted.iter().map(|r| &r.id).collect::<Vec<_>>());
                v["warnings"] = json!(o.warnings);
                self.emit_json(&v);
            }
            Format::Text => {
                for h in &o.handlers {
                    self.handler(h, false);
                }
                if !o.has_changes() && !self.quiet() {
                    self.out("No changes: the target matches the playbook.");
                }
                self.out(&self.paint(BOLD, &format!("Plan: {}", Self::summary_line(&o.summary))));
            }
        }
    }

    pub fn applied(&mut self, o: &ApplyOutcome, root: Option<&Path>) {
        let s = &o.summary;
        match self.format {
            Format::Json => {
                let mut v = self.header.clone();
                v["run"] = json!(o.run.id);
                v["status"] = json!(o.run.status);
                v["resources"] = Value::Array(std::mem::take(&mut self.json_resources));
                v["handlers"] = Value::Array(std::mem::take(&mut self.json_handlers));
                v["summary"] = json!(s);
                self.emit_json(&v);
            }
            Format::Text => {
                if !s.has_changes() && o.run.changes == 0 && !self.quiet() {
                    self.out("No changes: the target already matches the playbook.");
                }
                self.out(&self.paint(
                    BOLD,
                    &format!(
                        "Apply complete: {} added, {} changed, {} removed, {} unchanged{}.",
                        s.add,
                        s.change,
                        s.remove,
                        s.unchanged,
                        Self::checks(s)
                    ),
                ));
                if o.run.changes > 0 {
                    self.out(&format!(
                        "Run {} recorded; undo it with `{}`.",
                        o.run.id,
                        self.hint(&o.run.id, root)
                    ));
                }
            }
        }
    }

    pub fn rolled_back(&self, r: &RunRecord, report: &RollbackReport) {
        match self.format {
            Format::Json => self.emit_json(&json!({
                "run": r.id, "playbook": r.playbook, "status": r.status,
                "undone": report.undone, "failures": report.failures, "not_undoable": report.not_undoable,
            })),
            Format::Text => {
                for n in &report.not_undoable {
                    self.warn(n);
                }
                if report.complete() {
                    self.out(&format!(
                        "Rolled back run {} (playbook `{}`): {} undone.",
                        r.id,
                        r.playbook,
                        count(report.undone, "change")
                    ));
                } else {
                    for f in &report.failures {
                        self.diag(&format!("error: {f}"));
                    }
                    self.diag(&format!(
                        "error: rollback of run {} is incomplete ({} undone, {} failed); fix the cause and run `{}` again",
                        r.id,
                        report.undone,
                        report.failures.len(),
                        self.hint(&r.id, None)
                    ));
                }
            }
        }
    }

    pub fn pruned(&self, p: &fixer::journal::Pruned, dry_run: bool) {
        if self.format == Format::Json {
            self.emit_json(&json!({
                "dry_run": dry_run,
                "pruned": p.pruned,
                "kept": p.kept,
                "staging": p.staging,
            }));
            return;
        }
        let verb = if dry_run { "Would delete" } else { "Deleted" };
        if !self.quiet() {
            for id in &p.pruned {
                self.out(&format!("{verb} run {id}"));
            }
            for name in &p.staging {
                self.out(&format!("{verb} {name} (a run killed while starting)"));
            }
        }
        let runs = match p.pruned.len() {
            1 => "1 run with its backups".to_string(),
            n => format!("{n} runs with their backups"),
        };
        self.out(&format!("{verb} {runs}; {} kept.", p.kept.len()));
    }

    pub fn history(&self, runs: &[RunRecord], busy: bool) {
        let status = |r: &RunRecord| r.status.describe(!busy).to_string();
        // The same names as `apply` and `rollback` print (docs/json.md),
        // plus `interrupted`.
        let status_key = |r: &RunRecord| match r.status {
            fixer::journal::Status::Running if !busy => json!("interrupted"),
            fixer::journal::Status::RollingBack if !busy => json!("rollback_interrupted"),
            s => json!(s),
        };
        match self.format {
            Format::Json => self.emit_json(&json!(runs
                .iter()
                .map(
                    |r| json!({"id": r.id, "playbook": r.playbook, "started": r.started,
                    "finished": r.finished, "status": status_key(r), "changes": r.changes})
                )
                .collect::<Vec<_>>())),
            Format::Text => {
                if runs.is_empty() {
                    self.out("No runs recorded on this target.");
                    return;
                }
                self.out(&format!(
                    "{:<24} {:<20} {:>7}  {:<28} PLAYBOOK",
                    "RUN", "STATUS", "CHANGES", "STARTED"
                ));
                for r in runs.iter().rev() {
                    self.out(&format!(
                        "{:<24} {:<20} {:>7}  {:<28} {}",
                        r.id,
                        status(r),
                        r.changes,
                        r.started,
                        r.playbook
                    ));
                }
            }
        }
    }

    /// `text` with every command it suggests (`` `fixer rollback ID` ``)
    /// naming the target this run acts on: pasted as it stands, a hint
    /// without `--root` or `--host` would act on this machine instead.
    fn with_target(&self, text: &str) -> String {
        // The commands that act on a target; report, init, diagnose... do not.
        const TARGETED: [&str; 6] = ["rollback", "history", "plan", "apply", "fix", "prune"];
        let Some(flag) = &self.target_flag else {
            return text.to_string();
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("`fixer ") {
            let (before, after) = rest.split_at(start + 1);
            out.push_str(before);
            let Some(end) = after.find('`') else {
                break;
            };
            let command = &after[..end];
            out.push_str(command);
            let verb = command.split_whitespace().nth(1).unwrap_or("");
            if TARGETED.contains(&verb) && !command.contains(flag.as_str()) {
                out.push(' ');
                out.push_str(flag);
            }
            rest = &after[end..];
        }
        out.push_str(rest);
        out
    }

    /// Commands suggested to the user name the target as `flag` (`--root
    /// /mnt/image`); set for a local run with --root.
    pub fn set_target_flag(&mut self, flag: String) {
        self.target_flag = Some(flag);
    }

    pub fn error(&self, e: &Error) {
        let mut text = format!("error: {e}");
        if let Error::ApplyFailed { run, rollback, .. } = e {
            for n in &rollback.not_undoable {
                text.push_str(&format!("\nwarning: {n}"));
            }
            if let (false, Some(t)) = (rollback.complete(), rollback.host_restores_in) {
                text.push_str(&format!(
                    "\nThe connection was lost: the host restores run {run} by itself within {} s of the apply's start (commit-confirmed).",
                    t.as_secs()
                ));
            } else if rollback.complete() {
                text.push_str(&format!(
                    "\nRolled back run {run}: {} undone; the target is as it was before this apply.",
                    count(rollback.undone, "change")
                ));
            } else {
                for f in &rollback.failures {
                    text.push_str(&format!("\nerror: could not undo {f}"));
                }
                text.push_str(&format!(
                    "\nROLLBACK INCOMPLETE for run {run}: {} undone, {} failed. Fix the cause, then run `{}`.",
                    rollback.undone,
                    rollback.failures.len(),
                    self.hint(run, None)
                ));
            }
        }
        let text = self.masker.mask(&self.with_target(&text));
        match self.format {
            Format::Json => {
                let d = e.details();
                let mut v = json!({"error": {
                    "kind": d.kind,
                    "file": d.file,
                    "line": d.line,
                    "column": d.column,
                    "field": d.field,
                    "host": d.host,
                    "path": d.path,
                    "playbook": d.playbook,
                    "resource": d.resource,
                    "message": text.strip_prefix("error: ").unwrap_or(&text),
                }});
                if let Error::ApplyFailed { run, rollback, .. } = e {
                    v["run"] = json!(run);
                    v["rolled_back"] = json!(rollback.complete());
                }
                self.emit_json(&v);
            }
            Format::Text => self.diag(&text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_commands_name_the_target_once_and_only_where_they_act_on_one() {
        let mut p = Printer::new(Format::Text, false, Verbosity::Normal);
        let text = "roll it back with `fixer rollback 7`, then `fixer report DIR`; \
                    `fixer rollback 7 --force --root /mnt/img` and `fixer history` or `fixer";
        assert_eq!(p.with_target(text), text, "no target: unchanged");
        p.set_target_flag("--root /mnt/img".into());
        assert_eq!(
            p.with_target(text),
            "roll it back with `fixer rollback 7 --root /mnt/img`, then `fixer report DIR`; \
             `fixer rollback 7 --force --root /mnt/img` and `fixer history --root /mnt/img` or `fixer"
        );
    }
}

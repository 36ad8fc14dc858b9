//! From an error log to the playbooks that fix it. All knowledge lives in
//! the playbooks' `[[symptom]]`s (and their counter-evidence); this module
//! reads the log the way a person would ([`log`]), weighs what matched,
//! ranks the playbooks, and reads the values the log names.

mod log;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::playbook::{Overrides, Playbook, Symptom};
pub use log::{ReadError, READ_LINES, REFLOW_MAX_LINES};

/// How sure diagnose must be to answer with a playbook: below it a
/// remedy is only "possible", and the answer is "no known remedy".
pub const ANSWER: f64 = 0.5;

/// Where the log comes from.
pub enum Input<'a> {
    Path(&'a Path),
    /// Spooled to a temporary file first: the log is read twice.
    Stdin,
    Bytes(&'a [u8]),
}

/// Playbooks that declare symptoms, read from directories.
pub struct Catalog {
    pub playbooks: Vec<Playbook>,
    /// Files that could not be loaded, with why: reported, not fatal.
    pub skipped: Vec<(PathBuf, Error)>,
    /// The directories read, in order.
    pub dirs: Vec<PathBuf>,
}

impl Catalog {
    /// Every `*.toml` in `dirs` (not recursive). A later playbook with the
    /// name of an earlier one replaces it, so a user's copy in
    /// ~/.config/fixer/playbooks wins over the shipped one. `required` dirs
    /// must exist; the others are skipped when missing.
    pub fn load(dirs: &[PathBuf], required: bool) -> Result<Catalog, Error> {
        let mut catalog = Catalog {
            playbooks: Vec::new(),
            skipped: Vec::new(),
            dirs: Vec::new(),
        };
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(Error::Read {
                        path: dir.clone(),
                        source,
                    })
                }
            };
            catalog.dirs.push(dir.clone());
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                .collect();
            files.sort();
            for file in files {
                match Playbook::load(&file, &Overrides::default()) {
                    Ok(pb) => {
                        catalog.playbooks.retain(|p| p.name != pb.name);
                        catalog.playbooks.push(pb);
                    }
                    Err(e) => catalog.skipped.push((file, e)),
                }
            }
        }
        Ok(catalog)
    }
}

/// One line of the log, and what matched it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// 1-based line number where the match starts.
    pub line: usize,
    /// The line (or the rejoined lines) that matched.
    pub text: String,
    /// Where in `text` the most confident pattern matched (bytes).
    pub matched: std::ops::Range<usize>,
    /// What the matching symptoms mean (descriptions, else patterns),
    /// most confident first: one line is shown once, however many
    /// symptoms describe it.
    pub symptoms: Vec<String>,
}

/// Counter-evidence found in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Against {
    pub line: usize,
    pub text: String,
    /// Why it speaks against the playbook.
    pub meaning: String,
    /// 0: it vetoed the symptoms it is declared against.
    pub factor: f64,
}

/// A value read from the log for a variable, and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Two symptoms of one playbook that call for different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub name: String,
    /// (value, line) of the one taken, and of the one set aside.
    pub taken: (String, usize),
    pub other: (String, usize),
}

/// A playbook that fixes what the log shows.
#[derive(Debug, Clone)]
pub struct Remedy {
    pub playbook: String,
    pub path: PathBuf,
    pub description: Option<String>,
    /// The category of the most confident matching symptom, if it has one.
    pub category: Option<String>,
    /// In [0, 1]: symptoms combined as independent evidence, each scaled
    /// by its counter-evidence (0: every one of them vetoed).
    pub confidence: f64,
    /// `--var` values read from the log (and implied by the symptoms), with
    /// the line each came from.
    pub values: Vec<Value>,
    /// The playbook's other variables and the defaults they keep
    /// (sensitive ones masked); not those read from the target.
    pub defaults: Vec<(String, String)>,
    /// Variables read from the target when planned (`discover`).
    pub discovered: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub against: Vec<Against>,
    pub conflicts: Vec<Conflict>,
    /// A symptom of it names a fix needed besides the rest.
    pub also: bool,
}

impl Remedy {
    /// The values as `--var` pairs.
    pub fn vars(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect()
    }

    /// The `fixer plan` command line to run, quoted for a POSIX shell.
    pub fn command(&self) -> String {
        let mut line = format!(
            "fixer plan {}",
            crate::host::shell::quote(&self.path.display().to_string())
        );
        for v in &self.values {
            line.push_str(" --var ");
            line.push_str(&crate::host::shell::quote(&format!(
                "{}={}",
                v.name, v.value
            )));
        }
        line
    }

    pub fn answers(&self) -> bool {
        self.confidence >= ANSWER
    }
}

/// The answer for one log.
#[derive(Debug)]
pub struct Diagnosis {
    pub lines: usize,
    /// Every playbook something matched, best first; those below
    /// [`ANSWER`] are only possible.
    pub remedies: Vec<Remedy>,
    /// The last lines that look like errors (for "no known remedy").
    pub error_lines: Vec<(usize, String)>,
}

impl Diagnosis {
    /// The remedies diagnose answers with (none: no known remedy).
    pub fn answers(&self) -> impl Iterator<Item = &Remedy> {
        self.remedies.iter().filter(|r| r.answers())
    }

    /// The playbooks `fixer fix` applies: the best one, each other answer
    /// that explains a line no better one explains, and each one named as
    /// also needed. An alternative explanation of the same lines (go can
    /// reach no proxy because DNS is broken) is not applied.
    pub fn chosen(&self) -> Vec<&Remedy> {
        let mut taken: Vec<usize> = Vec::new();
        let mut out = Vec::new();
        for r in self.answers() {
            let new_line = r.evidence.iter().any(|e| !taken.contains(&e.line));
            if out.is_empty() || new_line || r.also {
                taken.extend(r.evidence.iter().map(|e| e.line));
                out.push(r);
            }
        }
        out
    }
}

/// Which pattern of the scan each thing of a playbook is.
struct Indexes {
    /// Per symptom: its pattern, and its counters' patterns.
    symptoms: Vec<(usize, Vec<usize>)>,
    /// Per variable with `from_log`: its name and patterns.
    values: Vec<(String, Vec<usize>)>,
}

/// Read `input` and diagnose it against `catalog`, in constant memory.
pub fn read(input: Input<'_>, catalog: &Catalog) -> Result<Diagnosis, ReadError> {
    let mut patterns: Vec<&regex::Regex> = Vec::new();
    let mut indexes = Vec::new();
    for pb in &catalog.playbooks {
        let mut ix = Indexes {
            symptoms: Vec::new(),
            values: Vec::new(),
        };
        for s in &pb.symptoms {
            let at = patterns.len();
            patterns.push(&s.regex);
            let mut cs = Vec::new();
            for c in &s.counters {
                cs.push(patterns.len());
                patterns.push(&c.regex);
            }
            ix.symptoms.push((at, cs));
        }
        for (name, var) in pb.vars.iter() {
            if var.from_log.is_empty() {
                continue;
            }
            let mut ps = Vec::new();
            for re in &var.from_log {
                ps.push(patterns.len());
                patterns.push(re);
            }
            ix.values.push((name.to_string(), ps));
        }
        indexes.push(ix);
    }
    let set = regex::RegexSet::new(patterns.iter().map(|r| r.as_str()))
        .map_err(|e| ReadError::Io(std::io::Error::other(e.to_string())))?;
    let spool;
    let scan = match input {
        Input::Bytes(bytes) => {
            let owned = bytes.to_vec();
            log::scan(
                &move || {
                    Ok(Box::new(std::io::Cursor::new(owned.clone())) as Box<dyn std::io::BufRead>)
                },
                &patterns,
                &set,
            )?
        }
        Input::Path(path) => {
            let path = path.to_path_buf();
            log::scan(&move || open(&path), &patterns, &set)?
        }
        Input::Stdin => {
            spool = tempfile::NamedTempFile::new()?;
            std::io::copy(&mut std::io::stdin().lock(), &mut spool.as_file())?;
            let path = spool.path().to_path_buf();
            log::scan(&move || open(&path), &patterns, &set)?
        }
    };
    Ok(diagnose(&scan, catalog, &indexes))
}

fn open(path: &Path) -> std::io::Result<Box<dyn std::io::BufRead>> {
    Ok(Box::new(std::io::BufReader::with_capacity(
        256 * 1024,
        std::fs::File::open(path)?,
    )))
}

/// Weigh what matched, playbook by playbook, and rank them.
///
/// A symptom's confidence is scaled by each of its counter-evidence found
/// anywhere in the log (0: vetoed). A playbook's confidence combines its
/// matching lines as independent evidence, 1 - (1 - c1)(1 - c2)..., each
/// line counted once with its most confident symptom; ties go to the
/// playbook with more evidence, then by name, so the answer is stable.
fn diagnose(scan: &log::Scan, catalog: &Catalog, indexes: &[Indexes]) -> Diagnosis {
    let mut remedies = Vec::new();
    for (pb, ix) in catalog.playbooks.iter().zip(indexes) {
        // (symptom, where it matched, its confidence after counters)
        let mut found: Vec<(&Symptom, &log::Found, f64)> = Vec::new();
        let mut against: Vec<Against> = Vec::new();
        for (s, (at, cs)) in pb.symptoms.iter().zip(&ix.symptoms) {
            let Some(f) = scan.found[*at].as_ref() else {
                continue;
            };
            let mut confidence = s.confidence * f.weight;
            for (c, ci) in s.counters.iter().zip(cs) {
                if let Some(cf) = scan.found[*ci].as_ref() {
                    confidence *= c.factor;
                    let hit = Against {
                        line: cf.line,
                        text: cf.text.clone(),
                        meaning: c.description.clone().unwrap_or_else(|| c.pattern.clone()),
                        factor: c.factor,
                    };
                    if !against.contains(&hit) {
                        against.push(hit);
                    }
                }
            }
            // Kept when vetoed: the log showed it, and why it does not count.
            found.push((s, f, confidence));
        }
        if found.is_empty() {
            continue;
        }
        found.sort_by(|a, b| b.2.total_cmp(&a.2));
        // The most confident symptom sets the values. Another one adds
        // evidence unless its fixed values contradict them (an https
        // failure and an SSH failure do not support one rewrite), and adds
        // values only from the same line: two lines may be two incidents
        // (root's module cache, deploy's build cache).
        let mut values: BTreeMap<String, (String, usize)> = BTreeMap::new();
        let mut conflicts = Vec::new();
        let mut lines: Vec<(usize, f64)> = Vec::new();
        let mut evidence: Vec<Evidence> = Vec::new();
        // The lines each piece of evidence spans.
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let overlap = |a: (usize, usize), b: (usize, usize)| a.0 <= b.1 && b.0 <= a.1;
        // Values come from one line: the most confident one that gives any.
        let first_line = found
            .iter()
            .find(|(s, f, _)| !f.captures.is_empty() || !fixed_vars(s, f).is_empty())
            .map(|(_, f, _)| f.span);
        let masker = pb.masker();
        for (s, f, confidence) in &found {
            let fixed = fixed_vars(s, f);
            let clash = fixed.iter().find_map(|(k, v)| {
                values
                    .get(k)
                    .filter(|(have, _)| have != v)
                    .map(|(have, line)| (k.clone(), have.clone(), *line, v.clone()))
            });
            if let Some((name, have, line, other)) = clash {
                conflicts.push(Conflict {
                    name,
                    taken: (have, line),
                    other: (other, f.line),
                });
                continue;
            }
            if first_line.is_some_and(|l| overlap(l, f.span)) {
                for (k, v) in f.captures.iter().chain(fixed.iter()) {
                    values
                        .entry(k.clone())
                        .or_insert_with(|| (v.clone(), f.line));
                }
            }
            let meaning = s.description.clone().unwrap_or_else(|| s.pattern.clone());
            let same = spans.iter().position(|s| overlap(*s, f.span));
            match same.and_then(|i| evidence.get_mut(i)) {
                Some(e) => {
                    if !e.symptoms.contains(&meaning) {
                        e.symptoms.push(meaning);
                    }
                }
                None => {
                    spans.push(f.span);
                    evidence.push(Evidence {
                        line: f.line,
                        text: masker.mask(&f.text),
                        matched: f.matched.clone(),
                        symptoms: vec![meaning],
                    })
                }
            }
            // One message is one piece of evidence, however many patterns
            // describe it: its most confident one (sorted first).
            if same.is_none() {
                lines.push((f.line, *confidence));
            }
        }
        // Values the playbook reads from the log without them being
        // evidence (`from_log`): for variables no symptom gave.
        for (name, ps) in &ix.values {
            if values.contains_key(name) {
                continue;
            }
            let first = ps
                .iter()
                .filter_map(|p| scan.found[*p].as_ref())
                .min_by_key(|f| f.line);
            if let Some(f) = first {
                if let Some((_, v)) = f.captures.iter().find(|(k, _)| k == name) {
                    values.insert(name.clone(), (v.clone(), f.line));
                }
            }
        }
        let doubt: f64 = lines.iter().map(|(_, c)| 1.0 - c).product();
        let discovered = pb
            .vars
            .iter()
            .filter(|(k, v)| !values.contains_key(*k) && !v.discover.is_empty())
            .map(|(k, _)| k.to_string())
            .collect();
        let defaults = pb
            .vars
            .iter()
            .filter(|(k, v)| !values.contains_key(*k) && v.discover.is_empty())
            .map(|(k, var)| {
                let v = match &var.value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.to_string(), masker.mask(&v))
            })
            .collect();
        remedies.push(Remedy {
            playbook: pb.name.clone(),
            path: pb.path.clone(),
            description: pb.description.clone(),
            category: found.iter().find_map(|(s, _, _)| s.category.clone()),
            confidence: 1.0 - doubt,
            values: values
                .into_iter()
                .map(|(name, (value, line))| Value { name, value, line })
                .collect(),
            defaults,
            discovered,
            evidence,
            against,
            conflicts,
            also: found.iter().any(|(s, _, c)| s.also && *c >= ANSWER),
        });
    }
    // Rounded, so that float noise does not decide a tie.
    let rounded = |c: f64| (c * 1e6).round() as i64;
    remedies.sort_by(|a, b| {
        rounded(b.confidence)
            .cmp(&rounded(a.confidence))
            .then(b.evidence.len().cmp(&a.evidence.len()))
            .then(a.playbook.cmp(&b.playbook))
    });
    Diagnosis {
        lines: scan.lines,
        remedies,
        error_lines: scan.error_lines.clone(),
    }
}

/// A symptom's fixed values, with `{{name}}` replaced by what `name`
/// captured (`group = "{{user}}"`); a value whose capture took no part in
/// the match is left out.
fn fixed_vars(s: &Symptom, f: &log::Found) -> Vec<(String, String)> {
    s.vars
        .iter()
        .filter_map(|(k, template)| {
            let filled = f.captures.iter().fold(template.clone(), |acc, (name, v)| {
                acc.replace(&format!("{{{{{name}}}}}"), v)
            });
            (!filled.contains("{{")).then(|| (k.clone(), filled))
        })
        .collect()
}

/// Where playbooks are looked for when `--playbooks` is not given: the
/// shipped ones (installed under `<prefix>/share/fixer/playbooks` next to
/// the binary, else the source tree's), then the user's own.
pub fn default_dirs(home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .map(|prefix| prefix.join("share/fixer/playbooks"));
    match installed {
        Some(d) if d.is_dir() => dirs.push(d),
        _ => dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks")),
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".config")));
    if let Some(c) = config {
        dirs.push(c.join("fixer/playbooks"));
    }
    dirs
}

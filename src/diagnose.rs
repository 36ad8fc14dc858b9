//! From an error log to the playbooks that fix it. All knowledge lives in
//! the playbooks' `[[symptom]]`s; this module only reads the log the way a
//! person would (colours and carriage returns removed, wrapped lines
//! rejoined), matches, ranks and fills in the variables the log names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::playbook::{Overrides, Playbook, Symptom};

/// How many physical lines a wrapped message may span.
const MAX_WRAP: usize = 8;
/// A match that needed wrapped lines rejoined counts for a little less.
const REJOINED: f64 = 0.9;

/// An error log, cleaned for matching.
pub struct Log {
    lines: Vec<String>,
    /// The longest line, in characters: a terminal's width when the log
    /// was hard-wrapped.
    width: usize,
}

impl Log {
    /// Clean raw bytes: invalid UTF-8 replaced, ANSI escapes removed, CRLF
    /// and bare CR (progress redraws) turned into line ends.
    pub fn parse(bytes: &[u8]) -> Log {
        let text = String::from_utf8_lossy(bytes);
        let text = strip_ansi(&text);
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        Log { lines, width }
    }

    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// Lines that look like errors (for "no known remedy": what was read).
    pub fn error_lines(&self, max: usize) -> Vec<(usize, &str)> {
        static WORDS: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
            regex::Regex::new(
                r"(?i)\b(error|fatal|failed|denied|cannot|can't|unable|timeout|timed out|refused|invalid|mismatch|missing|not found|no such|unknown|undefined|panic|gone|unreachable|requires|exit status)\b",
            )
            .ok()
        });
        let Some(words) = WORDS.as_ref() else {
            return Vec::new();
        };
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| words.is_match(l))
            .take(max)
            .map(|(i, l)| (i + 1, l.trim_end()))
            .collect()
    }

    /// The first match of `symptom`: on one line if it can, else on up to
    /// [`MAX_WRAP`] consecutive lines rejoined, as they were before a
    /// terminal wrapped them (joined as they are) or a web page re-flowed
    /// them at word boundaries (joined by a space).
    fn find(&self, symptom: &Symptom) -> Option<Found> {
        for (i, line) in self.lines.iter().enumerate() {
            if let Some(c) = symptom.regex.captures(line) {
                if let Some(found) = c.get(0).and_then(|m| self.unwrap(symptom, i, &m)) {
                    return Some(found);
                }
                return Some(Found::new(&c, &symptom.regex, i, line.trim_end(), 1.0));
            }
        }
        for i in 0..self.lines.len().saturating_sub(1) {
            let window = &self.lines[i..(i + MAX_WRAP).min(self.lines.len())];
            for separator in ["", " "] {
                // Where each line starts in the joined text.
                let mut starts = Vec::with_capacity(window.len());
                let mut joined = String::new();
                for (n, line) in window.iter().enumerate() {
                    if n > 0 {
                        joined.push_str(separator);
                    }
                    starts.push(joined.len());
                    joined.push_str(if separator.is_empty() {
                        line
                    } else {
                        line.trim()
                    });
                }
                if let Some(c) = symptom.regex.captures(&joined) {
                    let (at, end) = c.get(0).map_or((0, 0), |m| (m.start(), m.end()));
                    let first = starts.iter().rposition(|s| *s <= at).unwrap_or(0);
                    let from = starts.get(first).copied().unwrap_or(0);
                    // Up to the end of the line where the match ends.
                    let to = starts
                        .iter()
                        .copied()
                        .find(|s| *s > end)
                        .map_or(joined.len(), |s| s - separator.len());
                    return Some(Found::new(
                        &c,
                        &symptom.regex,
                        i + first,
                        joined.get(from..to).unwrap_or(&joined),
                        REJOINED,
                    ));
                }
            }
        }
        None
    }
}

impl Log {
    /// A match that touches the start of line `i` after full-width lines,
    /// or its end when line `i` is full width, may have lost part of itself
    /// to a terminal's wrap: match again on those lines joined.
    fn unwrap(&self, symptom: &Symptom, i: usize, m: &regex::Match<'_>) -> Option<Found> {
        const NARROWEST_TERMINAL: usize = 40;
        if self.width < NARROWEST_TERMINAL {
            return None;
        }
        let full = |n: usize| {
            self.lines
                .get(n)
                .is_some_and(|l| l.chars().count() == self.width)
        };
        let (mut first, mut last) = (i, i);
        if m.start() == 0 {
            while first > 0 && i - first < MAX_WRAP && full(first - 1) {
                first -= 1;
            }
        }
        if m.end() == self.lines.get(i)?.len() {
            while last + 1 < self.lines.len() && last - i < MAX_WRAP && full(last) {
                last += 1;
            }
        }
        if (first, last) == (i, i) {
            return None;
        }
        let joined = self.lines.get(first..=last)?.concat();
        let c = symptom.regex.captures(&joined)?;
        Some(Found::new(&c, &symptom.regex, first, &joined, REJOINED))
    }
}

/// Remove ANSI escape sequences (CSI such as colours, OSC such as titles).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final byte @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            // Two-character escapes (ESC c, ESC =, ...).
            _ => {}
        }
    }
    out
}

struct Found {
    line: usize,
    text: String,
    matched: std::ops::Range<usize>,
    captures: Vec<(String, String)>,
    weight: f64,
}

impl Found {
    fn new(
        c: &regex::Captures<'_>,
        re: &regex::Regex,
        index: usize,
        text: &str,
        weight: f64,
    ) -> Found {
        let captures = re
            .capture_names()
            .flatten()
            .filter_map(|name| {
                let value = c.name(name)?.as_str().trim();
                (!value.is_empty()).then(|| (name.to_string(), value.to_string()))
            })
            .collect();
        let matched = c
            .get(0)
            .and_then(|m| text.find(m.as_str()).map(|at| at..at + m.len()))
            .unwrap_or(0..0);
        Found {
            line: index + 1,
            text: text.to_string(),
            matched,
            captures,
            weight,
        }
    }
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

/// One line of the log that a symptom matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// 1-based line number where the match starts.
    pub line: usize,
    /// The line (or the rejoined lines) that matched.
    pub text: String,
    /// Where in `text` the pattern matched (bytes).
    pub matched: std::ops::Range<usize>,
    /// The symptom's description, else its pattern.
    pub symptom: String,
}

/// A playbook that fixes what the log shows.
#[derive(Debug, Clone)]
pub struct Remedy {
    pub playbook: String,
    pub path: PathBuf,
    pub description: Option<String>,
    /// The category of the most confident matching symptom, if it has one.
    pub category: Option<String>,
    /// In (0, 1]: symptoms combined as independent evidence.
    pub confidence: f64,
    /// `--var` values read from the log (and implied by the symptoms).
    pub vars: Vec<(String, String)>,
    /// The playbook's other variables and the defaults they keep
    /// (sensitive ones masked).
    pub defaults: Vec<(String, String)>,
    pub evidence: Vec<Evidence>,
}

impl Remedy {
    /// The `fixer plan` command line to run, quoted for a POSIX shell.
    pub fn command(&self) -> String {
        let mut line = format!(
            "fixer plan {}",
            crate::host::shell::quote(&self.path.display().to_string())
        );
        for (k, v) in &self.vars {
            line.push_str(" --var ");
            line.push_str(&crate::host::shell::quote(&format!("{k}={v}")));
        }
        line
    }
}

/// The answer for one log: remedies, best first (empty: no known remedy).
#[derive(Debug)]
pub struct Diagnosis {
    pub lines: usize,
    pub remedies: Vec<Remedy>,
}

/// Match every playbook's symptoms against `log` and rank the playbooks.
///
/// A playbook's confidence combines its matching symptoms as independent
/// evidence: 1 - (1 - c1)(1 - c2)...; ties go to the playbook with more
/// matching symptoms, then by name, so the answer is stable.
pub fn diagnose(log: &Log, catalog: &Catalog) -> Diagnosis {
    let mut remedies = Vec::new();
    for pb in &catalog.playbooks {
        let mut found: Vec<(&Symptom, Found)> = pb
            .symptoms
            .iter()
            .filter_map(|s| log.find(s).map(|f| (s, f)))
            .collect();
        if found.is_empty() {
            continue;
        }
        found.sort_by(|a, b| {
            (b.0.confidence * b.1.weight).total_cmp(&(a.0.confidence * a.1.weight))
        });
        let doubt: f64 = found
            .iter()
            .map(|(s, f)| 1.0 - s.confidence * f.weight)
            .product();
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        // Most confident symptom first: its values win.
        for (s, f) in &found {
            for (k, v) in &f.captures {
                vars.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &s.vars {
                vars.entry(k.clone())
                    .or_insert_with(|| fill_captures(v, &f.captures));
            }
        }
        let masker = pb.masker();
        let defaults = pb
            .vars
            .iter()
            .filter(|(k, _)| !vars.contains_key(*k))
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
            category: found.iter().find_map(|(s, _)| s.category.clone()),
            confidence: 1.0 - doubt,
            vars: vars.into_iter().collect(),
            defaults,
            evidence: found
                .iter()
                .map(|(s, f)| Evidence {
                    line: f.line,
                    text: f.text.clone(),
                    matched: f.matched.clone(),
                    symptom: s.description.clone().unwrap_or_else(|| s.pattern.clone()),
                })
                .collect(),
        });
    }
    remedies.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(b.evidence.len().cmp(&a.evidence.len()))
            .then(a.playbook.cmp(&b.playbook))
    });
    Diagnosis {
        lines: log.line_count(),
        remedies,
    }
}

/// A symptom's fixed value, with `{{name}}` replaced by what `name`
/// captured (`group = "{{user}}"`).
fn fill_captures(template: &str, captures: &[(String, String)]) -> String {
    captures.iter().fold(template.to_string(), |acc, (k, v)| {
        acc.replace(&format!("{{{{{k}}}}}"), v)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_read_as_a_person_sees_them() {
        let log = Log::parse(
            b"\x1b[1;31merror\x1b[0m: x\r\n\x1b]0;title\x07go: y\rprogress 50%\rdone\n\xffbad\n",
        );
        assert_eq!(
            log.lines,
            ["error: x", "go: y", "progress 50%", "done", "\u{fffd}bad"]
        );
        assert_eq!(log.width, 12);
    }

    #[test]
    fn captures_fill_symptom_vars() {
        let captures = [("user".to_string(), "deploy".to_string())];
        assert_eq!(
            fill_captures("{{user}}:{{user}}", &captures),
            "deploy:deploy"
        );
        assert_eq!(fill_captures("{{other}}", &captures), "{{other}}");
    }
}

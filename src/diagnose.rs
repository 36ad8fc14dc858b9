//! From an error log to the playbooks that fix it. All knowledge lives in
//! the playbooks' `[[symptom]]`s; this module only reads the log the way a
//! person would (colours and carriage returns removed, wrapped lines
//! rejoined), matches, ranks and fills in the variables the log names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::playbook::{Overrides, Playbook, Symptom};

/// How many lines a re-flowed message may span.
const MAX_REFLOW: usize = 8;
/// A match that needed re-flowed lines rejoined counts for a little less:
/// the join may bridge two separate messages.
const REJOINED: f64 = 0.9;
/// Logs narrower than this are not taken for terminal-wrapped.
const NARROWEST_TERMINAL: usize = 40;

/// An error log, cleaned for matching.
pub struct Log {
    /// What a terminal showed of each line of the file.
    lines: Vec<String>,
    /// Messages: a run of full-width lines joined with the line that ends
    /// it when the log was wrapped by a terminal, else one line each. Each
    /// keeps the file index of its lines' starts.
    logical: Vec<Logical>,
}

struct Logical {
    text: String,
    /// (byte offset in `text`, index of the file line starting there)
    starts: Vec<(usize, usize)>,
}

impl Logical {
    /// The file line (0-based) holding byte `at` of the text.
    fn line_at(&self, at: usize) -> usize {
        self.starts
            .iter()
            .rev()
            .find(|(offset, _)| *offset <= at)
            .map_or(0, |(_, line)| *line)
    }
}

/// Display columns of a line (tabs to the next multiple of 8).
fn columns(line: &str) -> usize {
    line.chars().fold(
        0,
        |col, c| if c == '\t' { col / 8 * 8 + 8 } else { col + 1 },
    )
}

impl Log {
    /// Clean raw bytes the way a terminal shows them: invalid UTF-8 and
    /// control characters replaced, escape sequences removed, and of a
    /// line redrawn with carriage returns (progress) only its last state.
    /// Line numbers stay those of the file.
    pub fn parse(bytes: &[u8]) -> Log {
        let text = String::from_utf8_lossy(bytes);
        let text = strip_ansi(&text);
        let lines: Vec<String> = text
            .split('\n')
            .map(|raw| {
                let raw = raw.strip_suffix('\r').unwrap_or(raw);
                let shown = raw.rsplit('\r').find(|part| !part.is_empty()).unwrap_or("");
                shown
                    .chars()
                    .map(|c| {
                        if c.is_control() && c != '\t' {
                            '\u{fffd}'
                        } else {
                            c
                        }
                    })
                    .collect()
            })
            .collect();
        let mut lines = lines;
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        let logical = Self::unwrap(&lines);
        Log { lines, logical }
    }

    /// Terminal wrap: when at least two lines are exactly as wide as the
    /// widest, those are cut lines; each run of them continues on the next
    /// line.
    fn unwrap(lines: &[String]) -> Vec<Logical> {
        let width = lines.iter().map(|l| columns(l)).max().unwrap_or(0);
        let full = |l: &String| columns(l) == width;
        let wrapped = width >= NARROWEST_TERMINAL && lines.iter().filter(|l| full(l)).count() >= 2;
        let mut out: Vec<Logical> = Vec::new();
        let mut open = false;
        for (i, line) in lines.iter().enumerate() {
            match out.last_mut() {
                Some(last) if open => {
                    last.starts.push((last.text.len(), i));
                    last.text.push_str(line);
                }
                _ => out.push(Logical {
                    text: line.clone(),
                    starts: vec![(0, i)],
                }),
            }
            open = wrapped && full(line);
        }
        out
    }

    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// Lines that look like errors, for "no known remedy": what was read.
    /// Presentation only; no remedy is inferred from these words.
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
        let matching: Vec<(usize, &str)> = self
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| words.is_match(l))
            .map(|(i, l)| (i + 1, l.trim_end()))
            .collect();
        // The last ones: go and git end with the cause.
        matching[matching.len().saturating_sub(max)..].to_vec()
    }

    /// The first match of `symptom`: in one message if it can (a line, or
    /// lines a terminal wrapped), else on up to [`MAX_REFLOW`] lines
    /// joined by spaces, as they were before a web page or a mail re-flowed
    /// them at word boundaries.
    fn find(&self, symptom: &Symptom) -> Option<Found> {
        for message in &self.logical {
            if let Some(c) = symptom.regex.captures(&message.text) {
                let at = c.get(0).map_or(0, |m| m.start());
                return Some(Found::new(
                    &c,
                    &symptom.regex,
                    message.line_at(at),
                    message.text.trim_end(),
                    1.0,
                ));
            }
        }
        if let Some(found) = self.find_across_one_wrap(symptom) {
            return Some(found);
        }
        // Re-flow is undone on the file's lines: a terminal-wrap join of
        // lines that were in fact re-flowed would have glued two words.
        for i in 0..self.lines.len().saturating_sub(1) {
            let window = self.lines.get(i..(i + MAX_REFLOW).min(self.lines.len()))?;
            let mut joined = Logical {
                text: String::new(),
                starts: Vec::new(),
            };
            for (n, line) in window.iter().enumerate() {
                if n > 0 {
                    joined.text.push(' ');
                }
                joined.starts.push((joined.text.len(), i + n));
                joined.text.push_str(line.trim());
            }
            if let Some(c) = symptom.regex.captures(&joined.text) {
                let (at, end) = c.get(0).map_or((0, 0), |m| (m.start(), m.end()));
                // The evidence: from the line where the match starts to the
                // end of the one where it ends.
                let from = joined
                    .starts
                    .iter()
                    .rev()
                    .find(|(o, _)| *o <= at)
                    .map_or(0, |(o, _)| *o);
                let to = joined
                    .starts
                    .iter()
                    .find(|(o, _)| *o > end)
                    .map_or(joined.text.len(), |(o, _)| o.saturating_sub(1));
                return Some(Found::new(
                    &c,
                    &symptom.regex,
                    joined.line_at(at),
                    joined.text.get(from..to).unwrap_or(&joined.text),
                    REJOINED,
                ));
            }
        }
        None
    }
}

impl Log {
    /// A log with a single wrapped line cannot be told from one whose
    /// longest line is just long, so its widest lines were not joined in
    /// advance. When nothing else matched, try each widest line joined with
    /// the next, keeping only a match that crosses the cut.
    fn find_across_one_wrap(&self, symptom: &Symptom) -> Option<Found> {
        let width = self.lines.iter().map(|l| columns(l)).max().unwrap_or(0);
        if width < NARROWEST_TERMINAL {
            return None;
        }
        for (i, pair) in self.lines.windows(2).enumerate() {
            let [line, next] = pair else { continue };
            if columns(line) != width {
                continue;
            }
            let joined = format!("{line}{next}");
            let Some(c) = symptom.regex.captures(&joined) else {
                continue;
            };
            if c.get(0)
                .is_some_and(|m| m.start() < line.len() && m.end() > line.len())
            {
                return Some(Found::new(&c, &symptom.regex, i, &joined, REJOINED));
            }
        }
        None
    }
}

/// Remove terminal escape sequences: CSI (colours, cursor), OSC (titles),
/// DCS/SOS/PM/APC strings, charset selections (`ESC ( B` from `tput
/// sgr0`) and the 8-bit CSI.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let csi = match c {
            '\u{9b}' => true,
            '\u{1b}' => false,
            _ => {
                out.push(c);
                continue;
            }
        };
        let kind = if csi { Some('[') } else { chars.next() };
        match kind {
            // CSI: parameters and intermediates, then one final byte @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // Strings, up to BEL or ST (ESC \).
            Some(']' | 'P' | 'X' | '^' | '_') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || c == '\u{9c}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            // ESC, intermediates (0x20..0x2F), then one final byte.
            Some(' '..='/') => {
                while chars.peek().is_some_and(|c| (' '..='/').contains(c)) {
                    chars.next();
                }
                chars.next();
            }
            // Two-character escapes (ESC c, ESC =, ESC 7...).
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
/// A playbook's confidence combines its matching lines as independent
/// evidence, 1 - (1 - c1)(1 - c2)..., each line counted once with its most
/// confident symptom; ties go to the playbook with more evidence, then by
/// name, so the answer is stable.
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
        // The most confident symptom sets the values. Another one adds
        // evidence unless its fixed values contradict them (an https
        // failure and an SSH failure do not support one rewrite), and adds
        // values only from the same line: two lines may be two incidents
        // (root's module cache, deploy's build cache).
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let mut counted: Vec<usize> = Vec::new();
        let mut doubt = 1.0;
        let mut kept: Vec<(&Symptom, &Found)> = Vec::new();
        let first_line = found.first().map(|(_, f)| f.line);
        for (s, f) in &found {
            let fixed = fixed_vars(s, f);
            if fixed
                .iter()
                .any(|(k, v)| vars.get(k).is_some_and(|have| have != v))
            {
                continue;
            }
            if Some(f.line) == first_line {
                for (k, v) in f.captures.iter().chain(fixed.iter()) {
                    vars.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            // One line is one piece of evidence, however many patterns
            // describe it.
            if !counted.contains(&f.line) {
                counted.push(f.line);
                doubt *= 1.0 - s.confidence * f.weight;
            }
            kept.push((s, f));
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
            category: kept.iter().find_map(|(s, _)| s.category.clone()),
            confidence: 1.0 - doubt,
            vars: vars.into_iter().collect(),
            defaults,
            evidence: kept
                .iter()
                .map(|(s, f)| Evidence {
                    line: f.line,
                    text: masker.mask(&f.text),
                    matched: f.matched.clone(),
                    symptom: s.description.clone().unwrap_or_else(|| s.pattern.clone()),
                })
                .collect(),
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
        lines: log.line_count(),
        remedies,
    }
}

/// A symptom's fixed values, with `{{name}}` replaced by what `name`
/// captured (`group = "{{user}}"`); a value whose capture took no part in
/// the match is left out.
fn fixed_vars(s: &Symptom, f: &Found) -> Vec<(String, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_read_as_a_terminal_shows_them() {
        let log = Log::parse(
            b"\x1b[1;31merror\x1b[0m: x\r\n\x1b]0;title\x07go: y\rprogress 50%\rdone\n\
              \xffbad\x08\n\x1b(B\x1b[mgit@h: no\n\xc2\x9b31mred\n",
        );
        assert_eq!(
            log.lines,
            [
                "error: x",
                "done",
                "\u{fffd}bad\u{fffd}",
                "git@h: no",
                "red"
            ]
        );
        assert_eq!(log.line_count(), 5);
    }

    #[test]
    fn terminal_wrapped_lines_become_one_message_with_file_line_numbers() {
        let wide = "a".repeat(50);
        let text = format!("short\n{wide}\n{wide}\nend\nlast\n");
        let log = Log::parse(text.as_bytes());
        let texts: Vec<&str> = log.logical.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["short", &format!("{wide}{wide}end"), "last"]);
        assert_eq!(log.logical[1].line_at(0), 1);
        assert_eq!(log.logical[1].line_at(100), 3);
        // One long line is not a wrap: it is only the longest.
        let one = format!("x\n{wide}\ny\n");
        assert_eq!(Log::parse(one.as_bytes()).logical.len(), 3);
        // Tabs count as the columns they fill.
        assert_eq!(columns("\tab"), 10);
    }
}

//! Entry points for the cargo-fuzz targets in `fuzz/` (see
//! docs/fuzzing.md). Not an API: each function takes the raw bytes of one
//! input, drives the real code with it, and returns a [`Violation`] when a
//! property that code promises does not hold; the fuzz target panics on
//! it, and a panic inside the code is a finding by itself. The inputs that
//! found something are kept under `fuzz/regressions/<target>/` and replayed
//! by this module's tests.
//!
//! Inputs are text wherever the code takes text, so a saved input can be
//! read: a header, a line `--`, then the body (a file's content, a
//! template). In header lines `\n`, `\r`, `\t` and `\\` are escapes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::diagnose::Catalog;
use crate::error::Error;
use crate::host::LocalHost;
use crate::playbook::template::{shell_quote, Renderer};
use crate::playbook::{Overrides, Playbook};
use crate::resource::{gitconfig_normal_key as normal_key, Context, EnvFile, EnvStyle};

/// A property of the code under test that an input broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Violation {}

type Checked = Result<(), Violation>;

/// One fuzz target's entry point.
pub type Target = fn(&[u8]) -> Checked;

fn violation(message: impl Into<String>) -> Checked {
    Err(Violation(message.into()))
}

/// The targets, by the name of their fuzz target (`fuzz/fuzz_targets/`)
/// and regression folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("playbook_load", playbook_load),
    ("template", template),
    ("env_edit", env_edit),
    ("gitconfig", gitconfig),
    ("diagnose", diagnose),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Header lines and body: split at the first line that is exactly `--`.
/// Without one, everything is header and there is no body.
fn split(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    if let Some(rest) = data.strip_prefix(b"--\n") {
        return (&[], Some(rest));
    }
    match data.windows(4).position(|w| w == b"\n--\n") {
        Some(at) => (&data[..at], Some(&data[at + 4..])),
        None => (data.strip_suffix(b"\n--").unwrap_or(data), None),
    }
}

/// One header line with its escapes decoded.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// How `sh` splits a line made of plain words and single-quoted strings
/// (all that fixer's quoting functions produce); `None` when the line holds
/// anything a shell would treat specially outside quotes.
pub fn sh_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '\\' => {
                let next = chars.next()?;
                if next != '\n' {
                    word.get_or_insert_with(String::new).push(next);
                }
            }
            c if c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c) => {
                word.get_or_insert_with(String::new).push(c);
            }
            _ => return None,
        }
    }
    words.extend(word);
    Some(words)
}

/// A TOML basic string holding exactly `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------
// playbook_load: any text as a playbook.

/// Load the text as a playbook (found in `playbooks/`, so the shipped
/// template files resolve). Properties: loading returns (never panics), an
/// error points inside the text, a loaded playbook's resources describe
/// themselves.
pub fn playbook_load(data: &[u8]) -> Checked {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let path = repo().join("playbooks/fuzz-input.toml");
    match Playbook::parse(&path, text.to_string(), &Overrides::default()) {
        Err(e) => {
            let shown = e.to_string();
            if let Error::Input { at, .. } = &e {
                let lines: Vec<&str> = text.split('\n').collect();
                let Some(line) = at.line.checked_sub(1).and_then(|i| lines.get(i)) else {
                    return violation(format!(
                        "error on line {} of {}: {shown}",
                        at.line,
                        lines.len()
                    ));
                };
                if at.column == 0 || at.column > line.chars().count() + 1 {
                    return violation(format!("error column {} past its line: {shown}", at.column));
                }
            }
        }
        Ok(pb) => {
            let cx = Context {
                home: PathBuf::from("/home/fuzz"),
                applying: false,
            };
            for d in pb.resources.iter().chain(&pb.handlers) {
                let _ = (d.resource.subject(), d.resource.observes(&cx));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------
// template: Handlebars, strict, with and without shell quoting.

/// A value no shell quoting leaves intact: its quote must be escaped.
const POISON: &str = "fz'; touch /tmp/fz #";

/// Input: `name=value` lines (a value `true`, `false` or an integer is
/// that JSON value), `--`, the template. Properties: rendering returns;
/// the two registries agree on whether a template renders; every value's
/// shell quote is read back by `sh` as exactly that value; in shell mode
/// no value reaches the output unquoted.
pub fn template(data: &[u8]) -> Checked {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let (header, body) = split(text.as_bytes());
    let header = String::from_utf8_lossy(header);
    let template = body.map(String::from_utf8_lossy).unwrap_or_default();
    let mut vars = serde_json::Map::new();
    let mut poisoned = serde_json::Map::new();
    for line in header.lines() {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        let value = unescape(value);
        let json = match value.as_str() {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            v => v.parse::<i64>().map_or_else(
                |_| serde_json::Value::String(value.clone()),
                serde_json::Value::from,
            ),
        };
        let quoted = shell_quote(&value);
        if sh_words(&quoted) != Some(vec![value.clone()]) {
            return violation(format!(
                "shell_quote({value:?}) = {quoted:?} is not read back as the value"
            ));
        }
        poisoned.insert(
            name.to_string(),
            if json.is_string() {
                serde_json::Value::from(POISON)
            } else {
                json.clone()
            },
        );
        vars.insert(name.to_string(), json);
    }
    let renderer = Renderer::new(serde_json::Value::Object(vars));
    let plain = renderer.render(&template, false);
    let shell = renderer.render(&template, true);
    // Shell lines only refuse more: the forms that skip quoting.
    let refused = shell
        .as_ref()
        .is_err_and(|e| e.contains("substitute a value unquoted"));
    if shell.is_ok() && plain.is_err() || plain.is_ok() && shell.is_err() && !refused {
        return violation(format!("plain {plain:?} but shell {shell:?}"));
    }
    let poisoned = Renderer::new(serde_json::Value::Object(poisoned));
    if let Ok(out) = poisoned.render(&template, true) {
        if out.contains(POISON) && !template.contains(POISON) {
            return violation(format!(
                "a value reaches a shell line unquoted: {template:?} renders {out:?}"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------
// env_edit: the edit of an env file, for each style.

/// Input: the style (`go`, `profile`, `environment`), then `KEY=value`
/// lines to set and `-KEY` lines to unset, `--`, the file as it is.
/// Properties: each set key is on exactly one line, the declared one; no
/// unset key is left; every other line is kept byte for byte and in
/// order; a file already as declared is left alone; editing twice changes
/// nothing more.
pub fn env_edit(data: &[u8]) -> Checked {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let (header, body) = split(text.as_bytes());
    let header = String::from_utf8_lossy(header);
    let current = body.map(String::from_utf8_lossy).unwrap_or_default();
    let mut lines = header.lines();
    let Some(style) = lines.next().and_then(EnvStyle::named) else {
        return Ok(());
    };
    let mut set: Vec<(String, String)> = Vec::new();
    let mut unset: Vec<String> = Vec::new();
    for line in lines {
        match line.strip_prefix('-') {
            Some(k) => unset.push(k.to_string()),
            None => {
                let (k, v) = line.split_once('=').unwrap_or((line, ""));
                set.push((k.to_string(), unescape(v)));
            }
        }
    }
    let set_refs: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let unset_refs: Vec<&str> = unset.iter().map(String::as_str).collect();
    let Ok(env) = EnvFile::new(style, &set_refs, &unset_refs) else {
        return Ok(());
    };
    let wanted: BTreeMap<&str, String> = set
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), style.line(k, v).ok()?)))
        .collect();
    let declared = |line: &str| {
        style
            .key_of(line)
            .is_some_and(|k| wanted.contains_key(k) || unset.iter().any(|u| u == k))
    };
    // Lines as a program splitting on \n sees them (a \r stays).
    let file_lines = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s.split('\n').map(str::to_string).collect();
        if s.is_empty() || s.ends_with('\n') {
            v.pop();
        }
        v
    };
    let out = env.edit(&current);
    let out_lines = file_lines(&out);
    for (k, line) in &wanted {
        let setting: Vec<&String> = out_lines
            .iter()
            .filter(|l| style.key_of(l) == Some(k))
            .collect();
        if setting != [line] {
            return violation(format!(
                "{k} is set by {setting:?}, not only by {line:?}, in {out:?}"
            ));
        }
    }
    if let Some(l) = out_lines.iter().find(|l| {
        style
            .key_of(l)
            .is_some_and(|k| unset.iter().any(|u| u == k))
    }) {
        return violation(format!("unset key left in {l:?}"));
    }
    let others =
        |ls: &[String]| -> Vec<String> { ls.iter().filter(|l| !declared(l)).cloned().collect() };
    let before_lines = file_lines(&current);
    if others(&before_lines) != others(&out_lines) {
        return violation(format!(
            "undeclared lines not kept byte for byte: {current:?} became {out:?}"
        ));
    }
    let already = wanted.iter().all(|(k, line)| {
        before_lines
            .iter()
            .filter(|l| style.key_of(l) == Some(k))
            .eq([line])
    }) && !before_lines.iter().any(|l| {
        style
            .key_of(l)
            .is_some_and(|k| unset.iter().any(|u| u == k))
    });
    if already && out != current {
        return violation(format!(
            "{current:?} is already as declared but became {out:?}"
        ));
    }
    let again = env.edit(&out);
    if again != out {
        return violation(format!("not idempotent: {out:?} became {again:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------
// gitconfig: git_config and git_url_rewrite on a config file.

/// Input: `git_config KEY` or `git_url_rewrite BASE`, then one value (or
/// `instead_of` prefix) per line, `--`, the config file's bytes (no `--`:
/// no file). The resource is declared in a playbook and planned against a
/// `--root` tempdir holding the file. Properties: a file git reads can be
/// planned (or is refused, saying why, where libgit2 cannot edit it); the planned file is one git reads, holding the declared values
/// with every other entry kept; planning it again changes nothing; no
/// change means the values were already there.
pub fn gitconfig(data: &[u8]) -> Checked {
    let (header, file) = split(data);
    let Ok(header) = std::str::from_utf8(header) else {
        return Ok(());
    };
    let mut lines = header.lines();
    let Some((kind, subject)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return Ok(());
    };
    let subject = unescape(subject);
    let values: Vec<String> = lines.map(unescape).collect();
    // Every string of a resource is a template: keep literal braces out.
    if subject.contains("{{") || values.iter().any(|v| v.contains("{{")) {
        return Ok(());
    }
    let list = values
        .iter()
        .map(|v| toml_string(v))
        .collect::<Vec<_>>()
        .join(", ");
    let (fields, key) = match kind {
        "git_config" => (
            format!("key = {}\nvalue = [{list}]", toml_string(&subject)),
            subject.clone(),
        ),
        "git_url_rewrite" => (
            format!("base = {}\ninstead_of = [{list}]", toml_string(&subject)),
            format!("url.{subject}.insteadOf"),
        ),
        _ => return Ok(()),
    };
    let text = format!(
        "[playbook]\nname = \"fuzz\"\n[[resource]]\ntype = \"{kind}\"\nscope = \"/gitconfig\"\n{fields}\n"
    );
    let Ok(pb) = Playbook::parse(
        Path::new("/fuzz/gitconfig.toml"),
        text,
        &Overrides::default(),
    ) else {
        return Ok(());
    };
    let Some(resource) = pb.resources.first().map(|d| &d.resource) else {
        return violation("the playbook loaded without its resource");
    };
    let Ok(root) = tempfile::tempdir() else {
        return Ok(());
    };
    let path = root.path().join("gitconfig");
    // Not a file git reads (libgit2 alone may read it up to the NUL); fixer
    // refuses it by name, as the tests check.
    if file.is_some_and(|b| b.contains(&0)) {
        return Ok(());
    }
    if let Some(bytes) = file {
        if std::fs::write(&path, bytes).is_err() {
            return Ok(());
        }
    }
    let before = read_config(&path);
    let host = LocalHost::new(Some(root.path().to_path_buf()));
    let cx = Context {
        home: PathBuf::from("/home/fuzz"),
        applying: false,
    };
    let holds = |entries: &[(String, String)]| -> bool {
        let have: Vec<&String> = entries
            .iter()
            .filter(|(k, _)| same_key(k, &key))
            .map(|(_, v)| v)
            .collect();
        if kind == "git_config" {
            have.iter().copied().eq(values.iter())
        } else {
            values.iter().all(|v| have.contains(&v))
        }
    };
    let delta = match resource.plan(&host, &cx) {
        Ok(d) => d,
        // What libgit2 cannot edit safely is refused on purpose, and says
        // so: a layout it would rewrite beyond the key (gitconfig::plan_edit),
        // an entry of the key without a value (gitconfig::values).
        Err(e)
            if [
                "would also change entries other than",
                "libgit2 would leave",
                "has an entry without a value",
            ]
            .iter()
            .any(|known| e.to_string().contains(known)) =>
        {
            return Ok(())
        }
        Err(e) => {
            return match before {
                Ok(_) => violation(format!("a config git reads cannot be planned: {e}")),
                Err(_) => Ok(()),
            }
        }
    };
    let Ok(before) = before else {
        return violation("a config git cannot read was planned");
    };
    let content = match delta.ops.as_slice() {
        [] => {
            return if holds(&before) {
                Ok(())
            } else {
                violation(format!("no change planned, but {key} holds {before:?}"))
            };
        }
        [crate::change::Op::Write { content, .. }] => content.clone(),
        ops => return violation(format!("unexpected ops {ops:?}")),
    };
    if std::fs::write(&path, &content).is_err() {
        return Ok(());
    }
    let shown = String::from_utf8_lossy(&content).into_owned();
    let after = match read_config(&path) {
        Ok(a) => a,
        Err(e) => return violation(format!("planned a config git cannot read ({e}): {shown:?}")),
    };
    if !holds(&after) {
        return violation(format!(
            "{key} does not hold {values:?} after the edit: {after:?} from {shown:?}"
        ));
    }
    let other = |entries: &[(String, String)]| -> Vec<(String, String)> {
        entries
            .iter()
            .filter(|(k, _)| !same_key(k, &key))
            .cloned()
            .collect()
    };
    let kept = other(&after);
    let mut expected = other(&before);
    if kind == "git_url_rewrite" {
        let present: Vec<&String> = before
            .iter()
            .filter(|(k, _)| same_key(k, &key))
            .map(|(_, v)| v)
            .collect();
        expected.extend(
            before
                .iter()
                .filter(|(k, _)| same_key(k, &key))
                .cloned()
                .chain(
                    values
                        .iter()
                        .filter(|v| !present.contains(v))
                        .map(|v| (normal_key(&key), v.clone())),
                ),
        );
        let mut all = after.clone();
        all.sort();
        expected.sort();
        if all != expected {
            return violation(format!(
                "entries {before:?} became {after:?}, not {expected:?}"
            ));
        }
    } else if kept != expected {
        return violation(format!("other entries {expected:?} became {kept:?}"));
    }
    match resource.plan(&host, &cx) {
        Ok(d) if d.ops.is_empty() => Ok(()),
        Ok(d) => violation(format!(
            "planning the edited file changes it again: {:?}",
            d.ops
        )),
        Err(e) => violation(format!("the edited file cannot be planned: {e}")),
    }
}

/// The entries of a config file, in order, as git2 reads it; a missing
/// file has none.
fn read_config(path: &Path) -> Result<Vec<(String, String)>, git2::Error> {
    let mut out = Vec::new();
    if !path.exists() {
        return Ok(out);
    }
    let config = git2::Config::open(path)?;
    let mut entries = config.entries(None)?;
    while let Some(entry) = entries.next() {
        let entry = entry?;
        out.push((
            normal_key(&String::from_utf8_lossy(entry.name_bytes())),
            crate::resource::gitconfig_value_of(entry),
        ));
    }
    Ok(out)
}

fn same_key(entry: &str, key: &str) -> bool {
    normal_key(entry) == normal_key(key)
}

// ---------------------------------------------------------------------
// diagnose: any bytes as an error log, against the shipped playbooks.

fn catalog() -> Result<&'static Catalog, Violation> {
    static CATALOG: OnceLock<Result<Catalog, String>> = OnceLock::new();
    let loaded = CATALOG.get_or_init(|| {
        let c = Catalog::load(&[repo().join("playbooks")], true).map_err(|e| e.to_string())?;
        match c.skipped.first() {
            Some((p, e)) => Err(format!("{}: {e}", p.display())),
            None => Ok(c),
        }
    });
    loaded
        .as_ref()
        .map_err(|e| Violation(format!("shipped playbooks: {e}")))
}

/// Read the bytes as a log and diagnose it. Properties: diagnosis returns;
/// every piece of evidence points at a line of the log and at a range of
/// its text; confidences are in [0, 1]; the suggested command is read by
/// `sh` as `fixer plan PATH --var K=V...` with exactly the values found.
pub fn diagnose(data: &[u8]) -> Checked {
    let catalog = catalog()?;
    let d = match crate::diagnose::read(crate::diagnose::Input::Bytes(data), catalog) {
        Ok(d) => d,
        // A NUL early in the bytes: refused as binary, in words.
        Err(crate::diagnose::ReadError::Binary(at)) if data.get(at) == Some(&0) => return Ok(()),
        Err(e) => return violation(format!("cannot read the log: {e}")),
    };
    if d.lines > data.iter().filter(|b| **b == b'\n').count() + 1 {
        return violation(format!(
            "{} lines in a log of {} newlines",
            d.lines,
            data.len()
        ));
    }
    for r in &d.remedies {
        if !(0.0..=1.0).contains(&r.confidence) {
            return violation(format!("{}: confidence {}", r.playbook, r.confidence));
        }
        for e in &r.evidence {
            if e.line == 0 || e.line > d.lines {
                return violation(format!("evidence on line {} of {}", e.line, d.lines));
            }
            if e.text.get(e.matched.clone()).is_none() {
                return violation(format!("match {:?} outside {:?}", e.matched, e.text));
            }
        }
        let mut expected = vec![
            "fixer".to_string(),
            "plan".to_string(),
            r.path.display().to_string(),
        ];
        for (k, v) in &r.vars() {
            expected.push("--var".into());
            expected.push(format!("{k}={v}"));
        }
        let line = r.command();
        if sh_words(&line) != Some(expected) {
            return violation(format!(
                "the command {line:?} does not carry the values {:?}",
                r.vars()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_words_reads_quoted_words() {
        assert_eq!(
            sh_words("a 'b c'\\''d' e"),
            Some(vec!["a".into(), "b c'd".into(), "e".into()])
        );
        assert_eq!(sh_words("a;b"), None);
        assert_eq!(sh_words("'open"), None);
    }

    #[test]
    fn split_at_the_first_separator_line() {
        assert_eq!(
            split(b"h\n--\nbody\n--\n"),
            (&b"h"[..], Some(&b"body\n--\n"[..]))
        );
        assert_eq!(split(b"--\nx"), (&b""[..], Some(&b"x"[..])));
        assert_eq!(split(b"h"), (&b"h"[..], None));
    }

    #[test]
    fn normal_keys_keep_the_subsection_case() {
        assert_eq!(
            normal_key("URL.Https://X.insteadOf"),
            "url.Https://X.insteadof"
        );
        assert_eq!(normal_key("Core.Editor"), "core.editor");
    }

    /// Every input a fuzz target ever failed on, kept under
    /// `fuzz/regressions/<target>/`, passes now.
    #[test]
    fn saved_fuzz_findings_pass() -> Result<(), Box<dyn std::error::Error>> {
        let mut failed = Vec::new();
        let mut replayed = 0;
        for (target, run) in TARGETS {
            let dir = repo().join("fuzz/regressions").join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file)?;
                replayed += 1;
                if let Err(v) = run(&data) {
                    failed.push(format!("{}: {v}", file.display()));
                }
            }
        }
        // The findings are committed: none found means the folder moved.
        assert!(
            replayed >= 4,
            "only {replayed} saved findings under fuzz/regressions"
        );
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("\n").into())
        }
    }
}

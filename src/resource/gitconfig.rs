//! Editing a git config file through git2, for `git_url_rewrite` and
//! `git_config`. git2 edits files on disk, and the target may be a `--root`
//! image or (later) a remote host, so the edit is made on a scratch copy of
//! the file's bytes; the result becomes an ordinary `Write` op. Comments,
//! order and unrelated sections are kept, as git2 keeps them.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{Context, TargetPath};
use crate::change::{Delta, Op};
use crate::error::Error;
use crate::host::{Attrs, Host};

/// Where the setting lives, as `git config --global/--system/--file`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Global,
    System,
    File(TargetPath),
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "global" => Ok(Scope::Global),
            "system" => Ok(Scope::System),
            other => TargetPath::parse(other).map(Scope::File).map_err(|m| {
                serde::de::Error::custom(format!("scope is global, system or a file path: {m}"))
            }),
        }
    }
}

impl Scope {
    pub fn path(&self, cx: &Context) -> PathBuf {
        match self {
            Scope::Global => cx.home.join(".gitconfig"),
            Scope::System => PathBuf::from("/etc/gitconfig"),
            Scope::File(p) => p.resolve(cx),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Scope::Global => "~/.gitconfig".into(),
            Scope::System => "/etc/gitconfig".into(),
            Scope::File(p) => p.as_str().into(),
        }
    }
}

/// One value or a list of them, as playbooks write `instead_of` / `value`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A POSIX extended regex matching exactly `value` (git's value patterns).
pub fn exact(value: &str) -> String {
    let mut re = String::from("^");
    for c in value.chars() {
        if ".^$*+?()[]{}|\\".contains(c) {
            re.push('\\');
        }
        re.push(c);
    }
    re.push('$');
    re
}

/// Add `value` to `key` (replacing an entry holding exactly `value`).
///
/// git2's `set_multivar` writes the value into the file as given, without
/// the escaping its `set_str` does, so a tab, newline, quote or backslash
/// would change what git reads back (a newline could even start a new
/// entry). The value is escaped here the way git writes it; libgit2 then
/// quotes it when it starts or ends with a space or holds `;` or `#`, and
/// the other whitespace git drops at either end (`\r`, form feed,
/// vertical tab) is quoted here.
pub fn add_value(config: &mut git2::Config, key: &str, value: &str) -> Result<(), git2::Error> {
    config.set_multivar(key, &exact(value), &written(value))
}

/// `value` as it is written after `key = ` (see [`add_value`]).
fn written(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    let libgit2_quotes =
        out.is_empty() || out.starts_with(' ') || out.ends_with(' ') || out.contains([';', '#']);
    let trimmed = |c: char| c.is_ascii_whitespace() || c == '\u{b}';
    if !libgit2_quotes && (out.starts_with(trimmed) || out.ends_with(trimmed)) {
        out = format!("\"{out}\"");
    }
    out
}

/// The values of `key` in a config, in file order.
pub fn values(config: &git2::Config, key: &str) -> Result<Vec<String>, git2::Error> {
    let mut out = Vec::new();
    let entries = match config.multivar(key, None) {
        Ok(e) => e,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    entries.for_each(|entry| {
        if let Ok(v) = entry.value() {
            out.push(v.to_string());
        }
    })?;
    Ok(out)
}

/// Plan an edit of the config file at `path`: `edit` gets the parsed file
/// and returns whether it changed anything.
pub fn plan_edit(
    host: &dyn Host,
    path: PathBuf,
    edit: impl FnOnce(&mut git2::Config) -> Result<bool, git2::Error>,
) -> Result<Delta, Error> {
    let before = super::read_regular_file(host, &path)?;
    let scratch = tempfile::tempdir().map_err(|source| Error::WriteLocal {
        path: std::env::temp_dir(),
        source,
    })?;
    let copy = scratch.path().join("config");
    if let Some((bytes, _)) = &before {
        std::fs::write(&copy, bytes).map_err(|source| Error::WriteLocal {
            path: copy.clone(),
            source,
        })?;
    }
    let git_err = |e: git2::Error| Error::Conflict(format!("{}: {}", path.display(), e.message()));
    let mut config = git2::Config::open(&copy).map_err(git_err)?;
    // git2 parses lazily: make a malformed file fail here, named.
    config
        .entries(None)
        .map_err(git_err)?
        .for_each(|_| {})
        .map_err(git_err)?;
    if !edit(&mut config).map_err(git_err)? {
        return Ok(Delta::default());
    }
    drop(config);
    let content = std::fs::read(&copy).map_err(|source| Error::Read {
        path: copy.clone(),
        source,
    })?;
    if before.as_ref().is_some_and(|(b, _)| *b == content) {
        return Ok(Delta::default());
    }
    Ok(Delta::ops(vec![Op::Write {
        shown: None,
        path,
        before,
        content,
        attrs: Attrs::default(),
    }]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_written_as_git_reads_them() {
        assert_eq!(super::written("plain value"), "plain value");
        assert_eq!(super::written("\ta\"b\\c\nd"), r#"\ta\"b\\c\nd"#);
        assert_eq!(super::written("\ra"), "\"\ra\"");
        assert_eq!(super::written(" a;"), " a;");
    }

    #[test]
    fn exact_escapes_regex_metacharacters() {
        assert_eq!(super::exact("https://a.b/x?"), r"^https://a\.b/x\?$");
    }
}

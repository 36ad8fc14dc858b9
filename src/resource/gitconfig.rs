//! Editing a git config file through git2, for `git_url_rewrite` and
//! `git_config`. git2 edits files on disk, and the target may be a `--root`
//! image or (later) a remote host, so the edit is made on a scratch copy of
//! the file's bytes; the result becomes an ordinary `Write` op. Comments,
//! order and unrelated sections are kept, as git2 keeps them.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::{Context, TargetPath};
use crate::change::{Delta, Op, Prior};
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

impl schemars::JsonSchema for Scope {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scope".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "title": "scope",
            "type": "string",
            "pattern": "^(global|system|/|~/|\\{\\{)",
            "default": "global",
            "description": "`\"global\"` (`~/.gitconfig`), `\"system\"` (`/etc/gitconfig`), or the path of a git config file."
        })
    }
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
#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(title = "string or array of strings")]
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

/// Every entry of the config but those of `key`, in file order, as
/// (name as git normalises it, value).
fn other_entries(config: &git2::Config, key: &str) -> Result<Vec<(String, String)>, git2::Error> {
    let key = normal_key(key);
    let mut out = Vec::new();
    config.entries(None)?.for_each(|entry| {
        let name = normal_key(&String::from_utf8_lossy(entry.name_bytes()));
        if name != key {
            out.push((name, value_of(entry)));
        }
    })?;
    Ok(out)
}

/// A key as git names its entries: section and name lower-cased, the
/// subsection as written.
pub fn normal_key(key: &str) -> String {
    match (key.split_once('.'), key.rsplit_once('.')) {
        (Some((section, rest)), Some((_, name))) if rest.len() > name.len() => {
            let sub = &rest[..rest.len() - name.len() - 1];
            format!("{}.{sub}.{}", section.to_lowercase(), name.to_lowercase())
        }
        _ => key.to_lowercase(),
    }
}

/// The values of `key` in a config, in file order; an error when one of
/// its entries has no value.
pub fn values(config: &git2::Config, key: &str) -> Result<Vec<String>, git2::Error> {
    let mut out = Vec::new();
    let entries = match config.multivar(key, None) {
        Ok(e) => e,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let mut valueless = false;
    entries.for_each(|entry| {
        valueless |= !entry.has_value();
        out.push(value_of(entry));
    })?;
    if valueless {
        // libgit2 matches its value patterns against every entry of the
        // key, and crashes (SIGSEGV) on one without a value.
        return Err(git2::Error::from_str(&format!(
            "`{key}` has an entry without a value (the name alone on its line), which \
             libgit2 cannot edit; give it a value or remove it first (`git config --file \
             FILE --unset-all {key}`)"
        )));
    }
    Ok(out)
}

/// An entry's value as `git config --get-all` prints it. A key written
/// without `= value` (`[http] sslVerify`, boolean true) has none: git
/// prints an empty line, and git2's `value()` would panic. A value that
/// is not UTF-8 is kept (lossily), so it still counts as a value that is
/// not the declared one.
pub fn value_of(entry: &git2::ConfigEntry<'_>) -> String {
    if entry.has_value() {
        String::from_utf8_lossy(entry.value_bytes()).into_owned()
    } else {
        String::new()
    }
}

/// Plan an edit of `key` in the config file at `path`: `edit` gets the
/// parsed file and returns `None` when it changed nothing, else the values
/// `key` holds after its edit, in file order.
///
/// libgit2 rewrites the whole file, and on some unusual layouts (a key on
/// its section header's line, `[s]k = v`) it also changes other entries or
/// misses entries of the key. The edited file is read back, and an edit
/// that does not leave exactly those values and every other entry as it
/// was is refused rather than written.
pub fn plan_edit(
    host: &dyn Host,
    path: PathBuf,
    key: &str,
    edit: impl FnOnce(&mut git2::Config) -> Result<Option<Vec<String>>, git2::Error>,
) -> Result<Delta, Error> {
    let before = super::read_regular_file(host, &path)?;
    let scratch = tempfile::tempdir().map_err(|source| Error::WriteLocal {
        path: std::env::temp_dir(),
        source,
    })?;
    let copy = scratch.path().join("config");
    if let Some((bytes, _)) = &before {
        // libgit2 reads a file as C text, up to its first NUL, on some
        // paths and as bytes on others: such a file is refused up front.
        if let Some(at) = bytes.iter().position(|b| *b == 0) {
            let line = 1 + bytes[..at].iter().filter(|b| **b == b'\n').count();
            return Err(Error::Conflict(format!(
                "{}:{line}: holds a NUL byte: not a git config file",
                path.display()
            )));
        }
        std::fs::write(&copy, bytes).map_err(|source| Error::WriteLocal {
            path: copy.clone(),
            source,
        })?;
    }
    // libgit2's messages name the scratch copy: name the real file instead.
    let scratch_name = copy.display().to_string();
    let git_err = |e: git2::Error| {
        Error::Conflict(format!(
            "{}: {}",
            path.display(),
            e.message()
                .replace(&scratch_name, &path.display().to_string())
        ))
    };
    let mut config = git2::Config::open(&copy).map_err(git_err)?;
    // git2 parses lazily: reading every entry makes a malformed file fail
    // here, named.
    let others_before = other_entries(&config, key).map_err(git_err)?;
    let Some(expected) = edit(&mut config).map_err(git_err)? else {
        return Ok(Delta::default());
    };
    drop(config);
    let content = std::fs::read(&copy).map_err(|source| Error::Read {
        path: copy.clone(),
        source,
    })?;
    if before.as_ref().is_some_and(|(b, _)| *b == content) {
        return Ok(Delta::default());
    }
    let written = git2::Config::open(&copy).map_err(git_err)?;
    let refuse = |what: String| {
        Error::Conflict(format!(
            "{}: libgit2 would {what} in this file (an unusual layout, such as a key \
             on its section's header line); set it with `git config` instead",
            path.display()
        ))
    };
    if other_entries(&written, key).map_err(git_err)? != others_before {
        return Err(refuse(format!("also change entries other than `{key}`")));
    }
    let got = values(&written, key).map_err(git_err)?;
    if got != expected {
        return Err(refuse(format!(
            "leave `{key}` holding {got:?}, not {expected:?}"
        )));
    }
    Ok(Delta::ops(vec![Op::Write {
        path,
        before: before.map(|(b, m)| (Prior::Bytes(b), m)),
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

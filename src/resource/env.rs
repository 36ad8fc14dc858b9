//! `env`: exported variables in one of three files, each in the syntax of
//! the program that reads it.
//!
//! - `go`: the file `go env -w` writes (`KEY=VALUE`, read verbatim by go);
//! - `profile`: a shell file of `export KEY='value'` lines;
//! - `environment`: `/etc/environment`, `KEY="value"` as pam_env reads it.
//!
//! Only the declared keys are touched: their lines are replaced in place
//! (later duplicates dropped), missing ones appended, `unset` ones removed;
//! every other line, comments included, is kept byte for byte.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::{read_regular_file, Build, Claim, Context, Kind, Part, Resource, TargetPath};
use crate::change::{Delta, Op, Prior};
use crate::error::Error;
use crate::host::{Attrs, Host, OnHost};

pub const KIND: Kind = Kind {
    name: "env",
    build,
    shell_fields: &[],
    schema: <Spec as schemars::JsonSchema>::json_schema,
};

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Style {
    Go,
    Profile,
    Environment,
}

impl Style {
    /// The style a playbook names (`style = "go"`).
    pub(crate) fn named(name: &str) -> Option<Style> {
        match name {
            "go" => Some(Style::Go),
            "profile" => Some(Style::Profile),
            "environment" => Some(Style::Environment),
            _ => None,
        }
    }

    /// Where the file is when the playbook does not say. For go that is
    /// where `go env GOENV` points: $GOENV, else $XDG_CONFIG_HOME/go/env,
    /// else ~/.config/go/env (os.UserConfigDir on Linux).
    fn default_path(self, host: &dyn Host, cx: &Context) -> Result<PathBuf, Error> {
        Ok(match self {
            Style::Go => {
                let absolute = |v: Option<String>| v.filter(|p| p.starts_with('/'));
                match host.var("GOENV").on(host)? {
                    Some(v) if v == "off" => {
                        return Err(Error::Conflict(
                            "GOENV=off: go reads no env file for this user; set `path` to manage one anyway".into(),
                        ))
                    }
                    v => match absolute(v) {
                        Some(p) => PathBuf::from(p),
                        None => match absolute(host.var("XDG_CONFIG_HOME").on(host)?) {
                            Some(x) => PathBuf::from(x).join("go/env"),
                            None => cx.home.join(".config/go/env"),
                        },
                    },
                }
            }
            Style::Profile => PathBuf::from("/etc/profile.d/fixer.sh"),
            Style::Environment => PathBuf::from("/etc/environment"),
        })
    }

    fn default_subject(self) -> &'static str {
        match self {
            Style::Go => "GOENV",
            Style::Profile => "/etc/profile.d/fixer.sh",
            Style::Environment => "/etc/environment",
        }
    }

    /// The key a line sets, as the reading program sees it.
    pub(crate) fn key_of(self, line: &str) -> Option<&str> {
        let body = match self {
            // go ignores lines that do not start with an upper-case letter.
            Style::Go => line,
            Style::Profile | Style::Environment => {
                let t = line.trim_start();
                t.strip_prefix("export ").map_or(t, str::trim_start)
            }
        };
        let (key, _) = body.split_once('=')?;
        let valid = match self {
            Style::Go => key.starts_with(|c: char| c.is_ascii_uppercase()),
            _ => !key.is_empty(),
        };
        (valid && is_name(key)).then_some(key)
    }

    /// One line setting `key` to `value`, or why the value cannot be written.
    pub(crate) fn line(self, key: &str, value: &str) -> Result<String, String> {
        if value.contains('\0') {
            // Shells and pam_env read a NUL as the end of the line, and go
            // a value with it as not a variable at all.
            return Err("a NUL byte cannot be represented in an environment file".into());
        }
        match self {
            Style::Go => {
                if value.contains(['\n', '\r']) {
                    return Err("go's env file holds one line per variable: a newline cannot be represented".into());
                }
                Ok(format!("{key}={value}"))
            }
            Style::Profile => {
                if value.contains('\n') {
                    return Err(
                        "a newline cannot be represented in a line-based profile file".into(),
                    );
                }
                Ok(format!("export {key}='{}'", value.replace('\'', r"'\''")))
            }
            Style::Environment => {
                if let Some(c) = value
                    .chars()
                    .find(|c| matches!(c, '"' | '\\' | '$' | '`' | '\n'))
                {
                    return Err(format!(
                        "{c:?} cannot be represented in /etc/environment (pam_env has no escapes, and shells reading the file would expand it)"
                    ));
                }
                Ok(format!("{key}=\"{value}\""))
            }
        }
    }

    /// Whether `k` may be declared: a name the reading program takes.
    pub(crate) fn check_name(self, k: &str) -> Result<(), String> {
        let ok =
            is_name(k) && (self != Style::Go || k.starts_with(|c: char| c.is_ascii_uppercase()));
        if ok {
            Ok(())
        } else if self == Style::Go {
            Err(format!("`{k}` is not a name go reads from its env file (upper-case letter first, then letters, digits, _)"))
        } else {
            Err(format!("`{k}` is not a valid variable name"))
        }
    }
}

fn is_name(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Exported variables, written in the syntax of the program that reads them.
///
/// Only the declared keys are touched: their lines are replaced in place
/// (later duplicates dropped), missing ones appended, `unset` ones removed;
/// every other line, comments included, is kept.
///
/// | style | file (default) | line | cannot represent |
/// |---|---|---|---|
/// | `go` | where `go env GOENV` points: `$GOENV`, else `$XDG_CONFIG_HOME/go/env`, else `~/.config/go/env` (the environment is fixer's, as for `~`); `GOENV=off` is an error | `KEY=value`, read verbatim by go; keys start with an upper-case letter | newlines, NUL |
/// | `profile` | `/etc/profile.d/fixer.sh` | `export KEY='value'` (single-quoted: any other character survives `sh`) | newlines, NUL |
/// | `environment` | `/etc/environment` | `KEY="value"` as pam_env reads it | `"`, `\`, `$`, `` ` ``, newlines, NUL (pam_env has no escapes; shells would expand them) |
///
/// A value a style cannot represent is an error at `validate` time, naming
/// the field. An existing file that is not UTF-8 text is refused.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// Which program reads the file, and so its syntax and default path.
    style: Style,
    /// The file (default: per style, above).
    #[serde(default)]
    path: Option<TargetPath>,
    /// `KEY = "value"`: set these.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    vars: BTreeMap<String, Spanned<String>>,
    /// Names of keys to remove.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    unset: Vec<Spanned<String>>,
}

#[derive(Debug)]
pub(crate) struct Env {
    style: Style,
    /// `None`: the style's default, resolved on the target.
    path: Option<TargetPath>,
    /// Key -> the line that sets it (validated at load), or `None` to unset.
    lines: BTreeMap<String, Option<String>>,
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let spec: Spec = b.deserialize(value)?;
    if spec.vars.is_empty() && spec.unset.is_empty() {
        return Err(b.error(&span, "set `vars` and/or `unset`"));
    }
    let check_name = |k: &str, at: &std::ops::Range<usize>| -> Result<(), Error> {
        spec.style.check_name(k).map_err(|m| b.error(at, m))
    };
    let mut lines = BTreeMap::new();
    for (k, v) in &spec.vars {
        check_name(k, &v.span())?;
        let line = spec
            .style
            .line(k, v.get_ref())
            .map_err(|m| b.error(&v.span(), format!("value of {k}: {m}")))?;
        lines.insert(k.clone(), Some(line));
    }
    for k in &spec.unset {
        check_name(k.get_ref(), &k.span())?;
        if lines.insert(k.get_ref().clone(), None).is_some() {
            return Err(b.error(
                &k.span(),
                format!(
                    "`{}` is both set in `vars` and listed in `unset`",
                    k.get_ref()
                ),
            ));
        }
    }
    Ok(Box::new(Env {
        style: spec.style,
        path: spec.path,
        lines,
    }))
}

impl Env {
    /// The resource a playbook declaring `set` and `unset` in `style` (with
    /// its default path) loads as, or why it would not load.
    pub(crate) fn new(style: Style, set: &[(&str, &str)], unset: &[&str]) -> Result<Env, String> {
        if set.is_empty() && unset.is_empty() {
            return Err("set `vars` and/or `unset`".into());
        }
        let mut lines = BTreeMap::new();
        for (k, v) in set {
            style.check_name(k)?;
            let line = style.line(k, v).map_err(|m| format!("value of {k}: {m}"))?;
            if lines.insert(k.to_string(), Some(line)).is_some() {
                return Err(format!("`{k}` is declared twice"));
            }
        }
        for k in unset {
            style.check_name(k)?;
            if lines.insert(k.to_string(), None).is_some() {
                return Err(format!("`{k}` is both set in `vars` and listed in `unset`"));
            }
        }
        Ok(Env {
            style,
            path: None,
            lines,
        })
    }

    /// The file with the declared keys set and the unset ones gone. Lines
    /// are split at `\n` only: every other line keeps its bytes, a `\r`
    /// before its newline included, and a file already as declared comes
    /// back unchanged, with or without a final newline.
    pub(crate) fn edit(&self, current: &str) -> String {
        let mut placed: BTreeMap<&str, bool> = BTreeMap::new();
        let mut out = String::with_capacity(current.len());
        for chunk in current.split_inclusive('\n') {
            let line = chunk.strip_suffix('\n').unwrap_or(chunk);
            match self
                .style
                .key_of(line)
                .and_then(|k| self.lines.get_key_value(k))
            {
                Some((k, Some(wanted))) => {
                    if !placed.contains_key(k.as_str()) {
                        if line == wanted {
                            out.push_str(chunk);
                        } else {
                            out.push_str(wanted);
                            out.push('\n');
                        }
                        placed.insert(k, true);
                    }
                }
                Some((_, None)) => {}
                None => out.push_str(chunk),
            }
        }
        for (k, wanted) in &self.lines {
            if let (Some(w), false) = (wanted, placed.contains_key(k.as_str())) {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(w);
                out.push('\n');
            }
        }
        out
    }
}

impl Resource for Env {
    fn kind(&self) -> &'static str {
        "env"
    }

    fn claims(&self) -> Vec<Claim> {
        let (path, field) = match &self.path {
            Some(p) => (p.as_str().to_string(), "path"),
            None if self.style == Style::Go => ("go's env file".to_string(), "style"),
            None => (self.style.default_subject().to_string(), "style"),
        };
        self.lines
            .keys()
            .map(|k| Claim::named(&path, Part::Key(k.clone()), field))
            .collect()
    }

    fn subject(&self) -> String {
        match &self.path {
            Some(p) => p.as_str().to_string(),
            None => self.style.default_subject().to_string(),
        }
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let path = match &self.path {
            Some(p) => p.resolve(cx),
            None => self.style.default_path(host, cx)?,
        };
        let before = read_regular_file(host, &path)?;
        let current = match &before {
            Some((bytes, _)) => String::from_utf8(bytes.clone()).map_err(|_| {
                Error::Conflict(format!(
                    "{} is not UTF-8 text; fixer will not rewrite it",
                    path.display()
                ))
            })?,
            None => String::new(),
        };
        let wanted = self.edit(&current);
        let unchanged = match &before {
            Some(_) => wanted == current,
            // Nothing to unset in a missing file.
            None => self.lines.values().all(Option::is_none),
        };
        if unchanged {
            return Ok(Delta::default());
        }
        Ok(Delta::ops(vec![Op::Write {
            path,
            before: before.map(|(b, m)| (Prior::Bytes(b), m)),
            content: wanted.into_bytes(),
            attrs: Attrs::default(),
        }]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(style: Style, set: &[(&str, &str)], unset: &[&str]) -> Result<Env, String> {
        Env::new(style, set, unset)
    }

    #[test]
    fn edits_only_declared_keys() -> Result<(), String> {
        let e = env(Style::Go, &[("GOPROXY", "https://m,direct")], &["GOFLAGS"])?;
        let cur = "# comment\nGOPRIVATE=x\nGOPROXY=old\nGOFLAGS=-mod=mod\nGOPROXY=dup\nlower=1\n";
        assert_eq!(
            e.edit(cur),
            "# comment\nGOPRIVATE=x\nGOPROXY=https://m,direct\nlower=1\n"
        );
        assert_eq!(e.edit(""), "GOPROXY=https://m,direct\n");
        Ok(())
    }

    /// Found by the env_edit fuzz target: lines were split by
    /// `str::lines`, which drops a `\r` before the newline, so a CRLF file
    /// lost its CRs and a file already as declared was rewritten.
    #[test]
    fn other_lines_keep_their_bytes() -> Result<(), String> {
        let e = env(Style::Go, &[("GOPROXY", "off")], &["GOFLAGS"])?;
        assert_eq!(
            e.edit("# c\r\nGOPROXY=on\r\nX=1\r\n"),
            "# c\r\nGOPROXY=off\nX=1\r\n"
        );
        for done in ["GOPROXY=off", "\nGOPROXY=off", "# c\nGOPROXY=off\n"] {
            assert_eq!(e.edit(done), done);
        }
        assert_eq!(e.edit("# c"), "# c\nGOPROXY=off\n");
        let unset = env(Style::Go, &[], &["GOFLAGS"])?;
        assert_eq!(unset.edit("\n"), "\n");
        assert_eq!(unset.edit("GOFLAGS=x"), "");
        Ok(())
    }

    #[test]
    fn profile_and_environment_quoting() -> Result<(), String> {
        assert_eq!(
            Style::Profile.line("A", "it's $x")?,
            r"export A='it'\''s $x'"
        );
        assert_eq!(Style::Environment.line("A", "a b,c")?, "A=\"a b,c\"");
        assert!(Style::Environment.line("A", "$HOME").is_err());
        assert!(Style::Go.line("A", "a\nb").is_err());
        let e = env(Style::Profile, &[("A", "1")], &[])?;
        assert_eq!(
            e.edit("export A='0'\nexport B='2'\n"),
            "export A='1'\nexport B='2'\n"
        );
        Ok(())
    }
}

//! `git_config`: any key set to exactly the given value (or, with an array,
//! exactly these values, in order) at a scope, through git2.

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::gitconfig::{self, OneOrMany, Scope};
use super::{Build, Claim, Context, Kind, Part, Resource};
use crate::change::Delta;
use crate::error::Error;
use crate::host::Host;

pub const KIND: Kind = Kind {
    name: "git_config",
    build,
    shell_fields: &[],
    schema: <Spec as schemars::JsonSchema>::json_schema,
};

/// Any git config key set to exactly the given value (or values, in order).
///
/// git2 edits a scratch copy of the file's bytes and the result is diffed
/// and written like any file, so plans show the exact change and rollback
/// restores the old bytes. A file git cannot parse is an error naming it; a
/// value with a NUL byte, or a key or rewrite base with a control character,
/// is refused at `validate`. Values are written escaped as git writes them,
/// so tabs, quotes, backslashes and newlines read back exactly.
///
/// Two layouts libgit2 cannot edit safely are refused at plan time with the
/// file named, nothing written: an entry of the declared key without a
/// value (`sslVerify` alone on its line), and a file libgit2 would rewrite
/// wrongly. Every edit is read back, and unless the key then holds exactly
/// the declared values and every other entry is as it was, it is refused
/// (seen with a key on its section's header line, `[core] pager = less`).
/// Both apply to `git_url_rewrite` too.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// The git config file to edit.
    #[serde(default)]
    scope: Scope,
    /// `section[.subsection].name`, e.g. `http.https://proxy.example.sslVerify`.
    #[schemars(with = "String")]
    key: Spanned<String>,
    /// A string: exactly this one value. An array: exactly these values, in
    /// order (multi-valued keys such as `safe.directory`).
    #[schemars(with = "OneOrMany")]
    value: Spanned<OneOrMany>,
}

#[derive(Debug)]
struct GitConfig {
    scope: Scope,
    key: String,
    values: Vec<String>,
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let spec: Spec = b.deserialize(value)?;
    let key = spec.key.get_ref();
    let (section, name) = match (key.split_once('.'), key.rsplit_once('.')) {
        (Some((s, _)), Some((_, n))) => (s, n),
        _ => ("", ""),
    };
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    // As libgit2 checks them (it refuses `-ttp.a.b`, which git takes).
    let section_ok = section.starts_with(|c: char| c.is_ascii_alphanumeric())
        && section
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    // No control character anywhere: libgit2 writes a tab or backspace in
    // a subsection as an escape that git reads back as a plain letter.
    if !name_ok || !section_ok || key.contains(char::is_control) {
        return Err(b.error(
            &spec.key.span(),
            format!("`{key}` is not a git config key (section[.subsection].name)"),
        ));
    }
    let at = spec.value.span();
    let values = spec.value.into_inner().into_vec();
    if values.is_empty() {
        return Err(b.error(&at, "`value` is an empty list"));
    }
    if let Some(v) = values.iter().find(|v| v.contains('\0')) {
        return Err(b.error(
            &at,
            format!("{v:?}: a git config value cannot contain a NUL byte"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = values.iter().find(|v| !seen.insert(*v)) {
        return Err(b.error(&at, format!("`{dup}` is listed twice")));
    }
    Ok(Box::new(GitConfig {
        scope: spec.scope,
        key: spec.key.into_inner(),
        values,
    }))
}

impl Resource for GitConfig {
    fn kind(&self) -> &'static str {
        "git_config"
    }

    fn subject(&self) -> String {
        format!("{}:{}", self.scope.describe(), self.key)
    }

    fn claims(&self) -> Vec<Claim> {
        vec![Claim::named(
            &self.scope.describe(),
            Part::Key(gitconfig::normal_key(&self.key)),
            "key",
        )]
    }

    fn observes(&self, cx: &Context) -> Vec<std::path::PathBuf> {
        vec![self.scope.path(cx)]
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        gitconfig::plan_edit(host, self.scope.path(cx), &self.key, |config| {
            if gitconfig::values(config, &self.key)? == self.values {
                return Ok(None);
            }
            match config.remove_multivar(&self.key, ".*") {
                Ok(()) => {}
                Err(e) if e.code() == git2::ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
            for v in &self.values {
                gitconfig::add_value(config, &self.key, v)?;
            }
            Ok(Some(self.values.clone()))
        })
    }
}

//! `git_url_rewrite`: `url.<base>.insteadOf` entries, so that git fetches
//! `https://host/...` over `git@host:...` (or through a mirror). Other
//! `insteadOf` values of the same base, and the rest of the file, are kept.

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::gitconfig::{self, OneOrMany, Scope};
use super::{Build, Claim, Context, Kind, Part, Resource};
use crate::change::Delta;
use crate::error::Error;
use crate::host::Host;

pub const KIND: Kind = Kind {
    name: "git_url_rewrite",
    build,
    shell_fields: &[],
    schema: <Spec as schemars::JsonSchema>::json_schema,
};

/// `url.<base>.insteadOf` entries, through git2: `git` then fetches URLs
/// starting with an `instead_of` prefix from `base` instead.
///
/// Missing values are added; other `insteadOf` values of the same base and
/// the rest of the file (comments, order) are kept. The file is edited as
/// for `git_config`, with the same refusals.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// The git config file to edit.
    #[serde(default)]
    scope: Scope,
    /// What to fetch from instead, e.g. `git@git.example.com:`; no control characters.
    #[schemars(with = "String", length(min = 1))]
    base: Spanned<String>,
    /// The URL prefix(es) to rewrite, e.g. `https://git.example.com/`; each
    /// prefix once, no NUL or newline.
    #[schemars(with = "OneOrMany")]
    instead_of: Spanned<OneOrMany>,
}

#[derive(Debug)]
struct Rewrite {
    scope: Scope,
    base: String,
    instead_of: Vec<String>,
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let spec: Spec = b.deserialize(value)?;
    let at = spec.instead_of.span();
    let instead_of = spec.instead_of.into_inner().into_vec();
    if spec.base.get_ref().is_empty() {
        return Err(b.error(&spec.base.span(), "`base` is empty"));
    }
    if instead_of.is_empty() || instead_of.iter().any(String::is_empty) {
        return Err(b.error(&at, "`instead_of` needs one or more non-empty URL prefixes"));
    }
    // libgit2 writes a tab or backspace in a section name as an escape
    // that git (and libgit2) read back as a plain letter.
    if spec.base.get_ref().contains(char::is_control) {
        return Err(b.error(
            &spec.base.span(),
            "`base` cannot contain a control character (tab, newline, ...)",
        ));
    }
    for (i, s) in instead_of.iter().enumerate() {
        if s.contains(['\0', '\n']) {
            return Err(b.error(&at, "a URL prefix cannot contain a NUL or a newline"));
        }
        if instead_of[..i].contains(s) {
            return Err(b.error(&at, format!("`{s}` is listed twice")));
        }
    }
    Ok(Box::new(Rewrite {
        scope: spec.scope,
        base: spec.base.into_inner(),
        instead_of,
    }))
}

impl Resource for Rewrite {
    fn kind(&self) -> &'static str {
        "git_url_rewrite"
    }

    fn subject(&self) -> String {
        format!("{}:{}", self.scope.describe(), self.base)
    }

    fn claims(&self) -> Vec<Claim> {
        // Adds its values and keeps others: rewrites of one base add up.
        let key = gitconfig::normal_key(&format!("url.{}.insteadOf", self.base));
        vec![Claim::named(
            &self.scope.describe(),
            Part::AddsTo(key),
            "base",
        )]
    }

    fn observes(&self, cx: &Context) -> Vec<std::path::PathBuf> {
        vec![self.scope.path(cx)]
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let key = format!("url.{}.insteadOf", self.base);
        gitconfig::plan_edit(host, self.scope.path(cx), &key, |config| {
            let mut values = gitconfig::values(config, &key)?;
            let mut changed = false;
            for v in &self.instead_of {
                if !values.contains(v) {
                    // A pattern matching only this value: adds it, never
                    // replaces another.
                    gitconfig::add_value(config, &key, v)?;
                    values.push(v.clone());
                    changed = true;
                }
            }
            Ok(changed.then_some(values))
        })
    }
}

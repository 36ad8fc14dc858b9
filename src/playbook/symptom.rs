//! `[[symptom]]`: what an error log looks like when this playbook is the
//! fix. `fixer diagnose` knows only what playbooks declare here.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::source::Source;
use super::vars::Vars;
use crate::error::Error;

/// Confidence of a symptom that does not declare one.
pub const DEFAULT_CONFIDENCE: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct Symptom {
    /// The regular expression as written.
    pub pattern: String,
    pub regex: regex::Regex,
    pub description: Option<String>,
    /// A short name for the kind of failure (`dns`, `private_module`).
    pub category: Option<String>,
    /// How sure a match makes us that this playbook is the fix, in (0, 1].
    pub confidence: f64,
    /// Fixed `--var` values this symptom implies, besides its captures.
    pub vars: BTreeMap<String, String>,
}

/// What an error log looks like when this playbook is the fix. `fixer
/// diagnose` knows nothing else: a playbook with symptoms, dropped in
/// `~/.config/fixer/playbooks` (or a `--playbooks DIR`), is diagnosed like
/// the shipped ones. `fixer validate` checks every field.
///
/// Write patterns that tell causes apart rather than relying on confidence:
/// the proxy symptoms of `go-proxy-mirror` require an address that resolved
/// (`dial tcp 1.2.3.4:443`), so a DNS timeout goes to `netplan-static-dns`.
/// Every symptom of the shipped playbooks is listed in
/// [symptoms.md](symptoms.md).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Decl {
    /// A regular expression ([Rust `regex`
    /// syntax](https://docs.rs/regex/latest/regex/#syntax): no look-around or
    /// back-references) matched against each line of the log, and against
    /// wrapped lines rejoined. Named captures (`(?P<private_host>[\w.-]+)`:
    /// keep them narrow, or a quote or a port comes along) become `--var`
    /// values, so each capture must be a variable in `[vars]`, and not a
    /// sensitive one (diagnose prints what it reads). A pattern that matches
    /// an empty text is refused: it would match every log.
    #[schemars(length(min = 1))]
    pattern: String,
    /// What the match means, shown next to the matching line.
    #[serde(default)]
    description: Option<String>,
    /// A short name for the kind of failure (`dns`, `private_module`), shown
    /// and in JSON.
    #[serde(default)]
    category: Option<String>,
    /// How sure a match makes you that this playbook is the fix, in (0, 1];
    /// default 0.5. Matching symptoms of one playbook on different lines
    /// combine as independent evidence: 1 − (1 − c₁)(1 − c₂)…; on one line,
    /// only the most confident counts.
    #[serde(default)]
    #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 1))]
    confidence: Option<f64>,
    /// `--var` values this symptom implies besides its captures, e.g.
    /// `{ via = "https" }`; `{{name}}` is replaced by the capture `name`
    /// (`group = "{{user}}"`), and the value is left out when that capture
    /// took no part in the match. Symptoms whose `vars` contradict a more
    /// confident one's are not counted.
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

/// Read and check every `[[symptom]]`: the pattern compiles, its named
/// captures and its `vars` are variables of the playbook.
pub(super) fn declare_all(
    source: &Source,
    whole: &DeTable<'_>,
    vars: &Vars,
) -> Result<Vec<Symptom>, Error> {
    let mut out = Vec::new();
    for (i, item) in super::array_of_tables(source, whole, "symptom")?
        .into_iter()
        .enumerate()
    {
        let prefix = format!("symptom[{i}]");
        let DeValue::Table(table) = item.get_ref() else {
            return Err(source.error(&item.span(), Some(prefix), "expected a table"));
        };
        let at = |key: &str| {
            table
                .iter()
                .find(|(k, _)| k.get_ref() == key)
                .map_or(item.span(), |(_, v)| v.span())
        };
        let decl = Decl::deserialize(toml::de::ValueDeserializer::from(item.clone()))
            .map_err(|e| source.toml_error(&e, Some(whole), ""))?;
        let regex = regex::RegexBuilder::new(&decl.pattern)
            .size_limit(1 << 22)
            .build()
            .map_err(|e| {
                source.error(
                    &at("pattern"),
                    Some(format!("{prefix}.pattern")),
                    format!("not a valid regular expression: {e}"),
                )
            })?;
        if regex.is_match("") {
            return Err(source.error(
                &at("pattern"),
                Some(format!("{prefix}.pattern")),
                "the pattern matches an empty text, so it would match every log",
            ));
        }
        for name in regex.capture_names().flatten() {
            match vars.get(name) {
                None => {
                    return Err(source.error(
                        &at("pattern"),
                        Some(format!("{prefix}.pattern")),
                        format!(
                            "the capture `{name}` is not a variable of this playbook: \
                             declare it in [vars] (captures become --var values)"
                        ),
                    ))
                }
                Some(v) if v.sensitive => {
                    return Err(source.error(
                        &at("pattern"),
                        Some(format!("{prefix}.pattern")),
                        format!(
                            "the capture `{name}` is a sensitive variable: diagnose prints \
                             what it captures"
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        for (name, value) in &decl.vars {
            let problem = match vars.get(name) {
                None => "is not a variable of this playbook".to_string(),
                Some(v) if v.sensitive => "is sensitive: diagnose would print it".to_string(),
                // A value made from captures is only known from a log.
                Some(v) if !value.contains("{{") => match v.allows(&value.as_str().into()) {
                    Ok(()) => continue,
                    Err(why) => format!("= {why}"),
                },
                Some(_) => continue,
            };
            return Err(source.error(
                &at("vars"),
                Some(format!("{prefix}.vars.{name}")),
                format!("`{name}` {problem}"),
            ));
        }
        let captures: Vec<&str> = regex.capture_names().flatten().collect();
        for (name, value) in &decl.vars {
            let mut rest = value.as_str();
            while let Some((_, after)) = rest.split_once("{{") {
                let (used, tail) = after.split_once("}}").unwrap_or((after, ""));
                if !captures.contains(&used) {
                    return Err(source.error(
                        &at("vars"),
                        Some(format!("{prefix}.vars.{name}")),
                        format!(
                            "`{{{{{used}}}}}` is not a named capture of this symptom's pattern"
                        ),
                    ));
                }
                rest = tail;
            }
        }
        let confidence = decl.confidence.unwrap_or(DEFAULT_CONFIDENCE);
        if !(confidence > 0.0 && confidence <= 1.0) {
            return Err(source.error(
                &at("confidence"),
                Some(format!("{prefix}.confidence")),
                format!("confidence must be more than 0 and at most 1, not {confidence}"),
            ));
        }
        out.push(Symptom {
            pattern: decl.pattern,
            regex,
            description: decl.description,
            category: decl.category,
            confidence,
            vars: decl.vars,
        });
    }
    Ok(out)
}

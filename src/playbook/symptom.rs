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
    /// What in a log says otherwise: its own and the playbook's `[[counter]]`s.
    pub counters: Vec<Counter>,
    /// Names a fix needed besides whatever else explains its line.
    pub also: bool,
}

/// Counter-evidence: a line that, anywhere in the log, makes a symptom
/// less likely to mean this playbook is the fix, or not at all.
#[derive(Debug, Clone)]
pub struct Counter {
    pub pattern: String,
    pub regex: regex::Regex,
    pub description: Option<String>,
    /// The symptom's confidence is multiplied by this; 0 vetoes it.
    pub factor: f64,
}

/// Counter-evidence against a symptom (`[[symptom.counter]]`), or against
/// every symptom of the playbook (`[[counter]]`): a line anywhere in the
/// log saying the fix is something else (`remote: Repository not found`:
/// the module does not exist, no credential will fetch it).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CounterDecl {
    /// A regular expression, matched against every line of the log as a
    /// symptom's is.
    #[schemars(length(min = 1))]
    pattern: String,
    /// Why it speaks against the playbook, shown when it counts.
    #[serde(default)]
    description: Option<String>,
    /// What a match multiplies the symptom's confidence by: 0 (the
    /// default) vetoes it, 0.5 halves it.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1))]
    factor: Option<f64>,
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
    /// This symptom names a fix needed besides whatever else explains its
    /// line: a private module fetched through the public proxy needs
    /// GOPRIVATE even once DNS works. `fixer fix` then applies this
    /// playbook too, and diagnose lists it as also needed.
    #[serde(default)]
    also: bool,
    /// Counter-evidence against this symptom (`[[symptom.counter]]`).
    #[serde(default)]
    counter: Vec<CounterDecl>,
}

/// A regular expression of a symptom or counter: compiles, bounded,
/// matches no empty text.
fn compile(
    source: &Source,
    pattern: &str,
    span: &std::ops::Range<usize>,
    field: String,
) -> Result<regex::Regex, Error> {
    let regex = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| {
            source.error(
                span,
                Some(field.clone()),
                format!("not a valid regular expression: {e}"),
            )
        })?;
    if regex.is_match("") {
        return Err(source.error(
            span,
            Some(field),
            "the pattern matches an empty text, so it would match every log",
        ));
    }
    Ok(regex)
}

fn counters(
    source: &Source,
    decls: Vec<CounterDecl>,
    items: Option<&[toml::Spanned<DeValue<'_>>]>,
    prefix: &str,
) -> Result<Vec<Counter>, Error> {
    let mut out = Vec::new();
    for (j, d) in decls.into_iter().enumerate() {
        let item = items.and_then(|i| i.get(j));
        let at = |key: &str| {
            item.and_then(|it| it.get_ref().as_table())
                .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == key))
                .map_or(item.map_or(0..0, |it| it.span()), |(_, v)| v.span())
        };
        let field = format!("{prefix}[{j}]");
        let regex = compile(
            source,
            &d.pattern,
            &at("pattern"),
            format!("{field}.pattern"),
        )?;
        let factor = d.factor.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&factor) {
            return Err(source.error(
                &at("factor"),
                Some(format!("{field}.factor")),
                format!("factor must be from 0 (vetoes) to 1, not {factor}"),
            ));
        }
        out.push(Counter {
            pattern: d.pattern,
            regex,
            description: d.description,
            factor,
        });
    }
    Ok(out)
}

/// The playbook's `[[counter]]`s: counter-evidence against all its symptoms.
pub(super) fn declare_counters(
    source: &Source,
    whole: &DeTable<'_>,
) -> Result<Vec<Counter>, Error> {
    let items = super::array_of_tables(source, whole, "counter")?;
    let mut decls = Vec::new();
    for item in &items {
        decls.push(
            CounterDecl::deserialize(toml::de::ValueDeserializer::from((*item).clone()))
                .map_err(|e| source.toml_error(&e, Some(whole), ""))?,
        );
    }
    let spanned: Vec<toml::Spanned<DeValue<'_>>> = items.into_iter().cloned().collect();
    counters(source, decls, Some(spanned.as_slice()), "counter")
}

/// Read and check every `[[symptom]]`: the pattern compiles, its named
/// captures and its `vars` are variables of the playbook.
pub(super) fn declare_all(
    source: &Source,
    whole: &DeTable<'_>,
    vars: &Vars,
    playbook_counters: &[Counter],
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
        let regex = compile(
            source,
            &decl.pattern,
            &at("pattern"),
            format!("{prefix}.pattern"),
        )?;
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
        let counter_items = table
            .iter()
            .find(|(k, _)| k.get_ref() == "counter")
            .and_then(|(_, v)| match v.get_ref() {
                DeValue::Array(items) => Some(&items[..]),
                _ => None,
            });
        let mut all = counters(
            source,
            decl.counter,
            counter_items,
            &format!("{prefix}.counter"),
        )?;
        all.extend(playbook_counters.iter().cloned());
        out.push(Symptom {
            pattern: decl.pattern,
            regex,
            description: decl.description,
            category: decl.category,
            confidence,
            vars: decl.vars,
            counters: all,
            also: decl.also,
        });
    }
    Ok(out)
}

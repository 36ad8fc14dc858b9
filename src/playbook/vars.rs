//! Playbook variables: `[vars]` defaults, `--vars FILE` and `--var k=v`
//! overrides (in that order of precedence, last wins), and the masking of
//! sensitive values in everything fixer prints or records.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::source::Source;
use crate::error::Error;

pub const MASK: &str = "********";

#[derive(Clone, Debug)]
pub struct Var {
    pub value: Value,
    pub sensitive: bool,
    /// The only values allowed, when declared (`choices = ["ssh", "https"]`):
    /// a typo in a `--var` is an error, not a silent fallback.
    pub choices: Option<Vec<Value>>,
    /// Where the value came from.
    pub origin: Origin,
    /// The facts of the target that give the value (`discover`), tried
    /// in order.
    pub discover: Vec<String>,
    /// Patterns reading the value from an error log (`from_log = [...]`):
    /// the capture named like the variable.
    pub from_log: Vec<regex::Regex>,
}

/// Where a variable's value came from, as a plan shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum Origin {
    /// The playbook's `[vars]`.
    Default,
    /// A fact of the target (`discover`): what was read, and where.
    Host {
        detail: String,
    },
    /// Read from the error log (`fixer fix`), on this 1-based line.
    Log {
        line: usize,
    },
    Inventory,
    /// A `--vars FILE`.
    File {
        path: PathBuf,
    },
    /// `--var` on the command line.
    Flag,
    /// The value a saved plan (`plan --out`) was made with.
    SavedPlan,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::Host { detail } => write!(f, "host: {detail}"),
            Origin::Log { line } => write!(f, "log line {line}"),
            Origin::Inventory => write!(f, "inventory"),
            Origin::File { path } => write!(f, "--vars {}", path.display()),
            Origin::Flag => write!(f, "--var"),
            Origin::SavedPlan => write!(f, "saved plan"),
        }
    }
}

/// A value found for a variable, below the inventory and the command
/// line in precedence: read from the target or from an error log, or the
/// value a saved plan was made with.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub name: String,
    pub value: Value,
    pub origin: Origin,
}

/// A scalar as a `--var` would carry it.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Var {
    /// A value given as text (`--var`) takes the type of the declared one:
    /// `--var dhcp4=false` is the boolean false, which a template's `{{#if}}`
    /// reads as false (the text "false" would be true there).
    fn coerce(&self, given: Value) -> Result<Value, String> {
        let Value::String(text) = &given else {
            return Ok(given);
        };
        match &self.value {
            Value::Bool(_) => match text.trim() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                other => Err(format!("`{other}` is not true or false")),
            },
            Value::Number(_) => {
                let t = text.trim();
                t.parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| t.parse::<f64>().map(Value::from))
                    .map_err(|_| format!("`{t}` is not a number"))
            }
            _ => Ok(given),
        }
    }

    /// `Err(why)` when the value is not one of the declared choices.
    /// Numbers compare as numbers (`--var n=1` is the choice `1.0`).
    fn check(&self) -> Result<(), String> {
        self.allows(&self.value)
    }

    /// Whether `value` may be given to this variable (its `choices`).
    pub(crate) fn allows(&self, value: &Value) -> Result<(), String> {
        let Some(choices) = &self.choices else {
            return Ok(());
        };
        let number = |v: &Value| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        let same = |c: &Value| match (number(c), number(value)) {
            (Some(a), Some(b)) if matches!(c, Value::Number(_)) => a == b,
            _ => text_of(c) == text_of(value),
        };
        if choices.iter().any(same) {
            return Ok(());
        }
        // The choices are the playbook's own; the value may be a secret.
        let value = if self.sensitive {
            MASK.to_string()
        } else {
            text_of(value)
        };
        let names: Vec<String> = choices.iter().map(text_of).collect();
        Err(format!(
            "`{value}` is not one of the choices: {}",
            names.join(", ")
        ))
    }
}

#[derive(Clone, Debug, Default)]
pub struct Vars {
    map: BTreeMap<String, Var>,
}

/// Values given besides the playbook's defaults, lowest precedence first:
/// found (on the target, then in a log), the inventory, `--vars FILE`s,
/// `--var`s.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Read from the target or a log; names the playbook does not declare
    /// are ignored.
    pub found: Vec<Found>,
    /// Inventory variables (lowest precedence first); names the playbook
    /// does not declare are ignored, as an inventory serves many playbooks.
    pub inventory: Vec<(String, Value)>,
    pub files: Vec<PathBuf>,
    pub values: Vec<(String, String)>,
    /// One of several playbooks loaded together: a `--var` or `--vars`
    /// name this one does not declare is someone else's. (Whether some
    /// playbook declares it is checked where they are put together.)
    pub partial: bool,
}

impl Overrides {
    /// With several playbooks (`partial`), a `--var` or `--vars` name that
    /// none of them declares is still a mistake.
    pub fn check_declared(&self, all: &[&Vars]) -> Result<(), Error> {
        let declared = |k: &str| all.iter().any(|v| v.contains(k));
        for (k, _) in &self.values {
            if !declared(k) {
                return Err(Error::Usage(format!(
                    "--var {k}: variable `{k}` is not declared in the [vars] of any of the playbooks"
                )));
            }
        }
        for file in &self.files {
            let src = Source::read(file)?;
            let table = DeTable::parse(&src.text).map_err(|e| src.toml_error(&e, None, ""))?;
            for (k, _) in table.get_ref().iter() {
                if !declared(k.get_ref()) {
                    return Err(src.error(
                        &k.span(),
                        Some(k.get_ref().to_string()),
                        format!(
                            "variable `{}` is not declared in the [vars] of any of the playbooks",
                            k.get_ref()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Parse one `--var k=v` argument.
    pub fn parse_var(arg: &str) -> Result<(String, String), Error> {
        match arg.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(Error::Usage(format!(
                "--var expects NAME=VALUE, got `{arg}`"
            ))),
        }
    }
}

fn scalar(v: &DeValue<'_>) -> Option<Value> {
    use serde::Deserialize as _;
    match v {
        DeValue::Array(_) | DeValue::Table(_) => None,
        DeValue::Datetime(d) => Some(Value::String(d.to_string())),
        other => Value::deserialize(toml::de::ValueDeserializer::from(Spanned::new(
            0..0,
            other.clone(),
        )))
        .ok(),
    }
}

const SHAPE: &str = "a variable is a string, number or boolean, or a table \
     { value = ..., sensitive = true, choices = [...], discover = \"...\", from_log = [...] }";

/// The JSON Schema of `[vars]`, which [`Vars::declare`] reads by hand
/// (each entry is a scalar or a `{ value, sensitive }` table).
pub(crate) fn schema() -> serde_json::Value {
    let scalar = serde_json::json!({ "type": ["string", "number", "boolean"] });
    serde_json::json!({
        "type": "object",
        "description": "The playbook's variables, used as `{{name}}` in every string of its \
    resources and handlers.\n\n\
    `name = value` (string, integer, float, boolean), or \
    `name = { value = ..., choices = [...] }` for a value that must be one of a few (`via = \
    { value = \"ssh\", choices = [\"ssh\", \"https\"] }`: `--var via=shh` is then an error), \
    `name = { value = ..., sensitive = true }` for values that must never be printed (they \
    show as `********`), nor written to fixer's state folder on the target \
    (`/var/lib/fixer`): a command's `undo`, or a handler, that uses one is not kept there to \
    be run at rollback, and rollback says so instead. The target itself gets the value where \
    the playbook puts it, and a backup of a file that already held a secret before the run \
    holds it too (mode 0600, in a 0700 folder): rollback needs those bytes. A plan saved with \
    `--out` holds every value, sensitive ones included (mode 0600).\n\n\
    Overridden by `--vars FILE`, then `--var name=value`; only declared names may be \
    overridden. A string value may use other variables, one level deep, after overrides: \
    `gomodcache = \"/home/{{user}}/go/pkg/mod\"` follows `--var user=deploy`.",
        "additionalProperties": {
            "anyOf": [
                scalar,
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["value"],
                    "properties": {
                        "value": scalar,
                        "sensitive": {
                            "type": "boolean",
                            "description": "Never printed, never kept in fixer's state folder."
                        },
                        "choices": {
                            "type": "array",
                            "minItems": 1,
                            "items": scalar,
                            "description": "The only values allowed: a `--var` (or inventory value) outside them is an error, not a silent fallback."
                        },
                        "discover": {
                            "anyOf": [
                                { "type": "string" },
                                { "type": "array", "minItems": 1, "items": { "type": "string" } }
                            ],
                            "description": "A fact of the target that gives the value at plan time (or a list of facts, tried in order), unless the value is given (the log, inventory, `--vars`, `--var`): see the guide's list of facts. When the target cannot tell, the default stays; when it shows the default is wrong for it and offers no value, planning fails, naming the variable."
                        },
                        "from_log": {
                            "type": "array",
                            "minItems": 1,
                            "items": { "type": "string" },
                            "description": "Regular expressions reading the value from an error log (`fixer fix`, `fixer diagnose`): the first match's capture named like the variable. They name a value, not a cause: they never make diagnose choose this playbook."
                        }
                    }
                }
            ]
        }
    })
}

impl Vars {
    /// Read the `[vars]` table of a playbook.
    pub fn declare(source: &Source, table: &DeTable<'_>) -> Result<Vars, Error> {
        let mut map = BTreeMap::new();
        for (k, v) in table.iter() {
            let field = Some(format!("vars.{}", k.get_ref()));
            let var = match v.get_ref() {
                DeValue::Table(t) => {
                    let mut value = None;
                    let mut sensitive = false;
                    let mut choices = None;
                    let mut discover = Vec::new();
                    let mut from_log = Vec::new();
                    for (tk, tv) in t.iter() {
                        let sub = Some(format!("vars.{}.{}", k.get_ref(), tk.get_ref()));
                        match (tk.get_ref().as_ref(), tv.get_ref()) {
                            ("value", x) => {
                                value =
                                    Some(scalar(x).ok_or_else(|| {
                                        source.error(&tv.span(), sub.clone(), SHAPE)
                                    })?)
                            }
                            ("sensitive", DeValue::Boolean(b)) => sensitive = *b,
                            ("sensitive", _) => {
                                return Err(source.error(
                                    &tv.span(),
                                    sub,
                                    "`sensitive` must be true or false",
                                ))
                            }
                            ("choices", DeValue::Array(items)) if !items.is_empty() => {
                                let mut list = Vec::new();
                                for item in items {
                                    list.push(scalar(item.get_ref()).ok_or_else(|| {
                                        source.error(
                                            &item.span(),
                                            sub.clone(),
                                            "each choice is a string, number or boolean",
                                        )
                                    })?);
                                }
                                choices = Some(list);
                            }
                            ("choices", _) => {
                                return Err(source.error(
                                    &tv.span(),
                                    sub,
                                    "`choices` is a non-empty array of the values allowed",
                                ))
                            }
                            ("discover", DeValue::String(fact)) => {
                                crate::discover::check_fact(fact)
                                    .map_err(|m| source.error(&tv.span(), sub, m))?;
                                discover = vec![fact.to_string()];
                            }
                            ("discover", DeValue::Array(items)) if !items.is_empty() => {
                                for item in items {
                                    let DeValue::String(fact) = item.get_ref() else {
                                        return Err(source.error(
                                            &item.span(),
                                            sub,
                                            "each fact is a string",
                                        ));
                                    };
                                    crate::discover::check_fact(fact).map_err(|m| {
                                        source.error(&item.span(), sub.clone(), m)
                                    })?;
                                    discover.push(fact.to_string());
                                }
                            }
                            ("discover", _) => {
                                return Err(source.error(
                                    &tv.span(),
                                    sub,
                                    "`discover` names a fact of the target, or a list of them tried in order",
                                ))
                            }
                            ("from_log", DeValue::Array(items)) if !items.is_empty() => {
                                for item in items {
                                    let DeValue::String(p) = item.get_ref() else {
                                        return Err(source.error(
                                            &item.span(),
                                            sub,
                                            "each `from_log` pattern is a string",
                                        ));
                                    };
                                    from_log.push(log_pattern(p, k.get_ref()).map_err(|m| {
                                        source.error(&item.span(), sub.clone(), m)
                                    })?);
                                }
                            }
                            ("from_log", _) => {
                                return Err(source.error(
                                    &tv.span(),
                                    sub,
                                    "`from_log` is a non-empty array of regular expressions",
                                ))
                            }
                            (other, _) => {
                                return Err(source.error(
                                    &tk.span(),
                                    sub,
                                    format!(
                                        "unknown field `{other}`, expected `value`, `sensitive`, `choices`, `discover` or `from_log`"
                                    ),
                                ))
                            }
                        }
                    }
                    let value = value.ok_or_else(|| {
                        source.error(&v.span(), field.clone(), "missing field `value`")
                    })?;
                    if sensitive && (!from_log.is_empty() || !discover.is_empty()) {
                        return Err(source.error(
                            &v.span(),
                            field.clone(),
                            "a sensitive variable cannot be read from a log or the target: \
                             fixer prints where each value came from",
                        ));
                    }
                    let var = Var {
                        value,
                        sensitive,
                        choices,
                        origin: Origin::Default,
                        discover,
                        from_log,
                    };
                    var.check().map_err(|m| {
                        let at = t
                            .iter()
                            .find(|(tk, _)| tk.get_ref() == "value")
                            .map_or(v.span(), |(_, tv)| tv.span());
                        source.error(&at, Some(format!("vars.{}.value", k.get_ref())), m)
                    })?;
                    var
                }
                other => Var {
                    value: scalar(other).ok_or_else(|| source.error(&v.span(), field, SHAPE))?,
                    sensitive: false,
                    choices: None,
                    origin: Origin::Default,
                    discover: Vec::new(),
                    from_log: Vec::new(),
                },
            };
            map.insert(k.get_ref().to_string(), var);
        }
        Ok(Vars { map })
    }

    /// Apply `--vars FILE`s, then `--var`s. Only declared variables may be
    /// overridden: a typo would otherwise silently leave the default in place.
    pub fn apply_overrides(&mut self, o: &Overrides) -> Result<(), Error> {
        for f in &o.found {
            if let Some(var) = self.map.get_mut(&f.name) {
                var.value = var
                    .coerce(f.value.clone())
                    .map_err(|m| Error::Usage(format!("`{}` ({}): {m}", f.name, f.origin)))?;
                var.origin = f.origin.clone();
                var.check()
                    .map_err(|m| Error::Usage(format!("`{}` ({}): {m}", f.name, f.origin)))?;
            }
        }
        for (k, v) in &o.inventory {
            if let Some(var) = self.map.get_mut(k) {
                var.value = v.clone();
                var.origin = Origin::Inventory;
                var.check()
                    .map_err(|m| Error::Usage(format!("inventory variable `{k}`: {m}")))?;
            }
        }
        for file in &o.files {
            let src = Source::read(file)?;
            let table = DeTable::parse(&src.text).map_err(|e| src.toml_error(&e, None, ""))?;
            for (k, v) in table.get_ref().iter() {
                let value = scalar(v.get_ref())
                    .ok_or_else(|| src.error(&v.span(), Some(k.get_ref().to_string()), SHAPE))?;
                let origin = Origin::File { path: file.clone() };
                self.set(k, value, origin, o.partial, |msg| {
                    src.error(&k.span(), Some(k.get_ref().to_string()), msg)
                })?;
            }
        }
        for (k, v) in &o.values {
            let name = Spanned::new(0..0, std::borrow::Cow::Borrowed(k.as_str()));
            self.set(
                &name,
                Value::String(v.clone()),
                Origin::Flag,
                o.partial,
                |msg| Error::Usage(format!("--var {k}: {msg}")),
            )?;
        }
        Ok(())
    }

    fn set(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        value: Value,
        origin: Origin,
        partial: bool,
        err: impl Fn(String) -> Error,
    ) -> Result<(), Error> {
        match self.map.get_mut(name.get_ref().as_ref()) {
            Some(var) => {
                var.value = var.coerce(value).map_err(&err)?;
                var.origin = origin;
                var.check().map_err(err)
            }
            None if partial => Ok(()),
            None => Err(err(format!(
                "variable `{}` is not declared in the playbook's [vars]{}",
                name.get_ref(),
                self.known()
            ))),
        }
    }

    fn known(&self) -> String {
        if self.map.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = self.map.keys().map(String::as_str).collect();
            format!(" (declared: {})", names.join(", "))
        }
    }

    /// Let string values use other variables (`gomodcache =
    /// "/home/{{user}}/go/pkg/mod"`): each is rendered once against the
    /// others' values, so one level of reference resolves. `render` gets the
    /// variable's name and its template.
    pub fn resolve_references(
        &mut self,
        mut render: impl FnMut(&str, &str) -> Result<String, Error>,
    ) -> Result<(), Error> {
        let mut resolved = Vec::new();
        for (name, var) in &self.map {
            if let Value::String(s) = &var.value {
                if s.contains("{{") {
                    resolved.push((name.clone(), render(name, s)?));
                }
            }
        }
        for (name, value) in resolved {
            if let Some(var) = self.map.get_mut(&name) {
                var.value = Value::String(value);
            }
        }
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.map.get(name)
    }

    /// Variables by name, with their current values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The data templates render against.
    pub fn data(&self) -> Value {
        Value::Object(
            self.map
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
        )
    }

    /// Every value as the string a `--var` would carry (saved plans).
    pub fn as_overrides(&self) -> Vec<(String, String)> {
        self.map
            .iter()
            .map(|(k, v)| (k.clone(), text_of(&v.value)))
            .collect()
    }

    pub fn masker(&self) -> Masker {
        let mut secrets: Vec<String> = self
            .map
            .values()
            .filter(|v| v.sensitive)
            .map(|v| text_of(&v.value))
            .filter(|s| !s.is_empty())
            .collect();
        // A diff is shown line by line: each line of a multi-line secret
        // (a private key) is a secret of its own there.
        let lines: Vec<String> = secrets
            .iter()
            .filter(|s| s.contains('\n'))
            .flat_map(|s| s.lines().map(|l| l.trim_end_matches('\r').to_string()))
            .filter(|l| !l.trim().is_empty())
            .collect();
        secrets.extend(lines);
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Masker { secrets }
    }
}

/// A `from_log` pattern: it compiles, and captures the variable's value.
fn log_pattern(pattern: &str, name: &str) -> Result<regex::Regex, String> {
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| format!("not a valid regular expression: {e}"))?;
    if !re.capture_names().flatten().any(|n| n == name) {
        return Err(format!(
            "the pattern has no capture `(?P<{name}>...)` for the value of `{name}`"
        ));
    }
    if re.is_match("") {
        return Err("the pattern matches an empty text, so it would match every log".into());
    }
    Ok(re)
}

/// Replaces sensitive values with `********` in text meant for people or logs.
#[derive(Clone, Debug, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    /// Also mask what `other` masks.
    pub fn extend(&mut self, other: &Masker) {
        self.secrets.extend(other.secrets.iter().cloned());
        self.secrets
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.secrets.dedup();
    }

    /// Where the first sensitive value in `text` starts (a byte index).
    pub fn find(&self, text: &str) -> Option<usize> {
        self.secrets
            .iter()
            .filter_map(|s| text.find(s.as_str()))
            .min()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_longest_secret_first() {
        let m = Masker {
            secrets: vec!["abcdef".into(), "abc".into()],
        };
        assert_eq!(m.mask("x abcdef y abc"), format!("x {MASK} y {MASK}"));
    }

    #[test]
    fn inventory_values_are_held_to_choices_too() {
        let text = "[playbook]\nname = \"t\"\n[vars]\nvia = { value = \"ssh\", choices = [\"ssh\", \"https\"] }\n";
        let load = |value: &str| {
            let overrides = Overrides {
                inventory: vec![("via".into(), Value::String(value.into()))],
                ..Overrides::default()
            };
            crate::playbook::Playbook::parse(
                std::path::Path::new("p.toml"),
                text.into(),
                &overrides,
            )
        };
        assert!(load("https").is_ok());
        let err = load("ftp").err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            err,
            "inventory variable `via`: `ftp` is not one of the choices: ssh, https"
        );
    }

    #[test]
    fn choices_compare_numbers_as_numbers_and_never_print_a_secret() {
        let var = |value: Value, choices: Value, sensitive: bool| Var {
            value,
            sensitive,
            choices: choices.as_array().cloned(),
            origin: Origin::Default,
            discover: Vec::new(),
            from_log: Vec::new(),
        };
        let j = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
        assert!(var(j("\"1\""), j("[1.0, 2.5]"), false).check().is_ok());
        assert!(var(j("1.0"), j("[1, 2]"), false).check().is_ok());
        assert!(var(j("\"2.5\""), j("[1.0, 2.5]"), false).check().is_ok());
        assert!(var(j("3"), j("[1, 2]"), false).check().is_err());
        // A string choice stays a string: "01" is not "1".
        assert!(var(j("\"01\""), j("[\"1\"]"), false).check().is_err());
        let err = var(j("\"hunter2\""), j("[\"a\"]"), true)
            .check()
            .err()
            .unwrap_or_default();
        assert_eq!(err, format!("`{MASK}` is not one of the choices: a"));
    }

    #[test]
    fn parse_var_requires_equals() {
        assert!(Overrides::parse_var("novalue").is_err());
        assert_eq!(
            Overrides::parse_var("a=b=c").ok(),
            Some(("a".to_string(), "b=c".to_string()))
        );
    }
}

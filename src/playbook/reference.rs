//! docs/playbook.md, rendered from [`super::schema::json_schema`]: every
//! section, resource type and field, with its type, default and meaning, as
//! the loader's own types declare them. `fixer schema --markdown` prints it;
//! a test keeps the committed page equal to it.

use std::fmt::Write as _;

use serde_json::Value;

const INTRO: &str = "\
A playbook is a TOML file. Unknown sections and unknown fields are errors,
reported as `file:line:column: field `resource[2].mode`: message`.
`fixer schema` prints the same format as a JSON Schema, for editors
([guide](guide.md#editor-support)).

This page is generated from the code by `fixer schema --markdown`; edit the
doc comments of the types in `src/resource/` and `src/playbook/`, then run
`FIXER_UPDATE_DOCS=1 cargo test --test integration schema`.
";

const TEMPLATES: &str = "\
Every string in a `[[resource]]` or `[[handler]]` is a Handlebars template
rendered against the variables, strictly: `{{name}}` of an undeclared
variable is an error. Nothing is HTML-escaped. In the shell-line fields of
`command` (`run`, `unless`, `only_if`, `undo` written as strings) each
substituted value is shell-quoted, so a value holding quotes, `;`, `$()` or
newlines reaches the command as one word; the Handlebars forms that skip
escaping (`{{{name}}}`, `{{&name}}`) are refused there, since they would
splice a value into the shell line. In argv arrays, values are passed as
they are. Template *files* (`template = \"...\"`) are relative to the
playbook's directory.

Inline partials (`{{#*inline \"row\"}}...{{/inline}}`, then `{{> row}}`)
work; one that includes itself, directly or through another, is refused at
load, naming the template line and the cycle (it would never end), and so is
a partial named by an expression, which cannot be checked.

One helper is there besides Handlebars' own: `{{go_escape module}}` spells
a Go module path as the module cache and proxies do on disk, each capital
letter as `!` and its lower case (`github.com/Azure/x` →
`github.com/!azure/x`).

A field with fixed values (`on_fail`, `state`, `style`) may be a template
too (`on_fail = \"{{probe_on_fail}}\"`); the rendered value must be one of
them.
";

const RULES: &str = "\
- **Paths are taken in normal form**: `/etc/./x`, `/etc//x/` and `/etc/y/../x`
  are all `/etc/x`; a `..` just below `~` is resolved once the target tells
  where `~` is. `..` never climbs above `/`.
- **One thing, one resource.** Two resources managing the same file's content
  (`file`, `netplan`, the `go.mod`/`go.sum` of `go_mod_tidy`, a `clean` path
  without wildcards), the same key of a config file (an `env` variable, a
  `git_config` key however it is capitalised, or a `git_config` key and a
  `git_url_rewrite` of the same base) or the same path's mode and owner are
  refused at load: each apply would undo the other and the playbook would
  never converge. `git_url_rewrite`s of one base add up, so they may be split.
- **Removals are guarded**, whatever a resource declares (a glob or an empty
  variable gone wrong: `/home/{{user}}/` with no user is `/home`): fixer
  refuses to remove `/` or a top-level directory, the home directory or one
  holding it, and its state folder `/var/lib/fixer` or one holding it, and no
  resource may change anything inside that folder. The plan already fails,
  naming the path.
- **Symlinks** on the way to a path are followed only when root or the user
  fixer acts as owns them, and under `--root` only inside the root; the final
  component is never followed ([guide](guide.md#symlinks-on-the-way-to-a-path)).
";

/// The reference page, in Markdown.
pub fn markdown() -> String {
    let schema = super::schema::json_schema();
    let props = &schema["properties"];
    let mut out = String::from("# Playbook reference\n\n");
    out.push_str(INTRO);

    section(&mut out, "`[playbook]` (required)", &props["playbook"]);
    fields(&mut out, &props["playbook"]);
    section(&mut out, "`[vars]`", &props["vars"]);
    section(&mut out, "`[[symptom]]`", &props["symptom"]["items"]);
    fields(&mut out, &props["symptom"]["items"]);
    let _ = write!(out, "\n## Templates\n\n{TEMPLATES}\n## Value types\n\n");
    value_types(&mut out);
    let _ = write!(out, "\n## Rules for every resource\n\n{RULES}");

    let definitions = schema["definitions"].as_object();
    let kinds: Vec<(&String, &Value)> = definitions
        .map(|d| d.iter().filter(|(name, _)| *name != "handler").collect())
        .unwrap_or_default();
    out.push_str("\n## Common resource fields\n\n");
    table_head(&mut out);
    if let Some((_, first)) = kinds.first() {
        for name in ["type", "id", "notify"] {
            let mut field = first["properties"][name].clone();
            if name == "type" {
                field = serde_json::json!({
                    "title": kinds.iter().map(|(k, _)| format!("`\"{k}\"`")).collect::<Vec<_>>().join(", "),
                    "description": "The resource type.",
                });
            }
            row(&mut out, name, &field, name == "type");
        }
    }
    for (name, def) in kinds {
        let title = if name == "command" {
            "`command` (and `[[handler]]`)".to_string()
        } else {
            format!("`{name}`")
        };
        section(&mut out, &title, def);
        fields(&mut out, def);
    }
    out
}

/// The types the field tables name (`path`, `mode`, `name or id`).
fn value_types(out: &mut String) {
    use crate::resource::attributes::{Account, Mode};
    use crate::resource::TargetPath;
    use schemars::JsonSchema;
    let mut g = schemars::SchemaGenerator::default();
    for schema in [
        TargetPath::json_schema(&mut g),
        Mode::json_schema(&mut g),
        Account::json_schema(&mut g),
    ] {
        let title = schema
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let text = schema
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let _ = writeln!(out, "- **{title}**: {text}");
    }
}

fn section(out: &mut String, title: &str, schema: &Value) {
    let _ = write!(out, "\n## {title}\n\n");
    if let Some(d) = schema["description"].as_str() {
        out.push_str(d);
        out.push('\n');
    }
}

fn table_head(out: &mut String) {
    out.push_str("| field | type | default | |\n|---|---|---|---|\n");
}

/// The table of a section's own fields (not `type`, `id`, `notify`).
fn fields(out: &mut String, schema: &Value) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push('\n');
    table_head(out);
    // A resource type's `type`, `id` and `notify` are in the common table.
    let common = schema["properties"]["type"].get("const").is_some();
    for (name, field) in props {
        if common && ["type", "id", "notify"].contains(&name.as_str()) {
            continue;
        }
        row(out, name, field, required.contains(&name.as_str()));
    }
}

fn row(out: &mut String, name: &str, field: &Value, required: bool) {
    let default = if required {
        "required".to_string()
    } else {
        field
            .get("default")
            .map(|d| format!("`{}`", toml_text(d)))
            .unwrap_or_default()
    };
    let description = field["description"]
        .as_str()
        .unwrap_or_default()
        .replace('\n', " ")
        .replace('|', "\\|");
    let _ = writeln!(
        out,
        "| `{name}` | {} | {default} | {description} |",
        type_text(field).replace('|', "\\|")
    );
}

/// A schema's type as a reader of TOML would say it.
fn type_text(schema: &Value) -> String {
    if let Some(title) = schema["title"].as_str() {
        return title.to_string();
    }
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .map(|v| format!("`{}`", toml_text(v)))
            .collect::<Vec<_>>()
            .join(", ");
    }
    if let Some(options) = schema["anyOf"].as_array().or(schema["oneOf"].as_array()) {
        return options
            .iter()
            .filter(|o| o["title"] != super::schema::TEMPLATE)
            .map(type_text)
            .collect::<Vec<_>>()
            .join(" or ");
    }
    let one = |t: &str| match t {
        "string" => "string".to_string(),
        "integer" => "integer".to_string(),
        "number" => "float".to_string(),
        "boolean" => "bool".to_string(),
        "array" => format!("array of {}", plural(&type_text(&schema["items"]))),
        "object" => match &schema["additionalProperties"] {
            Value::Object(_) => format!(
                "table of {}",
                plural(&type_text(&schema["additionalProperties"]))
            ),
            _ => "table".to_string(),
        },
        other => other.to_string(),
    };
    match &schema["type"] {
        Value::String(t) => one(t),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(one)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_string(),
    }
}

fn plural(noun: &str) -> String {
    if noun.contains(' ') || noun.contains('`') {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

/// A default value as it would be written in the playbook.
fn toml_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

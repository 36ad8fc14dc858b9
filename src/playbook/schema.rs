//! The playbook format as a JSON Schema (draft-07, which taplo and Even
//! Better TOML read), made from the same types the loader deserializes: each
//! resource type's `Spec` through [`crate::resource::Kind::schema`], the
//! `[playbook]` header and `[[symptom]]` through their derives, and `[vars]`
//! (read by hand) from [`super::vars::schema`]. docs/playbook.md is rendered
//! from this value ([`reference`]), so neither can drift from the code.

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::resource::{Kind, KINDS};

/// Where schema consumers (editors) find it: the `$id` of the document.
pub const SCHEMA_ID: &str = "https://fixer.invalid/playbook.schema.json";

fn generator() -> SchemaGenerator {
    SchemaSettings::draft07()
        .with(|s| {
            // One self-contained object per resource type, which
            // docs/playbook.md renders as one table.
            s.inline_subschemas = true;
        })
        .for_deserialize()
        .into_generator()
}

fn object(schema: schemars::Schema) -> Map<String, Value> {
    let mut value = schema.to_value();
    drop_null(&mut value);
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Every string in a resource is rendered as a template before it is
/// read, so a field with fixed values (`on_fail = "{{probe_on_fail}}"`)
/// may hold a template instead: the rendered value is checked by
/// `fixer validate`.
fn allow_templates(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(allow_templates);
            let strings = map
                .get("enum")
                .and_then(Value::as_array)
                .is_some_and(|e| e.iter().all(Value::is_string));
            if strings {
                let mut fixed = Map::new();
                for key in ["type", "enum"] {
                    if let Some(v) = map.remove(key) {
                        fixed.insert(key.into(), v);
                    }
                }
                map.insert(
                    "anyOf".into(),
                    json!([fixed, { "title": TEMPLATE, "type": "string", "pattern": "\\{\\{" }]),
                );
            }
        }
        Value::Array(items) => items.iter_mut().for_each(allow_templates),
        _ => {}
    }
}

/// The title of the schema that admits a template where fixed values are
/// expected (docs/playbook.md leaves it out of the field's type).
pub const TEMPLATE: &str = "template";

/// TOML has no null: an `Option` field is simply left out, so the `null`
/// schemars allows for it would only mislead an editor.
fn drop_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(options)) = map.get_mut(key) {
                    options.retain(|o| o.get("type").is_none_or(|t| t != "null"));
                    if options.len() == 1 && key == "anyOf" {
                        if let Some(Value::Object(only)) = options.pop() {
                            map.remove(key);
                            for (k, v) in only {
                                map.entry(k).or_insert(v);
                            }
                        }
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// What every `[[resource]]` table has besides its type's fields.
fn common_fields(kind: &str, handler: bool) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert(
        "type".into(),
        json!({
            "const": kind,
            "description": if handler {
                "Optional: `command` is the only handler type."
            } else {
                "The resource type."
            },
        }),
    );
    fields.insert(
        "id".into(),
        json!({
            "type": "string",
            "minLength": 1,
            "description": if handler {
                "Required: what resources name in `notify`."
            } else {
                "Unique among the resources; default `<type>:<subject>` (e.g. `file:/etc/motd`)."
            },
        }),
    );
    if !handler {
        fields.insert(
            "notify".into(),
            json!({
                "type": "array",
                "items": { "type": "string" },
                "description": "Ids of handlers to run at the end if this resource changed something.",
            }),
        );
    }
    fields
}

/// One resource type's table: its `Spec` plus `type`, `id`, `notify`.
fn kind_schema(kind: &Kind, g: &mut SchemaGenerator, handler: bool) -> Value {
    let mut schema = object((kind.schema)(g));
    schema.values_mut().for_each(allow_templates);
    let mut properties = common_fields(kind.name, handler);
    if let Some(Value::Object(own)) = schema.remove("properties") {
        properties.extend(own);
    }
    let mut required: Vec<Value> = match schema.remove("required") {
        Some(Value::Array(r)) => r,
        _ => Vec::new(),
    };
    required.insert(0, json!(if handler { "id" } else { "type" }));
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("required".into(), Value::Array(required));
    Value::Object(schema)
}

/// The JSON Schema of a playbook, as `fixer schema` prints it.
pub fn json_schema() -> Value {
    let mut g = generator();
    let header = Value::Object(object(g.subschema_for::<super::Header>()));
    let symptom = Value::Object(object(g.subschema_for::<super::symptom::Decl>()));
    let counter = Value::Object(object(g.subschema_for::<super::symptom::CounterDecl>()));
    let mut definitions = Map::new();
    let mut dispatch = Vec::new();
    for kind in KINDS {
        definitions.insert(kind.name.to_string(), kind_schema(kind, &mut g, false));
        // `if`/`then` rather than `oneOf`: a mistake is reported against the
        // declared type only, not as "matches none of ten".
        dispatch.push(json!({
            "if": { "properties": { "type": { "const": kind.name } }, "required": ["type"] },
            "then": { "$ref": format!("#/definitions/{}", kind.name) },
        }));
    }
    let handler = KINDS
        .iter()
        .find(|k| k.name == "command")
        .map(|k| kind_schema(k, &mut g, true))
        .unwrap_or(Value::Null);
    definitions.insert("handler".into(), handler);
    let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "fixer playbook",
        "description": "A fixer playbook: the desired state of a Linux host (docs/playbook.md).",
        "type": "object",
        "additionalProperties": false,
        "required": ["playbook"],
        "properties": {
            "playbook": header,
            "vars": super::vars::schema(),
            "symptom": {
                "type": "array",
                "description": "`[[symptom]]`: what an error log looks like when this playbook is the fix.",
                "items": symptom,
            },
            "counter": {
                "type": "array",
                "description": "`[[counter]]`: counter-evidence against every symptom of this playbook: a line that, anywhere in the log, says the fix is something else.",
                "items": counter,
            },
            "resource": {
                "type": "array",
                "description": "`[[resource]]`: the desired state, one table per thing, applied in order.",
                "items": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": { "enum": names, "description": "The resource type." }
                    },
                    "allOf": dispatch,
                },
            },
            "handler": {
                "type": "array",
                "description": "`[[handler]]`: commands run once, at the end, when a resource that notifies them changed something.",
                "items": { "$ref": "#/definitions/handler" },
            },
        },
        "definitions": definitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_definition_and_a_dispatch_entry() {
        let schema = json_schema();
        for kind in KINDS {
            let def = &schema["definitions"][kind.name];
            assert_eq!(def["properties"]["type"]["const"], kind.name);
            assert_eq!(def["additionalProperties"], false, "{}", kind.name);
        }
        let dispatch = schema["properties"]["resource"]["items"]["allOf"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(dispatch, KINDS.len());
    }
}

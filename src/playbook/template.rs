//! Handlebars rendering, strict: an undefined variable is an error, never an
//! empty string in a file. Two registries, because a value spliced into a
//! shell line must arrive quoted while one written into a file must not.

use handlebars::Handlebars;
use serde_json::Value;

pub struct Renderer {
    plain: Handlebars<'static>,
    shell: Handlebars<'static>,
    data: Value,
}

/// Quote a value so `sh` reads it back as exactly one word, whatever it holds.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A module path as Go's module cache and proxies spell it on disk: each
/// capital letter as `!` and its lower case (`github.com/Azure/x` is
/// `github.com/!azure/x`), as golang.org/x/mod/module.EscapePath does, so
/// a path read from an error message finds its cache directory. A path
/// already escaped has no capitals and is left as it is.
pub fn go_escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

handlebars::handlebars_helper!(go_escape: |path: str| go_escape_path(path));

impl Renderer {
    pub fn new(data: Value) -> Self {
        let registry = |escape: fn(&str) -> String| {
            let mut r = Handlebars::new();
            r.set_strict_mode(true);
            r.register_escape_fn(escape);
            r.register_helper("go_escape", Box::new(go_escape));
            r
        };
        Renderer {
            plain: registry(handlebars::no_escape),
            shell: registry(shell_quote),
            data,
        }
    }

    /// Render one template string. `shell` quotes every substituted value.
    pub fn render(&self, template: &str, shell: bool) -> Result<String, String> {
        self.render_with(template, shell, None)
    }

    /// Render with extra variables layered over the playbook's (a resource's
    /// own `vars`).
    pub fn render_with(
        &self,
        template: &str,
        shell: bool,
        extra: Option<&serde_json::Map<String, Value>>,
    ) -> Result<String, String> {
        if !template.contains("{{") {
            return Ok(template.to_string());
        }
        if let Some(why) = recursive_partial(template) {
            return Err(why);
        }
        if shell {
            if let Some((line, column)) = unescaped_expression(template) {
                return Err(format!(
                    "template line {line}, column {column}: `{{{{{{...}}}}}}` and `{{{{&...}}}}` \
                     substitute a value unquoted, which a shell line does not allow: write \
                     `{{{{...}}}}`, which quotes it"
                ));
            }
        }
        let registry = if shell { &self.shell } else { &self.plain };
        let result = match extra {
            Some(extra) => {
                let mut data = self.data.clone();
                if let Value::Object(map) = &mut data {
                    map.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                registry.render_template(template, &data)
            }
            None => registry.render_template(template, &self.data),
        };
        result.map_err(|e| describe(&e))
    }
}

/// Where the template has its first `{{{x}}}` or `{{&x}}` (the forms
/// Handlebars never escapes), searched through every block, inverse,
/// inline partial and partial block; `None` also when it does not compile
/// (rendering reports that).
fn unescaped_expression(template: &str) -> Option<(usize, usize)> {
    use handlebars::template::{Template, TemplateElement};
    fn walk(t: &Template) -> Option<(usize, usize)> {
        for (i, element) in t.elements.iter().enumerate() {
            let at = || t.mapping.get(i).map_or((1, 1), |m| (m.0, m.1));
            let nested = match element {
                TemplateElement::HtmlExpression(_) => return Some(at()),
                TemplateElement::Expression(h) | TemplateElement::HelperBlock(h) => {
                    [h.template.as_ref(), h.inverse.as_ref()]
                }
                TemplateElement::DecoratorExpression(d)
                | TemplateElement::DecoratorBlock(d)
                | TemplateElement::PartialExpression(d)
                | TemplateElement::PartialBlock(d) => [d.template.as_ref(), None],
                // Text and comments (and any kind added later) substitute nothing.
                _ => [None, None],
            };
            if let Some(found) = nested.into_iter().flatten().find_map(walk) {
                return Some(found);
            }
        }
        None
    }
    walk(&Template::compile(template).ok()?)
}

/// Why rendering `template` could recurse without end, if it could: a
/// partial including itself, directly or through others. Handlebars has
/// no depth limit, and the stack overflow ends the process. Partials here
/// are the template's own inline ones (fixer registers none), so their
/// graph is known before rendering; a partial named by an expression is
/// refused, as it cannot be checked. `None` also when the template does
/// not compile (rendering reports that).
fn recursive_partial(template: &str) -> Option<String> {
    use handlebars::template::{Parameter, Template, TemplateElement};
    use std::collections::BTreeMap;
    /// A partial included, and where (line, column).
    type Use = (String, (usize, usize));
    /// Inline partials defined: name -> the partials their bodies include.
    type Defs = BTreeMap<String, Vec<Use>>;
    /// The partials `t` includes, and the inline ones it defines.
    fn walk(t: &Template, uses: &mut Vec<Use>, defs: &mut Defs) -> Result<(), String> {
        for (i, element) in t.elements.iter().enumerate() {
            let at = t.mapping.get(i).map_or((1, 1), |m| (m.0, m.1));
            match element {
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    let Some(name) = d.name.as_name() else {
                        return Err(format!(
                            "template line {}, column {}: a partial named by an expression \
                             cannot be checked for recursion; name it",
                            at.0, at.1
                        ));
                    };
                    if !name.starts_with('@') {
                        uses.push((name.to_string(), at));
                    }
                    if let Some(body) = &d.template {
                        walk(body, uses, defs)?;
                    }
                }
                TemplateElement::DecoratorBlock(d) if d.name.as_name() == Some("inline") => {
                    let name = match d.params.first() {
                        Some(Parameter::Literal(serde_json::Value::String(n))) => n.clone(),
                        _ => continue,
                    };
                    let mut inner = Vec::new();
                    if let Some(body) = &d.template {
                        walk(body, &mut inner, defs)?;
                    }
                    defs.entry(name).or_default().extend(inner);
                }
                TemplateElement::Expression(h) | TemplateElement::HelperBlock(h) => {
                    for body in [h.template.as_ref(), h.inverse.as_ref()]
                        .into_iter()
                        .flatten()
                    {
                        walk(body, uses, defs)?;
                    }
                }
                TemplateElement::DecoratorExpression(d) | TemplateElement::DecoratorBlock(d) => {
                    if let Some(body) = &d.template {
                        walk(body, uses, defs)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
    fn cycle(name: &str, defs: &Defs, path: &mut Vec<String>) -> Option<Vec<String>> {
        if path.iter().any(|p| p == name) {
            path.push(name.to_string());
            return Some(path.clone());
        }
        path.push(name.to_string());
        for (next, _) in defs.get(name).into_iter().flatten() {
            if let Some(found) = cycle(next, defs, path) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let compiled = Template::compile(template).ok()?;
    let (mut uses, mut defs): (Vec<Use>, Defs) = (Vec::new(), BTreeMap::new());
    if let Err(why) = walk(&compiled, &mut uses, &mut defs) {
        return Some(why);
    }
    let starts = uses
        .iter()
        .chain(defs.values().flatten())
        .cloned()
        .collect::<Vec<_>>();
    for (name, at) in starts {
        if let Some(found) = cycle(&name, &defs, &mut Vec::new()) {
            return Some(format!(
                "template line {}, column {}: partial `{}` includes itself ({}): a recursive \
                 partial never ends",
                at.0,
                at.1,
                found[found.len() - 1],
                found.join(" -> ")
            ));
        }
    }
    None
}

fn describe(e: &handlebars::RenderError) -> String {
    let reason = match e.reason() {
        handlebars::RenderErrorReason::MissingVariable(Some(name)) => {
            format!(
                "variable `{name}` is not defined (declare it in [vars] or pass --var {name}=...)"
            )
        }
        other => other.to_string(),
    };
    match (e.line_no, e.column_no) {
        (Some(l), Some(c)) => format!("template line {l}, column {c}: {reason}"),
        _ => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_unescaped() {
        let r = Renderer::new(serde_json::json!({"host": "a&b<c>", "n": 3}));
        assert_eq!(
            r.render("x={{host}} {{n}}", false).as_deref(),
            Ok("x=a&b<c> 3")
        );
        let err = r.render("{{nope}}", false).err().unwrap_or_default();
        assert!(err.contains("`nope` is not defined"), "{err}");
    }

    #[test]
    fn shell_rendering_quotes_values() {
        let r = Renderer::new(serde_json::json!({"v": "it's $(rm -rf /); `x`\nnext"}));
        let line = r.render("echo {{v}}", true).unwrap_or_default();
        assert_eq!(line, "echo 'it'\\''s $(rm -rf /); `x`\nnext'");
        assert_eq!(shell_quote("plain/path-1.0"), "plain/path-1.0");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn go_escape_spells_module_paths_as_the_module_cache_does() {
        let r = Renderer::new(
            serde_json::json!({"m": "github.com/Azure/go-AutoRest", "e": "github.com/!azure/x"}),
        );
        assert_eq!(
            r.render("{{go_escape m}}@*", false).as_deref(),
            Ok("github.com/!azure/go-!auto!rest@*")
        );
        assert_eq!(
            r.render("{{go_escape e}}", false).as_deref(),
            Ok("github.com/!azure/x")
        );
        // In a shell line the result is quoted like any value.
        assert_eq!(
            r.render("ls {{go_escape m}}", true).as_deref(),
            Ok("ls 'github.com/!azure/go-!auto!rest'")
        );
    }

    #[test]
    fn recursive_partials_are_refused_before_rendering() {
        let r = Renderer::new(serde_json::json!({"on": true, "items": [1, 2]}));
        for (t, cycle) in [
            ("{{#*inline \"p\"}}x{{> p}}{{/inline}}{{> p}}", "p -> p"),
            (
                "{{#*inline \"a\"}}{{> b}}{{/inline}}{{#*inline \"b\"}}{{#if on}}{{> a}}{{/if}}{{/inline}}{{> a}}",
                "a -> b -> a",
            ),
            ("{{#*inline \"p\"}}{{#> p}}y{{/p}}{{/inline}}{{> p}}", "p -> p"),
            // Defined recursively but never used: still refused.
            ("{{#*inline \"p\"}}{{#each items}}{{> p}}{{/each}}{{/inline}}", "p -> p"),
        ] {
            let err = r.render(t, false).err().unwrap_or_default();
            assert!(err.contains(&format!("includes itself ({cycle})")), "{t}: {err}");
        }
        let err = r
            .render("{{> (lookup this \"x\")}}", false)
            .err()
            .unwrap_or_default();
        assert!(err.contains("named by an expression"), "{err}");
        // Partials that only include others render.
        assert_eq!(
            r.render(
                "{{#*inline \"a\"}}A{{> b}}{{/inline}}{{#*inline \"b\"}}B{{/inline}}{{> a}}{{> b}}",
                false
            )
            .as_deref(),
            Ok("ABB")
        );
    }

    #[test]
    fn shell_lines_refuse_unescaped_expressions() {
        let r = Renderer::new(serde_json::json!({"v": "a; b", "on": true}));
        for t in [
            "echo {{{v}}}",
            "echo {{&v}}",
            "echo {{~&v~}}",
            "{{#if on}}x{{else}}{{{v}}}{{/if}}",
            "{{#*inline \"p\"}}{{&v}}{{/inline}}{{> p}}",
        ] {
            let err = r.render(t, true).err().unwrap_or_default();
            assert!(err.contains("unquoted"), "{t}: {err}");
            assert!(r.render(t, false).is_ok(), "{t}");
        }
        assert_eq!(r.render("echo {{v}}", true).as_deref(), Ok("echo 'a; b'"));
    }
}

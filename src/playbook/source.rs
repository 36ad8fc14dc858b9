//! A TOML file kept with its text, so any span can be turned into
//! `file:line:column` plus the dotted name of the field it belongs to.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, Location};

pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn read(path: &Path) -> Result<Source, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Source {
            path: path.to_path_buf(),
            text,
        })
    }

    pub fn location(&self, offset: usize, field: Option<String>) -> Location {
        let upto = &self.text[..offset.min(self.text.len())];
        let line = upto.matches('\n').count() + 1;
        let column = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location {
            file: self.path.clone(),
            line,
            column,
            field,
        }
    }

    pub fn error(
        &self,
        span: &Range<usize>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Input {
            at: self.location(span.start, field),
            message: message.into(),
        }
    }

    /// Turn a toml error into ours. `root` is the table the failing
    /// deserialization started from and `prefix` its dotted path, so the field
    /// can be named from the span toml reports.
    pub fn toml_error(
        &self,
        e: &toml::de::Error,
        root: Option<&DeTable<'_>>,
        prefix: &str,
    ) -> Error {
        let span = e.span().unwrap_or(0..0);
        let field = root
            .and_then(|t| field_at(t, &span, prefix))
            .or_else(|| (!prefix.is_empty()).then(|| prefix.to_string()));
        let message = e.message().trim_end();
        if message == "duplicate key" {
            if let Some(key) = self.key_at(span.start) {
                let first = self.first_setting(key, span.start);
                let message = match first {
                    Some(line) => format!(
                        "duplicate key `{key}`: it is already set on line {line} (a key is set once per table)"
                    ),
                    None => format!("duplicate key `{key}` (a key is set once per table)"),
                };
                return self.error(&span, field.or_else(|| Some(key.to_string())), message);
            }
        }
        self.error(&span, field, message.to_string())
    }

    /// The key written at `offset` (toml points a duplicate key there).
    fn key_at(&self, offset: usize) -> Option<&str> {
        let rest = self.text.get(offset..)?;
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '=' | ']' | '.'))
            .unwrap_or(rest.len());
        let key = rest[..end].trim_matches(|c| c == '"' || c == '\'');
        (!key.is_empty()).then_some(key)
    }

    /// The nearest line before `before` where `key` is set or opened as a
    /// table: a line reading `key = ...` or `[key]` (a reading of the text,
    /// not of the TOML: it names nothing when unsure).
    fn first_setting(&self, key: &str, before: usize) -> Option<usize> {
        let upto = self.text.get(..before)?;
        let this_line = upto.matches('\n').count() + 1;
        let table = format!("[{key}]");
        upto.lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let l = line.trim_start();
                let sets = l
                    .strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with('='));
                (i + 1 < this_line && (sets || l.starts_with(&table))).then_some(i + 1)
            })
            .last()
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.start < outer.end.max(outer.start + 1)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The dotted path of the deepest key whose key or value covers `span`.
/// A table's own span covers only its `[header]`, not its body, so every
/// branch is searched rather than only the ones containing the span.
pub fn field_at(table: &DeTable<'_>, span: &Range<usize>, prefix: &str) -> Option<String> {
    for (k, v) in table.iter() {
        let name = join(prefix, k.get_ref());
        if let Some(deeper) = value_field(v, span, &name) {
            return Some(deeper);
        }
        if contains(&k.span(), span) || contains(&v.span(), span) {
            return Some(name);
        }
    }
    None
}

fn value_field(v: &Spanned<DeValue<'_>>, span: &Range<usize>, name: &str) -> Option<String> {
    match v.get_ref() {
        DeValue::Table(t) => field_at(t, span, name),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let item_name = format!("{name}[{i}]");
            value_field(item, span, &item_name)
                .or_else(|| contains(&item.span(), span).then_some(item_name))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_field_and_line() -> Result<(), toml::de::Error> {
        let text = "[a]\nx = 1\n\n[[r]]\ny = { z = 'q' }\n".to_string();
        let src = Source {
            path: PathBuf::from("p.toml"),
            text,
        };
        let table = DeTable::parse(&src.text)?;
        let off = src.text.find("'q'").unwrap_or(0);
        let field = field_at(table.get_ref(), &(off..off + 3), "");
        assert_eq!(field.as_deref(), Some("r[0].y.z"));
        let loc = src.location(off, field);
        assert_eq!((loc.line, loc.column), (5, 11));
        Ok(())
    }
}

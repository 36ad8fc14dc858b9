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
        self.error(&span, field, e.message().trim_end().to_string())
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

//! A YAML document edited in place towards wanted data, so the lines a
//! change does not touch stay as the user wrote them: comments, flow lists
//! such as `[8.8.8.8, 1.1.1.1]`, quoting, blank lines, key order.
//!
//! The edit is computed on a tree of byte spans (from saphyr's event
//! parser, which reports where each scalar and collection is), then
//! verified: the edited text must parse, with the same parser fixer
//! compares with, to exactly the wanted data. Anything the tree cannot
//! edit precisely (a key after `- ` to delete, an anchor that moves, a
//! complex key) falls back to rewriting the smallest enclosing value, and
//! when even that does not verify, [`edit`] answers `None` and the caller
//! writes the file whole.

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_yaml_ng::{Mapping, Value};

/// Where a node is in the text: `start..end` are byte offsets, `end` being
/// the end of its last content (not of trailing comments or blank lines).
struct Node {
    start: usize,
    end: usize,
    shape: Shape,
}

enum Shape {
    Scalar {
        block: bool,
        /// The scalar as parsed (quotes and escapes undone).
        value: String,
    },
    Seq {
        flow: bool,
        items: Vec<Node>,
    },
    Map {
        flow: bool,
        entries: Vec<(Node, Node)>,
    },
    Alias,
}

/// Marker the edit could not make at this node; its parent rewrites it.
struct Unsupported;

/// `text` edited so that it parses to `want`, keeping every line the
/// change does not need; `None` when `text` is not one YAML document or the
/// edit could not be verified.
pub(crate) fn edit(text: &str, want: &Value) -> Option<String> {
    let have: Value = serde_yaml_ng::from_str(text).ok()?;
    if &have == want {
        return Some(text.to_string());
    }
    let root = tree(text)?;
    // New lines follow the file's indentation; should that not verify,
    // serde's own (2), which is valid at any column.
    let file_step = step(text, &root);
    let steps = if file_step == 2 {
        vec![2]
    } else {
        vec![file_step, 2]
    };
    steps.into_iter().find_map(|step| {
        let mut editor = Editor {
            text,
            step,
            edits: Vec::new(),
        };
        editor.node(&root, &have, want).ok()?;
        let out = editor.finish()?;
        let got: Value = serde_yaml_ng::from_str(&out).ok()?;
        (&got == want).then_some(out)
    })
}

/// The tree of the single document in `text`.
fn tree(text: &str) -> Option<Node> {
    // saphyr reports character indices; edits need byte offsets.
    let mut offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    offsets.push(text.len());
    let mut events = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        let at = |m: saphyr_parser::Marker| offsets.get(m.index()).copied();
        events.push((event, at(span.start)?, at(span.end)?));
    }
    let mut events = events.into_iter();
    let mut root = None;
    let mut documents = 0;
    while let Some((event, start, end)) = events.next() {
        match event {
            Event::DocumentStart(_) => documents += 1,
            Event::StreamStart | Event::DocumentEnd | Event::StreamEnd | Event::Nothing => {}
            other if root.is_none() => {
                root = Some(build(text, &mut events, (other, start, end))?);
            }
            _ => return None,
        }
    }
    if documents != 1 {
        return None;
    }
    root
}

type Events<'a> = std::vec::IntoIter<(Event<'a>, usize, usize)>;

fn build(text: &str, events: &mut Events<'_>, first: (Event<'_>, usize, usize)) -> Option<Node> {
    let (event, start, end) = first;
    // A flow collection's start event spans its bracket; a block one's is
    // empty (and may sit on a flow item's bracket: `- []`).
    let flow = |open: char| end > start && text[start..].starts_with(open);
    let node = match event {
        Event::Scalar(value, style, _, _) => {
            let block = matches!(style, ScalarStyle::Literal | ScalarStyle::Folded);
            // A block scalar's span runs on to the next token; its content
            // ends at its last non-blank line.
            let end = match style {
                _ if block => start + text[start..end].trim_end().len(),
                // saphyr's span of an empty quoted scalar runs on over what
                // follows it (a comment): end at the closing quote.
                ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                    quoted_end(text, start).unwrap_or(end)
                }
                _ => end,
            };
            Node {
                start,
                end,
                shape: Shape::Scalar {
                    block,
                    value: value.into_owned(),
                },
            }
        }
        Event::Alias(_) => Node {
            start,
            end,
            shape: Shape::Alias,
        },
        Event::SequenceStart(..) => {
            let flow = flow('[');
            let mut items = Vec::new();
            let close = loop {
                let next = events.next()?;
                if matches!(next.0, Event::SequenceEnd) {
                    break next.1;
                }
                items.push(build(text, events, next)?);
            };
            // A closing bracket's span runs on over a trailing comment.
            let end = if flow {
                close + 1
            } else {
                items.last().map_or(start, |n| n.end)
            };
            // A list not indented under its key is reported from its first
            // item; it starts at that item's dash.
            let before = text[..start].trim_end_matches(' ');
            let start = if !flow && before.ends_with('-') {
                before.len() - 1
            } else {
                start
            };
            Node {
                start,
                end,
                shape: Shape::Seq { flow, items },
            }
        }
        Event::MappingStart(..) => {
            let flow = flow('{');
            let mut entries = Vec::new();
            let close = loop {
                let next = events.next()?;
                if matches!(next.0, Event::MappingEnd) {
                    break next.1;
                }
                let key = build(text, events, next)?;
                let next = events.next()?;
                let mut value = build(text, events, next)?;
                if value.start == value.end {
                    // An empty value is reported at the key's end or at the
                    // next token; it belongs right after the key's colon.
                    let colon = text[key.end..].find(':')? + key.end + 1;
                    value.start = colon;
                    value.end = colon;
                }
                entries.push((key, value));
            };
            let end = if flow {
                close + 1
            } else {
                entries.last().map_or(start, |(_, v)| v.end)
            };
            Node {
                start,
                end,
                shape: Shape::Map { flow, entries },
            }
        }
        _ => return None,
    };
    Some(node)
}

/// The keys (and list indices) leading to what is at `line`:`column`
/// (1-based, as netplan reports errors) in `text`, and the scalar there if
/// it is one: `(["network", "ethernets", "eth0", "dhcp4"], Some("maybe"))`.
pub(crate) fn path_at(
    text: &str,
    line: usize,
    column: usize,
) -> Option<(Vec<String>, Option<String>)> {
    let start = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum::<usize>();
    // netplan does not count a byte order mark as a column.
    let start = if line == 1 && text.starts_with('\u{feff}') {
        3
    } else {
        start
    };
    let rest = text.get(start..)?;
    let at = start
        + rest
            .char_indices()
            .nth(column.checked_sub(1)?)
            .map_or(rest.len(), |(i, _)| i);
    let root = tree(text)?;
    let mut path = Vec::new();
    let mut node = &root;
    loop {
        let next = match &node.shape {
            Shape::Map { entries, .. } => entries.iter().find_map(|(k, v)| {
                let name = match &k.shape {
                    Shape::Scalar { value, .. } => value.clone(),
                    _ => text[k.start..k.end].to_string(),
                };
                if (k.start..=k.end).contains(&at) {
                    Some((name, k))
                } else {
                    (v.start..=v.end).contains(&at).then_some((name, v))
                }
            }),
            Shape::Seq { items, .. } => items
                .iter()
                .enumerate()
                .find(|(_, n)| (n.start..=n.end).contains(&at))
                .map(|(i, n)| (i.to_string(), n)),
            Shape::Scalar { .. } | Shape::Alias => None,
        };
        match next {
            Some((name, child)) if !std::ptr::eq(child, node) => {
                path.push(name);
                node = child;
            }
            _ => break,
        }
    }
    let scalar = match &node.shape {
        Shape::Scalar { value, .. } => Some(value.clone()),
        _ => None,
    };
    Some((path, scalar))
}

/// Just past the quote closing the quoted scalar that starts at `start`.
fn quoted_end(text: &str, start: usize) -> Option<usize> {
    let mut chars = text.get(start..)?.char_indices();
    let (_, open) = chars.next()?;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if open == '"' => {
                chars.next();
            }
            c if c == open => {
                // `''` inside single quotes is one quote.
                if open == '\'' && text[start + i + 1..].starts_with('\'') {
                    chars.next();
                    continue;
                }
                return Some(start + i + 1);
            }
            _ => {}
        }
    }
    None
}

struct Editor<'a> {
    text: &'a str,
    /// The file's indentation step, which new lines follow.
    step: usize,
    /// Byte ranges and what replaces them; insertions are empty ranges.
    edits: Vec<(usize, usize, String)>,
}

impl Editor<'_> {
    /// Edit `node`, which holds `have`, to hold `want` without replacing
    /// it as a whole (that is the caller's fallback).
    fn node(&mut self, node: &Node, have: &Value, want: &Value) -> Result<(), Unsupported> {
        if have == want {
            return Ok(());
        }
        let inline = match &node.shape {
            Shape::Scalar { block, .. } => !block,
            Shape::Seq { flow, .. } | Shape::Map { flow, .. } => *flow,
            Shape::Alias => false,
        };
        if inline {
            let flow_style = !matches!(node.shape, Shape::Scalar { .. });
            if let Some(mut s) = inline_text(want, flow_style) {
                if node.start == node.end && self.text[..node.start].ends_with(':') {
                    s.insert(0, ' ');
                }
                self.edits.push((node.start, node.end, s));
                return Ok(());
            }
            return Err(Unsupported);
        }
        match (&node.shape, have, want) {
            (Shape::Map { entries, .. }, Value::Mapping(h), Value::Mapping(w)) if !w.is_empty() => {
                self.mapping(node, entries, h, w)
            }
            (Shape::Seq { items, .. }, Value::Sequence(h), Value::Sequence(w))
                if h.len() == w.len() && items.len() == h.len() =>
            {
                for ((item, hv), wv) in items.iter().zip(h).zip(w) {
                    self.node(item, hv, wv)?;
                }
                Ok(())
            }
            _ => Err(Unsupported),
        }
    }

    fn mapping(
        &mut self,
        node: &Node,
        entries: &[(Node, Node)],
        have: &Mapping,
        want: &Mapping,
    ) -> Result<(), Unsupported> {
        if entries.len() != have.len() {
            return Err(Unsupported);
        }
        for ((key, value), (hk, hv)) in entries.iter().zip(have) {
            match want.get(hk) {
                Some(wv) if wv == hv => {}
                Some(wv) => {
                    if self.node(value, hv, wv).is_err() {
                        self.entry(key, value, wv);
                    }
                }
                None => {
                    // Only a key that starts its line goes with its lines.
                    let line = line_start(self.text, key.start);
                    if !self.text[line..key.start].trim().is_empty() {
                        return Err(Unsupported);
                    }
                    let end = line_end(self.text, value.end.max(key.end));
                    self.edits.push((line, end, String::new()));
                }
            }
        }
        let mut added = Mapping::new();
        for (k, v) in want {
            if !have.contains_key(k) {
                added.insert(k.clone(), v.clone());
            }
        }
        if !added.is_empty() {
            let indent = self.column(node.start);
            let text = serde_yaml_ng::to_string(&Value::Mapping(added)).map_err(|_| Unsupported)?;
            let at = line_end(self.text, node.end);
            let lead = if self.text[..at].ends_with('\n') {
                ""
            } else {
                "\n"
            };
            self.edits.push((
                at,
                at,
                format!("{lead}{}", indented(&text, indent, self.step)),
            ));
        }
        Ok(())
    }

    /// Rewrite one entry `key: value` whole, in block style at the key's
    /// indentation, keeping the key as written.
    fn entry(&mut self, key: &Node, value: &Node, want: &Value) {
        let key_text = &self.text[key.start..key.end];
        let indent = self.column(key.start);
        let text = match inline_text(want, false) {
            Some(s) if !s.is_empty() => format!("{key_text}: {s}"),
            _ => {
                let body = serde_yaml_ng::to_string(want).unwrap_or_default();
                format!(
                    "{key_text}:\n{}",
                    indented(&body, indent + self.step, self.step).trim_end_matches('\n')
                )
            }
        };
        self.edits.push((key.start, value.end.max(key.end), text));
    }

    /// The column of `at`, in characters, as an indentation width.
    fn column(&self, at: usize) -> usize {
        self.text[line_start(self.text, at)..at].chars().count()
    }

    fn finish(mut self) -> Option<String> {
        self.edits.sort_by_key(|e| (e.0, e.1));
        let mut out = String::with_capacity(self.text.len());
        let mut at = 0;
        for (start, end, with) in &self.edits {
            if *start < at || end < start {
                return None;
            }
            out.push_str(self.text.get(at..*start)?);
            out.push_str(with);
            at = *end;
        }
        out.push_str(self.text.get(at..)?);
        Some(out)
    }
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Just past the newline ending the line `at` is on (or the text's end).
fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

/// `text` (serde_yaml_ng's, indented by 2) at column `width`, a mapping
/// under its key indented by `step` more, the lines of a list item aligned
/// after its dash (`- to: x` / `  via: y`) as serde wrote them; ends with
/// a newline.
fn indented(text: &str, width: usize, step: usize) -> String {
    // (serde's column, ours) of the lines that may have children or
    // siblings still to come, innermost last.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut out = String::new();
    for line in text.lines() {
        let body = line.trim_start_matches(' ');
        if body.is_empty() {
            out.push('\n');
            continue;
        }
        let col = line.len() - body.len();
        while open.last().is_some_and(|(c, _)| *c > col) {
            open.pop();
        }
        let ours = match open.last() {
            Some((c, o)) if *c == col => {
                let o = *o;
                open.pop();
                o
            }
            Some((_, o)) => o + step,
            None => width,
        };
        open.push((col, ours));
        // Each dash (`- - a: 1`) opens the column after it.
        let mut rest = body;
        let mut after = 0;
        while let Some(r) = rest.strip_prefix("- ") {
            after += 2;
            open.push((col + after, ours + after));
            rest = r;
        }
        out.push_str(&" ".repeat(ours));
        out.push_str(body);
        out.push('\n');
    }
    out
}

/// How far the file indents a mapping under its key: the column of the
/// first block mapping nested in the top one (2 when there is none).
fn step(text: &str, root: &Node) -> usize {
    let Shape::Map { entries, .. } = &root.shape else {
        return 2;
    };
    entries
        .iter()
        .find_map(|(_, v)| match &v.shape {
            Shape::Map { flow: false, .. } => {
                let line = line_start(text, v.start);
                let col = text[line..v.start].chars().count();
                let key_col = text[line_start(text, root.start)..root.start]
                    .chars()
                    .count();
                (col > key_col).then_some(col - key_col)
            }
            _ => None,
        })
        .unwrap_or(2)
}

/// `v` on one line: a scalar as serde_yaml_ng would write it, a collection
/// only when `flow` (the original was a flow collection), as `[a, b]` or
/// `{k: v}`. `None` when it needs lines of its own.
fn inline_text(v: &Value, flow: bool) -> Option<String> {
    match v {
        Value::Sequence(items) if flow || items.is_empty() => {
            let items: Option<Vec<String>> = items.iter().map(|i| inline_text(i, true)).collect();
            Some(format!("[{}]", items?.join(", ")))
        }
        Value::Mapping(m) if flow || m.is_empty() => {
            let entries: Option<Vec<String>> = m
                .iter()
                .map(|(k, v)| {
                    Some(format!(
                        "{}: {}",
                        inline_text(k, true)?,
                        inline_text(v, true)?
                    ))
                })
                .collect();
            Some(format!("{{{}}}", entries?.join(", ")))
        }
        Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => None,
        scalar => {
            let s = serde_yaml_ng::to_string(scalar).ok()?;
            let s = s.strip_suffix('\n').unwrap_or(&s);
            if s.contains('\n') {
                return None;
            }
            // Plain text fine in a block can end a flow collection early,
            // and parsers differ on the rest: in flow, only a plain word.
            let word = s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/@+-".contains(c));
            if flow && scalar.is_string() && !word && !s.starts_with(['\'', '"']) {
                return serde_json::to_string(scalar.as_str()?).ok();
            }
            Some(s.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).expect("test YAML")
    }

    const FILE: &str = "# 启用DHCP获取IP
network:
  version: 2
  renderer: networkd   # the default
  ethernets:
    enp0s3:
      dhcp4: true
      nameservers:
        addresses: [8.8.8.8, 1.1.1.1]   # resolvers
      routes:
        - to: default
          via: 10.0.0.1
# the end
";

    #[test]
    fn a_changed_scalar_keeps_every_other_line() {
        let want = yaml(&FILE.replace("dhcp4: true", "dhcp4: false"));
        let out = edit(FILE, &want).expect("edited");
        assert_eq!(out, FILE.replace("dhcp4: true", "dhcp4: false"));
    }

    #[test]
    fn a_flow_list_stays_a_flow_list_with_its_comment() {
        let want = yaml(&FILE.replace("[8.8.8.8, 1.1.1.1]", "[9.9.9.9]"));
        let out = edit(FILE, &want).expect("edited");
        assert!(
            out.contains("addresses: [9.9.9.9]   # resolvers\n"),
            "{out}"
        );
        assert!(
            out.starts_with("# 启用DHCP获取IP\n") && out.ends_with("# the end\n"),
            "{out}"
        );
    }

    #[test]
    fn keys_are_added_at_their_mappings_indentation_and_removed_with_their_lines() {
        let mut want = yaml(FILE);
        let eth = &mut want["network"]["ethernets"]["enp0s3"];
        let m = eth.as_mapping_mut().expect("mapping");
        m.remove("routes");
        m.insert("addresses".into(), yaml("[10.0.0.5/24]"));
        m.insert("dhcp6".into(), Value::Bool(false));
        let out = edit(FILE, &want).expect("edited");
        assert!(!out.contains("routes") && !out.contains("via"), "{out}");
        assert!(
            out.contains("\n      addresses:\n      - 10.0.0.5/24\n      dhcp6: false\n"),
            "{out}"
        );
        assert!(
            out.contains("# resolvers") && out.contains("# the end"),
            "{out}"
        );
    }

    #[test]
    fn a_scalar_becoming_a_mapping_is_written_as_a_block() {
        let want = yaml(&FILE.replace("dhcp4: true", "dhcp4:\n        x: 1"));
        let out = edit(FILE, &want).expect("edited");
        assert!(
            out.contains("      dhcp4:\n        x: 1\n      nameservers:"),
            "{out}"
        );
    }

    #[test]
    fn an_item_after_a_dash_is_rewritten_with_its_list() {
        // `to` starts no line of its own: the list item is rewritten.
        let want = yaml(&FILE.replace("        - to: default\n", "        - via2: x\n"));
        let out = edit(FILE, &want).expect("edited");
        assert_eq!(yaml(&out), want);
        assert!(out.contains("# resolvers"), "{out}");
    }

    #[test]
    fn strings_that_would_break_a_flow_list_are_quoted() {
        let want = yaml(&FILE.replace("[8.8.8.8, 1.1.1.1]", "['a,b', 'c: d', 'true']"));
        let out = edit(FILE, &want).expect("edited");
        assert_eq!(yaml(&out), want);
        assert!(out.contains("# resolvers"), "{out}");
    }

    #[test]
    fn a_block_scalar_and_an_empty_value_are_replaced_in_place() {
        let file = "a: |\n  one\n  two\n\nb:\nc: 1 # keep\n";
        let want = yaml("a: x\nb: 2\nc: 1\n");
        let out = edit(file, &want).expect("edited");
        assert_eq!(out, "a: x\n\nb: 2\nc: 1 # keep\n");
    }

    #[test]
    fn a_position_is_named_by_its_keys() {
        let at = |line, column| path_at(FILE, line, column);
        let dhcp4 = at(7, 14).expect("found");
        assert_eq!(dhcp4.0, ["network", "ethernets", "enp0s3", "dhcp4"]);
        assert_eq!(dhcp4.1.as_deref(), Some("true"));
        // netplan points at a list's bracket, or at a key.
        assert_eq!(
            at(9, 20).expect("found").0,
            ["network", "ethernets", "enp0s3", "nameservers", "addresses"]
        );
        assert_eq!(
            at(9, 21).expect("found").0,
            [
                "network",
                "ethernets",
                "enp0s3",
                "nameservers",
                "addresses",
                "0"
            ]
        );
        assert_eq!(at(4, 3).expect("found").0, ["network", "renderer"]);
        assert_eq!(
            at(12, 13).expect("found").0,
            ["network", "ethernets", "enp0s3", "routes", "0", "via"]
        );
        // Quoted names are named as parsed; a BOM is no column.
        let quoted = "'net''s':\n  \"b\\u0079\": 'x'\n";
        assert_eq!(
            path_at(quoted, 2, 14).expect("found"),
            (vec!["net's".into(), "by".into()], Some("x".into()))
        );
        assert_eq!(path_at("\u{feff}a: 1\n", 1, 4).expect("found").0, ["a"]);
        // A list not indented under its key, pointed at by its first dash.
        let flat = "a:\n  b:\n  - x\n  - y\n  c: 1\n";
        assert_eq!(path_at(flat, 3, 3).expect("found").0, ["a", "b"]);
        assert_eq!(
            path_at(flat, 4, 5).expect("found"),
            (vec!["a".into(), "b".into(), "1".into()], Some("y".into()))
        );
    }

    #[test]
    fn new_lines_follow_the_files_indentation() {
        let file =
            "network:\n    version: 2\n    ethernets:\n        eth0:\n            dhcp4: true\n";
        let want = yaml("network: {version: 2, ethernets: {eth0: {dhcp4: true, nameservers: {addresses: [1.1.1.1]}}}}");
        let out = edit(file, &want).expect("edited");
        assert_eq!(
            out,
            format!("{file}            nameservers:\n                addresses:\n                - 1.1.1.1\n")
        );
    }

    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            (0i64..1000).prop_map(Value::from),
            "[a-z0-9./:, -]{0,8}".prop_map(Value::from),
        ]
    }

    /// A `network:` document: mappings, lists and scalars a few levels deep.
    fn document() -> impl Strategy<Value = Value> {
        let mapping = |inner| {
            proptest::collection::btree_map("[a-z]{1,5}", inner, 1..4).prop_map(|m| {
                Value::Mapping(m.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
            })
        };
        let tree = scalar().prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Sequence),
                mapping(inner),
            ]
        });
        mapping(tree.boxed()).prop_map(|t| {
            let mut top = Mapping::new();
            top.insert("network".into(), t);
            Value::Mapping(top)
        })
    }

    /// The paths of `v`'s scalars: keys, and indices of list items.
    fn leaves(v: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
        let children: Vec<(Value, &Value)> = match v {
            Value::Mapping(m) => m.iter().map(|(k, c)| (k.clone(), c)).collect(),
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, c)| (Value::from(i), c))
                .collect(),
            _ => return,
        };
        for (k, child) in children {
            path.push(k);
            if child.is_mapping() || child.is_sequence() {
                leaves(child, path, out);
            } else {
                out.push(path.clone());
            }
            path.pop();
        }
    }

    /// `v` (a mapping) as a person might write it: each collection in flow
    /// or block style and each block entry with or without a trailing
    /// comment, as the bits of `style` say, each level `step` deeper.
    fn hand_written(v: &Value, indent: usize, step: usize, style: &mut u64, out: &mut String) {
        fn bit(style: &mut u64) -> bool {
            *style = style.rotate_left(1) ^ 0x9e37_79b9;
            *style & 1 == 1
        }
        let pad = " ".repeat(indent);
        let entries: Vec<(String, &Value)> = match v {
            Value::Mapping(m) => m
                .iter()
                .map(|(k, c)| (format!("{}: ", k.as_str().unwrap_or("k")), c))
                .collect(),
            Value::Sequence(items) => items.iter().map(|c| ("- ".to_string(), c)).collect(),
            _ => return,
        };
        for (lead, child) in entries {
            let lead = lead.trim_end();
            match child {
                Value::Mapping(m) if !m.is_empty() && !bit(style) => {
                    out.push_str(&format!("{pad}{lead}\n"));
                    hand_written(child, indent + step, step, style, out);
                }
                Value::Sequence(items) if !items.is_empty() && !bit(style) => {
                    out.push_str(&format!("{pad}{lead}\n"));
                    hand_written(child, indent + step, step, style, out);
                }
                _ => {
                    let flow = !child.is_mapping() && !child.is_sequence();
                    let text = inline_text(child, !flow).unwrap_or_default();
                    let comment = if bit(style) { "  # note" } else { "" };
                    out.push_str(&format!("{pad}{lead} {text}{comment}\n"));
                }
            }
        }
    }

    /// The value at `path` (keys, and indices in lists) of `doc`.
    fn at_path<'v>(doc: &'v mut Value, path: &[Value]) -> &'v mut Value {
        let mut at = doc;
        for k in path {
            at = match (at.is_sequence(), k.as_u64()) {
                (true, Some(i)) => at.get_mut(i as usize),
                _ => at.get_mut(k),
            }
            .expect("a path of the document");
        }
        at
    }

    proptest! {
        /// A hand-written file (flow and block, trailing comments) with one
        /// value changed: the edit is made, and every comment stays.
        #[test]
        fn a_hand_written_file_keeps_its_comments(have in document(), style in any::<u64>(), step in 2usize..5, pick in any::<usize>(), new in scalar()) {
            let mut text = String::from("# kept\n");
            hand_written(&have, 0, step, &mut style.clone(), &mut text);
            prop_assume!(yaml(&text) == have);
            let mut paths = Vec::new();
            leaves(&have, &mut Vec::new(), &mut paths);
            prop_assume!(!paths.is_empty());
            let mut want = have.clone();
            let at = at_path(&mut want, &paths[pick % paths.len()]);
            prop_assume!(*at != new);
            *at = new;
            let out = edit(&text, &want).expect("a scalar edit is always made");
            prop_assert_eq!(yaml(&out), want);
            prop_assert_eq!(out.matches("# note").count(), text.matches("# note").count(), "{} -> {}", text, out);
            prop_assert!(out.starts_with("# kept\n"));
        }

        /// A key added anywhere in a hand-written file, whatever it holds
        /// and however deep the file indents: the edit is made, and every
        /// comment stays.
        #[test]
        fn a_new_key_keeps_the_files_comments(have in document(), style in any::<u64>(), step in 2usize..5, pick in any::<usize>(), added in document()) {
            let mut text = String::from("# kept\n");
            hand_written(&have, 0, step, &mut style.clone(), &mut text);
            prop_assume!(yaml(&text) == have);
            // Every mapping of the document, by path.
            fn mappings(v: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
                if let Value::Mapping(m) = v {
                    out.push(path.clone());
                    for (k, c) in m {
                        path.push(k.clone());
                        mappings(c, path, out);
                        path.pop();
                    }
                }
            }
            let mut paths = Vec::new();
            mappings(&have, &mut Vec::new(), &mut paths);
            let mut want = have.clone();
            let at = at_path(&mut want, &paths[pick % paths.len()]);
            let value = added["network"].clone();
            at.as_mapping_mut().expect("a mapping").insert("zzadded".into(), value);
            let out = edit(&text, &want).expect("an addition is always made");
            prop_assert_eq!(yaml(&out), want);
            prop_assert_eq!(out.matches("# note").count(), text.matches("# note").count(), "{} -> {}", text, out);
        }

        /// Whatever the two documents, nothing panics, and an edit that is
        /// made parses to the wanted data (the verification's promise).
        #[test]
        fn an_edit_always_holds_the_wanted_data(have in document(), want in document()) {
            let text = format!("# kept\n{}", serde_yaml_ng::to_string(&have).expect("render"));
            if let Some(out) = edit(&text, &want) {
                prop_assert_eq!(yaml(&out), want);
            }
        }

        /// One value changed in a block document: one line changes, the
        /// comment and every other line stay.
        #[test]
        fn one_changed_value_changes_one_line(have in document(), pick in any::<usize>(), new in scalar()) {
            let mut paths = Vec::new();
            leaves(&have, &mut Vec::new(), &mut paths);
            prop_assume!(!paths.is_empty());
            let path = &paths[pick % paths.len()];
            let mut want = have.clone();
            let at = at_path(&mut want, path);
            prop_assume!(*at != new && !at.is_mapping());
            *at = new;
            let text = format!("# kept\n{}", serde_yaml_ng::to_string(&have).expect("render"));
            let out = edit(&text, &want).expect("a scalar edit is always made");
            prop_assert_eq!(yaml(&out), want);
            let (a, b): (Vec<&str>, Vec<&str>) = (text.lines().collect(), out.lines().collect());
            prop_assert_eq!(a.len(), b.len(), "{} -> {}", text, out);
            prop_assert_eq!(a.iter().zip(&b).filter(|(x, y)| x != y).count(), 1, "{} -> {}", text, out);
        }
    }

    #[test]
    fn an_empty_quoted_value_keeps_its_comment() {
        // saphyr's span of `''` runs over the comment (found by the
        // property test below).
        for file in [
            "a:\n  b: ''  # note\n",
            "a:\n  b: \"\"  # note\n",
            "a:\n  b: 'it''s'  # note\n",
            "a:\n  b: \"q\\\"\"  # note\n",
        ] {
            let out = edit(file, &yaml("a: {b: false}")).expect("edited");
            assert_eq!(out, "a:\n  b: false  # note\n", "{file}");
        }
    }

    #[test]
    fn a_block_list_of_flow_lists_is_a_block_list() {
        // Its start event sits on the first item's bracket (found by the
        // property test: it was taken for a flow list, and sliced past the end).
        let out = edit("# kept\nnetwork:\n- []\n", &yaml("network: false")).expect("edited");
        assert_eq!(out, "# kept\nnetwork: false\n");
    }

    #[test]
    fn a_list_of_mappings_added_to_a_file_indented_by_four() {
        let file = "# kept\nnetwork:\n    ethernets:\n        eth0:\n            dhcp4: true\n";
        let want = yaml(
            "network: {ethernets: {eth0: {dhcp4: true, routes: [{to: default, via: 10.0.0.1}]}}}",
        );
        let out = edit(file, &want).expect("edited");
        assert_eq!(
            out,
            format!("{file}            routes:\n            - to: default\n              via: 10.0.0.1\n")
        );
    }

    #[test]
    fn what_is_not_one_document_is_not_edited() {
        assert!(edit("a: 1\n---\nb: 2\n", &yaml("a: 2")).is_none());
        assert!(edit("a: [1\n", &yaml("a: 2")).is_none());
    }
}

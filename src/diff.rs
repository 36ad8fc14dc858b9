//! The unified diff a person is shown for a file a change replaces.
//!
//! Three things make it more than a call into `similar`:
//! - **Bounded.** Myers' diff is O(N·D): replacing a 4 MB file with one
//!   line took 27 s, and 100 MB never finished. The diff runs with a
//!   deadline, after which `similar` settles for a coarser (still correct)
//!   diff, and a side above [`SHOWN_LIMIT`] is summarised, never diffed.
//! - **Secrets masked on both sides.** The masker knows the new sensitive
//!   values, not the old ones they replace: when the new text holds a
//!   sensitive value, each removed line is hidden from where it stops
//!   matching the line replacing it (`-TOKEN=********`).
//! - **Typed lines**, so the caller paints them without re-parsing.

use std::path::Path;
use std::time::Duration;

use crate::change::Prior;
use crate::playbook::vars::MASK;
use crate::playbook::Masker;

/// Sides larger than this are summarised: such a diff is not read, only
/// scrolled past, and computing it costs time and memory in its size.
pub const SHOWN_LIMIT: usize = 1 << 20;

/// How long the line diff may search for a minimal edit script.
pub const DEADLINE: Duration = Duration::from_millis(500);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `--- a` / `+++ b`
    Header(String),
    /// `@@ -1,3 +1,4 @@`
    Hunk(String),
    Context(String),
    Removed(String),
    Added(String),
    /// Said instead of, or after, a diff (binary, too large, no newline).
    Note(String),
}

impl Line {
    /// The line as a unified diff spells it.
    pub fn text(&self) -> String {
        match self {
            Line::Header(t) | Line::Hunk(t) | Line::Note(t) => t.clone(),
            Line::Context(t) => format!(" {t}"),
            Line::Removed(t) => format!("-{t}"),
            Line::Added(t) => format!("+{t}"),
        }
    }
}

/// `n` bytes as a person reads a size.
pub fn size_text(n: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn line_count(text: &[u8]) -> usize {
    let newlines = text.iter().filter(|b| **b == b'\n').count();
    newlines + usize::from(text.last().is_some_and(|b| *b != b'\n'))
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The diff from what a plan saw (`None`: a new file) to `after`: a
/// file too large to hold was seen only as a digest, and is summarised.
pub fn of_prior(path: &Path, before: Option<&Prior>, after: &[u8], masker: &Masker) -> Vec<Line> {
    match before {
        Some(Prior::Large(d)) => vec![summary(path, Some((d.size, d.lines)), after, &too_large())],
        Some(Prior::Bytes(b)) => unified(path, Some(b), after, masker),
        None => unified(path, None, after, masker),
    }
}

fn too_large() -> String {
    format!("the diff is not shown above {}", size_text(SHOWN_LIMIT))
}

/// One line saying what a change does to a file's size and lines.
fn summary(path: &Path, before: Option<(u64, u64)>, after: &[u8], why: &str) -> Line {
    let side = |size: u64, lines: u64| {
        format!(
            "{} ({})",
            size_text(usize::try_from(size).unwrap_or(usize::MAX)),
            plural(usize::try_from(lines).unwrap_or(usize::MAX), "line")
        )
    };
    let from = match before {
        Some((size, lines)) => side(size, lines),
        None => "nothing".to_string(),
    };
    Line::Note(format!(
        "{}: {from} -> {}; {why}",
        path.display(),
        side(after.len() as u64, line_count(after) as u64)
    ))
}

/// The diff from `before` (`None`: a new file) to `after` at `path`.
pub fn unified(path: &Path, before: Option<&[u8]>, after: &[u8], masker: &Masker) -> Vec<Line> {
    unified_within(path, before, after, masker, DEADLINE)
}

/// [`unified`] with a given deadline (tests use none at all).
pub fn unified_within(
    path: &Path,
    before: Option<&[u8]>,
    after: &[u8],
    masker: &Masker,
    deadline: Duration,
) -> Vec<Line> {
    let old_bytes = before.unwrap_or_default();
    if old_bytes.len() > SHOWN_LIMIT || after.len() > SHOWN_LIMIT {
        let seen = before.map(|b| (b.len() as u64, line_count(b) as u64));
        return vec![summary(path, seen, after, &too_large())];
    }
    let (Ok(old), Ok(new)) = (std::str::from_utf8(old_bytes), std::str::from_utf8(after)) else {
        return vec![Line::Note(format!(
            "binary content: {} bytes -> {} bytes",
            old_bytes.len(),
            after.len()
        ))];
    };
    let from = match before {
        Some(_) => path.display().to_string(),
        None => "/dev/null".to_string(),
    };
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let strip = |l: &str| l.strip_suffix('\n').unwrap_or(l).to_string();
    // The old values a new sensitive value replaces are secrets too.
    let hide = masker.find(new).is_some();
    let mut out = vec![
        Line::Header(format!("--- {from}")),
        Line::Header(format!("+++ {}", path.display())),
    ];
    for group in similar::group_diff_ops(line_ops(&old_lines, &new_lines, deadline), 3) {
        out.push(Line::Hunk(
            similar::udiff::UnifiedHunkHeader::new(&group).to_string(),
        ));
        for op in &group {
            let (tag, olds, news) = op.as_tag_tuple();
            let olds = &old_lines[olds];
            let news = &new_lines[news];
            match tag {
                similar::DiffTag::Equal => {
                    out.extend(olds.iter().map(|l| Line::Context(masker.mask(&strip(l)))));
                }
                similar::DiffTag::Delete | similar::DiffTag::Insert | similar::DiffTag::Replace => {
                    let news: Vec<String> = news.iter().map(|l| strip(l)).collect();
                    // The lines bringing a sensitive value in: what they
                    // replace may hold the old one.
                    let secret: Vec<&str> = news
                        .iter()
                        .filter(|n| hide && masker.find(n).is_some())
                        .map(String::as_str)
                        .collect();
                    for l in olds {
                        let l = strip(l);
                        out.push(Line::Removed(if secret.is_empty() {
                            masker.mask(&l)
                        } else {
                            hide_old(&l, &secret, masker)
                        }));
                    }
                    out.extend(news.iter().map(|l| Line::Added(masker.mask(l))));
                }
            }
        }
    }
    if out.len() == 2 {
        // Same text: nothing to show (a change of mode or owner only).
        out.clear();
    }
    let unterminated = |t: &str| !t.is_empty() && !t.ends_with('\n');
    if !out.is_empty() && (unterminated(old) || unterminated(new)) {
        out.push(Line::Note("\\ No newline at end of file".to_string()));
    }
    out
}

/// The edit script from `old` to `new`, line by line. A line that occurs on
/// one side only can never be kept, so only the lines both sides hold go
/// to Myers' diff (as GNU diff discards them): replacing a whole file, the
/// common case that made it quadratic, leaves it nothing to search. The
/// rest is bounded by `deadline`, past which Myers settles for a coarser
/// edit script.
fn line_ops(old: &[&str], new: &[&str], deadline: Duration) -> Vec<similar::DiffOp> {
    use similar::DiffOp;
    use std::collections::HashSet;
    let in_old: HashSet<&str> = old.iter().copied().collect();
    let in_new: HashSet<&str> = new.iter().copied().collect();
    let old_keep: Vec<usize> = (0..old.len())
        .filter(|&i| in_new.contains(old[i]))
        .collect();
    let new_keep: Vec<usize> = (0..new.len())
        .filter(|&i| in_old.contains(new[i]))
        .collect();
    let old_c: Vec<&str> = old_keep.iter().map(|&i| old[i]).collect();
    let new_c: Vec<&str> = new_keep.iter().map(|&i| new[i]).collect();
    let kept = similar::capture_diff_slices_deadline(
        similar::Algorithm::Myers,
        &old_c,
        &new_c,
        Some(std::time::Instant::now() + deadline),
    );
    // The lines kept equal, as (old, new) indices of the full texts, in
    // order; everything between two of them is removed and added.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for op in kept {
        if let DiffOp::Equal {
            old_index,
            new_index,
            len,
        } = op
        {
            pairs.extend((0..len).map(|k| (old_keep[old_index + k], new_keep[new_index + k])));
        }
    }
    pairs.push((old.len(), new.len()));
    let mut ops = Vec::new();
    let (mut o, mut n) = (0, 0);
    for (po, pn) in pairs {
        match (po - o, pn - n) {
            (0, 0) => {}
            (old_len, 0) => ops.push(DiffOp::Delete {
                old_index: o,
                old_len,
                new_index: n,
            }),
            (0, new_len) => ops.push(DiffOp::Insert {
                old_index: o,
                new_index: n,
                new_len,
            }),
            (old_len, new_len) => ops.push(DiffOp::Replace {
                old_index: o,
                old_len,
                new_index: n,
                new_len,
            }),
        }
        if po < old.len() {
            match ops.last_mut() {
                Some(DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                }) if *old_index + *len == po && *new_index + *len == pn => *len += 1,
                _ => ops.push(DiffOp::Equal {
                    old_index: po,
                    new_index: pn,
                    len: 1,
                }),
            }
        }
        (o, n) = (po + 1, pn + 1);
    }
    ops
}

/// An old line replaced by lines holding a sensitive value, as it may be
/// shown: as far as it matches one of them (never past where that one's
/// sensitive value starts), then hidden: `-GOPROXY=https://u:********`.
fn hide_old(old: &str, secret: &[&str], masker: &Masker) -> String {
    let keep = secret
        .iter()
        .map(|new| {
            let same = old
                .char_indices()
                .zip(new.chars())
                .find(|((_, a), b)| a != b)
                .map_or(old.len().min(new.len()), |((i, _), _)| i);
            masker.find(new).map_or(same, |s| same.min(s))
        })
        .max()
        .unwrap_or(0);
    if keep >= old.len() {
        masker.mask(old)
    } else {
        format!("{}{MASK}", masker.mask(&old[..keep]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masker(secrets: &[&str]) -> Masker {
        let text = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| format!("s{i} = {{ value = {s:?}, sensitive = true }}\n"))
            .collect::<String>();
        let pb = format!("[playbook]\nname = \"t\"\n[vars]\n{text}");
        crate::playbook::Playbook::parse(
            Path::new("t.toml"),
            pb,
            &crate::playbook::Overrides::default(),
        )
        .map(|p| p.masker())
        .unwrap_or_default()
    }

    fn text(lines: &[Line]) -> String {
        lines.iter().map(Line::text).collect::<Vec<_>>().join("\n")
    }

    /// Rebuild the new text from the old one and a diff with full context.
    fn patch(old: &str, lines: &[Line]) -> String {
        let mut out = Vec::new();
        let olds: Vec<&str> = old.lines().collect();
        let mut at = 0;
        for l in lines {
            match l {
                Line::Hunk(h) => {
                    let start: usize = h
                        .trim_start_matches("@@ -")
                        .split([',', ' '])
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1);
                    let start = start.saturating_sub(1).max(at);
                    out.extend(olds[at..start].iter().map(|s| s.to_string()));
                    at = start;
                }
                Line::Context(t) => {
                    out.push(t.clone());
                    at += 1;
                }
                Line::Removed(_) => at += 1,
                Line::Added(t) => out.push(t.clone()),
                _ => {}
            }
        }
        out.extend(olds[at.min(olds.len())..].iter().map(|s| s.to_string()));
        out.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn old_sensitive_values_are_hidden_too() {
        let m = masker(&["NEWTOKEN"]);
        let old = "A=1\nGOPROXY=https://u:OLDTOKEN@proxy\n# keep\n";
        let new = "A=1\nGOPROXY=https://u:NEWTOKEN@proxy\n# keep\n";
        let shown = text(&unified(
            Path::new("/env"),
            Some(old.as_bytes()),
            new.as_bytes(),
            &m,
        ));
        assert!(
            !shown.contains("OLDTOKEN") && !shown.contains("NEWTOKEN"),
            "{shown}"
        );
        assert!(shown.contains("-GOPROXY=https://u:********"), "{shown}");
        assert!(
            shown.contains("+GOPROXY=https://u:********@proxy"),
            "{shown}"
        );
        assert!(shown.contains(" A=1"), "{shown}");
        // Lines replaced by a block bringing the new value are hidden as
        // far as they differ from it, wherever in the block it is.
        let shown = text(&unified(
            Path::new("/motd"),
            Some(b"TOKEN=old\nB=2\n"),
            b"Hello\nTOKEN=NEWTOKEN\nB=2\n",
            &m,
        ));
        assert!(!shown.contains("old"), "{shown}");
        assert!(shown.contains("-TOKEN=********\n+Hello"), "{shown}");
        // Without a sensitive value in the new text, nothing is hidden.
        let shown = text(&unified(Path::new("/f"), Some(b"x=1\n"), b"x=2\n", &m));
        assert!(shown.contains("-x=1") && shown.contains("+x=2"), "{shown}");
    }

    #[test]
    fn multi_line_secrets_are_masked_line_by_line() {
        let m = masker(&["-----BEGIN KEY-----\nAAAA\n-----END KEY-----"]);
        let new = "key:\n-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n";
        let shown = text(&unified(Path::new("/k"), None, new.as_bytes(), &m));
        assert!(!shown.contains("AAAA"), "{shown}");
    }

    #[test]
    fn past_the_deadline_the_diff_is_coarser_but_still_right() {
        let old: String = (0..3000).map(|i| format!("line {i}\n")).collect();
        let new: String = (0..3000)
            .map(|i| {
                if i % 7 == 0 {
                    format!("changed {i}\n")
                } else {
                    format!("line {i}\n")
                }
            })
            .collect();
        for deadline in [Duration::ZERO, DEADLINE] {
            let lines = unified_within(
                Path::new("/f"),
                Some(old.as_bytes()),
                new.as_bytes(),
                &Masker::default(),
                deadline,
            );
            assert_eq!(patch(&old, &lines), new, "deadline {deadline:?}");
        }
    }

    proptest::proptest! {
        /// Whatever the texts (few distinct lines, so many are shared), the
        /// diff takes the old one to the new one.
        #[test]
        fn the_diff_rebuilds_the_new_text(
            old in proptest::collection::vec(0u8..6, 0..40),
            new in proptest::collection::vec(0u8..6, 0..40),
        ) {
            let text = |v: &[u8]| v.iter().map(|b| format!("l{b}\n")).collect::<String>();
            let (old, new) = (text(&old), text(&new));
            let lines = unified(Path::new("/f"), Some(old.as_bytes()), new.as_bytes(), &Masker::default());
            proptest::prop_assert_eq!(patch(&old, &lines), new);
        }
    }

    #[test]
    fn large_sides_are_summarised() {
        let big = vec![b'x'; SHOWN_LIMIT + 1];
        let lines = unified(Path::new("/big"), Some(&big), b"one\n", &Masker::default());
        assert_eq!(
            text(&lines),
            "/big: 1.0 MiB (1 line) -> 4 bytes (1 line); the diff is not shown above 1.0 MiB"
        );
    }
}

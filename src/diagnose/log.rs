//! Reading an error log the way a person saw it, in constant memory.
//!
//! A log can be a gigabyte of CI output, so it is never held whole: it is
//! read twice, line by line (stdin is spooled to a temporary file first).
//! The first pass measures the widest line, which tells whether a terminal
//! wrapped the log; the second cleans each line (escape sequences removed,
//! a line redrawn with carriage returns at its last state, control
//! characters replaced), rejoins wrapped messages, and runs every pattern
//! of the catalog on it at once, keeping only the first match of each.
//! Line numbers stay those of the file.
//!
//! Messages re-flowed at word boundaries (a web page, a mail) are tried on
//! up to [`MAX_REFLOW`] lines joined by spaces, for logs of up to
//! [`REFLOW_MAX_LINES`] lines: those come from pastes, and the windows
//! would cost eight passes over a large CI log.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use regex::{Regex, RegexSet};

/// How many lines a re-flowed message may span.
const MAX_REFLOW: usize = 8;
/// Logs longer than this are not searched for re-flowed messages.
pub const REFLOW_MAX_LINES: usize = 20_000;
/// A match that needed re-flowed lines rejoined counts for a little less:
/// the join may bridge two separate messages.
pub const REJOINED: f64 = 0.9;
/// Logs narrower than this are not taken for terminal-wrapped.
const NARROWEST_TERMINAL: usize = 40;
/// A longer line keeps only its end (go puts the cause last): memory stays
/// bounded whatever the input.
const MAX_LINE: usize = 64 * 1024;
/// A wrapped message longer than this is matched in pieces.
const MAX_MESSAGE: usize = 256 * 1024;
/// A NUL in the first bytes means a binary file, as grep and git decide.
const BINARY_PROBE: usize = 8 * 1024;
/// Lines shown as "what was read" when nothing matches.
pub const READ_LINES: usize = 8;

/// Where a pattern first matched.
#[derive(Clone, Debug)]
pub struct Found {
    /// 1-based line of the file where the match starts.
    pub line: usize,
    /// The message (line, or rejoined lines) that matched.
    pub text: String,
    /// Where in `text` the pattern matched (bytes).
    pub matched: std::ops::Range<usize>,
    /// Named captures that took part, trimmed, non-empty.
    pub captures: Vec<(String, String)>,
    /// 1.0, or [`REJOINED`] for a match across re-flowed lines.
    pub weight: f64,
    /// The 1-based lines (first, last) the matched message spans: two
    /// matches on overlapping lines are one piece of evidence.
    pub span: (usize, usize),
}

impl Found {
    fn new(c: &regex::Captures<'_>, re: &Regex, index: usize, text: &str, weight: f64) -> Found {
        let captures = re
            .capture_names()
            .flatten()
            .filter_map(|name| {
                let value = c.name(name)?.as_str().trim();
                (!value.is_empty()).then(|| (name.to_string(), value.to_string()))
            })
            .collect();
        let matched = c
            .get(0)
            .and_then(|m| text.find(m.as_str()).map(|at| at..at + m.len()))
            .unwrap_or(0..0);
        Found {
            line: index + 1,
            text: text.to_string(),
            matched,
            captures,
            weight,
            span: (index + 1, index + 1),
        }
    }
}

/// What one read of a log found.
#[derive(Debug)]
pub struct Scan {
    pub lines: usize,
    /// The first match of each pattern, by the pattern's index.
    pub found: Vec<Option<Found>>,
    /// The last lines that look like errors, with their numbers.
    pub error_lines: Vec<(usize, String)>,
}

/// Why a log cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(
        "it is not a text log: it holds a NUL byte at offset {0} (give the text output of go, git or ssh)"
    )]
    Binary(usize),
}

/// Reads lines of at most [`MAX_LINE`] bytes (the end of a longer one),
/// without ever buffering more.
struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn new(inner: R) -> Self {
        Lines {
            inner,
            buf: Vec::new(),
        }
    }

    /// The next line without its newline; `None` at the end.
    fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        self.buf.clear();
        let mut any = false;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            self.buf.extend_from_slice(&chunk[..take]);
            if self.buf.len() > 2 * MAX_LINE {
                let cut = self.buf.len() - MAX_LINE;
                self.buf.drain(..cut);
            }
            self.inner.consume(take + usize::from(done));
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        if self.buf.len() > MAX_LINE {
            let cut = self.buf.len() - MAX_LINE;
            self.buf.drain(..cut);
        }
        Ok(Some(&self.buf))
    }
}

/// What a terminal showed of one line of the file.
pub fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = strip_ansi(&text);
    let raw = text.strip_suffix('\r').unwrap_or(&text);
    let shown = raw.rsplit('\r').find(|part| !part.is_empty()).unwrap_or("");
    shown
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Display columns of a line (tabs to the next multiple of 8).
pub fn columns(line: &str) -> usize {
    line.chars().fold(
        0,
        |col, c| if c == '\t' { col / 8 * 8 + 8 } else { col + 1 },
    )
}

/// Remove terminal escape sequences: CSI (colours, cursor), OSC (titles),
/// DCS/SOS/PM/APC strings, charset selections (`ESC ( B` from `tput
/// sgr0`) and the 8-bit CSI.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let csi = match c {
            '\u{9b}' => true,
            '\u{1b}' => false,
            _ => {
                out.push(c);
                continue;
            }
        };
        let kind = if csi { Some('[') } else { chars.next() };
        match kind {
            // CSI: parameters and intermediates, then one final byte @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // Strings, up to BEL or ST (ESC \).
            Some(']' | 'P' | 'X' | '^' | '_') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || c == '\u{9c}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            // ESC, intermediates (0x20..0x2F), then one final byte.
            Some(' '..='/') => {
                while chars.peek().is_some_and(|c| (' '..='/').contains(c)) {
                    chars.next();
                }
                chars.next();
            }
            // Two-character escapes (ESC c, ESC =, ESC 7...).
            _ => {}
        }
    }
    out
}

/// Words of lines shown under "no known remedy": what was read. They
/// choose no remedy.
fn error_words() -> Option<&'static Regex> {
    static WORDS: std::sync::LazyLock<Option<Regex>> = std::sync::LazyLock::new(|| {
        Regex::new(
            r"(?i)\b(error|fatal|failed|denied|cannot|can't|unable|timeout|timed out|refused|invalid|mismatch|missing|not found|no such|unknown|undefined|panic|gone|unreachable|requires|exit status|maximum version|minimum version|indicates go|not supported|too new|too old)\b",
        )
        .ok()
    });
    WORDS.as_ref()
}

/// A message being built from terminal-wrapped lines.
struct Message {
    text: String,
    /// (byte offset in `text`, index of the file line starting there)
    starts: Vec<(usize, usize)>,
}

impl Message {
    fn line_at(&self, at: usize) -> usize {
        self.starts
            .iter()
            .rev()
            .find(|(offset, _)| *offset <= at)
            .map_or(0, |(_, line)| *line)
    }
}

struct Matcher<'a> {
    patterns: &'a [&'a Regex],
    set: &'a RegexSet,
    /// First match of each pattern: in a message, across one wrap, in
    /// re-flowed lines.
    direct: Vec<Option<Found>>,
    wrapped: Vec<Option<Found>>,
    reflowed: Vec<Option<Found>>,
}

impl Matcher<'_> {
    fn message(&mut self, m: &Message) {
        for p in self.set.matches(&m.text).iter() {
            if self.direct[p].is_some() {
                continue;
            }
            let re = self.patterns[p];
            if let Some(c) = re.captures(&m.text) {
                let at = c.get(0).map_or(0, |x| x.start());
                let mut found = Found::new(&c, re, m.line_at(at), m.text.trim_end(), 1.0);
                let first = m.starts.first().map_or(found.line, |(_, l)| l + 1);
                let last = m.starts.last().map_or(found.line, |(_, l)| l + 1);
                found.span = (first, last);
                self.direct[p] = Some(found);
            }
        }
    }

    /// A widest line joined with the next: only a match crossing the cut.
    fn across(&mut self, index: usize, line: &str, next: &str) {
        let joined = format!("{line}{next}");
        for p in self.set.matches(&joined).iter() {
            if self.wrapped[p].is_some() {
                continue;
            }
            let re = self.patterns[p];
            let crossing = re.captures_iter(&joined).find(|c| {
                c.get(0)
                    .is_some_and(|m| m.start() < line.len() && m.end() > line.len())
            });
            if let Some(c) = crossing {
                let mut found = Found::new(&c, re, index, &joined, REJOINED);
                found.span = (index + 1, index + 2);
                self.wrapped[p] = Some(found);
            }
        }
    }

    /// Lines `window` (index, text) joined by spaces, as before re-flow.
    fn reflow(&mut self, window: &[(usize, String)]) {
        if window.len() < 2 {
            return;
        }
        let mut joined = Message {
            text: String::new(),
            starts: Vec::new(),
        };
        for (n, (index, line)) in window.iter().enumerate() {
            if n > 0 {
                joined.text.push(' ');
            }
            joined.starts.push((joined.text.len(), *index));
            joined.text.push_str(line.trim());
        }
        for p in self.set.matches(&joined.text).iter() {
            if self.reflowed[p].is_some() {
                continue;
            }
            let re = self.patterns[p];
            let Some(c) = re.captures(&joined.text) else {
                continue;
            };
            let (at, end) = c.get(0).map_or((0, 0), |m| (m.start(), m.end()));
            // The evidence: from the line where the match starts to the
            // end of the one where it ends.
            let from = joined
                .starts
                .iter()
                .rev()
                .find(|(o, _)| *o <= at)
                .map_or(0, |(o, _)| *o);
            let to = joined
                .starts
                .iter()
                .find(|(o, _)| *o > end)
                .map_or(joined.text.len(), |(o, _)| o.saturating_sub(1));
            let text = joined.text.get(from..to).unwrap_or(&joined.text);
            let mut found = Found::new(&c, re, joined.line_at(at), text, REJOINED);
            found.span = (found.line, joined.line_at(end.saturating_sub(1)) + 1);
            self.reflowed[p] = Some(found);
        }
    }
}

/// Read a log through `open` (called once per pass) and match `patterns`
/// (the same, as one `set`). Memory is bounded by the longest kept line
/// and message, not by the log.
pub fn scan(
    open: &dyn Fn() -> io::Result<Box<dyn BufRead>>,
    patterns: &[&Regex],
    set: &RegexSet,
) -> Result<Scan, ReadError> {
    // Pass 1: is it text, how many lines, how wide.
    let (mut lines, mut width, mut at_width) = (0usize, 0usize, 0usize);
    let mut offset = 0usize;
    {
        let mut reader = Lines::new(open()?);
        while let Some(raw) = reader.next_line()? {
            if offset < BINARY_PROBE {
                if let Some(i) = raw.iter().take(BINARY_PROBE - offset).position(|b| *b == 0) {
                    return Err(ReadError::Binary(offset + i));
                }
            }
            offset = offset.saturating_add(raw.len() + 1);
            let cols = columns(&clean(raw));
            match cols.cmp(&width) {
                std::cmp::Ordering::Greater => {
                    width = cols;
                    at_width = 1;
                }
                std::cmp::Ordering::Equal => at_width += 1,
                std::cmp::Ordering::Less => {}
            }
            lines += 1;
        }
    }
    let wrapped = width >= NARROWEST_TERMINAL && at_width >= 2;
    let reflow = lines <= REFLOW_MAX_LINES;

    // Pass 2: match.
    let mut m = Matcher {
        patterns,
        set,
        direct: vec![None; patterns.len()],
        wrapped: vec![None; patterns.len()],
        reflowed: vec![None; patterns.len()],
    };
    let mut errors: VecDeque<(usize, String)> = VecDeque::new();
    let mut window: VecDeque<(usize, String)> = VecDeque::new();
    let mut message: Option<Message> = None;
    let mut previous_full: Option<(usize, String)> = None;
    let mut reader = Lines::new(open()?);
    let mut index = 0usize;
    while let Some(raw) = reader.next_line()? {
        let line = clean(raw);
        let full = columns(&line) == width;
        if error_words().is_some_and(|w| w.is_match(&line)) {
            if errors.len() == READ_LINES {
                errors.pop_front();
            }
            errors.push_back((index + 1, line.trim_end().to_string()));
        }
        if width >= NARROWEST_TERMINAL && !wrapped {
            if let Some((i, prev)) = previous_full.take() {
                m.across(i, &prev, &line);
            }
            if full {
                previous_full = Some((index, line.clone()));
            }
        }
        match message.as_mut() {
            Some(msg) if msg.text.len() < MAX_MESSAGE => {
                msg.starts.push((msg.text.len(), index));
                msg.text.push_str(&line);
            }
            _ => {
                if let Some(done) = message.take() {
                    m.message(&done);
                }
                message = Some(Message {
                    text: line.clone(),
                    starts: vec![(0, index)],
                });
            }
        }
        if !(wrapped && full) {
            if let Some(done) = message.take() {
                m.message(&done);
            }
        }
        if reflow {
            window.push_back((index, line));
            if window.len() > MAX_REFLOW {
                window.pop_front();
            }
            if window.len() == MAX_REFLOW {
                m.reflow(window.make_contiguous());
            }
        }
        index += 1;
    }
    if let Some(done) = message.take() {
        m.message(&done);
    }
    if reflow {
        // The windows starting in the last lines: shorter ones.
        let start = if lines >= MAX_REFLOW { 1 } else { 0 };
        let rest: Vec<(usize, String)> = window.into_iter().collect();
        for s in start..rest.len().saturating_sub(1) {
            m.reflow(&rest[s..]);
        }
    }
    let found = m
        .direct
        .into_iter()
        .zip(m.wrapped)
        .zip(m.reflowed)
        .map(|((d, w), r)| d.or(w).or(r))
        .collect();
    Ok(Scan {
        lines,
        found,
        error_lines: errors.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_text(text: &[u8], patterns: &[&str]) -> Result<Scan, ReadError> {
        let res: Vec<Regex> = patterns.iter().filter_map(|p| Regex::new(p).ok()).collect();
        let refs: Vec<&Regex> = res.iter().collect();
        let set = RegexSet::new(patterns).map_err(|e| io::Error::other(e.to_string()))?;
        let owned = text.to_vec();
        scan(
            &move || Ok(Box::new(io::Cursor::new(owned.clone())) as Box<dyn BufRead>),
            &refs,
            &set,
        )
    }

    #[test]
    fn logs_are_read_as_a_terminal_shows_them() {
        let lines: Vec<String> =
            b"\x1b[1;31merror\x1b[0m: x\r\n\x1b]0;title\x07go: y\rprogress 50%\rdone\n\
              \xffbad\x08\n\x1b(B\x1b[mgit@h: no\n\xc2\x9b31mred\n"
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(clean)
                .collect();
        assert_eq!(
            lines,
            [
                "error: x",
                "done",
                "\u{fffd}bad\u{fffd}",
                "git@h: no",
                "red"
            ]
        );
    }

    #[test]
    fn terminal_wrapped_lines_match_as_one_message_with_file_line_numbers() -> Result<(), ReadError>
    {
        let wide = "a".repeat(50);
        let text = format!("short\n{wide}\n{wide}\nend\nlast\n");
        let s = scan_text(text.as_bytes(), &["a{100}end"])?;
        let f = s.found[0].as_ref().map(|f| (f.line, f.weight));
        assert_eq!(f, Some((2, 1.0)));
        assert_eq!(s.lines, 5);
        // One long line is not a wrap: it is only the longest; a match
        // across it is tried, and counts for less.
        let one = format!("x\n{wide}\nbcd\n");
        let s = scan_text(one.as_bytes(), &["ab"])?;
        assert_eq!(
            s.found[0].as_ref().map(|f| (f.line, f.weight)),
            Some((2, REJOINED))
        );
        assert_eq!(columns("\tab"), 10);
        Ok(())
    }

    #[test]
    fn reflowed_lines_and_binary_files() -> Result<(), ReadError> {
        let s = scan_text(b"one two\nthree four\n", &["two three"])?;
        assert_eq!(s.found[0].as_ref().map(|f| f.line), Some(1));
        assert!(matches!(
            scan_text(b"ok\n\x00\x01", &["x"]),
            Err(ReadError::Binary(3))
        ));
        // A line far longer than any kept keeps its end.
        let mut long = vec![b'x'; 3 * MAX_LINE];
        long.extend_from_slice(b" the cause\n");
        let s = scan_text(&long, &["the cause$"])?;
        assert!(s.found[0].is_some());
        Ok(())
    }
}

//! Changes to a remote host, many to one exec.
//!
//! Every change an [`super::SshHost`] makes (write, append, mkdir, chmod,
//! chown, remove, move) is a step of [`CHANGES`], a fixed script that runs
//! its steps in order and stops at the first that fails, saying which.
//! While the host batches ([`super::Host::batch`]), steps queue and go out
//! together at the next observation or command, or when batching ends: a
//! first apply of 50 files costs a few execs instead of several per file.
//! The order is what the journal needs: a change's journal append is an
//! earlier step of the same script, synced before the step it describes
//! runs, so a run cut at any point leaves on the host a journal covering
//! every change made.

use std::path::{Path, PathBuf};

use super::shell::quote;
use super::{Attrs, HostError, HostResult};

/// A queue is sent before its command line nears the limit of one
/// exec request (sshd hands it to the login shell as one argument, at most
/// 128 KiB on Linux; `--become` quotes it once more), or before the bytes
/// it holds grow large.
const LINE_LIMIT: usize = 48 * 1024;
const BYTES_LIMIT: usize = 8 << 20;

/// The steps, after [`super::shell::CHASE`]. They run in the script's own
/// shell, no subshell each (a fork per step was most of an apply's time),
/// so a step ends with `return 1`, never `exit` or `set -e`, and names
/// its variables apart from `chase`'s (`rest R n c o t me E`).
///
/// Durability is what the journal needs, with one `sync` per change: an
/// append (a journal line) or a rename marks its file or folder dirty, and
/// every later change first syncs what is dirty (a write together with its
/// own new file), so a journal line is on disk before the change it
/// describes is made; the end of the script syncs the rest.
///
/// A write makes its new file beside the target (`set -C`: never an
/// existing file, so a name planted there is refused, not written
/// through), with the mode through the umask when it has no x or special
/// bits, and renames it over the target. Small text content comes as a
/// word (`-` for the length) and is written by `printf`; other content is
/// read from stdin: `take N` copies exactly N bytes (dd with full blocks),
/// leaving the next step's bytes in the pipe.
pub(super) const CHANGES: &str = r#"umask 077; dirty=
mark() {
  s=$1 k=
  while :; do
    case $s in
      *\'*) k="$k${s%%\'*}'\\''"; s=${s#*\'} ;;
      *) k="$k$s"; break ;;
    esac
  done
  case $dirty in *" '$k'"*) ;; *) dirty="$dirty '$k'" ;; esac
}
flush() {
  if [ -n "$dirty" ]; then eval "sync -- $dirty" || return 1; fi
  dirty=
}
want() { chase "$1" || { printf '%s\n' "$E" >&2; return 1; }; }
plain() { if [ -L "$1" ]; then echo "$1: it is a symlink, which fixer does not follow here" >&2; return 1; fi; }
take() {
  q=$(($1 / 65536)) r=$(($1 % 65536))
  if [ "$q" -gt 0 ]; then dd iflag=fullblock bs=65536 count="$q" status=none || return 1; fi
  if [ "$r" -gt 0 ]; then dd iflag=fullblock bs="$r" count=1 status=none || return 1; fi
}
put() {
  case $1 in
    -) printf '%s' "$2" ;;
    '<') cat -- "$src" ;;
    *) take "$1" ;;
  esac
}
bits() { case $1 in 0) r= ;; 2) r=w ;; 4) r=r ;; 6) r=rw ;; esac; }
drop() { if [ -e "$1" ]; then rm -f -- "$1"; fi; return 1; }
step_write() {
  # A copy: its source, a regular file, streams on the host.
  if [ "$5" = '<' ]; then
    want "$6" || return 1; plain "$R" || return 1
    [ -f "$R" ] || { echo "$R: not a regular file" >&2; return 1; }
    src=$R
  fi
  want "$1" || return 1
  p=$R mode=$2 uid=$3 gid=$4
  d=${p%/*} b=${p##*/}
  [ -n "$d" ] || d=/
  w="$d/.$b.fixer-$7"
  # A symlink in the way is replaced, not written through.
  if [ -e "$p" ] && [ ! -L "$p" ]; then
    if [ "$mode" = - ]; then mode=$(stat -c %a -- "$p") || return 1; fi
    if [ "$uid" = - ]; then uid=$(stat -c %u -- "$p") || return 1; fi
    if [ "$gid" = - ]; then gid=$(stat -c %g -- "$p") || return 1; fi
  elif [ "$mode" = - ]; then mode=644; fi
  if [ -e "$w" ] || [ -L "$w" ]; then echo "$w: File exists" >&2; return 1; fi
  case $mode in
    [0246][0246][0246])
      bits "${mode%??}"; u=$r; m=${mode#?}; bits "${m%?}"; g=$r; bits "${mode#??}"
      umask "u=$u,g=$g,o=$r"; mode= ;;
  esac
  set -C
  put "$5" "$6" > "$w"; s=$?
  set +C; umask 077
  [ "$s" -eq 0 ] || drop "$w" || return 1
  if [ "$uid" != - ] || [ "$gid" != - ]; then
    own=$(stat -c %u:%g -- "$w") || drop "$w" || return 1
    [ "$uid" != - ] || uid=${own%:*}
    [ "$gid" != - ] || gid=${own#*:}
    if [ "$uid:$gid" != "$own" ]; then chown -- "$uid:$gid" "$w" || drop "$w" || return 1; fi
  fi
  if [ -n "$mode" ]; then chmod -- "$mode" "$w" || drop "$w" || return 1; fi
  mark "$w"
  flush || drop "$w" || return 1
  mv -f -T -- "$w" "$p" || drop "$w" || return 1
  mark "$d"
}
step_append() {
  want "$1" || return 1; plain "$R" || return 1
  put "$2" "$3" >> "$R" || return 1
  mark "$R"
}
step_mkdir() {
  flush || return 1; want "$1" || return 1
  mkdir -m "$2" -- "$R" || return 1
  d=${R%/*}; mark "${d:-/}"
}
step_chmod() { flush || return 1; want "$1" || return 1; plain "$R" || return 1; chmod -- "$2" "$R"; }
step_chown() { flush || return 1; want "$1" || return 1; chown -h -- "$2" "$R"; }
step_remove() {
  flush || return 1; want "$1" || return 1
  if [ -d "$R" ] && [ ! -L "$R" ]; then rmdir -- "$R"; else rm -- "$R"; fi
}
step_move() {
  flush || return 1; want "$1" || return 1; a=$R; want "$2" || return 1
  mv -T -- "$a" "$R" || return 1
  d=${R%/*}; mark "${d:-/}"
}
at=0
while [ $# -gt 0 ]; do
  case $1 in
    write) step_write "$2" "$3" "$4" "$5" "$6" "$7" "$8"; s=$?; shift 8 ;;
    append) step_append "$2" "$3" "$4"; s=$?; shift 4 ;;
    mkdir) step_mkdir "$2" "$3"; s=$?; shift 3 ;;
    chmod) step_chmod "$2" "$3"; s=$?; shift 3 ;;
    chown) step_chown "$2" "$3"; s=$?; shift 3 ;;
    remove) step_remove "$2"; s=$?; shift 2 ;;
    move) step_move "$2" "$3"; s=$?; shift 3 ;;
    *) echo "unknown step $1" >&2; s=1 ;;
  esac
  if [ "$s" -ne 0 ]; then
    # What the steps before made stays durable; the bytes of the steps
    # not run are read, so the sender never blocks on a full pipe.
    flush 2>/dev/null; echo "$at"; cat > /dev/null; exit 1
  fi
  at=$((at+1))
done
flush || { echo "$((at-1))"; exit 1; }"#;

/// Content up to this size that is text without NUL travels as a word of
/// the command line (written by `printf`, no process), not on stdin.
const INLINE_WORD: usize = 4096;

/// `content` as the (length, word) pair of a step: `-` and the text, or
/// the length and an empty word with the bytes on stdin.
fn content_words(content: &[u8]) -> (String, String, Vec<u8>) {
    match std::str::from_utf8(content) {
        Ok(text) if content.len() <= INLINE_WORD && !content.contains(&0) => {
            ("-".into(), text.to_string(), Vec::new())
        }
        _ => (content.len().to_string(), String::new(), content.to_vec()),
    }
}

/// A name part for a write's new file that no other write of this
/// process uses and a stranger cannot guess (the file is made with
/// `set -C`, so a guessed name only makes the write fail). Six characters,
/// as `mktemp` makes: the target's name keeps its room.
fn temp_suffix() -> String {
    use std::hash::BuildHasher as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut v = std::hash::RandomState::new().hash_one((n, std::process::id()));
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..6)
        .map(|_| {
            let c = ALPHABET[(v % ALPHABET.len() as u64) as usize];
            v /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// One change, as the words of its [`CHANGES`] step and the bytes it reads.
pub(super) struct Step {
    /// For the error: `cannot <op> <path>`.
    pub op: &'static str,
    pub path: PathBuf,
    /// Paths whose cached observations the step makes stale.
    pub touches: Vec<PathBuf>,
    words: Vec<String>,
    bytes: Vec<u8>,
}

fn path_word(op: &'static str, path: &Path) -> HostResult<String> {
    path.to_str().map(str::to_string).ok_or_else(|| {
        HostError::new(
            op,
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
        )
    })
}

impl Step {
    fn new(op: &'static str, path: &Path, words: Vec<String>, bytes: Vec<u8>) -> Step {
        Step {
            op,
            path: path.to_path_buf(),
            touches: vec![path.to_path_buf()],
            words,
            bytes,
        }
    }

    pub fn write(path: &Path, content: &[u8], attrs: Attrs) -> HostResult<Step> {
        let (len, text, bytes) = content_words(content);
        Self::write_of(path, (len, text, bytes), attrs)
    }

    /// A write whose content is the file `from` on the host.
    pub fn copy(from: &Path, to: &Path, attrs: Attrs) -> HostResult<Step> {
        let source = ("<".into(), path_word("read", from)?, Vec::new());
        Self::write_of(to, source, attrs)
    }

    fn write_of(
        path: &Path,
        (len, text, bytes): (String, String, Vec<u8>),
        attrs: Attrs,
    ) -> HostResult<Step> {
        let opt = |v: Option<u32>, octal: bool| match v {
            Some(v) if octal => format!("{v:o}"),
            Some(v) => v.to_string(),
            None => "-".to_string(),
        };
        let words = vec![
            "write".into(),
            path_word("write", path)?,
            opt(attrs.mode, true),
            opt(attrs.uid, false),
            opt(attrs.gid, false),
            len,
            text,
            temp_suffix(),
        ];
        Ok(Step::new("write", path, words, bytes))
    }

    pub fn append(path: &Path, content: &[u8]) -> HostResult<Step> {
        let (len, text, bytes) = content_words(content);
        let words = vec!["append".into(), path_word("append to", path)?, len, text];
        Ok(Step::new("append to", path, words, bytes))
    }

    pub fn mkdir(path: &Path, mode: u32) -> HostResult<Step> {
        let words = vec![
            "mkdir".into(),
            path_word("create directory", path)?,
            format!("{mode:o}"),
        ];
        Ok(Step::new("create directory", path, words, Vec::new()))
    }

    pub fn chmod(path: &Path, mode: u32) -> HostResult<Step> {
        let words = vec![
            "chmod".into(),
            path_word("chmod", path)?,
            format!("{mode:o}"),
        ];
        Ok(Step::new("chmod", path, words, Vec::new()))
    }

    pub fn chown(path: &Path, owner: String) -> HostResult<Step> {
        let words = vec!["chown".into(), path_word("chown", path)?, owner];
        Ok(Step::new("chown", path, words, Vec::new()))
    }

    pub fn remove(path: &Path) -> HostResult<Step> {
        let words = vec!["remove".into(), path_word("remove", path)?];
        Ok(Step::new("remove", path, words, Vec::new()))
    }

    pub fn rename(from: &Path, to: &Path) -> HostResult<Step> {
        let words = vec![
            "move".into(),
            path_word("move", from)?,
            path_word("move", to)?,
        ];
        let mut step = Step::new("move", from, words, Vec::new());
        step.touches.push(to.to_path_buf());
        Ok(step)
    }

    /// The step's length in the command line, counted as if quoted twice
    /// (`--become` quotes the line once more, and each `'` grows again).
    /// The step's name in [`CHANGES`]: `write`, `mkdir`, `move`...
    pub fn verb(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    fn line_len(&self) -> usize {
        self.words
            .iter()
            .map(|w| {
                let q = quote(w);
                q.len() + 3 * q.matches('\'').count() + 3
            })
            .sum()
    }
}

/// Steps not yet sent.
#[derive(Default)]
pub(super) struct Queue {
    pub batching: bool,
    steps: Vec<Step>,
    line: usize,
    bytes: usize,
}

impl Queue {
    pub fn push(&mut self, step: Step) {
        self.line += step.line_len();
        self.bytes += step.bytes.len();
        self.steps.push(step);
    }

    /// Whether what is queued must go now.
    pub fn due(&self) -> bool {
        !self.batching || self.line >= LINE_LIMIT || self.bytes >= BYTES_LIMIT
    }

    pub fn take(&mut self) -> Vec<Step> {
        self.line = 0;
        self.bytes = 0;
        std::mem::take(&mut self.steps)
    }
}

/// The arguments and stdin of one [`CHANGES`] exec.
pub(super) fn script_input(steps: &[Step]) -> (Vec<String>, Vec<u8>) {
    let mut words = Vec::new();
    let mut bytes = Vec::new();
    for s in steps {
        words.extend(s.words.iter().cloned());
        bytes.extend_from_slice(&s.bytes);
    }
    (words, bytes)
}

/// The step the script stopped at, from what it printed (the first, when
/// it printed nothing readable: the connection failed).
pub(super) fn failed_step(stdout: &[u8], steps: usize) -> usize {
    String::from_utf8_lossy(stdout)
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|i| *i < steps)
        .unwrap_or(0)
}

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

/// The steps, after [`super::shell::CHASE`]. Each runs in a subshell, so
/// that `need` and `set -e` end the step, not the script; its status is
/// read outside any `||` list, where `set -e` would be ignored. `take N`
/// copies exactly N bytes of stdin (dd with full blocks), leaving the
/// next step's bytes in the pipe.
pub(super) const CHANGES: &str = r#"take() {
  q=$(($1 / 65536)) r=$(($1 % 65536))
  if [ "$q" -gt 0 ]; then dd iflag=fullblock bs=65536 count="$q" status=none; fi
  if [ "$r" -gt 0 ]; then dd iflag=fullblock bs="$r" count=1 status=none; fi
}
step_write() {
  set -e
  need "$1"; p=$R mode=$2 uid=$3 gid=$4
  d=${p%/*} b=${p##*/}
  [ -n "$d" ] || d=/
  t=$(mktemp "$d/.$b.fixer-XXXXXX")
  trap 'rm -f -- "$t"' EXIT
  take "$5" > "$t"
  # A symlink in the way is replaced, not written through.
  if [ -e "$p" ] && [ ! -L "$p" ]; then
    [ "$mode" != - ] || mode=$(stat -c %a -- "$p")
    [ "$uid" != - ] || uid=$(stat -c %u -- "$p")
    [ "$gid" != - ] || gid=$(stat -c %g -- "$p")
  elif [ "$mode" = - ]; then mode=644; fi
  if [ "$uid" != - ] || [ "$gid" != - ]; then
    own=$(stat -c %u:%g -- "$t")
    [ "$uid" != - ] || uid=${own%:*}
    [ "$gid" != - ] || gid=${own#*:}
    [ "$uid:$gid" = "$own" ] || chown -- "$uid:$gid" "$t"
  fi
  chmod -- "$mode" "$t"
  sync -- "$t"
  mv -f -T -- "$t" "$p"
  sync -- "$d"
}
step_append() {
  set -e; umask 077
  need "$1"; nolink "$R"
  : >> "$R"
  take "$2" >> "$R"
  sync -- "$R"
}
step_mkdir() { set -e; need "$1"; mkdir -m "$2" -- "$R"; d=${R%/*}; sync -- "${d:-/}"; }
step_chmod() { need "$1"; nolink "$R"; chmod -- "$2" "$R"; }
step_chown() { need "$1"; chown -h -- "$2" "$R"; }
step_remove() { need "$1"; if [ -d "$R" ] && [ ! -L "$R" ]; then rmdir -- "$R"; else rm -- "$R"; fi; }
step_move() { set -e; need "$1"; a=$R; need "$2"; mv -T -- "$a" "$R"; d=${R%/*}; sync -- "${d:-/}"; }
n=0
while [ $# -gt 0 ]; do
  case $1 in
    write) ( step_write "$2" "$3" "$4" "$5" "$6" ); s=$?; shift 6 ;;
    append) ( step_append "$2" "$3" ); s=$?; shift 3 ;;
    mkdir) ( step_mkdir "$2" "$3" ); s=$?; shift 3 ;;
    chmod) ( step_chmod "$2" "$3" ); s=$?; shift 3 ;;
    chown) ( step_chown "$2" "$3" ); s=$?; shift 3 ;;
    remove) ( step_remove "$2" ); s=$?; shift 2 ;;
    move) ( step_move "$2" "$3" ); s=$?; shift 3 ;;
    *) echo "unknown step $1" >&2; s=1 ;;
  esac
  if [ "$s" -ne 0 ]; then
    # The bytes of the steps not run are read, so the sender never
    # blocks on a full pipe.
    echo "$n"; cat > /dev/null; exit 1
  fi
  n=$((n+1))
done"#;

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
            content.len().to_string(),
        ];
        Ok(Step::new("write", path, words, content.to_vec()))
    }

    pub fn append(path: &Path, content: &[u8]) -> HostResult<Step> {
        let words = vec![
            "append".into(),
            path_word("append to", path)?,
            content.len().to_string(),
        ];
        Ok(Step::new("append to", path, words, content.to_vec()))
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

    fn line_len(&self) -> usize {
        self.words.iter().map(|w| quote(w).len() + 1).sum()
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

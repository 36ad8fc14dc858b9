//! POSIX shell words for hosts that can only run a command *line* (sshd
//! hands the exec request to the login shell as `$SHELL -c LINE`).
//!
//! Every value becomes one single-quoted word; nothing fixer or a user
//! supplies is ever spliced into shell syntax. Scripts that fixer runs on a
//! remote host are fixed texts that receive their values as positional
//! parameters: `sh -c SCRIPT sh ARG1 ARG2...`.

use std::path::Path;

use super::Cmd;

/// Resolving paths in sh as [`super::LocalHost`] does (`host/resolve.rs`),
/// for the scripts a remote host runs (every SSH operation, and the
/// self-restore watchdog): `chase PATH` sets `$R` to PATH with every
/// symlink on the way resolved but the last component, following only
/// symlinks owned by root or by the user the script runs as; otherwise it
/// sets `$E` to why and fails. `need PATH` does the same or ends the script
/// with the message; `nolink PATH` ends it if PATH is a symlink. Unlike the
/// local walk this checks, then uses a path (a shell holds no directory
/// open): a link swapped in between, within one exec, is followed.
pub const CHASE: &str = r#"me=
chase() {
  rest=$1 R= n=0
  while [ -n "$rest" ]; do
    c=${rest%%/*}
    case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
    case $c in ''|.) continue ;; ..) R=${R%/*}; continue ;; esac
    if [ -n "$rest" ] && [ -L "$R/$c" ]; then
      o=$(stat -c %u -- "$R/$c" 2>&1) || { E=$o; return 1; }
      [ -n "$me" ] || me=$(id -u)
      if [ "$o" != 0 ] && [ "$o" != "$me" ]; then
        E="$R/$c is a symlink owned by uid $o: fixer follows only symlinks owned by root or by the user it acts as"
        return 1
      fi
      n=$((n+1))
      [ "$n" -le 40 ] || { E="$1: Too many levels of symbolic links"; return 1; }
      t=$(readlink -- "$R/$c" 2>&1) || { E=$t; return 1; }
      case $t in /*) R= ;; esac
      rest=$t/$rest
    else
      R=$R/$c
    fi
  done
  [ -n "$R" ] || R=/
}
need() { chase "$1" || { printf '%s\n' "$E" >&2; exit 1; }; }
nolink() { if [ -L "$1" ]; then echo "$1: it is a symlink, which fixer does not follow here" >&2; exit 1; fi; }
"#;

/// One shell word that the shell turns back into exactly `s`.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    // Inside single quotes nothing is special but the quote itself, which
    // is closed, escaped and reopened.
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn quote_path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// A command line running a fixed `script` with `args` as `$1`, `$2`, ...
/// In the C locale: callers read the tools' error messages.
pub fn script_line(script: &str, args: &[&str]) -> String {
    let mut line = format!("LC_ALL=C sh -c {} sh", quote(script));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    line
}

/// The command line for a [`Cmd`]: working directory, environment, an
/// optional kill timeout (GNU `timeout`, which signals the whole process
/// group it starts), then the argv words.
pub fn command_line(cmd: &Cmd) -> String {
    let mut line = String::new();
    if let Some(cwd) = &cmd.cwd {
        line.push_str(&format!("cd {} && ", quote_path(cwd)));
    }
    line.push_str("exec");
    if !cmd.env.is_empty() {
        line.push_str(" env");
        for (k, v) in &cmd.env {
            line.push(' ');
            line.push_str(&quote(&format!("{k}={v}")));
        }
    }
    if let Some(secs) = cmd.timeout_secs {
        // TERM first, KILL a second later; exit status 124 means timed out.
        line.push_str(&format!(" timeout -k 1 {secs}"));
    }
    for word in &cmd.argv {
        line.push(' ');
        line.push_str(&quote(word));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round-trip through a real `sh`: what the shell hands the program is
    /// exactly the value we quoted.
    #[test]
    fn quoted_words_reach_the_program_verbatim() -> Result<(), String> {
        let nasty = [
            "plain",
            "",
            "it's",
            "a b",
            "$(touch /tmp/fixer-pwned)",
            "`id`",
            "x; rm -rf /",
            "line1\nline2",
            "\"double\"",
            "back\\slash",
            "*",
            "~root",
            "-n",
            "tab\there",
        ];
        for v in nasty {
            let line = format!("printf '%s' {}", quote(v));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .output()
                .map_err(|e| e.to_string())?;
            if out.stdout != v.as_bytes() {
                return Err(format!(
                    "{v:?} came back as {:?}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn command_line_quotes_env_cwd_and_argv() {
        let cmd = Cmd {
            argv: vec!["go".into(), "mod".into(), "tidy".into()],
            env: vec![("GOPROXY".into(), "https://p;$(x)".into())],
            cwd: Some("/srv/my app".into()),
            timeout_secs: Some(5),
            changes_only: None,
        };
        assert_eq!(
            command_line(&cmd),
            "cd '/srv/my app' && exec env 'GOPROXY=https://p;$(x)' timeout -k 1 5 go mod tidy"
        );
    }
}

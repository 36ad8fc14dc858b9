//! POSIX shell words for hosts that can only run a command *line* (sshd
//! hands the exec request to the login shell as `$SHELL -c LINE`).
//!
//! Every value becomes one single-quoted word; nothing fixer or a user
//! supplies is ever spliced into shell syntax. Scripts that fixer runs on a
//! remote host are fixed texts that receive their values as positional
//! parameters: `sh -c SCRIPT sh ARG1 ARG2...`.

use std::path::Path;

use super::Cmd;

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
        };
        assert_eq!(
            command_line(&cmd),
            "cd '/srv/my app' && exec env 'GOPROXY=https://p;$(x)' timeout -k 1 5 go mod tidy"
        );
    }
}

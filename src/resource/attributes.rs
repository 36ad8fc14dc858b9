//! Mode and ownership as playbooks declare them, shared by `file` and
//! `permissions`.

use serde::{Deserialize, Deserializer};

use crate::error::Error;
use crate::host::{Host, Meta};

/// A file mode: octal (`"0750"`) or symbolic as chmod(1) takes it
/// (`"u=rwX,g=rX,o="`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// Which of u/g/o, as a mask over the permission bits.
    who: u32,
    op: char,
    perms: String,
}

const WHO_U: u32 = 0o4700;
const WHO_G: u32 = 0o2070;
const WHO_O: u32 = 0o1007;

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
            return u32::from_str_radix(s, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Mode::Octal)
                .ok_or_else(|| format!("`{s}` is not an octal mode between 0000 and 7777"));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let op_at = part
                .find(['+', '-', '='])
                .ok_or_else(|| format!("`{part}` in mode `{s}` has no +, - or ="))?;
            let (who_s, rest) = part.split_at(op_at);
            let mut who = 0;
            for c in who_s.chars() {
                who |= match c {
                    'u' => WHO_U,
                    'g' => WHO_G,
                    'o' => WHO_O,
                    'a' => WHO_U | WHO_G | WHO_O,
                    _ => return Err(format!("`{c}` in mode `{s}` is not one of u, g, o, a")),
                };
            }
            if who == 0 {
                who = WHO_U | WHO_G | WHO_O;
            }
            let mut chars = rest.chars();
            let op = chars.next().unwrap_or('=');
            let perms: String = chars.collect();
            if let Some(bad) = perms.chars().find(|c| !"rwxXst".contains(*c)) {
                return Err(format!(
                    "`{bad}` in mode `{s}` is not one of r, w, x, X, s, t"
                ));
            }
            clauses.push(Clause { who, op, perms });
        }
        Ok(Mode::Symbolic(clauses))
    }

    /// The mode a path ends up with, given what it has now.
    pub fn apply(&self, current: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Mode::Octal(m) => return *m,
            Mode::Symbolic(c) => c,
        };
        let mut mode = current & 0o7777;
        for c in clauses {
            let mut bits = 0;
            for p in c.perms.chars() {
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    // Execute only where it means "search" or is already set.
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => 0,
                };
            }
            bits &= c.who;
            mode = match c.op {
                '+' => mode | bits,
                '-' => mode & !bits,
                _ => {
                    // `=` resets rwx of the named classes; directories keep
                    // setgid as GNU chmod does.
                    let keep = if is_dir { 0o7000 } else { 0o1000 & !c.who };
                    (mode & !(c.who & !keep)) | bits
                }
            };
        }
        mode
    }
}

impl schemars::JsonSchema for Mode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Mode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "title": "mode",
            "type": "string",
            "description": "Octal (`\"0644\"`) or symbolic (`\"u=rw,go=r\"`, `[ugoa]*[+-=][rwxXst]*`, comma-separated; `X` is execute for directories and for files that already have an execute bit). A bare number is refused: TOML reads 644 as decimal."
        })
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(i64),
        }
        match Raw::deserialize(d)? {
            Raw::S(s) => Mode::parse(&s).map_err(serde::de::Error::custom),
            Raw::N(n) => Err(serde::de::Error::custom(format!(
                "write the mode as a string (\"0{n}\" or \"u=rw,go=r\"): a bare number is read as decimal"
            ))),
        }
    }
}

/// A user or group, by name or numeric id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Account {
    Name(String),
    Id(u32),
}

impl schemars::JsonSchema for Account {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Account".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "title": "name or id",
            "type": ["string", "integer"],
            "minimum": 0,
            "maximum": 4294967294u32,
            "minLength": 1,
            "description": "A name (resolved on the target) or a numeric id (4294967295 is not one: chown takes it as \"leave unchanged\")."
        })
    }
}

impl<'de> Deserialize<'de> for Account {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u32),
        }
        let id = |n: u32| {
            if n == u32::MAX {
                // (uid_t)-1: chown(2) reads it as "leave unchanged".
                Err(serde::de::Error::custom(
                    "4294967295 is not an id: chown takes it as \"leave unchanged\", so it would set nothing",
                ))
            } else {
                Ok(Account::Id(n))
            }
        };
        Ok(match Raw::deserialize(d)? {
            Raw::N(n) => id(n)?,
            Raw::S(s) => match s.parse::<u32>() {
                Ok(n) => id(n)?,
                Err(_) if s.is_empty() => {
                    return Err(serde::de::Error::custom("user/group name is empty"))
                }
                Err(_) => Account::Name(s),
            },
        })
    }
}

/// The ownership a resource declares, resolved to ids on a host.
pub fn resolve_owner(
    host: &dyn Host,
    owner: Option<&Account>,
    group: Option<&Account>,
) -> Result<(Option<u32>, Option<u32>), Error> {
    let uid = match owner {
        None => None,
        Some(Account::Id(n)) => Some(*n),
        Some(Account::Name(n)) => Some(
            host.user_id(n)
                .map_err(|e| Error::host(host, e))?
                .ok_or_else(|| {
                    Error::Conflict(format!("user `{n}` does not exist on {}", host.name()))
                })?,
        ),
    };
    let gid = match group {
        None => None,
        Some(Account::Id(n)) => Some(*n),
        Some(Account::Name(n)) => Some(
            host.group_id(n)
                .map_err(|e| Error::host(host, e))?
                .ok_or_else(|| {
                    Error::Conflict(format!("group `{n}` does not exist on {}", host.name()))
                })?,
        ),
    };
    Ok((uid, gid))
}

/// The attributes to change on a path so it matches the declaration.
pub fn attrs_to_change(
    meta: &Meta,
    mode: Option<&Mode>,
    uid: Option<u32>,
    gid: Option<u32>,
) -> crate::host::Attrs {
    let want_mode = mode.map(|m| m.apply(meta.mode, meta.kind == crate::host::FileKind::Dir));
    crate::host::Attrs {
        mode: want_mode.filter(|m| *m != meta.mode),
        uid: uid.filter(|u| *u != meta.uid),
        gid: gid.filter(|g| *g != meta.gid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str, cur: u32, dir: bool) -> Result<u32, String> {
        Ok(Mode::parse(s)?.apply(cur, dir))
    }

    #[test]
    fn symbolic_modes_match_chmod() -> Result<(), String> {
        assert_eq!(sym("u=rwX,g=rX,o=", 0o644, false)?, 0o640);
        assert_eq!(sym("u=rwX,g=rX,o=", 0o644, true)?, 0o750);
        assert_eq!(sym("u=rwX,g=rX,o=", 0o755, false)?, 0o750);
        assert_eq!(sym("go-w", 0o777, false)?, 0o755);
        assert_eq!(sym("a+x", 0o600, false)?, 0o711);
        assert_eq!(sym("+t", 0o777, true)?, 0o1777);
        assert_eq!(sym("u+s", 0o755, false)?, 0o4755);
        assert_eq!(sym("0750", 0o644, false)?, 0o750);
        assert_eq!(sym("750", 0o644, false)?, 0o750);
        Ok(())
    }

    #[test]
    fn bad_modes_are_explained() {
        assert!(Mode::parse("0999").is_err());
        assert!(Mode::parse("u=rwz")
            .err()
            .unwrap_or_default()
            .contains("`z`"));
        assert!(Mode::parse("q+r").is_err());
        assert!(Mode::parse("rw").is_err());
    }
}

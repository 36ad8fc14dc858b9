//! `netplan`: one netplan YAML file, from a template or an inline
//! `[resource.network]` table.
//!
//! Compared as YAML data, so a file differing only in formatting, key order
//! or comments is unchanged; when it does differ, the diff is shown between
//! normalised forms (keys sorted) so only the real change stands out.
//! Validated before anything is written: YAML syntax at load, then the real
//! `netplan generate` against a scratch root holding the new file together
//! with the other netplan files of the target (netplan merges them). Its
//! warnings (deprecated keys such as gateway4) are reported in the plan.
//! Written with mode 0600, owned by root, as netplan expects.

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};
use toml::de::DeValue;
use toml::Spanned;

use super::{read_regular_file, Build, Claim, Context, Kind, Part, Resource, TargetPath};
use crate::change::{Delta, Op};
use crate::error::Error;
use crate::host::{Attrs, Cmd, FileKind, Host, OnHost};

pub const KIND: Kind = Kind {
    name: "netplan",
    build,
    shell_fields: &[],
    schema: <Spec as schemars::JsonSchema>::json_schema,
};

/// Where netplan reads its YAML from, weakest first: for one file name,
/// /run's replaces /etc's, which replaces /lib's.
const DIRS: [&str; 3] = ["/lib/netplan", "/etc/netplan", "/run/netplan"];

/// Every `.yaml` netplan would read on `host`, in netplan's order: by file
/// name across the folders, and for one name the file that wins last.
pub(crate) fn yaml_files(host: &dyn Host) -> Result<Vec<std::path::PathBuf>, Error> {
    let mut paths = Vec::new();
    for (rank, dir) in DIRS.iter().enumerate() {
        let dir = std::path::Path::new(dir);
        if !host
            .stat(dir)
            .on(host)?
            .is_some_and(|m| m.kind == FileKind::Dir)
        {
            continue;
        }
        for name in host.list(dir).on(host)? {
            if name.ends_with(".yaml") {
                paths.push((rank, dir.join(name)));
            }
        }
    }
    paths.sort_by(|(ra, a), (rb, b)| a.file_name().cmp(&b.file_name()).then(ra.cmp(rb)));
    Ok(paths.into_iter().map(|(_, p)| p).collect())
}

/// One netplan file, from a Handlebars template or an inline table.
///
/// - **Compared as YAML data**: a file that differs only in formatting, key
///   order or comments is unchanged (its mode may still be fixed). When the
///   data differs, the diff shown is between normalised forms (keys sorted),
///   so only the real change stands out; the file written is the template's
///   text, with its comments.
/// - **Validated before anything is written**: the rendered text must be
///   YAML (an error names the template, line and column, at `validate`
///   time); then the real `netplan generate --root-dir <scratch>` runs on a
///   scratch root holding the new file and the target's other netplan files
///   (netplan merges them). A rejection fails with netplan's own message
///   (`unknown key 'adresses'`, `invalid boolean value 'maybe'`, with file,
///   line and column). netplan's warnings (deprecated `gateway4`, ...) are
///   shown in the plan.
/// - Written with mode 0600, owner root:root. Other netplan files are
///   untouched.
/// - Applying the configuration is a handler's job: the shipped playbooks
///   notify `netplan-apply`, which runs `netplan apply`, or `netplan generate
///   --root-dir "$FIXER_ROOT"` under `--root`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["template"]}, {"required": ["network"]}]))]
struct Spec {
    /// A `*.yaml` directly in `/etc/netplan`, `/run/netplan` or `/lib/netplan`.
    #[schemars(with = "TargetPath")]
    path: Spanned<TargetPath>,
    /// A Handlebars file relative to the playbook (`templates/netplan/`
    /// ships `dhcp.yaml.hbs`, `static.yaml.hbs`, `bond.yaml.hbs`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    template: Option<Spanned<String>>,
    /// Extra variables for the template.
    #[serde(default)]
    vars: Option<serde_json::Map<String, serde_json::Value>>,
    /// Instead of `template`, as `[resource.network]`: the `network:`
    /// mapping, written out as YAML.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    network: Option<Value>,
    /// The netplan binary (default `netplan` from `PATH`).
    #[serde(default = "default_netplan")]
    netplan: String,
    /// Merge into the file as it is instead of replacing it: the keys the
    /// template (or table) sets replace the file's (a list whole), every
    /// other key stays, such as an interface's `match` and `set-name` or
    /// other interfaces. The file is then written from the merged data
    /// (its comments are not kept).
    #[serde(default)]
    merge: bool,
}

fn default_netplan() -> String {
    "netplan".into()
}

#[derive(Debug)]
struct Netplan {
    path: TargetPath,
    /// The file as it will be written.
    text: String,
    /// The same, as data.
    data: Value,
    netplan: String,
    merge: bool,
}

/// `over` merged into `base`: mappings key by key, anything else replaced.
fn merged(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let next = match b.get(k) {
                    Some(old) => merged(old, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), next);
            }
            Value::Mapping(out)
        }
        _ => over.clone(),
    }
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let spec: Spec = b.deserialize(value)?;
    let path = spec.path.get_ref();
    let in_netplan_dir = DIRS.iter().any(|d| {
        path.as_str()
            .strip_prefix(d)
            .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'))
    });
    if !in_netplan_dir || !path.as_str().ends_with(".yaml") {
        return Err(b.error(
            &spec.path.span(),
            format!("`{}`: netplan reads only *.yaml files directly in /etc/netplan, /run/netplan or /lib/netplan", path.as_str()),
        ));
    }
    let (text, origin) = match (spec.template, spec.network) {
        (Some(t), None) => (b.template(&t, spec.vars.as_ref())?, Some(t)),
        (None, Some(network)) => {
            if spec.vars.is_some() {
                return Err(b.error(&span, "`vars` go with `template`; an inline network table uses the playbook's variables directly"));
            }
            let mut top = Mapping::new();
            top.insert(Value::from("network"), network);
            let text = serde_yaml_ng::to_string(&Value::Mapping(top))
                .map_err(|e| b.error(&span, e.to_string()))?;
            (text, None)
        }
        (Some(t), Some(_)) => {
            return Err(b.error(
                &t.span(),
                "set either `template` or a `network` table, not both",
            ))
        }
        (None, None) => return Err(b.error(&span, "set `template` or a [resource.network] table")),
    };
    let data: Value = serde_yaml_ng::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        let what = match &origin {
            Some(t) => format!("template {}", t.get_ref()),
            None => "the network table".to_string(),
        };
        b.error(
            &origin.as_ref().map_or(span.clone(), Spanned::span),
            format!("{what} renders to invalid YAML{at}: {e}"),
        )
    })?;
    if data.get("network").is_none_or(|n| !n.is_mapping()) {
        return Err(b.error(&span, "a netplan file needs a top-level `network:` mapping"));
    }
    Ok(Box::new(Netplan {
        path: spec.path.into_inner(),
        text,
        data,
        netplan: spec.netplan,
        merge: spec.merge,
    }))
}

/// Keys sorted at every level, so that two equal documents print alike.
fn normalised(v: &Value) -> Value {
    match v {
        Value::Mapping(m) => {
            let mut entries: Vec<(String, Value, Value)> = m
                .iter()
                .map(|(k, v)| {
                    (
                        serde_yaml_ng::to_string(k).unwrap_or_default(),
                        k.clone(),
                        normalised(v),
                    )
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Mapping(entries.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Sequence(s) => Value::Sequence(s.iter().map(normalised).collect()),
        Value::Tagged(t) => Value::Tagged(Box::new(serde_yaml_ng::value::TaggedValue {
            tag: t.tag.clone(),
            value: normalised(&t.value),
        })),
        other => other.clone(),
    }
}

fn render(v: &Value) -> Vec<u8> {
    serde_yaml_ng::to_string(&normalised(v))
        .unwrap_or_default()
        .into_bytes()
}

impl Netplan {
    /// Run `netplan generate` on a scratch root holding the target's netplan
    /// files with ours in place; netplan's warnings come back as notes.
    fn validate(
        &self,
        host: &dyn Host,
        target: &std::path::Path,
        text: &str,
    ) -> Result<Vec<String>, Error> {
        let scratch = host.scratch().on(host)?;
        for p in yaml_files(host)? {
            if p == target {
                continue;
            }
            if let Some((bytes, _)) = read_regular_file(host, &p)? {
                scratch
                    .write(&p.display().to_string()[1..], &bytes)
                    .on(host)?;
            }
        }
        scratch
            .write(&target.display().to_string()[1..], text.as_bytes())
            .on(host)?;
        let cmd = Cmd {
            argv: vec![
                self.netplan.clone(),
                "generate".into(),
                "--root-dir".into(),
                scratch.path().display().to_string(),
            ],
            timeout_secs: Some(60),
            ..Cmd::default()
        };
        let out = match host.run(&cmd) {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Conflict(format!(
                    "`{}` not found on {}: install netplan.io to validate netplan files",
                    self.netplan,
                    host.name()
                )))
            }
            Err(e) => return Err(Error::host(host, e)),
        };
        let scratch_path = scratch.path().display().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&scratch_path, "");
        if !out.success() {
            return Err(Error::CommandFailed {
                command: "netplan generate (validating the new file)".into(),
                status: format!("rejected it ({})", super::outcome_text(&out, &cmd)),
                stderr,
            });
        }
        // "** (generate:123): WARNING **: 07:58:01.963: `gateway4` has been deprecated..."
        Ok(stderr
            .lines()
            .filter_map(|l| l.split_once("WARNING **: ").map(|(_, w)| w))
            .map(|w| w.split_once(": ").map_or(w, |(_, msg)| msg))
            .map(|w| format!("netplan warns: {w}"))
            .collect())
    }
}

impl Resource for Netplan {
    fn kind(&self) -> &'static str {
        "netplan"
    }

    fn subject(&self) -> String {
        self.path.as_str().to_string()
    }

    fn claims(&self) -> Vec<Claim> {
        // The whole file, and its mode (netplan wants 0600).
        vec![
            Claim::new(&self.path, Part::Content, "path"),
            Claim::new(&self.path, Part::Attrs, "path"),
        ]
    }

    fn may_cut_connection(&self) -> bool {
        true
    }

    fn observes(&self, cx: &Context) -> Vec<std::path::PathBuf> {
        vec![self.path.resolve(cx)]
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let path = self.path.resolve(cx);
        let before = read_regular_file(host, &path)?;
        let current: Option<Value> = before.as_ref().and_then(|(bytes, _)| {
            std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| serde_yaml_ng::from_str(t).ok())
        });
        // What the file will hold: ours, or ours merged into what it has.
        let (text, data) = match (&current, self.merge) {
            (Some(cur), true) => {
                let data = merged(cur, &self.data);
                let text = serde_yaml_ng::to_string(&data).map_err(|e| {
                    Error::Conflict(format!("{}: cannot merge: {e}", path.display()))
                })?;
                (text, data)
            }
            _ => (self.text.clone(), self.data.clone()),
        };
        let warnings = self.validate(host, &path, &text)?;
        let attrs = Attrs {
            mode: Some(0o600),
            uid: Some(0),
            gid: Some(0),
        };
        let mut ops = Vec::new();
        match before {
            None => ops.push(Op::Write {
                shown: None,
                path,
                before: None,
                content: text.into_bytes(),
                attrs,
            }),
            Some((bytes, meta)) => {
                let wanted_attrs = Attrs {
                    mode: attrs.mode.filter(|m| *m != meta.mode),
                    uid: attrs.uid.filter(|u| *u != meta.uid),
                    gid: attrs.gid.filter(|g| *g != meta.gid),
                };
                if current.as_ref() == Some(&data) {
                    if !wanted_attrs.is_empty() {
                        ops.push(Op::SetMeta {
                            path,
                            before: meta,
                            attrs: wanted_attrs,
                        });
                    }
                } else {
                    // Write what the user authored; show the change between
                    // normalised forms (an unparsable current file as it is).
                    let shown_before = match &current {
                        Some(v) => render(v),
                        None => bytes.clone(),
                    };
                    ops.push(Op::Write {
                        shown: Some((shown_before, render(&data))),
                        path,
                        before: Some((bytes, meta)),
                        content: text.into_bytes(),
                        attrs: wanted_attrs,
                    });
                }
            }
        }
        Ok(Delta {
            ops,
            notes: Vec::new(),
            warnings,
        })
    }
}

//! `netplan`: one netplan YAML file, from a template or an inline
//! `[resource.network]` table.
//!
//! Compared as YAML data, so a file differing only in formatting, key order
//! or comments is unchanged. When the data differs, the file is *edited*
//! (`yaml_edit`): the values that change are rewritten in place, keys added
//! or removed with their lines, and everything else (comments, flow lists,
//! quoting, order) stays as the user wrote it; the diff shown is between
//! the file's real bytes and the bytes that will be written.
//! Validated before anything is written: YAML syntax at load, then the real
//! `netplan generate` against a scratch root holding the new file together
//! with the other netplan files of the target (netplan merges them). Its
//! warnings (deprecated keys such as gateway4) are reported in the plan.
//! Written with mode 0600, owned by root, as netplan expects.

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};
use toml::de::DeValue;
use toml::Spanned;

use super::{
    read_regular_file, yaml_edit, Build, Claim, Context, Kind, Part, Resource, TargetPath,
};
use crate::change::{Delta, Op, Prior};
use crate::error::{Error, Location};
use crate::host::{Attrs, Cmd, FileKind, Host, Meta, OnHost};

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
///   data differs, the existing file is edited, not regenerated: changed
///   values are rewritten where they are (a flow list such as
///   `[8.8.8.8, 1.1.1.1]` stays a flow list), keys the file should not have
///   go with their lines, new keys are added under their mapping; its
///   comments and untouched lines stay. The diff shows the file's real bytes
///   against what will be written. A new file, or one that is not a single
///   YAML document, is written from the template (or table) whole.
/// - **Validated before anything is written**: the rendered text must be
///   YAML (an error names the template, line and column, at `validate`
///   time); then the real `netplan generate --root-dir <scratch>` runs on a
///   scratch root holding the new file and the target's other netplan files
///   (netplan merges them). A rejection fails with netplan's own message
///   (`unknown key 'adresses'`, `invalid boolean value 'maybe'`, with file,
///   line and column), named by the playbook line that set the value: the
///   key of the `[resource.network]` table, the `vars` entry whose value the
///   template put there, or else the `template` field. (A value a merge kept
///   from the file is no line's: netplan's message alone.) netplan's
///   warnings (deprecated `gateway4`, ...) are shown in the plan.
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
    /// other interfaces. Edited in place like any change, so its comments
    /// stay.
    #[serde(default)]
    merge: bool,
}

fn default_netplan() -> String {
    "netplan".into()
}

#[derive(Debug)]
struct Netplan {
    path: TargetPath,
    /// Where the playbook sets what the file holds, to name the line when
    /// netplan rejects a value.
    origins: Origins,
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

/// Where the playbook sets the parts of the file.
#[derive(Debug, Default)]
struct Origins {
    /// Every key of an inline `[resource.network]` table, by its path in
    /// the YAML (`network`, `ethernets`, `eth0`, `dhcp4`; list items by index).
    /// Whether the key's value is set whole (not a table), so what lies
    /// below it comes from there too.
    keys: Vec<(Vec<String>, Location, bool)>,
    /// The resource's `vars` for a template: name, value as text, where.
    vars: Vec<(String, String, Location)>,
    /// The `template` field.
    template: Option<Location>,
}

impl Origins {
    fn read(value: &Spanned<DeValue<'_>>, b: &Build<'_>) -> Origins {
        let mut origins = Origins::default();
        let DeValue::Table(table) = value.get_ref() else {
            return origins;
        };
        for (k, v) in table.iter() {
            match k.get_ref().as_ref() {
                "network" => origins.keys_of(v, vec!["network".into()], b),
                "vars" => {
                    if let DeValue::Table(vars) = v.get_ref() {
                        for (name, value) in vars.iter() {
                            if let Some(text) = scalar_text(value.get_ref()) {
                                let at = b.location(&name.span());
                                origins.vars.push((name.get_ref().to_string(), text, at));
                            }
                        }
                    }
                }
                "template" => origins.template = Some(b.location(&v.span())),
                _ => {}
            }
        }
        origins
    }

    fn keys_of(&mut self, v: &Spanned<DeValue<'_>>, path: Vec<String>, b: &Build<'_>) {
        match v.get_ref() {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    let mut path = path.clone();
                    path.push(k.get_ref().to_string());
                    // The key's line: a table's own span is only its header.
                    let whole = !matches!(v.get_ref(), DeValue::Table(_));
                    self.keys.push((path.clone(), b.location(&k.span()), whole));
                    self.keys_of(v, path, b);
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let mut path = path.clone();
                    path.push(i.to_string());
                    let whole = !matches!(item.get_ref(), DeValue::Table(_));
                    self.keys
                        .push((path.clone(), b.location(&item.span()), whole));
                    self.keys_of(item, path, b);
                }
            }
            _ => {}
        }
    }

    /// Where the playbook sets the value at `path` (holding `scalar`) of the
    /// file, and how: the deepest table key on the way, else a template
    /// variable holding that value, else the template. A merged file's
    /// own keys are set by no line of the playbook.
    fn of(&self, path: &[String], scalar: Option<&str>) -> Option<(Location, String)> {
        let key = self
            .keys
            .iter()
            .filter(|(p, _, whole)| p == path || (*whole && path.starts_with(p)))
            .max_by_key(|(p, _, _)| p.len());
        if let Some((_, at, _)) = key {
            return Some((at.clone(), "the setting here".into()));
        }
        if let Some((name, _, at)) = scalar.and_then(|s| self.vars.iter().find(|(_, v, _)| v == s))
        {
            return Some((
                at.clone(),
                format!("`{name}`, which the template puts at `{}`", path.join(".")),
            ));
        }
        let at = self.template.clone()?;
        Some((
            at,
            format!("what this template renders at `{}`", path.join(".")),
        ))
    }
}

fn scalar_text(v: &DeValue<'_>) -> Option<String> {
    match v {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => Some(i.to_string()),
        DeValue::Float(f) => Some(f.to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let origins = Origins::read(&value, b);
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
        origins,
        text,
        data,
        netplan: spec.netplan,
        merge: spec.merge,
    }))
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
            let command = format!(
                "`netplan generate` (validating the new file) rejected it ({})",
                super::outcome_text(&out, &cmd)
            );
            return Err(match self.set_by(target, text, &stderr) {
                Some((at, what)) => Error::Rejected {
                    at,
                    message: format!("netplan rejects {what}: {command}"),
                    stderr,
                },
                None => Error::CommandFailed {
                    command: "netplan generate (validating the new file)".into(),
                    status: format!("rejected it ({})", super::outcome_text(&out, &cmd)),
                    stderr,
                },
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
        let current: Option<(&str, Value)> = before.as_ref().and_then(|(bytes, _)| {
            let text = std::str::from_utf8(bytes).ok()?;
            Some((text, serde_yaml_ng::from_str(text).ok()?))
        });
        // What the file will hold as data: ours, or ours merged into it.
        let data = match (&current, self.merge) {
            (Some((_, cur)), true) => merged(cur, &self.data),
            _ => self.data.clone(),
        };
        if let (Some((text, cur)), Some((_, meta))) = (&current, &before) {
            if cur == &data {
                // Still validated: netplan's warnings concern the file as it is.
                let warnings = self.validate(host, &path, text)?;
                return Ok(Delta {
                    ops: fix_attrs(path, *meta),
                    notes: Vec::new(),
                    warnings,
                });
            }
        }
        // And as text: the file as it is, edited where the data differs (its
        // comments and untouched lines kept); when it cannot be edited (not
        // YAML, or not one document), ours whole.
        let text = match &current {
            Some((text, _)) => yaml_edit::edit(text, &data),
            None => None,
        };
        let text = match text {
            Some(t) => t,
            None if self.merge && current.is_some() => serde_yaml_ng::to_string(&data)
                .map_err(|e| Error::Conflict(format!("{}: cannot merge: {e}", path.display())))?,
            None => self.text.clone(),
        };
        let warnings = self.validate(host, &path, &text)?;
        let (before, attrs) = match before {
            None => (None, WANTED),
            Some((bytes, meta)) => (Some((Prior::Bytes(bytes), meta)), missing_attrs(&meta)),
        };
        Ok(Delta {
            ops: vec![Op::Write {
                path,
                before,
                content: text.into_bytes(),
                attrs,
            }],
            notes: Vec::new(),
            warnings,
        })
    }
}

/// Mode and owner netplan expects of its files.
const WANTED: Attrs = Attrs {
    mode: Some(0o600),
    uid: Some(0),
    gid: Some(0),
};

/// What of [`WANTED`] a file with `meta` lacks.
fn missing_attrs(meta: &Meta) -> Attrs {
    Attrs {
        mode: WANTED.mode.filter(|m| *m != meta.mode),
        uid: WANTED.uid.filter(|u| *u != meta.uid),
        gid: WANTED.gid.filter(|g| *g != meta.gid),
    }
}

impl Netplan {
    /// Where the playbook sets what netplan's error points at: it names
    /// `FILE:LINE:COLUMN:` of the file we wrote (others' files are not ours).
    fn set_by(
        &self,
        target: &std::path::Path,
        text: &str,
        stderr: &str,
    ) -> Option<(Location, String)> {
        let prefix = format!("{}:", target.display());
        let (line, column) = stderr.lines().find_map(|l| {
            let mut parts = l.strip_prefix(&prefix)?.splitn(3, ':');
            let line = parts.next()?.parse().ok()?;
            let column = parts.next()?.parse().ok()?;
            Some((line, column))
        })?;
        let (path, scalar) = yaml_edit::path_at(text, line, column)?;
        // A merged file's own keys come from no line of the playbook.
        let mut ours = Some(&self.data);
        for key in &path {
            ours = ours.and_then(|v| match v {
                Value::Sequence(items) => key.parse().ok().and_then(|i: usize| items.get(i)),
                other => other.get(key.as_str()),
            });
        }
        ours?;
        self.origins.of(&path, scalar.as_deref())
    }
}

/// The data is as wanted: at most the mode and owner to fix.
fn fix_attrs(path: std::path::PathBuf, meta: Meta) -> Vec<Op> {
    let attrs = missing_attrs(&meta);
    if attrs.is_empty() {
        return Vec::new();
    }
    vec![Op::SetMeta {
        path,
        before: meta,
        attrs,
    }]
}

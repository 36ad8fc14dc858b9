//! `probe`: a read-only check that the fix worked — a TCP connection, a DNS
//! lookup or an HTTP(S) status, made from the target. Never a change. In a
//! plan it reports what it sees now; in an apply it runs after the handlers,
//! and a failure fails the run (which is rolled back) unless
//! `on_fail = "warn"`.

use std::time::Duration;

use serde::Deserialize;
use toml::de::DeValue;
use toml::Spanned;

use super::{outcome_text, Build, Context, Kind, Resource};
use crate::change::Delta;
use crate::error::Error;
use crate::host::{Cmd, Host};

pub const KIND: Kind = Kind {
    name: "probe",
    build,
    shell_fields: &[],
    schema: <Spec as schemars::JsonSchema>::json_schema,
};

#[derive(
    Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
enum OnFail {
    #[default]
    Fail,
    Warn,
}

/// A read-only check that the fix worked, made from the target. Never a
/// change. Exactly one of `tcp`, `dns`, `http`.
///
/// In `plan`, a probe reports `pass` or `fail (now, before the changes)` and
/// never fails the plan. In `apply`, probes run after all other resources
/// *and after the handlers*, so they see the host as the run leaves it; a
/// failing probe fails the run, which is rolled back, unless
/// `on_fail = "warn"`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["tcp"]}, {"required": ["dns"]}, {"required": ["http"]}]))]
struct Spec {
    /// `HOST:PORT`: a TCP connection can be opened.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    tcp: Option<Spanned<String>>,
    /// The name resolves (the target's resolver; with `--root`, this machine's).
    #[serde(default)]
    dns: Option<String>,
    /// An http:// or https:// URL: `GET` answers with `expect_status`. Runs
    /// `curl` on the target.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    http: Option<Spanned<String>>,
    /// Statuses that pass, for `http` (default: any 2xx or 3xx).
    #[serde(default)]
    expect_status: Vec<u16>,
    /// Seconds before the check gives up.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1))]
    timeout: u64,
    /// `warn`: a failing probe is reported but does not fail the run.
    #[serde(default)]
    on_fail: OnFail,
}

fn default_timeout() -> u64 {
    5
}

#[derive(Debug)]
enum Check {
    Tcp { host: String, port: u16 },
    Dns(String),
    Http { url: String, expect: Vec<u16> },
}

#[derive(Debug)]
struct Probe {
    check: Check,
    timeout: Duration,
    on_fail: OnFail,
}

fn build(value: Spanned<DeValue<'_>>, b: &Build<'_>) -> Result<Box<dyn Resource>, Error> {
    let span = value.span();
    let spec: Spec = b.deserialize(value)?;
    let check = match (spec.tcp, spec.dns, spec.http) {
        (Some(t), None, None) => {
            let parsed = t
                .get_ref()
                .rsplit_once(':')
                .and_then(|(h, p)| {
                    Some((
                        h.trim_matches(['[', ']']).to_string(),
                        p.parse::<u16>().ok()?,
                    ))
                })
                .filter(|(h, _)| !h.is_empty());
            let (host, port) = parsed.ok_or_else(|| {
                b.error(
                    &t.span(),
                    format!("`{}`: write tcp as HOST:PORT", t.get_ref()),
                )
            })?;
            Check::Tcp { host, port }
        }
        (None, Some(d), None) if !d.is_empty() => Check::Dns(d),
        (None, None, Some(h)) => {
            if !(h.get_ref().starts_with("http://") || h.get_ref().starts_with("https://")) {
                return Err(b.error(&h.span(), "`http` is an http:// or https:// URL"));
            }
            Check::Http {
                url: h.into_inner(),
                expect: spec.expect_status,
            }
        }
        _ => return Err(b.error(&span, "set exactly one of `tcp`, `dns`, `http`")),
    };
    if spec.timeout == 0 {
        return Err(b.error(&span, "`timeout` must be at least 1 second"));
    }
    Ok(Box::new(Probe {
        check,
        timeout: Duration::from_secs(spec.timeout),
        on_fail: spec.on_fail,
    }))
}

impl Probe {
    /// Ok(what passed) or Err(why it failed).
    fn run(&self, host: &dyn Host) -> Result<String, String> {
        match &self.check {
            Check::Tcp { host: h, port } => host
                .connect(h, *port, self.timeout)
                .map(|t| format!("connected to {h}:{port} in {} ms", t.as_millis()))
                .map_err(|e| e.source.to_string())
                .map_err(|e| format!("cannot connect to {h}:{port}: {e}")),
            Check::Dns(name) => match host.resolve(name, self.timeout) {
                Ok(ips) if !ips.is_empty() => Ok(format!(
                    "{name} resolves to {}",
                    ips.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Ok(_) => Err(format!("{name} resolves to no address")),
                Err(e) => Err(format!("cannot resolve {name}: {}", e.source)),
            },
            Check::Http { url, expect } => {
                let cmd = Cmd {
                    argv: vec![
                        "curl".into(),
                        "-sS".into(),
                        "-o".into(),
                        "/dev/null".into(),
                        "-w".into(),
                        "%{http_code}".into(),
                        "--max-time".into(),
                        self.timeout.as_secs().to_string(),
                        "--".into(),
                        url.clone(),
                    ],
                    timeout_secs: Some(self.timeout.as_secs() + 5),
                    ..Cmd::default()
                };
                let out = host.run(&cmd).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        format!("http probes need curl on {}", host.name())
                    } else {
                        e.to_string()
                    }
                })?;
                let status: u16 = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .unwrap_or(0);
                if !out.success() || status == 0 {
                    return Err(format!(
                        "GET {url}: {} ({})",
                        String::from_utf8_lossy(&out.stderr).trim(),
                        outcome_text(&out, &cmd)
                    ));
                }
                let ok = if expect.is_empty() {
                    (200..400).contains(&status)
                } else {
                    expect.contains(&status)
                };
                if ok {
                    Ok(format!("GET {url}: {status}"))
                } else {
                    Err(format!(
                        "GET {url}: {status}, expected {}",
                        if expect.is_empty() {
                            "2xx or 3xx".to_string()
                        } else {
                            format!("{expect:?}")
                        }
                    ))
                }
            }
        }
    }
}

impl Resource for Probe {
    fn kind(&self) -> &'static str {
        "probe"
    }

    fn subject(&self) -> String {
        match &self.check {
            Check::Tcp { host, port } => format!("tcp:{host}:{port}"),
            Check::Dns(n) => format!("dns:{n}"),
            Check::Http { url, .. } => url.clone(),
        }
    }

    fn is_check(&self) -> bool {
        true
    }

    fn plan(&self, host: &dyn Host, cx: &Context) -> Result<Delta, Error> {
        let mut delta = Delta::ops(Vec::new());
        match self.run(host) {
            Ok(pass) => delta.notes.push(format!("pass: {pass}")),
            Err(why) if cx.applying && self.on_fail == OnFail::Fail => {
                return Err(Error::Conflict(format!("probe failed: {why}")))
            }
            Err(why) if cx.applying => delta.warnings.push(format!("warn: {why}")),
            // Planning: this is the host before the changes, so a failure
            // now is what the playbook is meant to fix.
            Err(why) => delta
                .notes
                .push(format!("fail (now, before the changes): {why}")),
        }
        Ok(delta)
    }
}

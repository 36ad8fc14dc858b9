//! `fixer report STORE`: the fleet table from a results store, as text,
//! JSON, or a self-contained HTML page with a timeline of runs per host.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use fixer::error::Error;
use fixer::results::{self, Contents, Fleet, Record, State, Status};

use super::render::Printer;
use super::Format;

fn short(commit: Option<&str>) -> String {
    commit.map_or("-".into(), |c| c.chars().take(12).collect())
}

pub fn report(store: &Path, html: Option<&Path>, p: &Printer) -> Result<u8, Error> {
    let contents = results::Store::new(store)
        .read()
        .map_err(|e| Error::Usage(e.to_string()))?;
    for (file, why) in &contents.unreadable {
        p.warn(&format!(
            "skipped {}: not a fixer result ({why})",
            file.display()
        ));
    }
    let fleet = results::fleet(&contents.records);
    if let Some(path) = html {
        let page = page(store, &contents, &fleet);
        std::fs::write(path, page).map_err(|source| Error::WriteLocal {
            path: path.to_path_buf(),
            source,
        })?;
    }
    match p.format() {
        Format::Json => {
            let hosts: Vec<_> = fleet
                .hosts
                .iter()
                .map(|h| json!({"host": h.host, "state": h.state.label(), "runs": h.runs, "last": h.last}))
                .collect();
            let unreadable: Vec<_> = contents
                .unreadable
                .iter()
                .map(|(f, why)| json!({"file": f, "error": why}))
                .collect();
            p.document(&json!({
                "store": store,
                "records": contents.records.len(),
                "newest_commit": fleet.newest_commit,
                "hosts": hosts,
                "unreadable": unreadable,
            }));
        }
        Format::Text => p.result(text(store, &contents, &fleet).trim_end()),
    }
    if let Some(path) = html {
        p.result(&format!("Wrote {}.", path.display()));
    }
    Ok(0)
}

fn text(store: &Path, contents: &Contents, fleet: &Fleet<'_>) -> String {
    if fleet.hosts.is_empty() {
        return format!("No results in {} yet.", store.display());
    }
    let mut t = format!(
        "{}: {} {} of {} {}",
        store.display(),
        contents.records.len(),
        if contents.records.len() == 1 {
            "run"
        } else {
            "runs"
        },
        fleet.hosts.len(),
        if fleet.hosts.len() == 1 {
            "host"
        } else {
            "hosts"
        },
    );
    match fleet.newest_commit {
        Some(c) => t.push_str(&format!("; newest commit {}.\n\n", short(Some(c)))),
        None => t.push_str(".\n\n"),
    }
    let width = fleet
        .hosts
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        t,
        "{:<width$}  {:<11}  {:<24}  {:<11}  {:>7}  {:<12}  {:>4}",
        "HOST", "STATE", "LAST RUN", "STATUS", "CHANGES", "COMMIT", "RUNS"
    );
    for h in &fleet.hosts {
        let _ = writeln!(
            t,
            "{:<width$}  {:<11}  {:<24}  {:<11}  {:>7}  {:<12}  {:>4}",
            h.host,
            h.state.label(),
            h.last.started,
            h.last.status.label(),
            h.last.changes.map_or("-".into(), |c| c.to_string()),
            short(h.last.commit.as_deref()),
            h.runs
        );
    }
    let mut counts = Vec::new();
    for s in [
        State::Converged,
        State::Changed,
        State::Drifted,
        State::Behind,
        State::Failing,
        State::NotReached,
    ] {
        let n = fleet.hosts.iter().filter(|h| h.state == s).count();
        if n > 0 {
            counts.push(format!("{n} {}", s.label()));
        }
    }
    let n = fleet.hosts.len();
    let _ = writeln!(
        t,
        "\n{n} {}: {}.",
        if n == 1 { "host" } else { "hosts" },
        counts.join(", ")
    );
    t
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The colour of a run's dot, and of a host's state: what a reader looks
/// for first is red.
fn colour(s: Status) -> &'static str {
    match s {
        Status::Ok => "#2e7d32",
        Status::Changed => "#1565c0",
        Status::Unconfirmed => "#ef6c00",
        Status::Failed | Status::Unreachable => "#c62828",
        Status::NotReached => "#9e9e9e",
    }
}

fn seconds(r: &Record) -> Option<f64> {
    humantime::parse_rfc3339_weak(&r.started)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// One page, nothing fetched: the table, then an SVG timeline with a row
/// per host and a dot per run (its status in its colour and its tooltip).
fn page(store: &Path, contents: &Contents, fleet: &Fleet<'_>) -> String {
    let mut rows = String::new();
    for h in &fleet.hosts {
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td class=\"state {}\">{}</td><td>{}</td><td style=\"color:{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(h.host),
            h.state.label(),
            h.state.label(),
            escape(&h.last.started),
            colour(h.last.status),
            h.last.status.label(),
            h.last.changes.map_or("-".into(), |c| c.to_string()),
            escape(&short(h.last.commit.as_deref())),
            h.runs
        );
    }
    let times: Vec<f64> = contents.records.iter().filter_map(seconds).collect();
    let (t0, t1) = times
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &t| (a.min(t), b.max(t)));
    let span = if t1 > t0 { t1 - t0 } else { 1.0 };
    let (left, width, row) = (220.0, 640.0, 28.0);
    let height = row * fleet.hosts.len() as f64 + 40.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"runs per host over time\">\n",
        left + width + 20.0
    );
    for (i, h) in fleet.hosts.iter().enumerate() {
        let y = row * i as f64 + row;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text><line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>",
            left - 8.0,
            y + 4.0,
            escape(h.host),
            left + width
        );
        for r in contents.records.iter().filter(|r| r.host == h.host) {
            let Some(t) = seconds(r) else { continue };
            let x = left + (t - t0) / span * width;
            let _ = writeln!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y}\" r=\"7\" fill=\"{}\" class=\"run {}\"><title>{} {}: {}{}</title></circle>",
                colour(r.status),
                r.status.label().replace(' ', "-"),
                escape(&r.host),
                escape(&r.started),
                r.status.label(),
                r.commit
                    .as_deref()
                    .map(|c| format!(" at {}", escape(&short(Some(c)))))
                    .unwrap_or_default()
            );
        }
    }
    if !times.is_empty() {
        let foot = height - 8.0;
        let at = |t: f64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0)),
            )
            .to_string()
        };
        let _ = writeln!(
            svg,
            "<text x=\"{left}\" y=\"{foot}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{foot}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            at(t0),
            left + width,
            at(t1)
        );
    }
    svg.push_str("</svg>\n");
    let summary = escape(text(store, contents, fleet).lines().last().unwrap_or(""));
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fixer report: {store}</title>\n\
<style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}}\
.state.failing{{color:#c62828;font-weight:bold}}.state.drifted,.state.behind{{color:#ef6c00;font-weight:bold}}.state.converged{{color:#2e7d32}}</style></head>\n\
<body><h1>fixer report</h1><p>{store}: {records} runs. {summary}</p>\n\
<table><thead><tr><th>Host</th><th>State</th><th>Last run</th><th>Status</th><th>Changes</th><th>Commit</th><th>Runs</th></tr></thead><tbody>\n{rows}</tbody></table>\n\
<h2>Runs per host</h2>\n{svg}</body></html>\n",
        store = escape(&store.display().to_string()),
        records = contents.records.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixer::results::Source;

    /// Every column starts where its heading does, whatever the state:
    /// `not reached` once ran into the next column.
    #[test]
    fn the_fleet_table_keeps_its_columns_for_every_state() {
        let at = std::time::SystemTime::UNIX_EPOCH;
        let mut records = Vec::new();
        for (host, status) in [
            ("web1", Status::Changed),
            ("web2", Status::NotReached),
            ("web3", Status::Unconfirmed),
            ("web4", Status::Unreachable),
        ] {
            let mut r = Record::of(host, vec!["pb".into()], Source::Push, at);
            r.status = status;
            records.push(r);
        }
        let contents = Contents {
            records,
            unreadable: Vec::new(),
        };
        let table = text(
            Path::new("store"),
            &contents,
            &results::fleet(&contents.records),
        );
        let lines: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with("web") || l.starts_with("HOST"))
            .collect();
        assert_eq!(lines.len(), 5, "{table}");
        let starts = |l: &str, heading_col: usize| -> usize {
            // The start of the field that covers column `heading_col`.
            let b = l.as_bytes();
            let mut i = heading_col.min(b.len());
            while i > 0 && b[i - 1] != b' ' {
                i -= 1;
            }
            i
        };
        let header = lines[0];
        for heading in ["STATE", "LAST RUN", "STATUS"] {
            let col = header.find(heading).unwrap_or(0);
            for l in &lines[1..] {
                assert_eq!(starts(l, col), col, "{heading} in {l:?}:\n{table}");
            }
        }
    }
}

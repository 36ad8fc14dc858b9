//! Output of `fixer diagnose`.

use serde_json::json;

use fixer::diagnose::{Catalog, Diagnosis, Log};
use fixer::host::shell::quote;

use super::{Printer, BOLD, CYAN, GREEN, YELLOW};
use crate::cli::Format;

/// Long log lines are cut to this many characters in text output.
const EVIDENCE_WIDTH: usize = 200;
/// Lines shown as "what was read" when nothing matches.
const READ_LINES: usize = 8;

impl Printer {
    pub fn diagnosis(&self, name: &str, log: &Log, d: &Diagnosis, catalog: &Catalog) {
        for (file, e) in &catalog.skipped {
            eprintln!("warning: skipped playbook {}: {e}", file.display());
        }
        let read = log.error_lines(READ_LINES);
        if self.format == Format::Json {
            let remedies: Vec<_> = d
                .remedies
                .iter()
                .map(|r| {
                    json!({
                        "playbook": r.playbook,
                        "path": r.path,
                        "description": r.description,
                        "category": r.category,
                        "confidence": shown(r.confidence),
                        "vars": object(&r.vars),
                        "defaults": object(&r.defaults),
                        "command": r.command(),
                        "evidence": r.evidence.iter().map(|e| json!({
                            "line": e.line, "text": e.text, "symptom": e.symptom,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            self.emit_json(&json!({
                "log": name,
                "lines": d.lines,
                "playbooks": catalog.playbooks.len(),
                "remedies": remedies,
                "error_lines": read.iter().map(|(n, t)| json!({"line": n, "text": t})).collect::<Vec<_>>(),
                "skipped": catalog.skipped.iter().map(|(f, e)| json!({
                    "path": f, "error": e.to_string(),
                })).collect::<Vec<_>>(),
            }));
            return;
        }
        // Quiet: the command to run next, for `$(... | fixer diagnose -q -)`.
        if self.quiet() {
            if let Some(best) = d.remedies.first() {
                self.out(&best.command());
            }
            return;
        }
        let dirs: Vec<String> = catalog
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        if d.remedies.is_empty() {
            self.out(&format!(
                "No known remedy: no symptom of the {} playbooks in {} matches {name} ({} lines).",
                catalog.playbooks.len(),
                if dirs.is_empty() {
                    "(no directory)".to_string()
                } else {
                    dirs.join(", ")
                },
                d.lines
            ));
            if read.is_empty() {
                self.out("No line of it looks like an error.");
            } else {
                self.out("What was read (lines that look like errors):");
                for (n, text) in &read {
                    self.out(&format!("  line {n}: {}", cut(text)));
                }
            }
            return;
        }
        self.out(&format!(
            "{name}: {} lines read, {} of {} playbooks match.",
            d.lines,
            d.remedies.len(),
            catalog.playbooks.len()
        ));
        for (i, r) in d.remedies.iter().enumerate() {
            self.out("");
            if i == 1 {
                self.out("Also possible:");
            }
            let category = r
                .category
                .as_deref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default();
            self.out(&format!(
                "{}. {} (confidence {:.0}%{category})",
                i + 1,
                self.paint(BOLD, &r.playbook),
                shown(r.confidence) * 100.0
            ));
            if let Some(desc) = &r.description {
                self.out(&format!("   {desc}"));
            }
            for e in &r.evidence {
                self.out(&format!(
                    "   {} {}",
                    self.paint(YELLOW, &format!("line {}:", e.line)),
                    around(&e.text, &e.matched)
                ));
                self.out(&format!("     {}", e.symptom));
            }
            self.out(&format!("   run: {}", self.paint(GREEN, &r.command())));
            if !r.defaults.is_empty() {
                let defaults: Vec<String> = r
                    .defaults
                    .iter()
                    .map(|(k, v)| format!("{k}={}", quote(v)))
                    .collect();
                self.out(&format!(
                    "   {} {}",
                    self.paint(CYAN, "check the defaults:"),
                    defaults.join(", ")
                ));
            }
        }
    }
}

/// Two decimals, at most 0.99: evidence never makes a remedy certain.
fn shown(confidence: f64) -> f64 {
    ((confidence * 100.0).round() / 100.0).min(0.99)
}

fn object(pairs: &[(String, String)]) -> serde_json::Value {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Up to [`EVIDENCE_WIDTH`] characters of `text`, keeping what matched in
/// view (Go puts the cause at the end of long lines).
fn around(text: &str, matched: &std::ops::Range<usize>) -> String {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    if chars.len() <= EVIDENCE_WIDTH {
        return text.trim().to_string();
    }
    let end_char = chars
        .iter()
        .position(|(i, _)| *i >= matched.end)
        .unwrap_or(chars.len());
    let start_char = end_char.saturating_sub(EVIDENCE_WIDTH);
    let from = chars.get(start_char).map_or(0, |(i, _)| *i);
    let to = chars.get(end_char).map_or(text.len(), |(i, _)| *i);
    let mut out = String::new();
    if start_char > 0 {
        out.push('…');
    }
    out.push_str(text.get(from..to).unwrap_or(text).trim());
    if to < text.len() {
        out.push('…');
    }
    out
}

fn cut(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(EVIDENCE_WIDTH) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

//! Output of `fixer diagnose`.

use serde_json::json;

use fixer::diagnose::{Catalog, Diagnosis, Remedy};
use fixer::host::shell::quote;

use super::{Printer, BOLD, CYAN, GREEN, YELLOW};
use crate::cli::Format;

/// Long log lines are cut to this many characters in text output.
const EVIDENCE_WIDTH: usize = 200;

impl Printer {
    pub fn diagnosis(&self, name: &str, d: &Diagnosis, catalog: &Catalog) {
        for (file, e) in &catalog.skipped {
            eprintln!("warning: skipped playbook {}: {e}", file.display());
        }
        let read = &d.error_lines;
        let chosen: Vec<&str> = d.chosen().iter().map(|r| r.playbook.as_str()).collect();
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
                        "answers": r.answers(),
                        "chosen": chosen.contains(&r.playbook.as_str()),
                        "also": r.also,
                        "vars": object(&r.vars()),
                        "values": r.values.iter().map(|v| json!({
                            "name": v.name, "value": v.value, "line": v.line,
                        })).collect::<Vec<_>>(),
                        "defaults": object(&r.defaults),
                        "discovered": r.discovered,
                        "command": r.command(),
                        "evidence": r.evidence.iter().map(|e| json!({
                            "line": e.line, "text": e.text, "symptom": e.symptoms.join("; "),
                            "symptoms": e.symptoms,
                        })).collect::<Vec<_>>(),
                        "against": r.against.iter().map(|a| json!({
                            "line": a.line, "text": a.text, "meaning": a.meaning, "factor": a.factor,
                        })).collect::<Vec<_>>(),
                        "conflicts": r.conflicts.iter().map(|c| json!({
                            "name": c.name,
                            "taken": {"value": c.taken.0, "line": c.taken.1},
                            "other": {"value": c.other.0, "line": c.other.1},
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
            if let Some(best) = d.answers().next() {
                self.out(&best.command());
            }
            return;
        }
        let dirs: Vec<String> = catalog
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        let answers: Vec<&Remedy> = d.answers().collect();
        let weak: Vec<&Remedy> = d.remedies.iter().filter(|r| !r.answers()).collect();
        if answers.is_empty() {
            self.out(&format!(
                "No known remedy: no symptom of the {} playbooks in {} is shown by {name} ({} lines).",
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
                for (n, text) in read {
                    self.out(&format!("  line {n}: {}", cut(text)));
                }
            }
            self.weak(&weak);
            return;
        }
        self.out(&format!(
            "{name}: {} lines read, {} of {} playbooks match.",
            d.lines,
            answers.len(),
            catalog.playbooks.len()
        ));
        for (i, r) in answers.iter().enumerate() {
            self.out("");
            if i == 1 && r.also && chosen.contains(&r.playbook.as_str()) {
                self.out("Also needed:");
            } else if i == 1 && chosen.contains(&r.playbook.as_str()) {
                self.out("Also needed (it explains other lines):");
            } else if i > 0
                && !chosen.contains(&r.playbook.as_str())
                && chosen.contains(&answers[i - 1].playbook.as_str())
            {
                self.out("Also possible (other explanations of the same lines):");
            }
            self.remedy(i + 1, r);
        }
        self.weak(&weak);
        self.out("");
        self.out(&format!(
            "Plan and apply what it needs as one run: {}",
            self.paint(
                GREEN,
                &if name == "standard input" {
                    "fixer fix - (with the log on stdin)".to_string()
                } else {
                    format!("fixer fix {}", quote(name))
                }
            )
        ));
    }

    /// `fixer fix`: which playbooks the log calls for, and why, before
    /// their plan. (JSON: the diagnosis document.)
    pub fn fix_header(&self, name: &str, d: &Diagnosis) {
        let chosen = d.chosen();
        if self.format == Format::Json {
            let names: Vec<&str> = chosen.iter().map(|r| r.playbook.as_str()).collect();
            self.emit_json(&json!({
                "log": name,
                "lines": d.lines,
                "chosen": names,
                "remedies": d.answers().map(|r| json!({
                    "playbook": r.playbook,
                    "confidence": shown(r.confidence),
                    "chosen": names.contains(&r.playbook.as_str()),
                    "also": r.also,
                    "values": r.values.iter().map(|v| json!({
                        "name": v.name, "value": v.value, "line": v.line,
                    })).collect::<Vec<_>>(),
                    "evidence": r.evidence.iter().map(|e| json!({
                        "line": e.line, "text": e.text, "symptoms": e.symptoms,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }));
            return;
        }
        if self.quiet() {
            return;
        }
        let what = match chosen.len() {
            1 => "1 playbook fixes it".to_string(),
            n => format!("{n} playbooks fix it, planned as one"),
        };
        self.out(&format!("From {name} ({} lines): {what}:", d.lines));
        for r in &chosen {
            let also = if r.also { ", also needed" } else { "" };
            self.out(&format!(
                "  {} ({:.0}%{also})",
                self.paint(BOLD, &r.playbook),
                shown(r.confidence) * 100.0
            ));
            for e in &r.evidence {
                self.out(&format!("    line {}: {}", e.line, e.symptoms.join("; ")));
            }
        }
        let others: Vec<String> = d
            .answers()
            .filter(|r| !chosen.iter().any(|c| c.playbook == r.playbook))
            .map(|r| format!("{} ({:.0}%)", r.playbook, shown(r.confidence) * 100.0))
            .collect();
        if !others.is_empty() {
            self.out(&format!(
                "  Not applied, other explanations of the same lines: {}",
                others.join(", ")
            ));
        }
        self.out("");
    }

    fn remedy(&self, n: usize, r: &Remedy) {
        let category = r
            .category
            .as_deref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default();
        self.out(&format!(
            "{n}. {} (confidence {:.0}%{category})",
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
            for meaning in &e.symptoms {
                self.out(&format!("     {meaning}"));
            }
        }
        for a in &r.against {
            let effect = if a.factor == 0.0 {
                "rules it out".to_string()
            } else {
                format!("counts against it (x{})", a.factor)
            };
            self.out(&format!(
                "   {} {} {effect}: {}",
                self.paint(YELLOW, &format!("line {}:", a.line)),
                cut(&a.text),
                a.meaning
            ));
        }
        for c in &r.conflicts {
            self.out(&format!(
                "   {} line {} calls for {}={}, line {} for {}={}: taken {}={}; give --var {}=... to choose",
                self.paint(YELLOW, "contradiction:"),
                c.taken.1,
                c.name,
                c.taken.0,
                c.other.1,
                c.name,
                c.other.0,
                c.name,
                c.taken.0,
                c.name
            ));
        }
        self.out(&format!("   run: {}", self.paint(GREEN, &r.command())));
        if !r.discovered.is_empty() {
            self.out(&format!(
                "   {} {}",
                self.paint(CYAN, "read from the target when planned:"),
                r.discovered.join(", ")
            ));
        }
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

    /// Remedies something matched, too weakly to answer with.
    fn weak(&self, weak: &[&Remedy]) {
        if weak.is_empty() {
            return;
        }
        self.out("");
        self.out(&format!(
            "Possible, but too weakly shown to answer with (below {:.0}%), or ruled out:",
            fixer::diagnose::ANSWER * 100.0
        ));
        for r in weak {
            let lines: Vec<String> = r.evidence.iter().map(|e| e.line.to_string()).collect();
            if r.confidence == 0.0 {
                let by: Vec<String> = r
                    .against
                    .iter()
                    .filter(|a| a.factor == 0.0)
                    .map(|a| format!("line {} ({})", a.line, a.meaning))
                    .collect();
                self.out(&format!(
                    "  {} (line {}): ruled out by {}",
                    r.playbook,
                    lines.join(", "),
                    by.join(", ")
                ));
                continue;
            }
            let why = if r.against.is_empty() {
                String::new()
            } else {
                format!(
                    "; against it: {}",
                    r.against
                        .iter()
                        .map(|a| format!("line {} ({})", a.line, a.meaning))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            self.out(&format!(
                "  {} ({:.0}%, line {}){why}",
                r.playbook,
                shown(r.confidence) * 100.0,
                lines.join(", ")
            ));
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

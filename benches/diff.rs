//! Benchmark: planning the replacement of one large file, the case whose
//! diff used to be quadratic (a 4 MB file replaced with one line took 27 s
//! to plan; 100 MB never finished). For each size, `fixer plan` of a
//! playbook replacing the file is timed against the baseline of the same
//! run: `fixer plan` of a playbook whose content already matches, which
//! reads and compares the same bytes but has nothing to diff. A worst
//! case for the diff itself (every line different, just under the size
//! above which a diff is summarised) shows what the deadline bounds.
//!
//! `cargo bench --bench diff`; `FIXER_BENCH_WRITE_DOCS=1` also writes
//! docs/benchmarks-diff.md (and reassembles docs/benchmarks.md).

use std::path::Path;

mod common;
use common::Result;

/// (label, file content, replacement)
type Case = (String, Vec<u8>, Vec<u8>);

fn cases() -> Vec<Case> {
    let numbered = |bytes: usize| -> Vec<u8> {
        let mut v = Vec::with_capacity(bytes + 16);
        let mut i = 0u64;
        while v.len() < bytes {
            v.extend_from_slice(format!("{i}\n").as_bytes());
            i += 1;
        }
        v
    };
    let mut out: Vec<Case> = [4 << 10, 256 << 10, 1020 << 10, 4 << 20, 100 << 20]
        .into_iter()
        .map(|n| {
            (
                format!("{} replaced by one line", fixer::diff::size_text(n)),
                numbered(n),
                b"one\n".to_vec(),
            )
        })
        .collect();
    // Every line changed, just under the limit: Myers' worst case.
    let old = numbered((1 << 20) - 4096);
    let new: Vec<u8> = old
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .flat_map(|l| [b"x", l, b"\n"].concat())
        .take(old.len())
        .collect();
    out.push((
        "1 MiB, every line changed".to_string(),
        old,
        new[..new.len().min((1 << 20) - 1)].to_vec(),
    ));
    out
}

fn playbook(dir: &Path, name: &str, content: &Path) -> Result<String> {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[playbook]\nname = \"diff\"\n[[resource]]\ntype = \"file\"\npath = \"/srv/big\"\ntemplate = \"{}\"\n",
            content.display()
        ),
    )?;
    Ok(p.display().to_string())
}

fn main() -> Result<()> {
    if common::is_child() {
        return common::child_main();
    }
    let fixer = common::fixer_binary()?;
    let repeats = 3;
    let mut table = String::from(
        "| file | shown as | plan, replacing (ms) | plan, already right (ms) | ratio | peak RSS replacing / right (MiB) |\n|---|---|---:|---:|---:|---:|\n",
    );
    for (label, content, replacement) in cases() {
        let work = tempfile::tempdir()?;
        let root = work.path().join("root");
        std::fs::create_dir_all(root.join("srv"))?;
        std::fs::write(root.join("srv/big"), &content)?;
        // Templates are read as they are (no `{{` in either).
        std::fs::write(work.path().join("new.txt"), &replacement)?;
        std::fs::write(work.path().join("same.txt"), &content)?;
        let replace = playbook(work.path(), "replace.toml", &work.path().join("new.txt"))?;
        let same = playbook(work.path(), "same.toml", &work.path().join("same.txt"))?;
        let root_s = root.to_str().ok_or("root")?;
        let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
        for r in 0..repeats {
            // Alternate which goes first, so neither always gets a warm cache.
            let order = if r % 2 == 0 {
                [&replace, &same]
            } else {
                [&same, &replace]
            };
            for pb in order {
                let m =
                    common::measured(&fixer, &["plan", pb, "--root", root_s], Path::new("."), &[])?;
                if pb == &replace {
                    changed.push(m);
                } else {
                    unchanged.push(m);
                }
            }
        }
        let (c, c_kib) = common::middle(changed);
        let (u, u_kib) = common::middle(unchanged);
        let shown = if content.len() > fixer::diff::SHOWN_LIMIT {
            "summary"
        } else {
            "diff"
        };
        table.push_str(&format!(
            "| {label} | {shown} | {:.1} | {:.1} | {} | {:.1} / {:.1} |\n",
            c.as_secs_f64() * 1e3,
            u.as_secs_f64() * 1e3,
            common::ratio(c.as_secs_f64() / u.as_secs_f64()),
            c_kib as f64 / 1024.0,
            u_kib as f64 / 1024.0,
        ));
    }
    println!("{table}");
    if std::env::var_os("FIXER_BENCH_WRITE_DOCS").is_some() {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let text = format!(
            "# Benchmark: the diff of a large file replaced\n\n\
             `fixer plan` of one `file` resource replacing `/srv/big` (a file of numbered \
             lines) on a tempdir root, against the baseline of the same run: `fixer plan` \
             of a resource whose content already matches (it reads and compares the same \
             bytes, with nothing to diff). Medians of {repeats} runs, alternating. A side \
             above {} is summarised, not diffed; below it the line diff has a {} ms \
             deadline, after which it settles for a coarser diff (still a correct one). \
             Above the limit the file on the target is held only as a digest (see the \
             memory bench); the baseline's RSS grows with the file because its wanted \
             content is the file's whole text, from the playbook's template.\n\n\
             Reproduce: `FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench diff` (this table: \
             {cores} cores).\n\n{table}",
            fixer::diff::size_text(fixer::diff::SHOWN_LIMIT),
            fixer::diff::DEADLINE.as_millis(),
        );
        common::write_page("benchmarks-diff.md", &text)?;
    }
    Ok(())
}

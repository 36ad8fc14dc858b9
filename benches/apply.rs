//! Benchmark: plan and apply a generated playbook of N `file` resources on a
//! tempdir root, and compare with the floor — the same writes done by the
//! shortest possible program (a loop of write, fsync, chmod, rename) in the
//! same run. Reports per-resource time and each run's peak RSS, for several
//! N, so a cost or memory growing faster than the playbook shows up.
//!
//! `cargo bench --bench apply`; `FIXER_BENCH_WRITE_DOCS=1` also writes
//! docs/benchmarks-apply.md (and reassembles docs/benchmarks.md).

use std::path::Path;

use std::time::Duration;

mod common;
use common::files::{self, DIRS};
use common::Result;

fn main() -> Result<()> {
    // Child mode: run fixer once and report its wall time and peak RSS.
    if common::is_child() {
        return common::child_main();
    }
    // benches/run.sh, after writing the fuzzing page.
    if std::env::var_os("FIXER_BENCH_REASSEMBLE_ONLY").is_some() {
        return common::reassemble();
    }
    let fixer = common::fixer_binary()?;
    let sizes: Vec<(usize, usize)> = vec![(250, 5), (1000, 5), (4000, 3)];
    let mut rows = Vec::new();
    for (n, repeats) in sizes {
        rows.extend(measure(&fixer, n, repeats)?);
    }
    let table = render(&rows);
    println!("{table}");
    if std::env::var_os("FIXER_BENCH_WRITE_DOCS").is_some() {
        write_docs(&table)?;
    }
    Ok(())
}

/// One fixer run through the child wrapper: (wall, peak RSS KiB).
fn run_fixer(fixer: &Path, args: &[&str], root: &Path) -> Result<(Duration, u64)> {
    let root = root.to_str().ok_or("root path")?;
    let mut full = args.to_vec();
    full.extend(["--root", root]);
    common::measured(fixer, &full, Path::new("."), &[])
}

struct Row {
    n: usize,
    op: &'static str,
    median: Duration,
    rss_kib: Option<u64>,
    floor: Option<Duration>,
}

fn measure(fixer: &Path, n: usize, repeats: usize) -> Result<Vec<Row>> {
    let work = tempfile::tempdir()?;
    let pb = files::fixer_playbook(work.path(), &format!("bench-{n}.toml"), n)?;
    let pb = pb.to_str().ok_or("path")?;
    let ops: [(&str, &[&str]); 5] = [
        // Loads the playbook and nothing else: the memory baseline.
        ("validate (playbook only)", &["validate"]),
        ("plan (empty target)", &["plan"]),
        ("apply (first)", &["apply"]),
        ("apply (no change)", &["apply"]),
        ("plan (no change)", &["plan"]),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); ops.len()];
    let mut rss = vec![0u64; ops.len()];
    let mut floors = Vec::new();
    for r in 0..repeats {
        // Alternate which goes first, so neither always gets a warm cache.
        let root = work.path().join(format!("root-{r}"));
        let floor_root = work.path().join(format!("floor-{r}"));
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&floor_root)?;
        if r % 2 == 1 {
            floors.push(files::floor(&floor_root, n)?);
        }
        for (k, (_, args)) in ops.iter().enumerate() {
            let mut full: Vec<&str> = args.to_vec();
            full.push(pb);
            let (t, kib) = run_fixer(fixer, &full, &root)?;
            times[k].push(t);
            rss[k] = rss[k].max(kib);
        }
        if r % 2 == 0 {
            floors.push(files::floor(&floor_root, n)?);
        }
        std::fs::remove_dir_all(&root)?;
        std::fs::remove_dir_all(&floor_root)?;
    }
    let floor_median = common::middle(floors);
    let mut rows = vec![Row {
        n,
        op: "floor: write+fsync+rename loop",
        median: floor_median,
        rss_kib: None,
        floor: None,
    }];
    for (k, (name, _)) in ops.iter().enumerate() {
        rows.push(Row {
            n,
            op: name,
            median: common::middle(times[k].clone()),
            rss_kib: Some(rss[k]),
            floor: (*name == "apply (first)").then_some(floor_median),
        });
    }
    Ok(rows)
}

fn render(rows: &[Row]) -> String {
    let mut s = String::from(
        "| N | operation | median ms | µs per resource | vs floor | peak RSS MiB |\n|---:|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let ms = r.median.as_secs_f64() * 1e3;
        let per = r.median.as_secs_f64() * 1e6 / r.n as f64;
        let ratio = r
            .floor
            .map(|f| format!("{:.1}x", r.median.as_secs_f64() / f.as_secs_f64()))
            .unwrap_or_default();
        let rss = r
            .rss_kib
            .map(|k| format!("{:.1}", k as f64 / 1024.0))
            .unwrap_or_default();
        s.push_str(&format!(
            "| {} | {} | {ms:.1} | {per:.0} | {ratio} | {rss} |\n",
            r.n, r.op
        ));
    }
    s
}

const READING: &str = "\
How to read it: per-resource time should not grow with N; a first apply is
dominated by fsyncs (the file's own, the directory's, and one fsynced journal
append per change). Peak RSS of plan and apply should equal that of
`validate` at the same N: then nothing beyond the loaded playbook accumulates.
The loaded playbook itself costs a few KiB per resource (the TOML tree with
spans is kept until the resources are built). The floor moves between runs
with the disk's fsync latency, so compare ratios within one table.
";

fn write_docs(table: &str) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let text = format!(
        "# Benchmark: plan and apply of N `file` resources (local, `--root` on a tempdir)\n\n\
         Each resource writes a ~30-byte file with mode 0640 into one of {DIRS} \
         directories. Every fixer run is a separate process (its wall time and peak RSS \
         measured by a wrapper process); medians over the repeats (5, or 3 for N = 4000). \
         The floor is the same writes done in-process by a plain loop of write, fsync, \
         chmod and rename, measured in the same run, alternating with fixer. The \
         ratio is fixer's first apply over the floor: apply also journals each change \
         (one fsynced append before each change; commands get a second one after), \
         re-reads what it replaces, and at the end reads back every path it changed \
         to record what it left, for rollback's drift check (`after.json`). \
         `validate` only loads the playbook: the RSS of plan and apply beyond it is what \
         they hold while working.\n\n\
         Reproduce: `FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench apply` \
         (this table: {cores} cores).\n\n{table}\n{READING}"
    );
    common::write_page("benchmarks-apply.md", &text)
}

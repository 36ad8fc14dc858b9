//! Benchmark: memory in the size of the file a change replaces. A file of
//! numbered lines at `/srv/big` on a tempdir root is replaced by one line:
//! `fixer plan`, `fixer apply` (which backs the file up) and `fixer
//! rollback` (which restores it), each its own process, peak RSS read by
//! the wrapper. The baseline of the same run is the same three commands on
//! a 4 KiB file: flat memory means every ratio stays near 1.0x. (Before,
//! a 300 MB file took 315 MB to plan and 622 MB to apply: the plan held the
//! old bytes, and the apply read them again for the backup.)
//!
//! `cargo bench --bench memory`; `FIXER_BENCH_WRITE_DOCS=1` also writes
//! docs/benchmarks-memory.md (and reassembles docs/benchmarks.md).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

mod common;
use common::Result;

const SIZES: [usize; 5] = [4 << 10, (1 << 20) + 1, 30 << 20, 100 << 20, 300 << 20];

fn numbered(path: &Path, bytes: usize) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut written, mut i) = (0, 0u64);
    while written < bytes {
        let line = format!("{i}\n");
        let n = line.len().min(bytes - written);
        f.write_all(&line.as_bytes()[..n])?;
        written += n;
        i += 1;
    }
    f.flush()?;
    Ok(())
}

/// Median time and peak RSS (KiB) of `plan`, `apply`, `rollback`.
type Row = [(Duration, u64); 3];

fn measure(fixer: &Path, bytes: usize, repeats: usize) -> Result<Row> {
    let work = tempfile::tempdir()?;
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("srv"))?;
    numbered(&root.join("srv/big"), bytes)?;
    let pb = work.path().join("replace.toml");
    std::fs::write(
        &pb,
        "[playbook]\nname = \"memory\"\n[[resource]]\ntype = \"file\"\npath = \"/srv/big\"\ncontent = \"one\\n\"\n",
    )?;
    let (pb, root_s) = (pb.to_str().ok_or("path")?, root.to_str().ok_or("root")?);
    let mut runs: [Vec<(Duration, u64)>; 3] = Default::default();
    for _ in 0..repeats {
        let commands: [&[&str]; 3] = [
            &["plan", pb, "--root", root_s],
            &["apply", pb, "--root", root_s],
            &["rollback", "--root", root_s],
        ];
        for (i, args) in commands.iter().enumerate() {
            runs[i].push(common::measured(fixer, args, Path::new("."), &[])?);
        }
        // Each round ends as it began: the whole file back.
        let back = std::fs::metadata(root.join("srv/big"))?.len();
        if back != bytes as u64 {
            return Err(format!("rollback left {back} bytes, not {bytes}").into());
        }
    }
    Ok(runs.map(common::middle))
}

fn main() -> Result<()> {
    if common::is_child() {
        return common::child_main();
    }
    let fixer = common::fixer_binary()?;
    let repeats = 3;
    let rows: Vec<(usize, Row)> = SIZES
        .iter()
        .map(|&n| measure(&fixer, n, repeats).map(|r| (n, r)))
        .collect::<Result<_>>()?;
    let base = rows.first().ok_or("no rows")?.1;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut table = String::from(
        "| file replaced | plan: peak RSS (MiB), vs 4 KiB | apply | rollback | plan / apply / rollback time (ms) |\n|---|---:|---:|---:|---:|\n",
    );
    for (n, row) in &rows {
        let cell = |i: usize| {
            format!(
                "{:.1} ({})",
                mib(row[i].1),
                common::ratio(row[i].1 as f64 / base[i].1 as f64)
            )
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} / {:.0} / {:.0} |\n",
            fixer::diff::size_text(*n),
            cell(0),
            cell(1),
            cell(2),
            row[0].0.as_secs_f64() * 1e3,
            row[1].0.as_secs_f64() * 1e3,
            row[2].0.as_secs_f64() * 1e3,
        ));
    }
    println!("{table}");
    if std::env::var_os("FIXER_BENCH_WRITE_DOCS").is_some() {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let text = format!(
            "# Benchmark: memory in the size of a replaced file\n\n\
             A file of numbered lines at `/srv/big` on a tempdir root is replaced by one \
             line: `fixer plan`, `fixer apply` (which backs the file up) and `fixer \
             rollback` (which restores it), each its own process, peak RSS of the process \
             tree, medians of {repeats} rounds. The ratio in each cell is against the same \
             command on a 4 KiB file in the same run: flat memory keeps it near 1.0x. A file \
             above {} is compared by a digest streamed on the host, its diff summarised, \
             and backed up and restored by copies made on the host, so no command holds \
             its bytes. (Before: a 300 MB file took 315 MB of RSS to plan and 622 MB to \
             apply.) The time grows with the file: hashing it, copying it for the backup, \
             and copying it back.\n\n\
             Reproduce: `FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench memory` (this table: \
             {cores} cores).\n\n{table}",
            fixer::diff::size_text(fixer::diff::SHOWN_LIMIT),
        );
        common::write_page("benchmarks-memory.md", &text)?;
    }
    Ok(())
}

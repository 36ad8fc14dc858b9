//! Benchmark: the same desired state written as a fixer playbook, an
//! Ansible playbook (ansible-core) and a pyinfra deploy, both from PyPI in
//! a venv this bench makes (target/bench-venv), applied to a local tempdir
//! tree: N files with content and mode, first apply and a no-change
//! re-apply. Every tool runs as its own process, the tools alternating
//! round by round; medians of the rounds, the ratio fixer/other, and the
//! peak RSS of the largest process each tool ran. The floor is the same
//! writes done in-process by a plain loop of write, fsync, chmod, rename.
//!
//! `cargo bench --bench compare`; `FIXER_BENCH_WRITE_DOCS=1` also writes
//! docs/benchmarks-compare.md (and reassembles docs/benchmarks.md). Needs
//! python3 with venv, and PyPI.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

mod common;
use common::files::{content, rel, DIRS};
use common::{files, median, ratio, Result};

/// Ansible: the directories, then one `copy` per file (a loop), on the
/// local connection without fact gathering: its fastest local setup.
fn ansible_playbook(dir: &Path, n: usize) -> Result<PathBuf> {
    let mut text = String::from(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n\
         \x20   - name: directories\n      ansible.builtin.file:\n        path: \"{{ root }}/data/d{{ '%02d' | format(item) }}\"\n        state: directory\n\
         \x20     loop: \"{{ range(0, DIRS) | list }}\"\n\
         \x20   - name: files\n      ansible.builtin.copy:\n        dest: \"{{ root }}/{{ item.path }}\"\n        content: \"{{ item.content }}\"\n        mode: \"0640\"\n\
         \x20     loop:\n",
    )
    .replace("DIRS", &DIRS.to_string());
    for i in 0..n {
        text.push_str(&format!(
            "        - {{ path: \"{}\", content: {:?} }}\n",
            rel(i),
            content(i)
        ));
    }
    let p = dir.join("ansible.yml");
    std::fs::write(&p, text)?;
    Ok(p)
}

/// pyinfra: the same, as a deploy file run against @local.
fn pyinfra_deploy(dir: &Path, n: usize) -> Result<PathBuf> {
    let mut text = String::from(
        "import os\nfrom io import StringIO\nfrom pyinfra.operations import files\n\
         ROOT = os.environ['BENCH_ROOT']\n\
         for d in range(DIRS):\n    files.directory(name=f'd{d}', path=f'{ROOT}/data/d{d:02}', present=True)\n\
         FILES = [\n",
    )
    .replace("DIRS", &DIRS.to_string());
    for i in 0..n {
        text.push_str(&format!("    ({:?}, {:?}),\n", rel(i), content(i)));
    }
    text.push_str(
        "]\nfor path, content in FILES:\n    files.put(name=path, src=StringIO(content), dest=f'{ROOT}/{path}', mode='640')\n",
    );
    let p = dir.join("deploy.py");
    std::fs::write(&p, text)?;
    Ok(p)
}

/// Every file is there with its content and mode: a tool that "succeeded"
/// without doing the work would otherwise look fast.
fn check(root: &Path, n: usize, tool: &str) -> Result<()> {
    for i in 0..n {
        let p = root.join(rel(i));
        let text =
            std::fs::read_to_string(&p).map_err(|e| format!("{tool}: {}: {e}", p.display()))?;
        let mode = std::fs::metadata(&p)?.permissions().mode() & 0o777;
        if text != content(i) || mode != 0o640 {
            return Err(format!("{tool}: {} is wrong (mode {mode:o})", p.display()).into());
        }
    }
    Ok(())
}

struct Result3 {
    first: Vec<f64>,
    again: Vec<f64>,
    rss_kib: u64,
}

fn main() -> Result<()> {
    if common::is_child() {
        return common::child_main();
    }
    let tc = common::Toolchain::new()?;
    let versions = tc.versions();
    // N:rounds,... Ansible takes ~0.4 s per file and per apply here, so
    // N = 1000 gets one round by default (about 20 minutes).
    let sizes: Vec<(usize, usize)> = std::env::var("FIXER_BENCH_SIZES")
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|part| {
                    let (n, rounds) = part.trim().split_once(':').unwrap_or((part.trim(), "3"));
                    Some((n.parse().ok()?, rounds.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_else(|| vec![(100, 3), (1000, 1)]);
    let mut table = String::from(
        "| N | rounds | tool | first apply s | fixer/tool | vs floor | no-change apply s | fixer/tool | peak RSS MiB |\n\
         |---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (n, rounds) in sizes {
        let work = tempfile::tempdir()?;
        let fixer_pb = files::fixer_playbook(work.path(), "fixer.toml", n)?;
        let ansible_pb = ansible_playbook(work.path(), n)?;
        let deploy = pyinfra_deploy(work.path(), n)?;
        let tools = tc.local_tools(fixer_pb, ansible_pb, deploy);
        let mut results: Vec<Result3> = tools
            .iter()
            .map(|_| Result3 {
                first: Vec::new(),
                again: Vec::new(),
                rss_kib: 0,
            })
            .collect();
        let mut floors = Vec::new();
        for round in 0..rounds {
            eprintln!("N = {n}, round {}/{rounds}", round + 1);
            // Alternate the order, so no tool always runs on a warm cache.
            let mut order: Vec<usize> = (0..tools.len()).collect();
            order.rotate_left(round % tools.len());
            for k in order {
                let (tool, res) = (&tools[k], &mut results[k]);
                let root = work.path().join(format!("{}-{round}", tool.name));
                std::fs::create_dir_all(&root)?;
                let args = (tool.args)(&root);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let root_s = root.display().to_string();
                let envs = [
                    ("BENCH_ROOT", root_s.as_str()),
                    ("ANSIBLE_NOCOLOR", "1"),
                    ("ANSIBLE_LOCALHOST_WARNING", "False"),
                    ("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False"),
                ];
                let (t, kib) = common::measured(&tool.program, &args, work.path(), &envs)?;
                check(&root, n, tool.name)?;
                res.first.push(t.as_secs_f64());
                res.rss_kib = res.rss_kib.max(kib);
                let (t, kib) = common::measured(&tool.program, &args, work.path(), &envs)?;
                res.again.push(t.as_secs_f64());
                res.rss_kib = res.rss_kib.max(kib);
                std::fs::remove_dir_all(&root)?;
            }
            let floor_root = work.path().join(format!("floor-{round}"));
            floors.push(files::floor(&floor_root, n)?.as_secs_f64());
            std::fs::remove_dir_all(&floor_root)?;
        }
        let floor_s = median(floors);
        let fixer_first = median(results[0].first.clone());
        let fixer_again = median(results[0].again.clone());
        let mut rows = format!(
            "| {n} | {rounds} | floor: write+fsync+rename loop | {floor_s:.3} |  |  |  |  |  |\n"
        );
        for (tool, res) in tools.iter().zip(&results) {
            let first = median(res.first.clone());
            let again = median(res.again.clone());
            rows.push_str(&format!(
                "| {n} | {rounds} | {} | {first:.3} | {} | {:.1}x | {again:.3} | {} | {:.1} |\n",
                tool.name,
                ratio(fixer_first / first),
                first / floor_s,
                ratio(fixer_again / again),
                res.rss_kib as f64 / 1024.0
            ));
        }
        // Shown as each size finishes: the large one takes long.
        eprint!("{rows}");
        table.push_str(&rows);
    }
    println!("{table}");
    if std::env::var_os("FIXER_BENCH_WRITE_DOCS").is_some() {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        common::write_page(
            "benchmarks-compare.md",
            &format!(
                "# Benchmark: fixer, Ansible and pyinfra on the same files\n\n\
                 The same desired state — N files with content and mode 0640 in {DIRS} \
                 directories, on this machine — as a fixer playbook (`--root` on a tempdir), \
                 an Ansible playbook (local connection, no fact gathering, one `copy` per \
                 file in a loop) and a pyinfra deploy (`@local`, one `files.put` per file). \
                 Each run is its own process; the tools alternate round by round; medians \
                 over the rounds the table gives (one at N = 1000, where one Ansible apply \
                 takes minutes). Every run's result is checked (content and mode of every \
                 file). fixer/tool below 1 means fixer is faster. \"vs floor\" is the \
                 first apply over the same writes done in-process by a plain loop of \
                 write, fsync, chmod and rename. Peak RSS is that of the largest process \
                 the tool ran. fixer also journals every change for rollback; the others \
                 keep no undo.\n\n\
                 Versions: {versions}. Reproduce: `FIXER_BENCH_WRITE_DOCS=1 cargo bench \
                 --bench compare` (this table: {cores} cores).\n\n{table}"
            ),
        )?;
    }
    Ok(())
}

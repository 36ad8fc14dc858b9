//! What the benches share: the release binary, the Python venv with the
//! tools fixer is compared with, a wrapper measuring one process's wall
//! time and peak RSS, and medians.

#![allow(dead_code)] // each bench uses its own subset

pub mod files;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// target/release/fixer, rebuilt first: a stale binary would measure old
/// code.
pub fn fixer_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/release/deps/BENCH-HASH -> target/release
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot find the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if !Command::new(cargo)
        .args(["build", "--release", "--bin", "fixer"])
        .status()?
        .success()
    {
        return Err("cargo build --release failed".into());
    }
    Ok(release.join("fixer"))
}

/// target/bench-venv with ansible-core and pyinfra from PyPI, made once;
/// returns its bin directory.
pub fn venv(target: &Path) -> Result<PathBuf> {
    let venv = target.join("bench-venv");
    let bin = venv.join("bin");
    if !bin.join("pip").exists() {
        let py = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        if !Command::new(py)
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()?
            .success()
        {
            return Err("python3 -m venv failed (apt install python3-venv)".into());
        }
    }
    for (tool, package) in [("ansible-playbook", "ansible-core"), ("pyinfra", "pyinfra")] {
        if !bin.join(tool).exists()
            && !Command::new(bin.join("pip"))
                .args(["install", "-q", package])
                .status()?
                .success()
        {
            return Err(format!("pip install {package} failed").into());
        }
    }
    Ok(bin)
}

/// The first line of `TOOL --version`, for the report.
pub fn version(tool: &Path) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| tool.display().to_string())
}

const CHILD: &str = "FIXER_BENCH_CHILD";

/// Whether this process is the measuring wrapper (see [`measured`]).
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// The wrapper: run the program once and print its wall time (µs) and the
/// peak RSS (KiB) of the largest process in its tree. A process of our own
/// with exactly one child makes RUSAGE_CHILDREN exact.
pub fn child_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (program, rest) = args.split_first().ok_or("child: no program")?;
    let t0 = Instant::now();
    let out = Command::new(program)
        .args(rest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    let wall = t0.elapsed();
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    if !out.status.success() {
        return Err(format!(
            "{program} {rest:?} failed: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    println!("{} {}", wall.as_micros(), usage.max_rss());
    Ok(())
}

/// Run `program args` through the wrapper, in `dir`, with `envs`:
/// (wall time, peak RSS in KiB).
pub fn measured(
    program: &Path,
    args: &[&str],
    dir: &Path,
    envs: &[(&str, &str)],
) -> Result<(Duration, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .env(CHILD, "1")
        .envs(envs.iter().copied())
        .current_dir(dir)
        .arg(program)
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{} {args:?} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(us)), Some(Ok(kib))) => Ok((Duration::from_micros(us), kib)),
        _ => Err(format!("child printed {text:?}").into()),
    }
}

/// A tool's arguments, given the root of the tree it works on.
pub type Args = Box<dyn Fn(&Path) -> Vec<String>>;

/// One tool a bench runs: its name in the table and how to start it.
pub struct Tool {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Args,
}

/// fixer (freshly built) and the tools it is compared with (in the venv).
pub struct Toolchain {
    pub fixer: PathBuf,
    pub ansible: PathBuf,
    pub pyinfra: PathBuf,
    python: PathBuf,
}

impl Toolchain {
    pub fn new() -> Result<Toolchain> {
        let fixer = fixer_binary()?;
        let target = fixer
            .parent()
            .and_then(Path::parent)
            .ok_or("no target dir")?
            .to_path_buf();
        let bin = venv(&target)?;
        Ok(Toolchain {
            fixer,
            ansible: bin.join("ansible-playbook"),
            pyinfra: bin.join("pyinfra"),
            python: bin.join("python3"),
        })
    }

    /// "fixer X, ansible-playbook [core Y], pyinfra: Z", for the report.
    pub fn versions(&self) -> String {
        format!(
            "fixer {}, {}, {}",
            env!("CARGO_PKG_VERSION"),
            version(&self.ansible),
            version(&self.pyinfra)
        )
    }

    /// The three tools applying one desired state to a local tree: fixer
    /// with `--root`, Ansible on localhost with `-e root=`, pyinfra on
    /// @local reading `BENCH_ROOT` from its environment.
    pub fn local_tools(
        &self,
        fixer_pb: PathBuf,
        ansible_pb: PathBuf,
        deploy: PathBuf,
    ) -> [Tool; 3] {
        let python = self.python.clone();
        [
            Tool {
                name: "fixer",
                program: self.fixer.clone(),
                args: Box::new(move |root| {
                    vec![
                        "apply".into(),
                        fixer_pb.display().to_string(),
                        "--root".into(),
                        root.display().to_string(),
                    ]
                }),
            },
            Tool {
                name: "ansible-playbook",
                program: self.ansible.clone(),
                args: Box::new(move |root| {
                    vec![
                        "-i".into(),
                        "localhost,".into(),
                        "-e".into(),
                        format!("root={}", root.display()),
                        "-e".into(),
                        format!("ansible_python_interpreter={}", python.display()),
                        ansible_pb.display().to_string(),
                    ]
                }),
            },
            Tool {
                name: "pyinfra",
                program: self.pyinfra.clone(),
                args: Box::new(move |_| {
                    vec!["-y".into(), "@local".into(), deploy.display().to_string()]
                }),
            },
        ]
    }
}

/// A ratio with two significant digits, however small.
pub fn ratio(x: f64) -> String {
    let decimals = if x > 0.0 && x < 1.0 {
        (-x.log10().floor()) as usize + 1
    } else {
        2
    };
    format!("{x:.decimals$}x")
}

/// The median; of an even count, the mean of the middle two.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    match (v.len() % 2, v.get(mid)) {
        (_, None) => f64::NAN,
        (1, Some(m)) => *m,
        (_, Some(m)) => (v[mid - 1] + m) / 2.0,
    }
}

/// The middle of runs that sort (times, or (time, RSS) pairs): the upper
/// one of an even count.
pub fn middle<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

/// The bench pages, in the order docs/benchmarks.md shows them, with the
/// command that writes each.
const PAGES: &[(&str, &str)] = &[
    (
        "benchmarks-compare.md",
        "FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench compare",
    ),
    (
        "benchmarks-incident.md",
        "FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench incident",
    ),
    (
        "benchmarks-ssh.md",
        "FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench fleet",
    ),
    (
        "benchmarks-apply.md",
        "FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench apply",
    ),
    (
        "benchmarks-diff.md",
        "FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench diff",
    ),
    (
        "benchmarks-memory.md",
        "FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench memory",
    ),
    (
        "benchmarks-diagnose.md",
        "FIXER_BENCH_WRITE_DOCS=1 cargo bench --bench diagnose",
    ),
    ("benchmarks-fuzz.md", "benches/run.sh (its fuzzing step)"),
];

/// Write one bench's page under docs/, then reassemble docs/benchmarks.md:
/// the hand-written summary (docs/benchmarks-summary.md, which reads the
/// numbers) followed by every page, so it holds every table and the
/// command that made it.
pub fn write_page(file: &str, text: &str) -> Result<()> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::write(docs.join(file), text)?;
    reassemble()
}

/// Rewrite docs/benchmarks.md from the summary and the pages as they are.
pub fn reassemble() -> Result<()> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut index = std::fs::read_to_string(docs.join("benchmarks-summary.md"))?;
    for (page, command) in PAGES {
        index.push('\n');
        match std::fs::read_to_string(docs.join(page)) {
            // One level down: each page's title becomes a section.
            Ok(t) => index.push_str(&format!("#{t}")),
            Err(_) => index.push_str(&format!("## {page}\n\nNot measured yet: `{command}`.\n")),
        }
    }
    std::fs::write(docs.join("benchmarks.md"), index)?;
    Ok(())
}

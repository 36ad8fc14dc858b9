//! Command-line definition and dispatch. Everything here parses arguments,
//! calls the library, and prints; no engine logic.

mod render;

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use fixer::apply::{self, Event};
use fixer::error::Error;
use fixer::host::LocalHost;
use fixer::journal::Store;
use fixer::plan::{self, SavedPlan};
use fixer::playbook::{Overrides, Playbook};

use render::Printer;

/// Declarative remediation: plan, apply and roll back fixes on Linux hosts.
#[derive(Parser)]
#[command(name = "fixer", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Set a playbook variable (repeatable); overrides [vars] and --vars.
    #[arg(long = "var", value_name = "NAME=VALUE", global = true)]
    vars: Vec<String>,
    /// Read variables from a TOML file of NAME = VALUE lines (repeatable).
    #[arg(long = "vars", value_name = "FILE", global = true)]
    var_files: Vec<PathBuf>,
    /// Treat DIR as / of the target (images, containers, tests).
    #[arg(long, value_name = "DIR", global = true)]
    root: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    format: Format,
    /// Colour output (auto: on a terminal, unless NO_COLOR is set).
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    /// Exit 2 when a plan succeeds and has changes.
    #[arg(long, global = true)]
    detailed_exitcode: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, type-check and render a playbook; no host access.
    Validate { playbook: PathBuf },
    /// Show what apply would change, as diffs; changes nothing.
    Plan {
        playbook: PathBuf,
        /// Save the plan, for `fixer apply PLAN` (refused if the target drifts).
        #[arg(long, value_name = "PLAN")]
        out: Option<PathBuf>,
    },
    /// Make the changes, recorded as a run that can be rolled back.
    Apply {
        /// A playbook, or a plan saved by `plan --out`.
        #[arg(value_name = "PLAYBOOK|PLAN")]
        target: PathBuf,
        /// Show the plan instead of applying it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Undo the newest run not yet undone, or the named one.
    Rollback { run: Option<String> },
    /// List the runs recorded on the target.
    History,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = match cli.global.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    let mut printer = Printer::new(cli.global.format, color);
    let code = match run(&cli, &mut printer) {
        Ok(code) => code,
        Err(e) => {
            printer.error(&e);
            1
        }
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(code)
}

fn overrides(g: &Global) -> Result<Overrides, Error> {
    Ok(Overrides {
        files: g.var_files.clone(),
        values: g
            .vars
            .iter()
            .map(|v| Overrides::parse_var(v))
            .collect::<Result<_, _>>()?,
    })
}

fn host(root: Option<&Path>) -> Result<LocalHost, Error> {
    if let Some(r) = root {
        let meta = std::fs::metadata(r).map_err(|source| Error::Read {
            path: r.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(Error::Usage(format!(
                "--root {}: not a directory",
                r.display()
            )));
        }
        let abs = std::fs::canonicalize(r).map_err(|source| Error::Read {
            path: r.to_path_buf(),
            source,
        })?;
        return Ok(LocalHost::new(Some(abs)));
    }
    Ok(LocalHost::new(None))
}

fn run(cli: &Cli, p: &mut Printer) -> Result<u8, Error> {
    let g = &cli.global;
    match &cli.command {
        Command::Validate { playbook } => {
            let pb = Playbook::load(playbook, &overrides(g)?)?;
            p.validated(&pb);
            Ok(0)
        }
        Command::Plan { playbook, out } => {
            let pb = Playbook::load(playbook, &overrides(g)?)?;
            let host = host(g.root.as_deref())?;
            let outcome = plan_and_print(&pb, &host, p)?;
            if let Some(out) = out {
                SavedPlan::new(&pb, host.root(), &outcome)?.write(out)?;
                p.note(&format!(
                    "Saved the plan to {}; apply it with `fixer apply {}`.",
                    out.display(),
                    out.display()
                ));
            }
            Ok(if g.detailed_exitcode && outcome.has_changes() {
                2
            } else {
                0
            })
        }
        Command::Apply { target, dry_run } => {
            let (pb, root, expect) = match SavedPlan::read(target)? {
                Some(saved) => {
                    let root = match (&g.root, &saved.root) {
                        (Some(a), Some(b)) if std::fs::canonicalize(a).ok().as_ref() != Some(b) => {
                            return Err(Error::Usage(format!(
                                "the plan was made for --root {}, not {}",
                                b.display(),
                                a.display()
                            )))
                        }
                        (Some(a), _) => Some(a.clone()),
                        (None, b) => b.clone(),
                    };
                    (
                        Playbook::load(&saved.playbook, &saved.overrides())?,
                        root,
                        Some(saved.fingerprint),
                    )
                }
                None => (
                    Playbook::load(target, &overrides(g)?)?,
                    g.root.clone(),
                    None,
                ),
            };
            let host = host(root.as_deref())?;
            if *dry_run {
                let outcome = plan_and_print(&pb, &host, p)?;
                return Ok(if g.detailed_exitcode && outcome.has_changes() {
                    2
                } else {
                    0
                });
            }
            p.apply_header(&pb, &fixer::host::Host::name(&host));
            let result = apply::apply(&pb, &host, expect.as_deref(), &mut |ev| match ev {
                Event::Resource(c) => p.change(c, true),
                Event::Handler(c) => p.handler(c, true),
            });
            match result {
                Ok(outcome) => {
                    p.applied(&outcome, host.root());
                    Ok(0)
                }
                Err(e) => Err(e),
            }
        }
        Command::Rollback { run } => {
            let host = host(g.root.as_deref())?;
            let (record, report) = apply::rollback(&host, run.as_deref())?;
            p.rolled_back(&record, &report);
            Ok(if report.complete() { 0 } else { 1 })
        }
        Command::History => {
            let host = host(g.root.as_deref())?;
            let store = Store::new(&host);
            let busy = store.busy()?;
            p.history(&store.runs()?, busy);
            Ok(0)
        }
    }
}

fn plan_and_print(
    pb: &Playbook,
    host: &LocalHost,
    p: &mut Printer,
) -> Result<plan::Outcome, Error> {
    p.plan_header(pb, &fixer::host::Host::name(host));
    let outcome = plan::plan(pb, host, &mut |c| p.change(c, false))?;
    p.plan_footer(&outcome, host.root());
    Ok(outcome)
}

//! Command-line definition and dispatch. Everything here parses arguments,
//! calls the library, and prints; no engine logic.

mod pull;
mod remote;
mod render;
mod report;

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

use fixer::apply::{self, Event};
use fixer::error::Error;
use fixer::host::{Host as _, LocalHost};
use fixer::journal::{Prune, Store};
use fixer::plan::{self, SavedPlan};
use fixer::playbook::{Overrides, Pick, Playbook};
use fixer::results::{self, Record, Source};

use render::{Printer, Verbosity};

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
    /// Print only results (summary, run id, suggested command), warnings
    /// and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Also print what did not change, and how long each change took.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Exit 2 when a plan succeeds and has changes.
    #[arg(long, global = true)]
    detailed_exitcode: bool,
    /// Act on a remote host over SSH (repeatable): [user@]host[:port] or an
    /// alias from ~/.ssh/config.
    #[arg(long = "host", value_name = "[USER@]HOST[:PORT]", global = true)]
    hosts: Vec<String>,
    /// Act on the hosts of a TOML inventory (docs/guide.md).
    #[arg(short = 'i', long, value_name = "FILE", global = true)]
    inventory: Option<PathBuf>,
    /// Only these inventory hosts or groups (comma-separated, repeatable).
    #[arg(long, value_name = "NAMES", global = true, requires = "inventory")]
    limit: Vec<String>,
    /// How many remote hosts to work on at once.
    #[arg(long, default_value_t = 10, value_name = "N", global = true,
          value_parser = clap::value_parser!(u16).range(1..))]
    forks: u16,
    /// On remote hosts, act as root through `sudo -n` (never prompts).
    #[arg(long = "become", global = true)]
    become_root: bool,
    /// Record the host key of a host missing from known_hosts instead of
    /// refusing it (a changed key is always refused).
    #[arg(long, global = true)]
    accept_new_host_keys: bool,
    /// Seconds a remote host waits for the controller to confirm an apply
    /// before restoring the previous state by itself.
    #[arg(long, default_value_t = 120, value_name = "SECS", global = true,
          value_parser = clap::value_parser!(u64).range(5..))]
    confirm_timeout: u64,
    /// With apply or fix: add one JSON record per host and run to the
    /// results store STORE, a folder or `git+URL[#BRANCH]` (`fixer report
    /// STORE` reads it).
    #[arg(long, value_name = "STORE", global = true)]
    report_to: Option<PathBuf>,
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
    /// Parse, type-check and render playbooks; no host access.
    Validate {
        #[arg(value_name = "PLAYBOOK", required = true, num_args = 1..)]
        playbooks: Vec<PathBuf>,
    },
    /// Show what apply would change, as diffs; changes nothing. Several
    /// playbooks are planned as one, in the order their phases say.
    Plan {
        #[arg(value_name = "PLAYBOOK", required = true, num_args = 1..)]
        playbooks: Vec<PathBuf>,
        /// Save the plan, for `fixer apply PLAN` (refused if the target drifts).
        #[arg(long, value_name = "PLAN")]
        out: Option<PathBuf>,
    },
    /// Make the changes, recorded as one run that can be rolled back.
    Apply {
        /// Playbooks (applied as one run, in the order their phases say),
        /// or one plan saved by `plan --out`.
        #[arg(value_name = "PLAYBOOK|PLAN", required = true, num_args = 1..)]
        targets: Vec<PathBuf>,
        /// Show the plan instead of applying it.
        #[arg(long)]
        dry_run: bool,
        /// On remote hosts, roll out batch by batch: sizes in hosts or
        /// percent of all hosts, the last repeating (`1,10%,100%`, or `5`).
        #[arg(long, value_name = "SIZES", conflicts_with = "dry_run")]
        serial: Option<fixer::rollout::Serial>,
        /// With --serial: stop the rollout once more than N hosts (or P% of
        /// all hosts) failed or did not pass their probes [default: 0].
        #[arg(long, value_name = "N|P%", requires = "serial")]
        max_fail: Option<fixer::rollout::MaxFail>,
    },
    /// Undo the newest run not yet undone, or the named one.
    Rollback {
        run: Option<String>,
        /// Roll back even over changes made to the run's paths since it
        /// finished (they are listed when refused).
        #[arg(long)]
        force: bool,
    },
    /// List the runs recorded on the target.
    History,
    /// Delete old runs and their backups; they can no longer be rolled back.
    /// Never a run that is running, interrupted or half rolled back.
    Prune {
        /// Keep this many of the newest runs that can still be rolled back,
        /// and every run newer than them.
        #[arg(long, default_value_t = 10, value_name = "N")]
        keep: usize,
        /// Only runs started longer ago than this (`30d`, `12h`).
        #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Show what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Name the playbook that fixes an error log, with the values it read.
    Diagnose {
        /// The log (output of go, git or ssh), or - for stdin.
        log: PathBuf,
        /// Read playbooks' [[symptom]]s from DIR (repeatable) instead of the
        /// shipped playbooks and ~/.config/fixer/playbooks.
        #[arg(long = "playbooks", value_name = "DIR")]
        playbooks: Vec<PathBuf>,
    },
    /// Diagnose an error log, then plan the playbooks that fix it as one
    /// plan on the target and, once confirmed, apply them as one run.
    Fix {
        /// The log (output of go, git or ssh), or - for stdin.
        log: PathBuf,
        /// Apply without asking. Without it, fixer asks on a terminal and
        /// only plans elsewhere (or when the log comes on stdin).
        #[arg(long)]
        yes: bool,
        /// Read playbooks' [[symptom]]s from DIR (repeatable) instead of the
        /// shipped playbooks and ~/.config/fixer/playbooks.
        #[arg(long = "playbooks", value_name = "DIR")]
        playbooks: Vec<PathBuf>,
    },
    /// Fetch a git repository of playbooks and apply them when the commit
    /// is new or the host drifted; `--install-timer` makes systemd do it.
    Pull {
        /// The repository: a path, or a file://, https:// or ssh:// URL.
        repo: String,
        /// The branch to follow.
        #[arg(long, default_value = "main")]
        branch: String,
        /// Only these playbooks, as paths inside the repository
        /// (repeatable); default: every *.toml of its playbooks/ folder.
        #[arg(long = "playbook", value_name = "PATH")]
        playbooks: Vec<PathBuf>,
        /// Apply only commits with an SSH signature by a key in FILE
        /// (ssh-keygen's allowed signers format).
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<PathBuf>,
        /// Write (and, on this machine, enable) a systemd service and timer
        /// running this same pull.
        #[arg(long)]
        install_timer: bool,
        /// With --install-timer: how often (a systemd time span).
        #[arg(
            long,
            default_value = "15min",
            value_name = "SPAN",
            requires = "install_timer"
        )]
        every: String,
        /// With --install-timer: each tick waits a random delay up to this,
        /// so a fleet does not fetch all at once.
        #[arg(
            long,
            default_value = "5min",
            value_name = "SPAN",
            requires = "install_timer"
        )]
        randomized_delay: String,
    },
    /// The fleet from a results store (`--report-to DIR`): each host's
    /// last run, and whether it converged, drifted, fails or is behind.
    Report {
        /// The results store: a folder of JSON records, or
        /// `git+URL[#BRANCH]`.
        store: PathBuf,
        /// Also write a self-contained HTML page with a timeline of runs.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Start a playbook from a shipped one (without NAME: list them).
    Init {
        /// The shipped playbook to start from, e.g. go-proxy-mirror.
        name: Option<String>,
        /// Where to write it (default: ./NAME.toml; its templates go to
        /// templates/ beside it). Never overwrites.
        #[arg(long, value_name = "FILE")]
        to: Option<PathBuf>,
    },
    /// Print the shell completion script for SHELL (docs/guide.md says
    /// where each shell looks for it).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page fixer(1), or write it and one page per command
    /// (fixer-plan(1), ...) into DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the JSON Schema of playbooks, for editors (taplo, Even Better
    /// TOML), or with --markdown the playbook reference (docs/playbook.md).
    Schema {
        #[arg(long)]
        markdown: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on a usage error, which `--detailed-exitcode`
            // means "there are changes": an error is 1, as everywhere else.
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let color = match cli.global.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    let verbosity = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    };
    let mut printer = Printer::new(cli.global.format, color, verbosity);
    if let Some(root) = &cli.global.root {
        printer.set_target_flag(format!("--root {}", fixer::host::shell::quote_path(root)));
    }
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
        ..Overrides::default()
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

/// The remote hosts named on the command line, if any.
fn fleet(g: &Global) -> Result<Option<remote::Fleet>, Error> {
    // A run made through sudo is root's: undoing it as the login user
    // could not even read its journal.
    let become_flag = if g.become_root { " --become" } else { "" };
    let (members, flag): (_, remote::MemberFlag) = match (&g.inventory, g.hosts.is_empty()) {
        (None, true) => return Ok(None),
        (Some(_), false) => {
            return Err(Error::Usage(
                "give remote hosts with --host or with -i INVENTORY, not both".into(),
            ))
        }
        (Some(inv), true) => {
            let inv_arg = fixer::host::shell::quote_path(inv);
            (
                fixer::inventory::load(inv, &g.limit)?,
                Box::new(move |m: &fixer::inventory::Member| {
                    let name = fixer::host::shell::quote(&m.name);
                    format!("-i {inv_arg} --limit {name}{become_flag}")
                }),
            )
        }
        (None, false) => (
            fixer::inventory::from_specs(&g.hosts),
            Box::new(move |m: &fixer::inventory::Member| {
                let name = fixer::host::shell::quote(&m.name);
                format!("--host {name}{become_flag}")
            }),
        ),
    };
    if g.root.is_some() {
        return Err(Error::Usage(
            "--root works on this machine; it cannot be combined with remote hosts".into(),
        ));
    }
    if members.is_empty() {
        return Err(Error::Usage("the inventory selects no hosts".into()));
    }
    let home = LocalHost::new(None)
        .home()
        .map_err(|e| Error::Usage(format!("cannot find your home directory: {e}")))?;
    let local_user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "root".into());
    let config = fixer::host::ssh_config::SshConfig::load_default(&home).map_err(Error::Usage)?;
    Ok(Some(remote::Fleet {
        members,
        flag,
        forks: usize::from(g.forks),
        ssh: fixer::host::SshOptions {
            accept_new_host_keys: g.accept_new_host_keys,
            become_root: g.become_root,
        },
        config,
        home,
        local_user,
        overrides: overrides(g)?,
        format: g.format,
        color: false,
        verbosity: Verbosity::Normal,
        cancel: None,
        detailed_exitcode: g.detailed_exitcode,
        confirm_timeout: std::time::Duration::from_secs(g.confirm_timeout),
        rollout: None,
        report_to: None,
    }))
}

fn run(cli: &Cli, p: &mut Printer) -> Result<u8, Error> {
    let g = &cli.global;
    if g.report_to.is_some()
        && !matches!(
            cli.command,
            Command::Apply { dry_run: false, .. } | Command::Fix { .. } | Command::Pull { .. }
        )
    {
        return Err(Error::Usage(
            "--report-to records runs: it goes with `fixer apply` (not --dry-run), `fixer fix` or `fixer pull`"
                .into(),
        ));
    }
    let exit = |outcome: &plan::Outcome| {
        if g.detailed_exitcode && outcome.has_changes() {
            2
        } else {
            0
        }
    };
    if let Some(mut fleet) = fleet(g)? {
        fleet.color = p.color();
        fleet.verbosity = p.verbosity();
        if let Command::Apply { dry_run: false, .. } = &cli.command {
            fleet.cancel = cancel_on_signals(p);
        }
        let policy;
        let picked;
        let job = match &cli.command {
            Command::Validate { playbooks } => return validate(playbooks, g, p),
            Command::Plan { playbooks, out } => {
                if out.is_some() {
                    return Err(Error::Usage(
                        "plan --out is not supported for remote hosts yet: plan, then apply the playbook".into(),
                    ));
                }
                picked = picks(playbooks);
                remote::Job::Plan { picks: &picked }
            }
            Command::Apply {
                targets,
                dry_run,
                serial,
                max_fail,
            } => {
                fleet.rollout = serial.clone().map(|serial| remote::Rollout {
                    serial,
                    max_fail: max_fail.unwrap_or_default(),
                });
                if saved_plan(targets)?.is_some() {
                    return Err(Error::Usage(
                        "saved plans are not supported for remote hosts yet: apply the playbook"
                            .into(),
                    ));
                }
                picked = picks(targets);
                remote::Job::Apply {
                    picks: &picked,
                    dry_run: *dry_run,
                }
            }
            Command::Rollback { run, force } => remote::Job::Rollback {
                run: run.as_deref(),
                force: *force,
            },
            Command::History => remote::Job::History,
            Command::Prune {
                keep,
                older_than,
                dry_run,
            } => {
                policy = Prune {
                    keep: *keep,
                    older_than: *older_than,
                    dry_run: *dry_run,
                };
                remote::Job::Prune(&policy)
            }
            Command::Diagnose { .. } => return Err(no_target_for_diagnose()),
            Command::Fix {
                log,
                yes,
                playbooks,
            } => return fix_remote(&mut fleet, g, log, *yes, playbooks, p),
            Command::Completions { shell } => return completions(g, *shell),
            Command::Pull { .. } => {
                return Err(Error::Usage(
                    "`fixer pull` runs on the host it converges (its timer does): it takes no --host or -i"
                        .into(),
                ))
            }
            Command::Report { .. } => {
                return Err(Error::Usage(
                    "`fixer report` reads a results store: it takes no --root, --host or -i".into(),
                ))
            }
            Command::Init { name, to } => return init(g, name.as_deref(), to.as_deref(), p),
            Command::Man { dir } => return man(g, dir.as_deref()),
            Command::Schema { markdown } => return schema(g, *markdown),
        };
        // Bad input fails here, before any host is contacted.
        if let remote::Job::Plan { picks } | remote::Job::Apply { picks, .. } = &job {
            let pb = load(picks, g, None)?;
            fleet.report_to = g.report_to.clone().map(|store| remote::Reporting {
                store,
                playbooks: pb.parts.iter().map(|p| p.name.clone()).collect(),
            });
        }
        return Ok(fleet.run(&job));
    }
    match &cli.command {
        Command::Validate { playbooks } => validate(playbooks, g, p),
        Command::Plan { playbooks, out } => {
            let host = host(g.root.as_deref())?;
            let pb = load(&picks(playbooks), g, Some(&host))?;
            let outcome = plan_and_print(&pb, &host, p)?;
            if let Some(out) = out {
                SavedPlan::new(&pb, host.root(), &outcome)?.write(out)?;
                p.result(&format!(
                    "Saved the plan to {}; apply it with `fixer apply {}`.",
                    out.display(),
                    out.display()
                ));
            }
            Ok(exit(&outcome))
        }
        Command::Apply {
            targets,
            dry_run,
            serial,
            ..
        } => {
            if serial.is_some() {
                return Err(Error::Usage(
                    "--serial rolls out across remote hosts: give them with --host or -i".into(),
                ));
            }
            let (picked, root, expect) = match saved_plan(targets)? {
                Some(saved) => {
                    if !g.vars.is_empty() || !g.var_files.is_empty() {
                        // Ignoring them would apply other values than the
                        // user typed; honouring them, another plan.
                        return Err(Error::Usage(
                            "a saved plan applies the values it was made with: give --var and \
                             --vars to `fixer plan ... --out`, then apply the new plan"
                                .into(),
                        ));
                    }
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
                    (saved.picks(), root, Some(saved.fingerprint))
                }
                None => (picks(targets), g.root.clone(), None),
            };
            let host = host(root.as_deref())?;
            let pb = if expect.is_some() {
                // Exactly the values the plan was made with.
                Playbook::load_for(
                    &picked,
                    &Overrides::default(),
                    Some(&host),
                    &local_context(&host),
                )?
            } else {
                load(&picked, g, Some(&host))?
            };
            if *dry_run {
                let outcome = plan_and_print(&pb, &host, p)?;
                return Ok(exit(&outcome));
            }
            apply_and_print(
                &pb,
                &host,
                expect.as_deref(),
                LocalReport::push(g.report_to.as_deref()),
                p,
            )
        }
        Command::Rollback { run, force } => {
            let host = host(g.root.as_deref())?;
            let (record, report) = match apply::rollback(&host, run.as_deref(), *force) {
                Err(Error::NothingToUndo { message }) => {
                    p.nothing_to_undo(&message);
                    return Ok(0);
                }
                other => other?,
            };
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
        Command::Prune {
            keep,
            older_than,
            dry_run,
        } => {
            let host = host(g.root.as_deref())?;
            let pruned = Store::new(&host).prune(&Prune {
                keep: *keep,
                older_than: *older_than,
                dry_run: *dry_run,
            })?;
            p.pruned(&pruned, *dry_run);
            Ok(0)
        }
        Command::Diagnose { log, playbooks } => diagnose(g, log, playbooks, p),
        Command::Fix {
            log,
            yes,
            playbooks,
        } => fix(g, log, *yes, playbooks, p),
        Command::Completions { shell } => completions(g, *shell),
        Command::Pull {
            repo,
            branch,
            playbooks,
            allowed_signers,
            install_timer,
            every,
            randomized_delay,
        } => pull::pull(
            g,
            &pull::Args {
                repo,
                branch,
                playbooks,
                allowed_signers: allowed_signers.as_deref(),
                install_timer: *install_timer,
                every,
                delay: randomized_delay,
            },
            p,
        ),
        Command::Report { store, html } => {
            refuse_target_options(g, "report")?;
            report::report(store, html.as_deref(), p)
        }
        Command::Init { name, to } => init(g, name.as_deref(), to.as_deref(), p),
        Command::Man { dir } => man(g, dir.as_deref()),
        Command::Schema { markdown } => schema(g, *markdown),
    }
}

/// Each playbook on its own, as files are checked: all of them, each
/// error said; exit 1 if any.
fn validate(paths: &[PathBuf], g: &Global, p: &mut Printer) -> Result<u8, Error> {
    let mut failed = false;
    for path in paths {
        match load(&[Pick::path(path)], g, None) {
            Ok(pb) => p.validated(&pb),
            Err(e) if paths.len() > 1 => {
                p.error(&e);
                failed = true;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(u8::from(failed))
}

fn picks(paths: &[PathBuf]) -> Vec<Pick> {
    paths.iter().map(|p| Pick::path(p)).collect()
}

/// The one saved plan among `targets`, if they are one: a saved plan is
/// applied alone.
fn saved_plan(targets: &[PathBuf]) -> Result<Option<SavedPlan>, Error> {
    let mut saved = None;
    for t in targets {
        if let Some(plan) = SavedPlan::read(t)? {
            if targets.len() > 1 {
                return Err(Error::Usage(format!(
                    "{} is a saved plan: apply it alone, not with playbooks",
                    t.display()
                )));
            }
            saved = Some(plan);
        }
    }
    Ok(saved)
}

/// The playbooks for `host` (none: `validate`), with the command line's
/// values, their discovered variables read from it.
fn load(picked: &[Pick], g: &Global, host: Option<&LocalHost>) -> Result<Playbook, Error> {
    let cx = host.map(local_context).unwrap_or_default();
    Playbook::load_for(
        picked,
        &overrides(g)?,
        host.map(|h| h as &dyn fixer::host::Host),
        &cx,
    )
}

/// Where fixer runs, as a path on this machine's target: the folder
/// itself, or under `--root` the folder inside the root (if it is).
fn local_context(host: &LocalHost) -> fixer::discover::Context {
    let cwd = std::env::current_dir().ok();
    let cwd = match host.root() {
        None => cwd,
        Some(root) => cwd.and_then(|c| {
            c.strip_prefix(root)
                .ok()
                .map(|rest| Path::new("/").join(rest))
        }),
    };
    fixer::discover::Context { cwd }
}

/// Where a local run's result goes (`--report-to`), and what the record
/// says of where the run came from.
struct LocalReport<'a> {
    store: &'a Path,
    source: Source,
    commit: Option<String>,
}

impl<'a> LocalReport<'a> {
    fn push(store: Option<&'a Path>) -> Option<Self> {
        store.map(|store| LocalReport {
            store,
            source: Source::Push,
            commit: None,
        })
    }
}

fn apply_and_print(
    pb: &Playbook,
    host: &LocalHost,
    expect: Option<&str>,
    report: Option<LocalReport<'_>>,
    p: &mut Printer,
) -> Result<u8, Error> {
    p.apply_header(pb, &fixer::host::Host::name(host));
    let cancel = cancel_on_signals(p);
    let opts = apply::ApplyOptions {
        cancel: cancel.as_deref(),
        ..Default::default()
    };
    let started = std::time::SystemTime::now();
    let mut unconfirmed = false;
    let result = apply::apply_with(pb, host, expect, &opts, &mut |ev| match ev {
        Event::Resource(c) => {
            unconfirmed |= c.check && !c.delta.warnings.is_empty();
            p.change(c, true)
        }
        Event::Handler(c) => p.handler(c, true),
        Event::Note(text) => p.note(text),
    });
    if let Ok(outcome) = &result {
        p.applied(outcome, host.root());
    }
    if let Some(report) = report {
        let record = Record {
            commit: report.commit.clone(),
            ..Record::start(&record_host(host), pb, report.source, started)
        };
        let record = match &result {
            Ok(outcome) => record.applied(outcome, unconfirmed),
            Err(e) => record.failed(results::Status::Failed, e),
        };
        put_record(report.store, &record.ended(started), p);
    }
    result.map(|_| 0)
}

/// A store that cannot take the record is a warning: the run is done.
fn put_record(store: &Path, record: &Record, p: &Printer) {
    if let Err(e) = results::Store::new(store).put(record) {
        p.warn(&format!(
            "the run is done, but its result was not recorded: {e}"
        ));
    }
}

/// This machine as the results store names it: its host name, and the
/// image it acted on with --root.
fn record_host(host: &LocalHost) -> String {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|n| n.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    match host.root() {
        Some(root) => format!("{name} (root {})", root.display()),
        None => name,
    }
}

/// `fixer schema [--markdown]`: about the playbook format, no target.
fn schema(g: &Global, markdown: bool) -> Result<u8, Error> {
    refuse_target_options(g, "schema")?;
    let text = if markdown {
        fixer::playbook::reference::markdown()
    } else {
        let mut json = serde_json::to_string_pretty(&fixer::playbook::schema::json_schema())
            .map_err(|e| Error::Usage(format!("cannot print the schema: {e}")))?;
        json.push('\n');
        json
    };
    write_stdout(text.as_bytes())?;
    Ok(0)
}

/// During an apply, the first Ctrl-C (or SIGTERM) asks it to stop before
/// the next change and roll back; a second one ends fixer at once (exit 1),
/// leaving the run interrupted for `fixer rollback`, as a kill would.
fn cancel_on_signals(p: &Printer) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let registered = [SIGINT, SIGTERM].into_iter().try_for_each(|signal| {
        // In this order: the second signal finds the flag already set.
        signal_hook::flag::register_conditional_shutdown(signal, 1, std::sync::Arc::clone(&flag))?;
        signal_hook::flag::register(signal, std::sync::Arc::clone(&flag)).map(drop)
    });
    match registered {
        Ok(()) => Some(flag),
        Err(e) => {
            p.warn(&format!(
                "Ctrl-C will end fixer at once (roll the run back with `fixer rollback`): {e}"
            ));
            None
        }
    }
}

/// `fixer init [NAME] [--to FILE]`: works on this machine's files only.
fn init(g: &Global, name: Option<&str>, to: Option<&Path>, p: &mut Printer) -> Result<u8, Error> {
    refuse_target_options(g, "init")?;
    let dir = fixer::diagnose::default_dirs(None)
        .into_iter()
        .next()
        .ok_or_else(|| Error::Usage("no shipped playbooks found".into()))?;
    let shipped = fixer::scaffold::shipped(&dir)?;
    let Some(name) = name else {
        p.shipped_playbooks(&shipped);
        return Ok(0);
    };
    let Some(from) = shipped.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = shipped.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "no shipped playbook `{name}`; choose one of: {}",
            names.join(", ")
        )));
    };
    let dest = to.map_or_else(|| PathBuf::from(format!("{name}.toml")), Path::to_path_buf);
    let made = fixer::scaffold::init(from, &dest)?;
    p.scaffolded(&made);
    Ok(0)
}

/// `fixer completions SHELL`: about fixer itself, no playbook, no target.
fn completions(g: &Global, shell: clap_complete::Shell) -> Result<u8, Error> {
    refuse_target_options(g, "completions")?;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "fixer", &mut out);
    write_stdout(&out)?;
    Ok(0)
}

/// `fixer man [--dir DIR]`: fixer(1) on stdout, or every page into DIR.
fn man(g: &Global, dir: Option<&Path>) -> Result<u8, Error> {
    refuse_target_options(g, "man")?;
    let cmd = Cli::command();
    match dir {
        Some(dir) => clap_mangen::generate_to(cmd, dir).map_err(|source| Error::WriteLocal {
            path: dir.to_path_buf(),
            source,
        })?,
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|source| Error::WriteLocal {
                    path: "-".into(),
                    source,
                })?;
            write_stdout(&out)?;
        }
    }
    Ok(0)
}

/// Diagnose reads a log on this machine and names playbooks: it never
/// touches a target, so target options are refused rather than ignored.
fn diagnose(g: &Global, log: &Path, dirs: &[PathBuf], p: &mut Printer) -> Result<u8, Error> {
    if g.root.is_some() {
        return Err(no_target_for_diagnose());
    }
    if !g.vars.is_empty() || !g.var_files.is_empty() || g.become_root || g.accept_new_host_keys {
        return Err(Error::Usage(
            "diagnose reads values from the log: --var, --vars, --become and \
             --accept-new-host-keys belong to the `fixer plan` it suggests"
                .into(),
        ));
    }
    let catalog = load_catalog(dirs)?;
    let (name, diagnosis) = read_log(log, &catalog)?;
    p.diagnosis(&name, &diagnosis, &catalog);
    Ok(0)
}

/// The playbooks diagnose knows: `dirs`, or the shipped ones and the
/// user's own.
fn load_catalog(dirs: &[PathBuf]) -> Result<fixer::diagnose::Catalog, Error> {
    let catalog = if dirs.is_empty() {
        let home = LocalHost::new(None).home().ok();
        fixer::diagnose::Catalog::load(&fixer::diagnose::default_dirs(home.as_deref()), false)?
    } else {
        fixer::diagnose::Catalog::load(dirs, true)?
    };
    if catalog.playbooks.is_empty() {
        let dirs: Vec<String> = catalog
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        return Err(Error::Usage(format!(
            "no playbook to diagnose with: none loaded from {} (give a directory with --playbooks)",
            if dirs.is_empty() {
                "any directory".to_string()
            } else {
                dirs.join(", ")
            }
        )));
    }
    Ok(catalog)
}

/// Read and diagnose the log at `log` (`-`: stdin), streamed.
fn read_log(
    log: &Path,
    catalog: &fixer::diagnose::Catalog,
) -> Result<(String, fixer::diagnose::Diagnosis), Error> {
    let (name, input) = if log == Path::new("-") {
        ("standard input".to_string(), fixer::diagnose::Input::Stdin)
    } else {
        (log.display().to_string(), fixer::diagnose::Input::Path(log))
    };
    let diagnosis = fixer::diagnose::read(input, catalog).map_err(|e| match e {
        fixer::diagnose::ReadError::Io(source) => Error::Read {
            path: log.to_path_buf(),
            source,
        },
        other => Error::Usage(format!("{name}: {other}")),
    })?;
    Ok((name, diagnosis))
}

/// `fixer fix`: the playbooks the log calls for, as picks with the values
/// it read (after what `fix` printed of the diagnosis). No remedy, or a
/// log pointing two ways for a value nobody chose, is an error: nothing
/// is planned.
fn fix_picks(
    g: &Global,
    log: &Path,
    dirs: &[PathBuf],
    p: &mut Printer,
) -> Result<Vec<Pick>, Error> {
    let catalog = load_catalog(dirs)?;
    let (name, d) = read_log(log, &catalog)?;
    let chosen = d.chosen();
    if chosen.is_empty() {
        p.diagnosis(&name, &d, &catalog);
        return Err(Error::Usage(format!(
            "nothing to fix: no known remedy in {name}; nothing was planned or changed"
        )));
    }
    let given = overrides(g)?;
    for r in &chosen {
        if let Some(c) = r
            .conflicts
            .iter()
            .find(|c| !given.values.iter().any(|(k, _)| *k == c.name))
        {
            return Err(Error::Usage(format!(
                "{name} points two ways for `{}`: line {} calls for {}={}, line {} for {}={}; \
                 choose with --var {}=... (nothing was planned or changed)",
                r.playbook, c.taken.1, c.name, c.taken.0, c.other.1, c.name, c.other.0, c.name
            )));
        }
    }
    p.fix_header(&name, &d);
    Ok(chosen
        .iter()
        .map(|r| Pick {
            path: r.path.clone(),
            found: r
                .values
                .iter()
                .map(|v| fixer::playbook::Found {
                    name: v.name.clone(),
                    value: serde_json::Value::String(v.value.clone()),
                    origin: fixer::playbook::Origin::Log { line: v.line },
                })
                .collect(),
        })
        .collect())
}

/// Whether to apply what was just planned: `--yes`, or a "y" typed on a
/// terminal. Off a terminal (or with the log on stdin, which is then not
/// the person), only plan.
fn confirmed(yes: bool, log: &Path, p: &Printer, question: &str) -> Result<bool, Error> {
    if yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if log == Path::new("-") || !stdin.is_terminal() || !std::io::stdout().is_terminal() {
        p.result("Planned only: run again with --yes to apply it.");
        return Ok(false);
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    stdin.read_line(&mut answer).map_err(|source| Error::Read {
        path: PathBuf::from("-"),
        source,
    })?;
    let yes = matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes");
    if !yes {
        p.result("Not applied.");
    }
    Ok(yes)
}

/// `fixer fix LOG` on this machine (or `--root`): one plan, shown once,
/// then one run, confirmed by the playbooks' probes.
fn fix(g: &Global, log: &Path, yes: bool, dirs: &[PathBuf], p: &mut Printer) -> Result<u8, Error> {
    if p.format() == Format::Json {
        p.gather_json();
    }
    let result = (|| {
        let picked = fix_picks(g, log, dirs, p)?;
        let host = host(g.root.as_deref())?;
        let pb = load(&picked, g, Some(&host))?;
        let outcome = plan_and_print(&pb, &host, p)?;
        if !outcome.has_changes() {
            p.result("Nothing to change: the target already matches these playbooks; if the error persists, its cause is elsewhere.");
            return Ok(0);
        }
        let question = format!("Apply these changes to {}?", fixer::host::Host::name(&host));
        if !confirmed(yes, log, p, &question)? {
            return Ok(if g.detailed_exitcode { 2 } else { 0 });
        }
        // Exactly what was shown: a target that changed since is refused.
        apply_and_print(
            &pb,
            &host,
            Some(&outcome.fingerprint),
            LocalReport::push(g.report_to.as_deref()),
            p,
        )
    })();
    if p.format() == Format::Json {
        p.emit_gathered(&["diagnosis", "plan", "apply"]);
    }
    result
}

/// `fixer fix LOG --host ...`: diagnosed once here, planned on every host
/// with each host's own values, then (confirmed) applied on every host.
fn fix_remote(
    fleet: &mut remote::Fleet,
    g: &Global,
    log: &Path,
    yes: bool,
    dirs: &[PathBuf],
    p: &mut Printer,
) -> Result<u8, Error> {
    let picked = fix_picks(g, log, dirs, p)?;
    let pb = load(&picked, g, None)?;
    fleet.report_to = g.report_to.clone().map(|store| remote::Reporting {
        store,
        playbooks: pb.parts.iter().map(|p| p.name.clone()).collect(),
    });
    if !yes {
        let asked_for_changes = fleet.detailed_exitcode;
        fleet.detailed_exitcode = true;
        let code = fleet.run(&remote::Job::Plan { picks: &picked });
        fleet.detailed_exitcode = asked_for_changes;
        match code {
            2 => {}
            0 => return Ok(0),
            other => return Ok(other),
        }
        let question = format!(
            "Apply these changes to {}?",
            render::count(fleet.members.len(), "host")
        );
        if !confirmed(false, log, p, &question)? {
            return Ok(if g.detailed_exitcode { 2 } else { 0 });
        }
    }
    fleet.cancel = cancel_on_signals(p);
    Ok(fleet.run(&remote::Job::Apply {
        picks: &picked,
        dry_run: false,
    }))
}

/// Commands about fixer itself refuse target options rather than ignore
/// them.
fn refuse_target_options(g: &Global, command: &str) -> Result<(), Error> {
    if g.root.is_some() || !g.hosts.is_empty() || g.inventory.is_some() {
        return Err(Error::Usage(format!(
            "`fixer {command}` touches no host: it takes no --root, --host or -i"
        )));
    }
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| Error::WriteLocal {
            path: "-".into(),
            source,
        })
}

fn no_target_for_diagnose() -> Error {
    Error::Usage(
        "diagnose reads a log and touches no host: it takes no --root, --host or -i \
         (give them to the `fixer plan` it suggests)"
            .into(),
    )
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

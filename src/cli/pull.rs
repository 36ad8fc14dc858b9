//! `fixer pull REPO`: fetch the playbook repository, apply when the commit
//! is new or the host drifted, remember what it converged to; and
//! `--install-timer`, the systemd units that run it.

use std::path::{Path, PathBuf};

use fixer::error::Error;
use fixer::host::Host as _;
use fixer::pull::{self, Fetch, State};
use fixer::results::{self, Record, Source};

use super::render::Printer;
use super::{
    apply_and_print, host, load, plan_and_print, put_record, record_host, Global, LocalReport,
};

pub struct Args<'a> {
    pub repo: &'a str,
    pub branch: &'a str,
    pub playbooks: &'a [PathBuf],
    pub allowed_signers: Option<&'a Path>,
    pub install_timer: bool,
    pub every: &'a str,
    pub delay: &'a str,
}

/// A repository given as a path is read from where fixer runs, whatever
/// --root says: the repository is not part of the target.
fn url(repo: &str) -> String {
    let is_url = repo.contains("://")
        || (repo.contains(':') && !repo.starts_with('/') && !repo.starts_with('.'));
    if is_url {
        return repo.to_string();
    }
    std::fs::canonicalize(repo)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| repo.to_string())
}

fn under_root(root: Option<&Path>, path: &str) -> PathBuf {
    match root {
        Some(r) => r.join(path.trim_start_matches('/')),
        None => PathBuf::from(path),
    }
}

pub fn pull(g: &Global, a: &Args<'_>, p: &mut Printer) -> Result<u8, Error> {
    if !g.hosts.is_empty() || g.inventory.is_some() {
        return Err(Error::Usage(
            "`fixer pull` runs on the host it converges (its timer does): it takes no --host or -i"
                .into(),
        ));
    }
    let url = url(a.repo);
    let folder = pull::folder(&url, a.branch);
    if a.install_timer {
        return install_timer(g, a, &url, &folder, p);
    }
    let root = g.root.as_deref();
    let base = under_root(root, &format!("{}/{folder}", pull::PULL_DIR));
    let _busy = pull::lock(&base).map_err(|e| Error::Usage(e.to_string()))?;
    let state_path = base.join("state.json");
    let mut state =
        State::load(&state_path, &url, a.branch).map_err(|e| Error::Usage(e.to_string()))?;
    let home = fixer::host::LocalHost::new(None).home().ok();
    let fetch = Fetch {
        allowed_signers: a.allowed_signers.map(Path::to_path_buf),
        ..Fetch::with_user_keys(&url, a.branch, home.as_deref())
    };
    let started = std::time::SystemTime::now();
    let target = host(root)?;
    let who = record_host(&target);
    let finish = |state: &mut State, status: &str, commit: Option<&str>, error: Option<String>| {
        state.last_status = Some(status.into());
        state.last_commit = commit.map(str::to_string);
        state.last_error = error;
        state.last_at =
            Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
        state
            .save(&state_path)
            .map_err(|e| Error::Usage(e.to_string()))
    };
    let report = |record: &Record, p: &Printer| {
        if let Some(store) = &g.report_to {
            put_record(store, &record.clone().ended(started), p);
        }
    };
    // Nothing of the target is touched before the playbooks load.
    let commit = match pull::fetch(&fetch, &base.join("repo")) {
        Ok(c) => c,
        Err(e) => {
            let status = if matches!(e, pull::PullError::Unsigned { .. }) {
                results::Status::Failed
            } else {
                results::Status::Unreachable
            };
            finish(&mut state, status.label(), None, Some(e.to_string()))?;
            let record = Record {
                commit: state.converged.clone(),
                status,
                error: Some(e.to_string()),
                ..Record::of(&who, Vec::new(), Source::Pull, started)
            };
            report(&record, p);
            let kept = state
                .converged
                .as_deref()
                .map_or("none yet".to_string(), |c| c.to_string());
            return Err(Error::Usage(format!(
                "{e}; nothing was applied; the host stays at its last converged commit ({kept})"
            )));
        }
    };
    let checkout = base.join("repo");
    let files: Vec<PathBuf> = if a.playbooks.is_empty() {
        pull::playbooks(&checkout)
    } else {
        a.playbooks.iter().map(|p| checkout.join(p)).collect()
    };
    if files.is_empty() {
        finish(
            &mut state,
            "failed",
            Some(&commit),
            Some("no playbooks".into()),
        )?;
        return Err(Error::Usage(format!(
            "commit {commit} of {url} has no playbooks (*.toml in playbooks/ or the top folder); nothing was applied"
        )));
    }
    let picked = super::picks(&files);
    let pb = match load(&picked, g, Some(&target)) {
        Ok(pb) => pb,
        Err(e) => {
            finish(&mut state, "failed", Some(&commit), Some(e.to_string()))?;
            let names = files
                .iter()
                .filter_map(|f| f.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            let record = Record {
                commit: Some(commit.clone()),
                status: results::Status::Failed,
                error: Some(e.to_string()),
                ..Record::of(&who, names, Source::Pull, started)
            };
            report(&record, p);
            p.error(&e);
            return Err(Error::Usage(format!(
                "commit {commit} does not load; nothing was applied; the host stays at {}",
                state
                    .converged
                    .as_deref()
                    .unwrap_or("no converged commit yet")
            )));
        }
    };
    // The commit this host converged to, unchanged: apply only on drift.
    if state.converged.as_deref() == Some(commit.as_str()) {
        let outcome = plan_and_print(&pb, &target, p)?;
        if !outcome.has_changes() {
            p.result(&format!("Up to date at {commit}: nothing drifted."));
            finish(&mut state, "ok", Some(&commit), None)?;
            report(
                &Record {
                    commit: Some(commit.clone()),
                    changes: Some(0),
                    ..Record::start(&who, &pb, Source::Pull, started)
                },
                p,
            );
            return Ok(0);
        }
        p.result(&format!(
            "The host drifted from {commit}: applying it again."
        ));
    } else {
        p.result(&format!(
            "Applying {commit} of {url} (was: {}).",
            state.converged.as_deref().unwrap_or("never converged")
        ));
    }
    let report = g.report_to.as_deref().map(|store| LocalReport {
        store,
        source: Source::Pull,
        commit: Some(commit.clone()),
    });
    match apply_and_print(&pb, &target, None, report, p) {
        Ok(code) => {
            state.converged = Some(commit.clone());
            finish(&mut state, "changed", Some(&commit), None)?;
            Ok(code)
        }
        Err(e) => {
            // Rolled back: the next tick tries again.
            finish(&mut state, "failed", Some(&commit), Some(e.to_string()))?;
            Err(e)
        }
    }
}

fn install_timer(
    g: &Global,
    a: &Args<'_>,
    url: &str,
    folder: &str,
    p: &Printer,
) -> Result<u8, Error> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Usage(format!("cannot find fixer's own path: {e}")))?;
    let mut argv = vec![
        exe.display().to_string(),
        "pull".into(),
        url.into(),
        "--branch".into(),
        a.branch.into(),
    ];
    for pb in a.playbooks {
        argv.extend(["--playbook".into(), pb.display().to_string()]);
    }
    if let Some(s) = a.allowed_signers {
        argv.extend(["--allowed-signers".into(), s.display().to_string()]);
    }
    if let Some(store) = &g.report_to {
        argv.extend(["--report-to".into(), store.display().to_string()]);
    }
    for v in &g.vars {
        argv.extend(["--var".into(), v.clone()]);
    }
    for f in &g.var_files {
        argv.extend(["--vars".into(), f.display().to_string()]);
    }
    let (service, timer) =
        pull::units(&argv, url, a.branch, a.every, a.delay).map_err(Error::Usage)?;
    let dir = under_root(g.root.as_deref(), "/etc/systemd/system");
    std::fs::create_dir_all(&dir).map_err(|source| Error::WriteLocal {
        path: dir.clone(),
        source,
    })?;
    let name = format!("fixer-pull-{folder}");
    for (ext, text) in [("service", &service), ("timer", &timer)] {
        let path = dir.join(format!("{name}.{ext}"));
        std::fs::write(&path, text).map_err(|source| Error::WriteLocal {
            path: path.clone(),
            source,
        })?;
        p.result(&format!("Wrote {}.", path.display()));
    }
    if g.root.is_some() {
        p.result(&format!(
            "In the image: enable it on first boot with `systemctl enable --now {name}.timer`."
        ));
        return Ok(0);
    }
    let status = std::process::Command::new("systemctl")
        .args(["daemon-reload"])
        .status()
        .and_then(|_| {
            std::process::Command::new("systemctl")
                .args(["enable", "--now", &format!("{name}.timer")])
                .status()
        })
        .map_err(|e| Error::Usage(format!("cannot run systemctl: {e}")))?;
    if !status.success() {
        return Err(Error::Usage(format!(
            "systemctl enable --now {name}.timer failed; the unit files are written"
        )));
    }
    p.result(&format!("Enabled {name}.timer."));
    Ok(0)
}

//! The results store: one JSON record per host per run, in a directory
//! that many controllers and hosts write to at once (`--report-to DIR`),
//! and the fleet's state read back from it (`fixer report`).
//!
//! Each record is its own file, created under a name no other writer can
//! pick (host, time, process, random suffix) and renamed into place whole,
//! so writers never conflict and a reader never sees half a record. A
//! directory on a shared mount, or a git branch (`results/git.rs`),
//! gathers a fleet.

mod git;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `schema` of every record this version writes.
pub const SCHEMA: &str = "fixer-result/1";

/// How a host's run went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing needed changing.
    Ok,
    /// Changes were applied, and every probe passed.
    Changed,
    /// Changes were applied and kept, but a probe did not pass.
    Unconfirmed,
    /// The run failed (and was rolled back, see `rolled_back`).
    Failed,
    /// The host could not be reached.
    Unreachable,
    /// A rollout stopped before this host's batch: nothing was done.
    NotReached,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Unconfirmed => "unconfirmed",
            Status::Failed => "failed",
            Status::Unreachable => "unreachable",
            Status::NotReached => "not reached",
        }
    }

    fn converged(self) -> bool {
        matches!(self, Status::Ok | Status::Changed)
    }
}

/// Who started the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `fixer apply` (or `fix`) from a controller.
    Push,
    /// `fixer pull` on the host itself.
    Pull,
}

/// One host's run, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Always `fixer-result/1`.
    pub schema: String,
    /// The host as the command named it (`web1`, `deploy@10.0.0.5`).
    pub host: String,
    /// The playbooks of the run, by name, in the order applied.
    pub playbooks: Vec<String>,
    /// The commit of the playbook repository applied (pull mode), if known.
    pub commit: Option<String>,
    pub source: Source,
    pub status: Status,
    /// Resources changed; null when the host was not reached or planning
    /// failed.
    pub changes: Option<u64>,
    /// For a failed run: whether its rollback completed.
    pub rolled_back: Option<bool>,
    /// The run id on the host (for `fixer rollback ID`), when it changed
    /// something.
    pub run: Option<String>,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// What went wrong, as fixer printed it.
    pub error: Option<String>,
    /// The fixer version that wrote the record.
    pub fixer: String,
}

impl Record {
    /// A run of `playbook` on `host` that started at `started`; what it
    /// did is filled in by [`Record::applied`] or [`Record::failed`].
    pub fn start(
        host: &str,
        playbook: &crate::playbook::Playbook,
        source: Source,
        started: std::time::SystemTime,
    ) -> Record {
        let names = playbook.parts.iter().map(|p| p.name.clone()).collect();
        Record::of(host, names, source, started)
    }

    /// The same, for playbooks known by name only (they did not load, or
    /// loaded elsewhere).
    pub fn of(
        host: &str,
        playbooks: Vec<String>,
        source: Source,
        started: std::time::SystemTime,
    ) -> Record {
        Record {
            schema: SCHEMA.into(),
            host: host.into(),
            playbooks,
            commit: None,
            source,
            status: Status::Ok,
            changes: None,
            rolled_back: None,
            run: None,
            started: humantime::format_rfc3339_millis(started).to_string(),
            duration_ms: 0,
            error: None,
            fixer: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// The run finished: `unconfirmed` when a probe did not pass.
    pub fn applied(self, outcome: &crate::apply::Outcome, unconfirmed: bool) -> Record {
        let s = &outcome.summary;
        let changes = (s.add + s.change + s.remove) as u64;
        Record {
            status: if unconfirmed {
                Status::Unconfirmed
            } else if changes > 0 {
                Status::Changed
            } else {
                Status::Ok
            },
            changes: Some(changes),
            run: (outcome.run.changes > 0).then(|| outcome.run.id.clone()),
            ..self
        }
    }

    /// The run (or what came before it: loading, connecting) failed.
    pub fn failed(self, status: Status, error: &crate::error::Error) -> Record {
        let (run, rolled_back) = match error {
            crate::error::Error::ApplyFailed { run, rollback, .. } => {
                (Some(run.clone()), Some(rollback.complete()))
            }
            _ => (None, None),
        };
        Record {
            status,
            run,
            rolled_back,
            error: Some(error.to_string()),
            ..self
        }
    }

    /// Stamp how long it took since `started`.
    pub fn ended(self, started: std::time::SystemTime) -> Record {
        let ms = started.elapsed().map_or(0, |d| d.as_millis());
        Record {
            duration_ms: u64::try_from(ms).unwrap_or(u64::MAX),
            ..self
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("results store {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("results store {}: not a folder", path.display())]
    NotADir { path: PathBuf },
    #[error("results store {url} (branch {branch}): {message}")]
    Git {
        url: String,
        branch: String,
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A host name as a file name: what the store's layout can hold.
fn folder_name(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.trim_start_matches('.') {
        "" => "_".to_string(),
        _ => name,
    }
}

/// Where records go: a directory, `DIR/<host>/<started>-<unique>.json`,
/// or the same layout on a git branch (`git+URL[#BRANCH]`, see
/// `results/git.rs`).
pub struct Store {
    at: At,
}

enum At {
    Dir(PathBuf),
    Git(git::GitStore),
}

/// What a store holds: the records that read, and the files that did not.
#[derive(Debug, Default)]
pub struct Contents {
    pub records: Vec<Record>,
    pub unreadable: Vec<(PathBuf, String)>,
}

/// One record file's bytes as a record of this schema.
fn parse(bytes: &[u8]) -> Result<Record, String> {
    let r = serde_json::from_slice::<Record>(bytes).map_err(|e| e.to_string())?;
    if r.schema == SCHEMA {
        Ok(r)
    } else {
        Err(format!("schema `{}`, not {SCHEMA}", r.schema))
    }
}

/// The part of a record's file name no other writer picks: its start,
/// this process, and a random part.
fn unique_name(record: &Record) -> String {
    use std::hash::BuildHasher as _;
    let stamp: String = record
        .started
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let random = std::hash::RandomState::new().hash_one((&record.host, &record.started));
    format!("{stamp}-{}-{random:016x}.json", std::process::id())
}

impl Store {
    /// A store spec as `--report-to` takes it: `git+URL[#BRANCH]`, or a
    /// directory.
    pub fn new(spec: impl Into<PathBuf>) -> Store {
        let spec: PathBuf = spec.into();
        let at = match spec.to_str().and_then(|s| s.strip_prefix(git::PREFIX)) {
            Some(url) => At::Git(git::GitStore::new(url)),
            None => At::Dir(spec),
        };
        Store { at }
    }

    /// Add `record`, durably; the file it went to (inside the branch, for
    /// a git store).
    pub fn put(&self, record: &Record) -> Result<PathBuf, StoreError> {
        let folder = folder_name(&record.host);
        let name = unique_name(record);
        match &self.at {
            At::Dir(dir) => put_file(dir, &folder, &name, record),
            At::Git(git) => git.put(record, &folder, &name),
        }
    }

    /// Every record, oldest first; files that are not records are listed
    /// apart, never fatal: one bad writer must not hide the fleet.
    pub fn read(&self) -> Result<Contents, StoreError> {
        let mut out = match &self.at {
            At::Dir(dir) => read_dir(dir)?,
            At::Git(git) => git.read()?,
        };
        out.records.sort_by(|a, b| {
            time(&a.started)
                .cmp(&time(&b.started))
                .then(a.host.cmp(&b.host))
        });
        out.unreadable.sort();
        Ok(out)
    }
}

fn put_file(dir: &Path, folder: &str, name: &str, record: &Record) -> Result<PathBuf, StoreError> {
    if dir.exists() && !dir.is_dir() {
        return Err(StoreError::NotADir {
            path: dir.to_path_buf(),
        });
    }
    let folder = dir.join(folder);
    std::fs::create_dir_all(&folder).map_err(io(&folder))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".new-")
        .suffix(".json")
        .tempfile_in(&folder)
        .map_err(io(&folder))?;
    let text = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Io {
        path: folder.clone(),
        source: std::io::Error::other(e),
    })?;
    tmp.write_all(&text)
        .and_then(|()| tmp.write_all(b"\n"))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io(tmp.path()))?;
    let path = folder.join(name);
    // No clobbering: two writers that picked one name both learn it.
    tmp.persist_noclobber(&path).map_err(|e| StoreError::Io {
        path: path.clone(),
        source: e.error,
    })?;
    std::fs::File::open(&folder)
        .and_then(|d| d.sync_all())
        .map_err(io(&folder))?;
    Ok(path)
}

fn read_dir(dir: &Path) -> Result<Contents, StoreError> {
    let mut out = Contents::default();
    let hosts = std::fs::read_dir(dir).map_err(io(dir))?;
    for host in hosts {
        let host = host.map_err(io(dir))?;
        if !host.file_type().map_err(io(&host.path()))?.is_dir() {
            continue;
        }
        let folder = host.path();
        for file in std::fs::read_dir(&folder).map_err(io(&folder))? {
            let path = file.map_err(io(&folder))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| parse(&b))
            {
                Ok(r) => out.records.push(r),
                Err(e) => out.unreadable.push((path, e)),
            }
        }
    }
    Ok(out)
}

fn time(rfc3339: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(rfc3339).ok()
}

/// Where a host stands, from its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Its last run succeeded with nothing to change, at the newest commit.
    Converged,
    /// Its last run succeeded, but had to change what an earlier
    /// successful run of the same playbooks at the same commit had already
    /// set: something (or someone) changed the host in between.
    Drifted,
    /// Its last successful run applied an older commit than the newest
    /// one seen in the store.
    Behind,
    /// Its last run failed, or was not confirmed by its probes.
    Failing,
    /// A rollout stopped before its last run reached it.
    NotReached,
    /// Its last run changed it to playbooks (or a commit) it had not
    /// converged to before.
    Changed,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Converged => "converged",
            State::Drifted => "drifted",
            State::Behind => "behind",
            State::Failing => "failing",
            State::NotReached => "not reached",
            State::Changed => "changed",
        }
    }
}

/// One row of the fleet table.
#[derive(Debug)]
pub struct HostState<'a> {
    pub host: &'a str,
    pub last: &'a Record,
    pub state: State,
    /// Runs of this host in the store.
    pub runs: usize,
}

/// The fleet as the store shows it.
pub struct Fleet<'a> {
    pub hosts: Vec<HostState<'a>>,
    /// The commit of the newest record that names one.
    pub newest_commit: Option<&'a str>,
}

/// Each host's state from `records` (oldest first).
pub fn fleet(records: &[Record]) -> Fleet<'_> {
    let newest_commit = records.iter().rev().find_map(|r| r.commit.as_deref());
    let mut by_host: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_host.entry(r.host.as_str()).or_default().push(r);
    }
    let hosts = by_host
        .into_iter()
        .filter_map(|(host, runs)| {
            let last = *runs.last()?;
            let last_good = runs.iter().rev().find(|r| r.status.converged());
            let state = if last.status == Status::NotReached {
                State::NotReached
            } else if !last.status.converged() {
                State::Failing
            } else if newest_commit.is_some()
                && last_good.and_then(|r| r.commit.as_deref()) != newest_commit
            {
                State::Behind
            } else if last.status == Status::Changed {
                let before = runs[..runs.len() - 1].iter().any(|r| {
                    r.status.converged() && r.playbooks == last.playbooks && r.commit == last.commit
                });
                if before {
                    State::Drifted
                } else {
                    State::Changed
                }
            } else {
                State::Converged
            };
            Some(HostState {
                host,
                last,
                state,
                runs: runs.len(),
            })
        })
        .collect();
    Fleet {
        hosts,
        newest_commit,
    }
}

/// The JSON Schema of a record (docs/results.schema.json).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Record)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(host: &str, started: &str, status: Status, commit: Option<&str>) -> Record {
        Record {
            schema: SCHEMA.into(),
            host: host.into(),
            playbooks: vec!["p".into()],
            commit: commit.map(str::to_string),
            source: Source::Pull,
            status,
            changes: Some(u64::from(status == Status::Changed)),
            rolled_back: None,
            run: None,
            started: started.into(),
            duration_ms: 10,
            error: None,
            fixer: "0".into(),
        }
    }

    #[test]
    fn states_from_records() {
        let t = |m: u32| format!("2026-12-01T10:{m:02}:00Z");
        let records = vec![
            record("a", &t(0), Status::Changed, Some("c1")),
            record("a", &t(5), Status::Changed, Some("c2")),
            record("b", &t(1), Status::Changed, Some("c1")),
            record("b", &t(6), Status::Ok, Some("c1")),
            record("c", &t(2), Status::Ok, Some("c2")),
            record("c", &t(7), Status::Failed, Some("c2")),
            record("d", &t(3), Status::Changed, Some("c2")),
            record("e", &t(4), Status::Ok, Some("c2")),
            record("e", &t(8), Status::Changed, Some("c2")),
        ];
        let f = fleet(&records);
        assert_eq!(f.newest_commit, Some("c2"));
        let states: Vec<(&str, State)> = f.hosts.iter().map(|h| (h.host, h.state)).collect();
        assert_eq!(
            states,
            [
                ("a", State::Changed),
                ("b", State::Behind),
                ("c", State::Failing),
                ("d", State::Changed),
                ("e", State::Drifted),
            ]
        );
    }

    #[test]
    fn writers_never_collide_and_bad_files_are_listed() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = Store::new(dir.path().join("store"));
        let r = record("deploy@[::1]:22", "2026-12-01T10:00:00Z", Status::Ok, None);
        let a = store.put(&r)?;
        let b = store.put(&r)?;
        assert_ne!(a, b);
        assert!(
            a.starts_with(dir.path().join("store/deploy____1__22")),
            "{a:?}"
        );
        std::fs::write(dir.path().join("store/deploy____1__22/junk.json"), "{")?;
        let got = store.read()?;
        assert_eq!(got.records, vec![r.clone(), r]);
        assert_eq!(got.unreadable.len(), 1);
        // A file where the store should be is refused, naming it.
        std::fs::write(dir.path().join("file"), "")?;
        let e = Store::new(dir.path().join("file")).put(&record("x", "t", Status::Ok, None));
        assert!(matches!(e, Err(StoreError::NotADir { .. })));
        Ok(())
    }
}

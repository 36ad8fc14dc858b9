//! A results store on a git branch: `--report-to git+URL[#BRANCH]`.
//!
//! Each record is a commit adding one file, `HOST/NAME.json`, on top of the
//! branch as fetched, pushed as a fast-forward. Writers never touch each
//! other's files, so when a push is refused because another writer got in
//! first, the same file is committed again on the new tip and pushed again
//! (with a random pause): no merge, no conflict. A local bare repository
//! per store (under the user's cache folder, locked while in use) keeps
//! each push to the objects that are new.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Contents, Record, StoreError};
use crate::pull::{self, Fetch};

/// Where `git+` store specs start.
pub const PREFIX: &str = "git+";
/// The branch when the spec names none.
pub const DEFAULT_BRANCH: &str = "fixer-results";
/// Pushes tried before giving up when other writers keep winning.
const ATTEMPTS: u32 = 30;

/// The local repository's lock, held while it is used.
type Held = nix::fcntl::Flock<std::fs::File>;

pub struct GitStore {
    fetch: Fetch,
    /// The local bare repository.
    cache: PathBuf,
}

impl GitStore {
    /// `URL[#BRANCH]` (without the `git+`).
    pub fn new(spec: &str) -> GitStore {
        let (url, branch) = match spec.rsplit_once('#') {
            Some((url, branch)) if !branch.is_empty() => (url, branch),
            _ => (spec.trim_end_matches('#'), DEFAULT_BRANCH),
        };
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home.as_ref().map(|h| h.join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        GitStore {
            cache: base.join("fixer/results").join(pull::folder(url, branch)),
            fetch: Fetch::with_user_keys(url, branch, home.as_deref()),
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::Git {
            url: self.fetch.url.clone(),
            branch: self.fetch.branch.clone(),
            message: message.to_string(),
        }
    }

    fn git(&self, e: git2::Error) -> StoreError {
        self.error(pull::transfer_message(&self.fetch, &e))
    }

    /// The store's repository when it is on this machine (`file://` or a
    /// path), where pushes need [`lock`].
    fn local_repo(&self) -> Option<PathBuf> {
        let url = &self.fetch.url;
        match url.strip_prefix("file://") {
            Some(path) => Some(PathBuf::from(path)),
            None => url.starts_with('/').then(|| PathBuf::from(url)),
        }
    }

    /// The local repository, held for this process alone.
    fn open(&self) -> Result<(git2::Repository, Held), StoreError> {
        std::fs::create_dir_all(&self.cache).map_err(|e| self.error(e))?;
        // Blocks: another run on this machine is pushing its own record.
        let busy = lock(&self.cache.join("fixer.lock")).map_err(|e| self.error(e))?;
        let repo = match git2::Repository::open_bare(&self.cache) {
            Ok(r) => r,
            Err(_) => git2::Repository::init_bare(&self.cache).map_err(|e| self.git(e))?,
        };
        Ok((repo, busy))
    }

    /// The branch's newest commit, fetched; `None` if it has none yet.
    fn tip<'r>(&self, repo: &'r git2::Repository) -> Result<Option<git2::Commit<'r>>, StoreError> {
        let tracking = format!("refs/remotes/origin/{}", self.fetch.branch);
        let mut remote = repo
            .remote_anonymous(&self.fetch.url)
            .map_err(|e| self.git(e))?;
        let mut opts = git2::FetchOptions::new();
        opts.remote_callbacks(pull::callbacks(&self.fetch));
        remote
            .fetch(
                &[format!("+refs/heads/{}:{tracking}", self.fetch.branch)],
                Some(&mut opts),
                None,
            )
            .map_err(|e| self.git(e))?;
        // A branch the remote does not have yet leaves no tracking ref.
        let exists = remote
            .list()
            .map_err(|e| self.git(e))?
            .iter()
            .any(|h| h.name() == format!("refs/heads/{}", self.fetch.branch));
        if !exists {
            return Ok(None);
        }
        repo.find_reference(&tracking)
            .and_then(|r| r.peel_to_commit())
            .map(Some)
            .map_err(|e| self.git(e))
    }

    /// Commit `content` as `folder/name` on the fetched tip and push it;
    /// `Ok(false)` when another writer moved the branch first.
    fn try_put(
        &self,
        repo: &git2::Repository,
        folder: &str,
        name: &str,
        content: &[u8],
        message: &str,
    ) -> Result<bool, StoreError> {
        let git = |e| self.git(e);
        let parent = self.tip(repo)?;
        let base = parent.as_ref().map(|c| c.tree()).transpose().map_err(git)?;
        let host_tree = match base.as_ref().and_then(|t| t.get_name(folder)) {
            Some(entry) => Some(
                entry
                    .to_object(repo)
                    .and_then(|o| o.peel_to_tree())
                    .map_err(git)?,
            ),
            None => None,
        };
        let blob = repo.blob(content).map_err(git)?;
        let mut files = repo.treebuilder(host_tree.as_ref()).map_err(git)?;
        files.insert(name, blob, 0o100644).map_err(git)?;
        let files = files.write().map_err(git)?;
        let mut root = repo.treebuilder(base.as_ref()).map_err(git)?;
        root.insert(folder, files, 0o040000).map_err(git)?;
        let tree = repo.find_tree(root.write().map_err(git)?).map_err(git)?;
        let who = git2::Signature::now("fixer", "fixer@localhost").map_err(git)?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let commit = repo
            .commit(None, &who, &who, message, &tree, &parents)
            .map_err(git)?;
        let local = format!("refs/heads/{}", self.fetch.branch);
        repo.reference(&local, commit, true, "fixer: record")
            .map_err(git)?;
        let refused = std::rc::Rc::new(std::cell::Cell::new(false));
        let seen = refused.clone();
        let mut callbacks = pull::callbacks(&self.fetch);
        // The server's answer for the ref: a message means refused.
        callbacks.push_update_reference(move |_, status| {
            seen.set(status.is_some());
            Ok(())
        });
        let mut opts = git2::PushOptions::new();
        opts.remote_callbacks(callbacks);
        let mut remote = repo.remote_anonymous(&self.fetch.url).map_err(git)?;
        // git's receive-pack moves the branch only if it is still where
        // the push saw it; libgit2 pushing to a repository on this machine
        // checks, then moves, so two writers could both win and one record
        // vanish (seen with 8 at once). They take turns on a lock there.
        let _turn = match self.local_repo() {
            Some(dir) => Some(lock(&dir.join("fixer-results.lock")).map_err(|e| self.error(e))?),
            None => None,
        };
        match remote.push(&[format!("{local}:{local}")], Some(&mut opts)) {
            Ok(()) => Ok(!refused.get()),
            // Another writer's commit is the tip now: not ours to merge.
            Err(e)
                if e.code() == git2::ErrorCode::NotFastForward || e.message().contains("fast") =>
            {
                Ok(false)
            }
            Err(e) => Err(git(e)),
        }
    }

    pub fn put(&self, record: &Record, folder: &str, name: &str) -> Result<PathBuf, StoreError> {
        let mut text = serde_json::to_vec_pretty(record).map_err(|e| self.error(e))?;
        text.push(b'\n');
        let message = format!(
            "{}: {} {}",
            record.host,
            record.status.label(),
            record.started
        );
        let (repo, _busy) = self.open()?;
        for attempt in 0..ATTEMPTS {
            if self.try_put(&repo, folder, name, &text, &message)? {
                return Ok(PathBuf::from(folder).join(name));
            }
            // Writers that lost together should not collide again.
            let spread = 20 + u64::from(attempt) * 20;
            std::thread::sleep(Duration::from_millis(jitter(spread)));
        }
        Err(self.error(format!(
            "other writers moved the branch {ATTEMPTS} times in a row; the record was not added"
        )))
    }

    /// Every record on the branch's newest commit.
    pub fn read(&self) -> Result<Contents, StoreError> {
        let (repo, _busy) = self.open()?;
        let tip = self.tip(&repo)?.ok_or_else(|| {
            self.error("the branch does not exist yet: no run has reported to it")
        })?;
        let tree = tip.tree().map_err(|e| self.git(e))?;
        let mut out = Contents::default();
        for host in tree.iter() {
            let (Ok(folder), Some(git2::ObjectType::Tree)) = (host.name(), host.kind()) else {
                continue;
            };
            let files = host
                .to_object(&repo)
                .and_then(|o| o.peel_to_tree())
                .map_err(|e| self.git(e))?;
            for file in files.iter() {
                let Ok(name) = file.name() else { continue };
                if name.starts_with('.') || !name.ends_with(".json") {
                    continue;
                }
                let path = Path::new(folder).join(name);
                let bytes = file
                    .to_object(&repo)
                    .and_then(|o| o.peel_to_blob())
                    .map(|b| b.content().to_vec())
                    .map_err(|e| e.message().to_string());
                match bytes.and_then(|b| super::parse(&b)) {
                    Ok(r) => out.records.push(r),
                    Err(e) => out.unreadable.push((path, e)),
                }
            }
        }
        Ok(out)
    }
}

/// Wait for and take an exclusive lock on the file `path`.
fn lock(path: &Path) -> Result<Held, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("{}: {e}", path.display()))
}

/// A pause of up to `max_ms`, different in every process and call.
fn jitter(max_ms: u64) -> u64 {
    use std::hash::BuildHasher as _;
    std::hash::RandomState::new().hash_one(std::process::id()) % max_ms.max(1)
}

//! The N-file desired state that `apply` and `compare` measure: file `i`
//! at `data/dNN/fNNNNN.txt` (in one of `DIRS` directories), two short
//! lines, mode 0640, and the floor that writes it the cheapest safe way.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Result;

pub const DIRS: usize = 32;

pub fn content(i: usize) -> String {
    format!("line one of file {i}\nsecond line\n")
}

/// File `i`, relative to the target's root.
pub fn rel(i: usize) -> String {
    format!("data/d{:02}/f{i:05}.txt", i % DIRS)
}

/// The fixer playbook of `n` files, written into `dir` as `file`.
pub fn fixer_playbook(dir: &Path, file: &str, n: usize) -> Result<PathBuf> {
    let mut text = String::from("[playbook]\nname = \"bench\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "\n[[resource]]\ntype = \"file\"\npath = \"/{}\"\ncontent = {:?}\nmode = \"0640\"\n",
            rel(i),
            content(i)
        ));
    }
    let p = dir.join(file);
    std::fs::write(&p, text)?;
    Ok(p)
}

/// The floor: the same files written in-process by a plain loop of write,
/// fsync, chmod and rename.
pub fn floor(root: &Path, n: usize) -> Result<Duration> {
    let t0 = Instant::now();
    for i in 0..n {
        let path = root.join(rel(i));
        let dir = path.parent().ok_or("no parent")?;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".tmp-{i}"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content(i).as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(t0.elapsed())
}

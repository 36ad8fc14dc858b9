//! `fixer init`: a new playbook started from a shipped one, ready to edit.
//!
//! The copy is self-contained: a template the shipped playbook reads from
//! the shared `templates/` folder (`../templates/netplan/static.yaml.hbs`)
//! is copied next to the new playbook and the reference rewritten, so the
//! user can edit both and move the folder. The result is loaded before
//! anything is written, and nothing that exists is overwritten.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::playbook::{Overrides, Playbook};

/// A shipped playbook: its name (file stem) and what it fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped {
    pub name: String,
    pub description: Option<String>,
    pub path: PathBuf,
}

/// The playbooks in `dir` that load, by name.
pub fn shipped(dir: &Path) -> Result<Vec<Shipped>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let pb = Playbook::load(&path, &Overrides::default())?;
        out.push(Shipped {
            name: name.to_string(),
            description: pb.description,
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What `init` wrote.
#[derive(Debug)]
pub struct Scaffold {
    pub playbook: PathBuf,
    pub templates: Vec<PathBuf>,
}

/// Write `dest` (a new playbook file) from the shipped playbook `from`,
/// copying the templates it reads into `templates/` beside `dest`.
pub fn init(from: &Shipped, dest: &Path) -> Result<Scaffold, Error> {
    let text = std::fs::read_to_string(&from.path).map_err(|source| Error::Read {
        path: from.path.clone(),
        source,
    })?;
    let shipped_dir = from.path.parent().unwrap_or(Path::new("."));
    let dest_dir = dest.parent().unwrap_or(Path::new("."));
    let mut out = String::with_capacity(text.len());
    let mut copies: Vec<(PathBuf, PathBuf)> = Vec::new();
    for line in text.split_inclusive('\n') {
        match template_reference(line) {
            Some((before, reference, after)) if reference.starts_with("../") => {
                let source = shipped_dir.join(reference);
                let relative = Path::new(reference)
                    .strip_prefix("..")
                    .unwrap_or(Path::new(reference));
                copies.push((source, dest_dir.join(relative)));
                out.push_str(before);
                out.push_str(&relative.display().to_string());
                out.push_str(after);
            }
            _ => out.push_str(line),
        }
    }
    let header = format!(
        "# Started from the shipped playbook `{}` (fixer init); edit it to fit.\n",
        from.name
    );
    let out = format!("{header}{out}");

    for target in std::iter::once(dest).chain(copies.iter().map(|(_, d)| d.as_path())) {
        if target.exists() {
            return Err(Error::Usage(format!(
                "{} exists: fixer init never overwrites (choose another path)",
                target.display()
            )));
        }
    }
    // Load the result from a scratch folder laid out like the destination
    // before writing anything there.
    let scratch = tempfile::tempdir().map_err(|source| Error::WriteLocal {
        path: std::env::temp_dir(),
        source,
    })?;
    let scratch_playbook = scratch.path().join("playbook.toml");
    // Everything made at the destination, newest last, so that a failure
    // part-way (a full disk) takes it all back: init never overwrites, so
    // none of it was there before.
    let made = std::cell::RefCell::new(Vec::<PathBuf>::new());
    let write = |path: &Path, bytes: &[u8]| -> Result<(), Error> {
        let missing: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .collect();
        // One level at a time, each recorded once made, so that a failure
        // half-way still knows what to take back.
        for dir in missing.into_iter().rev() {
            std::fs::create_dir(dir).map_err(|source| Error::WriteLocal {
                path: dir.to_path_buf(),
                source,
            })?;
            made.borrow_mut().push(dir.to_path_buf());
        }
        // Recorded before writing: a write that fails (a full disk) may
        // already have created the file.
        made.borrow_mut().push(path.to_path_buf());
        std::fs::File::create(path)
            .and_then(|mut file| {
                // Where a full disk fails: the file exists, its bytes do not.
                crate::failpoint::check("write")?;
                std::io::Write::write_all(&mut file, bytes)
            })
            .map_err(|source| Error::WriteLocal {
                path: path.to_path_buf(),
                source,
            })
    };
    let mut templates = Vec::new();
    let mut contents = Vec::new();
    for (source, target) in &copies {
        let bytes = std::fs::read(source).map_err(|source_err| Error::Read {
            path: source.clone(),
            source: source_err,
        })?;
        let relative = target.strip_prefix(dest_dir).unwrap_or(target);
        write(&scratch.path().join(relative), &bytes)?;
        contents.push((target.clone(), bytes));
    }
    write(&scratch_playbook, out.as_bytes())?;
    Playbook::load(&scratch_playbook, &Overrides::default())?;

    made.borrow_mut().clear();
    let written = contents
        .into_iter()
        .try_for_each(|(target, bytes)| {
            write(&target, &bytes)?;
            templates.push(target);
            Ok(())
        })
        .and_then(|()| write(dest, out.as_bytes()));
    if let Err(e) = written {
        for path in made.borrow().iter().rev() {
            // Best effort: the error that stopped us is the one to report;
            // a file the failed write never created is simply not there.
            let _ = if path.is_dir() {
                std::fs::remove_dir(path)
            } else {
                std::fs::remove_file(path)
            };
        }
        return Err(e);
    }
    Ok(Scaffold {
        playbook: dest.to_path_buf(),
        templates,
    })
}

/// `template = "PATH"` on one line: (text before PATH, PATH, text after).
fn template_reference(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.trim_start().strip_prefix("template")?;
    let rest = rest.trim_start().strip_prefix('=')?;
    let open = line.len() - rest.trim_start().len();
    let value = line[open..].strip_prefix('"')?;
    let close = value.find('"')?;
    Some((&line[..open + 1], &value[..close], &value[close..]))
}

#[cfg(test)]
mod tests {
    use super::template_reference;

    #[test]
    fn finds_the_template_path_on_its_line() {
        assert_eq!(
            template_reference("template = \"../templates/a.hbs\"\n"),
            Some(("template = \"", "../templates/a.hbs", "\"\n"))
        );
        assert_eq!(
            template_reference("  template=\"x\" # c"),
            Some(("  template=\"", "x", "\" # c"))
        );
        assert_eq!(template_reference("templates = \"x\""), None);
        assert_eq!(template_reference("# template = \"x\""), None);
    }
}

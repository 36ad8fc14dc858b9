//! Globbing and tree walks done through a [`Host`], so they work the same on
//! a local root, an overlay and a remote machine.

use std::path::{Path, PathBuf};

use super::{FileKind, Host, HostResult, Meta};

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expand a glob pattern (absolute target path) into the paths that exist,
/// sorted. `*`, `?` and `[..]` match within one component and not a leading
/// dot (as in the shell); a `**` component matches any number of directories.
/// Paths beneath another match are dropped: removing the parent covers them.
pub fn expand(host: &dyn Host, pattern: &Path) -> Result<Vec<PathBuf>, GlobError> {
    let mut current = vec![PathBuf::from("/")];
    let parts: Vec<String> = pattern
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    for part in &parts {
        let mut next = Vec::new();
        if part == "**" {
            for base in &current {
                next.push(base.clone());
                descend_dirs(host, base, &mut next)?;
            }
        } else if has_magic(part) {
            let pat = glob::Pattern::new(part).map_err(|e| GlobError::Pattern(e.to_string()))?;
            for base in &current {
                if !is_dir(host, base)? {
                    continue;
                }
                for name in host.list(base)? {
                    if pat.matches_with(&name, opts) {
                        next.push(base.join(name));
                    }
                }
            }
        } else {
            for base in &current {
                let p = base.join(part);
                if host.stat(&p)?.is_some() {
                    next.push(p);
                }
            }
        }
        next.sort();
        next.dedup();
        current = next;
    }
    if parts.is_empty() {
        return Ok(current);
    }
    // Keep only outermost matches.
    let mut out: Vec<PathBuf> = Vec::new();
    for p in current {
        if !out.iter().any(|o| p.starts_with(o)) {
            out.push(p);
        }
    }
    Ok(out)
}

fn is_dir(host: &dyn Host, p: &Path) -> HostResult<bool> {
    Ok(host.stat(p)?.is_some_and(|m| m.kind == FileKind::Dir))
}

fn descend_dirs(host: &dyn Host, base: &Path, out: &mut Vec<PathBuf>) -> HostResult<()> {
    if !is_dir(host, base)? {
        return Ok(());
    }
    for name in host.list(base)? {
        // Like the shell's globstar: hidden directories are not entered.
        if name.starts_with('.') {
            continue;
        }
        let p = base.join(name);
        if is_dir(host, &p)? {
            out.push(p.clone());
            descend_dirs(host, &p, out)?;
        }
    }
    Ok(())
}

/// Every path at and beneath `root`, parents before children, without
/// following symlinks (they are reported, not entered).
pub fn tree(host: &dyn Host, root: &Path) -> HostResult<Vec<(PathBuf, Meta)>> {
    let mut out = Vec::new();
    if let Some(meta) = host.stat(root)? {
        out.push((root.to_path_buf(), meta));
        if meta.kind == FileKind::Dir {
            visit(host, root, &mut out)?;
        }
    }
    Ok(out)
}

fn visit(host: &dyn Host, dir: &Path, out: &mut Vec<(PathBuf, Meta)>) -> HostResult<()> {
    for name in host.list(dir)? {
        let p = dir.join(name);
        if let Some(meta) = host.stat(&p)? {
            out.push((p.clone(), meta));
            if meta.kind == FileKind::Dir {
                visit(host, &p, out)?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum GlobError {
    #[error("invalid glob pattern: {0}")]
    Pattern(String),
    #[error(transparent)]
    Host(#[from] super::HostError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::LocalHost;

    #[test]
    fn expands_stars_double_stars_and_skips_dotfiles() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for p in [
            "a/node_modules/x",
            "a/b/node_modules/y",
            "a/.hidden/node_modules/z",
            "c.pyc",
            ".d.pyc",
        ] {
            let full = dir.path().join(p);
            std::fs::create_dir_all(full.parent().ok_or("no parent")?)?;
            std::fs::write(&full, b"")?;
        }
        let host = LocalHost::new(Some(dir.path().to_path_buf()));
        let found = expand(&host, Path::new("/**/node_modules"))?;
        assert_eq!(
            found,
            vec![
                PathBuf::from("/a/b/node_modules"),
                PathBuf::from("/a/node_modules")
            ]
        );
        assert_eq!(
            expand(&host, Path::new("/*.pyc"))?,
            vec![PathBuf::from("/c.pyc")]
        );
        assert!(expand(&host, Path::new("/nope/*"))?.is_empty());
        assert_eq!(expand(&host, Path::new("/a"))?, vec![PathBuf::from("/a")]);
        Ok(())
    }
}

//! Fault injection for tests, compiled only with the `failpoints` feature
//! (tests/run-all.sh turns it on; release builds never have it).
//!
//! `FIXER_FAILPOINT=POINT:N:ACTION` makes the N-th time (1-based) the
//! process passes POINT fail: `kill` (SIGKILL itself, as a power cut or an
//! OOM kill would), `enospc` or `eio` (that one call fails with the error).
//! Points: `change` (just after a change is journaled, and just after it
//! is made), `write` (every atomic write, append and mkdir of the local
//! host, journal and backups included).

use std::io;

#[cfg(feature = "failpoints")]
pub fn check(point: &str) -> io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PASSED: AtomicUsize = AtomicUsize::new(0);
    let Ok(spec) = std::env::var("FIXER_FAILPOINT") else {
        return Ok(());
    };
    let mut parts = spec.splitn(3, ':');
    let (Some(at), Some(n), Some(action)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(());
    };
    if at != point {
        return Ok(());
    }
    let passed = PASSED.fetch_add(1, Ordering::SeqCst) + 1;
    if n.parse::<usize>().ok() != Some(passed) {
        return Ok(());
    }
    match action {
        "kill" => {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            Ok(())
        }
        "enospc" => Err(io::Error::from_raw_os_error(nix::libc::ENOSPC)),
        "eio" => Err(io::Error::from_raw_os_error(nix::libc::EIO)),
        _ => Ok(()),
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn check(_point: &str) -> io::Result<()> {
    Ok(())
}

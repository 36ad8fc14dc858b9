//! One integration test binary driving the real `fixer` executable on
//! tempdir roots. Nothing here touches this machine's /etc, /root or ~.

mod apply;
mod categories;
mod completions;
mod compose;
mod diagnose;
mod discover;
mod docs;
mod examples;
mod failures;
#[cfg(feature = "failpoints")]
mod faults;
mod fix;
mod go_proxy;
mod gotools;
mod init;
mod json;
mod netplan;
mod plan;
mod playbooks;
mod probe;
mod properties;
mod prune;
mod pull;
mod remote;
mod resources;
mod results;
mod rollback;
mod rollout;
mod schema;
mod secrets;
mod sshd;
mod support;
mod symlinks;
mod validate;
mod verbosity;

/// The fault-injection tests (faults.rs) need `--features failpoints`;
/// CI must never run without them.
#[cfg(not(feature = "failpoints"))]
#[test]
fn fault_injection_is_compiled_in_under_ci() {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the tests with --features failpoints (tests/run-all.sh)"
    );
}

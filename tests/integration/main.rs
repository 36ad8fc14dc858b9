//! One integration test binary driving the real `fixer` executable on
//! tempdir roots. Nothing here touches this machine's /etc, /root or ~.

mod apply;
mod diagnose;
mod failures;
mod gotools;
mod netplan;
mod plan;
mod playbooks;
mod probe;
mod remote;
mod resources;
mod rollback;
mod secrets;
mod sshd;
mod support;
mod validate;

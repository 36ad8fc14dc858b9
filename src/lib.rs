//! fixer: a declarative remediation engine.
//!
//! Data flows one way: a [`playbook::Playbook`] (TOML, typed and validated)
//! is planned against a [`host::Host`] into [`change::Change`]s
//! ([`plan`]); [`apply`] performs them, recording a [`journal`] run on the
//! target first, from which a failed apply or `fixer rollback` restores the
//! prior state.

pub mod apply;
pub mod change;
pub mod diagnose;
pub mod diff;
pub mod discover;
pub mod error;
pub mod failpoint;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod inventory;
pub mod journal;
pub mod plan;
pub mod playbook;
pub mod pull;
pub mod resource;
pub mod results;
pub mod rollout;
pub mod scaffold;

pub use error::{Error, Result};

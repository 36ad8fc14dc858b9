//! Properties over random small trees and playbooks, checked on the real
//! binary: plan never writes; apply then rollback is the identity; a
//! second apply changes nothing and leaves what the first one left.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::support::{stderr_of, stdout_of, Sandbox};

/// Leaves in a small namespace, so existing files and desired ones meet.
const PATHS: [&str; 6] = [
    "/p/a/x",
    "/p/a/y",
    "/p/a/z",
    "/p/b/x",
    "/p/b/y",
    "/p/q/deep/z",
];
const MODES: [u32; 5] = [0o600, 0o640, 0o644, 0o755, 0o400];

#[derive(Clone, Debug)]
struct Existing {
    content: String,
    mode: u32,
}

#[derive(Clone, Debug)]
enum Desired {
    File { content: String, mode: u32 },
    Absent,
    Mode(u32),
}

fn content() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('a'),
            Just('Z'),
            Just('7'),
            Just(' '),
            Just('\n'),
            Just('é')
        ],
        0..12,
    )
    .prop_map(|c| c.into_iter().collect())
}

fn mode() -> impl Strategy<Value = u32> {
    proptest::sample::select(MODES.to_vec())
}

fn existing() -> impl Strategy<Value = BTreeMap<usize, Existing>> {
    proptest::collection::btree_map(
        0..PATHS.len(),
        (content(), mode()).prop_map(|(content, mode)| Existing { content, mode }),
        0..5,
    )
}

fn desired() -> impl Strategy<Value = BTreeMap<usize, Desired>> {
    proptest::collection::btree_map(
        0..PATHS.len(),
        prop_oneof![
            3 => (content(), mode()).prop_map(|(content, mode)| Desired::File { content, mode }),
            1 => Just(Desired::Absent),
            1 => mode().prop_map(Desired::Mode),
        ],
        1..5,
    )
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The playbook; `permissions` only on paths that exist (else it is an
/// error by design, which is not the property under test).
fn playbook(want: &BTreeMap<usize, Desired>, have: &BTreeMap<usize, Existing>) -> String {
    let mut pb = String::from("[playbook]\nname = \"prop\"\n");
    for (i, d) in want {
        let path = PATHS[*i];
        pb += &match d {
            Desired::File { content, mode } => format!(
                "\n[[resource]]\ntype = \"file\"\npath = \"{path}\"\ncontent = {}\nmode = \"{mode:04o}\"\n",
                toml_string(content)
            ),
            Desired::Absent => {
                format!("\n[[resource]]\ntype = \"file\"\npath = \"{path}\"\nstate = \"absent\"\n")
            }
            Desired::Mode(mode) if have.contains_key(i) => format!(
                "\n[[resource]]\ntype = \"permissions\"\npath = \"{path}\"\nmode = \"{mode:04o}\"\n"
            ),
            Desired::Mode(_) => String::new(),
        };
    }
    pb
}

fn seed(sb: &Sandbox, have: &BTreeMap<usize, Existing>) {
    // As on any real system (fixer's state folder goes in it).
    sb.file("/var/lib/dpkg/status", "");
    for (i, e) in have {
        sb.file(PATHS[*i], &e.content);
        sb.chmod(PATHS[*i], e.mode);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn plan_never_writes_and_apply_then_rollback_is_the_identity(
        have in existing(),
        want in desired(),
    ) {
        let sb = Sandbox::new();
        seed(&sb, &have);
        let pb = sb.playbook("p.toml", &playbook(&want, &have)).display().to_string();
        let before = sb.tree();

        let plan = sb.command(&["plan", &pb]).output().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(plan.status.success(), "{}", stderr_of(&plan));
        prop_assert_eq!(&sb.tree(), &before, "plan wrote");
        prop_assert!(!sb.exists("/var/lib/fixer"), "plan created the state folder");

        let apply = sb.command(&["apply", &pb]).output().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(apply.status.success(), "{}", stderr_of(&apply));
        let once = sb.tree();

        let again = sb.command(&["apply", &pb]).output().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(again.status.success(), "{}", stderr_of(&again));
        prop_assert!(stdout_of(&again).contains("No changes"), "{}", stdout_of(&again));
        prop_assert_eq!(&sb.tree(), &once, "a second apply changed the target");

        // Newest first: the no-change run is skipped, the first is undone.
        let rollback = sb.command(&["rollback"]).output().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let changed = once != before;
        if changed {
            prop_assert!(rollback.status.success(), "{}", stderr_of(&rollback));
        }
        prop_assert_eq!(&sb.tree(), &before, "apply then rollback is not the identity");
    }
}

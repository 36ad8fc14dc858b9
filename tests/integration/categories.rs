//! What the right answer to each log of `tests/data/diagnose` is, by its
//! `# category:`. Shared with `benches/diagnose.rs`, which measures the
//! same thing on more logs.

/// The playbook that answers each category; `None`: the answer must be "no
/// known remedy".
pub fn expected_playbook(category: &str) -> Result<Option<&'static str>, String> {
    Ok(match category {
        "proxy_unreachable" => Some("go-proxy-mirror"),
        "private_module" => Some("go-private-modules"),
        "git_auth" => Some("git-ssh-rewrite"),
        "checksum_mismatch" => Some("go-clean-modcache"),
        "missing_go_sum" => Some("go-mod-tidy"),
        "cache_permission" => Some("go-cache-permissions"),
        "dns" => Some("netplan-static-dns"),
        "no_route" => Some("netplan-dhcp"),
        // Every real case's fix was a tag, a commit or a go flag: nothing a
        // host playbook changes. diagnose shows the lines, names no remedy.
        "unknown_revision" | "other" => None,
        other => return Err(format!("unknown category `{other}`")),
    })
}

//! Malformed playbooks: each is refused with file, line, column and field,
//! and nothing on the target changes.

use predicates::str::contains;

use crate::support::{stderr_of, Sandbox, TestResult};

const HEAD: &str = "[playbook]\nname = \"t\"\n";

#[test]
fn valid_playbook_validates_without_touching_the_target() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "ok.toml",
        &format!("{HEAD}[vars]\nw = \"x\"\n[[resource]]\ntype = \"file\"\npath = \"/etc/{{{{w}}}}\"\ncontent = \"hi\"\n"),
    );
    sb.fixer(&["validate", pb.to_str().ok_or("path")?])
        .assert()
        .success()
        .stdout(contains("valid playbook `t` (1 resource, 0 handlers)"));
    assert!(sb.tree().is_empty());
    Ok(())
}

/// (playbook body after the header, expected `file:line:col: field` text, message part)
const CASES: &[(&str, &str, &str)] = &[
    (
        "[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\ncontent = \"x\"\nmodee = \"0644\"\n",
        "bad.toml:7:1: field `resource[0].modee`",
        "unknown field `modee`",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"etc/a\"\ncontent = \"x\"\n",
        "bad.toml:5:8: field `resource[0].path`",
        "relative path",
    ),
    (
        "[[resource]]\ntype = \"fiel\"\npath = \"/etc/a\"\n",
        "bad.toml:4:8: field `resource[0].type`",
        "unknown resource type `fiel`, expected one of: file, permissions, clean, command",
    ),
    (
        "[[resource]]\npath = \"/etc/a\"\n",
        "bad.toml:3:1: field `resource[0].type`",
        "missing field `type`",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\ncontent = \"{{nope}}\"\n",
        "bad.toml:6:11: field `resource[0].content`",
        "variable `nope` is not defined",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\ncontent = \"x\"\nmode = 644\n",
        "bad.toml:7:8: field `resource[0].mode`",
        "write the mode as a string (\"0644\"",
    ),
    (
        "[[resource]]\ntype = \"permissions\"\npath = \"/etc/a\"\nmode = \"u=rwz\"\n",
        "bad.toml:6:8: field `resource[0].mode`",
        "`z` in mode `u=rwz`",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\ncontent = \"x\"\nnotify = [\"nope\"]\n",
        "bad.toml:7:11: field `resource[0].notify[0]`",
        "not a declared [[handler]]",
    ),
    (
        "[[resource]]\nid = \"a\"\ntype = \"file\"\npath = \"/etc/a\"\ncontent = \"x\"\n[[resource]]\nid = \"a\"\ntype = \"file\"\npath = \"/etc/b\"\ncontent = \"y\"\n",
        "bad.toml:8:1: field `resource[1].id`",
        "duplicate resource id `a` (first declared on line 3)",
    ),
    // Two resources managing one thing never converge (issue 17.8): the
    // same file under two spellings, ...
    (
        "[[resource]]\nid = \"one\"\ntype = \"file\"\npath = \"/etc/x\"\ncontent = \"a\"\n[[resource]]\nid = \"two\"\ntype = \"file\"\npath = \"/etc/./x\"\ncontent = \"b\"\n",
        "bad.toml:11:8: field `resource[1].path`",
        "`two` and `one` (line 6) both manage /etc/x: each apply would undo the other; keep one of them",
    ),
    // ... a file's content and a netplan file, ...
    (
        "[[resource]]\ntype = \"file\"\npath = \"/etc/netplan/01.yaml\"\ncontent = \"network: {version: 2}\\n\"\n[[resource]]\ntype = \"netplan\"\npath = \"/etc/netplan//01.yaml\"\nnetwork = { version = 2 }\n",
        "bad.toml:9:8: field `resource[1].path`",
        "`netplan:/etc/netplan/01.yaml` and `file:/etc/netplan/01.yaml` (line 5) both manage /etc/netplan/01.yaml",
    ),
    // ... one variable in go's env file, ...
    (
        "[[resource]]\ntype = \"env\"\nstyle = \"go\"\nvars = { GOPROXY = \"a\" }\n[[resource]]\nid = \"again\"\ntype = \"env\"\nstyle = \"go\"\nvars = { GOPROXY = \"b\" }\n",
        "bad.toml:10:9: field `resource[1].style`",
        "`again` and `env:GOENV` (line 5) both manage `GOPROXY` in go's env file",
    ),
    // ... one git key however it is spelled, ...
    (
        "[[resource]]\ntype = \"git_config\"\nkey = \"core.editor\"\nvalue = \"vi\"\n[[resource]]\ntype = \"git_config\"\nkey = \"Core.Editor\"\nvalue = \"nano\"\n",
        "bad.toml:9:7: field `resource[1].key`",
        "both manage `core.editor` in ~/.gitconfig",
    ),
    // ... and one path's mode.
    (
        "[[resource]]\ntype = \"file\"\npath = \"/srv/a\"\ncontent = \"\"\nmode = \"0600\"\n[[resource]]\ntype = \"permissions\"\npath = \"/srv/a/\"\nmode = \"0644\"\n",
        "bad.toml:10:8: field `resource[1].path`",
        "both manage the mode and owner of /srv/a",
    ),
    (
        "[[resource]]\ntype = \"permissions\"\npath = \"/srv/a\"\nowner = 4294967295\n",
        "bad.toml:6:9: field `resource[0].owner`",
        "4294967295 is not an id: chown takes it as \"leave unchanged\"",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/srv/a\"\ncontent = \"\"\ngroup = \"4294967295\"\n",
        "bad.toml:7:9: field `resource[0].group`",
        "4294967295 is not an id",
    ),
    (
        "[[resource]]\ntype = \"env\"\nstyle = \"profile\"\nvars = { A = \"x\\u0000y\" }\n",
        "bad.toml:6:14: field `resource[0].vars.A`",
        "value of A: a NUL byte cannot be represented in an environment file",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/srv/a\\u0000b\"\ncontent = \"\"\n",
        "bad.toml:5:8: field `resource[0].path`",
        "a path cannot hold a NUL byte",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\ncontent = \"x\"\ntemplate = \"t.hbs\"\n",
        "bad.toml:7:12: field `resource[0].template`",
        "either `content` or `template`",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\ntemplate = \"missing.hbs\"\n",
        "bad.toml:6:12: field `resource[0].template`",
        "cannot read template",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/etc/a\"\n",
        "bad.toml:3:1: field `resource[0]`",
        "needs `content` or `template`",
    ),
    (
        "[[resource]]\ntype = \"permissions\"\npath = \"/etc/a\"\n",
        "bad.toml:3:1: field `resource[0]`",
        "at least one of `mode`, `owner`, `group`",
    ),
    (
        "[[resource]]\ntype = \"clean\"\npaths = \"/tmp/x\"\n",
        "bad.toml:5:9: field `resource[0].paths`",
        "invalid type",
    ),
    (
        "[[resource]]\ntype = \"command\"\nrun = \"\"\n",
        "bad.toml:3:1: field `resource[0]`",
        "`run` is empty",
    ),
    (
        "[[handler]]\ntype = \"command\"\nrun = \"true\"\n",
        "bad.toml:3:1: field `handler[0].id`",
        "a handler needs an `id`",
    ),
    (
        "[[handler]]\nid = \"h\"\ntype = \"file\"\npath = \"/a\"\ncontent = \"\"\n",
        "bad.toml:5:8: field `handler[0].type`",
        "unknown handler type `file`, expected one of: command",
    ),
    (
        "[resources]\n",
        "bad.toml:3:2: field `resources`",
        "unknown section `resources`",
    ),
    (
        "[[resource]\ntype = \"file\"\n",
        "bad.toml:3:12:",
        "unclosed array table",
    ),
    (
        "[vars]\nhome = \"/home/{{user}}\"\n",
        "bad.toml:4:8: field `vars.home`",
        "variable `user` is not defined",
    ),
    (
        "[vars]\nv = [1, 2]\n",
        "bad.toml:4:5: field `vars.v`",
        "a variable is a string, number or boolean",
    ),
    (
        "[vars]\nv = { value = \"x\", secret = true }\n",
        "bad.toml:4:20: field `vars.v.secret`",
        "unknown field `secret`",
    ),
    (
        "[[resource]]\ntype = \"file\"\npath = \"/a\"\ncontent = \"\"\n\
         [[resource]]\ntype = \"file\"\npath = \"/b\"\npath = \"/c\"\ncontent = \"\"\n",
        "bad.toml:10:1: field `path`",
        "duplicate key `path`: it is already set on line 9",
    ),
    (
        "[vars]\nv = \"a; b\"\n[[resource]]\ntype = \"command\"\nrun = \"echo {{{v}}}\"\n",
        "bad.toml:7:7: field `resource[0].run`",
        "substitute a value unquoted",
    ),
];

#[test]
fn each_kind_of_malformed_playbook_names_file_line_and_field() -> TestResult {
    for (body, at, message) in CASES {
        let sb = Sandbox::new();
        let pb = sb.playbook("bad.toml", &format!("{HEAD}{body}"));
        let pb = pb.to_str().ok_or("path")?;
        for cmd in [&["validate", pb][..], &["plan", pb], &["apply", pb]] {
            let out = sb.fixer(cmd).output()?;
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(1), "{body}\n{err}");
            let err = err
                .replace(&sb.base().join("pb").display().to_string(), "")
                .replace("error: /", "error: ");
            assert!(
                err.contains(at),
                "case:\n{body}\nexpected `{at}` in:\n{err}"
            );
            assert!(
                err.contains(message),
                "case:\n{body}\nexpected `{message}` in:\n{err}"
            );
        }
        assert!(sb.tree().is_empty(), "{body}: the target changed");
    }
    Ok(())
}

#[test]
fn missing_playbook_header_is_an_error() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook("bad.toml", "[vars]\na = 1\n");
    sb.fixer(&["validate", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains(
            "bad.toml:1:1: field `playbook`: missing [playbook] table with a `name`",
        ));
    Ok(())
}

#[test]
fn undefined_variable_inside_a_template_file_names_the_template_line() -> TestResult {
    let sb = Sandbox::new();
    sb.playbook("templates/motd.hbs", "line one\nhello {{who}}\n");
    let pb = sb.playbook(
        "bad.toml",
        &format!("{HEAD}[[resource]]\ntype = \"file\"\npath = \"/etc/motd\"\ntemplate = \"templates/motd.hbs\"\n"),
    );
    sb.fixer(&["validate", pb.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains("bad.toml:6:12: field `resource[0].template`"))
        .stderr(contains(
            "motd.hbs: template line 2, column 7: variable `who` is not defined",
        ));
    Ok(())
}

#[test]
fn var_overrides_are_checked() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "p.toml",
        &format!("{HEAD}[vars]\nwho = \"a\"\n[[resource]]\ntype = \"file\"\npath = \"/x\"\ncontent = \"{{{{who}}}}\"\n"),
    );
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["plan", pb, "--var", "whom=b"])
        .assert()
        .code(1)
        .stderr(contains(
            "--var whom: variable `whom` is not declared in the playbook's [vars] (declared: who)",
        ));
    sb.fixer(&["plan", pb, "--var", "who"])
        .assert()
        .code(1)
        .stderr(contains("--var expects NAME=VALUE, got `who`"));
    let vars = sb.playbook("vars.toml", "who = \"from-file\"\nextra = 1\n");
    sb.fixer(&["plan", pb, "--vars", vars.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains(
            "vars.toml:2:1: field `extra`: variable `extra` is not declared",
        ));
    let vars = sb.playbook("vars.toml", "who = \"from-file\"\n");
    // --var wins over --vars, which wins over [vars].
    sb.fixer(&["plan", pb, "--vars", vars.to_str().ok_or("path")?])
        .assert()
        .success()
        .stdout(contains("+from-file"));
    sb.fixer(&[
        "plan",
        pb,
        "--vars",
        vars.to_str().ok_or("path")?,
        "--var",
        "who=cli",
    ])
    .assert()
    .success()
    .stdout(contains("+cli"));
    assert!(sb.tree().is_empty());
    Ok(())
}

/// `choices`: a value outside them is an error wherever it comes from, and
/// says where; a default outside them is an error at its line.
#[test]
fn variables_with_choices_refuse_other_values() -> TestResult {
    let sb = Sandbox::new();
    let pb = sb.playbook(
        "p.toml",
        &format!(
            "{HEAD}[vars]\nvia = {{ value = \"ssh\", choices = [\"ssh\", \"https\"] }}\nn = {{ value = 2, choices = [1, 2] }}\n\
             [[resource]]\ntype = \"file\"\npath = \"/x\"\ncontent = \"{{{{via}}}} {{{{n}}}}\"\n"
        ),
    );
    let pb = pb.to_str().ok_or("path")?;
    sb.fixer(&["validate", pb, "--var", "via=https", "--var", "n=1"])
        .assert()
        .success();
    sb.fixer(&["validate", pb, "--var", "via=shh"])
        .assert()
        .code(1)
        .stderr(contains(
            "--var via: `shh` is not one of the choices: ssh, https",
        ));
    sb.fixer(&["validate", pb, "--var", "n=3"])
        .assert()
        .code(1)
        .stderr(contains("--var n: `3` is not one of the choices: 1, 2"));
    let vars = sb.playbook("vars.toml", "via = \"ftp\"\n");
    sb.fixer(&["validate", pb, "--vars", vars.to_str().ok_or("path")?])
        .assert()
        .code(1)
        .stderr(contains(
            "vars.toml:1:1: field `via`: `ftp` is not one of the choices: ssh, https",
        ));

    for (text, expected) in [
        (
            "v = { value = \"x\", choices = [\"a\", \"b\"] }\n",
            "p2.toml:5:15: field `vars.v.value`: `x` is not one of the choices: a, b",
        ),
        (
            "v = { value = \"a\", choices = [] }\n",
            "field `vars.v.choices`: `choices` is a non-empty array of the values allowed",
        ),
        (
            "v = { value = \"a\", choices = \"a\" }\n",
            "field `vars.v.choices`: `choices` is a non-empty array of the values allowed",
        ),
        (
            "v = { value = \"a\", choices = [\"a\", [1]] }\n",
            "field `vars.v.choices`: each choice is a string, number or boolean",
        ),
        // diagnose would suggest `--var v=c`, which plan then refuses.
        (
            "v = { value = \"a\", choices = [\"a\", \"b\"] }\n[[symptom]]\npattern = \"x\"\nvars = { v = \"c\" }\n",
            "field `symptom[0].vars.v`: `v` = `c` is not one of the choices: a, b",
        ),
    ] {
        let bad = sb.playbook("p2.toml", &format!("{HEAD}\n[vars]\n{text}"));
        sb.fixer(&["validate", bad.to_str().ok_or("path")?])
            .assert()
            .code(1)
            .stderr(contains(expected));
    }
    Ok(())
}

/// A partial including itself used to overflow the stack (rc 134): it is
/// refused at load, naming the template, its line and the cycle (issue 17.6).
#[test]
fn a_recursive_template_partial_is_refused_naming_the_template() -> TestResult {
    let sb = Sandbox::new();
    sb.playbook(
        "templates/loop.hbs",
        "top\n{{#*inline \"a\"}}{{> b}}{{/inline}}\n{{#*inline \"b\"}}{{#if yes}}{{> a}}{{/if}}{{/inline}}\n{{> a}}\n",
    );
    let file = sb.playbook(
        "file.toml",
        &format!("{HEAD}[vars]\nyes = true\n[[resource]]\ntype = \"file\"\npath = \"/etc/motd\"\ntemplate = \"templates/loop.hbs\"\n"),
    );
    let inline = sb.playbook(
        "inline.toml",
        &format!("{HEAD}[[resource]]\ntype = \"file\"\npath = \"/etc/motd\"\ncontent = '{{{{#*inline \"p\"}}}}x{{{{> p}}}}{{{{/inline}}}}{{{{> p}}}}'\n"),
    );
    for (pb, at, message) in [
        (
            &file,
            "file.toml:8:12: field `resource[0].template`",
            "loop.hbs: template line 4, column 1: partial `a` includes itself (a -> b -> a)",
        ),
        (
            &inline,
            "inline.toml:6:11: field `resource[0].content`",
            "template line 1, column 36: partial `p` includes itself (p -> p)",
        ),
    ] {
        for cmd in ["validate", "plan", "apply"] {
            let out = sb.fixer(&[cmd, pb.to_str().ok_or("path")?]).output()?;
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
            assert!(err.contains(at) && err.contains(message), "{cmd}: {err}");
        }
    }
    assert!(sb.tree().is_empty());
    Ok(())
}

#[test]
fn a_playbook_for_a_newer_fixer_says_which_version_it_needs() -> TestResult {
    let sb = Sandbox::new();
    let have = env!("CARGO_PKG_VERSION");
    // Written for a fixer that knows a section this one does not: the
    // version is what the user is told, not the unknown section.
    let newer = sb.playbook(
        "newer.toml",
        "[playbook]\nname = \"newer\"\nrequires = \">=99.1\"\n\n[future]\nx = 1\n",
    );
    for cmd in ["validate", "plan", "apply"] {
        let out = sb.fixer(&[cmd, newer.to_str().ok_or("path")?]).output()?;
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("newer.toml:3:12: field `playbook.requires`")
                && err.contains(&format!(
                    "this playbook needs fixer >=99.1; you have {have}"
                )),
            "{err}"
        );
    }
    let bad = sb.playbook(
        "bad.toml",
        "[playbook]\nname = \"bad\"\nrequires = \"soon\"\n",
    );
    let out = sb
        .fixer(&["validate", bad.to_str().ok_or("path")?])
        .output()?;
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.toml:3:12: field `playbook.requires`")
            && err.contains("`soon` is not a version requirement"),
        "{err}"
    );
    let fine = sb.playbook(
        "fine.toml",
        &format!("[playbook]\nname = \"fine\"\nrequires = \">={have}\"\n"),
    );
    sb.fixer(&["validate", fine.to_str().ok_or("path")?])
        .assert()
        .success();
    assert!(sb.tree().is_empty());
    Ok(())
}

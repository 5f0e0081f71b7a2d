//! streamctl with authentication (issue 20): `user` and `token` commands
//! under the bootstrap token, `--token`/`--token-file`/`STREAMCTL_TOKEN`
//! for every command, refusals said with exit 1, bad usage with exit 2,
//! and the token never shown by `--help` or `token list`.

mod cli;
#[path = "../../agent/tests/common/mod.rs"]
mod common;

use std::process::Command;

use cli::*;

const BOOTSTRAP: &str = "bootstrap-token-for-the-streamctl-tests-0123";

#[test]
fn users_tokens_and_credentials_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let boot_file = dir.path().join("boot.token");
    std::fs::write(&boot_file, BOOTSTRAP).unwrap();
    let agent = common::Agent::start(
        1,
        &[
            "--auth",
            "required",
            "--bootstrap-token-file",
            boot_file.to_str().unwrap(),
        ],
    );
    let b = agent.addr(0);
    let boot = ["--token-file", boot_file.to_str().unwrap()];
    let with = |creds: &[&str], args: &[&str]| streamctl(&b, &[creds, args].concat(), "");

    // Without a credential: refused, exit 1, the reason said.
    let (code, _, err) = streamctl(&b, &["topic", "list"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("requires authentication"), "{err}");

    assert_eq!(with(&boot, &["user", "create", "app"]).0, 0);
    let (code, token, err) = with(
        &boot,
        &["token", "create", "app", "--description", "ingest"],
    );
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_owned();
    assert!(token.starts_with("shk_"), "{token}");
    assert!(err.contains("shown only now"), "{err}");
    let id = &token[4..20];

    let (code, list, _) = with(&boot, &["token", "list", "--user", "app"]);
    assert_eq!(code, 0);
    assert!(
        list.starts_with("id\tuser\tcreated\tdescription\n"),
        "{list}"
    );
    assert!(list.contains(id) && list.contains("ingest"), "{list}");
    assert!(!list.contains(&token[21..]), "token list shows the secret");
    let (_, users, _) = with(&boot, &["user", "list", "--format", "json"]);
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    assert_eq!(users[0]["name"], "app");
    assert_eq!(users[0]["tokens"], 1);

    // No rule allows it anything yet; `acl add` gives it the topics t*.
    let (code, _, err) = with(&["--token", &token], &["topic", "create", "t1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("app may not create topic t1: no access rule allows it"),
        "{err}"
    );
    let (code, out, err) = with(
        &boot,
        &[
            "acl",
            "add",
            "--principal",
            "app",
            "--topic",
            "t",
            "--prefix",
            "--operation",
            "all",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "added: allow app all on topic:t (prefix)");
    let (code, _, err) = with(
        &boot,
        &[
            "acl",
            "add",
            "--principal",
            "app",
            "--group",
            "g",
            "--operation",
            "write",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown operation \"write\""), "{err}");
    let (code, _, _) = with(
        &boot,
        &["acl", "add", "--principal", "app", "--operation", "all"],
    );
    assert_eq!(
        code, 2,
        "a rule without --topic, --group or --cluster is bad usage"
    );
    let (_, acls, _) = with(&boot, &["acl", "list", "--principal", "app"]);
    assert_eq!(
        acls,
        "principal\tpermission\toperation\tresource\tpattern\napp\tallow\tall\ttopic:t\tprefix\n"
    );

    // The token works from the flag, a file and the environment.
    let token_file = dir.path().join("app.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    assert_eq!(
        with(
            &["--token", &token],
            &["topic", "create", "t1", "--partitions", "1"]
        )
        .0,
        0
    );
    let (code, topics, err) = with(
        &["--token-file", token_file.to_str().unwrap()],
        &["topic", "list"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(topics.contains("t1"), "{topics}");
    let by_env = Command::new(bin())
        .args(["--bootstrap", &b, "topic", "list"])
        .env("STREAMCTL_TOKEN", &token)
        .output()
        .unwrap();
    assert!(by_env.status.success(), "{by_env:?}");

    // --help shows neither the token from the environment nor a file's.
    let help = Command::new(bin())
        .args(["topic", "list", "--help"])
        .env("STREAMCTL_TOKEN", &token)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--token"), "{help}");
    assert!(!help.contains(&token[21..]), "--help shows the token");

    // Not a superuser: the user commands are refused, exit 1.
    let (code, _, err) = with(&["--token", &token], &["user", "create", "other"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("PermissionDenied") && err.contains("app may not create users"),
        "{err}"
    );

    // Bad usage: a missing or empty token file, both flags.
    let (code, _, err) = with(&["--token-file", "/nonexistent/x"], &["topic", "list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--token-file /nonexistent/x"), "{err}");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let (code, _, err) = with(
        &["--token-file", empty.to_str().unwrap()],
        &["topic", "list"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("holds no token"), "{err}");
    let (code, _, _) = with(
        &[
            "--token",
            &token,
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        &["topic", "list"],
    );
    assert_eq!(code, 2);

    // Revoked: the token is refused.
    let (code, out, _) = with(&boot, &["token", "revoke", id]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("revoked token {id}").as_str())
    );
    let (code, _, err) = with(&["--token", &token], &["topic", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown or revoked token"), "{err}");
    let (code, _, err) = with(&boot, &["token", "revoke", id]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(with(&boot, &["user", "delete", "app"]).0, 0);
}

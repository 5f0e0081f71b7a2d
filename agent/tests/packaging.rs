//! The packaging in `deploy/` and the `Dockerfile`, checked as far as a
//! machine without a container runtime or a running systemd allows: the
//! systemd unit passes `systemd-analyze verify` without a warning, the
//! example configuration loads, every `STREAMHOUSE_*` variable the image,
//! compose file and unit set is one the agent reads, and the image's build
//! stage runs the release script and copies what it builds.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `STREAMHOUSE_*` name in `text`.
fn env_names(text: &str) -> BTreeSet<String> {
    names_with_prefix(text, "STREAMHOUSE_", |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
    })
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = read("deploy/systemd/streamhouse-agent.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/streamhouse-agent "));
    // verify checks that ExecStart's program exists: point it at this build.
    let dir = tempfile::tempdir_in(target_tmp()).expect("tempdir");
    let copy = dir.path().join("streamhouse-agent.service");
    let bin = agent_bin();
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/streamhouse-agent",
            &bin.display().to_string(),
        ),
    )
    .expect("unit copied");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs (Debian's systemd package)");
    let said = printed(&out);
    // A misspelt key or a bad value is only a warning (exit 0): none may
    // be printed.
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{:?}\n{said}",
        out.status
    );
}

#[test]
fn the_example_configuration_loads() {
    let path = repo().join("deploy/systemd/agent.toml");
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(&path)
        .arg("--version")
        .output()
        .expect("agent runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same check refuses a key the agent does not know.
    let dir = tempfile::tempdir_in(target_tmp()).expect("tempdir");
    let bad = dir.path().join("agent.toml");
    std::fs::write(
        &bad,
        format!("{}\nlisten_port = 9\n", read("deploy/systemd/agent.toml")),
    )
    .expect("written");
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(&bad)
        .arg("--version")
        .output()
        .expect("agent runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_port"));
}

#[test]
fn the_image_compose_and_unit_set_only_variables_the_agent_reads() {
    let help = Command::new(agent_bin())
        .arg("--help")
        .output()
        .expect("agent runs");
    let known = env_names(&String::from_utf8_lossy(&help.stdout));
    assert!(known.contains("STREAMHOUSE_LISTEN"), "{known:?}");
    for file in [
        "Dockerfile",
        "deploy/docker/compose.yaml",
        "deploy/systemd/streamhouse-agent.service",
    ] {
        let text = read(file);
        let unknown: Vec<String> = env_names(&text)
            .into_iter()
            // The build's own variable (build.rs), not the agent's.
            .filter(|n| n != "STREAMHOUSE_COMMIT" && !known.contains(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} sets {unknown:?}, which the agent does not read"
        );
    }
}

#[test]
fn the_image_builds_with_the_release_script_and_copies_what_it_builds() {
    let docker = read("Dockerfile");
    let script = read("scripts/build-release.sh");
    assert!(
        docker.contains("RUN scripts/build-release.sh /out"),
        "the build stage must run the release script"
    );
    let built: BTreeSet<&str> = script
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "--bin")
        .map(|w| w[1])
        .collect();
    assert_eq!(built, BTreeSet::from(["streamctl", "streamhouse-agent"]));
    assert!(script.matches("--locked").count() == built.len());
    let copy = docker
        .lines()
        .find(|l| l.starts_with("COPY --from=build"))
        .expect("a COPY from the build stage");
    for bin in &built {
        assert!(copy.contains(&format!("/out/{bin}")), "{copy}");
    }
    assert!(docker.contains("ENTRYPOINT [\"streamhouse-agent\"]"));
}

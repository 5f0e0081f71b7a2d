//! `streamctl man`: a page for streamctl and for every command (issue
//! 44: only the top-level page could be generated, and it pointed to
//! pages such as streamctl-consume(1) that could not).

mod cli;

use cli::*;

#[test]
fn each_command_has_its_page() {
    let (code, out, err) = streamctl("127.0.0.1:1", &["man", "consume"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".TH streamctl-consume 1"), "{out}");
    assert!(out.contains("\\-\\-group"), "{out}");
    let (code, out, _) = streamctl("127.0.0.1:1", &["man", "topic", "create"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("streamctl\\-topic\\-create \\- Create a topic"),
        "{out}"
    );
    let (code, out, _) = streamctl("127.0.0.1:1", &["man"], "");
    assert_eq!(code, 0);
    assert!(out.contains(".TH streamctl 1"), "{out}");

    let (code, _, err) = streamctl("127.0.0.1:1", &["man", "topic", "nope"], "");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no command `topic nope`: streamctl topic has the commands create,"),
        "{err}"
    );
}

#[test]
fn every_page_is_written_into_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("man1");
    let (code, out, err) = streamctl(
        "127.0.0.1:1",
        &["man", "--dir", target.to_str().unwrap()],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let mut names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(out.lines().count(), names.len(), "{out}");
    for want in [
        "streamctl.1",
        "streamctl-consume.1",
        "streamctl-produce.1",
        "streamctl-cluster.1",
        "streamctl-man.1",
        "streamctl-topic.1",
        "streamctl-topic-create.1",
        "streamctl-topic-delete-records.1",
        "streamctl-group-reset-offsets.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    // Each page is titled as its file is named.
    for n in &names {
        let page = std::fs::read_to_string(target.join(n)).unwrap();
        let title = format!(".TH {} 1", n.trim_end_matches(".1"));
        assert!(
            page.contains(&title),
            "{n}: {}",
            &page[..200.min(page.len())]
        );
    }
}

//! What `streamctl` says when it cannot do what it was asked: a slip in
//! an agent address is bad usage (exit 2) with what to change; an agent
//! that cannot be reached is named once, its cause said once (exit 1).

mod cli;

use cli::*;

#[test]
fn an_address_slip_says_what_to_change() {
    let (code, out, err) = streamctl("nohost", &["topic", "list"], "");
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("'nohost'") && err.contains("missing port: give host:port"),
        "{err}"
    );
    let (code, _, err) = streamctl("http://127.0.0.1:1", &["topic", "list"], "");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("drop the scheme: give host:port (127.0.0.1:1)"),
        "{err}"
    );
    let (code, _, err) = streamctl("127.0.0.1:1,other", &["cluster"], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'other'"), "{err}");
}

#[test]
fn an_unreachable_agent_is_named_and_its_cause_said_once() {
    let (code, out, err) = streamctl("127.0.0.1:1", &["topic", "list"], "");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.starts_with("streamctl: cannot reach 127.0.0.1:1: "),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
    let pieces: Vec<&str> = err.trim().split(": ").collect();
    for w in pieces.windows(2) {
        assert_ne!(w[0], w[1], "said twice: {err}");
    }
}

/// Issue 44: streamctl's `-ms` flags take units as the agent's do; a unit
/// it does not know is bad usage naming the ones it does.
#[test]
fn a_duration_flag_with_an_unknown_unit_is_bad_usage() {
    let (code, _, err) = streamctl(
        "127.0.0.1:1",
        &["consume", "t", "-G", "g", "--commit-interval-ms", "5x"],
        "",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown unit \"x\" (use ms, s, m, h, d)"),
        "{err}"
    );
}

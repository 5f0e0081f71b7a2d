//! `/metrics` as real Prometheus tools read it: a two-shard agent's scrape
//! passes `promtool check metrics` (the Go parser and linter Prometheus
//! uses), answers OpenMetrics when asked, and a real Prometheus server
//! scrapes it and stores every family. The alert rules and the Grafana
//! dashboard in `deploy/` pass their checks and name only metrics a scrape
//! has; every dashboard query runs on the real server. Needs Debian's
//! `prometheus` package (`promtool` and `prometheus` on PATH;
//! scripts/test.sh installs it).

mod common;
#[path = "common/group_rpc.rs"]
mod group_rpc;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use group_rpc::*;

/// A program of Debian's `prometheus` package, by name on PATH.
fn prometheus_tool(name: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(
        !found.is_empty(),
        "{name} is not installed (apt-get install prometheus; scripts/test.sh does it)"
    );
    found
}

/// A two-shard agent with produce, fetch, an error and a group's commit
/// behind it, so every family has samples; (agent, admin port, records).
async fn busy_agent() -> (Agent, u16, usize) {
    let admin_port = free_ports(1);
    let listen = format!("127.0.0.1:{admin_port}");
    let agent = Agent::start(2, &["--admin-listen", &listen]);
    let meta = agent.create_topic("scraped", 2).await;
    let mut records = 0;
    for p in 0..2u32 {
        let values: Vec<String> = (0..(5 + p * 3)).map(|i| format!("v{i}")).collect();
        records += values.len();
        let mut c = agent.producer_for(&meta, p).await;
        c.produce(produce_req("scraped", p, &values))
            .await
            .expect("produce");
    }
    let mut c = agent.producer_for(&meta, 0).await;
    let bad = c.produce(produce_req("scraped", 0, &[])).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let mut g = groups_at(&agent.addr(0)).await;
    let mut m = Member::default();
    settle(
        &mut g,
        "g\"quoted",
        std::slice::from_mut(&mut m),
        "scraped",
        &[2],
    )
    .await;
    g.commit_offsets(commit("g\"quoted", &m, "scraped", 0, 3))
        .await
        .expect("commit");
    (agent, admin_port, records)
}

/// `deploy/` of the repository.
fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every `streamhouse_*` metric name in `text`.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    names_with_prefix(text, "streamhouse_", |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
    })
}

/// Asserts every metric `used` names is a sample name of `scrape`.
fn assert_all_scraped(used: &BTreeSet<String>, scrape: &str, what: &str) {
    let have = sample_names(scrape);
    let unknown: Vec<&String> = used.difference(&have).collect();
    assert!(
        unknown.is_empty(),
        "{what} names metrics no scrape has: {unknown:?}"
    );
}

/// `text` percent-encoded for a URL query value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sample names of a text exposition (before `{` or the value).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_two_shard_scrape_passes_promtool_and_answers_openmetrics_when_asked() {
    let promtool = prometheus_tool("promtool");
    let (_agent, admin, _) = busy_agent().await;
    let (status, head, text) = get_with(admin, "/metrics", "").await;
    assert_eq!(status, 200);
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("scrape written to promtool");
    let out = check.wait_with_output().expect("promtool ends");
    let said = printed(&out);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {:?}\n{said}\n--- scrape:\n{text}",
        out.status
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    // Both shards in one family, not a family per shard.
    assert!(text.contains("streamhouse_produce_records_total{shard=\"0\"}"));
    assert!(text.contains("streamhouse_produce_records_total{shard=\"1\"}"));

    let (status, head, open) = get_with(
        admin,
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("# TYPE streamhouse_produce_records counter"));
    assert!(open.contains("# UNIT streamhouse_fsync_duration_seconds seconds"));
}

/// A Prometheus server on loopback, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts Prometheus scraping `127.0.0.1:target` every 500 ms.
    fn scraping(target: u16) -> Server {
        let bin = prometheus_tool("prometheus");
        let dir = tempfile::tempdir_in(target_tmp()).expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n\
                 scrape_configs:\n  - job_name: streamhouse\n    static_configs:\n\
                 \x20     - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .expect("config written");
        let port = free_ports(1);
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    /// GET an API path (HTTP/1.0: the server closes after one answer);
    /// the JSON answer, or None while the server is not up.
    async fn api(&self, path: &str) -> Option<serde_json::Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.ok()?;
        let (_, body) = buf.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }

    /// Polls `path` until `done` holds for its JSON answer (30 s at most);
    /// the last answer.
    async fn until(
        &self,
        path: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.api(path).await;
            if last.as_ref().is_some_and(&done) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_a_two_shard_agent_and_stores_every_family() {
    let (_agent, admin, records) = busy_agent().await;
    let text = get(admin, "/metrics").await.1;
    let prometheus = Server::scraping(admin);

    let targets = prometheus
        .until("/api/v1/targets", |v| {
            v["data"]["activeTargets"][0]["health"] == "up"
        })
        .await;
    let target = &targets.as_ref().expect("Prometheus answers")["data"]["activeTargets"][0];
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");

    // Every sample name of the scrape is stored (a family the parser
    // rejected would fail the whole scrape; one it misread would be
    // missing or renamed).
    let want = sample_names(&text);
    let names = prometheus
        .until("/api/v1/label/__name__/values", |v| {
            let got: BTreeSet<&str> = v["data"]
                .as_array()
                .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
                .unwrap_or_default();
            want.iter().all(|n| got.contains(n.as_str()))
        })
        .await
        .expect("Prometheus answers");
    let got: BTreeSet<String> = names["data"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = want.difference(&got).collect();
    assert!(missing.is_empty(), "not stored: {missing:?}");

    // A value read back through PromQL: the records produced, summed over
    // both shards' series.
    let sum = prometheus
        .until(
            "/api/v1/query?query=sum(streamhouse_produce_records_total)",
            |v| v["data"]["result"][0]["value"][1].is_string(),
        )
        .await
        .expect("Prometheus answers");
    assert_eq!(
        sum["data"]["result"][0]["value"][1],
        records.to_string(),
        "{sum}"
    );
    let lag = prometheus
        .until(
            "/api/v1/query?query=streamhouse_group_committed_offset",
            |v| v["data"]["result"][0]["metric"]["group"].is_string(),
        )
        .await
        .expect("Prometheus answers");
    assert_eq!(
        lag["data"]["result"][0]["metric"]["group"], "g\"quoted",
        "{lag}"
    );
    // The Grafana dashboard: well formed, naming scraped metrics only, and
    // every query accepted by this server.
    let json = std::fs::read_to_string(deploy_dir().join("grafana/streamhouse-dashboard.json"))
        .expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&json).expect("dashboard JSON");
    for key in ["uid", "title", "schemaVersion", "panels"] {
        assert!(!dashboard[key].is_null(), "dashboard has no {key}");
    }
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut exprs = Vec::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "{p}");
        let grid = &p["gridPos"];
        let (x, w) = (
            grid["x"].as_u64().expect("x"),
            grid["w"].as_u64().expect("w"),
        );
        assert!(x + w <= 24 && grid["h"].as_u64().is_some(), "{p}");
        assert!(
            ["timeseries", "stat"].contains(&p["type"].as_str().unwrap_or("")),
            "{p}"
        );
        for t in p["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("expr").to_owned());
        }
    }
    assert_all_scraped(&metric_names_in(&json), &text, "the dashboard");
    for expr in exprs {
        let query = expr.replace("$__rate_interval", "1m");
        let answer = prometheus
            .until(
                &format!("/api/v1/query?query={}", url_encode(&query)),
                |_| true,
            )
            .await
            .expect("Prometheus answers");
        assert_eq!(answer["status"], "success", "{query}: {answer}");
    }
}

#[tokio::test]
async fn the_alert_rules_pass_their_unit_tests_and_name_scraped_metrics() {
    let promtool = prometheus_tool("promtool");
    let dir = deploy_dir().join("prometheus");
    for args in [
        ["check", "rules", "streamhouse-alerts.yml"],
        ["test", "rules", "streamhouse-alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}",
            printed(&out)
        );
    }
    let rules = std::fs::read_to_string(dir.join("streamhouse-alerts.yml")).expect("rules");
    let (_agent, admin, _) = busy_agent().await;
    let scrape = get(admin, "/metrics").await.1;
    assert_all_scraped(&metric_names_in(&rules), &scrape, "the alert rules");
}

//! Operations: `/metrics` counters match what a client sent, `/health` and
//! `/ready` answer, and bad configuration fails at start naming the field.

mod common;

use std::process::Command;

use common::*;

#[tokio::test]
async fn metrics_count_what_the_client_sent() {
    let admin_port = free_ports(1);
    let listen = format!("127.0.0.1:{admin_port}");
    let agent = Agent::start(2, &["--admin-listen", &listen]);
    let meta = agent.create_topic("obs", 4).await;
    let mut records = 0;
    for round in 0..5 {
        for p in 0..4u32 {
            let mut c = agent.producer_for(&meta, p).await;
            let values: Vec<String> = (0..(10 + p * 5)).map(|i| format!("r{round}-{i}")).collect();
            records += values.len();
            c.produce(produce_req("obs", p, &values)).await.unwrap();
        }
    }
    let mut c = agent.producer_for(&meta, 0).await;
    let bad = c.produce(produce_req("obs", 0, &[])).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let mut f = agent.fetcher_for(&meta, 0).await;
    let fetched = fetch_all(&mut f, "obs", 0).await.len();

    let (status, m) = get(admin_port, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(
            &m,
            "streamhouse_topic_produced_records_total{topic=\"obs\"}"
        ),
        records as f64
    );
    assert_eq!(
        sample(&m, "streamhouse_topic_fetched_records_total{topic=\"obs\"}"),
        fetched as f64
    );
    assert!(sample(&m, "streamhouse_topic_produced_bytes_total{topic=\"obs\"}") > records as f64);
    assert_eq!(total(&m, "streamhouse_produce_requests_total"), 20.0);
    assert_eq!(
        total(&m, "streamhouse_produce_records_total"),
        records as f64
    );
    let errors: f64 = (0..2)
        .map(|s| {
            m.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!(
                        "streamhouse_request_errors_total{{shard=\"{s}\",code=\"INVALID_ARGUMENT\"}} "
                    ))
                })
                .map_or(0.0, |v| v.parse().unwrap())
        })
        .sum();
    assert_eq!(errors, 1.0);
    let syncs = total(&m, "streamhouse_fsync_duration_seconds_count");
    assert!(
        (1.0..=20.0).contains(&syncs),
        "{syncs} syncs for 20 requests"
    );
    let batches = total(&m, "streamhouse_batch_records_count");
    assert_eq!(batches, 20.0);
    assert_eq!(sample(&m, "streamhouse_leases_held"), 4.0);
    assert!(total(&m, "streamhouse_wal_bytes_total") > records as f64 * 5.0);
    assert!(total(&m, "streamhouse_connections_open") >= 1.0);

    assert_eq!(get(admin_port, "/health").await, (200, "ok\n".into()));
    assert_eq!(get(admin_port, "/ready").await.0, 200);
    let m = get(admin_port, "/metrics").await.1;
    assert_eq!(sample(&m, "streamhouse_ready"), 1.0, "{m}");
    // The operators' snapshot: both shards, the four leases held.
    let (status, state) = get(admin_port, "/debug/state").await;
    assert_eq!(status, 200, "{state}");
    let state: serde_json::Value = serde_json::from_str(&state).expect("JSON");
    assert_eq!(state["shards"].as_array().map(Vec::len), Some(2), "{state}");
    assert_eq!(state["leases_held"], 4, "{state}");
    for lease in state["leases"].as_array().expect("leases") {
        assert_eq!(lease["topic"], "obs", "{lease}");
        assert!(lease["epoch"].as_u64() >= Some(1), "{lease}");
        assert!(lease["served_for_ms"].as_u64() > Some(0), "{lease}");
        assert!(lease["shard"].as_u64() < Some(2), "{lease}");
    }
    assert_eq!(
        state["shards"][1]["address"],
        format!("127.0.0.1:{}", agent.port + 1),
        "{state}"
    );
    assert_eq!(get(admin_port, "/nope").await.0, 404);
}

/// Issue 21: with `--metrics-per-partition` the topic families have a
/// series per partition.
#[tokio::test]
async fn per_partition_series_on_request() {
    let admin_port = free_ports(1);
    let listen = format!("127.0.0.1:{admin_port}");
    let agent = Agent::start(1, &["--admin-listen", &listen, "--metrics-per-partition"]);
    let meta = agent.create_topic("pp", 2).await;
    let mut c = agent.producer_for(&meta, 1).await;
    let values: Vec<String> = (0..7).map(|i| format!("v{i}")).collect();
    c.produce(produce_req("pp", 1, &values)).await.unwrap();
    let m = get(admin_port, "/metrics").await.1;
    let series = |p: u32| {
        sample(
            &m,
            &format!("streamhouse_topic_produced_records_total{{topic=\"pp\",partition=\"{p}\"}}"),
        )
    };
    assert_eq!((series(0), series(1)), (0.0, 7.0), "{m}");
}

/// Issue 21: `--listen` takes a host name, and `--advertise HOST:PORT`
/// tells clients a mapped host and ports (shard i: PORT+i) instead of the
/// listen ones, as a container or NAT port mapping needs.
#[tokio::test]
async fn a_host_name_listen_and_an_advertised_port_mapping() {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let port = free_ports(2);
    let mut child = Command::new(agent_bin())
        .args(["--listen", &format!("localhost:{port}"), "--shards", "2"])
        .args(["--advertise", "broker-1.example.com:29092", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answer = loop {
        let asked = async {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
            streamhouse_proto::admin_service_client::AdminServiceClient::new(channel)
                .metadata(streamhouse_proto::MetadataRequest::default())
                .await
                .ok()
        };
        if let Some(a) = asked.await {
            break a.into_inner();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        answer.agents[0].shard_addresses,
        ["broker-1.example.com:29092", "broker-1.example.com:29093"]
    );
    for (args, says) in [
        (
            vec!["--listen", "no-such-host.invalid:9092"],
            "cannot resolve",
        ),
        (vec!["--advertise", "broker:0"], "--advertise needs a port"),
        (
            vec!["--advertise", "broker:65535", "--shards", "2"],
            "no room",
        ),
        (
            vec!["--advertise", "b:1", "--advertise-host", "c"],
            "cannot be used with",
        ),
    ] {
        let data = dir.path().display().to_string();
        let err = refused_at_start(&["--data-dir", &data], &args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Issue 21: `--version` names the commit the binary was built from.
#[test]
fn version_names_the_commit() {
    let out = Command::new(agent_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("streamhouse-agent "), "{said}");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let want = head.unwrap_or_else(|| "unknown".into());
    assert!(said.contains(&format!("(commit {want})")), "{said}");
}

/// Runs the agent with `base` then `args`, which must make it refuse to
/// start (exit 2); what it said on stderr.
fn refused_at_start(base: &[&str], args: &[&str]) -> String {
    let out = Command::new(agent_bin())
        .args(base)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    err
}

#[test]
fn invalid_configuration_fails_at_start_naming_the_field() {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    for (args, field) in [
        (vec!["--lease-ttl-ms", "5"], "--lease-ttl-ms"),
        (vec!["--shards", "zero"], "--shards"),
        (vec!["--metadata", "mysql://x"], "--metadata"),
        (vec!["--object-store", "ftp://x"], "--object-store"),
    ] {
        let data = dir.path().display().to_string();
        let err = refused_at_start(&["--listen", "127.0.0.1:0", "--data-dir", &data], &args);
        assert!(err.contains(field), "{args:?}: {err}");
    }
}

#[test]
fn a_data_dir_refuses_another_agent_id() {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let mut a = Agent::start_in(dir.path(), 1, &["--agent-id", "first"]);
    a.kill9();
    let out = Command::new(agent_bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--agent-id",
            "second",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("belongs to agent \"first\"") && err.contains("--agent-id first"),
        "{err}"
    );
    // The same id starts again.
    let b = Agent::start_in(dir.path(), 1, &["--agent-id", "first"]);
    drop(b);
}

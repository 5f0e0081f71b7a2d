//! S3 credentials from the AWS chain: an agent given container credentials
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, the ECS and EKS Pod Identity
//! source) that expire after 3 s fetches new ones before they expire and
//! never signs a request with keys near expiry; an agent with no source at
//! all refuses to start and says what it tried.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::*;

/// How long each key the fake credentials endpoint hands out lives.
const LIFETIME: Duration = Duration::from_secs(3);

/// Access key id → when it expires, for every key handed out.
type Handed = Arc<Mutex<BTreeMap<String, SystemTime>>>;

/// A container credentials endpoint: each GET gets a new key that expires
/// after [`LIFETIME`]. Returns its URL.
fn credentials_endpoint(handed: Handed) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/creds", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let expires = SystemTime::now() + LIFETIME;
            let key = {
                let mut handed = handed.lock();
                let key = format!("ASIATEST{:04}", handed.len() + 1);
                handed.insert(key.clone(), expires);
                key
            };
            let body = format!(
                r#"{{"AccessKeyId":"{key}","SecretAccessKey":"secret-{key}","Token":"token-{key}","Expiration":"{}"}}"#,
                humantime::format_rfc3339_seconds(expires)
            );
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A TCP forwarder to the S3 server that notes, per access key id in a
/// request's signature, when it was last seen.
async fn recording_proxy(
    target: SocketAddr,
    seen: Arc<Mutex<BTreeMap<String, SystemTime>>>,
) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(out) = TcpStream::connect(target).await else {
                    return;
                };
                let (mut in_r, mut in_w) = inbound.into_split();
                let (mut out_r, mut out_w) = out.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut tail = Vec::new();
                while let Ok(n) = in_r.read(&mut buf).await {
                    if n == 0 || out_w.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&tail).into_owned();
                    for part in text.split("Credential=").skip(1) {
                        if let Some((key, _)) = part.split_once('/') {
                            seen.lock().insert(key.to_owned(), SystemTime::now());
                        }
                    }
                    // Keep enough to catch a signature split across reads.
                    let keep = tail.len().saturating_sub(256);
                    tail.drain(..keep);
                }
            });
        }
    });
    endpoint
}

#[tokio::test]
async fn container_credentials_are_refreshed_before_they_expire() {
    let handed: Handed = Default::default();
    let seen: Arc<Mutex<BTreeMap<String, SystemTime>>> = Default::default();
    let creds_url = credentials_endpoint(handed.clone());
    let (endpoint, _) = s3_server();
    let proxy = recording_proxy(target_of(&endpoint), seen.clone()).await;
    let meta_dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let meta_url = sqlite_url(meta_dir.path());
    let mut args = s3_args(&proxy, &unique("creds"), &meta_url);
    args.extend(["--segment-age-ms".into(), "100".into()]);
    let env = [
        // Nothing before the container source in the chain.
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("HOME", "/nonexistent"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds_url.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let log = meta_dir.path().join("agent.log");
    let agent = Agent::start_logged(
        1,
        &as_strs(&args),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        Some(log.clone()),
    );
    let meta = agent.create_topic("creds", 1).await;
    // Batches acknowledged once their chunk is in S3, for 3.5 lifetimes.
    let start = Instant::now();
    let mut sent = BTreeMap::new();
    let mut round = 0;
    while start.elapsed() < LIFETIME * 7 / 2 {
        let mut one = send(
            &agent,
            &meta,
            &format!("round{round}"),
            1,
            pb::AckLevel::AckObject,
        )
        .await;
        sent.entry(0)
            .or_insert_with(Vec::new)
            .append(one.get_mut(&0).unwrap());
        round += 1;
    }
    assert_reads(&agent, &meta, &sent).await;
    drop(agent);

    let handed = handed.lock().clone();
    let seen = seen.lock().clone();
    assert!(handed.len() >= 3, "keys fetched: {handed:?}");
    assert!(seen.len() >= 3, "keys that signed requests: {seen:?}");
    for (key, last_used) in &seen {
        let expires = handed
            .get(key)
            .unwrap_or_else(|| panic!("{key} signed a request but was never handed out"));
        // Fetched again halfway through their life: never used in the
        // last quarter of it (a fetch only once expired would be).
        assert!(
            *last_used + LIFETIME / 4 < *expires,
            "{key} signed a request {:?} before it expired",
            expires.duration_since(*last_used).unwrap_or_default()
        );
    }
    // Neither secret keys nor session tokens are logged, even at trace.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("S3 credentials refreshed"), "no log written");
    for key in handed.keys() {
        for secret in [format!("secret-{key}"), format!("token-{key}")] {
            assert!(!text.contains(&secret), "{secret} is in the agent's log");
        }
    }
}

#[tokio::test]
async fn an_agent_without_credentials_says_what_it_tried() {
    let dir = tempfile::tempdir_in(target_tmp()).unwrap();
    let (endpoint, bucket) = s3_server();
    let out = std::process::Command::new(agent_bin())
        .args(["--listen", &format!("127.0.0.1:{}", free_ports(1))])
        .args(["--shards", "1", "--data-dir"])
        .arg(dir.path())
        .arg("--object-store")
        .arg(format!(
            "s3://{bucket}/none?endpoint={endpoint}&region=us-east-1"
        ))
        .env("AWS_ACCESS_KEY_ID", "")
        .env("HOME", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env_remove("AWS_ROLE_ARN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no S3 credentials found"), "{stderr}");
    assert!(stderr.contains("AWS_ACCESS_KEY_ID is not set"), "{stderr}");
}

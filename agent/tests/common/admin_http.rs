//! The agent's admin port from a test: plain HTTP/1.1 GETs, and reading
//! samples out of a `/metrics` page; and a child process's printed output.
// Not every test crate that includes the harness uses each helper.
#![allow(dead_code)]

/// A plain HTTP/1.1 GET on the agent's admin port: (status, body).
pub async fn get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = get_with(port, path, "").await;
    (status, body)
}

/// GET `path` with extra request header lines (each ending in `\r\n`):
/// (status, response head, body).
pub async fn get_with(port: u16, path: &str, headers: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    (status, head.to_owned(), body.to_owned())
}

/// The sum of every sample of the family `name` in a Prometheus text
/// exposition, over all its label sets (e.g. over shards); panics if the
/// family has no sample.
pub fn total(metrics: &str, name: &str) -> f64 {
    let values: Vec<f64> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = if rest.starts_with('{') {
                rest.rsplit_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            Some(value.parse().unwrap())
        })
        .collect();
    assert!(!values.is_empty(), "{name} missing from:\n{metrics}");
    values.iter().sum()
}

/// Every name in `text` that starts with `prefix` and goes on with the
/// characters `part` accepts: the metric or variable names a file uses.
pub fn names_with_prefix(
    text: &str,
    prefix: &str,
    part: fn(char) -> bool,
) -> std::collections::BTreeSet<String> {
    text.match_indices(prefix)
        .map(|(at, _)| text[at..].chars().take_while(|c| part(*c)).collect())
        .collect()
}

/// What a finished command printed: stdout, then stderr.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Value of the Prometheus sample `name` (exact text before the value).
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
        .parse()
        .unwrap()
}

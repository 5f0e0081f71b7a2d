//! Where the S3 credentials come from: the standard AWS chain, tried in
//! the AWS SDKs' order, and when credentials that expire are fetched again.
//! Owns the choice of source and the refresh schedule; fetching is
//! `aws-creds`' (blocking HTTP: call it off the async threads), and using
//! the credentials is `s3_bucket`'s.
//!
//! 1. **Environment**: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and
//!    `AWS_SESSION_TOKEN` for temporary keys. Read once.
//! 2. **Shared credentials file**: profile `AWS_PROFILE` (default
//!    `default`) of `AWS_SHARED_CREDENTIALS_FILE` (default
//!    `~/.aws/credentials`): `aws_access_key_id`, `aws_secret_access_key`,
//!    `aws_session_token`. Read once.
//! 3. **Web identity** (EKS IAM roles for service accounts):
//!    `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`, exchanged with STS
//!    (`AssumeRoleWithWebIdentity`); the token file is read again at each
//!    refresh.
//! 4. **Container** (ECS task roles, EKS Pod Identity):
//!    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`.
//! 5. **Instance metadata** (EC2 instance profiles), IMDSv2, on EC2 only;
//!    `AWS_EC2_METADATA_DISABLED=true` skips it.
//!
//! A source whose variables are set but that fails stops the search: its
//! error is the answer, rather than credentials from a later source.

use std::time::Duration;

use s3::creds::Credentials;

/// How long before expiry credentials are fetched again: 5 min, or half
/// their lifetime when that is shorter.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// After a failed refresh, the next try: 10 s later (the credentials in
/// hand are used until they expire).
pub const REFRESH_RETRY: Duration = Duration::from_secs(10);

/// Session name given to STS for web identity credentials.
const SESSION_NAME: &str = "streamhouse-agent";

/// The source the credentials came from, which refreshes go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Environment,
    Profile(String),
    WebIdentity,
    Container,
    InstanceMetadata,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Environment => write!(f, "environment"),
            Source::Profile(p) => write!(f, "profile {p}"),
            Source::WebIdentity => write!(f, "web identity"),
            Source::Container => write!(f, "container"),
            Source::InstanceMetadata => write!(f, "instance metadata"),
        }
    }
}

/// Reads an environment variable; injected so that tests choose it.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, empty values taken as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The first source of the chain that `env` configures, with the reasons
/// the ones before it were passed over. Makes no network call.
pub fn choose(env: Env<'_>) -> Result<Source, String> {
    let mut passed = Vec::new();
    if env("AWS_ACCESS_KEY_ID").is_some() {
        return Ok(Source::Environment);
    }
    passed.push("environment: AWS_ACCESS_KEY_ID is not set".to_owned());
    let profile = env("AWS_PROFILE");
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .or_else(|| home_dir(env).map(|h| format!("{}/.aws/credentials", h.trim_end_matches('/'))));
    match &file {
        // An explicit profile must be found; the default one only if the
        // file has it.
        Some(path) if profile.is_some() || profile_in(path, "default") => {
            return Ok(Source::Profile(
                profile.unwrap_or_else(|| "default".to_owned()),
            ))
        }
        Some(path) => passed.push(format!("profile: no [default] in {path}")),
        None => passed.push("profile: no home directory".to_owned()),
    }
    if env("AWS_ROLE_ARN").is_some() && env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
        return Ok(Source::WebIdentity);
    }
    passed.push("web identity: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are not set".into());
    if env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
    {
        return Ok(Source::Container);
    }
    passed.push("container: AWS_CONTAINER_CREDENTIALS_*_URI is not set".into());
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        passed.push("instance metadata: AWS_EC2_METADATA_DISABLED=true".into());
        return Err(no_credentials(&passed));
    }
    Ok(Source::InstanceMetadata)
}

fn no_credentials(passed: &[String]) -> String {
    format!(
        "no S3 credentials found ({}); see docs/SECURITY.md, \"Object store credentials\"",
        passed.join("; ")
    )
}

fn home_dir(env: Env<'_>) -> Option<String> {
    env("HOME")
}

/// Whether the INI file at `path` has the section `[profile]`.
fn profile_in(path: &str, profile: &str) -> bool {
    let header = format!("[{profile}]");
    std::fs::read_to_string(path).is_ok_and(|text| text.lines().any(|l| l.trim() == header))
}

/// Fetches credentials from `source` (blocking: network calls for web
/// identity, container and instance metadata, each bounded by aws-creds'
/// request timeout).
pub fn fetch(source: &Source) -> Result<Credentials, String> {
    let fetched = match source {
        Source::Environment => Credentials::from_env(),
        Source::Profile(p) => Credentials::from_profile(Some(p)),
        Source::WebIdentity => Credentials::from_sts_env(SESSION_NAME),
        Source::Container => Credentials::from_container_credentials_provider(),
        Source::InstanceMetadata => Credentials::from_instance_metadata_v2(false),
    };
    fetched.map_err(|e| format!("S3 credentials from the {source}: {e}"))
}

/// When credentials fetched at `now_ms` that expire at `expires_ms` (Unix
/// ms) are to be fetched again: [`REFRESH_BEFORE_EXPIRY`] before expiry,
/// or halfway when they live shorter than twice that.
pub fn refresh_at_ms(now_ms: i64, expires_ms: i64) -> i64 {
    let lifetime = (expires_ms - now_ms).max(0);
    let early = (REFRESH_BEFORE_EXPIRY.as_millis() as i64).min(lifetime / 2);
    expires_ms - early
}

/// The expiry of `creds` in Unix ms (`None`: they do not expire).
pub fn expires_ms(creds: &Credentials) -> Option<i64> {
    creds
        .expiration
        .as_ref()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_chain_takes_the_first_source_configured() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(&file, "[default]\naws_access_key_id = a\n").unwrap();
        let file = file.display().to_string();
        let all = [
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SHARED_CREDENTIALS_FILE", file.as_str()),
            ("AWS_ROLE_ARN", "arn"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/"),
        ];
        let expect = [
            Source::Environment,
            Source::Profile("default".into()),
            Source::WebIdentity,
            Source::Container,
            Source::InstanceMetadata,
        ];
        for (skip, want) in expect.iter().enumerate() {
            // Sources before `want` unset (the web identity needs both).
            let vars: Vec<_> = all
                .iter()
                .copied()
                .filter(|(k, _)| {
                    let pos = match *k {
                        "AWS_ACCESS_KEY_ID" => 0,
                        "AWS_SHARED_CREDENTIALS_FILE" => 1,
                        "AWS_ROLE_ARN" | "AWS_WEB_IDENTITY_TOKEN_FILE" => 2,
                        _ => 3,
                    };
                    pos >= skip
                })
                .collect();
            assert_eq!(&choose(&env_of(&vars)).unwrap(), want, "{vars:?}");
        }
        let named = env_of(&[("AWS_PROFILE", "prod"), ("HOME", "/nonexistent")]);
        assert_eq!(choose(&named).unwrap(), Source::Profile("prod".into()));
    }

    #[test]
    fn no_source_says_what_was_tried() {
        let env = env_of(&[
            ("HOME", "/nonexistent"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]);
        let e = choose(&env).unwrap_err();
        for part in [
            "AWS_ACCESS_KEY_ID is not set",
            "no [default] in /nonexistent/.aws/credentials",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS",
            "AWS_EC2_METADATA_DISABLED",
        ] {
            assert!(e.contains(part), "{e}");
        }
    }

    #[test]
    fn credentials_are_fetched_again_before_they_expire() {
        let hour = 3_600_000;
        assert_eq!(refresh_at_ms(0, hour), hour - 300_000);
        // Short-lived: halfway.
        assert_eq!(refresh_at_ms(1_000, 5_000), 3_000);
        // Already expired: now.
        assert_eq!(refresh_at_ms(10_000, 5_000), 5_000);
    }
}

//! TLS and API tokens for the produce benchmarks: the client side given by
//! flags (`--tls-ca`, `--tls-cert`/`--tls-key`, `--tls-server-name`,
//! `--token-file`) for an agent of your own, or `--secure`, which gives the
//! embedded agent a throwaway CA's certificate and `--auth required`, and
//! the benchmark a user of its own whose token and access rules it uses as
//! any client would. Owns those settings and the files `--secure` makes;
//! the runs themselves are `produce`'s.

use std::path::{Path, PathBuf};

use clap::Args;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use streamhouse_client::net::{PoolConfig, TlsConfig, Token};
use streamhouse_client::{AclRule, Admin};

/// The security flags of the produce benchmarks.
#[derive(Args, Debug, Clone, Default)]
pub struct SecurityArgs {
    /// TLS and `--auth required` on the embedded agent (a throwaway CA and
    /// certificate for 127.0.0.1), and the benchmark run as a user with a
    /// token and access rules on the topic only.
    #[arg(long, conflicts_with_all = ["bootstrap", "tls_ca", "token_file"])]
    pub secure: bool,
    /// Connect over TLS, trusting this CA's certificate(s) (PEM).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for agents with mutual TLS; with --tls-key.
    #[arg(long, requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name the agents' certificate must carry (default: the bootstrap host).
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
    /// File holding the API token to send (agents with `--auth required`).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

/// What `--secure` made for the embedded agent.
pub struct Secured {
    /// Flags for the agent.
    pub agent_args: Vec<String>,
    /// The superuser's token (the agent's bootstrap token).
    bootstrap: Token,
    tls: TlsConfig,
    /// The certificates and token files, removed when the run ends.
    _files: tempfile::TempDir,
}

/// Principal the benchmark runs as under `--secure`.
const USER: &str = "perf";

impl SecurityArgs {
    /// What the run is secured with: `plaintext`, `tls`, `token` or
    /// `tls+token`.
    pub fn label(&self) -> &'static str {
        match (
            self.secure || self.tls_ca.is_some(),
            self.secure || self.token_file.is_some(),
        ) {
            (false, false) => "plaintext",
            (true, false) => "tls",
            (false, true) => "token",
            (true, true) => "tls+token",
        }
    }

    /// The client settings of the explicit flags.
    pub fn pool(&self) -> Result<PoolConfig, String> {
        let mut pool = PoolConfig::default();
        if let Some(ca) = &self.tls_ca {
            let mut tls = TlsConfig::new().ca_file(ca).map_err(|e| e.to_string())?;
            if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
                tls = tls.identity_files(cert, key).map_err(|e| e.to_string())?;
            }
            if let Some(name) = &self.tls_server_name {
                tls = tls.server_name(name.clone());
            }
            pool.tls = Some(tls);
        }
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
            pool.token = Some(Token::new(text.trim()));
        }
        Ok(pool)
    }

    /// For `--secure`: a CA and a certificate for 127.0.0.1 and a bootstrap
    /// token, written into a new directory under `parent` (nothing is made
    /// without `--secure`).
    pub fn secure_embedded(&self, parent: &Path) -> Result<Option<Secured>, String> {
        if !self.secure {
            return Ok(None);
        }
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let files = tempfile::Builder::new()
            .prefix("streamhouse-perf-secure-")
            .tempdir_in(parent)
            .map_err(|e| format!("temp dir in {}: {e}", parent.display()))?;
        let dir = files.path();
        let fail = |e: rcgen::Error| format!("--secure: making certificates: {e}");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "streamhouse-perf CA");
        let ca_key = KeyPair::generate().map_err(fail)?;
        let ca = ca_params.self_signed(&ca_key).map_err(fail)?;
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).map_err(fail)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "streamhouse-perf agent");
        let leaf_key = KeyPair::generate().map_err(fail)?;
        let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).map_err(fail)?;
        let bootstrap = format!("perf-bootstrap-{:032x}", rand::random::<u128>());
        let write = |name: &str, text: &str| -> Result<String, String> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(path.display().to_string())
        };
        let agent_args = vec![
            format!("--tls-cert={}", write("agent.pem", &leaf.pem())?),
            format!(
                "--tls-key={}",
                write("agent.key", &leaf_key.serialize_pem())?
            ),
            "--auth=required".to_owned(),
            format!(
                "--bootstrap-token-file={}",
                write("bootstrap.token", &bootstrap)?
            ),
        ];
        Ok(Some(Secured {
            agent_args,
            bootstrap: Token::new(bootstrap),
            tls: TlsConfig::new().ca_pem(ca.pem()),
            _files: files,
        }))
    }
}

impl Secured {
    /// Creates the benchmark's user, as the superuser, with rules to
    /// create, describe, produce to and consume `topic`, and returns the
    /// client settings with that user's token.
    pub async fn user_pool(&self, bootstrap: &str, topic: &str) -> Result<PoolConfig, String> {
        let root_pool = PoolConfig {
            tls: Some(self.tls.clone()),
            token: Some(self.bootstrap.clone()),
            ..PoolConfig::default()
        };
        let admin = Admin::with_pool(bootstrap, root_pool.clone())
            .await
            .map_err(|e| format!("--secure: connecting as the superuser: {e}"))?;
        admin
            .create_user(USER)
            .await
            .map_err(|e| format!("--secure: creating user {USER}: {e}"))?;
        for op in ["create", "describe", "produce", "consume"] {
            admin
                .add_acl(&AclRule::allow_topic(USER, topic, op))
                .await
                .map_err(|e| format!("--secure: access rule {op} on {topic}: {e}"))?;
        }
        let token = admin
            .create_token(USER, "streamhouse-perf")
            .await
            .map_err(|e| format!("--secure: token for {USER}: {e}"))?;
        Ok(PoolConfig {
            token: Some(token.token),
            ..root_pool
        })
    }
}

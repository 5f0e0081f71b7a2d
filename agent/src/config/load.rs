//! Loading the agent's configuration: the command line and environment
//! through clap, with the optional `--config` TOML file merged in as flags
//! wherever neither the command line nor the environment set one. Owns no
//! flag's meaning (that is `AgentConfig`) and no validation.

use super::AgentConfig;

/// Why the configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The command line or environment (clap's error, which names the flag;
    /// also `--help` and `--version`).
    Args(clap::Error),
    /// The `--config` file.
    File(String),
}

impl AgentConfig {
    /// Parses the command line `args` (program name first) with the
    /// environment and the `--config` file. Errors name the offending flag
    /// or file key.
    pub fn load<I, T>(args: I) -> Result<AgentConfig, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::load_with_version(args, None)
    }

    /// [`AgentConfig::load`], with `--version` printing `version` (the
    /// binary passes its version and commit) instead of the crate version.
    pub fn load_with_version<I, T>(
        args: I,
        version: Option<&'static str>,
    ) -> Result<AgentConfig, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let texts: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let path = texts
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                a.strip_prefix("--config=").map(str::to_owned).or_else(|| {
                    (a == "--config")
                        .then(|| texts.get(i + 1).cloned())
                        .flatten()
                })
            })
            .or_else(|| std::env::var("STREAMHOUSE_CONFIG").ok());
        let mut full = args.first().cloned().into_iter().collect::<Vec<_>>();
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| LoadError::File(format!("--config {path}: {e}")))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| LoadError::File(format!("--config {path}: {e}")))?;
            let cmd = AgentConfig::command();
            for (key, value) in table {
                let flag = key.replace('_', "-");
                let arg = cmd
                    .get_arguments()
                    .find(|a| a.get_long() == Some(flag.as_str()) && flag != "config")
                    .ok_or_else(|| {
                        LoadError::File(format!("--config {path}: unknown key {key:?}"))
                    })?;
                let on_command_line = texts
                    .iter()
                    .any(|a| *a == format!("--{flag}") || a.starts_with(&format!("--{flag}=")));
                let in_env = arg.get_env().is_some_and(|e| std::env::var_os(e).is_some());
                if on_command_line || in_env {
                    continue;
                }
                if !arg.get_action().takes_values() {
                    match value {
                        toml::Value::Boolean(true) => full.push(format!("--{flag}").into()),
                        toml::Value::Boolean(false) => {}
                        other => {
                            return Err(LoadError::File(format!(
                                "--config {path}: key {key:?} must be true or false, not {other}"
                            )))
                        }
                    }
                    continue;
                }
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    other => {
                        return Err(LoadError::File(format!(
                            "--config {path}: key {key:?} must be a string or a number, not {}",
                            other.type_str()
                        )))
                    }
                };
                full.push(format!("--{flag}={text}").into());
            }
        }
        full.extend(args.into_iter().skip(1));
        let mut cmd = AgentConfig::command();
        if let Some(v) = version {
            cmd = cmd.version(v);
        }
        let matches = cmd.try_get_matches_from(full).map_err(LoadError::Args)?;
        AgentConfig::from_arg_matches(&matches).map_err(LoadError::Args)
    }
}

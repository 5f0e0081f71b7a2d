//! `streamctl user ...` and `streamctl token ...`: users and API tokens.
//! A new token is printed alone on stdout (so that redirecting stdout to a
//! file stores it) with a reminder on stderr that it is shown once; lists
//! never show a token. Owns the printing; the calls are the client's.

use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::args::{Format, TokenCmd, UserCmd};
use crate::target::Target;
use crate::Failure;

/// Runs one `user` command.
///
/// # Cancellation
/// Dropped after an agent took a create or delete, it may have happened.
pub async fn run_user(target: &Target, cmd: UserCmd, out: &mut impl Write) -> Result<(), Failure> {
    let admin = target.admin().await?;
    match cmd {
        UserCmd::Create { name } => {
            admin.create_user(&name).await?;
            writeln!(out, "created user {name}")?;
        }
        UserCmd::Delete { name } => {
            admin.delete_user(&name).await?;
            writeln!(out, "deleted user {name} and revoked its tokens")?;
        }
        UserCmd::List { format } => {
            let users = admin.list_users().await?;
            if format == Format::Json {
                crate::format::write_json(out, &users)?;
                return Ok(());
            }
            writeln!(out, "user\ttokens\tcreated")?;
            for u in users {
                writeln!(out, "{}\t{}\t{}", u.name, u.tokens, date(u.created_ms))?;
            }
        }
    }
    Ok(())
}

/// Runs one `token` command.
///
/// # Cancellation
/// Dropped after an agent took a create, the token may exist unseen
/// (revoke it: `token list` shows its id).
pub async fn run_token(
    target: &Target,
    cmd: TokenCmd,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let admin = target.admin().await?;
    match cmd {
        TokenCmd::Create { user, description } => {
            let t = admin.create_token(&user, &description).await?;
            writeln!(out, "{}", t.token.expose())?;
            eprintln!(
                "streamctl: token {} for user {user}: shown only now, store it (the agents keep only its hash)",
                t.id
            );
        }
        TokenCmd::Revoke { id } => {
            admin.revoke_token(&id).await?;
            writeln!(out, "revoked token {id}")?;
        }
        TokenCmd::List { user, format } => {
            let tokens = admin.list_tokens(user.as_deref()).await?;
            if format == Format::Json {
                crate::format::write_json(out, &tokens)?;
                return Ok(());
            }
            writeln!(out, "id\tuser\tcreated\tdescription")?;
            for t in tokens {
                let description = if t.description.is_empty() {
                    "-"
                } else {
                    &t.description
                };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{description}",
                    t.id,
                    t.user,
                    date(t.created_ms)
                )?;
            }
        }
    }
    Ok(())
}

/// ms since the Unix epoch as an RFC 3339 UTC time, to the second.
fn date(ms: i64) -> String {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

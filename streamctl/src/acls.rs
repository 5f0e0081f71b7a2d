//! `streamctl acl ...`: access rules. Builds a rule from the flags (one of
//! --topic, --group, --cluster; --prefix; --deny) and prints the rules as
//! a table or JSON. Owns the printing; the checks of each field are the
//! agents' (their error names it), the calls the client's.

use std::io::Write;

use streamhouse_client::AclRule;

use crate::args::{AclCmd, AclRuleArgs, Format};
use crate::target::Target;
use crate::Failure;

/// Runs one `acl` command.
///
/// # Cancellation
/// Dropped after an agent took an add or remove, it may have happened.
pub async fn run(target: &Target, cmd: AclCmd, out: &mut impl Write) -> Result<(), Failure> {
    let admin = target.admin().await?;
    match cmd {
        AclCmd::Add(a) => {
            let rule = rule_of(a);
            admin.add_acl(&rule).await?;
            writeln!(out, "added: {}", describe(&rule))?;
        }
        AclCmd::Remove(a) => {
            let rule = rule_of(a);
            admin.remove_acl(&rule).await?;
            writeln!(out, "removed: {}", describe(&rule))?;
        }
        AclCmd::List { principal, format } => {
            let rules = admin.list_acls(principal.as_deref()).await?;
            if format == Format::Json {
                crate::format::write_json(out, &rules)?;
                return Ok(());
            }
            writeln!(out, "principal\tpermission\toperation\tresource\tpattern")?;
            for r in rules {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    r.principal,
                    r.permission,
                    r.operation,
                    resource(&r),
                    r.pattern_type
                )?;
            }
        }
    }
    Ok(())
}

fn rule_of(a: AclRuleArgs) -> AclRule {
    let (kind, name) = match (a.topic, a.group) {
        (Some(t), _) => ("topic", t),
        (None, Some(g)) => ("group", g),
        (None, None) => ("cluster", String::new()),
    };
    AclRule {
        principal: a.principal,
        resource_type: kind.into(),
        pattern_type: if a.prefix { "prefix" } else { "literal" }.into(),
        resource_name: name,
        operation: a.operation,
        permission: if a.deny { "deny" } else { "allow" }.into(),
    }
}

/// `topic:orders`, `group:billing-`, `cluster`.
fn resource(r: &AclRule) -> String {
    if r.resource_type == "cluster" {
        "cluster".into()
    } else {
        format!("{}:{}", r.resource_type, r.resource_name)
    }
}

/// One line saying what a rule does.
fn describe(r: &AclRule) -> String {
    let prefix = if r.pattern_type == "prefix" {
        " (prefix)"
    } else {
        ""
    };
    format!(
        "{} {} {} on {}{prefix}",
        r.permission,
        r.principal,
        r.operation,
        resource(r)
    )
}

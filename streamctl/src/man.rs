//! `streamctl man`: man pages generated from the argument definitions
//! (`args`), one per command, printed or written into a directory. Owns
//! only the choice of page and where it goes.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use crate::args::Cli;
use crate::Failure;

/// streamctl's command tree as the pages show it: built, so each command
/// has its full name (`streamctl-topic-create`); no `help` command.
fn tree() -> clap::Command {
    let mut cmd = Cli::command()
        .disable_help_subcommand(true)
        .propagate_version(true);
    cmd.build();
    cmd
}

/// Prints the page of `path` (e.g. `["topic", "create"]`; empty for
/// streamctl's own).
pub fn print(path: &[String], out: &mut impl Write) -> Result<(), Failure> {
    let mut cmd = tree();
    for (i, name) in path.iter().enumerate() {
        let next = cmd.find_subcommand(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            Failure::Usage(format!(
                "no command `{}`: streamctl {}has {}",
                path[..=i].join(" "),
                path[..i]
                    .iter()
                    .map(|p| format!("{p} "))
                    .collect::<String>(),
                if known.is_empty() {
                    "no commands".to_string()
                } else {
                    format!("the commands {}", known.join(", "))
                }
            ))
        })?;
        cmd = next;
    }
    clap_mangen::Man::new(cmd).render(out)?;
    Ok(())
}

/// Writes the pages of streamctl and every command into `dir` (created
/// if missing), naming each file written.
pub fn write_all(dir: &Path, out: &mut impl Write) -> Result<(), Failure> {
    fn each(cmd: clap::Command, dir: &Path, out: &mut dyn Write) -> Result<(), Failure> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            each(sub.clone(), dir, out)?;
        }
        let path = clap_mangen::Man::new(cmd)
            .generate_to(dir)
            .map_err(|e| Failure::Failed(format!("writing into {}: {e}", dir.display())))?;
        writeln!(out, "{}", path.display())?;
        Ok(())
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Failed(format!("creating {}: {e}", dir.display())))?;
    each(tree(), dir, out)
}

//! What berth's binaries say about themselves, from their clap definitions, so it cannot drift
//! from what they parse:
//! - [`VERSION`]: the version and the git commit (`svc --version`);
//! - [`ManualArgs`]: `--completions SHELL` (a completion script on stdout) and the hidden
//!   `--generate-man DIR` (the man pages, for the package), flattened into each binary's `Cli`
//!   and answered by [`parse`], with which every `main` starts;
//! - [`man`]: the pages (clap_mangen), and `berth.conf(5)` from the model's keyword tables and the
//!   configuration reference;
//! - [`complete`]: the scripts (clap_complete), with the hook by which `svc` completes service
//!   names and actions;
//! - [`log`]: how the daemons log (stderr, journald-aware), one setup for `svcd` and
//!   `berth-collector`; and the services' action log files (`svc SVC logs`), which `svc` and
//!   `svcd` both write;
//! - [`out`]: stdout and stderr that a closed pipe does not break (`svc print status | head -1`),
//!   for every binary's output.
//!
//! Why an option and not a `completions` subcommand: `svc WORD ...` reads its first word as a
//! service name, and `completions` is a valid one. An option (`--completions`) can never be: a
//! service name starts with a letter or a digit.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod complete;
pub mod keywords;
pub mod log;
pub mod man;
pub mod out;

use std::path::{Path, PathBuf};

/// The git commit the binaries were built from (`unknown` when built outside a git checkout
/// without `BERTH_GIT_COMMIT` set).
pub const GIT_COMMIT: &str = env!("BERTH_GIT_COMMIT");

/// `0.1.0 (commit 540ec6b1a2b3)`: what `--version` prints after the program's name.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BERTH_GIT_COMMIT"),
    ")"
);

/// The shells `--completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// bash (with bash-completion).
    Bash,
    /// zsh (compsys).
    Zsh,
    /// fish.
    Fish,
}

/// The options every berth binary takes to describe itself. Flatten it into the `Cli`:
/// `#[command(flatten)] manual: berth_manual::ManualArgs`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ManualArgs {
    /// Print the completion script for SHELL on stdout and exit (the package installs them).
    #[arg(long, value_enum, value_name = "SHELL")]
    pub completions: Option<Shell>,
    /// Write this program's man pages into DIR and exit (used to build the package).
    #[arg(long, value_name = "DIR")]
    pub generate_man: Option<PathBuf>,
}

/// Builds a clap `Command` (`Cli::command`).
pub type CommandFn = fn() -> clap::Command;

/// What a program adds to the generic pages and scripts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// The program answers `--complete-words -- WORDS...` (see [`complete`]): its scripts call it
    /// for the words that are not options.
    pub complete_words: bool,
    /// Also write `berth.conf.5`, the service file keywords.
    pub keywords_page: bool,
    /// Options parsed after the program's words (svc's action options), with their heading.
    pub more_options: Option<(&'static str, CommandFn)>,
    /// Sections of the man page after the options (svcd's ENVIRONMENT, EXIT STATUS...).
    pub sections: &'static [ManSection],
}

/// A man page section of term/definition items (`ENVIRONMENT`: `SVCD_LOG`, what it does).
#[derive(Debug, Clone, Copy)]
pub struct ManSection {
    /// The heading, upper case by convention.
    pub heading: &'static str,
    /// A paragraph before the items (may be empty).
    pub text: &'static str,
    /// `(term, definition)`, in order.
    pub items: &'static [(&'static str, &'static str)],
}

impl ManualArgs {
    /// True when one of these options was given: the program does that and nothing else.
    fn requested(&self) -> bool {
        self.completions.is_some() || self.generate_man.is_some()
    }

    /// Does what was asked; the exit code (0 when stdout's reader went away early: see
    /// [`out`]).
    fn run_code(&self, cmd: clap::Command, extras: Extras) -> u8 {
        let name = cmd.get_name().to_string();
        let result = match (&self.completions, &self.generate_man) {
            (Some(shell), _) => {
                out::write(complete::script(*shell, cmd, extras.complete_words).as_bytes());
                Ok(())
            }
            (None, Some(dir)) => write_man_pages(dir, cmd, extras),
            (None, None) => Ok(()),
        };
        match result {
            Ok(()) => out::status(&name, 0),
            Err(e) => {
                errln!("{name}: {e}");
                out::status(&name, 1)
            }
        }
    }
}

/// The start of every berth binary's `main`: `C::parse()` (which exits on bad usage and
/// `--help`), and when the command line asks for `--completions` or `--generate-man`
/// (`manual` finds the flattened [`ManualArgs`] in `C`), that done and the process exited.
pub fn parse<C: clap::Parser>(manual: fn(&C) -> &ManualArgs, extras: Extras) -> C {
    let cli = C::parse();
    let args = manual(&cli);
    if args.requested() {
        let code = args.run_code(C::command(), extras);
        std::process::exit(i32::from(code));
    }
    cli
}

fn write_man_pages(dir: &Path, cmd: clap::Command, extras: Extras) -> Result<(), String> {
    let write = |file: &str, text: &[u8]| {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let file = format!("{}.1", cmd.get_name());
    let more = extras.more_options.map(|(h, f)| (h, f()));
    let page = man::program_page(cmd, more, extras.sections)
        .map_err(|e| format!("cannot render {file}: {e}"))?;
    write(&file, &page)?;
    if extras.keywords_page {
        write("berth.conf.5", man::keywords_page().as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use berth_model::config::NodeConfig;

    use super::*;

    /// The package's /etc/berth/node.toml.
    const PACKAGED_NODE_TOML: &str = include_str!("../../../packaging/node.toml");

    #[test]
    fn packaged_node_toml_shows_the_defaults() {
        let file = Path::new("/etc/berth/node.toml");
        let as_shipped = NodeConfig::parse(file, PACKAGED_NODE_TOML).unwrap();
        assert_eq!(as_shipped, NodeConfig::default());
        // Every `# key = value` line uncommented: known keys, valid values, the defaults (but
        // the node name, which defaults to the hostname).
        let uncommented: String = PACKAGED_NODE_TOML
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(kv) if kv.contains(" = ") && !kv.starts_with(' ') => kv,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let mut all = NodeConfig::parse(file, &uncommented).unwrap();
        assert_eq!(all.nodename.as_deref(), Some("node1"));
        assert_eq!(
            all.token_path(Path::new("/etc/berth")),
            Path::new("/etc/berth/token")
        );
        all.nodename = None;
        all.token_file = None;
        assert_eq!(all, NodeConfig::default());
    }

    #[test]
    fn version_names_a_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(
            VERSION.contains(&format!("(commit {GIT_COMMIT})")),
            "{VERSION}"
        );
        assert!(!GIT_COMMIT.is_empty());
    }
}

//! `svc --complete-words -- WORDS...`: the candidates the completion scripts offer for the word
//! under the cursor (see `berth_manual::complete`): service names from the config dir, actions
//! after a service name, action options after an action, and the service's rids and tags after
//! `--rid` / `--tags`. `None`: not a word this knows (a global option or its value), the script
//! falls back to clap_complete's completion.

use std::path::PathBuf;

use berth_engine::load::{load_service, service_names};
use berth_manual::complete::split;
use berth_model::action::{NodeCommand, PrintTarget, ServiceAction, SyncVerb};
use berth_model::paths::Paths;
use clap::CommandFactory as _;

use crate::{ActionArgs, Cli};

/// Every action's first word after a service name, in the order `svc --help` lists them
/// (the action table's).
pub fn actions() -> Vec<String> {
    ServiceAction::first_words()
}

fn config_dir(given: Option<&str>) -> PathBuf {
    given
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("BERTH_CONFIG_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/berth"))
}

/// The candidates for the last of `words` (the words after `svc`, the current one last).
pub fn candidates(words: &[String]) -> Option<Vec<String>> {
    let (current, done) = match words.split_last() {
        Some((c, d)) => (c.as_str(), d),
        None => ("", &[][..]),
    };
    let line = split(&Cli::command(), done);
    let paths = Paths {
        config_dir: config_dir(line.option("config-dir")),
        var_dir: PathBuf::new(),
        run_dir: PathBuf::new(),
    };
    let services = || service_names(&paths).unwrap_or_default();
    // `-s <TAB>`, `--service <TAB>`: a service (after a comma: one more).
    if line.value_pending && matches!(done.last().map(String::as_str), Some("-s" | "--service")) {
        let (head, _) = current.rsplit_once(',').unwrap_or(("", current));
        return Some(
            services()
                .into_iter()
                .map(|s| {
                    if head.is_empty() {
                        s
                    } else {
                        format!("{head},{s}")
                    }
                })
                .collect(),
        );
    }
    // `svc -s web ...`: the words are the service's action and its options.
    let dash_s = done.iter().position(|w| w == "-s" || w == "--service");
    let mut rest: Vec<&str> = line.rest.iter().map(String::as_str).collect();
    let named = dash_s
        .and_then(|i| done.get(i + 1))
        .map(|s| s.split(',').next().unwrap_or("").to_string());
    if let Some(svc) = &named {
        rest.insert(0, svc.as_str());
    }
    match rest.as_slice() {
        [] if line.value_pending || current.starts_with('-') => None,
        [] => {
            let mut all: Vec<String> = NodeCommand::RESERVED
                .iter()
                .filter(|w| **w != "json")
                .map(|w| (*w).to_string())
                .collect();
            // print, mon, validate, json_status first: the order the scripts were made with.
            all.sort_by_key(|w| {
                ["print", "mon", "validate", "json_status", "node"]
                    .iter()
                    .position(|x| x == w)
            });
            all.extend(services());
            Some(all)
        }
        ["print"] if named.is_none() => Some(vec!["status".to_string()]),
        ["validate"] if named.is_none() => Some(vec!["config".to_string()]),
        ["node"] if named.is_none() => Some(vec!["forget".to_string()]),
        ["print" | "validate" | "node", ..] if named.is_none() => Some(Vec::new()),
        [_] => Some(actions()),
        [_, "print"] => Some(PrintTarget::ALL.map(|t| t.as_str().to_string()).into()),
        [_, "validate" | "edit"] => Some(vec!["config".to_string()]),
        [_, "sync"] => Some(SyncVerb::ALL.map(|v| v.as_str().to_string()).into()),
        [_, "validate" | "edit", _, ..] => Some(Vec::new()),
        [_, "docker", ..] => Some(Vec::new()),
        [svc, after @ ..] => {
            let Ok((action, n)) = ServiceAction::parse(after) else {
                return Some(Vec::new());
            };
            let given = &after[n..];
            let action_cmd = ActionArgs::command();
            let opts = split(&action_cmd, given);
            if opts.value_pending {
                let option = given
                    .last()
                    .and_then(|o| o.strip_prefix("--"))
                    .unwrap_or("");
                return Some(option_values(&action_cmd, &paths, svc, option, current));
            }
            // The options the action takes (the action table's), not yet given.
            let mut all: Vec<String> = action
                .options()
                .iter()
                .map(|o| o.long())
                .filter(|l| opts.option(l).is_none())
                .map(|l| format!("--{l}"))
                .collect();
            all.push("--help".to_string());
            Some(all)
        }
    }
}

/// The values of an action option: the service's rids, its tags, the option's possible values.
fn option_values(
    cmd: &clap::Command,
    paths: &Paths,
    svc: &str,
    option: &str,
    current: &str,
) -> Vec<String> {
    let loaded = || load_service(paths, svc).ok();
    match option {
        "rid" => {
            let Some(svc) = loaded() else {
                return Vec::new();
            };
            // `--rid fs#1,ip<TAB>`: complete the word after the last comma.
            let (head, _) = current.rsplit_once(',').unwrap_or(("", current));
            let taken: Vec<&str> = head.split(',').collect();
            svc.resources
                .iter()
                .map(|r| r.rid.to_string())
                .filter(|r| !taken.contains(&r.as_str()))
                .map(|r| {
                    if head.is_empty() {
                        r
                    } else {
                        format!("{head},{r}")
                    }
                })
                .collect()
        }
        "target" => berth_model::config::SyncTarget::ALL
            .map(|t| t.as_str().to_string())
            .into(),
        "tags" => {
            let Some(svc) = loaded() else {
                return Vec::new();
            };
            let mut tags: Vec<String> = svc
                .resources
                .iter()
                .flat_map(|r| r.common.tags.iter().cloned())
                .collect();
            tags.sort();
            tags.dedup();
            tags
        }
        _ => cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(option))
            .map(|a| {
                a.get_possible_values()
                    .iter()
                    .map(|v| v.get_name().to_string())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut w: Vec<String> = line.split(' ').map(String::from).collect();
        if line.is_empty() {
            w = vec![String::new()];
        }
        w
    }

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("services")).unwrap();
        std::fs::write(
            d.path().join("services/web.toml"),
            "[fs.1]\ndev = \"/x.img\"\nmnt = \"/srv/x\"\ntype = \"ext4\"\ntags = [\"data\"]\n\
             [fs.2]\ndev = \"/y.img\"\nmnt = \"/srv/y\"\ntype = \"ext4\"\ntags = [\"data\", \"logs\"]\n",
        )
        .unwrap();
        std::fs::write(d.path().join("services/db.env"), "[DEFAULT]\n").unwrap();
        d
    }

    fn complete(d: &tempfile::TempDir, line: &str) -> Option<Vec<String>> {
        let mut w = vec![
            "--config-dir".to_string(),
            d.path().to_string_lossy().into_owned(),
        ];
        w.extend(words(line));
        candidates(&w)
    }

    #[test]
    fn first_word_is_print_mon_or_a_service_of_the_config_dir() {
        let d = dir();
        let first = [
            "print",
            "mon",
            "validate",
            "json_status",
            "node",
            "db",
            "web",
        ];
        assert_eq!(complete(&d, "").unwrap(), first);
        assert_eq!(complete(&d, "we").unwrap(), first);
        // `=` form of the option too.
        let w = vec![
            format!("--config-dir={}", d.path().display()),
            String::new(),
        ];
        assert_eq!(candidates(&w).unwrap(), first);
    }

    #[test]
    fn options_and_their_values_are_left_to_the_static_script() {
        let d = dir();
        assert_eq!(complete(&d, "--fo"), None);
        assert_eq!(candidates(&words("--format ")), None);
        assert_eq!(candidates(&words("--config-dir ")), None);
    }

    #[test]
    fn actions_after_a_service_and_targets_after_print() {
        let d = dir();
        let acts = complete(&d, "web ").unwrap();
        for a in [
            "start",
            "stop",
            "startfs",
            "stopcontainer",
            "print",
            "docker",
            "freeze",
        ] {
            assert!(acts.contains(&a.to_string()), "{a} in {acts:?}");
        }
        // Every action offered is one `svc --help` lists (startfs... as `start{kind}`).
        let help = crate::actions_help();
        let listed: Vec<&str> = help
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for a in &acts {
            assert!(
                listed.contains(&a.as_str()),
                "{a} not in svc --help:\n{help}"
            );
        }
        assert_eq!(
            complete(&d, "web print ").unwrap(),
            ["status", "config", "resinfo", "devs"]
        );
        assert_eq!(complete(&d, "web edit ").unwrap(), ["config"]);
        assert_eq!(complete(&d, "validate ").unwrap(), ["config"]);
        assert_eq!(
            complete(&d, "web sync ").unwrap(),
            ["update", "full", "nodes", "drp", "status"]
        );
        let opts = complete(&d, "web set --").unwrap();
        assert!(opts.contains(&"--kw".to_string()), "{opts:?}");
        assert_eq!(complete(&d, "print ").unwrap(), ["status"]);
        assert_eq!(
            complete(&d, "web docker ps -").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn action_options_rids_and_tags() {
        let d = dir();
        let opts = complete(&d, "web start --").unwrap();
        for o in [
            "--rid",
            "--tags",
            "--dry-run",
            "--force",
            "--waitlock",
            "--format",
        ] {
            assert!(opts.contains(&o.to_string()), "{o} in {opts:?}");
        }
        let opts = complete(&d, "web start --dry-run --").unwrap();
        assert!(!opts.contains(&"--dry-run".to_string()), "{opts:?}");
        assert_eq!(complete(&d, "web start --rid ").unwrap(), ["fs#1", "fs#2"]);
        assert_eq!(
            complete(&d, "web start --rid fs#1,").unwrap(),
            ["fs#1,fs#2"]
        );
        assert_eq!(complete(&d, "web start --tags ").unwrap(), ["data", "logs"]);
        assert_eq!(
            complete(&d, "web status --format ").unwrap(),
            ["text", "json"]
        );
        assert_eq!(
            complete(&d, "nosuch start --rid ").unwrap(),
            Vec::<String>::new()
        );
    }
}

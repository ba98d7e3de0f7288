//! The command-line options `svc` and `svcd` share: where berth's directories are.

use std::path::PathBuf;

use berth_model::paths::Paths;

/// `--config-dir`, `--var-dir`, `--run-dir` (or `BERTH_CONFIG_DIR`...), flattened into each
/// binary's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DirArgs {
    /// Where node.toml and services/ live.
    #[arg(long, env = "BERTH_CONFIG_DIR", default_value = "/etc/berth")]
    pub config_dir: PathBuf,
    /// Where locks, pidfiles and private docker sockets live.
    #[arg(long, env = "BERTH_VAR_DIR", default_value = "/var/lib/berth")]
    pub var_dir: PathBuf,
    /// Where dockerd exec roots live (keep it short).
    #[arg(long, env = "BERTH_RUN_DIR", default_value = "/run/berth")]
    pub run_dir: PathBuf,
}

impl From<DirArgs> for Paths {
    fn from(d: DirArgs) -> Paths {
        Paths {
            config_dir: d.config_dir,
            var_dir: d.var_dir,
            run_dir: d.run_dir,
        }
    }
}

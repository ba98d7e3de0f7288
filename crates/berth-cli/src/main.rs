//! `svc`: drive berth services from the command line.

// Output goes through berth_manual's out!/outln!/errln!: a closed pipe does not panic them.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod agent;
mod cluster;
mod complete;
mod config_cmd;
mod info;
mod log;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use berth_drivers::{HOST, docker};
use berth_engine::args::DirArgs;
use berth_engine::load::{LoadError, load_all, load_service};
use berth_engine::{ActionError, ActionOptions, Engine, is_up};
use berth_manual::{errln, out, outln};
use berth_model::Kind;
use berth_model::config::ServiceConfig;
use berth_model::order::{Selector, parse_action};
use berth_model::paths::Paths;
use berth_model::render::{render_node, render_service};
use berth_model::status::{NodeStatus, SCHEMA_VERSION, ServiceStatus};
use clap::{Parser, ValueEnum};
use tracing_subscriber::layer::SubscriberExt as _;

/// The actions, after `--help`; the partial actions are one per resource kind.
fn actions_help() -> String {
    let partial: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("start{k}|stop{k}"))
        .collect();
    format!(
        "\
Actions:
  print status                   every service of this node (json_status: the same in JSON)
  validate config                check node.toml and every service file
  SERVICE print status           one service's status tree (SERVICE json_status: in JSON)
  SERVICE print config [--eval]  the service file with berth's keyword names (--eval: as this
                                 node evaluates it, in berth TOML, every default spelled out)
  SERVICE print resinfo|devs     each resource's keywords and state / its block devices
  SERVICE status                 exit 0 when the service is up, 1 otherwise
  SERVICE start|stop|restart     the whole service, in order (stop in reverse)
  SERVICE {}
  SERVICE freeze|thaw            stop / resume the agent's monitoring of the service (cluster-wide)
  SERVICE switch --to NODE       relocate the service to NODE (cluster)
  SERVICE takeover|giveback      relocate it to this node / to the first fit node of `nodes`
  mon [--watch]                  the cluster at a glance: services x nodes
  SERVICE docker ARGS...         the docker CLI against the service's private dockerd
  SERVICE enable|disable         unset / set `disable` on the resources (--rid...; all without)
  SERVICE get|set|unset --kw fs#1.mnt[=/srv]   read or change the service file (format kept)
  SERVICE validate config        check the service file; exit 2 when it does not load
  SERVICE edit config            $EDITOR on a copy; saved only when it loads
  SERVICE logs [--follow]        the service's action log (svc's and svcd's actions); -f:
                                 then the lines appended, until interrupted

Action options (after the action): --rid ip#1,fs#1  --tags T  --subsets S  --dry-run
  --disable-rollback  --force  --waitlock SECONDS  --to NODE  --timeout SECONDS (switch,
  takeover, giveback)  --local (accepted: svc acts on this node)

`svc -s SERVICE ACTION` is `svc SERVICE ACTION`; a link to svc named after a service
(`ln -s /usr/bin/svc /etc/berth/web`) runs `svc web ...`.

Exit codes: 0 done, 1 the action failed, 2 bad usage or bad config.",
        partial.join("|")
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Drive berth services: start, stop, relocate and inspect them.
#[derive(Debug, Parser)]
#[command(name = "svc", version = berth_manual::VERSION, after_help = actions_help())]
struct Cli {
    #[command(flatten)]
    dirs: DirArgs,
    /// Output format of print and status.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Colours: auto means only on a terminal (and never with NO_COLOR set).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Log debug lines too.
    #[arg(long)]
    debug: bool,
    /// print status: check every resource now, even when svcd runs (by default its cached tree
    /// is shown while it is fresh).
    #[arg(long)]
    refresh: bool,
    /// The service(s) to act on, comma separated (svcmgr's `-s`): `svc -s web start` is
    /// `svc web start`.
    #[arg(short = 's', long = "service", value_name = "SERVICE[,SERVICE]")]
    service: Option<String>,
    /// --completions SHELL, --generate-man DIR.
    #[command(flatten)]
    manual: berth_manual::ManualArgs,
    /// [SERVICE] ACTION [ARGS...]
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present_any = ["completions", "generate_man"],
        value_name = "WORDS"
    )]
    words: Vec<OsString>,
}

/// Options that follow an action.
#[derive(Debug, Parser)]
#[command(
    name = "svc SERVICE ACTION",
    no_binary_name = true,
    disable_version_flag = true
)]
struct ActionArgs {
    /// Only these resources (comma separated rids).
    #[arg(long)]
    rid: Option<String>,
    /// Only resources with these tags (`a,b`: any; `a+b`: all).
    #[arg(long)]
    tags: Option<String>,
    /// Print what would be done; do nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave what a failed start started up.
    #[arg(long)]
    disable_rollback: bool,
    /// Skip the ip conflict check; take over a VG tagged by another node.
    #[arg(long)]
    force: bool,
    /// Seconds to wait for another action on the service to finish.
    #[arg(long, default_value_t = 60.0)]
    waitlock: f64,
    /// Output format (as the global --format).
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// `switch`: the node to move the service to.
    #[arg(long)]
    to: Option<String>,
    /// `switch`, `takeover`, `giveback`: how long to wait for the service to be up there.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// `mon`: refresh every second.
    #[arg(long)]
    watch: bool,
    /// `logs`: then print the lines appended to the log as they come, until interrupted.
    #[arg(short = 'f', long)]
    follow: bool,
    /// print status: check now, not svcd's cached tree (as the global --refresh).
    #[arg(long)]
    refresh: bool,
    /// print config: the values as this node evaluates them (scopes chosen, references
    /// replaced, defaults spelled out), as berth TOML.
    #[arg(long)]
    eval: bool,
    /// Only resources of these subsets (comma separated), with the other selectors.
    #[arg(long)]
    subsets: Option<String>,
    /// Accepted for OpenSVC's habit: svc always acts on this node.
    #[arg(long)]
    local: bool,
    /// `get`, `set`, `unset`: a keyword, `SECTION.KEY` (`fs#1.mnt`, `DEFAULT.nodes` or `nodes`);
    /// `set` takes `KEY=VALUE`, `KEY+=WORD`, `KEY-=WORD`. May be repeated.
    #[arg(long, value_name = "SECTION.KEY[=VALUE]")]
    kw: Vec<String>,
    /// `get`, `set`, `unset`: one keyword, svcmgr's way (`set --param fs#1.mnt --value /srv`).
    #[arg(long, value_name = "SECTION.KEY")]
    param: Option<String>,
    /// `set --param`: the value.
    #[arg(long)]
    value: Option<String>,
}

impl ActionArgs {
    /// `--kw`, `--param`, `--value` are for get, set and unset only.
    fn no_keywords(&self, action: &str) -> Result<(), Failure> {
        if !self.kw.is_empty() || self.param.is_some() || self.value.is_some() {
            return Err(usage(format!(
                "--kw, --param and --value go with get, set and unset, not {action}"
            )));
        }
        Ok(())
    }

    fn keywords(&self) -> config_cmd::Keywords<'_> {
        config_cmd::Keywords {
            kw: &self.kw,
            param: self.param.as_deref(),
            value: self.value.as_deref(),
        }
    }
}

/// The `--rid` list that `--subsets` (and `--rid`) leave: the resources of those subsets,
/// among the `--rid` ones when both are given. `None`: no `--subsets`.
fn subset_rids(
    svc: &ServiceConfig,
    subsets: Option<&str>,
    rid: Option<&str>,
) -> Result<Option<String>, Failure> {
    let Some(subsets) = subsets else {
        return Ok(None);
    };
    let wanted: Vec<&str> = subsets
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(usage(format!(
            "--subsets: expected subset names separated by ',', got {subsets:?}"
        )));
    }
    let rids: Option<Vec<&str>> = rid.map(|r| r.split(',').map(str::trim).collect());
    let picked: Vec<String> = svc
        .resources
        .iter()
        .filter(|r| {
            r.common
                .subset
                .as_deref()
                .is_some_and(|s| wanted.contains(&s))
        })
        .map(|r| r.rid.to_string())
        .filter(|r| rids.as_ref().is_none_or(|l| l.contains(&r.as_str())))
        .collect();
    if picked.is_empty() {
        return Err(usage(format!(
            "--subsets {subsets}: no resource of service {} is in it{}",
            svc.name,
            if rid.is_some() { " (among --rid)" } else { "" }
        )));
    }
    Ok(Some(picked.join(",")))
}

/// A failure and its exit code.
enum Failure {
    /// Bad usage or bad config: exit 2.
    Usage(anyhow::Error),
    /// The action failed: exit 1.
    Failed(anyhow::Error),
    /// Exit with this code, nothing more to say (status, docker passthrough).
    Code(u8),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Failed(e)
    }
}

fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure::Usage(anyhow!("{msg}"))
}

fn load_failure(e: LoadError) -> Failure {
    if e.is_config() {
        Failure::Usage(e.into())
    } else {
        Failure::Failed(e.into())
    }
}

struct App {
    paths: Paths,
    nodename: String,
    format: OutputFormat,
    color: bool,
    /// The cluster, opened on first use (`None` inside: no `[cluster]`).
    cluster: Option<Option<cluster::ClusterCli>>,
    refresh: bool,
}

fn nodename(paths: &Paths) -> Result<String, Failure> {
    let node = berth_engine::load::node_config(paths).map_err(load_failure)?;
    berth_engine::load::nodename(&node).map_err(load_failure)
}

fn words_to_strings(words: &[OsString]) -> Result<Vec<String>, Failure> {
    words
        .iter()
        .map(|w| {
            w.clone()
                .into_string()
                .map_err(|w| usage(format!("argument {w:?} is not valid UTF-8")))
        })
        .collect()
}

impl App {
    /// The node's cluster, if it is in one.
    fn cluster(&mut self) -> Result<Option<&cluster::ClusterCli>, Failure> {
        if self.cluster.is_none() {
            let c = cluster::ClusterCli::open(&self.paths, &self.nodename)
                .map_err(|e| Failure::Failed(e.context("cannot reach the cluster")))?;
            self.cluster = Some(c);
        }
        Ok(self.cluster.as_ref().and_then(Option::as_ref))
    }

    /// Set the cluster rows of these statuses when the node is in a cluster.
    fn decorate(&mut self, statuses: &mut [ServiceStatus], svcs: &[&ServiceConfig]) {
        // The files are read again only in a cluster (for their checksums).
        let files = || -> Vec<(String, Vec<u8>)> {
            svcs.iter()
                .map(|s| (s.name.clone(), std::fs::read(&s.source).unwrap_or_default()))
                .collect()
        };
        match self.cluster() {
            Ok(Some(c)) => c.decorate(statuses, &files()),
            Ok(None) => {}
            Err(Failure::Failed(e) | Failure::Usage(e)) => tracing::warn!("{e:#}"),
            Err(Failure::Code(_)) => {}
        }
    }

    fn print_json<T: serde::Serialize>(&self, value: &T) -> Result<(), Failure> {
        let text = serde_json::to_string_pretty(value).context("cannot serialise to JSON")?;
        // `svc web json_status | head`: the reader has what it wanted (see berth_manual::out).
        outln!("{text}");
        Ok(())
    }

    fn warn_config(&self, svc: &ServiceConfig) {
        for w in &svc.warnings {
            tracing::warn!("{w}");
        }
    }

    /// The service's status; the JSON form carries the docker chargeback and the operator's
    /// target too (as svcd's tree does).
    fn service_status(&self, svc: &ServiceConfig) -> ServiceStatus {
        let engine = Engine::new(&HOST, &self.paths, &self.nodename);
        let mut st = engine.status(svc);
        if self.format == OutputFormat::Json {
            st.chargeback = docker::chargeback(&engine.context(svc), None);
            st.target = berth_engine::record::read(&self.paths.service_var(&svc.name))
                .and_then(|r| berth_model::status::target_of_action(&r.action));
        }
        st
    }

    /// svcd's tree, when it runs and is fresh (see `agent`), with the header line to print.
    fn agent_tree<T: serde::de::DeserializeOwned>(
        &self,
        svc: Option<&str>,
        names: &[String],
    ) -> Option<(T, String)> {
        if self.refresh {
            return None;
        }
        let fetched = agent::fetch(&self.paths, svc, names)?;
        let value = serde_json::from_slice(&fetched.body).ok()?;
        Some((value, agent::header(&fetched)))
    }

    fn print_node_status(&mut self) -> Result<(), Failure> {
        let names = berth_engine::load::service_names(&self.paths).map_err(load_failure)?;
        for ignored in berth_engine::load::ignored_files(&self.paths) {
            errln!("warning: {ignored}");
        }
        // svcd's tree carries the cluster rows already.
        if let Some((node, header)) = self.agent_tree::<NodeStatus>(None, &names)
            && node.services.iter().all(|s| s.error.is_none())
            && node.services.iter().map(|s| &s.name).eq(names.iter())
        {
            match self.format {
                OutputFormat::Json => self.print_json(&node)?,
                OutputFormat::Text => out!("{header}{}", render_node(&node, self.color)),
            }
            return Ok(());
        }
        let all = load_all(&self.paths).map_err(load_failure)?;
        let mut broken = false;
        let mut loaded_ok = Vec::new();
        // One mount table, one netlink dump, one LVM report for every service's resources.
        let reads = std::sync::Arc::new(
            berth_drivers::StatusReads::new()
                .for_services(all.iter().filter_map(|(_, l)| l.as_ref().ok())),
        );
        let mut services: Vec<ServiceStatus> = berth_drivers::reads::with(&reads, || {
            all.into_iter()
                .map(|(name, loaded)| match loaded {
                    Ok(svc) => {
                        let st = self.service_status(&svc);
                        loaded_ok.push(svc);
                        st
                    }
                    Err(e) => {
                        broken = true;
                        tracing::error!("{e}");
                        ServiceStatus::broken(name, e.to_string())
                    }
                })
                .collect()
        });
        let refs: Vec<&ServiceConfig> = loaded_ok.iter().collect();
        self.decorate(&mut services, &refs);
        let node = NodeStatus {
            schema: SCHEMA_VERSION,
            nodename: self.nodename.clone(),
            services,
        };
        match self.format {
            OutputFormat::Json => self.print_json(&node)?,
            OutputFormat::Text => out!("{}", render_node(&node, self.color)),
        }
        if broken {
            Err(Failure::Code(2))
        } else {
            Ok(())
        }
    }

    fn run(&mut self, words: &[String]) -> Result<(), Failure> {
        match words {
            [js, rest @ ..] if js == "json_status" => {
                let args = self.action_args(&words[..1], rest)?;
                self.refresh |= args.refresh;
                self.format = OutputFormat::Json;
                return self.print_node_status();
            }
            [json, status, rest @ ..] if json == "json" && status == "status" => {
                let args = self.action_args(&words[..2], rest)?;
                self.refresh |= args.refresh;
                self.format = OutputFormat::Json;
                return self.print_node_status();
            }
            [v, c, rest @ ..] if v == "validate" && c == "config" => {
                self.action_args(&words[..2], rest)?;
                return config_cmd::validate(&self.paths, None);
            }
            [print, what, rest @ ..] if print == "print" => {
                if what != "status" {
                    return Err(usage(format!(
                        "unknown print target {what:?} (svc print status)"
                    )));
                }
                let args = self.action_args(&words[..2], rest)?;
                self.refresh |= args.refresh;
                return self.print_node_status();
            }
            [print, ..] if print == "print" => return Err(usage("usage: svc print status")),
            [mon, rest @ ..] if mon == "mon" => {
                let args = self.action_args(&words[..1], rest)?;
                let json = self.format == OutputFormat::Json;
                let color = self.color;
                let Some(c) = self.cluster()? else {
                    return Err(usage(
                        "svc mon: this node is in no cluster (no [cluster] in node.toml)",
                    ));
                };
                return c.mon(json, color, args.watch).map_err(Failure::Failed);
            }
            [_] => {
                return Err(usage(format!(
                    "no action given for service {:?}\n\n{}",
                    words[0],
                    actions_help()
                )));
            }
            _ => {}
        }
        let name = &words[0];
        let action = words[1].as_str();
        let rest = &words[2..];
        // The commands on the file itself: they work on a file that does not load.
        match (action, rest.first().map(String::as_str)) {
            ("validate" | "edit", Some("config")) => {
                self.action_args(&words[..3], &rest[1..])?;
                return if action == "validate" {
                    config_cmd::validate(&self.paths, Some(name))
                } else {
                    config_cmd::edit_config(&self.paths, name)
                };
            }
            ("validate" | "edit", _) => {
                return Err(usage(format!("usage: svc {name} {action} config")));
            }
            ("get" | "set" | "unset", _) => {
                let args = self.action_args(&words[..2], rest)?;
                let kws = args.keywords();
                return match action {
                    "get" => config_cmd::get(&self.paths, name, &kws),
                    _ => config_cmd::set(&self.paths, name, &kws, action == "unset"),
                };
            }
            ("logs", _) => {
                let args = self.action_args(&words[..2], rest)?;
                return self.logs(name, args.follow);
            }
            _ => {}
        }
        let svc = load_service(&self.paths, name).map_err(load_failure)?;
        self.warn_config(&svc);
        match action {
            "json_status" => {
                let args = self.action_args(&words[..2], rest)?;
                args.no_keywords(action)?;
                self.refresh |= args.refresh;
                self.format = OutputFormat::Json;
                self.print_service_status(&svc)
            }
            "json" if rest.first().is_some_and(|w| w == "status") => {
                let args = self.action_args(&words[..3], &rest[1..])?;
                args.no_keywords(action)?;
                self.refresh |= args.refresh;
                self.format = OutputFormat::Json;
                self.print_service_status(&svc)
            }
            "enable" | "disable" => {
                let args = self.action_args(&words[..2], rest)?;
                args.no_keywords(action)?;
                let rid = subset_rids(&svc, args.subsets.as_deref(), args.rid.as_deref())?;
                let selector = Selector::from_options(
                    rid.as_deref().or(args.rid.as_deref()),
                    args.tags.as_deref(),
                    None,
                )
                .map_err(usage)?;
                selector.check(&svc).map_err(usage)?;
                config_cmd::enable(&self.paths, &svc, &selector, action == "enable")
            }
            "print" => {
                let args =
                    self.action_args(&words[..3.min(words.len())], rest.get(1..).unwrap_or(&[]))?;
                args.no_keywords(action)?;
                self.refresh |= args.refresh;
                match rest.first().map(String::as_str) {
                    Some("resinfo") => {
                        let st = self.service_status(&svc);
                        let rows = info::resinfo(&svc, &st);
                        match self.format {
                            OutputFormat::Json => self.print_json(&rows),
                            OutputFormat::Text => {
                                out!("{}", info::render_resinfo(&svc.name, &rows));
                                Ok(())
                            }
                        }
                    }
                    Some("devs" | "disklist") => {
                        let devs =
                            info::devs(&berth_drivers::Ctx::new(&svc, &self.nodename, &self.paths));
                        match self.format {
                            OutputFormat::Json => self.print_json(&devs),
                            OutputFormat::Text => {
                                out!("{}", info::render_devs(&svc.name, &devs));
                                Ok(())
                            }
                        }
                    }
                    Some("status") => self.print_service_status(&svc),
                    Some("config") => match self.format {
                        OutputFormat::Json => self.print_json(&svc),
                        OutputFormat::Text if args.eval => {
                            let text = berth_model::config::to_toml(&svc)
                                .context("cannot write the service as TOML")?;
                            out!("{text}");
                            Ok(())
                        }
                        OutputFormat::Text => {
                            out!("{}", berth_model::config::written(&svc));
                            Ok(())
                        }
                    },
                    _ => Err(usage("usage: svc SERVICE print status|config|resinfo|devs")),
                }
            }
            "status" => {
                self.action_args(&words[..2], rest)?;
                let st = self.service_status(&svc);
                match self.format {
                    OutputFormat::Json => self.print_json(&st)?,
                    OutputFormat::Text => outln!("{}", st.avail),
                }
                if is_up(st.avail) {
                    Ok(())
                } else {
                    Err(Failure::Code(1))
                }
            }
            "freeze" | "thaw" => {
                self.action_args(&words[..2], rest)?;
                berth_engine::set_frozen(&self.paths, &svc.name, action == "freeze")
                    .map_err(|e| Failure::Failed(e.into()))?;
                if let Some(c) = self.cluster()? {
                    c.set_frozen(&svc.name, action == "freeze")
                        .map_err(Failure::Failed)?;
                }
                Ok(())
            }
            "switch" | "takeover" | "giveback" => {
                let args = self.action_args(&words[..2], rest)?;
                let timeout = waitlock(args.timeout)?;
                let Some(c) = self.cluster()? else {
                    return Err(usage(format!(
                        "svc {} {action}: this node is in no cluster (no [cluster] in node.toml)",
                        svc.name
                    )));
                };
                let to = match (action, args.to) {
                    ("switch", Some(to)) => to,
                    ("switch", None) => {
                        return Err(usage(format!("usage: svc {} switch --to NODE", svc.name)));
                    }
                    ("takeover", _) => c.node().to_string(),
                    _ => c
                        .first_fit(&svc.name, &svc.settings.nodes)
                        .map_err(Failure::Failed)?,
                };
                let _span = tracing::info_span!("service", svc = %svc.name).entered();
                c.switch(&svc.name, &to, timeout).map_err(Failure::Failed)
            }
            "docker" => self.docker(&svc, &words[2..]),
            _ => self.action(&svc, words, action, rest),
        }
    }

    fn print_service_status(&mut self, svc: &ServiceConfig) -> Result<(), Failure> {
        if let Some((st, header)) = self
            .agent_tree::<ServiceStatus>(Some(&svc.name), std::slice::from_ref(&svc.name))
            .filter(|(st, _)| st.error.is_none())
        {
            match self.format {
                OutputFormat::Json => return self.print_json(&st),
                OutputFormat::Text => {
                    out!("{header}{}", render_service(&st, self.color));
                    return Ok(());
                }
            }
        }
        let mut st = [self.service_status(svc)];
        self.decorate(&mut st, &[svc]);
        let [st] = st;
        match self.format {
            OutputFormat::Json => self.print_json(&st),
            OutputFormat::Text => {
                out!("{}", render_service(&st, self.color));
                Ok(())
            }
        }
    }

    /// `svc SVC logs`: the service's log files, oldest first (`--follow`: then what is
    /// appended, until interrupted).
    fn logs(&self, name: &str, follow: bool) -> Result<(), Failure> {
        berth_model::config::keywords::validate_service_name(name)
            .map_err(|why| usage(format!("bad service name {name:?}: {why}")))?;
        let dir = self.paths.service_var(name);
        let files = log::files(&dir);
        if files.is_empty() {
            // A service with no action yet has no log; an unknown name is an error.
            berth_engine::load::service_file(&self.paths, name).map_err(load_failure)?;
        }
        if follow {
            return log::follow(&dir).map_err(|e| Failure::Failed(anyhow!(e)));
        }
        for f in files {
            let mut file =
                std::fs::File::open(&f).with_context(|| format!("cannot read {}", f.display()))?;
            match berth_manual::out::copy(&mut file) {
                Ok(true) => {}
                // `svc web logs | head`: the reader has what it wanted.
                Ok(false) => return Ok(()),
                Err(e) => {
                    return Err(Failure::Failed(anyhow!("cannot read {}: {e}", f.display())));
                }
            }
        }
        Ok(())
    }

    fn action_args(&mut self, head: &[String], rest: &[String]) -> Result<ActionArgs, Failure> {
        let args = ActionArgs::try_parse_from(rest).map_err(|e| {
            if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp) {
                out!("{e}");
                return Failure::Code(0);
            }
            usage(format!(
                "svc {}: {}",
                head.join(" "),
                e.render().to_string().trim_start_matches("error: ").trim()
            ))
        })?;
        if let Some(f) = args.format {
            self.format = f;
        }
        Ok(args)
    }

    fn action(
        &mut self,
        svc: &ServiceConfig,
        words: &[String],
        action: &str,
        rest: &[String],
    ) -> Result<(), Failure> {
        let Some((kind, kinds)) = parse_action(action) else {
            return Err(usage(format!(
                "unknown action {action:?} for service {}\n\n{}",
                svc.name,
                actions_help()
            )));
        };
        let args = self.action_args(&words[..2], rest)?;
        args.no_keywords(action)?;
        let rid = subset_rids(svc, args.subsets.as_deref(), args.rid.as_deref())?;
        let selector = Selector::from_options(
            rid.as_deref().or(args.rid.as_deref()),
            args.tags.as_deref(),
            kinds,
        )
        .map_err(usage)?;
        let opts = ActionOptions {
            selector,
            dry_run: args.dry_run,
            disable_rollback: args.disable_rollback,
            force: args.force,
            waitlock: waitlock(args.waitlock)?,
        };
        let whole = opts.selector == Selector::default();
        let dry = opts.dry_run;
        let paths = self.paths.clone();
        let nodename = self.nodename.clone();
        let cluster = self.cluster()?;
        let guard = cluster.map(|c| c.guard(action));
        let engine = Engine::new(&HOST, &paths, &nodename);
        let engine = match &guard {
            Some(g) => engine.with_guard(g),
            None => engine,
        };
        if dry {
            log::set_file_logging(false);
        } else {
            // The command line heads the action's lines in the service's log file.
            log::note(
                &paths.var_dir,
                &svc.name,
                &format!("svc {}", words.join(" ")),
            );
        }
        let _span = tracing::info_span!("service", svc = %svc.name).entered();
        let result = engine.run(svc, kind, &opts);
        log::set_file_logging(true);
        if !dry {
            let outcome = match &result {
                Ok(_) => "done".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            log::note(
                &paths.var_dir,
                &svc.name,
                &format!("svc {}: {outcome}", words.join(" ")),
            );
        }
        if let Some(c) = cluster
            && !dry
            && !matches!(
                result,
                Err(ActionError::Guard(_) | ActionError::Lock(_) | ActionError::Selector(_))
            )
        {
            c.after_action(&svc.name, kind, whole, result.is_ok());
        }
        match result {
            Ok(_) => Ok(()),
            Err(e @ ActionError::Selector(_)) => Err(usage(e)),
            Err(e) => Err(Failure::Failed(e.into())),
        }
    }

    fn docker(&self, svc: &ServiceConfig, args: &[String]) -> Result<(), Failure> {
        let _span = tracing::info_span!("service", svc = %svc.name).entered();
        let ctx = berth_drivers::Ctx {
            svc,
            nodename: &self.nodename,
            paths: &self.paths,
            force: false,
            fence: None,
            prechecked: None,
        };
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let code = docker::passthrough(&ctx, &args).map_err(|e| Failure::Failed(e.into()))?;
        if code == 0 {
            Ok(())
        } else {
            Err(Failure::Code(u8::try_from(code).unwrap_or(1)))
        }
    }
}

/// `--waitlock SECONDS` as a duration; negative, NaN or too large (`1e300`) is bad usage.
fn waitlock(secs: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        usage(format!(
            "--waitlock {secs}: expected a number of seconds >= 0"
        ))
    })
}

fn color_enabled(choice: ColorChoice, tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

fn main() -> ExitCode {
    if let Some(words) = berth_manual::complete::requested_words() {
        return berth_manual::complete::answer(complete::candidates(&words));
    }
    let extras = berth_manual::Extras {
        complete_words: true,
        keywords_page: true,
        more_options: Some((
            "action options",
            <ActionArgs as clap::CommandFactory>::command,
        )),
        sections: &[],
    };
    let cli: Cli = berth_manual::parse(|c| &c.manual, extras);
    let paths = Paths::from(cli.dirs);
    let log = log::ActionLog {
        max: if cli.debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        },
        color: color_enabled(cli.color, std::io::stderr().is_terminal()),
        var_dir: Some(paths.var_dir.clone()),
    };
    let subscriber = tracing_subscriber::registry().with(log);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        errln!("svc: cannot set up logging");
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let services =
        invoked_as(&argv0, &paths).and_then(|linked| services(linked, cli.service.as_deref()));
    let result = services.and_then(|services| {
        let words = words_to_strings(&cli.words)?;
        let nodename = nodename(&paths)?;
        let mut app = App {
            paths,
            nodename,
            format: cli.format,
            color: color_enabled(cli.color, std::io::stdout().is_terminal()),
            cluster: None,
            refresh: cli.refresh,
        };
        if services.is_empty() {
            return app.run(&words);
        }
        // `-s a,b ACTION`: each service in turn, every failure said; the worst exit code.
        let mut worst: Option<Failure> = None;
        for svc in services {
            let mut w = vec![svc];
            w.extend(words.iter().cloned());
            if let Err(f) = app.run(&w) {
                let f = report(f);
                if worst.as_ref().is_none_or(|old| code(&f) > code(old)) {
                    worst = Some(f);
                }
            }
        }
        worst.map_or(Ok(()), Err)
    });
    let status = match result {
        Ok(()) => 0,
        Err(f) => code(&report(f)),
    };
    berth_manual::out::finish("svc", status)
}

/// Print a failure's message; what is left is its exit code.
fn report(f: Failure) -> Failure {
    match f {
        Failure::Code(c) => Failure::Code(c),
        Failure::Usage(e) => {
            errln!("svc: {e:#}");
            Failure::Code(2)
        }
        Failure::Failed(e) => {
            errln!("svc: {e:#}");
            Failure::Code(1)
        }
    }
}

fn code(f: &Failure) -> u8 {
    match f {
        Failure::Code(c) => *c,
        Failure::Usage(_) => 2,
        Failure::Failed(_) => 1,
    }
}

/// The names svc answers to as itself; any other name is a service's (see [`invoked_as`]).
const OWN_NAMES: [&str; 2] = ["svc", "svcmgr"];

/// The service svc was called as: `ln -s /usr/bin/svc /etc/berth/web; web print status`.
/// The rule: called `svc` or `svcmgr`, svc is itself; called by the name of a service of the
/// config dir, it is `svc NAME`; otherwise a name starting with `svc` (`svc-0.1`, a copy of the
/// binary) is svc itself, and any other name is refused (exit 2), so a link whose service was
/// removed never runs a node-wide action by mistake.
fn invoked_as(argv0: &std::ffi::OsStr, paths: &Paths) -> Result<Option<String>, Failure> {
    let Some(base) = std::path::Path::new(argv0)
        .file_name()
        .and_then(|b| b.to_str())
    else {
        return Ok(None);
    };
    if OWN_NAMES.contains(&base) {
        return Ok(None);
    }
    match berth_engine::load::service_file(paths, base) {
        Ok(_) | Err(LoadError::Ambiguous { .. }) => return Ok(Some(base.to_string())),
        Err(_) if base.starts_with("svc") => return Ok(None),
        Err(_) => {}
    }
    Err(usage(format!(
        "called as {base:?}, and there is no service {base} in {}: a link to svc named after a \
         service acts on that service; call svc by its own name otherwise",
        paths.services_dir().display()
    )))
}

/// The services to act on: from the name svc was called by, and `-s` (which may list several).
fn services(linked: Option<String>, flag: Option<&str>) -> Result<Vec<String>, Failure> {
    let listed: Vec<String> = flag
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if flag.is_some() && listed.is_empty() {
        return Err(usage("-s: expected a service name"));
    }
    match linked {
        None => Ok(listed),
        Some(l) if listed.is_empty() || listed == [l.clone()] => Ok(vec![l]),
        Some(l) => Err(usage(format!(
            "called as {l} (the service {l}), and -s names {}",
            listed.join(",")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        ActionArgs::command().debug_assert();
    }

    #[test]
    fn colours_only_when_asked_or_on_a_terminal() {
        assert!(!color_enabled(ColorChoice::Auto, false));
        assert!(color_enabled(ColorChoice::Always, false));
        assert!(!color_enabled(ColorChoice::Never, true));
    }

    #[test]
    fn waitlock_out_of_range_is_usage_not_a_panic() {
        assert_eq!(waitlock(2.5).ok(), Some(Duration::from_millis(2500)));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(matches!(waitlock(bad), Err(Failure::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn the_name_svc_is_called_by() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("services")).unwrap();
        std::fs::write(d.path().join("services/web.env"), "[DEFAULT]\n").unwrap();
        std::fs::write(d.path().join("services/svc-web.toml"), "").unwrap();
        let paths = Paths {
            config_dir: d.path().to_path_buf(),
            var_dir: d.path().join("var"),
            run_dir: d.path().join("run"),
        };
        let called = |argv0: &str| invoked_as(std::ffi::OsStr::new(argv0), &paths);
        for own in [
            "/usr/bin/svc",
            "svc",
            "./svcmgr",
            "/opt/svc-0.1",
            "svc.orig",
        ] {
            assert_eq!(called(own).ok(), Some(None), "{own}");
        }
        assert_eq!(called("/etc/berth/web").ok(), Some(Some("web".to_string())));
        // A service whose name starts with svc is still that service.
        assert_eq!(called("svc-web").ok(), Some(Some("svc-web".to_string())));
        assert!(matches!(called("/etc/berth/gone"), Err(Failure::Usage(_))));
        assert!(matches!(called("../x"), Err(Failure::Usage(_))));

        assert_eq!(services(None, None).ok(), Some(vec![]));
        assert_eq!(
            services(None, Some("a, b")).ok(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            services(Some("web".into()), Some("web")).ok(),
            Some(vec!["web".to_string()])
        );
        assert!(matches!(
            services(Some("web".into()), Some("db")),
            Err(Failure::Usage(_))
        ));
        assert!(matches!(services(None, Some(",")), Err(Failure::Usage(_))));
    }

    #[test]
    fn subsets_select_among_the_rids() {
        let svc = ServiceConfig::parse(
            std::path::Path::new("/x/web.toml"),
            "[fs.1]\ndev = \"/a\"\nmnt = \"/a\"\ntype = \"ext4\"\nsubset = \"s1\"\n\
             [fs.2]\ndev = \"/b\"\nmnt = \"/b\"\ntype = \"ext4\"\nsubset = \"s1\"\n\
             [fs.3]\ndev = \"/c\"\nmnt = \"/c\"\ntype = \"ext4\"\n",
        )
        .unwrap();
        assert_eq!(subset_rids(&svc, None, None).ok(), Some(None));
        assert_eq!(
            subset_rids(&svc, Some("s1"), None).ok(),
            Some(Some("fs#1,fs#2".to_string()))
        );
        assert_eq!(
            subset_rids(&svc, Some("s1"), Some("fs#2,fs#3")).ok(),
            Some(Some("fs#2".to_string()))
        );
        assert!(matches!(
            subset_rids(&svc, Some("s1"), Some("fs#3")),
            Err(Failure::Usage(_))
        ));
        assert!(matches!(
            subset_rids(&svc, Some(""), None),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn action_flags_parse() {
        let a =
            ActionArgs::try_parse_from(["--rid", "fs#1", "--dry-run", "--waitlock", "2"]).unwrap();
        assert_eq!(a.rid.as_deref(), Some("fs#1"));
        assert!(a.dry_run);
        assert_eq!(a.waitlock, 2.0);
        let e = ActionArgs::try_parse_from(["--bogus"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}

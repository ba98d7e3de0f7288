//! The action table: every action svc runs on a service (and those svcd serves over HTTP), with
//! the options each takes. svc's argument parsing, its help, its completions, svcd's routes and
//! the docs test follow from it (docs/cli.md, docs/http-api.md). No I/O.

use crate::order::Action;
use crate::rid::Kind;

/// An option that follows an action (`svc web start --rid fs#1`), by its long name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionOpt {
    /// `--rid ip#1,fs#1`.
    Rid,
    /// `--tags a,b+c`.
    Tags,
    /// `--subsets s1,s2`.
    Subsets,
    /// `--dry-run`.
    DryRun,
    /// `--disable-rollback`.
    DisableRollback,
    /// `--force`.
    Force,
    /// `--waitlock SECONDS`.
    Waitlock,
    /// `--local` (accepted: svc acts on this node).
    Local,
    /// `--to NODE` (switch).
    To,
    /// `--timeout SECONDS` (switch, takeover, giveback).
    Timeout,
    /// `--refresh` (print status: not svcd's cached tree).
    Refresh,
    /// `--eval` (print config).
    Eval,
    /// `--follow`, `-f` (logs).
    Follow,
    /// `--watch` (mon).
    Watch,
    /// `--kw SECTION.KEY[=VALUE]` (get, set, unset).
    Kw,
    /// `--param SECTION.KEY` (get, set, unset).
    Param,
    /// `--value VALUE` (set --param).
    Value,
    /// `--format text|json` (as the global option).
    Format,
    /// `--config FILE` (create).
    Config,
    /// `--target nodes|drpnodes` (sync).
    Target,
    /// `--all` (start, stop of a flex service: every instance, through the cluster-wide target).
    All,
}

impl ActionOpt {
    /// Every option, in the order help lists them.
    pub const ALL: [ActionOpt; 21] = [
        ActionOpt::Rid,
        ActionOpt::Tags,
        ActionOpt::Subsets,
        ActionOpt::DryRun,
        ActionOpt::DisableRollback,
        ActionOpt::Force,
        ActionOpt::Waitlock,
        ActionOpt::Local,
        ActionOpt::To,
        ActionOpt::Timeout,
        ActionOpt::Refresh,
        ActionOpt::Eval,
        ActionOpt::Follow,
        ActionOpt::Watch,
        ActionOpt::Kw,
        ActionOpt::Param,
        ActionOpt::Value,
        ActionOpt::Format,
        ActionOpt::Config,
        ActionOpt::Target,
        ActionOpt::All,
    ];

    /// Its long name, without the dashes (`dry-run`).
    pub fn long(self) -> &'static str {
        match self {
            ActionOpt::Rid => "rid",
            ActionOpt::Tags => "tags",
            ActionOpt::Subsets => "subsets",
            ActionOpt::DryRun => "dry-run",
            ActionOpt::DisableRollback => "disable-rollback",
            ActionOpt::Force => "force",
            ActionOpt::Waitlock => "waitlock",
            ActionOpt::Local => "local",
            ActionOpt::To => "to",
            ActionOpt::Timeout => "timeout",
            ActionOpt::Refresh => "refresh",
            ActionOpt::Eval => "eval",
            ActionOpt::Follow => "follow",
            ActionOpt::Watch => "watch",
            ActionOpt::Kw => "kw",
            ActionOpt::Param => "param",
            ActionOpt::Value => "value",
            ActionOpt::Format => "format",
            ActionOpt::Config => "config",
            ActionOpt::Target => "target",
            ActionOpt::All => "all",
        }
    }

    /// The option of a long name (`dry-run`).
    pub fn from_long(long: &str) -> Option<ActionOpt> {
        ActionOpt::ALL.into_iter().find(|o| o.long() == long)
    }

    /// Whether it takes a value (`--rid X`) rather than being a flag (`--force`).
    pub fn takes_value(self) -> bool {
        matches!(
            self,
            ActionOpt::Rid
                | ActionOpt::Tags
                | ActionOpt::Subsets
                | ActionOpt::Waitlock
                | ActionOpt::To
                | ActionOpt::Timeout
                | ActionOpt::Kw
                | ActionOpt::Param
                | ActionOpt::Value
                | ActionOpt::Format
                | ActionOpt::Config
                | ActionOpt::Target
        )
    }
}

/// The options of an action that runs the engine (start, stop, a partial action...).
const RUN_OPTS: &[ActionOpt] = &[
    ActionOpt::Rid,
    ActionOpt::Tags,
    ActionOpt::Subsets,
    ActionOpt::DryRun,
    ActionOpt::DisableRollback,
    ActionOpt::Force,
    ActionOpt::Waitlock,
    ActionOpt::Local,
    ActionOpt::Format,
];

/// The options of `start` and `stop`: the engine's, and `--all` (every instance of a flex
/// service).
const START_STOP_OPTS: &[ActionOpt] = &[
    ActionOpt::Rid,
    ActionOpt::Tags,
    ActionOpt::Subsets,
    ActionOpt::DryRun,
    ActionOpt::DisableRollback,
    ActionOpt::Force,
    ActionOpt::Waitlock,
    ActionOpt::Local,
    ActionOpt::Timeout,
    ActionOpt::All,
    ActionOpt::Format,
];

/// What `svc SERVICE print` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrintTarget {
    /// The status tree.
    Status,
    /// The service file.
    Config,
    /// Each resource's keywords and state.
    Resinfo,
    /// The block devices (`disklist` too).
    Devs,
}

impl PrintTarget {
    /// Every target, in help order.
    pub const ALL: [PrintTarget; 4] = [
        PrintTarget::Status,
        PrintTarget::Config,
        PrintTarget::Resinfo,
        PrintTarget::Devs,
    ];

    /// Its word.
    pub fn as_str(self) -> &'static str {
        match self {
            PrintTarget::Status => "status",
            PrintTarget::Config => "config",
            PrintTarget::Resinfo => "resinfo",
            PrintTarget::Devs => "devs",
        }
    }

    fn parse(word: &str) -> Option<PrintTarget> {
        match word {
            "disklist" => Some(PrintTarget::Devs),
            w => PrintTarget::ALL.into_iter().find(|t| t.as_str() == w),
        }
    }
}

/// What `svc SERVICE sync` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncVerb {
    /// `sync update` (OpenSVC `syncupdate`): every target of the selected sync resources.
    Update,
    /// `sync full` (`syncfullsync`): the same, every file compared by checksum.
    Full,
    /// `sync nodes` (`syncnodes`): only the `nodes` targets.
    Nodes,
    /// `sync drp` (`syncdrp`): only the `drpnodes` targets.
    Drp,
    /// `sync status`: exit 0 when every sync row is up.
    Status,
}

impl SyncVerb {
    /// Every verb, in help order.
    pub const ALL: [SyncVerb; 5] = [
        SyncVerb::Update,
        SyncVerb::Full,
        SyncVerb::Nodes,
        SyncVerb::Drp,
        SyncVerb::Status,
    ];

    /// Its second word (`sync update`).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncVerb::Update => "update",
            SyncVerb::Full => "full",
            SyncVerb::Nodes => "nodes",
            SyncVerb::Drp => "drp",
            SyncVerb::Status => "status",
        }
    }

    /// OpenSVC's one-word spelling (`syncupdate`), when it has one.
    pub fn opensvc(self) -> Option<&'static str> {
        match self {
            SyncVerb::Update => Some("syncupdate"),
            SyncVerb::Full => Some("syncfullsync"),
            SyncVerb::Nodes => Some("syncnodes"),
            SyncVerb::Drp => Some("syncdrp"),
            SyncVerb::Status => None,
        }
    }

    fn parse(word: &str) -> Option<SyncVerb> {
        SyncVerb::ALL.into_iter().find(|v| v.as_str() == word)
    }

    fn parse_opensvc(word: &str) -> Option<SyncVerb> {
        SyncVerb::ALL
            .into_iter()
            .find(|v| v.opensvc() == Some(word))
    }

    /// Whether it transfers (every verb but `status`).
    pub fn sends(self) -> bool {
        self != SyncVerb::Status
    }
}

/// An action on one service: `svc SERVICE ACTION [OPTIONS]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceAction {
    /// `print status|config|resinfo|devs`.
    Print(PrintTarget),
    /// `json_status` (`json status`): `print status` in JSON.
    JsonStatus,
    /// `status`: exit 0 when up.
    Status,
    /// The whole service, in order.
    Start,
    /// The whole service, in reverse order.
    Stop,
    /// Stop then start.
    Restart,
    /// `startfs`, `startip`...: one kind.
    StartKind(Kind),
    /// `stopfs`, `stopip`...: one kind.
    StopKind(Kind),
    /// Monitoring and orchestration off (cluster-wide).
    Freeze,
    /// Monitoring and orchestration on again.
    Thaw,
    /// Relocate to `--to NODE`.
    Switch,
    /// Relocate to this node.
    Takeover,
    /// Relocate to the first fit node of `nodes`.
    Giveback,
    /// Unset `disable` on resources.
    Enable,
    /// Set `disable` on resources.
    Disable,
    /// Read keywords of the file.
    Get,
    /// Change keywords of the file.
    Set,
    /// Remove keywords of the file.
    Unset,
    /// `validate config`.
    ValidateConfig,
    /// `edit config`.
    EditConfig,
    /// `create --config FILE`: a new service file (in a cluster: through etcd).
    Create,
    /// Remove the service file (refused while the service runs anywhere).
    Delete,
    /// The service's action log.
    Logs,
    /// The docker CLI against the private dockerd (every word after it is docker's).
    Docker,
    /// `sync update|full|nodes|drp|status`: the sync resources.
    Sync(SyncVerb),
}

impl ServiceAction {
    /// Why this action is refused for a service of `topology`, if it is: a relocation
    /// (`switch`, `takeover`, `giveback`) moves a failover service's one instance, and a flex
    /// service has one on each of several nodes.
    pub fn topology_refusal(&self, svc: &str, topology: crate::config::Topology) -> Option<String> {
        match self {
            ServiceAction::Switch | ServiceAction::Takeover | ServiceAction::Giveback
                if topology.is_flex() =>
            {
                Some(format!(
                    "svc {svc} {}: refused: {svc} is a flex service (topology = flex): it runs \
                     one instance on each of several nodes, there is no one instance to move; \
                     start or stop the instance of each node there",
                    self.words()
                ))
            }
            _ => None,
        }
    }
}

impl ServiceAction {
    /// Why `start --all` / `stop --all` (`all`) or `--local` is refused for a service of
    /// `topology` and `orchestrate`, if it is. `--all` acts on every instance of a flex
    /// service through the cluster-wide target: it is refused with `--local` (this node's
    /// instance only), for a failover service (one instance: plain `start` / `stop` act on it,
    /// `switch` moves it), and `start --all` unless `orchestrate = ha` (only `ha` has the
    /// orchestrator bring `flex_target` instances up again; `start` starts them once, `no`
    /// never).
    pub fn all_refusal(
        self,
        svc: &str,
        topology: crate::config::Topology,
        orchestrate: crate::config::Orchestrate,
        local: bool,
    ) -> Option<String> {
        use crate::config::Orchestrate;
        let words = self.words();
        if local {
            return Some(format!(
                "svc {svc} {words}: refused: --all and --local contradict (--local: this node's \
                 instance; --all: every instance)"
            ));
        }
        if !topology.is_flex() {
            return Some(format!(
                "svc {svc} {words} --all: refused: {svc} is a {} service (topology = {}): it runs \
                 one instance; `svc {svc} {words}` acts on it here (`svc {svc} switch --to NODE` \
                 moves it)",
                topology.name(),
                topology.name()
            ));
        }
        let name = match orchestrate {
            Orchestrate::Ha => return None,
            Orchestrate::Start => "start",
            Orchestrate::No => "no",
        };
        match self {
            ServiceAction::Start => Some(format!(
                "svc {svc} start --all: refused: {svc} has orchestrate = {name}: the orchestrator \
                 does not bring flex_target instances up again (only orchestrate = ha does); \
                 start the instance of each node there with `svc {svc} start`"
            )),
            _ => None,
        }
    }
}

/// A word that is no action of the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionParseError {
    /// No action word at all.
    #[error("no action given")]
    Missing,
    /// A word that is no action.
    #[error("unknown action {0:?}")]
    Unknown(String),
    /// `print` with a word it does not show.
    #[error("unknown print target {0:?} (print status|config|resinfo|devs)")]
    PrintTarget(String),
    /// `print`, `validate`, `edit` or `json` alone.
    #[error("{0} needs a second word: {1}")]
    Incomplete(&'static str, &'static str),
}

impl ServiceAction {
    /// Every action, in the order help and completions list them.
    pub fn all() -> Vec<ServiceAction> {
        let mut all: Vec<ServiceAction> = PrintTarget::ALL.map(ServiceAction::Print).into();
        all.extend([
            ServiceAction::JsonStatus,
            ServiceAction::Status,
            ServiceAction::Start,
            ServiceAction::Stop,
            ServiceAction::Restart,
        ]);
        for k in Kind::ALL.into_iter().filter(|k| k.runs_with_service()) {
            all.push(ServiceAction::StartKind(k));
            all.push(ServiceAction::StopKind(k));
        }
        all.extend([
            ServiceAction::Freeze,
            ServiceAction::Thaw,
            ServiceAction::Switch,
            ServiceAction::Takeover,
            ServiceAction::Giveback,
            ServiceAction::Docker,
            ServiceAction::Enable,
            ServiceAction::Disable,
            ServiceAction::Get,
            ServiceAction::Set,
            ServiceAction::Unset,
            ServiceAction::ValidateConfig,
            ServiceAction::EditConfig,
            ServiceAction::Create,
            ServiceAction::Delete,
            ServiceAction::Logs,
        ]);
        all.extend(SyncVerb::ALL.map(ServiceAction::Sync));
        all
    }

    /// Its words as typed (`print status`, `startfs`).
    pub fn words(self) -> String {
        match self {
            ServiceAction::Print(t) => format!("print {}", t.as_str()),
            ServiceAction::StartKind(k) => format!("start{k}"),
            ServiceAction::StopKind(k) => format!("stop{k}"),
            ServiceAction::ValidateConfig => "validate config".to_string(),
            ServiceAction::EditConfig => "edit config".to_string(),
            ServiceAction::Sync(v) => format!("sync {}", v.as_str()),
            other => other.first_word(),
        }
    }

    /// Its first word, as completion offers it (`print`, `validate`; `startfs` is its own).
    pub fn first_word(self) -> String {
        match self {
            ServiceAction::StartKind(k) => format!("start{k}"),
            ServiceAction::StopKind(k) => format!("stop{k}"),
            other => other.fixed_word().to_string(),
        }
    }

    /// The first word of an action that is not per kind.
    fn fixed_word(self) -> &'static str {
        match self {
            ServiceAction::Print(_) => "print",
            ServiceAction::JsonStatus => "json_status",
            ServiceAction::Status => "status",
            ServiceAction::Start | ServiceAction::StartKind(_) => "start",
            ServiceAction::Stop | ServiceAction::StopKind(_) => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Freeze => "freeze",
            ServiceAction::Thaw => "thaw",
            ServiceAction::Switch => "switch",
            ServiceAction::Takeover => "takeover",
            ServiceAction::Giveback => "giveback",
            ServiceAction::Enable => "enable",
            ServiceAction::Disable => "disable",
            ServiceAction::Get => "get",
            ServiceAction::Set => "set",
            ServiceAction::Unset => "unset",
            ServiceAction::ValidateConfig => "validate",
            ServiceAction::EditConfig => "edit",
            ServiceAction::Create => "create",
            ServiceAction::Delete => "delete",
            ServiceAction::Logs => "logs",
            ServiceAction::Docker => "docker",
            ServiceAction::Sync(_) => "sync",
        }
    }

    /// The first words of every action, each once, in table order (completion's list).
    pub fn first_words() -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for a in ServiceAction::all() {
            let w = a.first_word();
            if !seen.contains(&w) {
                seen.push(w);
            }
        }
        seen
    }

    /// A one-word action name (`start`, `startfs`, `freeze`): the form svcd's routes take.
    pub fn from_name(name: &str) -> Option<ServiceAction> {
        ServiceAction::all()
            .into_iter()
            .find(|a| !a.two_words() && a.first_word() == name)
    }

    /// Whether it is spelled with two words (`print status`, `validate config`).
    fn two_words(self) -> bool {
        matches!(
            self,
            ServiceAction::Print(_)
                | ServiceAction::ValidateConfig
                | ServiceAction::EditConfig
                | ServiceAction::Sync(_)
        )
    }

    /// The action at the head of `words` (`["print", "status", "--refresh"]`) and how many
    /// words it took (1 or 2); `json status` is `json_status`, `print disklist` `print devs`.
    pub fn parse<S: AsRef<str>>(words: &[S]) -> Result<(ServiceAction, usize), ActionParseError> {
        let first = words
            .first()
            .map(AsRef::as_ref)
            .ok_or(ActionParseError::Missing)?;
        let second = words.get(1).map(AsRef::as_ref);
        match (first, second) {
            ("print", Some(w)) => PrintTarget::parse(w)
                .map(|t| (ServiceAction::Print(t), 2))
                .ok_or_else(|| ActionParseError::PrintTarget(w.to_string())),
            ("print", None) => Err(ActionParseError::Incomplete(
                "print",
                "print status|config|resinfo|devs",
            )),
            ("validate", Some("config")) => Ok((ServiceAction::ValidateConfig, 2)),
            ("edit", Some("config")) => Ok((ServiceAction::EditConfig, 2)),
            ("validate", _) => Err(ActionParseError::Incomplete("validate", "validate config")),
            ("edit", _) => Err(ActionParseError::Incomplete("edit", "edit config")),
            ("json", Some("status")) => Ok((ServiceAction::JsonStatus, 2)),
            ("json", _) => Err(ActionParseError::Incomplete("json", "json status")),
            ("sync", w) => w
                .and_then(SyncVerb::parse)
                .map(|v| (ServiceAction::Sync(v), 2))
                .ok_or(ActionParseError::Incomplete(
                    "sync",
                    "sync update|full|nodes|drp|status",
                )),
            (name, _) if let Some(v) = SyncVerb::parse_opensvc(name) => {
                Ok((ServiceAction::Sync(v), 1))
            }
            (name, _) => ServiceAction::from_name(name)
                .map(|a| (a, 1))
                .ok_or_else(|| ActionParseError::Unknown(name.to_string())),
        }
    }

    /// The options it takes (besides `--help`). `docker` takes docker's.
    pub fn options(self) -> &'static [ActionOpt] {
        use ActionOpt as O;
        match self {
            ServiceAction::Print(PrintTarget::Status) | ServiceAction::JsonStatus => {
                &[O::Refresh, O::Format]
            }
            ServiceAction::Print(PrintTarget::Config) => &[O::Eval, O::Format],
            ServiceAction::Print(_) | ServiceAction::Status => &[O::Format],
            ServiceAction::Start | ServiceAction::Stop => START_STOP_OPTS,
            ServiceAction::Restart | ServiceAction::StartKind(_) | ServiceAction::StopKind(_) => {
                RUN_OPTS
            }
            ServiceAction::Freeze | ServiceAction::Thaw => &[O::Local],
            ServiceAction::Switch => &[O::To, O::Timeout],
            ServiceAction::Takeover | ServiceAction::Giveback => &[O::Timeout],
            ServiceAction::Enable | ServiceAction::Disable => &[O::Rid, O::Tags, O::Subsets],
            ServiceAction::Get | ServiceAction::Set | ServiceAction::Unset => {
                &[O::Kw, O::Param, O::Value]
            }
            ServiceAction::ValidateConfig
            | ServiceAction::EditConfig
            | ServiceAction::Docker
            | ServiceAction::Delete => &[],
            ServiceAction::Create => &[O::Config],
            ServiceAction::Logs => &[O::Follow],
            ServiceAction::Sync(SyncVerb::Status) => &[O::Rid, O::Format],
            ServiceAction::Sync(SyncVerb::Update | SyncVerb::Full) => {
                &[O::Rid, O::Force, O::Target, O::Waitlock, O::Format]
            }
            ServiceAction::Sync(_) => &[O::Rid, O::Force, O::Waitlock, O::Format],
        }
    }

    /// The options of `given` this action does not take, in the order given.
    pub fn refused(self, given: &[ActionOpt]) -> Vec<ActionOpt> {
        given
            .iter()
            .copied()
            .filter(|o| !self.options().contains(o))
            .collect()
    }

    /// What the engine runs for it: the action and, for a partial one, the kinds it touches
    /// (`startfs` brings up the VGs under the filesystems too, as OpenSVC does).
    pub fn engine(self) -> Option<(Action, Option<Vec<Kind>>)> {
        match self {
            ServiceAction::Start => Some((Action::Start, None)),
            ServiceAction::Stop => Some((Action::Stop, None)),
            ServiceAction::Restart => Some((Action::Restart, None)),
            ServiceAction::StartKind(Kind::Fs) => {
                Some((Action::Start, Some(vec![Kind::Vg, Kind::Fs])))
            }
            ServiceAction::StartKind(k) => Some((Action::Start, Some(vec![k]))),
            ServiceAction::StopKind(k) => Some((Action::Stop, Some(vec![k]))),
            _ => None,
        }
    }

    /// Whether svcd serves it (`POST /services/SVC/actions/NAME`): the engine's actions,
    /// freeze and thaw.
    pub fn http(self) -> bool {
        self.engine().is_some() || matches!(self, ServiceAction::Freeze | ServiceAction::Thaw)
    }

    /// The names svcd serves, for its "unknown action" answer.
    pub fn http_names() -> Vec<String> {
        ServiceAction::all()
            .into_iter()
            .filter(|a| a.http())
            .map(ServiceAction::words)
            .collect()
    }

    /// Whether a success starts something (the monitor's restart counts are reset).
    pub fn is_start(self) -> bool {
        matches!(
            self,
            ServiceAction::Start | ServiceAction::Restart | ServiceAction::StartKind(_)
        )
    }

    /// Whether it changes the frozen flag: `Some(true)` freeze, `Some(false)` thaw.
    pub fn freezes(self) -> Option<bool> {
        match self {
            ServiceAction::Freeze => Some(true),
            ServiceAction::Thaw => Some(false),
            _ => None,
        }
    }

    /// Its line in `svc --help` after `SERVICE` and its usage: what it does. Actions whose
    /// text is the same are listed on one line (`start|stop`).
    pub fn summary(self) -> &'static str {
        match self {
            ServiceAction::Print(PrintTarget::Status) => {
                "one service's status tree (SERVICE json_status: in JSON)"
            }
            ServiceAction::JsonStatus => "print status, in JSON (also `json status`)",
            ServiceAction::Print(PrintTarget::Config) => {
                "the service file with berth's keyword names (--eval: as this node evaluates it, \
                 in berth TOML, every default spelled out)"
            }
            ServiceAction::Print(_) => "each resource's keywords and state / its block devices",
            ServiceAction::Status => "exit 0 when the service is up, 1 otherwise",
            ServiceAction::Start | ServiceAction::Stop => {
                "the whole service here, in order (stop in reverse); --all: every instance of a \
                 flex service (the cluster-wide target; waits up to --timeout)"
            }
            ServiceAction::Restart => "stop then start the whole service here",
            ServiceAction::StartKind(_) | ServiceAction::StopKind(_) => {
                "partial actions: only the resources of that kind"
            }
            ServiceAction::Freeze | ServiceAction::Thaw => {
                "stop / resume the agent's monitoring of the service (cluster-wide)"
            }
            ServiceAction::Switch => "relocate the service to NODE (cluster)",
            ServiceAction::Takeover | ServiceAction::Giveback => {
                "relocate it to this node / to the first fit node of `nodes`"
            }
            ServiceAction::Docker => "the docker CLI against the service's private dockerd",
            ServiceAction::Enable | ServiceAction::Disable => {
                "unset / set `disable` on the resources (--rid...; all without)"
            }
            ServiceAction::Get | ServiceAction::Set | ServiceAction::Unset => {
                "read or change the service file (format kept)"
            }
            ServiceAction::ValidateConfig => "check the service file; exit 2 when it does not load",
            ServiceAction::EditConfig => "$EDITOR on a copy; saved only when it loads",
            ServiceAction::Create => {
                "a new service file from FILE (checked first; in a cluster: for every node)"
            }
            ServiceAction::Delete => {
                "remove the service file (refused while it runs anywhere; in a cluster: everywhere)"
            }
            ServiceAction::Logs => {
                "the service's action log (svc's and svcd's actions); -f: then the lines \
                 appended, until interrupted"
            }
            ServiceAction::Sync(SyncVerb::Status) => {
                "the sync resources' rows; exit 0 when every one is up"
            }
            ServiceAction::Sync(_) => {
                "rsync the sync resources to their targets from the node running the service \
                 (full: by checksum; nodes / drp: one target class; OpenSVC: syncupdate, \
                 syncfullsync, syncnodes, syncdrp)"
            }
        }
    }

    /// What follows the action's words in help (`--to NODE`, `ARGS...`).
    fn usage_tail(self) -> &'static str {
        match self {
            ServiceAction::Print(PrintTarget::Config) => " [--eval]",
            ServiceAction::Switch => " --to NODE",
            ServiceAction::Docker => " ARGS...",
            ServiceAction::Get | ServiceAction::Set | ServiceAction::Unset => {
                " --kw fs#1.mnt[=/srv]"
            }
            ServiceAction::Logs => " [--follow]",
            ServiceAction::Create => " --config FILE",
            _ => "",
        }
    }
}

/// The service actions' lines of `svc --help`: `SERVICE start|stop  the whole...`,
/// one line per run of actions with the same summary, each action's options after it.
pub fn service_help() -> String {
    let all = ServiceAction::all();
    let mut groups: Vec<Vec<ServiceAction>> = Vec::new();
    for a in all {
        match groups.last_mut() {
            Some(g) if g.first().is_some_and(|f| f.summary() == a.summary()) => g.push(a),
            _ => groups.push(vec![a]),
        }
    }
    let mut out = String::new();
    for g in groups {
        let Some(first) = g.first() else {
            continue;
        };
        let names: Vec<String> = g.iter().map(|a| a.words()).collect();
        let names = match first {
            // `print resinfo|devs`, not `print resinfo|print devs`.
            ServiceAction::Print(_) => format!(
                "print {}",
                g.iter()
                    .filter_map(|a| match a {
                        ServiceAction::Print(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            ),
            _ => names.join("|"),
        };
        let usage = format!("SERVICE {names}{}", g[g.len() - 1].usage_tail());
        let opts: Vec<String> = first
            .options()
            .iter()
            .filter(|o| **o != ActionOpt::Format)
            .map(|o| format!("--{}", o.long()))
            .collect();
        out.push_str(&help_line(&usage, first.summary()));
        if !opts.is_empty() && first.usage_tail().is_empty() {
            out.push_str(&help_line("", &format!("  options: {}", opts.join(" "))));
        }
    }
    out
}

/// Where a help line's text begins.
const HELP_COLUMN: usize = 33;
/// The width help lines are wrapped to.
const HELP_WIDTH: usize = 100;

/// `  USAGE   TEXT`, the text wrapped at [`HELP_WIDTH`] under its first line (below a usage
/// too long for its column). Leading spaces of the text indent every line of it.
pub fn help_line(usage: &str, text: &str) -> String {
    let body = text.trim_start_matches(' ');
    let column = HELP_COLUMN + (text.len() - body.len());
    let mut out = format!("  {usage}");
    if out.chars().count() + 1 > HELP_COLUMN {
        out.push('\n');
        out.push_str(&" ".repeat(column));
    } else {
        out.push_str(&" ".repeat(column - out.chars().count()));
    }
    let mut col = column;
    for (i, word) in body.split(' ').enumerate() {
        let len = word.chars().count();
        if i > 0 && col + 1 + len > HELP_WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(column));
            col = column;
        } else if i > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
    }
    out.push('\n');
    out
}

/// A command of the node rather than of one service: `svc print status`, `svc mon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeCommand {
    /// Every service of this node.
    PrintStatus,
    /// The same in JSON (`json status` too).
    JsonStatus,
    /// node.toml and every service file.
    ValidateConfig,
    /// The cluster grid (one node's grid without a cluster).
    Mon,
    /// `node forget NODE`: remove a dead node from the cluster's members.
    NodeForget,
}

impl NodeCommand {
    /// Every node command, in help order.
    pub const ALL: [NodeCommand; 5] = [
        NodeCommand::PrintStatus,
        NodeCommand::JsonStatus,
        NodeCommand::ValidateConfig,
        NodeCommand::Mon,
        NodeCommand::NodeForget,
    ];

    /// The first words that are node commands: a service so named is reached with `-s NAME`
    /// or a link, never as `svc NAME ACTION`.
    pub const RESERVED: [&'static str; 6] =
        ["print", "json_status", "json", "validate", "mon", "node"];

    /// Its words as typed.
    pub fn words(self) -> &'static str {
        match self {
            NodeCommand::PrintStatus => "print status",
            NodeCommand::JsonStatus => "json_status",
            NodeCommand::ValidateConfig => "validate config",
            NodeCommand::Mon => "mon",
            NodeCommand::NodeForget => "node forget",
        }
    }

    /// Its line in `svc --help`: what it does.
    pub fn summary(self) -> &'static str {
        match self {
            NodeCommand::PrintStatus => {
                "every service of this node (json_status: the same in JSON)"
            }
            NodeCommand::JsonStatus => "print status, in JSON (also `json status`)",
            NodeCommand::ValidateConfig => "check node.toml and every service file",
            NodeCommand::Mon => {
                "the cluster at a glance: services x nodes (this node alone without a cluster); \
                 --watch: every second"
            }
            NodeCommand::NodeForget => {
                "remove a dead node from the cluster's members (refused while it holds a lease)"
            }
        }
    }

    /// The options it takes.
    pub fn options(self) -> &'static [ActionOpt] {
        match self {
            NodeCommand::PrintStatus | NodeCommand::JsonStatus => {
                &[ActionOpt::Refresh, ActionOpt::Format]
            }
            NodeCommand::ValidateConfig | NodeCommand::NodeForget => &[],
            NodeCommand::Mon => &[ActionOpt::Watch, ActionOpt::Format],
        }
    }

    /// The node command at the head of `words` and how many words it took; `None` when the
    /// first word is none of [`NodeCommand::RESERVED`]; `Some(Err)` for a reserved word
    /// misused (`print config`).
    pub fn parse<S: AsRef<str>>(
        words: &[S],
    ) -> Option<Result<(NodeCommand, usize), ActionParseError>> {
        let first = words.first().map(AsRef::as_ref)?;
        let second = words.get(1).map(AsRef::as_ref);
        Some(match (first, second) {
            ("print", Some("status")) => Ok((NodeCommand::PrintStatus, 2)),
            ("print", Some(w)) => Err(ActionParseError::PrintTarget(w.to_string())),
            ("print", None) => Err(ActionParseError::Incomplete("print", "print status")),
            ("json_status", _) => Ok((NodeCommand::JsonStatus, 1)),
            ("json", Some("status")) => Ok((NodeCommand::JsonStatus, 2)),
            ("json", _) => Err(ActionParseError::Incomplete("json", "json status")),
            ("validate", Some("config")) => Ok((NodeCommand::ValidateConfig, 2)),
            ("validate", _) => Err(ActionParseError::Incomplete("validate", "validate config")),
            ("mon", _) => Ok((NodeCommand::Mon, 1)),
            ("node", Some("forget")) => Ok((NodeCommand::NodeForget, 2)),
            ("node", _) => Err(ActionParseError::Incomplete("node", "node forget NODE")),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_back_from_its_words() {
        for a in ServiceAction::all() {
            let words = a.words();
            let split: Vec<&str> = words.split(' ').collect();
            assert_eq!(
                ServiceAction::parse(&split),
                Ok((a, split.len())),
                "{words}"
            );
        }
        assert_eq!(
            ServiceAction::parse(&["print", "disklist"]),
            Ok((ServiceAction::Print(PrintTarget::Devs), 2))
        );
        assert_eq!(
            ServiceAction::parse(&["json", "status", "--refresh"]),
            Ok((ServiceAction::JsonStatus, 2))
        );
        assert_eq!(
            ServiceAction::parse(&["startdisk"]),
            Err(ActionParseError::Unknown("startdisk".into()))
        );
        assert!(matches!(
            ServiceAction::parse(&["print", "nope"]),
            Err(ActionParseError::PrintTarget(_))
        ));
        assert_eq!(
            ServiceAction::parse::<&str>(&[]),
            Err(ActionParseError::Missing)
        );
    }

    #[test]
    fn sync_actions_and_their_opensvc_spellings() {
        for (words, verb) in [
            (&["sync", "update"][..], SyncVerb::Update),
            (&["syncupdate"][..], SyncVerb::Update),
            (&["syncfullsync"][..], SyncVerb::Full),
            (&["sync", "full"][..], SyncVerb::Full),
            (&["syncnodes"][..], SyncVerb::Nodes),
            (&["syncdrp"][..], SyncVerb::Drp),
            (&["sync", "status"][..], SyncVerb::Status),
        ] {
            assert_eq!(
                ServiceAction::parse(words),
                Ok((ServiceAction::Sync(verb), words.len()))
            );
        }
        assert!(matches!(
            ServiceAction::parse(&["sync"]),
            Err(ActionParseError::Incomplete("sync", _))
        ));
        let update = ServiceAction::Sync(SyncVerb::Update);
        assert_eq!(update.refused(&[ActionOpt::Target, ActionOpt::Rid]), []);
        assert_eq!(
            ServiceAction::Sync(SyncVerb::Drp).refused(&[ActionOpt::Target]),
            [ActionOpt::Target]
        );
        // A sync resource is never started nor stopped alone.
        assert_eq!(ServiceAction::from_name("startsync"), None);
    }

    #[test]
    fn engine_actions_and_partial_kinds() {
        assert_eq!(
            ServiceAction::from_name("startfs").and_then(ServiceAction::engine),
            Some((Action::Start, Some(vec![Kind::Vg, Kind::Fs])))
        );
        assert_eq!(
            ServiceAction::from_name("stopfs").and_then(ServiceAction::engine),
            Some((Action::Stop, Some(vec![Kind::Fs])))
        );
        assert_eq!(
            ServiceAction::Restart.engine(),
            Some((Action::Restart, None))
        );
        assert_eq!(ServiceAction::Freeze.engine(), None);
        // Two-word actions are no route names.
        assert_eq!(ServiceAction::from_name("print"), None);
        assert_eq!(ServiceAction::from_name("validate"), None);
    }

    #[test]
    fn svcd_serves_the_engine_actions_and_freeze_thaw() {
        let names = ServiceAction::http_names();
        for n in [
            "start", "stop", "restart", "freeze", "thaw", "startfs", "stopip",
        ] {
            assert!(names.iter().any(|x| x == n), "{n}: {names:?}");
        }
        for n in ["switch", "status", "print status", "set", "docker"] {
            assert!(!names.iter().any(|x| x == n), "{n}: {names:?}");
        }
    }

    #[test]
    fn all_is_for_start_and_stop_of_a_flex_service() {
        use crate::config::{Flex, Orchestrate, Topology};
        let flex = Topology::Flex(Flex {
            min: 1,
            max: 2,
            target: 2,
        });
        let (start, stop) = (ServiceAction::Start, ServiceAction::Stop);
        for a in [start, stop] {
            assert!(a.options().contains(&ActionOpt::All));
            assert_eq!(a.all_refusal("web", flex, Orchestrate::Ha, false), None);
            let why = a.all_refusal("web", Topology::Failover, Orchestrate::Ha, false);
            assert!(
                why.as_deref()
                    .is_some_and(|w| w.contains("web is a failover service (topology = failover)")),
                "{why:?}"
            );
            let why = a.all_refusal("web", flex, Orchestrate::Ha, true);
            assert!(
                why.as_deref()
                    .is_some_and(|w| w.contains("--all and --local contradict")),
                "{why:?}"
            );
        }
        for o in [Orchestrate::No, Orchestrate::Start] {
            assert_eq!(stop.all_refusal("web", flex, o, false), None);
            let why = start.all_refusal("web", flex, o, false);
            assert!(
                why.as_deref()
                    .is_some_and(|w| w.contains("only orchestrate = ha does")),
                "{why:?}"
            );
        }
        for a in [
            ServiceAction::Restart,
            ServiceAction::StartKind(Kind::Fs),
            ServiceAction::Freeze,
        ] {
            assert!(!a.options().contains(&ActionOpt::All), "{a:?}");
        }
    }

    #[test]
    fn options_an_action_does_not_take_are_named() {
        let given = [ActionOpt::Rid, ActionOpt::To, ActionOpt::Eval];
        assert_eq!(
            ServiceAction::Start.refused(&given),
            [ActionOpt::To, ActionOpt::Eval]
        );
        assert_eq!(ServiceAction::Switch.refused(&[ActionOpt::To]), []);
        assert_eq!(
            ServiceAction::Print(PrintTarget::Config).refused(&given),
            [ActionOpt::Rid, ActionOpt::To]
        );
        for o in ActionOpt::ALL {
            assert_eq!(ActionOpt::from_long(o.long()), Some(o));
        }
    }

    #[test]
    fn help_lists_every_action() {
        let help = service_help();
        for a in ServiceAction::all() {
            let w = match a {
                ServiceAction::Print(t) => t.as_str().to_string(),
                other => other.words(),
            };
            assert!(help.contains(&w), "{w} missing from\n{help}");
        }
        assert!(help.contains("SERVICE start|stop "), "{help}");
        assert!(help.contains("SERVICE restart "), "{help}");
        assert!(help.contains("SERVICE switch --to NODE"), "{help}");
        assert!(help.contains("SERVICE print resinfo|devs"), "{help}");
    }

    #[test]
    fn node_commands() {
        assert_eq!(
            NodeCommand::parse(&["print", "status"]),
            Some(Ok((NodeCommand::PrintStatus, 2)))
        );
        assert_eq!(
            NodeCommand::parse(&["mon"]),
            Some(Ok((NodeCommand::Mon, 1)))
        );
        assert_eq!(NodeCommand::parse(&["web", "start"]), None);
        assert_eq!(
            NodeCommand::parse(&["node", "forget", "n3"]),
            Some(Ok((NodeCommand::NodeForget, 2)))
        );
        assert!(matches!(NodeCommand::parse(&["node"]), Some(Err(_))));
        assert!(matches!(
            NodeCommand::parse(&["print", "config"]),
            Some(Err(_))
        ));
        for c in NodeCommand::ALL {
            let first = c.words().split(' ').next().unwrap_or("");
            assert!(NodeCommand::RESERVED.contains(&first), "{first}");
        }
    }
}

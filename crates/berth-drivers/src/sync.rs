//! `[sync#N]` of type rsync: the transfer (rsync over ssh, host keys checked), the receiver's
//! reads before it accepts, the records on disk, and the row of `print status`.
//!
//! The sender runs `rsync -HAXpogDtrlvx --delete --force --stats` over `ssh -o BatchMode=yes
//! -o StrictHostKeyChecking=yes`, with `--rsync-path` naming `svc sync-receive SVC RID FROM
//! TOKEN` on the receiver: that command (the receiver's own `svc`, its own config) checks with
//! [`berth_model::sync::receive`] and, if it accepts, records the token and execs `rsync
//! --server`; if it refuses, it prints [`REFUSED_MARK`] and the [`Refusal`] as JSON on stderr,
//! which ssh carries back, and exits. rsync writes each file aside and renames it (no
//! `--partial`, no `--inplace`): a transfer cut midway leaves every file whole, old or new.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_engine::{Ctx, DriverError, Outcome};
use berth_model::config::{NodeConfig, SyncSpec, SyncTarget};
use berth_model::drp::DrpMark;
use berth_model::status::LogEntry;
use berth_model::sync::{
    Received, ReceiverFacts, Refusal, SyncRecord, SyncRecords, SyncResult, TargetRecords,
};
use berth_model::{ResourceState, Rid, Status};

/// The line the receiver prints on stderr before the refusal's JSON.
pub const REFUSED_MARK: &str = "berth-sync-refused:";

/// The bound on a transfer whose resource sets no `timeout`.
const DEFAULT_BOUND: Duration = Duration::from_secs(24 * 3600);

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How this node's ssh reaches the others: node.toml's `[sync]`.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// `ssh_key`: the identity (default: ssh's own choice, root's keys).
    pub ssh_key: Option<PathBuf>,
    /// `ssh_known_hosts`: the known hosts file (default: the system's).
    pub ssh_known_hosts: Option<PathBuf>,
}

impl Transport {
    /// From node.toml.
    pub fn of(node: &NodeConfig) -> Transport {
        let s = node.sync.clone().unwrap_or_default();
        Transport {
            ssh_key: s.ssh_key,
            ssh_known_hosts: s.ssh_known_hosts,
        }
    }

    /// The ssh command rsync runs (`-e`), one line for the remote shell: host keys always
    /// checked, never a password prompt.
    pub fn ssh_command(&self) -> String {
        let mut words: Vec<String> = vec![
            "ssh".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
        ];
        if let Some(k) = &self.ssh_known_hosts {
            words.push("-o".into());
            words.push(format!("UserKnownHostsFile={}", k.display()));
            words.push("-o".into());
            words.push("GlobalKnownHostsFile=/dev/null".into());
        }
        if let Some(k) = &self.ssh_key {
            words.push("-o".into());
            words.push("IdentitiesOnly=yes".into());
            words.push("-i".into());
            words.push(k.display().to_string());
        }
        shell_join(&words)
    }
}

/// Quote `w` for a POSIX shell (rsync splits `-e` and the remote shell reads `--rsync-path`).
fn shell_quote(w: &str) -> String {
    if !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One transfer: what the sender knows of it.
#[derive(Debug, Clone)]
pub struct SendTo<'a> {
    /// The service.
    pub svc: &'a str,
    /// The sync resource.
    pub rid: Rid,
    /// This node (the sender).
    pub from: &'a str,
    /// The sender's fencing token (none outside a cluster).
    pub token: Option<i64>,
    /// The target node.
    pub target: &'a str,
    /// Its address.
    pub address: &'a str,
    /// `sync full`: every file compared by checksum.
    pub full: bool,
    /// ssh's key and known hosts.
    pub transport: &'a Transport,
}

/// The rsync command line of a transfer (without the program name).
pub fn rsync_args(spec: &SyncSpec, to: &SendTo<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-HAXpogDtrlvx", "--delete", "--force", "--stats"]
        .map(OsString::from)
        .into();
    if to.full {
        a.push("--checksum".into());
    }
    if let Some(b) = spec.bwlimit {
        a.push(format!("--bwlimit={b}").into());
    }
    if let Some(t) = spec.timeout {
        a.push(format!("--timeout={}", t.as_secs().max(1)).into());
    }
    for x in &spec.exclude {
        a.push(format!("--exclude={x}").into());
    }
    a.extend(spec.options.iter().map(OsString::from));
    a.push("-e".into());
    a.push(to.transport.ssh_command().into());
    let receive = [
        "svc".to_string(),
        "sync-receive".to_string(),
        to.svc.to_string(),
        to.rid.to_string(),
        to.from.to_string(),
        to.token.map_or_else(|| "-".to_string(), |t| t.to_string()),
    ];
    a.push(format!("--rsync-path={}", shell_join(&receive)).into());
    a.push(spec.src.clone().into());
    let mut dst = OsString::from(format!("root@{}:", to.address));
    dst.push(&spec.dst);
    a.push(dst);
    a
}

/// Run one transfer, bounded by the resource's `timeout` (a day without one), and say how it
/// ended. Never fails: a failure is a record.
pub fn send(spec: &SyncSpec, to: &SendTo<'_>) -> SyncRecord {
    let args = rsync_args(spec, to);
    let started = Instant::now();
    let mut cmd = Command::new("rsync");
    cmd.args(&args);
    let line = format!("rsync to {} ({})", to.target, to.address);
    tracing::info!(
        "rsync {}",
        args.iter()
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let bound = spec
        .timeout
        .map_or(DEFAULT_BOUND, |t| t + Duration::from_secs(30));
    let result = crate::cmd::run(&mut cmd, &line, bound);
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let record = |bytes: u64, result: SyncResult| SyncRecord {
        time: now(),
        bytes,
        duration_ms,
        token: to.token,
        result,
    };
    match result {
        Err(e) => record(0, SyncResult::Failed(e.to_string())),
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let bytes = total_bytes_sent(&stdout).unwrap_or(0);
            if let Some(refusal) = refusal_of(&stderr) {
                return record(0, SyncResult::Refused(refusal.to_string()));
            }
            if out.status.success() {
                record(bytes, SyncResult::Ok)
            } else {
                let why = match out.status.code() {
                    Some(c) => format!("rsync exit code {c}"),
                    None => format!(
                        "rsync killed by signal {}",
                        std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
                    ),
                };
                let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
                let tail = tail[tail.len().saturating_sub(3)..].join("; ");
                record(bytes, SyncResult::Failed(format!("{why}: {tail}")))
            }
        }
    }
}

/// rsync's `Total bytes sent: 1,234` of `--stats`.
fn total_bytes_sent(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        let n = l.trim().strip_prefix("Total bytes sent:")?;
        n.trim().replace(',', "").parse().ok()
    })
}

/// The receiver's refusal, when its stderr (carried back by ssh) has one.
pub fn refusal_of(stderr: &str) -> Option<Refusal> {
    stderr.lines().find_map(|l| {
        let json = l.trim().strip_prefix(REFUSED_MARK)?;
        serde_json::from_str(json.trim()).ok()
    })
}

/// The line the receiver prints to refuse.
pub fn refusal_line(r: &Refusal) -> String {
    format!(
        "{REFUSED_MARK} {}",
        serde_json::to_string(r).unwrap_or_default()
    )
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, DriverError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| DriverError::Refused(format!("cannot read {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DriverError::io(format!("read {}", path.display()), e)),
    }
}

/// Write `value` to `path` whole: a temp file beside it, fsynced, renamed.
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), DriverError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)
        .map_err(|e| DriverError::io(format!("mkdir {}", dir.display()), e))?;
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(value).unwrap_or_default();
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| DriverError::io(format!("write {}", path.display()), e))
}

/// A sync resource's records on this node (none yet: empty).
pub fn read_records(ctx: &Ctx<'_>, rid: Rid) -> Result<SyncRecords, DriverError> {
    let path = ctx.paths.sync_records(&ctx.svc.name, &rid.to_string());
    Ok(read_json(&path)?.unwrap_or_default())
}

/// Add an attempt to the records on disk.
pub fn record(ctx: &Ctx<'_>, rid: Rid, target: &str, rec: SyncRecord) -> Result<(), DriverError> {
    let mut all = read_records(ctx, rid)?;
    all.entry(target.to_string())
        .or_insert_with(TargetRecords::default)
        .push(rec);
    write_json(
        &ctx.paths.sync_records(&ctx.svc.name, &rid.to_string()),
        &all,
    )
}

/// The drp_active mark of the service on this node, if any.
pub fn drp_mark(ctx: &Ctx<'_>) -> Result<Option<DrpMark>, DriverError> {
    let path = ctx.paths.drp_mark(&ctx.svc.name);
    match std::fs::read_to_string(&path) {
        Ok(t) => DrpMark::parse(&t)
            .map(Some)
            .map_err(|e| DriverError::Refused(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DriverError::io(format!("read {}", path.display()), e)),
    }
}

/// What the receiver reads of itself: `avail` and `starting` come from the engine (the
/// caller's), the rest from the host.
pub fn receiver_facts(
    ctx: &Ctx<'_>,
    rid: Rid,
    spec: &SyncSpec,
    avail: Status,
    starting: bool,
) -> Result<ReceiverFacts, DriverError> {
    let dstfs = match &spec.dstfs {
        None => None,
        Some(p) => Some((p.display().to_string(), crate::fs::is_mounted(p)?)),
    };
    Ok(ReceiverFacts {
        avail: Some(avail),
        starting,
        dstfs,
        received: read_json(&ctx.paths.sync_received(&ctx.svc.name, &rid.to_string()))?,
        drp_mark: drp_mark(ctx)?,
    })
}

/// Remember the sync the receiver accepted (its token is then the oldest it takes).
pub fn accept(ctx: &Ctx<'_>, rid: Rid, from: &str, token: Option<i64>) -> Result<(), DriverError> {
    write_json(
        &ctx.paths.sync_received(&ctx.svc.name, &rid.to_string()),
        &Received {
            from: from.to_string(),
            token,
            time: now(),
        },
    )
}

/// `src -> drpnodes:dst`.
pub fn label(spec: &SyncSpec) -> String {
    let classes: Vec<&str> = spec.target.iter().map(|t| t.as_str()).collect();
    format!(
        "rsync {} -> {}:{}",
        spec.src.display(),
        classes.join(","),
        spec.dst.display()
    )
}

/// The row of `print status`: the sender's view from its records; a line when this node
/// received (`receives from n1`). Where the service does not run, the status tree turns it to
/// `n/a` and keeps only that line.
pub fn status(ctx: &Ctx<'_>, rid: Rid, spec: &SyncSpec) -> ResourceState {
    let targets = berth_model::sync::targets(&ctx.svc.settings, spec, ctx.nodename, None);
    let (mut st, mut log) = match read_records(ctx, rid) {
        Ok(recs) => berth_model::sync::row(spec, &targets, &recs, now()),
        Err(e) => (Status::Warn, vec![LogEntry::warn(e.to_string())]),
    };
    match read_json::<Received>(&ctx.paths.sync_received(&ctx.svc.name, &rid.to_string())) {
        Ok(Some(r)) => log.push(LogEntry::info(format!(
            "receives from {}{} (last {} ago)",
            r.from,
            r.token.map(|t| format!(", token {t}")).unwrap_or_default(),
            berth_model::sync::age(Duration::from_secs(now().saturating_sub(r.time)))
        ))),
        Ok(None) => {}
        Err(e) => {
            st = st.merge(Status::Warn);
            log.push(LogEntry::warn(e.to_string()));
        }
    }
    ResourceState::new(st, label(spec), log)
}

/// A sync resource is never started with the service: the engine never asks (it is out of
/// the start order); asked anyway, nothing is done.
pub fn start() -> Result<Outcome, DriverError> {
    Ok(Outcome::AlreadyDone)
}

/// Nor stopped.
pub fn stop() -> Result<Outcome, DriverError> {
    Ok(Outcome::AlreadyDone)
}

/// The target class of `--target`.
pub fn parse_target(word: &str) -> Option<SyncTarget> {
    SyncTarget::parse(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::config::Schedule;

    #[test]
    fn the_command_checks_host_keys_and_names_the_receiver_check() {
        let spec = SyncSpec {
            src: "/srv/web/".into(),
            dst: "/srv/web/".into(),
            dstfs: None,
            target: vec![SyncTarget::Drpnodes],
            schedule: Schedule::Manual,
            sync_max_delay: Duration::from_secs(60),
            exclude: vec!["cache/".into()],
            bwlimit: Some(2000),
            timeout: Some(Duration::from_secs(600)),
            options: vec!["--sparse".into()],
        };
        let t = Transport {
            ssh_key: Some("/etc/berth/id".into()),
            ssh_known_hosts: Some("/etc/berth/known hosts".into()),
        };
        let to = SendTo {
            svc: "web",
            rid: "sync#1".parse().unwrap(),
            from: "n1",
            token: Some(42),
            target: "n3",
            address: "10.0.0.3",
            full: true,
            transport: &t,
        };
        let a: Vec<String> = rsync_args(&spec, &to)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert_eq!(a[..4], ["-HAXpogDtrlvx", "--delete", "--force", "--stats"]);
        for x in [
            "--checksum",
            "--bwlimit=2000",
            "--timeout=600",
            "--exclude=cache/",
            "--sparse",
            "--rsync-path=svc sync-receive web 'sync#1' n1 42",
            "/srv/web/",
            "root@10.0.0.3:/srv/web/",
        ] {
            assert!(a.contains(&x.to_string()), "{x} not in {a:?}");
        }
        let e = &a[a.iter().position(|x| x == "-e").unwrap() + 1];
        assert!(e.contains("StrictHostKeyChecking=yes"), "{e}");
        assert!(e.contains("BatchMode=yes"), "{e}");
        assert!(
            e.contains("'UserKnownHostsFile=/etc/berth/known hosts'"),
            "{e}"
        );
        assert!(
            !a.iter()
                .any(|x| x.contains("--partial") || x.contains("--inplace"))
        );
    }

    #[test]
    fn a_refusal_goes_back_typed_and_stats_give_the_bytes() {
        let r = Refusal::NotMounted {
            dstfs: "/srv/web".into(),
            node: "n3".into(),
        };
        let stderr = format!(
            "{}\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\n",
            refusal_line(&r)
        );
        assert_eq!(refusal_of(&stderr), Some(r));
        assert_eq!(refusal_of("rsync error: some other"), None);
        assert_eq!(
            total_bytes_sent("Number of files: 3\nTotal bytes sent: 12,345,678\n"),
            Some(12_345_678)
        );
    }
}

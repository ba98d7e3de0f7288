//! `svc SVC sync update|full|nodes|drp|status` (the sender), and the hidden
//! `svc sync-receive SVC RID FROM TOKEN --server ...` the sender's rsync runs on the receiver
//! (`--rsync-path`): it checks, records the token, then execs `rsync --server`.
//!
//! Decide, then act: the sender reads its facts under the service's lock (held only to decide
//! and to record, never during a transfer), decides with [`berth_model::sync::send`], then runs
//! one rsync per target under the resource's own sync lock (two syncs of one resource never
//! overlap: the second is refused). The receiver decides with [`berth_model::sync::receive`].

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use berth_drivers::sync::{self as driver, SendTo, Transport};
use berth_drivers::{Ctx, HOST};
use berth_engine::Engine;
use berth_engine::lock::ServiceLock;
use berth_manual::{errln, outln};
use berth_model::action::SyncVerb;
use berth_model::config::{Resource, ServiceConfig, Spec, SyncSpec, SyncTarget};
use berth_model::paths::Paths;
use berth_model::status::{Level, ResourceStatus};
use berth_model::sync::{Refusal, SenderFacts, SyncResult};
use berth_model::{Rid, Status};

use crate::cluster::ClusterCli;

/// What a sync action was asked.
pub struct SyncRequest<'a> {
    /// The node's directories.
    pub paths: &'a Paths,
    /// This node.
    pub nodename: &'a str,
    /// The verb.
    pub verb: SyncVerb,
    /// `--rid`.
    pub rid: Option<&'a str>,
    /// `--force`: outside the schedule's window.
    pub force: bool,
    /// `--target`.
    pub target: Option<SyncTarget>,
    /// `--waitlock`.
    pub waitlock: Duration,
}

/// The sync resources `--rid` selects (all without it); a named rid that is no sync resource
/// of the service is an error.
pub fn selected<'s>(
    svc: &'s ServiceConfig,
    rid: Option<&str>,
) -> anyhow::Result<Vec<(&'s Resource, &'s SyncSpec)>> {
    let wanted: Option<Vec<Rid>> = match rid {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|r| {
                    r.trim()
                        .parse::<Rid>()
                        .map_err(|e| anyhow!("--rid {r}: {e}"))
                })
                .collect::<anyhow::Result<_>>()?,
        ),
    };
    let mut out = Vec::new();
    for r in &svc.resources {
        let Spec::Sync(spec) = &r.spec else {
            continue;
        };
        if r.common.disable || wanted.as_ref().is_some_and(|w| !w.contains(&r.rid)) {
            continue;
        }
        out.push((r, spec));
    }
    if let Some(w) = &wanted {
        for rid in w {
            if !out.iter().any(|(r, _)| r.rid == *rid) {
                bail!(
                    "--rid {rid}: no enabled sync resource of service {}",
                    svc.name
                );
            }
        }
    }
    if out.is_empty() {
        bail!("service {} has no sync resource", svc.name);
    }
    Ok(out)
}

/// `sync status`: the rows (text or JSON), and whether every one is up.
pub fn status(req: &SyncRequest<'_>, svc: &ServiceConfig, json: bool) -> anyhow::Result<bool> {
    let picked = selected(svc, req.rid)?;
    let engine = Engine::new(&HOST, req.paths, req.nodename);
    let st = engine.status(svc);
    let rows: Vec<&ResourceStatus> = st
        .resources
        .iter()
        .filter(|r| picked.iter().any(|(p, _)| p.rid == r.rid))
        .collect();
    if json {
        let text = serde_json::to_string_pretty(&rows)?;
        outln!("{text}");
    } else {
        for r in &rows {
            outln!(
                "{:<15}{:<9}{}",
                r.rid.to_string(),
                r.status.as_str(),
                r.label
            );
            for l in &r.log {
                let prefix = match l.level {
                    Level::Info => "",
                    Level::Warn => "warn: ",
                    Level::Error => "error: ",
                };
                outln!("  # {prefix}{}", l.message);
            }
        }
    }
    Ok(rows.iter().all(|r| r.status == Status::Up))
}

/// `sync update|full|nodes|drp`: send each selected resource to its targets. `Ok(())` when
/// every transfer went well; an error naming every one that did not.
pub fn send(
    req: &SyncRequest<'_>,
    svc: &ServiceConfig,
    cluster: Option<&ClusterCli>,
) -> anyhow::Result<()> {
    let _span = tracing::info_span!("service", svc = %svc.name).entered();
    let picked = selected(svc, req.rid)?;
    let engine = Engine::new(&HOST, req.paths, req.nodename);
    let ctx = engine.context(svc);
    let node = berth_engine::load::node_config(req.paths)?;
    let transport = Transport::of(&node);
    // Decide under the service's lock: nothing starts or stops it meanwhile.
    let token = {
        let _lock = ServiceLock::acquire(&svc.name, &req.paths.lock_file(&svc.name), req.waitlock)?;
        let st = engine.status(svc);
        let facts = SenderFacts {
            owner: match cluster {
                Some(c) => c.owner(&svc.name)?,
                None => None,
            },
            clustered: cluster.is_some(),
            resources: st
                .resources
                .iter()
                .filter(|r| r.rid.kind.runs_with_service() && !r.flags.disabled)
                .map(|r| (r.rid, r.status))
                .collect(),
            // In a cluster also etcd's mark: a DR node that started it without etcd published
            // it there; this node's own file is read first.
            drp_mark: match cluster {
                Some(c) => c.drp_active(&svc.name)?,
                None => driver::drp_mark(&ctx)?,
            },
        };
        berth_model::sync::send(&svc.name, req.nodename, &facts)?
    };
    let only = match req.verb {
        SyncVerb::Nodes => Some(SyncTarget::Nodes),
        SyncVerb::Drp => Some(SyncTarget::Drpnodes),
        _ => req.target,
    };
    let mut failed: Vec<String> = Vec::new();
    for (res, spec) in picked {
        let rid = res.rid;
        let _span = tracing::info_span!("resource", svc = %svc.name, rid = %rid).entered();
        if let Err(e) = send_one(req, svc, &ctx, cluster, &transport, token, only, rid, spec) {
            tracing::error!("{e:#}");
            failed.push(format!("{rid}: {e:#}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failed.join("; ")))
    }
}

#[allow(clippy::too_many_arguments)]
fn send_one(
    req: &SyncRequest<'_>,
    svc: &ServiceConfig,
    ctx: &Ctx<'_>,
    cluster: Option<&ClusterCli>,
    transport: &Transport,
    token: Option<i64>,
    only: Option<SyncTarget>,
    rid: Rid,
    spec: &SyncSpec,
) -> anyhow::Result<()> {
    let minute = u32::try_from((driver::now() % 86_400) / 60).unwrap_or(0);
    if matches!(spec.schedule, berth_model::config::Schedule::Window { .. })
        && !spec.schedule.in_window(minute)
        && !req.force
    {
        bail!(
            "outside its schedule window {}: --force to run it now",
            String::from(spec.schedule)
        );
    }
    let targets = berth_model::sync::targets(&svc.settings, spec, req.nodename, only);
    if targets.is_empty() {
        return Err(berth_model::sync::SendRefusal::NoTarget { rid, only }.into());
    }
    // One sync of a resource at a time: a second one is refused, naming the first.
    let _sync_lock = ServiceLock::acquire(
        &format!("{} {rid}", svc.name),
        &req.paths.sync_lock(&svc.name, &rid.to_string()),
        Duration::ZERO,
    )
    .map_err(|e| anyhow!("a sync of {rid} is running: {e}"))?;
    let mut failed = Vec::new();
    for target in &targets {
        let address = match cluster {
            Some(c) => c.address(target)?,
            None => Some(target.clone()),
        };
        let rec = match &address {
            None => berth_model::sync::SyncRecord {
                time: driver::now(),
                bytes: 0,
                duration_ms: 0,
                token,
                result: SyncResult::Failed(format!(
                    "no address for {target}: it has no node record in etcd (its svcd is not \
                     running)"
                )),
            },
            Some(address) => {
                tracing::info!(
                    "sync to {target} ({address}){}",
                    if req.verb == SyncVerb::Full {
                        ", full"
                    } else {
                        ""
                    }
                );
                driver::send(
                    spec,
                    &SendTo {
                        svc: &svc.name,
                        rid,
                        from: req.nodename,
                        token,
                        target,
                        address,
                        full: req.verb == SyncVerb::Full,
                        transport,
                    },
                )
            }
        };
        match &rec.result {
            SyncResult::Ok => tracing::info!(
                "synced to {target}: {} bytes sent in {} ms",
                rec.bytes,
                rec.duration_ms
            ),
            SyncResult::Refused(why) => {
                tracing::error!("{target} refused: {why}");
                failed.push(format!("{target} refused: {why}"));
            }
            SyncResult::Failed(why) => {
                tracing::error!("sync to {target} failed: {why}");
                failed.push(format!("{target}: {why}"));
            }
        }
        // Record under the service's lock (a short hold).
        {
            let _lock =
                ServiceLock::acquire(&svc.name, &req.paths.lock_file(&svc.name), req.waitlock)?;
            driver::record(ctx, rid, target, rec.clone())?;
        }
        if let Some(c) = cluster
            && let Err(e) = c.put_sync_record(&svc.name, &rid.to_string(), target, &rec)
        {
            tracing::warn!("cannot record the sync to {target} in etcd: {e:#}");
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failed.join("; ")))
    }
}

/// The directories of the receiver: its own defaults or `BERTH_*` environment.
#[derive(Debug, clap::Parser)]
#[command(name = "svc sync-receive", no_binary_name = true)]
struct ReceiveDirs {
    #[command(flatten)]
    dirs: berth_engine::args::DirArgs,
}

/// `svc sync-receive SVC RID FROM TOKEN RSYNC-SERVER-ARGS...`: refuse (the refusal on
/// stderr, exit 3) or exec `rsync RSYNC-SERVER-ARGS...`. Nothing is written to stdout: it
/// is rsync's protocol channel.
pub fn receive(args: &[OsString]) -> ExitCode {
    match receive_checked(args) {
        Ok(never) => match never {},
        Err(ReceiveError::Refused(r)) => {
            errln!("{}", driver::refusal_line(&r));
            errln!("svc sync-receive: refused: {r}");
            ExitCode::from(3)
        }
        Err(ReceiveError::Other(e)) => {
            errln!("svc sync-receive: {e:#}");
            ExitCode::from(1)
        }
    }
}

enum ReceiveError {
    Refused(Refusal),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for ReceiveError {
    fn from(e: anyhow::Error) -> Self {
        ReceiveError::Other(e)
    }
}

fn receive_checked(args: &[OsString]) -> Result<std::convert::Infallible, ReceiveError> {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let [svc_name, rid, from, token, server @ ..] = words.as_slice() else {
        return Err(anyhow!("usage: svc sync-receive SVC RID FROM TOKEN --server ...").into());
    };
    if server.first().map(String::as_str) != Some("--server") {
        return Err(anyhow!("sync-receive runs rsync --server only").into());
    }
    let token: Option<i64> = match token.as_str() {
        "-" => None,
        t => Some(t.parse().map_err(|_| anyhow!("bad token {t:?}"))?),
    };
    let rid: Rid = rid.parse().map_err(|e| anyhow!("rid {rid}: {e}"))?;
    let dirs = <ReceiveDirs as clap::Parser>::try_parse_from(Vec::<String>::new())
        .map_err(|e| anyhow!("{e}"))?;
    let paths = Paths::from(dirs.dirs);
    let node = berth_engine::load::node_config(&paths).map_err(anyhow::Error::from)?;
    let me = berth_engine::load::nodename(&node).map_err(anyhow::Error::from)?;
    let svc = berth_engine::load::load_service(&paths, svc_name).map_err(anyhow::Error::from)?;
    let Some(Spec::Sync(spec)) = svc.resource(rid).map(|r| &r.spec) else {
        return Err(anyhow!("service {svc_name} has no sync resource {rid} on {me}").into());
    };
    // The destination rsync --server is given last: it must be the receiver's own `dst`.
    let dst = server.last().cloned().unwrap_or_default();
    if std::path::Path::new(&dst) != spec.dst.as_path() {
        return Err(ReceiveError::Refused(Refusal::OtherDst {
            rid: rid.to_string(),
            dst,
            expected: spec.dst.display().to_string(),
            node: me,
        }));
    }
    let engine = Engine::new(&HOST, &paths, &me);
    let ctx = engine.context(&svc);
    // One receiver check at a time per resource: two senders cannot both pass on one token.
    let _receiving = ServiceLock::acquire(
        &format!("{svc_name} {rid}"),
        &paths.sync_dir(svc_name).join(format!("{rid}.receive-lock")),
        Duration::from_secs(30),
    )
    .map_err(anyhow::Error::from)?;
    let starting =
        ServiceLock::acquire(svc_name, &paths.lock_file(svc_name), Duration::ZERO).is_err();
    let avail = berth_model::sync::receiver_avail(&svc, &engine.status(&svc));
    let facts =
        driver::receiver_facts(&ctx, rid, spec, avail, starting).map_err(anyhow::Error::from)?;
    berth_model::sync::receive(svc_name, &me, from, token, &facts)
        .map_err(ReceiveError::Refused)?;
    driver::accept(&ctx, rid, from, token).map_err(anyhow::Error::from)?;
    let e = std::process::Command::new("rsync").args(server).exec();
    Err(anyhow!("cannot run rsync: {e}").into())
}

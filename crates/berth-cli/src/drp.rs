//! `svc SVC start` on a DR node (in the service's `drpnodes`, not in its `nodes`) when etcd does
//! not answer: refused, naming etcd; with `--force`, the start goes on without the cluster and
//! first writes the `drp_active` mark (node, time, token 0) in the service's var dir, which the
//! node's svcd publishes once etcd answers again (see `berth_cluster::drp`).

use anyhow::anyhow;
use berth_model::ServiceConfig;
use berth_model::drp::DrpMark;
use berth_model::paths::Paths;

/// Whether `me` is one of the service's DR nodes (and not one of its nodes).
pub fn is_dr_node(svc: &ServiceConfig, me: &str) -> bool {
    berth_cluster::drp::role(svc, me) == berth_cluster::drp::Role::Drp
}

/// A start on DR node `me` found etcd unreachable (`why`): refused without `force`; with it,
/// the mark is written and the start goes on without the cluster (`Ok`).
pub fn forced_start(
    paths: &Paths,
    svc: &ServiceConfig,
    me: &str,
    why: &str,
    force: bool,
) -> anyhow::Result<()> {
    let name = &svc.name;
    if !force {
        return Err(anyhow!(
            "etcd is unreachable from DR node {me} ({why}): a DR start without etcd needs \
             --force; use it only when the primary site is lost (no node of {} may run {name})",
            svc.settings.nodes.join(", ")
        ));
    }
    let mark = DrpMark {
        node: me.to_string(),
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        token: 0,
    };
    berth_cluster::drp::write_local(paths, name, &mark)?;
    tracing::warn!(
        "etcd is unreachable ({why}): DR start forced on {me}; drp_active mark written to {} \
         (published to etcd when it answers again; nodes {} refuse {name} until the fail-back)",
        paths.drp_mark(name).display(),
        svc.settings.nodes.join(", ")
    );
    Ok(())
}

//! Owner keys taken in batches: the starts of a failover (hundreds at once) each ask for their
//! service's owner key, and a [`Taker`] sends them to etcd as a few transactions of up to
//! [`MAX_TXN_OPS`] operations rather than one transaction each.
//!
//! Each take keeps the compares of a single one ([`Store::acquire_if`]): the owner key absent,
//! this node's key on the lease, and with a decision's revision, the service's target and
//! frozen keys unchanged since. A batch is one transaction whose compares are all of its
//! takes': it succeeds or fails as a whole. When it fails, its failure branch reads what the
//! compares looked at (this node's key, every owner key, the decided takes' target and frozen
//! keys) and [`verdict`] settles each take from them (already this node's under this lease:
//! confirmed; another's: refused; the lease not this node's, or the target or freeze changed
//! since the decision: refused); those still free go again in the next batch, and should a
//! round settle none (not expected: the reads are of the same revision as the compares), each
//! goes alone ([`after_failure`]).
//! A batch that got no answer is sent again (idempotent: a batch that was applied fails the
//! second time, and its reads confirm every take).
//!
//! The decisions ([`next_batch`], [`verdict`], [`after_failure`]) are pure, unit-tested
//! functions; the task around them only sends and replies.

use std::collections::{BTreeSet, VecDeque};

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::records::{OwnerRecord, OwnerWhy, Ownership};
use crate::{ClusterError, Store, now_ms};

/// etcd's default `--max-txn-ops`: the most compares, and the most operations of each branch,
/// in one transaction.
pub const MAX_TXN_OPS: usize = 128;

/// Batches in flight at once from one process: while they are out, the takes that come in
/// wait and make the next batch bigger.
const BATCHES_AT_ONCE: usize = 2;

/// How many times a batch (or a lone take) that got no answer is sent.
const TRIES: u32 = 3;

/// How many times a take goes back to the queue after a failed batch before it goes alone.
const MAX_ROUNDS: u32 = 4;

/// What the batching decisions need of a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask<'a> {
    /// The service.
    pub svc: &'a str,
    /// The lease the owner key is to hang on.
    pub lease: i64,
    /// Whether it carries a decision's revision (two more compares: target and frozen).
    pub decided: bool,
}

/// The compares a take costs in a batch (this node's lease compare is the batch's, once).
pub fn compares(decided: bool) -> usize {
    if decided { 3 } else { 1 }
}

/// Which of `pending` (in order) go in the next batch: takes under the first one's lease, one
/// per service (a transaction may not put a key twice), as many as fit in `max_ops` compares
/// and puts (one compare goes to this node's lease, one get of the failure branch to its key).
pub fn next_batch(pending: &[Ask<'_>], max_ops: usize) -> Vec<usize> {
    let Some(first) = pending.first() else {
        return Vec::new();
    };
    let budget = max_ops.saturating_sub(1);
    let mut used = 0;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, a) in pending.iter().enumerate() {
        if a.lease != first.lease || seen.contains(a.svc) {
            continue;
        }
        let cost = compares(a.decided);
        if used + cost > budget || out.len() >= budget {
            break;
        }
        used += cost;
        seen.insert(a.svc);
        out.push(i);
    }
    out
}

/// What a failed batch's reads say of one of its takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This node owns it under this lease already: the take is confirmed.
    Mine(Ownership),
    /// Another node (or this one under another lease) owns it: refused.
    Taken(Ownership),
    /// Nobody owns it, but `lease` is not this node's current lease: refused.
    NoLease,
    /// Nobody owns it, but its target or frozen key changed after the decision: refused.
    Changed,
    /// Nobody owns it and the lease is right: the batch failed on another compare.
    Free,
}

/// A take's verdict, from the owner key read after a failed batch (`owner`), the lease on
/// this node's key (`node_lease`, 0 when absent) and whether the service's target or frozen
/// key changed after the take's decision (`changed`): the same rules as a lone take's.
pub fn verdict(
    me: &str,
    lease: i64,
    node_lease: i64,
    owner: Option<Ownership>,
    changed: bool,
) -> Verdict {
    match owner {
        Some(o) if o.record.node == me && o.lease == node_lease && node_lease != 0 => {
            Verdict::Mine(o)
        }
        Some(o) => Verdict::Taken(o),
        None if node_lease != lease || lease == 0 => Verdict::NoLease,
        None if changed => Verdict::Changed,
        None => Verdict::Free,
    }
}

/// What becomes of a take after a failed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Its verdict is its answer.
    Settled,
    /// Still free: into the next batch.
    Again,
    /// Still free and nothing in the batch was settled (the reads do not say why it failed:
    /// not expected): alone, where the transaction's answer is about it only.
    Alone,
}

/// What becomes of each take of a failed batch, from their verdicts: every round settles at
/// least one take or sends the rest alone, so a take is never batched forever.
pub fn after_failure(verdicts: &[Verdict]) -> Vec<Next> {
    let settled_any = verdicts.iter().any(|v| *v != Verdict::Free);
    verdicts
        .iter()
        .map(|v| match v {
            Verdict::Free if settled_any => Next::Again,
            Verdict::Free => Next::Alone,
            _ => Next::Settled,
        })
        .collect()
}

/// One take waiting for its answer.
#[derive(Debug)]
struct Request {
    svc: String,
    lease: i64,
    why: OwnerWhy,
    decided_at: Option<i64>,
    rounds: u32,
    reply: oneshot::Sender<Result<Ownership, ClusterError>>,
}

impl Request {
    fn ask(&self) -> Ask<'_> {
        Ask {
            svc: &self.svc,
            lease: self.lease,
            decided: self.decided_at.is_some(),
        }
    }
}

/// Takes owner keys for this node in batches: one task per process, fed by the guards.
#[derive(Debug, Clone)]
pub struct Taker {
    tx: mpsc::UnboundedSender<Request>,
    store: Store,
}

impl Taker {
    /// A taker sending on `store`, its task spawned on `runtime`.
    pub fn spawn(store: Store, runtime: &tokio::runtime::Handle) -> Taker {
        let (tx, rx) = mpsc::unbounded_channel();
        runtime.spawn(run(store.clone(), rx));
        Taker { tx, store }
    }

    /// Take `svc` for this node under `lease`, as [`Store::acquire_if`] does, in a batch with
    /// the takes asked meanwhile.
    pub async fn take(
        &self,
        svc: &str,
        lease: i64,
        why: &OwnerWhy,
        decided_at: Option<i64>,
    ) -> Result<Ownership, ClusterError> {
        let (reply, answer) = oneshot::channel();
        let req = Request {
            svc: svc.to_string(),
            lease,
            why: why.clone(),
            decided_at,
            rounds: 0,
            reply,
        };
        if self.tx.send(req).is_err() {
            // The task is gone (its runtime is shutting down): alone.
            return alone(&self.store, svc, lease, why, decided_at).await;
        }
        match answer.await {
            Ok(r) => r,
            Err(_) => Err(ClusterError::Unanswered {
                endpoints: self.store.endpoints().to_string(),
                what: format!("take {}", self.store.keys().owner(svc)),
                cause: "the batching task ended".to_string(),
            }),
        }
    }
}

/// Whether etcd refused a request itself (a batch over its `--max-txn-ops` or its
/// `--max-request-bytes`: an invalid argument), rather than not answering it (a timeout, a
/// cancelled call, a transport error), which may have been applied.
fn refused(e: &ClusterError) -> bool {
    matches!(
        e,
        ClusterError::Etcd {
            source: etcd_client::Error::GRpcStatus(s),
            ..
        } if matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition)
    )
}

/// A lone take ([`Store::acquire_if`]), sent again when it got no answer.
pub(crate) async fn alone(
    store: &Store,
    svc: &str,
    lease: i64,
    why: &OwnerWhy,
    decided_at: Option<i64>,
) -> Result<Ownership, ClusterError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match store.acquire_if(svc, lease, why, decided_at).await {
            Err(e @ (ClusterError::Timeout { .. } | ClusterError::Etcd { .. }))
                if tries < TRIES =>
            {
                tracing::warn!("{e}: trying again");
            }
            r => return r,
        }
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut pending: VecDeque<Request> = VecDeque::new();
    let mut flying: JoinSet<Vec<Request>> = JoinSet::new();
    let mut open = true;
    loop {
        while flying.len() < BATCHES_AT_ONCE && !pending.is_empty() {
            let batch = {
                let asks: Vec<Ask<'_>> = pending.iter().map(Request::ask).collect();
                next_batch(&asks, MAX_TXN_OPS)
            };
            let mut taken = Vec::with_capacity(batch.len());
            // Highest index first, so the lower ones stay where they are.
            for &i in batch.iter().rev() {
                if let Some(r) = pending.remove(i) {
                    taken.push(r);
                }
            }
            taken.reverse();
            flying.spawn(send_batch(store.clone(), taken));
        }
        if !open && pending.is_empty() && flying.is_empty() {
            return;
        }
        tokio::select! {
            r = rx.recv(), if open => match r {
                Some(req) => {
                    pending.push_back(req);
                    while let Ok(req) = rx.try_recv() {
                        pending.push_back(req);
                    }
                }
                None => open = false,
            },
            Some(done) = flying.join_next(), if !flying.is_empty() => {
                if let Ok(again) = done {
                    for r in again.into_iter().rev() {
                        pending.push_front(r);
                    }
                }
            }
        }
    }
}

/// How a batch transaction ended.
enum Outcome {
    /// Applied at this revision.
    Applied(i64),
    /// Not applied: the lease on this node's key, and per take its owner key and whether
    /// its target or frozen key changed after its decision.
    Failed {
        node_lease: i64,
        owners: Vec<(Option<Ownership>, bool)>,
    },
}

/// Send one batch and answer its takes; returns those to batch again.
async fn send_batch(store: Store, batch: Vec<Request>) -> Vec<Request> {
    if batch.len() == 1 {
        let mut batch = batch;
        if let Some(r) = batch.pop() {
            let res = alone(&store, &r.svc, r.lease, &r.why, r.decided_at).await;
            let _ = r.reply.send(res);
        }
        return Vec::new();
    }
    let lease = batch.first().map_or(0, |r| r.lease);
    let records: Vec<OwnerRecord> = batch
        .iter()
        .map(|r| OwnerRecord {
            node: store.node().to_string(),
            since_ms: now_ms(),
            why: r.why.clone(),
        })
        .collect();
    let txn = batch_txn(&store, &batch, &records, lease);
    let decided: Vec<Option<i64>> = batch.iter().map(|r| r.decided_at).collect();
    let what = format!("take {} owner keys", batch.len());
    let mut tries = 0;
    let outcome = loop {
        tries += 1;
        match transact(&store, &what, &txn, &decided).await {
            Ok(o) => break o,
            Err(e) if !refused(&e) && tries < TRIES => {
                tracing::warn!("{e}: trying again");
            }
            Err(e) if !refused(&e) => {
                for r in batch {
                    let _ = r.reply.send(Err(ClusterError::Unanswered {
                        endpoints: store.endpoints().to_string(),
                        what: format!("take {}", store.keys().owner(&r.svc)),
                        cause: format!(
                            "a batch of them got no answer {TRIES} times, the last: {e}"
                        ),
                    }));
                }
                return Vec::new();
            }
            Err(e) => {
                // etcd refused the batch itself (too many operations for its
                // --max-txn-ops, too large): each take alone.
                tracing::warn!("{e}: taking each owner key alone");
                let mut set = JoinSet::new();
                for r in batch {
                    let store = store.clone();
                    set.spawn(async move {
                        let res = alone(&store, &r.svc, r.lease, &r.why, r.decided_at).await;
                        let _ = r.reply.send(res);
                    });
                }
                while set.join_next().await.is_some() {}
                return Vec::new();
            }
        }
    };
    match outcome {
        Outcome::Applied(token) => {
            tracing::info!("{what}: applied (fencing token {token})");
            for (r, record) in batch.into_iter().zip(records) {
                let _ = r.reply.send(Ok(Ownership {
                    record,
                    token,
                    lease,
                }));
            }
            Vec::new()
        }
        Outcome::Failed { node_lease, owners } => {
            let verdicts: Vec<Verdict> = owners
                .into_iter()
                .map(|(o, changed)| verdict(store.node(), lease, node_lease, o, changed))
                .collect();
            let nexts = after_failure(&verdicts);
            let mut again = Vec::new();
            let mut lone = JoinSet::new();
            for ((mut r, v), next) in batch.into_iter().zip(verdicts).zip(nexts) {
                match next {
                    Next::Settled => {
                        let res = match v {
                            Verdict::Mine(o) => Ok(o),
                            Verdict::Taken(o) => Err(ClusterError::OwnedBy {
                                svc: r.svc.clone(),
                                owner: o.record.node,
                                since: crate::format_ms(o.record.since_ms),
                                me: store.node().to_string(),
                            }),
                            Verdict::Changed => Err(ClusterError::ChangedSince {
                                svc: r.svc.clone(),
                                revision: r.decided_at.unwrap_or_default(),
                            }),
                            Verdict::NoLease | Verdict::Free => Err(ClusterError::NoLease {
                                node: store.node().to_string(),
                                cluster: store.cluster().to_string(),
                            }),
                        };
                        let _ = r.reply.send(res);
                    }
                    Next::Again if r.rounds < MAX_ROUNDS => {
                        r.rounds += 1;
                        again.push(r);
                    }
                    Next::Again | Next::Alone => {
                        let store = store.clone();
                        lone.spawn(async move {
                            let res = alone(&store, &r.svc, r.lease, &r.why, r.decided_at).await;
                            let _ = r.reply.send(res);
                        });
                    }
                }
            }
            while lone.join_next().await.is_some() {}
            again
        }
    }
}

/// The batch's transaction: this node's key on `lease`, and per take its owner key absent
/// (and its target and frozen keys unchanged since its decision); then every owner key put
/// on the lease, else this node's key (without its value), every owner key and the target
/// and frozen keys of the decided takes (without their values) read: as many reads as
/// compares.
fn batch_txn(store: &Store, batch: &[Request], records: &[OwnerRecord], lease: i64) -> Txn {
    let keys = store.keys();
    let mut when = vec![Compare::lease(
        keys.node(store.node()),
        CompareOp::Equal,
        lease,
    )];
    let mut puts = Vec::with_capacity(batch.len());
    let mut gets = vec![TxnOp::get(
        keys.node(store.node()),
        Some(GetOptions::new().with_keys_only()),
    )];
    for (r, record) in batch.iter().zip(records) {
        let key = keys.owner(&r.svc);
        when.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
        if let Some(rev) = r.decided_at {
            // An absent key has mod_revision 0: unchanged.
            for k in [keys.target(&r.svc), keys.frozen(&r.svc)] {
                when.push(Compare::mod_revision(k, CompareOp::Less, rev + 1));
            }
        }
        puts.push(TxnOp::put(
            key.clone(),
            serde_json::to_vec(record).unwrap_or_default(),
            Some(PutOptions::new().with_lease(lease)),
        ));
        gets.push(TxnOp::get(key, None));
        if r.decided_at.is_some() {
            for k in [keys.target(&r.svc), keys.frozen(&r.svc)] {
                gets.push(TxnOp::get(k, Some(GetOptions::new().with_keys_only())));
            }
        }
    }
    Txn::new().when(when).and_then(puts).or_else(gets)
}

async fn transact(
    store: &Store,
    what: &str,
    txn: &Txn,
    decided: &[Option<i64>],
) -> Result<Outcome, ClusterError> {
    let resp = store
        .call(what.to_string(), |mut c| {
            let t = txn.clone();
            async move { c.txn(t).await }
        })
        .await?;
    if resp.succeeded() {
        return Ok(Outcome::Applied(resp.header().map_or(0, |h| h.revision())));
    }
    let mut reads = resp.op_responses().into_iter().map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    });
    let node_lease = reads.next().flatten().map_or(0, |kv| kv.lease());
    let mut owners = Vec::with_capacity(decided.len());
    for d in decided {
        let owner = match reads.next().flatten() {
            Some(kv) => {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                Some(Ownership::from_kv(&key, &kv)?)
            }
            None => None,
        };
        let mut changed = false;
        if let Some(rev) = d {
            for _ in 0..2 {
                changed |= reads
                    .next()
                    .flatten()
                    .is_some_and(|kv| kv.mod_revision() > *rev);
            }
        }
        owners.push((owner, changed));
    }
    Ok(Outcome::Failed { node_lease, owners })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(svc: &str, lease: i64, decided: bool) -> Ask<'_> {
        Ask {
            svc,
            lease,
            decided,
        }
    }

    fn own(node: &str, lease: i64) -> Ownership {
        Ownership {
            record: OwnerRecord {
                node: node.to_string(),
                since_ms: 1,
                why: OwnerWhy::Failover,
            },
            token: 7,
            lease,
        }
    }

    #[test]
    fn a_batch_fills_the_compares_etcd_allows() {
        let names: Vec<String> = (0..300).map(|i| format!("s{i}")).collect();
        // Without a decision: one compare each, 127 (one goes to the node's lease).
        let plain: Vec<Ask<'_>> = names.iter().map(|n| ask(n, 5, false)).collect();
        assert_eq!(
            next_batch(&plain, MAX_TXN_OPS),
            (0..127).collect::<Vec<_>>()
        );
        // With one: three compares each, 42 (126 compares + 1).
        let decided: Vec<Ask<'_>> = names.iter().map(|n| ask(n, 5, true)).collect();
        assert_eq!(next_batch(&decided, MAX_TXN_OPS).len(), 42);
        // Fewer than fit: all of them.
        assert_eq!(next_batch(&plain[..3], MAX_TXN_OPS), vec![0, 1, 2]);
        assert!(next_batch(&[], MAX_TXN_OPS).is_empty());
    }

    #[test]
    fn a_batch_is_of_one_lease_and_has_a_service_once() {
        let pending = [
            ask("a", 5, true),
            ask("b", 6, true),
            ask("a", 5, true),
            ask("c", 5, false),
        ];
        assert_eq!(next_batch(&pending, MAX_TXN_OPS), vec![0, 3]);
        // A small budget stops at the first take that does not fit.
        assert_eq!(next_batch(&pending, 4), vec![0]);
        assert_eq!(
            next_batch(&[ask("c", 5, false), ask("d", 5, true)], 4),
            vec![0]
        );
    }

    #[test]
    fn a_failed_batch_settles_each_take_as_a_lone_take_would() {
        assert_eq!(
            verdict("n1", 5, 5, Some(own("n1", 5)), false),
            Verdict::Mine(own("n1", 5))
        );
        assert_eq!(
            verdict("n1", 5, 5, Some(own("n2", 9)), false),
            Verdict::Taken(own("n2", 9))
        );
        // This node's, under a lease that is not its current one: not confirmed.
        assert_eq!(
            verdict("n1", 5, 6, Some(own("n1", 5)), false),
            Verdict::Taken(own("n1", 5))
        );
        assert_eq!(verdict("n1", 5, 6, None, false), Verdict::NoLease);
        assert_eq!(verdict("n1", 5, 0, None, false), Verdict::NoLease);
        assert_eq!(verdict("n1", 0, 0, None, false), Verdict::NoLease);
        assert_eq!(verdict("n1", 5, 5, None, false), Verdict::Free);
        // Its target or freeze changed after the decision: refused, as a lone take is.
        assert_eq!(verdict("n1", 5, 5, None, true), Verdict::Changed);
        // Owned: the owner decides, whatever changed.
        assert_eq!(
            verdict("n1", 5, 5, Some(own("n2", 9)), true),
            Verdict::Taken(own("n2", 9))
        );
    }

    #[test]
    fn free_takes_go_again_while_a_round_settles_some_and_alone_when_none() {
        let v = [
            Verdict::Free,
            Verdict::Taken(own("n2", 9)),
            Verdict::Mine(own("n1", 5)),
            Verdict::Free,
        ];
        assert_eq!(
            after_failure(&v),
            vec![Next::Again, Next::Settled, Next::Settled, Next::Again]
        );
        // Every key free: a decision's revision failed the batch; which one, only a lone
        // transaction tells.
        assert_eq!(
            after_failure(&[Verdict::Free, Verdict::Free]),
            vec![Next::Alone, Next::Alone]
        );
        assert_eq!(after_failure(&[Verdict::NoLease]), vec![Next::Settled]);
    }
}

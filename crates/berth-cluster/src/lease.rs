//! The node's lease: granted (or resumed after a restart of svcd) and kept alive every ttl/5.
//! The deadline is counted from the send time of the last keepalive etcd acknowledged, on the
//! monotonic clock: etcd cannot have expired the lease before it, whatever the wall clock says.

use std::path::PathBuf;
use std::time::Duration;

use berth_model::Status;
use etcd_client::{LeaseKeepAliveStream, LeaseKeeper as EtcdKeeper};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::records::NodeRecord;
use crate::{ClusterError, Store};

/// How soon a failed renewal is tried again (on a new keepalive stream).
const RETRY: Duration = Duration::from_millis(100);
/// The shortest gap between two publications of the node record: a burst of status changes
/// (a thousand services starting at once) is published in a few puts, not one per change,
/// and the other nodes read it as often.
pub const PUBLISH_GAP: Duration = Duration::from_millis(250);

/// Whether the node holds its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Held: renewed in time.
    Held,
    /// Lost: not renewed before its deadline (or etcd said it expired). Whatever hung on it is
    /// gone from etcd; the node must not run cluster services.
    Lost,
}

/// The lease as the rest of svcd sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseHealth {
    /// The lease id (0 before the first grant).
    pub lease: i64,
    /// Held or lost.
    pub state: LeaseState,
    /// Send time of the last keepalive etcd acknowledged (or of the grant).
    pub last_ack: Instant,
    /// The lease's TTL.
    pub ttl: Duration,
}

impl LeaseHealth {
    /// The earliest instant etcd may expire the lease.
    pub fn deadline(&self) -> Instant {
        self.last_ack + self.ttl
    }

    /// When the node must begin to stop its services if the lease is not renewed by then:
    /// two thirds of the TTL after the last acknowledged renewal, leaving the last third to
    /// stop them (the timing rule, checked in docs/cluster.md: a fast stop of the node's
    /// services fits in ttl/3; an etcd leader election, 1.3-2.0 s without answers here, fits in
    /// 2/3 ttl - ttl/5 only from a TTL of 5 s: with 3 s an election may fence nodes, which
    /// stop and fail over, never double start).
    pub fn fence_at(&self) -> Instant {
        self.last_ack + self.ttl * 2 / 3
    }

    /// The `hb` row: up while the last acknowledged renewal is younger than ttl/2, warn when
    /// older, down once the lease is lost.
    pub fn hb(&self, now: Instant) -> Status {
        match self.state {
            LeaseState::Lost => Status::Down,
            LeaseState::Held if now < self.last_ack + self.ttl / 2 => Status::Up,
            LeaseState::Held => Status::Warn,
        }
    }
}

/// Keeps the node's lease and its node key.
pub struct LeaseKeeper {
    store: Store,
    ttl: i64,
    lease_file: PathBuf,
    health: watch::Sender<LeaseHealth>,
    record: watch::Receiver<NodeRecord>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("store", &self.store)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl LeaseKeeper {
    /// Grant the lease (or resume the one `lease_file` names if etcd still holds it: a restarted
    /// svcd keeps its node's ownerships) and publish the node record under it.
    pub async fn start(
        store: Store,
        ttl: Duration,
        lease_file: PathBuf,
        record: watch::Receiver<NodeRecord>,
    ) -> Result<(LeaseKeeper, watch::Receiver<LeaseHealth>), ClusterError> {
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let ttl = Duration::from_secs(ttl_secs.unsigned_abs());
        let (lease, last_ack) = acquire(&store, ttl_secs, &lease_file).await?;
        let rec = record.borrow().clone();
        store.put_node(&rec, lease).await?;
        // After the node key: a concurrent `svc node forget` sees the node alive and refuses.
        store.join().await?;
        let (tx, rx) = watch::channel(LeaseHealth {
            lease,
            state: LeaseState::Held,
            last_ack,
            ttl,
        });
        Ok((
            LeaseKeeper {
                store,
                ttl: ttl_secs,
                lease_file,
                health: tx,
                record,
            },
            rx,
        ))
    }

    /// The same keeper on another connection to etcd (one made on the runtime the keeper will
    /// run on: a keeper on a thread of its own is then not slowed by a busy main runtime).
    #[must_use]
    pub fn on(mut self, store: Store) -> LeaseKeeper {
        self.store = store;
        self
    }

    /// Keep the lease until the process ends: renew every ttl/5, reopen the keepalive stream
    /// when its etcd member goes, mark the lease lost past its deadline, grant a new one when
    /// etcd is back, and republish the node record when it changes.
    pub async fn run(mut self) {
        let ttl = Duration::from_secs(self.ttl.unsigned_abs());
        let every = ttl / 5;
        let mut stream: Option<(EtcdKeeper, LeaseKeepAliveStream)> = None;
        // Renew at once: a resumed lease's last renewal may be most of a TTL old.
        let mut next = Instant::now();
        let mut failures = 0u32;
        // A changed record waits to be published until `publish_at` (PUBLISH_GAP after the
        // last publication); renewals go first.
        let mut pending = false;
        let mut publish_at = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(next) => {}
                _ = tokio::time::sleep_until(publish_at), if pending => {
                    pending = false;
                    let h = *self.health.borrow();
                    if h.state == LeaseState::Held {
                        let rec = self.record.borrow_and_update().clone();
                        if let Err(e) = self.store.put_node(&rec, h.lease).await {
                            warn!("cannot publish the node record: {e}");
                        }
                    }
                    publish_at = Instant::now() + PUBLISH_GAP;
                    continue;
                }
                changed = self.record.changed(), if !pending => {
                    if changed.is_err() {
                        return;
                    }
                    pending = true;
                    continue;
                }
            }
            next = Instant::now() + every;
            let h = *self.health.borrow();
            if h.state == LeaseState::Lost {
                stream = None;
                match self.regrant().await {
                    Ok(()) => failures = 0,
                    Err(e) => warn!("lease lost, cannot get a new one yet: {e}"),
                }
                continue;
            }
            if stream.is_none() {
                match self
                    .store
                    .bounded("open the keepalive stream", {
                        let mut c = self.store.client();
                        async move { c.lease_keep_alive(h.lease).await }
                    })
                    .await
                {
                    Ok(s) => stream = Some(s),
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(10) {
                            warn!("cannot renew lease {:x}: {e}", h.lease);
                        }
                        self.check_deadline(h);
                        next = Instant::now() + RETRY.min(every);
                        continue;
                    }
                }
            }
            let Some((keeper, ka)) = stream.as_mut() else {
                continue;
            };
            let sent = Instant::now();
            let renewed = tokio::time::timeout(every.max(Duration::from_millis(200)), async {
                keeper.keep_alive().await?;
                ka.message().await
            })
            .await;
            match renewed {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    if failures > 0 {
                        info!("lease {:x} renewed again", h.lease);
                    }
                    failures = 0;
                    self.health.send_modify(|x| x.last_ack = sent);
                }
                Ok(Ok(Some(_))) => {
                    error!(
                        "lease {:x} expired in etcd: this node lost its ownerships",
                        h.lease
                    );
                    self.health.send_modify(|x| x.state = LeaseState::Lost);
                    stream = None;
                }
                other => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(10) {
                        let why = match other {
                            Ok(Err(e)) => e.to_string(),
                            Ok(Ok(None)) => "the keepalive stream ended".to_string(),
                            _ => "no answer in time".to_string(),
                        };
                        warn!(
                            "lease {:x} not renewed ({why}): deadline in {}ms",
                            h.lease,
                            h.deadline()
                                .saturating_duration_since(Instant::now())
                                .as_millis()
                        );
                    }
                    // Reopen soon: the balanced channel picks a member that answers.
                    stream = None;
                    self.check_deadline(h);
                    next = Instant::now() + RETRY.min(every);
                }
            }
        }
    }

    fn check_deadline(&self, h: LeaseHealth) {
        if h.state == LeaseState::Held && Instant::now() >= h.deadline() {
            error!(
                "lease {:x} lost: not renewed within {}s of the last acknowledged renewal",
                h.lease, self.ttl
            );
            self.health.send_modify(|x| x.state = LeaseState::Lost);
        }
    }

    async fn regrant(&mut self) -> Result<(), ClusterError> {
        let sent = Instant::now();
        let lease = self.store.grant(self.ttl).await?;
        let rec = self.record.borrow_and_update().clone();
        self.store.put_node(&rec, lease).await?;
        self.store.join().await?;
        save_lease(&self.lease_file, lease);
        info!("rejoined the cluster with lease {lease:x}");
        self.health.send_modify(|x| {
            x.lease = lease;
            x.state = LeaseState::Held;
            x.last_ack = sent;
        });
        Ok(())
    }
}

async fn acquire(
    store: &Store,
    ttl: i64,
    lease_file: &std::path::Path,
) -> Result<(i64, Instant), ClusterError> {
    let sent = Instant::now();
    if let Some(old) = std::fs::read_to_string(lease_file)
        .ok()
        .and_then(|s| i64::from_str_radix(s.trim(), 16).ok())
        && let Some(left) = store.lease_ttl(old).await?
    {
        // etcd may expire it `left` seconds from now at the earliest (whole seconds, rounded
        // down): count the deadline as if the last renewal was ttl - left ago.
        let age = Duration::from_secs((ttl - left).max(0).unsigned_abs());
        info!("resumed lease {old:x} ({left}s left)");
        return Ok((old, sent.checked_sub(age).unwrap_or(sent)));
    }
    let lease = store.grant(ttl).await?;
    save_lease(lease_file, lease);
    info!("granted lease {lease:x} ({ttl}s)");
    Ok((lease, sent))
}

fn save_lease(path: &std::path::Path, lease: i64) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(path, format!("{lease:x}\n")) {
        warn!("cannot keep the lease id in {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hb_and_deadlines() {
        let t0 = Instant::now();
        let h = LeaseHealth {
            lease: 1,
            state: LeaseState::Held,
            last_ack: t0,
            ttl: Duration::from_secs(4),
        };
        assert_eq!(h.deadline(), t0 + Duration::from_secs(4));
        assert_eq!(h.fence_at(), t0 + Duration::from_secs(8) / 3);
        assert_eq!(h.hb(t0 + Duration::from_secs(1)), Status::Up);
        assert_eq!(h.hb(t0 + Duration::from_millis(2100)), Status::Warn);
        assert_eq!(h.hb(t0 + Duration::from_secs(3)), Status::Warn);
        let lost = LeaseHealth {
            state: LeaseState::Lost,
            ..h
        };
        assert_eq!(lost.hb(t0), Status::Down);
    }
}

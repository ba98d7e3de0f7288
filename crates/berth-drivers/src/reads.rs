//! Host reads shared by the status checks of many services.
//!
//! A status walk over a node (`svc print status`, svcd's periodic check of every service) asks
//! the same host questions once per resource: the mount table for each fs, the device and its
//! addresses for each ip, an LVM report for each vg. Inside [`with`], the first status that
//! needs one of them reads it, and every other status of the walk is answered from that read:
//! one mountinfo read, one netlink dump of links and addresses per network namespace, one
//! `lvm fullreport` of every VG. Answers are those of the per-resource reads: the same decoding,
//! and a shared read that fails is not kept: each status then reads by itself, as outside, and
//! reports its own error.
//!
//! Only statuses use them; starts, stops and prechecks always read afresh. A [`StatusReads`]
//! may carry a bound ([`StatusReads::within`]): past it, statuses read afresh (svcd's checks of
//! one tick share one, and a check queued behind a long action does not get a stale table).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use berth_model::ServiceConfig;
use berth_model::config::Spec;

/// A read kept for the walk: the type its module reads into (a mount table, an LVM report, a
/// netlink dump), and for a read of the calling thread's network namespace, that namespace
/// (device and inode of `/proc/thread-self/ns/net`).
type SlotKey = (TypeId, Option<(u64, u64)>);

/// One kept read, filled once: its own lock, so a read waits only for the same read.
type Slot = Arc<Mutex<Option<Arc<dyn Any + Send + Sync>>>>;

/// One walk's shared reads (see the module doc). `Send + Sync`: svcd's checks of one tick run
/// on several threads and share one.
#[derive(Debug, Default)]
pub struct StatusReads {
    created: Option<SystemTime>,
    until: Option<Instant>,
    /// The reads kept, by kind (the modules reading them own their types: this module knows
    /// none of them).
    slots: Mutex<HashMap<SlotKey, Slot>>,
    /// The VGs the walk's services name (`None`: not told, every VG of the host).
    vgnames: Option<Vec<String>>,
    /// How many host reads were made to fill this (what the tests count).
    reads: std::sync::atomic::AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl StatusReads {
    /// Shared reads without a bound in time (one `svc print status`).
    pub fn new() -> StatusReads {
        StatusReads {
            created: Some(SystemTime::now()),
            ..StatusReads::default()
        }
    }

    /// When these were made: every read they share is as of then or later.
    pub fn created(&self) -> SystemTime {
        self.created.unwrap_or(std::time::UNIX_EPOCH)
    }

    /// Shared reads used for `max_age` from now; past it, statuses read afresh.
    pub fn within(max_age: Duration) -> StatusReads {
        StatusReads {
            until: Instant::now().checked_add(max_age),
            ..StatusReads::new()
        }
    }

    /// The same, told the services of the walk: the LVM report is of their VGs only (not of
    /// every VG of the host, whose locks it would wait for).
    pub fn for_services<'a>(
        mut self,
        services: impl IntoIterator<Item = &'a ServiceConfig>,
    ) -> Self {
        let mut names: Vec<String> = services
            .into_iter()
            .flat_map(|s| s.resources.iter())
            .filter_map(|r| match &r.spec {
                Spec::Vg(v) => Some(v.vgname.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        self.vgnames = Some(names);
        self
    }

    /// How many host reads filled these shared reads so far.
    pub fn reads_made(&self) -> u32 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn usable(&self) -> bool {
        self.until.is_none_or(|t| Instant::now() < t)
    }

    /// The read of type `T` kept for the walk, else `read()` kept; `None` (read by yourself)
    /// past the bound or when `read` fails.
    pub(crate) fn shared<T: Any + Send + Sync>(
        &self,
        read: impl FnOnce() -> Option<T>,
    ) -> Option<Arc<T>> {
        if !self.usable() {
            return None;
        }
        self.get_or_read((TypeId::of::<T>(), None), read)
    }

    /// The same, one for each network namespace (the calling thread's).
    pub(crate) fn shared_per_netns<T: Any + Send + Sync>(
        &self,
        read: impl FnOnce() -> Option<T>,
    ) -> Option<Arc<T>> {
        if !self.usable() {
            return None;
        }
        let ns = netns_id()?;
        self.get_or_read((TypeId::of::<T>(), Some(ns)), read)
    }

    /// The VGs the walk's services name (`None`: not told, every VG of the host).
    pub(crate) fn vgnames(&self) -> Option<&[String]> {
        self.vgnames.as_deref()
    }

    fn get_or_read<T: Any + Send + Sync>(
        &self,
        key: SlotKey,
        read: impl FnOnce() -> Option<T>,
    ) -> Option<Arc<T>> {
        let slot = lock(&self.slots).entry(key).or_default().clone();
        let mut slot = lock(&slot);
        if let Some(v) = slot.as_ref() {
            return v.clone().downcast::<T>().ok();
        }
        self.count();
        let v = Arc::new(read()?);
        *slot = Some(v.clone());
        Some(v)
    }

    fn count(&self) {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The calling thread's network namespace.
fn netns_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
    Some((m.dev(), m.ino()))
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<Arc<StatusReads>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` (status walks, on this thread) with `reads` shared. Nested, the outer reads stay.
pub fn with<T>(reads: &Arc<StatusReads>, f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            if self.0 {
                CURRENT.with(|c| *c.borrow_mut() = None);
            }
        }
    }
    let outer = CURRENT.with(|c| c.borrow().is_some());
    let _reset = Reset(!outer);
    if !outer {
        CURRENT.with(|c| *c.borrow_mut() = Some(reads.clone()));
    }
    f()
}

/// The shared reads of the walk this thread is in, if any.
pub(crate) fn current() -> Option<Arc<StatusReads>> {
    CURRENT.with(|c| c.borrow().clone())
}

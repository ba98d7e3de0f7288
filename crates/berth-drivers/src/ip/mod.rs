//! The ip driver: an address on an interface, through rtnetlink (no `ip`/`ifconfig` process).
//!
//! - `precheck`: the device exists and is up, the prefix is known, and, for IPv4, nobody on the
//!   link answers for the address (an RFC 5227 ARP probe over `AF_PACKET`, `probe_timeout` long).
//!   Skipped when the address is already ours; skipped with a warning under `--force`.
//! - `start`: add the address (a no-op when it is already on the device); IPv4 is then announced
//!   by gratuitous ARP, IPv6 waits for the kernel's duplicate address detection to finish and
//!   fails (removing the address again) on `dadfailed`. A `gateway` adds a default route.
//! - `stop`: remove the gateway route and the address; an absent address is already stopped.
//! - `status`: up when the address is on the device.
//!
//! Every socket is opened on the calling thread, inside the call: it belongs to that thread's
//! network namespace, and no runtime or thread outlives the call.

mod arp;
mod netlink;
pub mod netns;

use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use berth_model::ResourceState;
use berth_model::config::IpSpec;
use berth_model::status::{LogEntry, Status};
use tracing::{info, warn};

use crate::{Ctx, DriverError, Outcome};

use arp::fmt_mac;
use netlink::{Addr, Link, Netlink};

/// The bound on waiting for IPv6 duplicate address detection (the kernel's default takes 1-2 s:
/// a random delay up to 1 s, then one neighbour solicitation and 1 s of listening).
const DAD_BOUND: Duration = Duration::from_secs(10);
/// How often the address flags are read while DAD runs.
const DAD_POLL: Duration = Duration::from_millis(20);
/// The longest probe window and garp interval used. A bare number in the config is seconds
/// (`probe_timeout = 300` is five minutes): longer values are cut to this, with a warning.
const ARP_TIME_CAP: Duration = Duration::from_secs(10);

/// `d`, or [`ARP_TIME_CAP`] with a warning naming `key` when `d` is longer.
fn capped(key: &str, d: Duration) -> Duration {
    if d <= ARP_TIME_CAP {
        return d;
    }
    warn!(
        "{key} {:.3}s is longer than {}s: using {}s (write milliseconds as e.g. \"300ms\")",
        d.as_secs_f64(),
        ARP_TIME_CAP.as_secs(),
        ARP_TIME_CAP.as_secs()
    );
    ARP_TIME_CAP
}

/// Label `ipname@ipdev`, as the seed prints it.
pub fn label(spec: &IpSpec) -> String {
    format!("{}@{}", spec.ipname, spec.ipdev)
}

/// The address of `ipname`: a literal, or the first answer of the system resolver.
fn resolve(ipname: &str) -> Result<IpAddr, DriverError> {
    if let Ok(ip) = ipname.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs = (ipname, 0u16)
        .to_socket_addrs()
        .map_err(|e| DriverError::io(format!("cannot resolve ipname {ipname}"), e))?;
    addrs
        .next()
        .map(|sa| sa.ip())
        .ok_or_else(|| DriverError::Refused(format!("ipname {ipname} resolves to no address")))
}

/// Whether `a` and `b` share their first `prefix` bits.
fn same_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    ipnet::IpNet::new(a, prefix).is_ok_and(|net| net.contains(&b))
}

/// The prefix length to use: the configured one, else that of an address the device already has
/// on the same subnet (the longest such prefix).
fn choose_prefix(spec: &IpSpec, addr: IpAddr, existing: &[Addr]) -> Result<u8, DriverError> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if let Some(p) = spec.netmask {
        if p.0 > max {
            return Err(DriverError::Refused(format!(
                "netmask /{} is too long for {addr} (at most /{max})",
                p.0
            )));
        }
        return Ok(p.0);
    }
    existing
        .iter()
        .filter(|a| a.addr != addr && same_subnet(a.addr, addr, a.prefix))
        .map(|a| a.prefix)
        .max()
        .ok_or_else(|| {
            DriverError::Refused(format!(
                "no netmask for {addr}, and {} has no address on its subnet to take it from: \
                 set netmask",
                spec.ipdev
            ))
        })
}

/// What a start or stop works on: the resolved address, the device, its addresses.
#[derive(Debug)]
struct Plan {
    nl: Netlink,
    addr: IpAddr,
    link: Link,
    addrs: Vec<Addr>,
}

impl Plan {
    /// Resolve the address and read the device. `Ok(None)` when the device does not exist.
    fn read(spec: &IpSpec) -> Result<Option<Plan>, DriverError> {
        let addr = resolve(&spec.ipname)?;
        let mut nl =
            Netlink::open().map_err(|e| DriverError::io("cannot open an rtnetlink socket", e))?;
        let link = nl
            .link(&spec.ipdev)
            .map_err(|e| DriverError::io(format!("cannot read device {}", spec.ipdev), e))?;
        let Some(link) = link else {
            return Ok(None);
        };
        let addrs = nl.addrs(link.index, addr.is_ipv6()).map_err(|e| {
            DriverError::io(format!("cannot list the addresses of {}", spec.ipdev), e)
        })?;
        Ok(Some(Plan {
            nl,
            addr,
            link,
            addrs,
        }))
    }

    /// Like [`Plan::read`], for a start: the device must exist and be up.
    fn read_up(spec: &IpSpec) -> Result<Plan, DriverError> {
        let plan = Plan::read(spec)?.ok_or_else(|| DriverError::Missing {
            what: "device",
            path: spec.ipdev.clone().into(),
        })?;
        if !plan.link.up {
            return Err(DriverError::Refused(format!(
                "device {} is down: cannot bring {} up on it",
                spec.ipdev, plan.addr
            )));
        }
        Ok(plan)
    }

    /// The address as it is on the device now, if it is.
    fn ours(&self) -> Option<&Addr> {
        self.addrs.iter().find(|a| a.addr == self.addr)
    }

    fn mac(&self) -> Option<arp::Mac> {
        if !self.link.ether {
            return None;
        }
        self.link.mac.as_slice().try_into().ok()
    }
}

/// Before any resource starts: the device, the prefix, and (IPv4) the conflict probe.
pub fn precheck(ctx: &Ctx<'_>, spec: &IpSpec) -> Result<(), DriverError> {
    // A netns ip goes in its container's namespace, never on the node's interface.
    if spec.netns.is_some() {
        return netns::precheck(ctx, spec);
    }
    let plan = Plan::read_up(spec)?;
    if let Some(a) = plan.ours()
        && !a.dadfailed
    {
        // Already ours: no probe (start says it is already up).
        return Ok(());
    }
    choose_prefix(spec, plan.addr, &plan.addrs)?;
    let IpAddr::V4(v4) = plan.addr else {
        // IPv6: the kernel's duplicate address detection runs at start.
        return Ok(());
    };
    if ctx.force {
        warn!(
            "--force: skipping the conflict check of {} on {}",
            plan.addr, spec.ipdev
        );
        return Ok(());
    }
    let Some(mac) = plan.mac() else {
        warn!(
            "{} has no Ethernet address: no ARP conflict check for {}",
            spec.ipdev, plan.addr
        );
        return Ok(());
    };
    if !plan.link.lower_up {
        warn!(
            "{} has no carrier: the conflict check of {} cannot see the link",
            spec.ipdev, plan.addr
        );
    }
    info!("checking {} availability", plan.addr);
    let sock = arp::ArpSocket::open_probe(plan.link.index, v4)
        .map_err(|e| DriverError::io(format!("cannot open an arp socket on {}", spec.ipdev), e))?;
    let answer = sock
        .probe(mac, v4, capped("probe_timeout", spec.probe_timeout))
        .map_err(|e| DriverError::io(format!("arp probe of {v4} on {}", spec.ipdev), e))?;
    match answer {
        None => Ok(()),
        Some(other) => Err(DriverError::Refused(format!(
            "address {v4} is already in use on the link of {}: answered by {}",
            spec.ipdev,
            fmt_mac(&other)
        ))),
    }
}

/// A network namespace's links and addresses, dumped once for the statuses of a walk
/// ([`crate::reads`]); the default routes are dumped when a status first asks for them.
#[derive(Debug)]
pub struct NetSnapshot {
    links: Vec<(Vec<String>, Link)>,
    addrs: Vec<Addr>,
    /// IPv4, IPv6.
    routes: [std::sync::Mutex<Option<Vec<netlink::DefaultRoute>>>; 2],
}

impl NetSnapshot {
    /// Dump the calling thread's namespace; `None` when a dump fails.
    fn read() -> Option<NetSnapshot> {
        let mut nl = Netlink::open().ok()?;
        Some(NetSnapshot {
            links: nl.links().ok()?,
            addrs: nl.all_addrs().ok()?,
            routes: Default::default(),
        })
    }
}

/// What a status reads of the host: by itself, or from the walk's [`NetSnapshot`].
enum NetView {
    Own(Netlink),
    Shared(std::sync::Arc<NetSnapshot>),
}

impl NetView {
    fn open() -> Result<NetView, DriverError> {
        if let Some(snap) =
            crate::reads::current().and_then(|r| r.shared_per_netns(NetSnapshot::read))
        {
            return Ok(NetView::Shared(snap));
        }
        Netlink::open()
            .map(NetView::Own)
            .map_err(|e| DriverError::io("cannot open an rtnetlink socket", e))
    }

    fn link(&mut self, name: &str) -> std::io::Result<Option<Link>> {
        match self {
            NetView::Own(nl) => nl.link(name),
            // A name the kernel would refuse to look up (too long): asked, for its answer.
            NetView::Shared(_) if name.len() >= libc::IFNAMSIZ => Netlink::open()?.link(name),
            NetView::Shared(s) => Ok(s
                .links
                .iter()
                .find(|(names, _)| names.iter().any(|n| n == name))
                .map(|(_, l)| l.clone())),
        }
    }

    fn addrs(&mut self, index: u32, v6: bool) -> std::io::Result<Vec<Addr>> {
        match self {
            NetView::Own(nl) => nl.addrs(index, v6),
            NetView::Shared(s) => Ok(s
                .addrs
                .iter()
                .filter(|a| a.index == index && a.addr.is_ipv6() == v6)
                .cloned()
                .collect()),
        }
    }

    fn default_routes(&mut self, v6: bool) -> std::io::Result<Vec<netlink::DefaultRoute>> {
        match self {
            NetView::Own(nl) => nl.default_routes(v6),
            NetView::Shared(s) => {
                let mut slot = s.routes[usize::from(v6)]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(r) = slot.as_ref() {
                    return Ok(r.clone());
                }
                let routes = Netlink::open()?.default_routes(v6)?;
                *slot = Some(routes.clone());
                Ok(routes)
            }
        }
    }
}

/// The status: up when the address is on the device.
pub fn status(_ctx: &Ctx<'_>, spec: &IpSpec) -> ResourceState {
    // A netns ip goes in its container's namespace, never on the node's interface.
    if spec.netns.is_some() {
        return netns::status(_ctx, spec);
    }
    let mut log = Vec::new();
    let status = match status_read(spec) {
        Err(e) => {
            log.push(LogEntry::warn(e.to_string()));
            Status::Down
        }
        Ok(None) => {
            log.push(LogEntry::info(format!(
                "device {} does not exist",
                spec.ipdev
            )));
            Status::Down
        }
        Ok(Some((addr, link, ours, mut view))) => match ours {
            None => Status::Down,
            Some(a) if a.dadfailed => {
                log.push(LogEntry::warn(format!(
                    "{addr} is on {} but failed duplicate address detection (dadfailed)",
                    spec.ipdev
                )));
                Status::Down
            }
            Some(_) if !link.up => {
                log.push(LogEntry::warn(format!(
                    "{addr} is on {} but the device is down",
                    spec.ipdev
                )));
                Status::Warn
            }
            Some(a) => {
                if a.tentative {
                    log.push(LogEntry::info(format!(
                        "{addr} is tentative: duplicate address detection is running"
                    )));
                }
                let routes = match spec.gateway {
                    None => Ok(true),
                    Some(gw) => view
                        .default_routes(gw.is_ipv6())
                        .map(|r| has_gateway(&r, gw, link.index))
                        .map_err(|e| DriverError::io("cannot list the default routes", e)),
                };
                match routes {
                    Ok(true) => Status::Up,
                    Ok(false) => {
                        log.push(LogEntry::warn(format!(
                            "the default route via {} on {} is missing",
                            spec.gateway.map(|g| g.to_string()).unwrap_or_default(),
                            spec.ipdev
                        )));
                        Status::Warn
                    }
                    Err(e) => {
                        log.push(LogEntry::warn(e.to_string()));
                        Status::Warn
                    }
                }
            }
        },
    };
    ResourceState::new(status, label(spec), log)
}

/// What a status reads, as [`Plan::read`] does (the same order, the same errors): the address,
/// the device, the address as it is on the device. `Ok(None)` when the device does not exist.
#[allow(clippy::type_complexity)]
fn status_read(
    spec: &IpSpec,
) -> Result<Option<(IpAddr, Link, Option<Addr>, NetView)>, DriverError> {
    let addr = resolve(&spec.ipname)?;
    let mut view = NetView::open()?;
    let link = view
        .link(&spec.ipdev)
        .map_err(|e| DriverError::io(format!("cannot read device {}", spec.ipdev), e))?;
    let Some(link) = link else {
        return Ok(None);
    };
    let addrs = view
        .addrs(link.index, addr.is_ipv6())
        .map_err(|e| DriverError::io(format!("cannot list the addresses of {}", spec.ipdev), e))?;
    let ours = addrs.into_iter().find(|a| a.addr == addr);
    Ok(Some((addr, link, ours, view)))
}

/// Whether `routes` hold the default route via `gw` (out of `index`, or of any device).
fn has_gateway(routes: &[netlink::DefaultRoute], gw: IpAddr, index: u32) -> bool {
    routes
        .iter()
        .any(|r| r.gateway == Some(gw) && r.oif.is_none_or(|o| o == index))
}

/// Whether the configured gateway's default route is there (`true` when none is configured).
fn gateway_present(plan: &mut Plan, spec: &IpSpec) -> Result<bool, DriverError> {
    let Some(gw) = spec.gateway else {
        return Ok(true);
    };
    let routes = plan
        .nl
        .default_routes(gw.is_ipv6())
        .map_err(|e| DriverError::io("cannot list the default routes", e))?;
    Ok(has_gateway(&routes, gw, plan.link.index))
}

/// Add the gateway's default route, unless it is there. Another default route is left alone.
fn ensure_gateway(plan: &mut Plan, spec: &IpSpec) -> Result<bool, DriverError> {
    let Some(gw) = spec.gateway else {
        return Ok(false);
    };
    if gateway_present(plan, spec)? {
        return Ok(false);
    }
    info!("ip route add default via {gw} dev {}", spec.ipdev);
    match plan.nl.add_default_route(plan.link.index, gw) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            warn!(
                "another default route exists: left in place, gateway {gw} not set on {}",
                spec.ipdev
            );
            Ok(false)
        }
        Err(e) => Err(DriverError::io(
            format!("cannot add the default route via {gw} dev {}", spec.ipdev),
            e,
        )),
    }
}

/// Bring the address up (no conflict probe here: that is [`precheck`]'s job).
pub fn start(ctx: &Ctx<'_>, spec: &IpSpec) -> Result<Outcome, DriverError> {
    // A netns ip goes in its container's namespace, never on the node's interface.
    if spec.netns.is_some() {
        return netns::start(ctx, spec);
    }
    let mut plan = Plan::read_up(spec)?;
    if let Some(a) = plan.ours().cloned() {
        if !a.dadfailed {
            info!("{} is already up on {}", plan.addr, spec.ipdev);
            let route = ensure_gateway(&mut plan, spec)?;
            return Ok(if route {
                Outcome::Changed
            } else {
                Outcome::AlreadyDone
            });
        }
        info!(
            "ip addr del {}/{} dev {} (left over, dadfailed)",
            a.addr, a.prefix, spec.ipdev
        );
        del_addr(&mut plan, &a, spec)?;
    }
    let prefix = choose_prefix(spec, plan.addr, &plan.addrs)?;
    let nodad = plan.addr.is_ipv6() && ctx.force;
    if nodad {
        warn!(
            "--force: no duplicate address detection for {} on {}",
            plan.addr, spec.ipdev
        );
    }
    info!("ip addr add {}/{prefix} dev {}", plan.addr, spec.ipdev);
    // Whether this start added the address: only then does a failure below remove it (one
    // added meanwhile by someone else, EEXIST, is theirs).
    let added = match plan.nl.add_addr(plan.link.index, plan.addr, prefix, nodad) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            info!("{} is already up on {}", plan.addr, spec.ipdev);
            false
        }
        Err(e) => {
            return Err(DriverError::io(
                format!("cannot add {}/{prefix} on {}", plan.addr, spec.ipdev),
                e,
            ));
        }
    };
    let undo = |plan: &mut Plan, why: &str| {
        if !added {
            return;
        }
        warn!(
            "ip addr del {}/{prefix} dev {} ({why})",
            plan.addr, spec.ipdev
        );
        let ours = Addr {
            index: plan.link.index,
            addr: plan.addr,
            prefix,
            tentative: false,
            dadfailed: false,
        };
        if let Err(e) = del_addr(plan, &ours, spec) {
            warn!("{e}");
        }
    };
    match plan.addr {
        IpAddr::V4(v4) => announce(&plan, spec, v4),
        IpAddr::V6(_) if !nodad => {
            // wait_dad removes the address itself on dadfailed and timeout, not when it cannot
            // read the addresses.
            if let Err(e) = wait_dad(&mut plan, spec, prefix) {
                if !matches!(e, DriverError::Refused(_) | DriverError::Timeout { .. }) {
                    undo(
                        &mut plan,
                        "duplicate address detection could not be followed",
                    );
                }
                return Err(e);
            }
        }
        IpAddr::V6(_) => {}
    }
    if let Err(e) = ensure_gateway(&mut plan, spec) {
        undo(&mut plan, "the gateway failed");
        return Err(e);
    }
    Ok(Outcome::Changed)
}

/// Gratuitous ARP for a new IPv4 address. A failure is a warning: the address is up.
fn announce(plan: &Plan, spec: &IpSpec, v4: std::net::Ipv4Addr) {
    if spec.garp_count == 0 {
        return;
    }
    let Some(mac) = plan.mac() else {
        info!("{} has no Ethernet address: no gratuitous arp", spec.ipdev);
        return;
    };
    let interval = capped("garp_interval", spec.garp_interval);
    info!(
        "gratuitous arp for {v4} on {} ({} packet(s), {} ms apart)",
        spec.ipdev,
        spec.garp_count,
        interval.as_millis()
    );
    let sent = arp::ArpSocket::open(plan.link.index, false)
        .and_then(|s| s.announce(mac, v4, spec.garp_count, interval));
    if let Err(e) = sent {
        warn!("gratuitous arp for {v4} on {} failed: {e}", spec.ipdev);
    }
}

/// Wait for the new IPv6 address to leave `tentative`; on `dadfailed` (or no verdict within the
/// bound) remove it again and fail.
fn wait_dad(plan: &mut Plan, spec: &IpSpec, prefix: u8) -> Result<(), DriverError> {
    let start = Instant::now();
    let mut said = false;
    loop {
        let addrs = plan.nl.addrs(plan.link.index, true).map_err(|e| {
            DriverError::io(format!("cannot list the addresses of {}", spec.ipdev), e)
        })?;
        let now = addrs.into_iter().find(|a| a.addr == plan.addr);
        let Some(now) = now else {
            return Err(DriverError::Refused(format!(
                "{} disappeared from {} during duplicate address detection",
                plan.addr, spec.ipdev
            )));
        };
        if now.dadfailed {
            info!(
                "ip addr del {}/{} dev {} (dadfailed)",
                now.addr, now.prefix, spec.ipdev
            );
            del_addr(plan, &now, spec)?;
            return Err(DriverError::Refused(format!(
                "address {} failed duplicate address detection on {} (dadfailed): \
                 another host on the link holds it",
                plan.addr, spec.ipdev
            )));
        }
        if !now.tentative {
            if said {
                info!(
                    "{} passed duplicate address detection in {} ms",
                    plan.addr,
                    start.elapsed().as_millis()
                );
            }
            return Ok(());
        }
        if start.elapsed() >= DAD_BOUND {
            info!(
                "ip addr del {}/{prefix} dev {} (dad timeout)",
                now.addr, spec.ipdev
            );
            del_addr(plan, &now, spec)?;
            return Err(DriverError::Timeout {
                what: format!(
                    "duplicate address detection of {} on {}",
                    plan.addr, spec.ipdev
                ),
                secs: DAD_BOUND.as_secs_f64(),
            });
        }
        if !said {
            info!("waiting for duplicate address detection of {}", plan.addr);
            said = true;
        }
        std::thread::sleep(DAD_POLL);
    }
}

fn del_addr(plan: &mut Plan, a: &Addr, spec: &IpSpec) -> Result<(), DriverError> {
    match plan.nl.del_addr(a.index, a.addr, a.prefix) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL | libc::ENOENT)) => Ok(()),
        Err(e) => Err(DriverError::io(
            format!("cannot remove {}/{} from {}", a.addr, a.prefix, spec.ipdev),
            e,
        )),
    }
}

/// Remove the gateway route and the address. An absent address (or device) is already stopped.
/// A gateway failure does not keep the address from being removed; both are reported.
pub fn stop(_ctx: &Ctx<'_>, spec: &IpSpec) -> Result<Outcome, DriverError> {
    // A netns ip goes in its container's namespace, never on the node's interface.
    if spec.netns.is_some() {
        return netns::stop(_ctx, spec);
    }
    let Some(mut plan) = Plan::read(spec)? else {
        info!(
            "device {} does not exist: {} is already down",
            spec.ipdev, spec.ipname
        );
        return Ok(Outcome::AlreadyDone);
    };
    let Some(a) = plan.ours().cloned() else {
        info!("{} is already down on {}", plan.addr, spec.ipdev);
        return Ok(Outcome::AlreadyDone);
    };
    let mut gw_err = None;
    if let Some(gw) = spec.gateway {
        match gateway_present(&mut plan, spec) {
            Ok(false) => {}
            Ok(true) => {
                info!("ip route del default via {gw} dev {}", spec.ipdev);
                match plan.nl.del_default_route(plan.link.index, gw) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => {
                        gw_err = Some(DriverError::io(
                            format!(
                                "cannot remove the default route via {gw} dev {}",
                                spec.ipdev
                            ),
                            e,
                        ));
                    }
                }
            }
            Err(e) => gw_err = Some(e),
        }
    }
    info!("ip addr del {}/{} dev {}", a.addr, a.prefix, spec.ipdev);
    let del = del_addr(&mut plan, &a, spec);
    match (del, gw_err) {
        (Err(e), Some(g)) => {
            warn!("{g}");
            Err(e)
        }
        (Err(e), None) | (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(Outcome::Changed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::config::Prefix;

    fn spec(netmask: Option<u8>) -> IpSpec {
        IpSpec {
            ipname: "192.0.2.10".into(),
            ipdev: "eth0".into(),
            netmask: netmask.map(Prefix),
            gateway: None,
            probe_timeout: Duration::from_millis(300),
            garp_count: 3,
            garp_interval: Duration::from_millis(100),
            netns: None,
        }
    }

    fn addr(s: &str, prefix: u8) -> Addr {
        Addr {
            index: 2,
            addr: s.parse().unwrap(),
            prefix,
            tentative: false,
            dadfailed: false,
        }
    }

    #[test]
    fn label_is_ipname_at_ipdev() {
        assert_eq!(label(&spec(None)), "192.0.2.10@eth0");
    }

    #[test]
    fn literals_resolve_without_the_resolver() {
        assert_eq!(
            resolve("192.0.2.10").unwrap(),
            "192.0.2.10".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            resolve("fd00::5").unwrap(),
            "fd00::5".parse::<IpAddr>().unwrap()
        );
        assert!(resolve("localhost").unwrap().is_loopback());
    }

    #[test]
    fn long_arp_times_are_capped() {
        assert_eq!(
            capped("k", Duration::from_millis(300)),
            Duration::from_millis(300)
        );
        assert_eq!(capped("k", Duration::from_secs(300)), ARP_TIME_CAP);
    }

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_subnet(ip("192.0.2.10"), ip("192.0.2.200"), 24));
        assert!(!same_subnet(ip("192.0.2.10"), ip("192.0.3.10"), 24));
        assert!(same_subnet(ip("192.0.2.10"), ip("10.0.0.1"), 0));
        assert!(!same_subnet(ip("192.0.2.10"), ip("192.0.2.11"), 32));
        assert!(same_subnet(ip("fd00::1"), ip("fd00::2"), 64));
        assert!(!same_subnet(ip("fd00::1"), ip("fd01::1"), 64));
        assert!(!same_subnet(ip("fd00::1"), ip("192.0.2.1"), 0));
    }

    #[test]
    fn prefix_comes_from_config_else_from_the_device() {
        let a = "192.0.2.10".parse().unwrap();
        assert_eq!(choose_prefix(&spec(Some(27)), a, &[]).unwrap(), 27);
        let e = choose_prefix(&spec(Some(33)), a, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/33") && e.contains("192.0.2.10"), "{e}");
        let have = [
            addr("10.0.0.1", 8),
            addr("192.0.2.1", 24),
            addr("192.0.2.2", 16),
        ];
        assert_eq!(choose_prefix(&spec(None), a, &have).unwrap(), 24);
        let e = choose_prefix(&spec(None), a, &[addr("10.0.0.1", 8)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no netmask for 192.0.2.10") && e.contains("eth0"),
            "{e}"
        );
    }
}

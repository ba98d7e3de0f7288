//! `[ip#N] type = netns` (OpenSVC v2): the service address inside the network namespace of a
//! container of the service (`netns = container#0`), never on the node's interface.
//!
//! - start: the container must run (the start order puts the ip right after it). An interface
//!   is made from `ipdev` on the node: in mode bridge a veth pair whose node end becomes a port
//!   of the bridge `ipdev`, in mode macvlan a macvlan (bridge mode) on `ipdev`; the other end is
//!   moved into the container's namespace, named `nsdev` (default the first free `eth<N>`),
//!   given the address and brought up; a `gateway` becomes its default route. A container whose
//!   namespace is the node's own is refused (the address would land on the node).
//! - stop: the interface holding the address in the namespace is deleted (a veth takes its node
//!   end with it). A stopped container has no namespace any more: nothing to do.
//! - status: up when the address is in the container's namespace.
//!
//! The work is done by iproute2 (`ip`, and `nsenter --net=/proc/<pid>/ns/net ip ...` inside
//! the namespace), as OpenSVC does, each call bounded.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use berth_model::config::{IpSpec, NetnsIp, NetnsMode};
use berth_model::status::{LogEntry, Status};
use berth_model::{ResourceState, Rid};
use tracing::info;

use crate::{Ctx, DriverError, Outcome};

/// The bound on one `ip` call.
const BOUND: Duration = Duration::from_secs(10);

/// The netns part of `spec`, which the dispatch only hands over for a netns ip.
fn ns_of(spec: &IpSpec) -> Result<&NetnsIp, DriverError> {
    spec.netns
        .as_ref()
        .ok_or_else(|| DriverError::Refused(format!("ip {} is not of type netns", spec.ipname)))
}

/// `netns bridge 10.0.0.5/24 br0@container#0`, as OpenSVC labels it.
pub fn label(spec: &IpSpec) -> String {
    let Some(ns) = &spec.netns else {
        return super::label(spec);
    };
    let mode = ns.mode.map_or("", NetnsMode::as_str);
    let prefix = spec
        .netmask
        .map(|p| format!("/{}", p.0))
        .unwrap_or_default();
    format!(
        "netns {mode}{}{}{prefix} {}@{}",
        if mode.is_empty() { "" } else { " " },
        spec.ipname,
        spec.ipdev,
        ns.container
    )
}

/// Run `ip ARGS` (inside the namespace of `pid` when given); an error on a non-zero exit.
fn ip(pid: Option<i32>, args: &[&str]) -> Result<String, DriverError> {
    let mut cmd;
    let line;
    match pid {
        Some(p) => {
            cmd = Command::new("nsenter");
            cmd.arg(format!("--net=/proc/{p}/ns/net"))
                .arg("ip")
                .args(args);
            line = format!("nsenter --net=/proc/{p}/ns/net ip {}", args.join(" "));
        }
        None => {
            cmd = Command::new("ip");
            cmd.args(args);
            line = format!("ip {}", args.join(" "));
        }
    }
    info!("{line}");
    let out = crate::cmd::run(&mut cmd, &line, BOUND)?;
    if !out.status.success() {
        return Err(DriverError::Command {
            command: line,
            code: out.status.code().unwrap_or(-1),
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The interface of `ip -o addr show` lines that holds `addr`.
pub(crate) fn dev_holding(text: &str, addr: IpAddr) -> Option<String> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let i = f.iter().position(|w| *w == "inet" || *w == "inet6")?;
        let a: IpAddr = f.get(i + 1)?.split('/').next()?.parse().ok()?;
        (a == addr).then(|| {
            f.get(1)
                .map(|d| d.split('@').next().unwrap_or(d).to_string())
        })?
    })
}

/// The interface names of `ip -o link show` lines (`2: eth0@if7: <...>` is `eth0`).
pub fn link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|d| {
            d.trim_end_matches(':')
                .split('@')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// The first `eth<N>` not used in `ip -o link show` lines.
pub(crate) fn free_eth(text: &str) -> String {
    let used = link_names(text);
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|d| !used.contains(d))
        .unwrap_or_else(|| "eth0".into())
}

/// The running container's pid, or why there is none.
fn pid_of(ctx: &Ctx<'_>, owner: Rid) -> Result<Option<i32>, DriverError> {
    crate::docker::container_pid(ctx, owner)
}

/// Refuse a namespace that is the node's own (a container run with the host's network).
fn check_not_ours(pid: i32, owner: Rid) -> Result<(), DriverError> {
    let ns = |p: &str| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let theirs = ns(&format!("/proc/{pid}/ns/net"))
        .map_err(|e| DriverError::io(format!("read the network namespace of pid {pid}"), e))?;
    let ours =
        ns("/proc/self/ns/net").map_err(|e| DriverError::io("read our network namespace", e))?;
    if theirs == ours {
        return Err(DriverError::Refused(format!(
            "{owner} runs in the node's own network namespace: a netns ip would go on the node"
        )));
    }
    Ok(())
}

/// Whether `dev` exists on the node, and whether it is a bridge. Asked of the kernel through
/// `ip` (netlink), not `/sys`, which shows the namespace it was mounted in.
fn node_dev(dev: &str) -> Result<Option<bool>, DriverError> {
    if ip(None, &["-o", "link", "show", "dev", dev]).is_err() {
        return Ok(None);
    }
    let bridges = ip(None, &["-o", "link", "show", "type", "bridge"])?;
    Ok(Some(bridges.lines().any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|d| d.trim_end_matches(':') == dev)
    })))
}

/// Checks before any resource starts: `ipdev` exists on the node.
pub fn precheck(_ctx: &Ctx<'_>, spec: &IpSpec) -> Result<(), DriverError> {
    if node_dev(&spec.ipdev)?.is_none() {
        return Err(DriverError::Refused(format!(
            "ipdev {} of the netns ip {} does not exist on this node",
            spec.ipdev, spec.ipname
        )));
    }
    Ok(())
}

/// Up when the address is in the container's namespace.
pub fn status(ctx: &Ctx<'_>, spec: &IpSpec) -> ResourceState {
    let mut st = ResourceState::new(Status::Down, label(spec), Vec::new());
    let result = (|| -> Result<(), DriverError> {
        let ns = ns_of(spec)?;
        let Some(pid) = pid_of(ctx, ns.container)? else {
            st.log
                .push(LogEntry::info(format!("{} is not running", ns.container)));
            return Ok(());
        };
        let addr = super::resolve(&spec.ipname)?;
        if let Some(dev) = dev_holding(&ip(Some(pid), &["-o", "addr", "show"])?, addr) {
            st.status = Status::Up;
            st.log.push(LogEntry::info(format!(
                "{} on {dev} in the namespace of {} (pid {pid})",
                spec.ipname, ns.container
            )));
        }
        Ok(())
    })();
    if let Err(e) = result {
        st.status = Status::Undef;
        st.log.push(LogEntry::error(e.to_string()));
    }
    st
}

/// The prefix: `netmask`, else that of the address of `ipdev` on the same subnet.
fn prefix(spec: &IpSpec, addr: IpAddr) -> Result<u8, DriverError> {
    if let Some(p) = spec.netmask {
        return Ok(p.0);
    }
    let text = ip(None, &["-o", "addr", "show", "dev", &spec.ipdev])?;
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(i) = f.iter().position(|w| *w == "inet" || *w == "inet6") else {
            continue;
        };
        let Some(net) = f.get(i + 1).and_then(|n| n.parse::<ipnet::IpNet>().ok()) else {
            continue;
        };
        if net.contains(&addr) {
            return Ok(net.prefix_len());
        }
    }
    Err(DriverError::Refused(format!(
        "netmask is not set and {} has no address on the subnet of {}: set netmask",
        spec.ipdev, spec.ipname
    )))
}

/// Put the address in the container's namespace.
pub fn start(ctx: &Ctx<'_>, spec: &IpSpec) -> Result<Outcome, DriverError> {
    let ns = ns_of(spec)?;
    let owner = ns.container;
    let pid = pid_of(ctx, owner)?.ok_or_else(|| {
        DriverError::Refused(format!(
            "{owner} is not running: the netns ip {} goes in its namespace",
            spec.ipname
        ))
    })?;
    check_not_ours(pid, owner)?;
    let addr = super::resolve(&spec.ipname)?;
    let in_ns = ip(Some(pid), &["-o", "addr", "show"])?;
    if let Some(dev) = dev_holding(&in_ns, addr) {
        info!(
            "{} is already on {dev} in the namespace of {owner}",
            spec.ipname
        );
        return Ok(Outcome::AlreadyDone);
    }
    let prefix = prefix(spec, addr)?;
    let guest = match &ns.nsdev {
        Some(d) => d.clone(),
        None => free_eth(&ip(Some(pid), &["-o", "link", "show"])?),
    };
    let is_bridge = node_dev(&spec.ipdev)?.ok_or_else(|| {
        DriverError::Refused(format!(
            "ipdev {} of the netns ip {} does not exist on this node",
            spec.ipdev, spec.ipname
        ))
    })?;
    let mode = ns.mode.unwrap_or(if is_bridge {
        NetnsMode::Bridge
    } else {
        NetnsMode::Macvlan
    });
    // Temporary names on the node, unique per namespace (IFNAMSIZ: 15 bytes).
    let tmp_guest = format!("v{}g{pid}", guest.trim_start_matches("eth"));
    let tmp_node = format!("v{}l{pid}", guest.trim_start_matches("eth"));
    info!("{} mode", mode.as_str());
    let pid_text = pid.to_string();
    let mut renamed = false;
    let mut made = || -> Result<(), DriverError> {
        match mode {
            NetnsMode::Bridge => {
                ip(
                    None,
                    &[
                        "link", "add", "name", &tmp_node, "type", "veth", "peer", "name",
                        &tmp_guest,
                    ],
                )?;
                ip(None, &["link", "set", &tmp_node, "master", &spec.ipdev])?;
                ip(None, &["link", "set", &tmp_node, "up"])?;
            }
            NetnsMode::Macvlan => {
                ip(
                    None,
                    &[
                        "link",
                        "add",
                        "link",
                        &spec.ipdev,
                        "name",
                        &tmp_guest,
                        "type",
                        "macvlan",
                        "mode",
                        "bridge",
                    ],
                )?;
            }
        }
        ip(None, &["link", "set", &tmp_guest, "netns", &pid_text])?;
        ip(Some(pid), &["link", "set", &tmp_guest, "name", &guest])?;
        renamed = true;
        let cidr = format!("{addr}/{prefix}");
        ip(Some(pid), &["addr", "add", &cidr, "dev", &guest])?;
        ip(Some(pid), &["link", "set", &guest, "up"])?;
        if let Some(gw) = spec.gateway {
            ip(
                Some(pid),
                &[
                    "route",
                    "replace",
                    "default",
                    "via",
                    &gw.to_string(),
                    "dev",
                    &guest,
                ],
            )?;
        }
        Ok(())
    };
    if let Err(e) = made() {
        // Leave nothing half made: what this start made goes (a veth takes its peer). The
        // namespace's own interfaces are never touched: `guest` only once it is ours.
        let mut ours = vec![(None, tmp_node.as_str()), (None, tmp_guest.as_str())];
        ours.push((Some(pid), tmp_guest.as_str()));
        if renamed {
            ours.push((Some(pid), guest.as_str()));
        }
        for (p, dev) in ours {
            if ip(p, &["link", "show", dev]).is_ok() {
                let _ = ip(p, &["link", "del", dev]);
            }
        }
        return Err(e);
    }
    Ok(Outcome::Changed)
}

/// Take the address's interface out of the container's namespace.
pub fn stop(ctx: &Ctx<'_>, spec: &IpSpec) -> Result<Outcome, DriverError> {
    let ns = ns_of(spec)?;
    let Some(pid) = pid_of(ctx, ns.container)? else {
        info!(
            "{} is not running: its namespace, and the address in it, are gone",
            ns.container
        );
        return Ok(Outcome::AlreadyDone);
    };
    let addr = super::resolve(&spec.ipname)?;
    let Some(dev) = dev_holding(&ip(Some(pid), &["-o", "addr", "show"])?, addr) else {
        info!(
            "{} is not in the namespace of {}",
            spec.ipname, ns.container
        );
        return Ok(Outcome::AlreadyDone);
    };
    ip(Some(pid), &["link", "del", &dev])?;
    Ok(Outcome::Changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_output_is_read() {
        let addrs = "1: lo    inet 127.0.0.1/8 scope host lo\n\
                     7: eth1@if8    inet 10.0.0.5/24 scope global eth1\n";
        assert_eq!(
            dev_holding(addrs, "10.0.0.5".parse().unwrap()).as_deref(),
            Some("eth1")
        );
        assert_eq!(dev_holding(addrs, "10.0.0.6".parse().unwrap()), None);
        let links = "1: lo: <LOOPBACK,UP> mtu 65536\n7: eth0@if8: <BROADCAST> mtu 1500\n";
        assert_eq!(link_names(links), ["lo", "eth0"]);
        assert_eq!(free_eth(links), "eth1");
        assert_eq!(free_eth("1: lo: <LOOPBACK>\n"), "eth0");
    }
}

//! The service's container network: a user-defined bridge network in the service's private
//! dockerd, named `berth-<svc>`. Containers with no `network` nor `netns` join it, so they
//! reach each other by name (docker's embedded DNS: container names, `links` aliases, network
//! aliases) and their published `ports` are served by docker's userland proxy (`docker-proxy`),
//! which works with the daemon's `--iptables=false`.
//!
//! The subnet is `docker_subnet`, or the first /24 of 10.199.0.0/16 (starting at one picked
//! from the service name) that overlaps no route and no address of the node's network namespace.
//! Both are checked against the host when the network is made, under a node-wide lock, so two
//! services starting at once never take the same subnet. The network goes with the daemon: it is
//! removed when the last container stops, before the daemon is shut down (its bridge with it).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_model::config::ServiceConfig;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::InspectNetworkOptions;
use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};
use tracing::info;

use super::api::{Api, ApiError, REQUEST};
use super::container::SERVICE_LABEL;
use crate::DriverError;

/// The pool automatic subnets are taken from.
const POOL: &str = "10.199.0.0/16";

/// A route or address of the node's namespace, as the overlap check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Used {
    /// The network.
    pub net: Ipv4Net,
    /// Where it comes from (`route 10.88.0.0/24 dev n0`, `address 10.88.0.1/24 on n0`).
    pub what: String,
}

/// Routes of the main table (`/proc/net/route`: hex, host byte order), default routes left out.
pub(crate) fn parse_routes(text: &str) -> Vec<Used> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(dev), Some(dst), Some(mask)) = (f.first(), f.get(1), f.get(7)) else {
            continue;
        };
        // The kernel prints the network-order word as a host-order number.
        let hex = |s: &str| {
            u32::from_str_radix(s, 16)
                .ok()
                .map(|n| Ipv4Addr::from(n.to_ne_bytes()))
        };
        let (Some(dst), Some(mask)) = (hex(dst), hex(mask)) else {
            continue;
        };
        if mask.is_unspecified() {
            continue;
        }
        let Ok(net) = Ipv4Net::with_netmask(dst, mask) else {
            continue;
        };
        out.push(Used {
            net: net.trunc(),
            what: format!("route {} dev {dev}", net.trunc()),
        });
    }
    out
}

/// Addresses of `ip -o -4 addr show` lines (`2: n0    inet 10.88.0.1/24 brd ...`), as networks.
pub(crate) fn parse_addrs(text: &str) -> Vec<Used> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(i) = f.iter().position(|w| *w == "inet") else {
            continue;
        };
        let (Some(dev), Some(addr)) = (f.get(1), f.get(i + 1)) else {
            continue;
        };
        let Ok(net) = addr.parse::<Ipv4Net>() else {
            continue;
        };
        if net.addr().is_loopback() {
            continue;
        }
        out.push(Used {
            net: net.trunc(),
            what: format!("address {net} on {dev}"),
        });
    }
    out
}

/// What the node's namespace uses: its routes and interface addresses (a bridge that is down has
/// an address but no route yet).
fn used_here() -> Result<Vec<Used>, DriverError> {
    let routes = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| DriverError::io("read /proc/net/route", e))?;
    let mut used = parse_routes(&routes);
    let out = crate::cmd::run(
        Command::new("ip").args(["-o", "-4", "addr", "show"]),
        "ip -o -4 addr show",
        Duration::from_secs(10),
    )?;
    used.extend(parse_addrs(&String::from_utf8_lossy(&out.stdout)));
    Ok(used)
}

/// The first of `used` that overlaps `net`.
pub(crate) fn overlap<'a>(net: &Ipv4Net, used: &'a [Used]) -> Option<&'a Used> {
    used.iter()
        .find(|u| u.net.contains(&net.network()) || net.contains(&u.net.network()))
}

/// The /24 of the pool the search starts at for `svc` (FNV-1a of the name).
fn first_slot(svc: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in svc.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % 256
}

/// The subnet for `svc`: `wanted` if nothing overlaps it, else an error naming what does; with
/// none wanted, the first free /24 of the pool.
pub(crate) fn choose(
    svc: &str,
    wanted: Option<Ipv4Net>,
    used: &[Used],
) -> Result<Ipv4Net, DriverError> {
    if let Some(net) = wanted {
        return match overlap(&net, used) {
            Some(u) => Err(DriverError::Refused(format!(
                "docker_subnet {net} of service {svc} overlaps the {} of this node: choose \
                 another subnet",
                u.what
            ))),
            None => Ok(net),
        };
    }
    let pool: Ipv4Net = POOL
        .parse()
        .map_err(|_| DriverError::Refused("bad pool".into()))?;
    let subnets: Vec<Ipv4Net> = pool
        .subnets(24)
        .map_err(|_| DriverError::Refused("bad pool".into()))?
        .collect();
    let start = first_slot(svc) as usize;
    for i in 0..subnets.len() {
        let net = subnets[(start + i) % subnets.len()];
        if overlap(&net, used).is_none() {
            return Ok(net);
        }
    }
    Err(DriverError::Refused(format!(
        "no /24 of {POOL} is free of the routes of this node: set docker_subnet for service {svc}"
    )))
}

/// The network's id and subnet, when the daemon has it.
pub(crate) fn inspect(api: &Api, name: &str) -> Result<Option<(String, String)>, DriverError> {
    match api.run(
        REQUEST,
        api.docker
            .inspect_network(name, None::<InspectNetworkOptions>),
    ) {
        // Docker answers a name it does not know with the network whose id starts so.
        Ok(n) if n.name.as_deref() != Some(name) => Ok(None),
        Ok(n) => {
            let subnet = n
                .ipam
                .and_then(|i| i.config)
                .and_then(|c| c.into_iter().find_map(|c| c.subnet))
                .unwrap_or_default();
            Ok(Some((n.id.unwrap_or_default(), subnet)))
        }
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into_driver(format!("inspect network {name}"))),
    }
}

/// Make the service's network when the daemon does not have it; returns its id.
pub(crate) fn ensure(
    api: &Api,
    svc: &ServiceConfig,
    var_dir: &Path,
) -> Result<String, DriverError> {
    let name = &svc.docker_network();
    if let Some((id, _)) = inspect(api, name)? {
        return Ok(id);
    }
    // One subnet choice at a time on the node: a bridge made by another service's start must be
    // seen by this one's check.
    std::fs::create_dir_all(var_dir)
        .map_err(|e| DriverError::io(format!("create {}", var_dir.display()), e))?;
    let lock_path = var_dir.join("docker_subnets.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DriverError::io(format!("open {}", lock_path.display()), e))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| DriverError::io(format!("lock {}", lock_path.display()), e.into()))?;
    let used = used_here()?;
    let subnet = choose(&svc.name, svc.settings.docker_subnet, &used)?;
    let gateway = subnet
        .hosts()
        .next()
        .ok_or_else(|| DriverError::Refused(format!("subnet {subnet} has no host address")))?;
    info!("docker network create --subnet {subnet} --gateway {gateway} {name}");
    let created = api
        .run(
            REQUEST,
            api.docker.create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        gateway: Some(gateway.to_string()),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                options: Some(HashMap::from([(
                    "com.docker.network.bridge.enable_ip_masquerade".to_string(),
                    "false".to_string(),
                )])),
                labels: Some(HashMap::from([(
                    SERVICE_LABEL.to_string(),
                    svc.name.clone(),
                )])),
                ..Default::default()
            }),
        )
        .map_err(|e| e.into_driver(format!("create network {name} ({subnet})")))?;
    Ok(created.id)
}

/// Remove the service's network (and its bridge) if the daemon has it.
pub(crate) fn remove(api: &Api, name: &str) -> Result<(), DriverError> {
    if inspect(api, name)?.is_none() {
        return Ok(());
    }
    info!("docker network rm {name}");
    match api.run(REQUEST, api.docker.remove_network(name)) {
        Ok(()) | Err(ApiError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into_driver(format!("remove network {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_addresses_parse() {
        let routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            n0\t00000000\t0158A80A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            n0\t0058A80A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_routes(routes);
        assert_eq!(r.len(), 1, "the default route is left out");
        assert_eq!(r[0].net, "10.168.88.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(r[0].what, "route 10.168.88.0/24 dev n0");
        let a = parse_addrs(
            "1: lo    inet 127.0.0.1/8 scope host lo\n\
             5: br-1a2b    inet 10.199.7.1/24 brd 10.199.7.255 scope global br-1a2b\n",
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].what, "address 10.199.7.1/24 on br-1a2b");
    }

    #[test]
    fn subnets_avoid_what_is_used() {
        let used = vec![Used {
            net: "10.88.0.0/16".parse().unwrap(),
            what: "route 10.88.0.0/16 dev n0".into(),
        }];
        let e = choose("web", Some("10.88.3.0/24".parse().unwrap()), &used).unwrap_err();
        assert_eq!(
            e.to_string(),
            "docker_subnet 10.88.3.0/24 of service web overlaps the route 10.88.0.0/16 dev n0 \
             of this node: choose another subnet"
        );
        let first = choose("web", None, &[]).unwrap();
        let taken = vec![Used {
            net: first,
            what: "x".into(),
        }];
        let second = choose("web", None, &taken).unwrap();
        assert_ne!(first, second);
        assert_eq!(second.prefix_len(), 24);
        assert!(
            "10.199.0.0/16"
                .parse::<Ipv4Net>()
                .unwrap()
                .contains(&second)
        );
    }
}

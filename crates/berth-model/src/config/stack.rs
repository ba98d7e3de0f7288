//! The checks that span resources of a multi-container service, run once every section is read:
//! what cannot work is refused at load, with the reason (`ports` on a container without a network
//! of its own, `links` to a container of another service, a `netns` or `start_requires` naming a
//! resource the service does not have, a dependency cycle). What needs the host (a subnet that
//! overlaps a route of the node) is checked by the docker driver at start.

use std::collections::BTreeMap;

use super::error::{ConfigError, ConfigErrorKind};
use super::kinds::container::ContainerSpec;
use super::raw::{RawSection, SectionKind};
use super::service::{ServiceConfig, Spec};
use crate::rid::{Kind, Rid, RidId};

/// `docker_subnet`: an IPv4 network of prefix 8 to 28, given by its network address.
pub(crate) fn parse_subnet(text: &str) -> Result<ipnet::Ipv4Net, String> {
    let net: ipnet::Ipv4Net = text
        .trim()
        .parse()
        .map_err(|_| "expected an IPv4 subnet such as 10.199.7.0/24".to_string())?;
    if !(8..=28).contains(&net.prefix_len()) {
        return Err("the prefix must be from /8 to /28".to_string());
    }
    if net.network() != net.addr() {
        return Err(format!("host bits set: the subnet is {}", net.trunc()));
    }
    Ok(net)
}

/// How a container is networked, as the service file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// No `network` nor `netns`, in a service that needs a network: the service's own docker
    /// network.
    Service,
    /// No `network` nor `netns`, in a service that needs no network (one such container, no
    /// `ports`, no `links`): docker's default, which the private daemon's `--bridge=none` makes
    /// no network at all (as before berth had service networks; no bridge is made).
    Default,
    /// `netns = container#N`: that container's namespace.
    Netns(Rid),
    /// `network = none`.
    None,
    /// `network = host`.
    Host,
    /// `network = container:NAME`.
    Container(String),
    /// `network = NAME`: another docker network of the service's daemon.
    Named(String),
}

impl NetworkMode {
    /// The network mode of container `c` of `svc`.
    pub fn of(svc: &ServiceConfig, c: &ContainerSpec) -> NetworkMode {
        NetworkMode::resolve(c, needs_network(svc))
    }

    /// The network mode of `c`, in a service that does or does not need a network.
    pub fn resolve(c: &ContainerSpec, service_network: bool) -> NetworkMode {
        if let Some(rid) = c.netns {
            return NetworkMode::Netns(rid);
        }
        match c.run.network.as_deref() {
            None if service_network => NetworkMode::Service,
            None => NetworkMode::Default,
            Some("none") => NetworkMode::None,
            Some("host") => NetworkMode::Host,
            Some(n) => match n.strip_prefix("container:") {
                Some(name) => NetworkMode::Container(name.to_string()),
                None => NetworkMode::Named(n.to_string()),
            },
        }
    }

    /// Whether the container has a network namespace of its own with a network in it (ports
    /// can be published, links resolve).
    fn has_own_network(&self) -> bool {
        matches!(self, NetworkMode::Service | NetworkMode::Named(_))
    }

    fn describe(&self) -> String {
        match self {
            NetworkMode::Service => "the service's network".into(),
            NetworkMode::Default => "no network".into(),
            NetworkMode::Netns(rid) => format!("netns = {rid}"),
            NetworkMode::None => "network = none".into(),
            NetworkMode::Host => "network = host".into(),
            NetworkMode::Container(n) => format!("network = container:{n}"),
            NetworkMode::Named(n) => format!("network = {n}"),
        }
    }
}

/// Whether `svc` gets a network of its own: two containers or more with no `network` nor
/// `netns`, or one with `ports` or `links`.
pub fn needs_network(svc: &ServiceConfig) -> bool {
    let plain: Vec<&ContainerSpec> = svc
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Container(c) if c.netns.is_none() && c.run.network.is_none() => Some(&**c),
            _ => None,
        })
        .collect();
    plain.len() >= 2
        || plain
            .iter()
            .any(|c| !c.run.ports.is_empty() || !c.run.links.is_empty())
}

/// The container a `links` item names, as a rid of `svc`: `container#N`, or the container's
/// name `<svc>.container.<N>`.
pub fn link_target(svc: &str, item: &str) -> Option<Rid> {
    let name = item.split(':').next().unwrap_or(item);
    if let Ok(rid) = name.parse::<Rid>() {
        return (rid.kind == Kind::Container).then_some(rid);
    }
    let index = name.strip_prefix(svc)?.strip_prefix(".container.")?;
    index.parse().ok().map(|i| Rid::new(Kind::Container, i))
}

struct At<'a> {
    svc: &'a ServiceConfig,
    sections: &'a [RawSection],
}

impl At<'_> {
    fn err(&self, rid: Rid, key: &str, value: &str, why: String) -> ConfigError {
        let section = self
            .sections
            .iter()
            .find(|s| s.kind == SectionKind::Resource(rid));
        let line = section.and_then(|s| {
            s.entries
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.line)
                .or(Some(s.line))
        });
        let name = section.map_or_else(|| rid.to_string(), |s| s.name.clone());
        ConfigError::at(
            &self.svc.source,
            line,
            Some(&name),
            Some(key),
            ConfigErrorKind::BadValue {
                value: value.to_string(),
                expected: why,
            },
        )
    }
}

fn container(svc: &ServiceConfig, rid: Rid) -> Option<&ContainerSpec> {
    match &svc.resource(rid)?.spec {
        Spec::Container(c) => Some(c),
        _ => None,
    }
}

/// Refuse what cannot work across the resources of `svc`.
pub(crate) fn check(svc: &ServiceConfig, sections: &[RawSection]) -> Result<(), ConfigError> {
    let at = At { svc, sections };
    for res in &svc.resources {
        let rid = res.rid;
        match &res.spec {
            Spec::Ip(ip) => {
                let Some(ns) = &ip.netns else { continue };
                let owner = ns.container.to_string();
                let Some(c) = container(svc, ns.container) else {
                    return Err(at.err(
                        rid,
                        "netns",
                        &owner,
                        format!("service {} has no resource {owner}", svc.name),
                    ));
                };
                let mode = NetworkMode::of(svc, c);
                if matches!(
                    mode,
                    NetworkMode::Host | NetworkMode::Netns(_) | NetworkMode::Container(_)
                ) {
                    return Err(at.err(
                        rid,
                        "netns",
                        &owner,
                        format!(
                            "{owner} has no network namespace of its own ({}): give the \
                             address to the container that owns the namespace",
                            mode.describe()
                        ),
                    ));
                }
            }
            Spec::Container(c) => check_container(&at, rid, c)?,
            _ => {}
        }
    }
    if let Some(cycle) = dependency_cycle(svc) {
        let names: Vec<String> = cycle.iter().map(Rid::to_string).collect();
        return Err(at.err(
            cycle[0],
            "start_requires",
            &names.join(" "),
            format!(
                "the start dependencies form a cycle: {}",
                names.join(" -> ")
            ),
        ));
    }
    Ok(())
}

fn check_container(at: &At<'_>, rid: Rid, c: &ContainerSpec) -> Result<(), ConfigError> {
    let svc = at.svc;
    let mode = NetworkMode::of(svc, c);
    if let Some(owner) = c.netns {
        let text = owner.to_string();
        if c.run.network.is_some() {
            return Err(at.err(
                rid,
                "netns",
                &text,
                "netns and network are two ways to say the network: give one".into(),
            ));
        }
        if owner == rid {
            return Err(at.err(
                rid,
                "netns",
                &text,
                "a container cannot join its own namespace".into(),
            ));
        }
        match container(svc, owner) {
            None => {
                return Err(at.err(
                    rid,
                    "netns",
                    &text,
                    format!("service {} has no resource {text}", svc.name),
                ));
            }
            Some(o) if o.netns.is_some() => {
                return Err(at.err(
                    rid,
                    "netns",
                    &text,
                    format!("{text} itself joins another namespace: name the owner of it"),
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(p) = c.run.ports.first()
        && !mode.has_own_network()
    {
        let why = match &mode {
            NetworkMode::Host => "with network = host the container listens on the node's \
                                  addresses itself: drop ports"
                .to_string(),
            NetworkMode::Netns(o) => format!(
                "the container shares the namespace of {o}: publish the ports on {o}, or reach \
                 them on its netns ip"
            ),
            m => format!(
                "a container in {} has no network to publish a port from",
                m.describe()
            ),
        };
        return Err(at.err(rid, "ports", &p.text, why));
    }
    for item in &c.run.links {
        if !mode.has_own_network() {
            return Err(at.err(
                rid,
                "links",
                item,
                format!(
                    "a container in {} has no network to resolve a link on",
                    mode.describe()
                ),
            ));
        }
        match link_target(&svc.name, item) {
            Some(t) if container(svc, t).is_some() => {
                if t == rid {
                    return Err(at.err(
                        rid,
                        "links",
                        item,
                        "a container cannot link to itself".into(),
                    ));
                }
            }
            Some(t) => {
                return Err(at.err(
                    rid,
                    "links",
                    item,
                    format!("service {} has no resource {t}", svc.name),
                ));
            }
            None => {
                return Err(at.err(
                    rid,
                    "links",
                    item,
                    format!(
                        "links name containers of this service only ({}.container.<N> or \
                         container#<N>, then :alias): each service has its own docker daemon \
                         and network",
                        svc.name
                    ),
                ));
            }
        }
    }
    for req in &c.start_requires {
        let text = req.to_string();
        if *req == rid {
            return Err(at.err(
                rid,
                "start_requires",
                &text,
                "a resource cannot require itself".into(),
            ));
        }
        if svc.resource(*req).is_none() {
            return Err(at.err(
                rid,
                "start_requires",
                &text,
                format!("service {} has no resource {text}", svc.name),
            ));
        }
    }
    Ok(())
}

/// What each container and netns ip must start after (containers and netns ips only: every other
/// kind starts before all containers anyway).
pub fn start_dependencies(svc: &ServiceConfig) -> BTreeMap<Rid, Vec<Rid>> {
    let mut netns_ips: BTreeMap<Rid, Vec<Rid>> = BTreeMap::new();
    for res in &svc.resources {
        if let Spec::Ip(ip) = &res.spec
            && let Some(ns) = &ip.netns
        {
            netns_ips.entry(ns.container).or_default().push(res.rid);
        }
    }
    let mut deps: BTreeMap<Rid, Vec<Rid>> = BTreeMap::new();
    for res in &svc.resources {
        match &res.spec {
            Spec::Ip(ip) => {
                if let Some(ns) = &ip.netns {
                    deps.insert(res.rid, vec![ns.container]);
                }
            }
            Spec::Container(c) => {
                let mut d: Vec<Rid> = c.start_requires.clone();
                if let Some(owner) = c.netns {
                    d.push(owner);
                    d.extend(netns_ips.get(&owner).into_iter().flatten().copied());
                }
                for item in &c.run.links {
                    if let Some(t) = link_target(&svc.name, item) {
                        d.push(t);
                    }
                }
                d.sort();
                d.dedup();
                deps.insert(res.rid, d);
            }
            _ => {}
        }
    }
    deps
}

/// A cycle among the start dependencies, if any.
fn dependency_cycle(svc: &ServiceConfig) -> Option<Vec<Rid>> {
    let deps = start_dependencies(svc);
    // 0: unseen, 1: on the path, 2: done.
    let mut state: BTreeMap<Rid, u8> = BTreeMap::new();
    fn visit(
        rid: Rid,
        deps: &BTreeMap<Rid, Vec<Rid>>,
        state: &mut BTreeMap<Rid, u8>,
        path: &mut Vec<Rid>,
    ) -> Option<Vec<Rid>> {
        match state.get(&rid) {
            Some(2) => return None,
            Some(1) => {
                let from = path.iter().position(|r| *r == rid).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(rid);
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(rid, 1);
        path.push(rid);
        for d in deps.get(&rid).into_iter().flatten() {
            if let Some(c) = visit(*d, deps, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(rid, 2);
        None
    }
    for rid in deps.keys() {
        let mut path = Vec::new();
        if let Some(c) = visit(*rid, &deps, &mut state, &mut path) {
            return Some(c);
        }
    }
    None
}

/// Containers and netns ips in start order: index order, each after what it depends on (a
/// netns ip right after its container). `ready` are the rids to order; dependencies outside
/// it are ignored.
pub fn order_stack(svc: &ServiceConfig, rids: &[Rid]) -> Vec<Rid> {
    let deps = start_dependencies(svc);
    let key = |r: Rid| -> (RidId, u8, RidId) {
        match svc.resource(r).map(|x| &x.spec) {
            Some(Spec::Ip(ip)) => match &ip.netns {
                Some(ns) => (ns.container.id, 1, r.id),
                None => (RidId::index(0), 0, r.id),
            },
            _ => (r.id, 0, RidId::index(0)),
        }
    };
    let mut left: Vec<Rid> = rids.to_vec();
    left.sort_by_key(|r| key(*r));
    let mut out: Vec<Rid> = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let pick = left
            .iter()
            .position(|r| {
                deps.get(r)
                    .into_iter()
                    .flatten()
                    .all(|d| out.contains(d) || !rids.contains(d))
            })
            // A cycle (refused at load): keep the key order.
            .unwrap_or(0);
        out.push(left.remove(pick));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::ServiceConfig;
    use crate::order::start_order;

    fn load(file: &str, text: &str) -> Result<ServiceConfig, String> {
        ServiceConfig::parse(Path::new(file), text).map_err(|e| e.to_string())
    }

    fn toml(text: &str) -> Result<ServiceConfig, String> {
        load("/etc/berth/services/stack.toml", text)
    }

    fn refused(text: &str) -> String {
        toml(text).expect_err("refused")
    }

    #[test]
    fn refused_combinations_say_why() {
        let e = refused(
            "[container.1]\nrun_image = \"b\"\nnetwork = \"none\"\nports = [\"8080:80\"]\n",
        );
        assert!(
            e.contains(
                "[container#1] ports: bad value \"8080:80\": a container in network = none \
                        has no network to publish a port from"
            ),
            "{e}"
        );
        let e = refused("[container.1]\nrun_image = \"b\"\nlinks = [\"other.container.1:db\"]\n");
        assert!(
            e.contains(
                "links: bad value \"other.container.1:db\": links name containers of \
                        this service only"
            ),
            "{e}"
        );
        let e = refused("[container.1]\nrun_image = \"b\"\nlinks = [\"stack.container.2:db\"]\n");
        assert!(
            e.contains("service stack has no resource container#2"),
            "{e}"
        );
        let e = refused(
            "[container.1]\nrun_image = \"b\"\n[container.2]\nrun_image = \"b\"\nnetns = \
             \"container#1\"\nports = [\"80\"]\n",
        );
        assert!(
            e.contains("the container shares the namespace of container#1"),
            "{e}"
        );
        let e = refused("[container.1]\nrun_image = \"b\"\nnetns = \"container#1\"\n");
        assert!(e.contains("cannot join its own namespace"), "{e}");
        let e =
            refused("[container.1]\nrun_image = \"b\"\nnetwork = \"host\"\nports = [\"80:80\"]\n");
        assert!(e.contains("with network = host"), "{e}");
        let e = refused(
            "[container.1]\nrun_image = \"b\"\nstart_requires = [\"container#2\"]\n\
             [container.2]\nrun_image = \"b\"\nstart_requires = [\"container#1(up)\"]\n",
        );
        assert!(
            e.contains(
                "the start dependencies form a cycle: container#1 -> container#2 -> \
                        container#1"
            ),
            "{e}"
        );
        let e = refused("[container.1]\nrun_image = \"b\"\nstart_requires = [\"fs#9\"]\n");
        assert!(e.contains("service stack has no resource fs#9"), "{e}");
        let e = refused("[container.1]\nrun_image = \"b\"\nstart_requires = [\"fs#1(down)\"]\n");
        assert!(e.contains("berth takes the state up only"), "{e}");
        let e = refused("[service]\ndocker_subnet = \"10.1.2.3/24\"\n");
        assert!(
            e.contains("host bits set: the subnet is 10.1.2.0/24"),
            "{e}"
        );
        let e = refused("[service]\ndocker_subnet = \"10.1.2.0/30\"\n");
        assert!(e.contains("from /8 to /28"), "{e}");
    }

    #[test]
    fn netns_ips_are_refused_where_they_cannot_go() {
        let ini = |body: &str| load("/etc/berth/services/pod.conf", body).expect_err("refused");
        let e = ini("[ip#1]\ntype = netns\nipname = 10.0.0.5\nipdev = br0\nnetmask = 24\n");
        assert!(e.contains("[ip#1] netns: missing mandatory key"), "{e}");
        let e = ini("[ip#1]\ntype = netns\nnetns = container#0\nipname = 10.0.0.5\nipdev = br0\n");
        assert!(e.contains("service pod has no resource container#0"), "{e}");
        let e = ini(
            "[container#0]\nrun_image = b\nnetwork = host\n[ip#1]\ntype = netns\n\
             netns = container#0\nipname = 10.0.0.5\nipdev = br0\n",
        );
        assert!(
            e.contains("container#0 has no network namespace of its own"),
            "{e}"
        );
        let e = ini("[ip#1]\nipname = 10.0.0.5\nipdev = br0\nnetns = container#0\n");
        assert!(e.contains("only an ip of type netns takes it"), "{e}");
        let e = ini("[ip#1]\ntype = cni\nipname = 10.0.0.5\nipdev = br0\n");
        assert!(
            e.contains("type cni is not supported (berth has: host, netns, docker)"),
            "{e}"
        );
        let e = ini(
            "[container#0]\nrun_image = b\n[ip#1]\ntype = netns\nnetns = container#0\n\
             mode = ovs\nipname = 10.0.0.5\nipdev = br0\n",
        );
        assert!(e.contains("mode bridge or macvlan"), "{e}");
    }

    #[test]
    fn an_opensvc_pod_loads_and_orders() {
        let svc = load(
            "/etc/berth/services/pod.conf",
            "[container#0]\nrun_image = b\nrun_command = sleep 1000\n\
             [container#1]\nrun_image = b\nnetns = container#0\n\
             [ip#0]\ntype = netns\nnetns = container#0\nipname = 10.0.0.5\nipdev = br0\n\
             netmask = 24\n[ip#1]\nipname = 10.1.0.5\nipdev = eth0\n",
        )
        .expect("loads");
        assert!(svc.warnings.is_empty(), "{:?}", svc.warnings);
        let order: Vec<String> = start_order(&svc).iter().map(|r| r.to_string()).collect();
        assert_eq!(order, ["ip#1", "container#0", "ip#0", "container#1"]);
        // print config writes it back as TOML that reads the same.
        let text = crate::config::to_toml(&svc).expect("toml");
        assert!(
            text.contains("type = \"netns\"\nnetns = \"container#0\""),
            "{text}"
        );
        let again = toml(&text).expect("reads back");
        assert_eq!(
            format!("{:?}", again.resources),
            format!("{:?}", svc.resources)
        );
    }

    #[test]
    fn netns_host_is_the_nodes_network() {
        let svc = load(
            "/etc/berth/services/h.conf",
            "[container#0]\nrun_image = b\nnetns = host\n",
        )
        .expect("loads");
        let Some(crate::config::Spec::Container(c)) = svc.resources.first().map(|r| &r.spec) else {
            panic!("a container: {:?}", svc.resources);
        };
        assert_eq!(c.run.network.as_deref(), Some("host"));
        assert_eq!(c.netns, None);
        let e = load(
            "/etc/berth/services/h.conf",
            "[container#0]\nrun_image = b\nnetns = host\nrun_args = --net none\n",
        )
        .expect_err("refused");
        assert!(e.contains("while network = none: give one of them"), "{e}");
    }

    #[test]
    fn dependencies_order_the_start() {
        let svc = toml(
            "[container.1]\nrun_image = \"b\"\nlinks = [\"container#3:app\"]\n\
             [container.2]\nrun_image = \"b\"\n\
             [container.3]\nrun_image = \"b\"\nstart_requires = [\"container#2\"]\n\
             [container.4]\nrun_image = \"b\"\nlinks = [\"stack.container.2\"]\n",
        )
        .expect("loads");
        let order: Vec<String> = start_order(&svc).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            order,
            ["container#2", "container#3", "container#1", "container#4"]
        );
    }

    /// The examples of docs/configuration.md load, and say the same in TOML and INI.
    #[test]
    fn the_documented_stack_loads_in_both_syntaxes() {
        let doc = include_str!("../../../../docs/configuration.md");
        let from = doc.find("### A three-tier service").expect("the section");
        let block = |lang: &str, after: usize| -> (String, usize) {
            let open = format!("```{lang}\n");
            let start = doc[after..].find(&open).expect("a block") + after + open.len();
            let end = doc[start..].find("```").expect("its end") + start;
            (doc[start..end].to_string(), end)
        };
        let (toml_text, end) = block("toml", from);
        let (ini_text, end) = block("ini", end);
        let (pod_text, _) = block("ini", end);
        let a = toml(&toml_text).expect("the TOML example loads");
        let b = load("/etc/berth/services/stack.conf", &ini_text).expect("the INI example loads");
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
        let order = |s: &ServiceConfig| -> Vec<String> {
            start_order(s).iter().map(|r| r.to_string()).collect()
        };
        assert_eq!(
            order(&a),
            ["ip#1", "fs#1", "container#1", "container#2", "container#3"]
        );
        assert_eq!(order(&a), order(&b));
        for (x, y) in a.resources.iter().zip(&b.resources) {
            assert_eq!(
                format!("{:?}", x.spec),
                format!("{:?}", y.spec),
                "{}",
                x.rid
            );
        }
        let pod = load("/etc/berth/services/pod.conf", &pod_text).expect("the pod loads");
        assert_eq!(order(&pod), ["container#0", "ip#0", "container#1"]);
    }
}

//! `[ip#N]`: its spec, its keywords and their reader.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::alias::{Alias, alias};
use crate::config::error::{ConfigError, ConfigErrorKind};
use crate::config::raw::RawValue;
use crate::config::reader::{Reader, Sink};
use crate::config::value::{Dur, is_hostname};
use crate::rid::{Kind, Rid};

/// The keywords of `[ip#N]`, mandatory ones first.
pub const KEYWORDS: &[&str] = &[
    "ipname",
    "ipdev",
    "type",
    "netmask",
    "gateway",
    "probe_timeout",
    "garp_count",
    "garp_interval",
    "netns",
    "mode",
    "nsdev",
    "container_rid",
];

/// The `type` values of `[ip#N]` berth runs; the first is the default.
pub(crate) const DRIVER_TYPES: &[&str] = &["host", "netns", "docker"];

/// The OpenSVC aliases of `[ip#N]`'s keywords.
pub(crate) const ALIASES: &[Alias] = &[
    alias(Some(Kind::Ip), "name", "ipname", "v3 name"),
    alias(Some(Kind::Ip), "dev", "ipdev", "v3 name"),
];

/// A netmask: a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Prefix(pub u8);

/// `[ip#N]`: an address on an interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpSpec {
    /// An address, or a name resolved through the system resolver.
    pub ipname: String,
    /// The interface.
    pub ipdev: String,
    /// The prefix length; when absent, taken from an address the device has on that subnet.
    pub netmask: Option<Prefix>,
    /// A default gateway to add with the address.
    pub gateway: Option<IpAddr>,
    /// How long the ARP conflict probe listens for an answer.
    pub probe_timeout: Duration,
    /// How many gratuitous ARP packets announce the address.
    pub garp_count: u32,
    /// The interval between gratuitous ARP packets.
    pub garp_interval: Duration,
    /// `type = netns`: the address goes in the network namespace of a container of the service,
    /// not on the node's interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<NetnsIp>,
}

/// `[ip#N] type = netns` (OpenSVC v2): an interface in a container's network namespace, from
/// `ipdev` on the node, carrying the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetnsIp {
    /// `netns`: the container whose namespace gets the address (`container#0`).
    pub container: Rid,
    /// `mode`: how the interface is made from `ipdev`; `None`: bridge when `ipdev` is a
    /// bridge, else macvlan (OpenSVC's default).
    pub mode: Option<NetnsMode>,
    /// `nsdev`: the interface's name in the namespace; default the first free `eth<N>`.
    pub nsdev: Option<String>,
}

/// `mode` of a netns ip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetnsMode {
    /// A veth pair: one end a port of the bridge `ipdev`, the other in the namespace.
    Bridge,
    /// A macvlan (bridge mode) on `ipdev`, moved into the namespace.
    Macvlan,
}

impl NetnsMode {
    /// The keyword values.
    pub const CHOICES: &'static [(&'static str, NetnsMode)] = &[
        ("bridge", NetnsMode::Bridge),
        ("macvlan", NetnsMode::Macvlan),
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            NetnsMode::Bridge => "bridge",
            NetnsMode::Macvlan => "macvlan",
        }
    }
}

/// An interface name as the kernel allows it.
fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 16
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// A netmask as a prefix length (`24`) or a dotted IPv4 mask (`255.255.255.0`).
pub fn parse_netmask(s: &str) -> Option<Prefix> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 128).then_some(Prefix(n));
    }
    ipnet::ipv4_mask_to_prefix(s.parse().ok()?).ok().map(Prefix)
}

/// `[ip#N] type`: `host` (the default: the node's interface) or `netns` (OpenSVC v2; `docker`
/// is its old name): the address in a container's network namespace.
fn read_ip_netns(r: &mut Reader<'_>) -> Result<Option<NetnsIp>, ConfigError> {
    let ty = r.string("type")?;
    match ty.as_deref().map(str::trim) {
        None | Some("host") => {
            for key in ["netns", "mode", "nsdev", "container_rid"] {
                if r.entries.contains_key(key) {
                    return Err(r.bad(
                        key,
                        &RawValue::Str(key.to_string()),
                        "only an ip of type netns takes it (the address would go on the node's \
                         interface, not in the container)",
                    ));
                }
            }
            Ok(None)
        }
        Some("netns" | "docker") => {
            let text = match (r.string("netns")?, r.string("container_rid")?) {
                (Some(a), _) | (None, Some(a)) => a,
                (None, None) => return Err(r.error("netns", ConfigErrorKind::MissingKey)),
            };
            let container = match text.trim().parse::<Rid>() {
                Ok(rid) if rid.kind == Kind::Container => rid,
                _ => {
                    return Err(r.bad(
                        "netns",
                        &RawValue::Str(text),
                        "expected the rid of a container of the service (container#0)",
                    ));
                }
            };
            let mode = match r.string("mode")? {
                None => None,
                Some(m) => match NetnsMode::CHOICES
                    .iter()
                    .find(|(n, _)| *n == m.trim().to_ascii_lowercase())
                {
                    Some(&(_, mode)) => Some(mode),
                    None => {
                        return Err(r.bad(
                            "mode",
                            &RawValue::Str(m),
                            "berth makes netns interfaces in mode bridge or macvlan \
                             (dedicated, ipvlan-l2, ipvlan-l3 and ovs are not supported)",
                        ));
                    }
                },
            };
            let nsdev = r.string("nsdev")?;
            if let Some(d) = &nsdev
                && !is_ifname(d)
            {
                return Err(r.bad(
                    "nsdev",
                    &RawValue::Str(d.clone()),
                    "expected an interface name",
                ));
            }
            Ok(Some(NetnsIp {
                container,
                mode,
                nsdev,
            }))
        }
        Some(other) => Err(r.bad(
            "type",
            &RawValue::Str(other.to_string()),
            "ip type is not supported (berth has: host, netns)",
        )),
    }
}

fn ipname(r: &mut Reader<'_>) -> Result<String, ConfigError> {
    let ipname = r.required("ipname")?;
    if ipname.parse::<IpAddr>().is_err() && !is_hostname(&ipname) {
        return Err(r.bad(
            "ipname",
            &RawValue::Str(ipname),
            "expected an IPv4 or IPv6 address, or a host name (a name is not all digits)",
        ));
    }
    Ok(ipname)
}

fn netmask(r: &mut Reader<'_>, ipname: Option<&str>) -> Result<Option<Prefix>, ConfigError> {
    let expected = "expected a prefix length (0-128) or a dotted mask";
    let netmask = match r.take("netmask") {
        None => None,
        Some(v @ RawValue::Int(n)) => match u8::try_from(*n) {
            Ok(n) if n <= 128 => Some(Prefix(n)),
            _ => return Err(r.bad("netmask", v, expected)),
        },
        Some(v @ RawValue::Str(s)) => {
            Some(parse_netmask(s).ok_or_else(|| r.bad("netmask", v, expected))?)
        }
        Some(v) => return Err(r.bad("netmask", v, expected)),
    };
    if let (Some(Prefix(p)), Some(Ok(IpAddr::V4(_)))) = (netmask, ipname.map(str::parse::<IpAddr>))
        && p > 32
    {
        return Err(r.bad(
            "netmask",
            &RawValue::Int(i64::from(p)),
            "an IPv4 prefix is at most 32",
        ));
    }
    Ok(netmask)
}

pub(crate) fn read(r: &mut Reader<'_>, e: &mut Sink<'_>) -> Option<IpSpec> {
    // `type` is checked against `compat::driver_types` before; this reads host or netns.
    let netns = e.ok(read_ip_netns(r));
    let ipname = e.ok(ipname(r));
    let ipdev = e.ok(r.required("ipdev").and_then(|d| {
        if is_ifname(&d) {
            Ok(d)
        } else {
            Err(r.bad("ipdev", &RawValue::Str(d), "expected an interface name"))
        }
    }));
    let netmask = e.ok(netmask(r, ipname.as_deref()));
    let gateway = e.ok(r.string("gateway").and_then(|g| match g {
        None => Ok(None),
        Some(g) => g.parse().map(Some).map_err(|_| {
            r.bad(
                "gateway",
                &RawValue::Str(g.clone()),
                "expected an IP address",
            )
        }),
    }));
    let probe_timeout = e.ok(r.duration("probe_timeout", Duration::from_millis(300)));
    let garp_count = e.ok(r.integer("garp_count", 0, 100));
    let garp_interval = e.ok(r.duration("garp_interval", Duration::from_millis(100)));
    Some(IpSpec {
        ipname: ipname?,
        ipdev: ipdev?,
        netmask: netmask?,
        gateway: gateway?,
        probe_timeout: probe_timeout?,
        garp_count: garp_count?.map_or(3, |n| u32::try_from(n).unwrap_or(100)),
        garp_interval: garp_interval?,
        netns: netns?,
    })
}

/// `[ip#N]` as `print config` writes it.
#[derive(Serialize)]
pub(crate) struct IpView<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    typ: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nsdev: Option<&'a str>,
    ipname: &'a str,
    ipdev: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    netmask: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    probe_timeout: Dur,
    garp_count: u32,
    garp_interval: Dur,
}

/// The `print config` view of a spec.
pub(crate) fn view(ip: &IpSpec) -> IpView<'_> {
    let ns = ip.netns.as_ref();
    IpView {
        typ: ns.map(|_| "netns"),
        netns: ns.map(|n| n.container.to_string()),
        mode: ns.and_then(|n| n.mode).map(NetnsMode::as_str),
        nsdev: ns.and_then(|n| n.nsdev.as_deref()),
        ipname: &ip.ipname,
        ipdev: &ip.ipdev,
        netmask: ip.netmask.map(|p| p.0),
        gateway: ip.gateway.map(|g| g.to_string()),
        probe_timeout: Dur(ip.probe_timeout),
        garp_count: ip.garp_count,
        garp_interval: Dur(ip.garp_interval),
    }
}

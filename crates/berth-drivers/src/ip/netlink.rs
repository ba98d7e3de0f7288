//! A small synchronous rtnetlink client: links, addresses and default routes.
//!
//! The socket is opened by [`Netlink::open`] on the calling thread, so it belongs to that
//! thread's network namespace (a test thread that did `setns` talks to its namespace). No async
//! runtime is involved: every request is one `send` and the `recv`s of its answer.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage, Prop};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The largest datagram a dump answer uses (the kernel caps them well below this).
const RECV_BUF: usize = 64 * 1024;

/// The bound on waiting for one answer of the kernel.
const RECV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A network interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub index: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// An Ethernet-like device with a 6-byte hardware address (ARP applies).
    pub ether: bool,
    /// The hardware address.
    pub mac: Vec<u8>,
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// The interface index.
    pub index: u32,
    /// The local address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
    /// Duplicate address detection still running (IPv6).
    pub tentative: bool,
    /// Duplicate address detection failed (IPv6).
    pub dadfailed: bool,
}

/// A default route (`0.0.0.0/0` or `::/0`) of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    /// Its gateway, if any.
    pub gateway: Option<IpAddr>,
    /// Its output interface, if any.
    pub oif: Option<u32>,
}

/// An rtnetlink socket of the calling thread's network namespace.
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

fn bad_data(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Netlink {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_ext_ack(true).ok();
        // The kernel answers at once; a lost answer must not hang the action: a `recv` past
        // this bound fails with EAGAIN.
        let tv = nix::sys::time::TimeVal::new(RECV_TIMEOUT.as_secs().try_into().unwrap_or(10), 0);
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(io::Error::from)?;
        Ok(Netlink { sock, seq: 0 })
    }

    /// Send one request and collect the messages of its answer. A dump ends with `NLMSG_DONE`;
    /// any other request is sent with `NLM_F_ACK` and ends with the kernel's ack. A negative
    /// errno in the answer becomes that OS error.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        req.header.sequence_number = seq;
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;

        let mut out = Vec::new();
        let mut rbuf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        loop {
            rbuf.clear();
            let n = match self.sock.recv(&mut rbuf, 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no netlink answer within {}s", RECV_TIMEOUT.as_secs()),
                    ));
                }
                Err(e) => return Err(e),
            };
            if n > rbuf.len() {
                return Err(bad_data("netlink answer truncated"));
            }
            let mut off = 0;
            while off < rbuf.len() {
                let chunk = &rbuf[off..];
                let len = NetlinkBuffer::new_checked(chunk)
                    .map_err(|e| bad_data(format!("bad netlink message: {e}")))?
                    .length() as usize;
                let len = len.min(chunk.len());
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&chunk[..len])
                    .map_err(|e| bad_data(format!("bad netlink message: {e}")))?;
                // Messages are 4-byte aligned in a datagram.
                off += (len + 3) & !3;
                if len == 0 {
                    return Err(bad_data("empty netlink message"));
                }
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    /// The interface named `name`, or `None` when there is none.
    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let answer = match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(a) => a,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(answer.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(parse_link(&l).1),
            _ => None,
        }))
    }

    /// Every interface, with its names (its name first, then its alternative names: the
    /// kernel finds a link by either).
    pub fn links(&mut self) -> io::Result<Vec<(Vec<String>, Link)>> {
        let answer = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(&l)),
                _ => None,
            })
            .collect())
    }

    /// Every address of interface `index` in `family`'s address family.
    pub fn addrs(&mut self, index: u32, v6: bool) -> io::Result<Vec<Addr>> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(v6);
        msg.header.index = index;
        let answer = self.request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => parse_addr(&a),
                _ => None,
            })
            .filter(|a| a.addr.is_ipv6() == v6)
            .collect())
    }

    /// Every address of every interface, both families, in one dump.
    pub fn all_addrs(&mut self) -> io::Result<Vec<Addr>> {
        let answer = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => parse_addr(&a),
                _ => None,
            })
            .collect())
    }

    /// Add `addr/prefix` on interface `index`. `nodad` skips IPv6 duplicate address detection.
    pub fn add_addr(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
        nodad: bool,
    ) -> io::Result<()> {
        let mut msg = addr_message(index, addr, prefix);
        msg.header.scope = AddressScope::Universe;
        if let IpAddr::V4(v4) = addr
            && prefix < 31
        {
            let brd = u32::from(v4) | u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            msg.attributes
                .push(AddressAttribute::Broadcast(std::net::Ipv4Addr::from(brd)));
        }
        if nodad {
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Remove `addr/prefix` from interface `index`.
    pub fn del_addr(&mut self, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
        let msg = addr_message(index, addr, prefix);
        self.request(RouteNetlinkMessage::DelAddress(msg), 0)
            .map(drop)
    }

    /// The default routes of the main table in one address family.
    pub fn default_routes(&mut self, v6: bool) -> io::Result<Vec<DefaultRoute>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(v6);
        let answer = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        Ok(answer
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r)
                    if r.header.destination_prefix_length == 0
                        && r.header.kind == RouteType::Unicast
                        && table(&r) == u32::from(RouteHeader::RT_TABLE_MAIN) =>
                {
                    Some(DefaultRoute {
                        gateway: r.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => route_ip(g),
                            _ => None,
                        }),
                        oif: r.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Oif(i) => Some(*i),
                            _ => None,
                        }),
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Add a default route via `gateway` out of interface `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: IpAddr) -> io::Result<()> {
        let msg = default_route_message(index, gateway);
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Remove the default route via `gateway` out of interface `index`.
    pub fn del_default_route(&mut self, index: u32, gateway: IpAddr) -> io::Result<()> {
        let mut msg = default_route_message(index, gateway);
        msg.header.protocol = RouteProtocol::Unspec;
        self.request(RouteNetlinkMessage::DelRoute(msg), 0)
            .map(drop)
    }
}

fn family(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

fn addr_message(index: u32, addr: IpAddr, prefix: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(addr.is_ipv6());
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    if addr.is_ipv4() {
        msg.attributes.push(AddressAttribute::Local(addr));
    }
    msg.attributes.push(AddressAttribute::Address(addr));
    msg
}

/// The names and the state of the interface an `RTM_NEWLINK` message describes.
fn parse_link(l: &LinkMessage) -> (Vec<String>, Link) {
    let mut names = Vec::new();
    let mut alt = Vec::new();
    let mut mac = Vec::new();
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => names.push(n.clone()),
            LinkAttribute::Address(m) => mac = m.clone(),
            LinkAttribute::PropList(props) => alt.extend(props.iter().filter_map(|p| match p {
                Prop::AltIfName(n) => Some(n.clone()),
                _ => None,
            })),
            _ => {}
        }
    }
    names.extend(alt);
    let link = Link {
        index: l.header.index,
        up: l.header.flags.contains(LinkFlags::Up),
        lower_up: l.header.flags.contains(LinkFlags::LowerUp),
        ether: l.header.link_layer_type == LinkLayerType::Ether && mac.len() == 6,
        mac,
    };
    (names, link)
}

/// The address an `RTM_NEWADDR` message describes: `IFA_LOCAL` when present (it differs from
/// `IFA_ADDRESS` on point-to-point links), else `IFA_ADDRESS`.
fn parse_addr(a: &AddressMessage) -> Option<Addr> {
    let local = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    let flags = a
        .attributes
        .iter()
        .find_map(|x| match x {
            AddressAttribute::Flags(f) => Some(*f),
            _ => None,
        })
        .unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(a.header.flags.bits())));
    Some(Addr {
        index: a.header.index,
        addr: local.or(address)?,
        prefix: a.header.prefix_len,
        tentative: flags.contains(AddressFlags::Tentative),
        dadfailed: flags.contains(AddressFlags::Dadfailed),
    })
}

fn table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn default_route_message(index: u32, gateway: IpAddr) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family(gateway.is_ipv6());
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes
        .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    msg.attributes.push(RouteAttribute::Oif(index));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_addr_prefers_local_and_reads_flags() {
        let mut m = AddressMessage::default();
        m.header.index = 3;
        m.header.prefix_len = 24;
        m.attributes
            .push(AddressAttribute::Address("10.0.0.2".parse().unwrap()));
        m.attributes
            .push(AddressAttribute::Local("10.0.0.1".parse().unwrap()));
        let a = parse_addr(&m).unwrap();
        assert_eq!(a.addr, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (a.index, a.prefix, a.tentative, a.dadfailed),
            (3, 24, false, false)
        );

        let mut m = AddressMessage::default();
        m.attributes
            .push(AddressAttribute::Address("fd00::1".parse().unwrap()));
        m.attributes.push(AddressAttribute::Flags(
            AddressFlags::Tentative | AddressFlags::Dadfailed,
        ));
        let a = parse_addr(&m).unwrap();
        assert!(a.tentative && a.dadfailed);

        // Without IFA_FLAGS, the header's 8-bit flags count.
        let mut m = AddressMessage::default();
        m.header.flags = AddressHeaderFlags::Tentative;
        m.attributes
            .push(AddressAttribute::Address("fd00::1".parse().unwrap()));
        assert!(parse_addr(&m).unwrap().tentative);

        assert!(parse_addr(&AddressMessage::default()).is_none());
    }

    #[test]
    fn answers_are_waited_for_within_a_bound() {
        let nl = Netlink::open().unwrap();
        let tv = nix::sys::socket::getsockopt(&nl.sock, nix::sys::socket::sockopt::ReceiveTimeout)
            .unwrap();
        assert_eq!(tv.tv_sec(), 10);
    }

    #[test]
    fn messages_carry_what_the_kernel_needs() {
        let m = addr_message(7, "192.0.2.1".parse().unwrap(), 24);
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!((m.header.index, m.header.prefix_len), (7, 24));
        assert_eq!(m.attributes.len(), 2);
        let m = addr_message(7, "fd00::1".parse().unwrap(), 64);
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert_eq!(m.attributes.len(), 1);
        let r = default_route_message(7, "192.0.2.254".parse().unwrap());
        assert_eq!(r.header.table, RouteHeader::RT_TABLE_MAIN);
        assert!(r.attributes.contains(&RouteAttribute::Oif(7)));
    }
}

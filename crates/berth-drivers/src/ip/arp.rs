//! Native ARP over an `AF_PACKET` socket: the RFC 5227 conflict probe and gratuitous ARP
//! announcements. No `arping` tool (two incompatible ones exist, with whole-second timeouts).
//!
//! The socket is a cooked (`SOCK_DGRAM`) packet socket bound to one interface and to
//! `ETH_P_ARP`: the kernel writes and strips the Ethernet header, we read and write the 28-byte
//! ARP payload. It is opened on the calling thread, so it belongs to that thread's network
//! namespace.
//!
//! Many services start at once in a failover (a thousand on one node): a probe's socket gets a
//! classic BPF filter that lets in only the ARP packets about its address (so a thousand probe
//! windows at once do not each wake for every ARP on the link).

use std::io::{self, IoSliceMut};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike, bind, recvmsg, sendto,
    socket,
};

/// An Ethernet hardware address.
pub type Mac = [u8; 6];

const ARP_LEN: usize = 28;
const ARPHRD_ETHER: u16 = 1;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;
const BROADCAST: Mac = [0xff; 6];
/// How many probes go out during one probe window (RFC 5227 sends 3).
const PROBES: u32 = 3;

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// `1` request, `2` reply.
    pub op: u16,
    /// Sender hardware address.
    pub sha: Mac,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: Mac,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

impl ArpPacket {
    /// An RFC 5227 probe for `addr`: a request from `0.0.0.0`, target hardware address zero.
    pub fn probe(mac: Mac, addr: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: OP_REQUEST,
            sha: mac,
            spa: Ipv4Addr::UNSPECIFIED,
            tha: [0; 6],
            tpa: addr,
        }
    }

    /// An RFC 5227 announcement (gratuitous ARP): a request whose sender and target protocol
    /// addresses are both `addr`.
    pub fn announce(mac: Mac, addr: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: OP_REQUEST,
            sha: mac,
            spa: addr,
            tha: [0; 6],
            tpa: addr,
        }
    }

    /// The wire form.
    pub fn encode(&self) -> [u8; ARP_LEN] {
        let mut b = [0u8; ARP_LEN];
        b[0..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
        b[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
        b[4] = 6;
        b[5] = 4;
        b[6..8].copy_from_slice(&self.op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sha);
        b[14..18].copy_from_slice(&self.spa.octets());
        b[18..24].copy_from_slice(&self.tha);
        b[24..28].copy_from_slice(&self.tpa.octets());
        b
    }

    /// Parse an IPv4-over-Ethernet ARP payload; anything else is `None`.
    pub fn decode(b: &[u8]) -> Option<ArpPacket> {
        let b: &[u8; ARP_LEN] = b.get(..ARP_LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let mac_at = |i: usize| -> Mac { [b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5]] };
        let ip_at = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
        if u16_at(0) != ARPHRD_ETHER || u16_at(2) != ETH_P_IP || b[4] != 6 || b[5] != 4 {
            return None;
        }
        Some(ArpPacket {
            op: u16_at(6),
            sha: mac_at(8),
            spa: ip_at(14),
            tha: mac_at(18),
            tpa: ip_at(24),
        })
    }

    /// Whether this packet, seen while probing for `addr` from `ours`, shows a conflict
    /// (RFC 5227 2.1.1): any ARP whose sender is `addr`, or another host's probe for `addr`.
    /// Returns the MAC of the other host.
    pub fn conflict(&self, addr: Ipv4Addr, ours: Mac) -> Option<Mac> {
        if self.sha == ours || !(self.op == OP_REQUEST || self.op == OP_REPLY) {
            return None;
        }
        let sender_is_addr = self.spa == addr;
        let other_probe = self.op == OP_REQUEST && self.spa.is_unspecified() && self.tpa == addr;
        (sender_is_addr || other_probe).then_some(self.sha)
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An `AF_PACKET` socket bound to one interface, for ARP.
#[derive(Debug)]
pub struct ArpSocket {
    fd: OwnedFd,
    ifindex: u32,
}

/// The link-level address of `dest` on interface `ifindex`, for ARP.
fn link_addr(ifindex: u32, dest: Mac) -> io::Result<LinkAddr> {
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(&dest);
    let sa = libc::sockaddr_ll {
        sll_family: libc::c_ushort::try_from(libc::AF_PACKET)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        sll_protocol: ETH_P_ARP.to_be(),
        sll_ifindex: i32::try_from(ifindex).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "interface index too large")
        })?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr,
    };
    let len = libc::socklen_t::try_from(std::mem::size_of_val(&sa)).ok();
    // SAFETY: `sa` is a whole, initialised sockaddr_ll and `len` its size; nix copies it.
    unsafe { LinkAddr::from_raw((&raw const sa).cast::<libc::sockaddr>(), len) }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a link-level address"))
}

impl ArpSocket {
    /// Open a socket that sends on interface `ifindex`; `listen` also binds it to the
    /// interface to receive ARP.
    ///
    /// The socket is created with protocol 0 (no packet hook) and, when it listens, gets its
    /// protocol at `bind`: creating it with `ETH_P_ARP` and then binding would make the kernel
    /// unhook and rehook it, which waits for an RCU grace period (about 10 ms here). Closing any
    /// packet socket waits for one such period too.
    pub fn open(ifindex: u32, listen: bool) -> io::Result<ArpSocket> {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        if listen {
            bind(fd.as_raw_fd(), &link_addr(ifindex, [0; 6])?)?;
        }
        Ok(ArpSocket { fd, ifindex })
    }

    /// Open a socket on interface `ifindex` that receives only the ARP packets about `addr`
    /// (sent by it, or asking for it: what [`ArpPacket::conflict`] looks at), for a probe.
    /// The filter is attached before the bind: nothing else is ever queued on it.
    pub fn open_probe(ifindex: u32, addr: Ipv4Addr) -> io::Result<ArpSocket> {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        attach_filter(&fd, &about(addr))?;
        bind(fd.as_raw_fd(), &link_addr(ifindex, [0; 6])?)?;
        Ok(ArpSocket { fd, ifindex })
    }

    /// Broadcast one ARP packet.
    pub fn send(&self, pkt: &ArpPacket) -> io::Result<()> {
        let to = link_addr(self.ifindex, BROADCAST)?;
        sendto(self.fd.as_raw_fd(), &pkt.encode(), &to, MsgFlags::empty())?;
        Ok(())
    }

    /// Wait up to `timeout` for one incoming ARP packet (our own outgoing ones are skipped).
    fn recv(&self, timeout: Duration) -> io::Result<Option<ArpPacket>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = if left.is_zero() {
                PollTimeout::ZERO
            } else {
                PollTimeout::try_from(left.max(Duration::from_millis(1)))
                    .unwrap_or(PollTimeout::MAX)
            };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(0) => return Ok(None),
                Ok(_) => {}
            }
            let mut buf = [0u8; 128];
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (n, from) = match recvmsg::<LinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                None,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
                Ok(msg) => (msg.bytes, msg.address),
            };
            if from.is_some_and(|a| a.pkttype() == libc::PACKET_OUTGOING) {
                continue;
            }
            if let Some(pkt) = ArpPacket::decode(&buf[..n.min(buf.len())]) {
                return Ok(Some(pkt));
            }
        }
    }

    /// Probe for `addr` during `window` (RFC 5227 probes, spread over the window, the first at
    /// once). Returns the MAC of a host that claims `addr`, or `None` when nobody answered.
    pub fn probe(&self, mac: Mac, addr: Ipv4Addr, window: Duration) -> io::Result<Option<Mac>> {
        let start = Instant::now();
        let step = window / PROBES;
        let probe = ArpPacket::probe(mac, addr);
        let mut sent = 0;
        loop {
            let elapsed = start.elapsed();
            if elapsed >= window {
                return Ok(None);
            }
            if sent < PROBES && elapsed >= step * sent {
                self.send(&probe)?;
                sent += 1;
            }
            let next_probe = if sent < PROBES { step * sent } else { window };
            let wait = next_probe.min(window).saturating_sub(start.elapsed());
            if let Some(pkt) = self.recv(wait)?
                && let Some(other) = pkt.conflict(addr, mac)
            {
                return Ok(Some(other));
            }
        }
    }

    /// Send `count` announcements of `addr`, `interval` apart, the first at once. The caller
    /// waits through the gaps: announcements sent later from another thread could outlive the
    /// address (a stop right after the start) and make the next owner's probe see a conflict.
    pub fn announce(
        &self,
        mac: Mac,
        addr: Ipv4Addr,
        count: u32,
        interval: Duration,
    ) -> io::Result<()> {
        let pkt = ArpPacket::announce(mac, addr);
        for i in 0..count {
            if i > 0 {
                std::thread::sleep(interval);
            }
            self.send(&pkt)?;
        }
        Ok(())
    }
}

// Classic BPF, as in <linux/filter.h>.
/// BPF_LD | BPF_W | BPF_ABS.
const BPF_LD_W_ABS: u16 = 0x20;
/// BPF_JMP | BPF_JEQ | BPF_K.
const BPF_JEQ_K: u16 = 0x15;
/// BPF_RET | BPF_K.
const BPF_RET_K: u16 = 0x06;
/// Offsets in the ARP payload (a cooked socket's filter sees the packet from the ARP header).
const SPA_AT: u32 = 14;
const TPA_AT: u32 = 24;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A filter that accepts an ARP packet whose sender or target protocol address is `addr`.
fn about(addr: Ipv4Addr) -> [libc::sock_filter; 6] {
    let a = u32::from(addr);
    [
        insn(BPF_LD_W_ABS, 0, 0, SPA_AT),
        insn(BPF_JEQ_K, 2, 0, a),
        insn(BPF_LD_W_ABS, 0, 0, TPA_AT),
        insn(BPF_JEQ_K, 0, 1, a),
        insn(BPF_RET_K, 0, 0, 0xffff),
        insn(BPF_RET_K, 0, 0, 0),
    ]
}

fn attach_filter(fd: &OwnedFd, prog: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: prog.as_ptr().cast_mut(),
    };
    let len = libc::socklen_t::try_from(std::mem::size_of_val(&fprog))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies the program.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: Mac = [2, 0, 0, 0, 0, 1];
    const THEIRS: Mac = [2, 0, 0, 0, 0, 2];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn probe_is_rfc5227() {
        let b = ArpPacket::probe(OURS, ip("192.0.2.10")).encode();
        assert_eq!(
            b,
            [
                0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2,
                10
            ]
        );
        let a = ArpPacket::announce(OURS, ip("192.0.2.10"));
        assert_eq!(
            (a.spa, a.tpa, a.op),
            (ip("192.0.2.10"), ip("192.0.2.10"), 1)
        );
    }

    #[test]
    fn decode_round_trips_and_refuses_other_protocols() {
        let p = ArpPacket {
            op: 2,
            sha: THEIRS,
            spa: ip("10.1.2.3"),
            tha: OURS,
            tpa: ip("0.0.0.0"),
        };
        assert_eq!(ArpPacket::decode(&p.encode()), Some(p));
        let mut b = p.encode();
        b[2] = 0x86; // not IPv4
        assert_eq!(ArpPacket::decode(&b), None);
        assert_eq!(ArpPacket::decode(&p.encode()[..20]), None);
    }

    #[test]
    fn conflicts_per_rfc5227() {
        let addr = ip("192.0.2.10");
        // The owner's reply to our probe.
        let reply = ArpPacket {
            op: 2,
            sha: THEIRS,
            spa: addr,
            tha: OURS,
            tpa: Ipv4Addr::UNSPECIFIED,
        };
        assert_eq!(reply.conflict(addr, OURS), Some(THEIRS));
        // Another host probing for the same address at the same time.
        assert_eq!(
            ArpPacket::probe(THEIRS, addr).conflict(addr, OURS),
            Some(THEIRS)
        );
        // The owner announcing it.
        assert_eq!(
            ArpPacket::announce(THEIRS, addr).conflict(addr, OURS),
            Some(THEIRS)
        );
        // Our own packets, and unrelated traffic, are not conflicts.
        assert_eq!(ArpPacket::probe(OURS, addr).conflict(addr, OURS), None);
        assert_eq!(
            ArpPacket::announce(THEIRS, ip("192.0.2.11")).conflict(addr, OURS),
            None
        );
        let who_has = ArpPacket {
            op: 1,
            sha: THEIRS,
            spa: ip("192.0.2.1"),
            tha: [0; 6],
            tpa: addr,
        };
        assert_eq!(who_has.conflict(addr, OURS), None);
    }

    #[test]
    fn mac_is_printed_like_ip_link() {
        assert_eq!(
            fmt_mac(&[0x02, 0xab, 0, 1, 0x10, 0xff]),
            "02:ab:00:01:10:ff"
        );
    }
}

//! The network watcher: the kernel's own view of connectivity over rtnetlink, so it works
//! with systemd-networkd, NetworkManager, ConnMan or none of them.
//!
//! Online means a usable default route exists, IPv4 or IPv6, in any routing table: a
//! unicast route with a prefix length of 0 whose link is not down. The watcher dumps the
//! routes at start and again after every route, address or link notification (the
//! groups `RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_ROUTE`, `RTNLGRP_IPV4_IFADDR`,
//! `RTNLGRP_IPV6_IFADDR`, `RTNLGRP_LINK`; rtnetlink(7)), and tells the runtime when the
//! answer changes. NetworkManager's or networkd's "online" state is not consulted: a
//! route is what a request needs, and it is there with any network manager.
//!
//! The protocol is spoken directly over two `AF_NETLINK` sockets (nix, tokio's `AsyncFd`):
//! only the fixed `nlmsghdr` and `rtmsg` headers are read, so no netlink crate is linked
//! (rtnetlink and netlink-packet-route were ~420 KiB of code; docs/benchmarks.md).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use tokio::io::unix::AsyncFd;
use tracing::{debug, warn};

use crate::runtime::Runtime;

// From linux/netlink.h and linux/rtnetlink.h.
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTMSG_LEN: usize = 12;
const RTN_UNICAST: u8 = 1;
const RTNH_F_LINKDOWN: u32 = 16;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR |
/// RTMGRP_IPV6_ROUTE`.
const GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

/// Whether the `rtmsg` header `rtmsg` (the payload of an `RTM_NEWROUTE`) is a default
/// route a request could leave by.
pub(crate) fn is_usable_default(rtmsg: &[u8]) -> bool {
    let Some(header) = rtmsg.get(..RTMSG_LEN) else {
        return false;
    };
    let flags = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
    header[1] == 0 && header[7] == RTN_UNICAST && flags & RTNH_F_LINKDOWN == 0
}

/// One netlink datagram's messages: `(type, payload)`, up to a truncated one.
fn messages(mut datagram: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let header = datagram.get(..NLMSG_HDRLEN)?;
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        let message = datagram.get(NLMSG_HDRLEN..len.max(NLMSG_HDRLEN))?;
        // Messages are 4-byte aligned within the datagram.
        datagram = datagram.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, message))
    })
}

/// A non-blocking `NETLINK_ROUTE` socket, bound to the multicast `groups`.
#[derive(Debug)]
struct Socket {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl Socket {
    fn open(groups: u32) -> io::Result<Socket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
        // `new` is deprecated because a borrowed fd could be closed while registered; here
        // the AsyncFd owns the OwnedFd, so the fd lives exactly as long as the registration
        // (as in src/timer.rs).
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Socket {
            fd,
            // The kernel's dump datagrams are at most a page or 32 KiB.
            buf: vec![0; 64 * 1024],
        })
    }

    /// The next datagram's length in `buf`.
    async fn recv(&mut self) -> io::Result<usize> {
        loop {
            let mut ready = self.fd.readable().await?;
            let buf = &mut self.buf;
            if let Ok(result) = ready
                .try_io(|fd| recv(fd.as_raw_fd(), buf, MsgFlags::empty()).map_err(io::Error::from))
            {
                return result;
            }
        }
    }

    /// Drops what is queued without waiting; how many datagrams that was.
    fn drain(&mut self) -> usize {
        let fd = self.fd.get_ref().as_raw_fd();
        let mut n = 0;
        while recv(fd, &mut self.buf, MsgFlags::MSG_DONTWAIT).is_ok() {
            n += 1;
        }
        n
    }

    /// Whether the kernel has a usable default route now: dumps the IPv4, then the IPv6
    /// routing tables.
    async fn has_default_route(&mut self, seq: &mut u32) -> io::Result<bool> {
        for family in [AF_INET, AF_INET6] {
            *seq = seq.wrapping_add(1);
            let mut request = Vec::with_capacity(NLMSG_HDRLEN + RTMSG_LEN);
            request.extend(((NLMSG_HDRLEN + RTMSG_LEN) as u32).to_ne_bytes());
            request.extend(RTM_GETROUTE.to_ne_bytes());
            request.extend((NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
            request.extend(seq.to_ne_bytes());
            request.extend(0u32.to_ne_bytes());
            request.push(family);
            request.extend([0; RTMSG_LEN - 1]);
            send(self.fd.get_ref().as_raw_fd(), &request, MsgFlags::empty())?;
            // Read the whole dump: an abandoned one would answer the next request.
            let mut found = false;
            'dump: loop {
                let len = self.recv().await?;
                for (kind, payload) in messages(&self.buf[..len]) {
                    match kind {
                        RTM_NEWROUTE => found |= is_usable_default(payload),
                        NLMSG_DONE => break 'dump,
                        NLMSG_ERROR => {
                            let errno = payload
                                .get(..4)
                                .map_or(0, |e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
                            if errno != 0 {
                                return Err(Errno::from_raw(-errno).into());
                            }
                        }
                        _ => {}
                    }
                }
            }
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Follows the kernel's routes for the life of the daemon and feeds every product's
/// runtime. Where netlink cannot be used (a sandbox without `AF_NETLINK`), it warns once
/// and leaves the runtimes online, as uid2d was before it watched the network. Never
/// returns.
pub async fn watch(runtimes: Vec<Arc<Runtime>>) -> ! {
    let set_online = |online: bool| {
        let runtimes = runtimes.clone();
        async move {
            for runtime in runtimes {
                runtime.set_online(online).await;
            }
        }
    };
    let why = match Socket::open(0).and_then(|dump| Ok((dump, Socket::open(GROUPS)?))) {
        Ok((mut dump, mut notifications)) => {
            let mut seq = 0;
            loop {
                match dump.has_default_route(&mut seq).await {
                    Ok(online) => set_online(online).await,
                    Err(e) => break e.to_string(),
                }
                match notifications.recv().await {
                    Ok(_) => {}
                    // The kernel dropped notifications: a dump catches up all the same.
                    Err(e) if e.raw_os_error() == Some(Errno::ENOBUFS as i32) => {}
                    Err(e) => break e.to_string(),
                }
                // One dump answers a burst of notifications (a link going down takes
                // its addresses and routes with it).
                let burst = 1 + notifications.drain();
                debug!(notifications = burst, "network change");
            }
        }
        Err(e) => e.to_string(),
    };
    warn!(
        error_kind = "network_watch",
        "cannot follow the network over netlink ({why}); assuming online"
    );
    set_online(true).await;
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtmsg(prefix: u8, kind: u8, flags: u32) -> Vec<u8> {
        let mut m = vec![AF_INET, prefix, 0, 0, 254, 3, 0, kind];
        m.extend(flags.to_ne_bytes());
        m
    }

    #[test]
    fn only_a_unicast_default_route_whose_link_is_up_is_online() {
        assert!(is_usable_default(&rtmsg(0, RTN_UNICAST, 0)));
        assert!(!is_usable_default(&rtmsg(24, RTN_UNICAST, 0)));
        // RTN_UNREACHABLE
        assert!(!is_usable_default(&rtmsg(0, 7, 0)));
        assert!(!is_usable_default(&rtmsg(0, RTN_UNICAST, RTNH_F_LINKDOWN)));
        assert!(!is_usable_default(&[0; 4]));
    }

    #[test]
    fn a_datagram_splits_into_its_aligned_messages() {
        let mut datagram = Vec::new();
        for (kind, payload) in [(RTM_NEWROUTE, &[1u8, 2, 3][..]), (NLMSG_DONE, &[][..])] {
            datagram.extend(((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
            datagram.extend(kind.to_ne_bytes());
            datagram.extend([0; 10]);
            datagram.extend(payload);
            datagram.resize(datagram.len().next_multiple_of(4), 0);
        }
        let parsed: Vec<_> = messages(&datagram).collect();
        assert_eq!(
            parsed,
            [(RTM_NEWROUTE, &[1u8, 2, 3][..]), (NLMSG_DONE, &[][..])]
        );
        // A header claiming more than the datagram holds ends the list.
        datagram[0] = 200;
        assert_eq!(messages(&datagram).count(), 0);
    }

    /// The real kernel, where the sandbox allows netlink: a dump completes.
    #[tokio::test]
    async fn a_route_dump_completes_where_netlink_is_available() {
        let Ok(mut dump) = Socket::open(0) else {
            return;
        };
        let mut seq = 0;
        dump.has_default_route(&mut seq).await.unwrap();
    }
}

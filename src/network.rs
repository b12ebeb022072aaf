//! The network watcher: the kernel's own view of connectivity over a route netlink socket
//! (rtnetlink(7)), so it works with systemd-networkd, NetworkManager, ConnMan or none of
//! them.
//!
//! Online means a usable default route exists, IPv4 or IPv6, in any routing table: a
//! unicast route with a prefix length of 0 whose link is not down. The watcher dumps the
//! routes at start and again after every route, address or link notification (the
//! groups `RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_ROUTE`, `RTNLGRP_IPV4_IFADDR`,
//! `RTNLGRP_IPV6_IFADDR`, `RTNLGRP_LINK`), and tells the runtime when the answer changes.
//! NetworkManager's or networkd's "online" state is not consulted: a route is what a
//! request needs, and it is there with any network manager.
//!
//! Two sockets from `netlink-sys`: one joined to the groups, whose notifications are only
//! counted, and one for the dumps. Messages are framed by `netlink-packet-core`, and of a
//! dumped route only its header (`struct rtmsg`) is parsed, by `netlink-packet-route`:
//! parsing whole `RouteNetlinkMessage`s (as `rtnetlink` does) links every parser of that
//! crate into the executable, about 590 KB on aarch64 (docs/benchmarks.md).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use netlink_packet_core::{
    DecodeError, Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::route::{RouteFlags, RouteHeader, RouteType};
use netlink_packet_route::AddressFamily;
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use nix::libc;
use tracing::{debug, warn};

use crate::device::Device;

/// The groups whose notifications start a new dump.
const GROUPS: [u32; 5] = [
    libc::RTNLGRP_IPV4_ROUTE,
    libc::RTNLGRP_IPV6_ROUTE,
    libc::RTNLGRP_IPV4_IFADDR,
    libc::RTNLGRP_IPV6_IFADDR,
    libc::RTNLGRP_LINK,
];

/// Whether `route` is a default route a request could leave by.
pub(crate) fn is_usable_default(route: &RouteHeader) -> bool {
    route.destination_prefix_length == 0
        && route.kind == RouteType::Unicast
        && !route.flags.contains(RouteFlags::Linkdown)
}

/// `RTM_GETROUTE` for every route of one address family (with `NLM_F_DUMP`).
struct GetRoutes(AddressFamily);

impl GetRoutes {
    fn header(&self) -> RouteHeader {
        RouteHeader {
            address_family: self.0,
            ..RouteHeader::default()
        }
    }
}

impl NetlinkSerializable for GetRoutes {
    fn message_type(&self) -> u16 {
        libc::RTM_GETROUTE
    }

    fn buffer_len(&self) -> usize {
        self.header().buffer_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        self.header().emit(buffer);
    }
}

/// A message of a route dump: the route's header for `RTM_NEWROUTE`, `None` for any other
/// type. The route's attributes are not parsed.
struct DumpedRoute(Option<RouteHeader>);

impl NetlinkDeserializable for DumpedRoute {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        if header.message_type == libc::RTM_NEWROUTE {
            RouteHeader::parse(payload).map(|route| Self(Some(route)))
        } else {
            Ok(Self(None))
        }
    }
}

/// The socket route dumps are asked for and read on.
struct Routes {
    socket: TokioSocket,
    sequence: u32,
}

impl Routes {
    fn open() -> io::Result<Self> {
        let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
        socket.socket_mut().bind_auto()?;
        // The kernel is port 0: `send` goes to it.
        socket.socket_ref().connect(&SocketAddr::new(0, 0))?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    /// Whether the kernel has a usable default route now.
    async fn has_default_route(&mut self) -> io::Result<bool> {
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            if self.dump(family).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Dumps the routes of `family`; whether one of them is a usable default route. Reads
    /// the whole dump: an abandoned one would answer the next request.
    async fn dump(&mut self, family: AddressFamily) -> io::Result<bool> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.sequence;
        let mut request =
            NetlinkMessage::new(header, NetlinkPayload::InnerMessage(GetRoutes(family)));
        request.finalize();
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        self.socket.send(&bytes).await?;
        let mut found = false;
        loop {
            let (datagram, _) = self.socket.recv_from_full().await?;
            if read_dump(&datagram, self.sequence, &mut found)? {
                return Ok(found);
            }
        }
    }
}

/// Reads one datagram of the dump asked with `sequence`, setting `found` when it holds a
/// usable default route; whether the dump ended in it. Messages of other sequences
/// (answers to an earlier request) are skipped.
///
/// # Errors
/// `InvalidData` for a message that cannot be parsed; the kernel's error for an
/// `NLMSG_ERROR` answer or an `NLMSG_DONE` carrying one.
fn read_dump(datagram: &[u8], sequence: u32, found: &mut bool) -> io::Result<bool> {
    let mut rest = datagram;
    while !rest.is_empty() {
        let message = NetlinkMessage::<DumpedRoute>::deserialize(rest)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // NLMSG_ALIGN: messages in a datagram start on 4-byte boundaries.
        let length = (message.header.length as usize).next_multiple_of(4);
        rest = rest.get(length..).unwrap_or_default();
        if message.header.sequence_number != sequence {
            continue;
        }
        match message.payload {
            NetlinkPayload::InnerMessage(DumpedRoute(Some(route))) => {
                *found |= is_usable_default(&route);
            }
            // A dump that failed part way ends with the error in its NLMSG_DONE.
            NetlinkPayload::Done(done) if done.code < 0 => {
                return Err(io::Error::from_raw_os_error(done.code.saturating_neg()))
            }
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
            _ => {}
        }
    }
    Ok(false)
}

/// A socket joined to [`GROUPS`].
fn subscribe() -> io::Result<TokioSocket> {
    let mut socket = TokioSocket::new(NETLINK_ROUTE)?;
    socket.socket_mut().bind_auto()?;
    for group in GROUPS {
        socket.socket_ref().add_membership(group)?;
    }
    Ok(socket)
}

/// Waits for the next notification; its content is not read (`buffer` is scratch space).
async fn next_change(socket: &TokioSocket, buffer: &mut Vec<u8>) -> io::Result<()> {
    buffer.clear();
    match socket.recv(buffer).await {
        Ok(()) => Ok(()),
        // The kernel dropped notifications (the socket's queue was full): something
        // changed, and the next dump says what.
        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why [`follow`] stopped.
enum Stopped {
    /// The sockets could not be opened: netlink is not available here.
    Unavailable(io::Error),
    /// An error after they were; `followed` if at least one dump was read before it.
    Failed { error: io::Error, followed: bool },
}

/// Test seam (fault-injection builds only): `UID2D_FAULT_NETLINK=after-first-dump` ends
/// the watcher's first following with an error once its first dump is read, to prove that
/// it follows again.
fn injected_failure(first: bool) -> bool {
    cfg!(feature = "fault-injection")
        && first
        && std::env::var("UID2D_FAULT_NETLINK").is_ok_and(|fault| fault == "after-first-dump")
}

/// Opens the sockets, then follows the routes and tells `device` until an error.
/// `first`: the daemon's first following (see [`injected_failure`]).
async fn follow(device: &Device, first: bool) -> Stopped {
    // Joined before the first dump: no change between the two is missed. A change during
    // a dump (which the kernel flags with NLM_F_DUMP_INTR) is also a notification, so the
    // next dump sees it.
    let (notifications, mut routes) = match subscribe().and_then(|n| Ok((n, Routes::open()?))) {
        Ok(sockets) => sockets,
        Err(error) => return Stopped::Unavailable(error),
    };
    let mut followed = false;
    let mut buffer = Vec::with_capacity(8192);
    let error = loop {
        let online = match routes.has_default_route().await {
            Ok(online) => online,
            Err(error) => break error,
        };
        followed = true;
        device.set_online(online).await;
        if injected_failure(first) {
            let error = io::Error::other("injected fault");
            return Stopped::Failed { error, followed };
        }
        if let Err(error) = next_change(&notifications, &mut buffer).await {
            break error;
        }
        // One dump answers a burst of notifications (a link going down takes its
        // addresses and routes with it).
        let mut burst = 1;
        while let Some(next) = next_change(&notifications, &mut buffer).now_or_never() {
            if let Err(error) = next {
                return Stopped::Failed { error, followed };
            }
            burst += 1;
        }
        debug!(notifications = burst, "network change");
    };
    Stopped::Failed { error, followed }
}

/// The first wait before following again after an error, and the longest.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Follows the kernel's routes for the life of the daemon and feeds every product's
/// runtime. Where netlink cannot be used at all (a sandbox without `AF_NETLINK`), it
/// warns once and leaves the device online, as uid2d was before it watched the
/// network. After an error once it followed, it reports online (it cannot know better)
/// and opens new sockets after 1 s, doubling to 5 min while the errors go on. Never
/// returns.
pub(crate) async fn watch(device: Arc<Device>) -> ! {
    let mut retry = RETRY_FIRST;
    let mut first = true;
    loop {
        let stopped = follow(&device, first).await;
        device.set_online(true).await;
        let error = match stopped {
            Stopped::Unavailable(why) if first => {
                warn!(
                    error_kind = "network_watch",
                    "cannot follow the network over netlink ({why}); assuming online"
                );
                loop {
                    std::future::pending::<()>().await;
                }
            }
            Stopped::Unavailable(error) => error,
            Stopped::Failed { error, followed } => {
                // It had followed again: a new failure, not the same one going on.
                if followed {
                    retry = RETRY_FIRST;
                }
                error
            }
        };
        warn!(
            error_kind = "network_watch",
            "following the network over netlink failed ({error}); assuming online, trying again in {} s",
            retry.as_secs()
        );
        first = false;
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: u8, kind: RouteType, flags: RouteFlags) -> RouteHeader {
        RouteHeader {
            destination_prefix_length: prefix,
            kind,
            flags,
            ..RouteHeader::default()
        }
    }

    #[test]
    fn only_a_unicast_default_route_whose_link_is_up_is_online() {
        assert!(is_usable_default(&route(
            0,
            RouteType::Unicast,
            RouteFlags::empty()
        )));
        assert!(!is_usable_default(&route(
            24,
            RouteType::Unicast,
            RouteFlags::empty()
        )));
        assert!(!is_usable_default(&route(
            0,
            RouteType::Unreachable,
            RouteFlags::empty()
        )));
        assert!(!is_usable_default(&route(
            0,
            RouteType::Unicast,
            RouteFlags::Linkdown
        )));
    }

    /// `message` framed as the kernel sends it, with `sequence`.
    fn framed(message: NetlinkPayload<NewRoute>, sequence: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = sequence;
        let mut message = NetlinkMessage::new(header, message);
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    /// An `RTM_NEWROUTE` with only a header, as a dump answers.
    struct NewRoute(RouteHeader);

    impl NetlinkSerializable for NewRoute {
        fn message_type(&self) -> u16 {
            libc::RTM_NEWROUTE
        }
        fn buffer_len(&self) -> usize {
            self.0.buffer_len()
        }
        fn serialize(&self, buffer: &mut [u8]) {
            self.0.emit(buffer);
        }
    }

    #[test]
    fn the_dump_request_is_an_rtm_getroute_dump_of_one_family() {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut request = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(GetRoutes(AddressFamily::Inet6)),
        );
        request.finalize();
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        // struct nlmsghdr (16 bytes) + struct rtmsg (12 bytes), native-endian.
        assert_eq!(bytes.len(), 28);
        assert_eq!(bytes[0..4], 28u32.to_ne_bytes());
        assert_eq!(bytes[4..6], libc::RTM_GETROUTE.to_ne_bytes());
        assert_eq!(bytes[6..8], 0x301u16.to_ne_bytes());
        assert_eq!(bytes[16], libc::AF_INET6 as u8);
    }

    #[test]
    fn a_dump_is_read_across_datagrams_to_its_done_message() {
        let default = NewRoute(route(0, RouteType::Unicast, RouteFlags::empty()));
        let subnet = NewRoute(route(24, RouteType::Unicast, RouteFlags::empty()));
        let mut found = false;
        // Two routes in one datagram, neither a usable default one.
        let mut first = framed(NetlinkPayload::InnerMessage(subnet), 7);
        first.extend(framed(
            NetlinkPayload::InnerMessage(NewRoute(route(
                0,
                RouteType::Unicast,
                RouteFlags::Linkdown,
            ))),
            7,
        ));
        assert!(!read_dump(&first, 7, &mut found).unwrap());
        assert!(!found);
        // A late answer to an earlier request is skipped, then the default route and the end.
        let mut second = framed(NetlinkPayload::InnerMessage(default), 6);
        second.extend(framed(NetlinkPayload::Done(Default::default()), 6));
        second.extend(framed(
            NetlinkPayload::InnerMessage(NewRoute(route(
                0,
                RouteType::Unicast,
                RouteFlags::empty(),
            ))),
            7,
        ));
        assert!(!read_dump(&second, 7, &mut found).unwrap());
        assert!(found);
        assert!(read_dump(
            &framed(NetlinkPayload::Done(Default::default()), 7),
            7,
            &mut found
        )
        .unwrap());
    }

    #[test]
    fn a_truncated_message_or_a_kernel_error_is_an_error() {
        let whole = framed(
            NetlinkPayload::InnerMessage(NewRoute(route(
                0,
                RouteType::Unicast,
                RouteFlags::empty(),
            ))),
            1,
        );
        let mut found = false;
        let error = read_dump(&whole[..20], 1, &mut found).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let mut refused = netlink_packet_core::ErrorMessage::default();
        refused.code = std::num::NonZeroI32::new(-libc::EPERM);
        let error =
            read_dump(&framed(NetlinkPayload::Error(refused), 1), 1, &mut found).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EPERM));
        let mut failed = netlink_packet_core::DoneMessage::default();
        failed.code = -libc::EMSGSIZE;
        let error = read_dump(&framed(NetlinkPayload::Done(failed), 1), 1, &mut found).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EMSGSIZE));
    }
}

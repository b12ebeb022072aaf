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

use std::sync::Arc;

use futures_util::{FutureExt, StreamExt, TryStreamExt};
use rtnetlink::packet_route::route::{RouteFlags, RouteMessage, RouteType};
use rtnetlink::{new_multicast_connection, Handle, MulticastGroup, RouteMessageBuilder};
use tracing::{debug, warn};

use crate::runtime::Runtime;

/// Whether `route` is a default route a request could leave by.
pub(crate) fn is_usable_default(route: &RouteMessage) -> bool {
    let header = &route.header;
    header.destination_prefix_length == 0
        && header.kind == RouteType::Unicast
        && !header.flags.contains(RouteFlags::Linkdown)
}

/// Whether the kernel has a usable default route now.
async fn has_default_route(handle: &Handle) -> Result<bool, rtnetlink::Error> {
    let requests = [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ];
    for request in requests {
        let mut routes = handle.route().get(request).execute();
        let mut found = false;
        // Read the whole dump: an abandoned one would answer the next request.
        while let Some(route) = routes.try_next().await? {
            found |= is_usable_default(&route);
        }
        if found {
            return Ok(true);
        }
    }
    Ok(false)
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
    let groups = [
        MulticastGroup::Ipv4Route,
        MulticastGroup::Ipv6Route,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
        MulticastGroup::Link,
    ];
    let why = match new_multicast_connection(&groups) {
        Ok((connection, handle, mut notifications)) => {
            tokio::spawn(connection);
            loop {
                match has_default_route(&handle).await {
                    Ok(online) => set_online(online).await,
                    Err(e) => break e.to_string(),
                }
                if notifications.next().await.is_none() {
                    break "the netlink connection closed".to_owned();
                }
                // One dump answers a burst of notifications (a link going down takes
                // its addresses and routes with it).
                let mut burst = 1;
                while let Some(Some(_)) = notifications.next().now_or_never() {
                    burst += 1;
                }
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
    use rtnetlink::packet_route::route::RouteHeader;

    fn route(prefix: u8, kind: RouteType, flags: RouteFlags) -> RouteMessage {
        let mut route = RouteMessage::default();
        route.header = RouteHeader {
            destination_prefix_length: prefix,
            kind,
            flags,
            ..RouteHeader::default()
        };
        route
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
}

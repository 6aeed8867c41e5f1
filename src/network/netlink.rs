//! rtnetlink plumbing: a handle per network namespace and small idempotent link/address/route
//! helpers.
//!
//! A netlink socket belongs to the network namespace of the thread that created it. A handle into
//! a pod's namespace is made by a short-lived std thread that joins the namespace, opens the
//! socket and exits; the socket is then driven on the tokio runtime. No tokio thread ever calls
//! `setns`.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;

use futures::TryStreamExt;
use nix::sched::{setns, CloneFlags};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::NetworkError;

/// Maps an rtnetlink error to [`NetworkError::Netlink`] with a context.
pub(crate) fn nl_err(context: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let context = context.into();
    move |e| NetworkError::Netlink { context, message: describe(&e) }
}

fn describe(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().to_string(),
        other => other.to_string(),
    }
}

/// The (negative) errno of a netlink error reply.
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetworkError {
    let context = context.into();
    move |source| NetworkError::Io { context, source }
}

/// Runs `f` on a fresh std thread that exits afterwards (for `unshare`/`setns`, which change only
/// the calling thread), and awaits its result without blocking the runtime.
pub(crate) async fn on_own_thread<T, F>(name: &str, f: F) -> Result<T, NetworkError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, NetworkError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(io_err(format!("spawning thread {name}")))?;
    rx.await.map_err(|_| NetworkError::Io {
        context: format!("thread {name}"),
        source: std::io::Error::other("the thread panicked"),
    })?
}

/// A handle in the caller's (the host's) network namespace.
pub(crate) fn host_handle() -> Result<Handle, NetworkError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(io_err("opening a netlink socket"))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A handle whose socket lives in the network namespace bind-mounted at `netns`.
pub(crate) async fn netns_handle(netns: &Path) -> Result<Handle, NetworkError> {
    let path = netns.to_owned();
    let fd: OwnedFd = on_own_thread("kelp-netns", move || {
        let ns = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
        setns(&ns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| io_err(format!("joining network namespace {}", path.display()))(e.into()))?;
        let socket = Socket::new(NETLINK_ROUTE).map_err(io_err("opening a netlink socket"))?;
        // SAFETY: into_raw_fd hands over ownership of a valid, open descriptor.
        Ok(unsafe { OwnedFd::from_raw_fd(socket.into_raw_fd()) })
    })
    .await?;
    // SAFETY: the descriptor is an open netlink socket we own; TokioSocket takes ownership.
    let socket = unsafe { TokioSocket::from_raw_fd(fd.into_raw_fd()) };
    let (conn, handle, _) = rtnetlink::from_socket(socket);
    tokio::spawn(conn);
    Ok(handle)
}

/// The link called `name`, if it exists.
pub(crate) async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, NetworkError> {
    match h.link().get().match_name(name.to_owned()).execute().try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl_err(format!("looking up link {name}"))(e)),
    }
}

/// All links of the namespace.
pub(crate) async fn links(h: &Handle) -> Result<Vec<LinkMessage>, NetworkError> {
    h.link().get().execute().try_collect().await.map_err(nl_err("listing links"))
}

pub(crate) fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

pub(crate) fn link_mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

pub(crate) fn link_controller(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(c) => Some(*c),
        _ => None,
    })
}

pub(crate) fn link_is_up(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Up)
}

/// Deletes the link `name` if it exists; true if it did.
pub(crate) async fn delete_link(h: &Handle, name: &str) -> Result<bool, NetworkError> {
    let Some(link) = link_by_name(h, name).await? else { return Ok(false) };
    match h.link().del(link.header.index).execute().await {
        Ok(()) => Ok(true),
        // Gone meanwhile (e.g. its veth peer's namespace was destroyed).
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(nl_err(format!("deleting link {name}"))(e)),
    }
}

/// Brings a link up (and sets its MTU when given).
pub(crate) async fn set_up(h: &Handle, index: u32, name: &str, mtu: Option<u32>) -> Result<(), NetworkError> {
    let mut msg = LinkUnspec::new_with_index(index).up();
    if let Some(mtu) = mtu {
        msg = msg.mtu(mtu);
    }
    h.link().set(msg.build()).execute().await.map_err(nl_err(format!("setting link {name} up")))
}

/// The IPv4 addresses on a link, with their prefix lengths and messages.
pub(crate) async fn ipv4_addresses(
    h: &Handle,
    index: u32,
) -> Result<Vec<(Ipv4Addr, u8, AddressMessage)>, NetworkError> {
    let msgs: Vec<AddressMessage> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("listing addresses"))?;
    Ok(msgs
        .into_iter()
        .filter(|m| m.header.family == AddressFamily::Inet && m.header.index == index)
        .filter_map(|m| {
            let ip = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            })?;
            Some((ip, m.header.prefix_len, m))
        })
        .collect())
}

/// Makes `ip/prefix` the only IPv4 address of the link.
pub(crate) async fn ensure_sole_ipv4(
    h: &Handle,
    index: u32,
    name: &str,
    ip: Ipv4Addr,
    prefix: u8,
) -> Result<(), NetworkError> {
    let mut present = false;
    for (addr, len, msg) in ipv4_addresses(h, index).await? {
        if addr == ip && len == prefix {
            present = true;
        } else {
            h.address().del(msg).execute().await.map_err(nl_err(format!("removing {addr}/{len} from {name}")))?;
        }
    }
    if !present {
        match h.address().add(index, IpAddr::V4(ip), prefix).execute().await {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl_err(format!("adding {ip}/{prefix} to {name}"))(e)),
        }
    }
    Ok(())
}

/// Sets (or replaces) the default route via `gateway` on link `index`.
pub(crate) async fn ensure_default_route(h: &Handle, index: u32, gateway: Ipv4Addr) -> Result<(), NetworkError> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gateway).output_interface(index).build();
    h.route().add(route).replace().execute().await.map_err(nl_err(format!("adding default route via {gateway}")))
}

/// IPv4 routes of the main table.
pub(crate) async fn ipv4_routes(h: &Handle) -> Result<Vec<RouteMessage>, NetworkError> {
    h.route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("listing routes"))
}

/// The MTU of the interface holding the default route, or 1500 without one.
pub(crate) async fn default_route_mtu(h: &Handle) -> Result<u32, NetworkError> {
    const RT_TABLE_MAIN: u8 = 254;
    for route in ipv4_routes(h).await? {
        if route.header.destination_prefix_length != 0 || route.header.table != RT_TABLE_MAIN {
            continue;
        }
        let oif = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        if let Some(oif) = oif {
            let link = h
                .link()
                .get()
                .match_index(oif)
                .execute()
                .try_next()
                .await
                .map_err(nl_err("looking up the default route's link"))?;
            if let Some(mtu) = link.as_ref().and_then(link_mtu) {
                return Ok(mtu);
            }
        }
    }
    Ok(1500)
}

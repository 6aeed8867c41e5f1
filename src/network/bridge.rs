//! The node's pod bridge: created once, holding the podCIDR's gateway address; IPv4 forwarding;
//! outbound masquerade for pod traffic leaving the podCIDR (nftables, one table named after the
//! bridge).

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkBridge};

use super::netlink::{self, errno, io_err, nl_err};
use super::NetworkError;

pub(crate) fn is_bridge(link: &LinkMessage) -> bool {
    link.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

/// Creates the bridge if needed, brings it up and makes `gateway/prefix` its only IPv4 address.
/// Returns the bridge's link index.
pub(crate) async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: u32,
) -> Result<u32, NetworkError> {
    let link = match netlink::link_by_name(h, name).await? {
        Some(link) => link,
        None => {
            match h.link().add(LinkBridge::new(name).mtu(mtu).up().build()).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(nl_err(format!("creating bridge {name}"))(e)),
            }
            netlink::link_by_name(h, name).await?.ok_or_else(|| NetworkError::Netlink {
                context: format!("creating bridge {name}"),
                message: "the bridge vanished right after creation".into(),
            })?
        }
    };
    if !is_bridge(&link) {
        return Err(NetworkError::Netlink {
            context: format!("setting up bridge {name}"),
            message: "a link with this name exists and is not a bridge".into(),
        });
    }
    let index = link.header.index;
    if !netlink::link_is_up(&link) {
        netlink::set_up(h, index, name, None).await?;
    }
    netlink::ensure_sole_ipv4(h, index, name, gateway, prefix).await?;
    Ok(index)
}

/// Sets `net.ipv4.ip_forward=1` in the caller's network namespace.
pub(crate) fn enable_ip_forward() -> Result<(), NetworkError> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(PATH).map(|v| v.trim() == "1").unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(PATH, "1\n").map_err(io_err("setting net.ipv4.ip_forward=1"))
}

/// Whether the `nft` binary is available.
pub(crate) fn have_nft() -> bool {
    Command::new("nft").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn run_nft(script: &str, context: &str) -> Result<(), NetworkError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err(format!("{context}: running nft")))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .map_err(io_err(format!("{context}: writing to nft")))?;
    let out = child.wait_with_output().map_err(io_err(format!("{context}: running nft")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetworkError::Netlink {
            context: context.to_owned(),
            message: format!("nft failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

/// The nftables ruleset masquerading pod traffic that leaves the podCIDR (not multicast), in one
/// `ip` table named after the bridge; replaced atomically.
pub(crate) fn masquerade_ruleset(table: &str, bridge: &str, net: Ipv4Net) -> String {
    format!(
        "add table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {net} ip daddr != {net} ip daddr != 224.0.0.0/4 oifname != \"{bridge}\" masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// Installs [`masquerade_ruleset`].
pub(crate) fn ensure_masquerade(bridge: &str, net: Ipv4Net) -> Result<(), NetworkError> {
    run_nft(&masquerade_ruleset(bridge, bridge, net), &format!("installing masquerade table ip {bridge}"))
}

/// Removes the masquerade table if present.
pub(crate) fn remove_masquerade(bridge: &str) -> Result<(), NetworkError> {
    run_nft(
        &format!("add table ip {bridge}\ndelete table ip {bridge}\n"),
        &format!("removing masquerade table ip {bridge}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_text() {
        let r = masquerade_ruleset("kelp0", "kelp0", "10.42.0.0/24".parse().unwrap());
        assert!(r.starts_with("add table ip kelp0\ndelete table ip kelp0\ntable ip kelp0 {\n"), "{r}");
        assert!(r.contains(
            "ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/24 ip daddr != 224.0.0.0/4 oifname != \"kelp0\" masquerade\n"
        ));
    }
}

//! ClusterIP and NodePort allocation for Services; podCIDR allocation for Nodes.
//!
//! What is in use is derived from the Services in the store. Allocation runs under the API
//! server's allocation lock, held until the write that records it has committed, so two creates
//! cannot take the same address. (Several API servers sharing etcd will need IPAddress objects.)

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{json, Value};

use super::ApiServer;
use crate::api::registry;
use crate::api::status::Cause;

/// Service IPs handed out only when asked for by name: the network's first host (the
/// `kubernetes` service) and the tenth (cluster DNS).
fn reserved(cidr: &ipnet::IpNet) -> Vec<IpAddr> {
    let mut hosts = cidr.hosts();
    let first = hosts.next();
    let tenth = cidr.hosts().nth(9);
    first.into_iter().chain(tenth).collect()
}

/// The first host of the service CIDR: the `kubernetes` service's ClusterIP.
pub fn first_service_ip(cidr: &ipnet::IpNet) -> Option<IpAddr> {
    cidr.hosts().next()
}

async fn in_use(api: &ApiServer, exclude_key: &str) -> (HashSet<IpAddr>, HashSet<u16>) {
    let def = registry::find("", "v1", "services").expect("services are registered");
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    let Ok(listing) = api.cache.list(&def.prefix(None), None, 0, None, &|_| true).await else {
        return (ips, ports);
    };
    for o in &listing.objects {
        if o.key == exclude_key {
            continue;
        }
        let Ok(v) = o.value() else { continue };
        for ip in v.pointer("/spec/clusterIPs").and_then(Value::as_array).into_iter().flatten() {
            if let Some(ip) = ip.as_str().and_then(|s| s.parse().ok()) {
                ips.insert(ip);
            }
        }
        for p in v.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = p.get("nodePort").and_then(Value::as_u64) {
                ports.insert(n as u16);
            }
        }
    }
    (ips, ports)
}

/// Allocate (or keep) a Service's ClusterIP and NodePorts. `old` is the stored Service on update.
pub async fn allocate_service(api: &ApiServer, svc: &mut Value, old: Option<&Value>) -> Result<(), Vec<Cause>> {
    let def = registry::find("", "v1", "services").expect("services are registered");
    let ns = svc.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
    let name = svc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let key = def.key(Some(&ns), &name);
    let (used_ips, used_ports) = in_use(api, &key).await;
    let cidr = api.config.service_cidr;
    let (lo, hi) = api.config.node_port_range;
    let mut causes = Vec::new();
    let ty = svc.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
    let spec = svc.get_mut("spec").and_then(Value::as_object_mut);
    let Some(spec) = spec else { return Ok(()) };

    if ty == "ExternalName" {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        spec.remove("ipFamilies");
        spec.remove("ipFamilyPolicy");
    } else {
        let mut wanted = spec.get("clusterIP").and_then(Value::as_str).unwrap_or_default().to_string();
        if wanted.is_empty() {
            if let Some(first) =
                spec.get("clusterIPs").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str)
            {
                wanted = first.to_string();
            }
        }
        let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).and_then(Value::as_str).unwrap_or_default();
        if wanted.is_empty() && !old_ip.is_empty() {
            wanted = old_ip.to_string();
        }
        let ip = if wanted == "None" {
            "None".to_string()
        } else if wanted.is_empty() {
            match pick_ip(&cidr, &used_ips) {
                Some(ip) => ip.to_string(),
                None => {
                    causes.push(Cause::invalid(
                        "spec.clusterIPs",
                        &json!([]),
                        "failed to allocate a serviceIP: range is full",
                    ));
                    String::new()
                }
            }
        } else if wanted == old_ip {
            wanted
        } else {
            match wanted.parse::<IpAddr>() {
                Err(_) => {
                    causes.push(Cause::invalid(
                        "spec.clusterIPs[0]",
                        &json!(wanted),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                    String::new()
                }
                Ok(ip) if !cidr.contains(&ip) => {
                    causes.push(Cause::invalid(
                        "spec.clusterIPs",
                        &json!([wanted]),
                        format!("failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}"),
                    ));
                    String::new()
                }
                Ok(ip) if used_ips.contains(&ip) => {
                    causes.push(Cause::invalid(
                        "spec.clusterIPs",
                        &json!([wanted]),
                        format!("failed to allocate IP {ip}: provided IP is already allocated"),
                    ));
                    String::new()
                }
                Ok(ip) => ip.to_string(),
            }
        };
        if !ip.is_empty() {
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
    }

    let wants_node_ports = ty == "NodePort"
        || (ty == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").and_then(Value::as_bool).unwrap_or(true));
    let old_ports: Vec<Value> =
        old.and_then(|o| o.pointer("/spec/ports")).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut taken: HashSet<u16> = used_ports;
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        let kept = |n: u64| old_ports.iter().any(|o| o.get("nodePort").and_then(Value::as_u64) == Some(n));
        // First the ports asked for by number, so that random picks avoid them.
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(p) = p.as_object_mut() else { continue };
            let want = p.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
            if !wants_node_ports {
                if ty == "ClusterIP" && want != 0 {
                    causes.push(Cause::forbidden(
                        format!("spec.ports[{i}].nodePort"),
                        "may not be used when `type` is 'ClusterIP'",
                    ));
                }
                p.remove("nodePort");
                continue;
            }
            if want == 0 {
                continue;
            }
            let field = format!("spec.ports[{i}].nodePort");
            if want < lo as u64 || want > hi as u64 {
                causes.push(Cause::invalid(
                    field,
                    &json!(want),
                    format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}"),
                ));
            } else if taken.contains(&(want as u16)) && !kept(want) {
                causes.push(Cause::invalid(field, &json!(want), "provided port is already allocated"));
            } else {
                taken.insert(want as u16);
            }
        }
        // Then the others: the node port the same port had before, or a free one.
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(p) = p.as_object_mut() else { continue };
            if !wants_node_ports || p.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let previous = old_ports
                .iter()
                .find(|o| o.get("port") == p.get("port") && o.get("protocol") == p.get("protocol"))
                .and_then(|o| o.get("nodePort"))
                .and_then(Value::as_u64)
                .map(|n| n as u16)
                .filter(|n| !taken.contains(n));
            match previous.or_else(|| pick_port(lo, hi, &taken)) {
                Some(n) => {
                    taken.insert(n);
                    p.insert("nodePort".into(), json!(n));
                }
                None => causes.push(Cause::invalid(format!("spec.ports[{i}].nodePort"), &json!(0), "range is full")),
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

fn pick_ip(cidr: &ipnet::IpNet, used: &HashSet<IpAddr>) -> Option<IpAddr> {
    let reserved = reserved(cidr);
    let free = |ip: &IpAddr| !used.contains(ip) && !reserved.contains(ip);
    let total = match cidr {
        ipnet::IpNet::V4(n) => 1u64 << (32 - n.prefix_len()).min(32),
        ipnet::IpNet::V6(n) => 1u64 << (128 - n.prefix_len()).min(20),
    };
    for _ in 0..64 {
        let i = rand::random_range(1..total.saturating_sub(1).max(2));
        if let Some(ip) = cidr.hosts().nth(i as usize - 1) {
            if free(&ip) {
                return Some(ip);
            }
        }
    }
    cidr.hosts().find(|ip| free(ip))
}

fn pick_port(lo: u16, hi: u16, used: &HashSet<u16>) -> Option<u16> {
    for _ in 0..64 {
        let n = rand::random_range(lo..=hi);
        if !used.contains(&n) {
            return Some(n);
        }
    }
    (lo..=hi).find(|n| !used.contains(n))
}

/// The subnet size handed to each node: a /24 from an IPv4 cluster CIDR, a /64 from an IPv6 one.
fn node_prefix(cluster: &ipnet::IpNet) -> u8 {
    match cluster {
        ipnet::IpNet::V4(_) => 24,
        ipnet::IpNet::V6(_) => 64,
    }
}

/// The first node subnet of `cluster` not in `used`.
fn pick_node_cidr(cluster: &ipnet::IpNet, used: &HashSet<ipnet::IpNet>) -> Option<ipnet::IpNet> {
    let prefix = node_prefix(cluster).max(cluster.prefix_len());
    cluster.subnets(prefix).ok()?.take(1 << 16).find(|n| !used.contains(n))
}

/// Give a Node a podCIDR from the cluster CIDR when it has none (on create, and on update of a
/// node that still has none). What is in use is read from the other Nodes, so a subnet is never
/// handed out twice while its node exists. Runs under the allocation lock like Service IPs.
pub async fn allocate_node_cidr(api: &ApiServer, node: &mut Value, old: Option<&Value>) -> Result<(), Vec<Cause>> {
    let Some(cluster) = api.config.cluster_cidr else { return Ok(()) };
    let has = |v: &Value| v.pointer("/spec/podCIDR").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if has(node) {
        return Ok(());
    }
    if let Some(old) = old.filter(|o| has(o)) {
        // An update that left the field out keeps the node's subnet.
        let spec = &mut node["spec"];
        spec["podCIDR"] = old["spec"]["podCIDR"].clone();
        spec["podCIDRs"] = old["spec"]["podCIDRs"].clone();
        return Ok(());
    }
    let def = registry::find("", "v1", "nodes").expect("nodes are registered");
    let name = node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let own_key = def.key(None, &name);
    let mut used = HashSet::new();
    if let Ok(listing) = api.cache.list(&def.prefix(None), None, 0, None, &|_| true).await {
        for o in &listing.objects {
            if o.key == own_key {
                continue;
            }
            let Ok(v) = o.value() else { continue };
            for c in v.pointer("/spec/podCIDRs").and_then(Value::as_array).into_iter().flatten() {
                if let Some(net) = c.as_str().and_then(|s| s.parse::<ipnet::IpNet>().ok()) {
                    used.insert(net.trunc());
                }
            }
            if let Some(net) = v.pointer("/spec/podCIDR").and_then(Value::as_str).and_then(|s| s.parse().ok()) {
                used.insert(ipnet::IpNet::trunc(&net));
            }
        }
    }
    match pick_node_cidr(&cluster, &used) {
        Some(net) => {
            if !node.get("spec").is_some_and(Value::is_object) {
                node["spec"] = json!({});
            }
            node["spec"]["podCIDR"] = json!(net.to_string());
            node["spec"]["podCIDRs"] = json!([net.to_string()]);
            Ok(())
        }
        None => Err(vec![Cause::invalid(
            "spec.podCIDR",
            &json!(""),
            format!("failed to allocate a pod CIDR: the cluster CIDR {cluster} is full"),
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_avoid_reserved_and_used() {
        let cidr: ipnet::IpNet = "10.43.0.0/29".parse().unwrap();
        let mut used = HashSet::new();
        for _ in 0..5 {
            let ip = pick_ip(&cidr, &used).expect("free address");
            assert_ne!(ip.to_string(), "10.43.0.1");
            assert!(used.insert(ip));
        }
        // 6 hosts: .1 reserved, five taken.
        assert_eq!(pick_ip(&cidr, &used), None);
        let used: HashSet<u16> = (30000..30010).collect();
        assert_eq!(pick_port(30000, 30010, &used), Some(30010));
    }

    #[test]
    fn node_cidrs_are_the_first_free_subnets() {
        let cluster: ipnet::IpNet = "10.42.0.0/16".parse().unwrap();
        let mut used = HashSet::new();
        assert_eq!(pick_node_cidr(&cluster, &used).unwrap().to_string(), "10.42.0.0/24");
        used.insert("10.42.0.0/24".parse().unwrap());
        used.insert("10.42.2.0/24".parse().unwrap());
        assert_eq!(pick_node_cidr(&cluster, &used).unwrap().to_string(), "10.42.1.0/24");
        let small: ipnet::IpNet = "10.42.0.0/24".parse().unwrap();
        assert!(pick_node_cidr(&small, &[small].into_iter().collect()).is_none());
        let v6: ipnet::IpNet = "fd00:42::/56".parse().unwrap();
        assert_eq!(pick_node_cidr(&v6, &HashSet::new()).unwrap().to_string(), "fd00:42::/64");
    }
}

//! The per-pod files containers mount: `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, in
//! the formats the kubelet writes.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::DnsConfig;

const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

/// The kubelet's hosts file for a pod with its own network namespace
/// (`managedHostsFileContent`): localhost and IPv6 lines, the pod's own line (with the FQDN when
/// the pod has a subdomain), then the HostAliases section if there are aliases.
pub(crate) fn hosts_content(
    pod_ip: &str,
    hostname: &str,
    fqdn: Option<&str>,
    host_aliases: &[(String, Vec<String>)],
) -> String {
    let mut s = String::from(MANAGED_HOSTS_HEADER);
    s.push_str("127.0.0.1\tlocalhost\n");
    s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    s.push_str("fe00::0\tip6-localnet\n");
    s.push_str("fe00::0\tip6-mcastprefix\n");
    s.push_str("fe00::1\tip6-allnodes\n");
    s.push_str("fe00::2\tip6-allrouters\n");
    match fqdn {
        Some(fqdn) if !fqdn.is_empty() => s.push_str(&format!("{pod_ip}\t{fqdn}\t{hostname}\n")),
        _ => s.push_str(&format!("{pod_ip}\t{hostname}\n")),
    }
    s.push_str(&host_aliases_section(host_aliases));
    s
}

/// The kubelet's hosts file for a hostNetwork pod (`nodeHostsFileContent`): the node's own
/// `/etc/hosts` under a header, then the HostAliases section.
pub(crate) fn host_network_hosts_content(node_hosts: &str, host_aliases: &[(String, Vec<String>)]) -> String {
    let mut s = String::from(MANAGED_HOSTS_HEADER_HOST_NETWORK);
    s.push_str(node_hosts);
    if !node_hosts.is_empty() && !node_hosts.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(&host_aliases_section(host_aliases));
    s
}

fn host_aliases_section(host_aliases: &[(String, Vec<String>)]) -> String {
    if host_aliases.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n# Entries added by HostAliases.\n");
    for (ip, names) in host_aliases {
        s.push_str(&format!("{ip}\t{}\n", names.join("\t")));
    }
    s
}

/// resolv.conf as the kubelet writes it: `nameserver` lines, then `search`, then `options`.
pub(crate) fn resolv_conf_content(dns: &DnsConfig) -> String {
    let mut s = String::new();
    for ns in &dns.nameservers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.searches.is_empty() {
        s.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    s
}

/// The pod hostname as the kubelet limits it: at most 63 characters, no trailing `-` or `.`.
pub(crate) fn truncate_hostname(hostname: &str) -> &str {
    const MAX: usize = 63;
    if hostname.len() <= MAX {
        return hostname;
    }
    let mut end = MAX;
    while !hostname.is_char_boundary(end) {
        end -= 1;
    }
    hostname[..end].trim_end_matches(['-', '.'])
}

/// Writes `content` to `path` unless the file exists. Files are never rewritten in place once
/// they exist: containers bind-mount them, and a rename would leave the mounts on the old inode.
pub(crate) fn write_once(path: &Path, content: &str) -> io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_like_the_kubelet() {
        let aliases = vec![
            ("1.2.3.4".to_owned(), vec!["foo.local".to_owned(), "bar.local".to_owned()]),
            ("10.1.2.3".to_owned(), vec!["baz".to_owned()]),
        ];
        let got = hosts_content("10.42.0.5", "web-0", Some("web-0.nginx.default.svc.cluster.local"), &aliases);
        assert_eq!(
            got,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             10.42.0.5\tweb-0.nginx.default.svc.cluster.local\tweb-0\n\n# Entries added by HostAliases.\n\
             1.2.3.4\tfoo.local\tbar.local\n10.1.2.3\tbaz\n"
        );
        let plain = hosts_content("10.42.0.6", "busy", None, &[]);
        assert!(plain.ends_with("fe00::2\tip6-allrouters\n10.42.0.6\tbusy\n"), "{plain}");
        assert!(!plain.contains("HostAliases"));
    }

    #[test]
    fn host_network_hosts() {
        let aliases = vec![("1.2.3.4".to_owned(), vec!["foo".to_owned()])];
        assert_eq!(
            host_network_hosts_content("127.0.0.1 localhost", &aliases),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n\
             # Entries added by HostAliases.\n1.2.3.4\tfoo\n"
        );
    }

    #[test]
    fn resolv_conf() {
        let dns = DnsConfig {
            nameservers: vec!["10.43.0.10".into()],
            searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into(), "cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf_content(&dns),
            "nameserver 10.43.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
        assert_eq!(resolv_conf_content(&DnsConfig::default()), "");
    }

    #[test]
    fn hostname_truncation() {
        assert_eq!(truncate_hostname("web-0"), "web-0");
        let long = format!("{}-.{}", "a".repeat(61), "b".repeat(10));
        assert_eq!(truncate_hostname(&long), "a".repeat(61));
    }
}

//! Image references: parsing and normalisation as Docker and Kubernetes do (`busybox` →
//! `docker.io/library/busybox:latest`; a registry only when the first component has `.` or `:` or
//! is `localhost`).

use oci_client::Reference;

use super::ImageError;

/// Longest repository name (distribution's `NameTotalLengthMax`).
const NAME_MAX: usize = 255;

/// Parses and normalises `name`; bad names give [`ImageError::InvalidName`].
///
/// Hand-written over the distribution reference grammar: `oci_spec`'s parser compiles a regex that
/// stays allocated for the life of the process (~7 MB), several times the agent's own heap.
pub fn parse(name: &str) -> Result<Reference, ImageError> {
    let bad = |reason: &str| ImageError::InvalidName { name: name.into(), reason: reason.into() };
    if name.is_empty() {
        return Err(bad("repository name must have at least one component"));
    }
    // name [":" tag] ["@" digest]
    let (rest, digest) = match name.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (name, None),
    };
    // A ':' after the last '/' starts the tag (a ':' before it is a registry port).
    let (path, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(bad("invalid reference format"));
        }
    }
    if let Some(d) = digest {
        check_digest(d).map_err(bad)?;
    }
    let (registry, repository) = split_domain(path);
    if let Some(host) = registry.as_deref() {
        if !valid_domain(host) {
            return Err(bad("invalid reference format"));
        }
    }
    if repository.split('/').any(|c| c.bytes().any(|b| b.is_ascii_uppercase())) {
        return Err(bad("repository name must be lowercase"));
    }
    if repository.is_empty() || !repository.split('/').all(valid_path_component) {
        return Err(bad("invalid reference format"));
    }
    if repository.len() > NAME_MAX {
        return Err(bad("repository name must not be more than 255 characters"));
    }
    let (registry, repository) = match registry.as_deref() {
        None | Some("index.docker.io") | Some("docker.io") => {
            let repo = if repository.contains('/') { repository.to_string() } else { format!("library/{repository}") };
            ("docker.io".to_string(), repo)
        }
        Some(r) => (r.to_string(), repository.to_string()),
    };
    Ok(match (tag, digest) {
        (Some(t), Some(d)) => Reference::with_tag_and_digest(registry, repository, t.into(), d.into()),
        (None, Some(d)) => Reference::with_digest(registry, repository, d.into()),
        (t, None) => Reference::with_tag(registry, repository, t.unwrap_or("latest").into()),
    })
}

/// (registry, remote name): the first component is a registry when it has a `.` or `:` or is
/// `localhost` (distribution's `splitDomain`).
fn split_domain(path: &str) -> (Option<String>, &str) {
    match path.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (Some(first.to_string()), rest)
        }
        _ => (None, path),
    }
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
        if i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            return false;
        }
    }
    true
}

/// host[:port]: DNS labels (`[A-Za-z0-9]`, inner `-`) joined by `.`, an IPv4 address, or `[IPv6]`.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => ("v6", tail.strip_prefix(':')),
            _ => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host == "v6"
        || host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

/// `algorithm:hex` with the length the algorithm needs (sha256, sha384, sha512).
fn check_digest(d: &str) -> Result<(), &'static str> {
    let (alg, hex) = d.split_once(':').ok_or("invalid checksum digest format")?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("invalid checksum digest format");
    }
    let want = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        a if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-_".contains(&b)) => {
            return Err("unsupported digest algorithm")
        }
        _ => return Err("invalid checksum digest format"),
    };
    if hex.len() != want {
        return Err("invalid checksum digest length");
    }
    Ok(())
}

/// The normalised form of `name`, e.g. `docker.io/library/busybox:latest`.
pub fn normalize(name: &str) -> Result<String, ImageError> {
    Ok(parse(name)?.whole())
}

/// `<registry>/<repository>` of a reference (no tag or digest).
pub fn repository(r: &Reference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

/// The registry host of a credential key as written in a docker config (`https://index.docker.io/v1/`,
/// `registry:5000`, `http://h/`) normalised like an image's registry (`docker.io` for Docker Hub).
pub fn credential_host(key: &str) -> String {
    let k = key.trim();
    let k = k.strip_prefix("https://").or_else(|| k.strip_prefix("http://")).unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".into(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("kelp-test/busybox", "docker.io/kelp-test/busybox:latest"),
            ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
            ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b:v1"),
            ("localhost/x", "localhost/x:latest"),
            ("registry.example.com/x/y/z", "registry.example.com/x/y/z:latest"),
            (
                "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ] {
            assert_eq!(normalize(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn agrees_with_the_reference_parser_of_oci_spec() {
        for name in [
            "busybox",
            "a/b/c:v1.2_3-x",
            "localhost:5000/x",
            "my-registry.io/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "docker.io/busybox:1",
            "index.docker.io/x/y",
            "r.io/x:t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a__b/c.d/e--f",
            "127.0.0.1:5000/a/b:v1",
        ] {
            let ours = parse(name).unwrap();
            let theirs = Reference::try_from(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ours.whole(), theirs.whole(), "{name}");
            assert_eq!((ours.registry(), ours.repository()), (theirs.registry(), theirs.repository()), "{name}");
        }
        // IPv6 registries (distribution's newer grammar; oci-spec's regex predates them).
        let v6 = parse("[::1]:5000/x").unwrap();
        assert_eq!((v6.registry(), v6.repository(), v6.tag()), ("[::1]:5000", "x", Some("latest")));
        for bad in ["a_-b", "a/", "/a", "a//b", "x.io:port/a", "-x.io/a", "a:-tag", "a@sha256:xyz", "UPPER.io:5/A"] {
            assert!(parse(bad).is_err(), "{bad}");
            assert!(Reference::try_from(bad).is_err(), "{bad} (oci-spec agrees)");
        }
    }

    #[test]
    fn refuses_bad_names() {
        for bad in ["", "Busybox", "busybox:", "a b", " busybox", "busybox@sha256:abc", "-x/y", "x:tag:tag", "x@md5:00"]
        {
            match normalize(bad) {
                Err(ImageError::InvalidName { name, reason }) => {
                    assert_eq!(name, bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn credential_hosts() {
        assert_eq!(credential_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(credential_host("127.0.0.1:5001"), "127.0.0.1:5001");
        assert_eq!(credential_host("http://Registry.Local:5000/v2/"), "registry.local:5000");
    }
}

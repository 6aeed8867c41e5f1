//! Image references: parsing and normalisation as Docker and Kubernetes do (`busybox` →
//! `docker.io/library/busybox:latest`; a registry only when the first component has `.` or `:` or
//! is `localhost`).

use oci_client::Reference;

use super::ImageError;

/// Parses and normalises `name`; bad names give [`ImageError::InvalidName`].
pub fn parse(name: &str) -> Result<Reference, ImageError> {
    if name.trim() != name {
        return Err(ImageError::InvalidName { name: name.into(), reason: "invalid reference format".into() });
    }
    Reference::try_from(name).map_err(|e| ImageError::InvalidName { name: name.into(), reason: e.to_string() })
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

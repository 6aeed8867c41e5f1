//! Kubernetes resource quantities (`250m`, `64Mi`, `1e3`, `1.5G`) as numbers.

/// The quantity in base units (cores, bytes).
pub fn parse(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() {
        return Err("missing number".into());
    }
    let n: f64 = num.parse().map_err(|_| format!("invalid number {num:?}"))?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| format!("invalid exponent {e:?}"))?;
            10f64.powi(exp)
        }
        other => return Err(format!("unknown suffix {other:?}")),
    };
    Ok(n * mult)
}

/// CPU in millicores, rounded up.
pub fn millicores(s: &str) -> Result<i64, String> {
    Ok((parse(s)? * 1000.0 - 1e-9).ceil() as i64)
}

/// Bytes, rounded up.
pub fn bytes(s: &str) -> Result<i64, String> {
    Ok((parse(s)? - 1e-9).ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(millicores("250m").unwrap(), 250);
        assert_eq!(millicores("1").unwrap(), 1000);
        assert_eq!(millicores("0.5").unwrap(), 500);
        assert_eq!(millicores("1500u").unwrap(), 2);
        assert_eq!(bytes("64Mi").unwrap(), 64 << 20);
        assert_eq!(bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(bytes("1e3").unwrap(), 1000);
        assert_eq!(bytes("128974848").unwrap(), 128974848);
        assert!(parse("12x").is_err());
        assert!(parse("Mi").is_err());
    }
}

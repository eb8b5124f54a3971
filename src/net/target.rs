//! Probe targets: a host (name or IP literal) and `host:port` pairs, validated
//! at configuration time so a probe never sees a malformed one.

use std::fmt;
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// A DNS name, lower-cased, without a trailing dot unless it was absolute.
    Name(String),
}

impl Host {
    /// The name a TLS client asks for: IPv6 without brackets, a name without
    /// its trailing dot.
    pub fn tls_name(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.trim_end_matches('.').to_string(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl HostPort {
    /// `db.internal:5432`, `10.0.0.5:22`, `[::1]:5432`.
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let shape = || format!("`{text}` is not host:port (IPv6 as [::1]:5432)");
        let (host, port) = split_authority(text).ok_or_else(shape)?;
        let port = port.ok_or_else(shape)?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{text}`: port must be 1-65535"))?;
        Ok(HostPort {
            host: parse_host(host)?,
            port,
        })
    }
}

/// An IP literal or a syntactically valid DNS name (RFC 1123 labels; `_` allowed).
pub fn parse_host(text: &str) -> Result<Host, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if is_dns_name(text) {
        Ok(Host::Name(text.to_ascii_lowercase()))
    } else {
        Err(format!("`{text}` is not a valid host name or IP address"))
    }
}

pub fn is_dns_name(text: &str) -> bool {
    let name = text.strip_suffix('.').unwrap_or(text);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Splits `host:port`, `[v6]:port`, `host`, `[v6]`.
pub fn split_authority(a: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = a.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        match &rest[end + 1..] {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => None, // bare IPv6 needs brackets
            Some((h, p)) => Some((h, Some(p))),
            None => Some((a, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_ports() {
        assert_eq!(
            HostPort::parse("[::1]:5432").unwrap().to_string(),
            "[::1]:5432"
        );
        assert_eq!(
            HostPort::parse("Db.Internal:22").unwrap().host,
            Host::Name("db.internal".into())
        );
        assert_eq!(
            HostPort::parse("10.0.0.5:22").unwrap().to_string(),
            "10.0.0.5:22"
        );
        for bad in [
            "db", "db:", "db:0", "db:70000", "::1:22", "-a.b:1", "a..b:1", "[::1]22",
        ] {
            assert!(HostPort::parse(bad).is_err(), "{bad}");
        }
    }
}

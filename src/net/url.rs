//! The small part of URL handling a health probe needs:
//! `http[s]://host[:port]/path?query`, IPv6 literals in brackets, and
//! resolving a redirect's `Location` against it.

use std::fmt;

use crate::net::target::{parse_host, split_authority, Host};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
    /// Path and query as sent on the request line, always starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let (scheme, rest) = if let Some(r) = strip_prefix_ci(text, "http://") {
            (Scheme::Http, r)
        } else if let Some(r) = strip_prefix_ci(text, "https://") {
            (Scheme::Https, r)
        } else {
            return Err(format!("`{text}` is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(
                "user:password@ in URLs is not supported; send credentials with `headers`".into(),
            );
        }
        let (host, port) = split_authority(authority)
            .ok_or_else(|| format!("`{text}` has no valid host[:port]"))?;
        let host = parse_host(host).map_err(|e| format!("`{text}`: {e}"))?;
        let port = match port {
            None => scheme.default_port(),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{text}` has an invalid port"))?,
        };
        let path = path.split('#').next().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "`{text}` contains spaces or control characters; percent-encode them"
            ));
        }
        Ok(Url {
            scheme,
            host,
            port,
            path,
        })
    }

    /// The `Host` header value: the port is omitted when it is the default.
    pub fn host_header(&self) -> String {
        let h = self.host.to_string();
        if self.port == self.scheme.default_port() {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }

    /// Resolves a `Location` header against this URL (absolute, `//host`,
    /// absolute path, or relative path).
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let loc = location.trim();
        if strip_prefix_ci(loc, "http://").is_some() || strip_prefix_ci(loc, "https://").is_some() {
            return Url::parse(loc);
        }
        // Any other `scheme:` (RFC 3986: a letter, then letters, digits,
        // `+`, `-`, `.`, before a colon that precedes any `/`) is an
        // absolute URL tether does not fetch.
        if let Some((head, _)) = loc.split_once(':') {
            let mut b = head.bytes();
            if b.next().is_some_and(|c| c.is_ascii_alphabetic())
                && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
            {
                return Err(format!("`{head}:` is not http or https"));
            }
        }
        let scheme = self.scheme.as_str();
        if let Some(rest) = loc.strip_prefix("//") {
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let path = if loc.starts_with('/') {
            loc.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{loc}")
        };
        Url::parse(&format!(
            "{scheme}://{}{}",
            self.host_header_always_port(),
            path
        ))
    }

    fn host_header_always_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// For messages, labels and logs, never for requests: the values of
/// secret-looking query parameters are `[redacted]`.
impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.host_header(),
            crate::format::text::redact_query(&self.path)
        )
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_paths() {
        let u = Url::parse("http://127.0.0.1:8080/healthz?x=1").unwrap();
        assert_eq!(
            (u.host.to_string().as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/healthz?x=1")
        );
        let u = Url::parse("HTTP://[::1]/").unwrap();
        assert_eq!(
            (u.host.to_string().as_str(), u.port, u.host_header()),
            ("[::1]", 80, "[::1]".to_string())
        );
        assert_eq!(Url::parse("http://example.com").unwrap().path, "/");
        let u = Url::parse("https://x.test/h").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.host_header()),
            (Scheme::Https, 443, "x.test".into())
        );
        assert_eq!(u.to_string(), "https://x.test/h");
        let u = Url::parse("https://x.test:8443").unwrap();
        assert_eq!(u.to_string(), "https://x.test:8443/");
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("http://a:b@x/").is_err());
        assert!(Url::parse("http://x:0/").is_err());
        assert!(Url::parse("http://::1/").is_err());
        assert!(Url::parse("http://x/a b").is_err());
    }

    #[test]
    fn joins_redirect_locations() {
        let base = Url::parse("http://h:81/a/b?q").unwrap();
        assert_eq!(base.join("/c").unwrap().to_string(), "http://h:81/c");
        assert_eq!(base.join("d").unwrap().to_string(), "http://h:81/a/d");
        assert_eq!(
            base.join("http://other/x").unwrap().to_string(),
            "http://other/x"
        );
        assert_eq!(
            base.join("//other:9/y").unwrap().to_string(),
            "http://other:9/y"
        );
        let tls = Url::parse("https://h/a/b").unwrap();
        assert_eq!(tls.join("c").unwrap().to_string(), "https://h/a/c");
        assert_eq!(tls.join("//o/p").unwrap().to_string(), "https://o/p");
        assert_eq!(
            tls.join("http://h/").unwrap().to_string(),
            "http://h/",
            "a redirect may leave TLS; the check reports where it went"
        );
    }
}

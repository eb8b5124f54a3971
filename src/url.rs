//! The small part of URL handling a health probe needs: `http://host[:port]/path?query`,
//! IPv6 literals in brackets, and resolving a redirect's `Location` against it.
//! `https` is recognised so the TLS issue only has to add a transport.

use std::fmt;

use crate::target::{parse_host, Host};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
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
        let rest = if let Some(r) = strip_prefix_ci(text, "http://") {
            r
        } else if strip_prefix_ci(text, "https://").is_some() {
            return Err("https:// URLs are not supported yet (TLS arrives in the next release); use http://".into());
        } else {
            return Err(format!("`{text}` is not an http:// URL"));
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
            None => 80,
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
            scheme: Scheme::Http,
            host,
            port,
            path,
        })
    }

    /// The `Host` header value: the port is omitted when it is the default.
    pub fn host_header(&self) -> String {
        let h = self.host.to_string();
        if self.port == 80 {
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
        if let Some(rest) = loc.strip_prefix("//") {
            return Url::parse(&format!("http://{rest}"));
        }
        let path = if loc.starts_with('/') {
            loc.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{loc}")
        };
        Url::parse(&format!(
            "http://{}{}",
            self.host_header_always_port(),
            path
        ))
    }

    fn host_header_always_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.path)
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
        assert!(Url::parse("https://x/")
            .unwrap_err()
            .contains("not supported yet"));
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
    }
}

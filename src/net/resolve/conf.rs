//! `/etc/resolv.conf`, read the way glibc reads it: up to three `nameserver`s,
//! the last `search` or `domain` line, and `options ndots:N timeout:N attempts:N`.
//! One extension: a nameserver may carry a port (`127.0.0.1:5353`, `[::1]:5353`),
//! which tests and local forwarders use.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct ResolvConf {
    pub nameservers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    /// Per-attempt wait for one server.
    pub timeout: Duration,
    /// Rounds over all servers.
    pub attempts: usize,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut c = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut f = line.split_whitespace();
            match f.next() {
                Some("nameserver") => {
                    if let Some(addr) = f.next().and_then(parse_server) {
                        if c.nameservers.len() < 3 {
                            c.nameservers.push(addr);
                        }
                    }
                }
                Some("search") => {
                    c.search = f
                        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                        .collect()
                }
                Some("domain") => {
                    c.search = f
                        .next()
                        .map(|d| vec![d.trim_end_matches('.').to_ascii_lowercase()])
                        .unwrap_or_default()
                }
                Some("options") => {
                    for opt in f {
                        let (k, v) = opt.split_once(':').unwrap_or((opt, ""));
                        let n = v.parse::<usize>().ok();
                        match (k, n) {
                            ("ndots", Some(n)) => c.ndots = n.min(15),
                            ("timeout", Some(n)) => {
                                c.timeout = Duration::from_secs(n.clamp(1, 30) as u64)
                            }
                            ("attempts", Some(n)) => c.attempts = n.clamp(1, 5),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if c.nameservers.is_empty() {
            c.nameservers = ResolvConf::default().nameservers;
        }
        c
    }

    /// The names to try for `name`, in order: absolute names as they are;
    /// names with at least `ndots` dots before the search list, others after.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_suffix('.') {
            return vec![abs.to_string()];
        }
        let direct = name.matches('.').count() >= self.ndots;
        let mut out = Vec::new();
        if direct {
            out.push(name.to_string());
        }
        out.extend(self.search.iter().map(|d| format!("{name}.{d}")));
        if !direct {
            out.push(name.to_string());
        }
        out
    }
}

fn parse_server(s: &str) -> Option<SocketAddr> {
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .or_else(|_| s.parse::<SocketAddr>())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_glibc_style() {
        let c = ResolvConf::parse(
            "# c\nnameserver 10.0.0.2\nnameserver ::1\nnameserver 127.0.0.1:5353\nnameserver 1.1.1.1\nsearch a.corp b.corp\noptions ndots:2 timeout:1 attempts:3 rotate\n",
        );
        assert_eq!(
            c.nameservers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ["10.0.0.2:53", "[::1]:53", "127.0.0.1:5353"]
        );
        assert_eq!(
            (c.ndots, c.timeout, c.attempts),
            (2, Duration::from_secs(1), 3)
        );
        assert_eq!(c.candidates("db"), ["db.a.corp", "db.b.corp", "db"]);
        assert_eq!(
            c.candidates("x.y.z"),
            ["x.y.z", "x.y.z.a.corp", "x.y.z.b.corp"]
        );
        assert_eq!(c.candidates("abs.name."), ["abs.name"]);
        assert_eq!(
            ResolvConf::parse("").nameservers,
            ResolvConf::default().nameservers
        );
    }
}

//! `/etc/hosts`: consulted before any nameserver, as glibc does with the
//! usual `hosts: files dns` in nsswitch.conf.

use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hosts {
    /// (lower-cased name, address) in file order.
    entries: Vec<(String, IpAddr)>,
}

impl Hosts {
    pub fn parse(text: &str) -> Hosts {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(ip) = fields
                .next()
                .and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok())
            else {
                continue;
            };
            for name in fields {
                entries.push((name.trim_end_matches('.').to_ascii_lowercase(), ip));
            }
        }
        Hosts { entries }
    }

    /// Every address listed for `name`, in file order, without duplicates.
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        let name = name.trim_end_matches('.');
        let mut out: Vec<IpAddr> = Vec::new();
        for (n, ip) in &self.entries {
            if n.eq_ignore_ascii_case(name) && !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_aliases_and_comments() {
        let h = Hosts::parse("127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n# 10.0.0.1 gone\nbad line\n10.1.2.3 DB.internal db\n");
        assert_eq!(
            h.lookup("LOCALHOST"),
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(h.lookup("db."), vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert!(h.lookup("gone").is_empty());
    }
}

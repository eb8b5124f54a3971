//! tether's own non-blocking stub resolver. Every probe resolves names here:
//! IP literals as they are, then `/etc/hosts`, then the `resolv.conf`
//! nameservers over UDP (A and AAAA asked together on one socket), retrying over
//! TCP when a reply is truncated. glibc's getaddrinfo would block the one thread
//! and async-net's resolver would start a thread pool; this does neither.
//!
//! The two files are re-read when their modification time changes, checked at
//! most every [`RECHECK`].

pub mod conf;
pub mod hosts;
pub mod wire;

use std::cell::RefCell;
use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};

use crate::outcome::Reason;
use conf::ResolvConf;
use hosts::Hosts;
use wire::{decode_reply, encode_query, WireError, TYPE_A, TYPE_AAAA};

/// Which address families a probe may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 addresses first, then IPv6.
    Any,
    Ipv4,
    Ipv6,
}

const RECHECK: Duration = Duration::from_secs(5);

/// Where an answer came from, reported beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Literal,
    Hosts,
    Dns(SocketAddr),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Literal => f.write_str("literal"),
            Source::Hosts => f.write_str("hosts file"),
            Source::Dns(s) => write!(f, "nameserver {s}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// IPv4 addresses first, then IPv6, each in the order received.
    pub addrs: Vec<IpAddr>,
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    NxDomain,
    NoData,
    Timeout,
    ServFail,
    Refused,
    /// Malformed replies, socket errors, no usable nameserver.
    Other(String),
}

impl ResolveError {
    pub fn reason(&self) -> Reason {
        match self {
            ResolveError::NxDomain => Reason::DnsNxdomain,
            ResolveError::NoData => Reason::DnsNoData,
            ResolveError::Timeout => Reason::DnsTimeout,
            ResolveError::ServFail => Reason::DnsServfail,
            ResolveError::Refused => Reason::DnsRefused,
            ResolveError::Other(_) => Reason::DnsError,
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NxDomain => f.write_str("no such name (NXDOMAIN)"),
            ResolveError::NoData => f.write_str("the name has no address of the wanted family"),
            ResolveError::Timeout => f.write_str("no nameserver answered in time"),
            ResolveError::ServFail => f.write_str("nameserver failure (SERVFAIL)"),
            ResolveError::Refused => f.write_str("query refused (REFUSED)"),
            ResolveError::Other(m) => f.write_str(m),
        }
    }
}

struct Loaded {
    hosts: Hosts,
    conf: ResolvConf,
    checked: Instant,
    stamps: [Option<SystemTime>; 2],
}

pub struct Resolver {
    /// `/etc/hosts` and `/etc/resolv.conf`, or `None` for a fixed set (tests).
    files: Option<[PathBuf; 2]>,
    loaded: RefCell<Loaded>,
}

fn mtime(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Resolver {
    /// Reads the system files now and again whenever they change.
    pub fn system(hosts_file: PathBuf, resolv_conf: PathBuf) -> Resolver {
        let files = [hosts_file, resolv_conf];
        let loaded = Self::read(&files);
        Resolver {
            files: Some(files),
            loaded: RefCell::new(loaded),
        }
    }

    /// A resolver with a fixed configuration, for tests and tools.
    pub fn fixed(hosts: Hosts, conf: ResolvConf) -> Resolver {
        Resolver {
            files: None,
            loaded: RefCell::new(Loaded {
                hosts,
                conf,
                checked: Instant::now(),
                stamps: [None, None],
            }),
        }
    }

    fn read(files: &[PathBuf; 2]) -> Loaded {
        let text = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        Loaded {
            hosts: Hosts::parse(&text(&files[0])),
            conf: ResolvConf::parse(&text(&files[1])),
            checked: Instant::now(),
            stamps: [mtime(&files[0]), mtime(&files[1])],
        }
    }

    fn refresh(&self) {
        let Some(files) = &self.files else { return };
        let mut l = self.loaded.borrow_mut();
        if l.checked.elapsed() < RECHECK {
            return;
        }
        l.checked = Instant::now();
        if [mtime(&files[0]), mtime(&files[1])] != l.stamps {
            *l = Self::read(files);
        }
    }

    /// Resolves `name` for connecting: literal, hosts file, then DNS with the
    /// search list.
    pub async fn lookup(&self, name: &str, family: Family) -> Result<Answer, ResolveError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(Answer {
                addrs: vec![ip],
                source: Source::Literal,
            });
        }
        self.refresh();
        let (from_hosts, conf) = {
            let l = self.loaded.borrow();
            (l.hosts.lookup(name), l.conf.clone())
        };
        let from_hosts: Vec<IpAddr> = from_hosts
            .into_iter()
            .filter(|a| wanted(family, a))
            .collect();
        if !from_hosts.is_empty() {
            return Ok(Answer {
                addrs: order(from_hosts),
                source: Source::Hosts,
            });
        }
        // NXDOMAIN for one candidate moves on to the next; any other failure
        // is the answer, so a dead nameserver is never reported as NXDOMAIN.
        let mut last = ResolveError::NxDomain;
        for candidate in conf.candidates(name) {
            match query_servers(&conf, &candidate, family).await {
                Ok(a) => return Ok(a),
                Err(ResolveError::NxDomain) => {}
                Err(ResolveError::NoData) => last = ResolveError::NoData,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Asks one nameserver directly (a `dns` check with `server`), with the
    /// configured per-attempt timeout and attempts.
    pub async fn query_server(
        &self,
        server: SocketAddr,
        name: &str,
        family: Family,
    ) -> Result<Answer, ResolveError> {
        let mut conf = self.loaded.borrow().conf.clone();
        conf.nameservers = vec![server];
        query_servers(&conf, name.trim_end_matches('.'), family).await
    }
}

fn wanted(family: Family, a: &IpAddr) -> bool {
    match family {
        Family::Any => true,
        Family::Ipv4 => a.is_ipv4(),
        Family::Ipv6 => a.is_ipv6(),
    }
}

/// IPv4 first, then IPv6, keeping order within each family.
fn order(mut addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs
}

/// `attempts` rounds over the nameservers, each waited on for `timeout`.
async fn query_servers(
    conf: &ResolvConf,
    name: &str,
    family: Family,
) -> Result<Answer, ResolveError> {
    let mut last = ResolveError::Timeout;
    for _ in 0..conf.attempts {
        for server in &conf.nameservers {
            match exchange(*server, name, family, conf.timeout).await {
                Ok(addrs) => {
                    return Ok(Answer {
                        addrs: order(addrs),
                        source: Source::Dns(*server),
                    })
                }
                Err(e @ (ResolveError::NxDomain | ResolveError::NoData)) => return Err(e),
                Err(e) => {
                    // Prefer telling "the server failed" over "timed out".
                    if last == ResolveError::Timeout || e != ResolveError::Timeout {
                        last = e;
                    }
                }
            }
        }
    }
    Err(last)
}

fn qtypes(family: Family) -> &'static [u16] {
    match family {
        Family::Any => &[TYPE_A, TYPE_AAAA],
        Family::Ipv4 => &[TYPE_A],
        Family::Ipv6 => &[TYPE_AAAA],
    }
}

/// One round with one server: all wanted types over one UDP socket, a TCP
/// retry for any truncated reply, all within `timeout`.
async fn exchange(
    server: SocketAddr,
    name: &str,
    family: Family,
    timeout: Duration,
) -> Result<Vec<IpAddr>, ResolveError> {
    let work = async {
        let types = qtypes(family);
        let ids: Vec<u16> = types.iter().map(|_| fastrand::u16(..)).collect();
        let bind: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let io = |e: std::io::Error| ResolveError::Other(format!("nameserver {server}: {e}"));
        let sock = Async::<UdpSocket>::bind(bind).map_err(io)?;
        sock.get_ref().connect(server).map_err(io)?;
        for (t, id) in types.iter().zip(&ids) {
            sock.send(&encode_query(*id, name, *t)).await.map_err(io)?;
        }
        let mut replies: Vec<Option<wire::Reply>> = types.iter().map(|_| None).collect();
        let mut buf = vec![0u8; 1232];
        while replies.iter().any(Option::is_none) {
            let n = match sock.recv(&mut buf).await {
                Ok(n) => n,
                // ICMP port unreachable surfaces as ECONNREFUSED on a connected socket.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(ResolveError::Other(format!(
                        "nameserver {server}: connection refused"
                    )))
                }
                Err(e) => return Err(io(e)),
            };
            for (i, (t, id)) in types.iter().zip(&ids).enumerate() {
                if replies[i].is_some() {
                    continue;
                }
                match decode_reply(&buf[..n], *id, name, *t) {
                    Ok(r) if r.truncated => {
                        replies[i] = Some(tcp_query(server, *id, name, *t).await?)
                    }
                    Ok(r) => replies[i] = Some(r),
                    Err(WireError::NotOurs) => continue,
                    Err(WireError::Malformed(m)) => {
                        return Err(ResolveError::Other(format!(
                            "nameserver {server}: malformed reply: {m}"
                        )))
                    }
                }
                break;
            }
        }
        combine(replies.into_iter().flatten().collect())
    };
    work.or(async {
        Timer::after(timeout).await;
        Err(ResolveError::Timeout)
    })
    .await
}

/// Merges the A and AAAA replies into one verdict.
fn combine(replies: Vec<wire::Reply>) -> Result<Vec<IpAddr>, ResolveError> {
    let addrs: Vec<IpAddr> = replies
        .iter()
        .flat_map(|r| r.addrs.iter().copied())
        .collect();
    if !addrs.is_empty() {
        return Ok(addrs);
    }
    let rcodes: Vec<u8> = replies.iter().map(|r| r.rcode).collect();
    Err(if rcodes.contains(&wire::RCODE_NXDOMAIN) {
        ResolveError::NxDomain
    } else if rcodes.contains(&wire::RCODE_SERVFAIL) {
        ResolveError::ServFail
    } else if rcodes.contains(&wire::RCODE_REFUSED) {
        ResolveError::Refused
    } else if rcodes.iter().all(|r| *r == wire::RCODE_NOERROR) {
        ResolveError::NoData
    } else {
        ResolveError::Other(format!(
            "nameserver answered rcode {}",
            rcodes.iter().max().copied().unwrap_or(0)
        ))
    })
}

/// The same query over TCP (RFC 1035 §4.2.2: two-byte length prefix).
async fn tcp_query(
    server: SocketAddr,
    id: u16,
    name: &str,
    qtype: u16,
) -> Result<wire::Reply, ResolveError> {
    let io = |e: std::io::Error| ResolveError::Other(format!("nameserver {server} over TCP: {e}"));
    let mut s = Async::<TcpStream>::connect(server).await.map_err(io)?;
    let q = encode_query(id, name, qtype);
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    s.write_all(&msg).await.map_err(io)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.map_err(io)?;
    decode_reply(&buf, id, name, qtype)
        .map_err(|e| ResolveError::Other(format!("nameserver {server} over TCP: {e:?}")))
}

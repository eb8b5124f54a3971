//! The doctor's Offline step: can this host reach the control plane? For the
//! upstream, like `curl -v https://<control plane>/healthz`, one step at a
//! time, each with its own deadline and stopping at the first that fails:
//! DNS (which source answered, how long), TCP to each address, the TLS
//! handshake and certificate (expiry, name, trust), `GET /healthz`. For a
//! `control_plane` check that fails, the same ladder on its target. Then
//! the proxy variables in the environment, which tether does not use.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use async_io::Async;

use super::{Finding, Level, Step};
use crate::agent::snapshot::CheckView;
use crate::config::{ProbeSpec, Upstream};
use crate::net::connect::{connect_addr, Connection};
use crate::net::http1::{exchange, Limits, Request};
use crate::net::resolve::Family;
use crate::net::resolve::{ResolveError, Resolver};
use crate::net::target::Host;
use crate::net::tls::{describe_verdict, Client, Verify};
use crate::os::alarm::until;
use crate::outcome::{connect_reason, Reason, Trace};

/// A certificate expiring within this many days is a warning.
pub const CERT_WARN_DAYS: i64 = 10;

/// What the network steps learned that later steps use.
#[derive(Default)]
pub struct Seen {
    /// A TCP connect to the control plane failed (proxy variables matter).
    pub connect_failed: bool,
    /// `Tether-Min-Version` of the `/healthz` answer.
    pub min_version: Option<String>,
    /// The upstream's `Date` header and our clock when it arrived.
    pub server_date: Option<(SystemTime, SystemTime)>,
}

/// One target to walk through.
struct Target<'a> {
    /// "the upstream" or "check cp".
    who: String,
    host: &'a Host,
    port: u16,
    family: Family,
    /// TLS: extra roots, the name to ask for.
    tls: Option<(&'a [rustls::pki_types::CertificateDer<'static>], String)>,
    /// `GET` this path at the end (the upstream's `/healthz`).
    get: Option<String>,
    timeout: Duration,
}

pub async fn upstream(up: &Upstream, resolver: &Resolver, seen: &mut Seen) -> Vec<Finding> {
    let url = &up.url;
    let roots = up.ca_file.as_ref().map_or(&[][..], |c| &c.certs[..]);
    let t = Target {
        who: "the upstream".into(),
        host: &url.host,
        port: url.port,
        family: Family::Any,
        tls: (url.scheme == crate::net::url::Scheme::Https).then(|| (roots, url.host.tls_name())),
        get: Some("/healthz".into()),
        timeout: up.timeout,
    };
    ladder(&t, resolver, seen).await
}

/// A `control_plane` check: its last result, and the ladder when it fails.
pub async fn control_plane_check(c: &CheckView, resolver: &Resolver) -> Vec<Finding> {
    let name = &c.spec.name;
    let target = format!("{} {}", c.spec.probe.kind(), c.spec.probe.target());
    let last = c.health.last.as_ref();
    let failing = c
        .health
        .status
        .is_some_and(|s| s != crate::outcome::Status::Ok);
    if !failing {
        let took = last.map_or(String::new(), |o| {
            format!(" (took {})", crate::config::duration::format_ms(o.duration))
        });
        return vec![Finding::ok(
            Step::Offline,
            format!("control_plane check {name} ({target}) is ok{took}"),
        )];
    }
    let mut out = vec![super::Finding::new(
        Step::Offline,
        Level::Critical,
        "control_plane_failing",
        format!("control_plane check {name} ({target}) fails"),
    )
    .evidence(last.map_or(String::new(), |o| {
        format!(
            "{}: {}",
            o.reason.map_or(o.status.as_str(), |r| r.code()),
            o.message
        )
    }))
    .fix("see the steps below for where it breaks")];
    let (host, port, family, tls) = match &c.spec.probe {
        ProbeSpec::Tcp(s) => (&s.target.host, s.target.port, s.family, None),
        ProbeSpec::Tls(s) => (&s.target.host, s.target.port, s.family, Some(&s.tls)),
        ProbeSpec::Http(s) => (
            &s.url.host,
            s.url.port,
            s.family,
            (s.url.scheme == crate::net::url::Scheme::Https).then_some(&s.tls),
        ),
        _ => return out,
    };
    let t = Target {
        who: format!("check {name}"),
        host,
        port,
        family,
        tls: tls.map(|o| {
            (
                o.ca_file.as_ref().map_or(&[][..], |c| &c.certs[..]),
                crate::probe::tls::server_name(o, host),
            )
        }),
        get: None,
        timeout: c.spec.timeout,
    };
    out.extend(ladder(&t, resolver, &mut Seen::default()).await);
    out
}

fn crit(code: &'static str, title: String) -> Finding {
    Finding::new(Step::Offline, Level::Critical, code, title)
}

async fn ladder(t: &Target<'_>, resolver: &Resolver, seen: &mut Seen) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(addrs) = dns_rung(t, resolver, seen, &mut out).await else {
        return out;
    };
    let Some(stream) = tcp_rung(t, &addrs, seen, &mut out).await else {
        return out;
    };
    tls_rung(t, stream, seen, &mut out).await;
    out
}

/// Rung 1, DNS: the addresses of the target, or `None` (the failure said).
async fn dns_rung(
    t: &Target<'_>,
    resolver: &Resolver,
    seen: &mut Seen,
    out: &mut Vec<Finding>,
) -> Option<Vec<std::net::IpAddr>> {
    Some(match t.host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => {
            let t0 = Instant::now();
            let lookup = resolver.lookup(name, t.family);
            match until(t0 + t.timeout, lookup).await {
                Some(Ok(a)) => {
                    let list: Vec<String> = a.addrs.iter().map(|a| a.to_string()).collect();
                    out.push(Finding::ok(
                        Step::Offline,
                        format!(
                            "DNS {name}: {} from the {} in {}",
                            list.join(", "),
                            a.source,
                            crate::config::duration::format_ms(t0.elapsed())
                        ),
                    ));
                    a.addrs
                }
                other => {
                    let e = match other {
                        Some(Err(e)) => e,
                        _ => ResolveError::Timeout,
                    };
                    out.push(dns_failure(t, name, &e, t0.elapsed()));
                    seen.connect_failed = true;
                    return None;
                }
            }
        }
    })
}

/// Rung 2, TCP: each address in turn (at most four), until one connects.
async fn tcp_rung(
    t: &Target<'_>,
    addrs: &[std::net::IpAddr],
    seen: &mut Seen,
    out: &mut Vec<Finding>,
) -> Option<Async<std::net::TcpStream>> {
    let port = t.port;
    let mut conn: Option<(Connection, SocketAddr)> = None;
    let mut failed: Vec<(SocketAddr, Reason, String)> = Vec::new();
    for ip in addrs.iter().take(4) {
        let addr = SocketAddr::new(*ip, port);
        let t0 = Instant::now();
        match until(t0 + t.timeout, connect_addr(addr)).await {
            Some(Ok(c)) => {
                out.push(Finding::ok(
                    Step::Offline,
                    format!(
                        "TCP {port} to {}: connected to {addr} in {}",
                        t.host,
                        crate::config::duration::format_ms(t0.elapsed())
                    ),
                ));
                conn = Some((c, addr));
                break;
            }
            Some(Err(e)) => failed.push((addr, connect_reason(&e), e.to_string())),
            None => failed.push((
                addr,
                Reason::ConnectTimeout,
                format!(
                    "no answer within {}",
                    crate::config::duration::format(t.timeout)
                ),
            )),
        }
    }
    let tried: Vec<String> = failed
        .iter()
        .map(|(a, r, m)| format!("{a}: {} ({m})", r.code()))
        .collect();
    let Some((conn, addr)) = conn else {
        seen.connect_failed = true;
        let (_, reason, _) = failed.last().cloned().unwrap_or((
            SocketAddr::from(([0, 0, 0, 0], port)),
            Reason::DnsNoData,
            String::new(),
        ));
        out.push(tcp_failure(t, reason).evidence(tried.join("\n")));
        return None;
    };
    if !failed.is_empty() {
        out.push(
            Finding::new(
                Step::Offline,
                Level::Warning,
                failed[0].1.code(),
                format!(
                    "TCP {port} to {}: {} of {} addresses failed before {addr} answered",
                    t.host,
                    failed.len(),
                    failed.len() + 1
                ),
            )
            .evidence(tried.join("\n"))
            .fix("every connection waits for the failing addresses first: fix them, or remove them from DNS"),
        );
    }
    let Ok(stream) = conn.into_async() else {
        out.push(crit(
            "io_error",
            format!("TCP {port} to {}: the socket cannot be used", t.host),
        ));
        return None;
    };
    Some(stream)
}

/// Rung 3, TLS (when the target speaks it), then the `GET` if there is one.
async fn tls_rung(
    t: &Target<'_>,
    stream: Async<std::net::TcpStream>,
    seen: &mut Seen,
    out: &mut Vec<Finding>,
) {
    let Some((roots, name)) = &t.tls else {
        if let Some(path) = &t.get {
            let mut s = stream;
            out.extend(get(t, path, &mut s, seen).await);
        }
        return;
    };
    let client = match Client::new(roots, Verify::Record, &[b"http/1.1"]) {
        Ok(c) => c,
        Err(e) => {
            out.push(crit("tls_handshake", format!("TLS: {e}")));
            return;
        }
    };
    let t0 = Instant::now();
    let handshake = until(t0 + t.timeout, client.connect(name, stream)).await;
    let Some(handshake) = handshake else {
        out.push(
            crit("tls_timeout", format!("TLS handshake with {name} timed out"))
                .evidence(format!("no handshake within {}", crate::config::duration::format(t.timeout)))
                .fix("something on the path accepts TCP but does not speak TLS (a proxy or a load balancer without a backend), or the server is overloaded"),
        );
        return;
    };
    let facts = client.seen().and_then(|s| {
        let i = s.leaf.as_ref().ok()?.clone();
        Some((s, i))
    });
    let now = crate::os::clock::unix_secs(SystemTime::now());
    let evidence = facts.as_ref().map_or(String::new(), |(_, i)| {
        format!(
            "subject {}; issuer {}; names {}; expires {} ({} days)",
            i.subject,
            i.issuer,
            i.names.join(", "),
            crate::os::clock::rfc3339_unix(i.not_after),
            crate::net::x509::whole_days(i.not_after - now)
        )
    });
    let verdict = facts.as_ref().map(|(s, _)| s.verdict.clone());
    match (&handshake, verdict) {
        (_, Some(Err(v))) => {
            let reason = crate::net::tls::cert_reason(&v);
            let leaf = facts.map(|(_, i)| i).ok_or(String::new());
            out.push(
                crit(
                    reason.code(),
                    format!("TLS: {}", describe_verdict(&v, &leaf, name)),
                )
                .evidence(evidence)
                .fix(tls_fix(reason)),
            );
            return;
        }
        (Err(e), _) => {
            out.push(
                crit(e.reason.code(), format!("TLS: {}", e.message))
                    .evidence(evidence)
                    .fix("check that the port speaks TLS and that no TLS-inspecting proxy sits on the path"),
            );
            return;
        }
        (Ok(_), _) => {}
    }
    let days = facts.as_ref().map_or(i64::MAX, |(_, i)| {
        crate::net::x509::whole_days(i.not_after - now)
    });
    out.push(if days < CERT_WARN_DAYS {
        Finding::new(
            Step::Offline,
            Level::Warning,
            "cert_expiring",
            format!("TLS {name}: verified, but the certificate expires in {days} days"),
        )
        .evidence(evidence)
        .fix("renew the control plane's certificate (vendor side) before it expires")
    } else {
        Finding::ok(
            Step::Offline,
            format!(
                "TLS {name}: verified in {}",
                crate::config::duration::format_ms(t0.elapsed())
            ),
        )
        .evidence(evidence)
    });
    if let (Some(path), Ok(mut tls)) = (&t.get, handshake) {
        out.extend(get(t, path, &mut tls, seen).await);
    }
}

/// `GET path` over an open connection; reads `Date` and `Tether-Min-Version`.
async fn get<S>(t: &Target<'_>, path: &str, stream: &mut S, seen: &mut Seen) -> Vec<Finding>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let host = match t.port {
        80 | 443 => t.host.to_string(),
        p => format!("{}:{p}", t.host),
    };
    let headers = [("Accept".to_string(), "*/*".to_string())];
    let req = Request {
        method: "GET",
        path,
        host: &host,
        headers: &headers,
        body: &[],
    };
    let limits = Limits {
        head: crate::uplink::post::MAX_RESPONSE_HEAD,
        body: 4096,
    };
    let t0 = Instant::now();
    let trace = Trace::new(t0);
    let resp = until(t0 + t.timeout, exchange(stream, &req, &trace, limits)).await;
    let took = crate::config::duration::format_ms(t0.elapsed());
    let resp = match resp {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return vec![crit("http_protocol", format!("GET {path}: {e:?}"))
                .fix("the port accepts connections but does not answer HTTP: check [upstream] url")]
        }
        None => {
            return vec![crit("timeout", format!("GET {path}: no answer within {}", crate::config::duration::format(t.timeout)))
                .fix("the control plane accepts connections but answers too slowly: vendor side, or raise [upstream] timeout")]
        }
    };
    let now = SystemTime::now();
    if let Some(d) = resp
        .header("date")
        .and_then(crate::uplink::upstream::parse_http_date)
    {
        seen.server_date = Some((d, now));
    }
    seen.min_version = resp
        .header("tether-min-version")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() < 32);
    let line = format!("HTTP {} {} in {took}", resp.status, resp.reason);
    vec![match resp.status {
        200..=299 => Finding::ok(Step::Offline, format!("GET {path}: {line}")),
        500..=599 => crit("http_status", format!("GET {path}: {line}"))
            .evidence(resp.body_line())
            .fix("the control plane answers but reports a failure: vendor side; check its status page"),
        _ => Finding::new(
            Step::Offline,
            Level::Warning,
            "http_status",
            format!("GET {path}: {line}"),
        )
        .evidence(resp.body_line())
        .fix("the host answers HTTP, but not a health endpoint at this path: check that [upstream] url names the control plane"),
    }]
}

fn dns_failure(t: &Target<'_>, name: &str, e: &ResolveError, took: Duration) -> Finding {
    let reason = e.reason();
    let fix = match reason {
        Reason::DnsNxdomain => "the name does not exist in the DNS this host asks: check the spelling in the configuration, and whether the name is only known inside another network (split DNS, a VPN)",
        Reason::DnsNoData => "the name exists but has no address of the wanted family: check its A/AAAA records, or the check's `family`",
        Reason::DnsTimeout => "no nameserver answered: check the nameservers in /etc/resolv.conf and that UDP and TCP 53 to them are allowed from this host",
        Reason::DnsServfail => "the nameservers failed to resolve it (SERVFAIL): the zone's servers are unreachable from the resolver, or DNSSEC fails",
        Reason::DnsRefused => "the nameserver refuses to answer this host: it does not allow recursion for it",
        _ => "check /etc/resolv.conf and the nameservers it names",
    };
    crit(
        reason.code(),
        format!("DNS: {name} ({}) does not resolve: {e}", t.who),
    )
    .evidence(format!(
        "after {}",
        crate::config::duration::format_ms(took)
    ))
    .fix(fix)
}

fn tcp_failure(t: &Target<'_>, reason: Reason) -> Finding {
    let (port, host) = (t.port, t.host);
    let (what, fix) = match reason {
        Reason::ConnectTimeout => (
            "timed out",
            format!("an outbound firewall or security group drops it; allow TCP {port} from this host to {host}"),
        ),
        Reason::ConnectRefused => (
            "was refused",
            format!("{host} answers but nothing listens on {port}: the service is down or the port is wrong in the configuration"),
        ),
        Reason::HostUnreachable | Reason::NetworkUnreachable => (
            "found no route",
            format!("this host has no route to {host}: check its default gateway, routes and VPN"),
        ),
        Reason::DnsNoData => ("had no address to try", format!("{host} resolves to no address")),
        _ => (
            "failed",
            format!("check the path from this host to {host} port {port}"),
        ),
    };
    crit(
        reason.code(),
        format!("TCP {port} to {host} ({}) {what}", t.who),
    )
    .fix(fix)
}

fn tls_fix(reason: Reason) -> &'static str {
    match reason {
        Reason::TlsExpired => "the certificate has expired: renew it on the server (or, if it is not expired, correct this host's clock)",
        Reason::TlsNotYetValid => "the certificate is not valid yet: this host's clock is probably behind; fix time sync (chrony, systemd-timesyncd)",
        Reason::TlsHostnameMismatch => "the certificate is for other names: use a name it covers in the configuration, or reissue it with this name",
        _ => "the chain does not lead to a trusted root: a TLS-inspecting proxy on the path, or a private CA; give its certificate as ca_file",
    }
}

/// Proxy variables: tether connects directly and does not read them.
pub fn proxy_variables(connect_failed: bool, up: Option<&Upstream>) -> Finding {
    let set: Vec<String> = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ]
    .iter()
    .filter_map(|k| {
        let v = std::env::var(k).ok()?;
        Some(format!("{k}={}", redact_userinfo(&v)))
    })
    .collect();
    if set.is_empty() {
        return Finding::ok(Step::Offline, "no proxy variables in the environment");
    }
    let evidence = set.join("\n");
    if connect_failed && up.is_some() {
        Finding::new(
            Step::Offline,
            Level::Warning,
            "proxy_environment",
            "proxy variables are set, and tether connects directly",
        )
        .evidence(evidence)
        .fix("if this host reaches the control plane only through that proxy, allow direct TCP from it to the control plane: tether does not use HTTP proxies")
    } else {
        Finding::ok(
            Step::Offline,
            "proxy variables are set; tether connects directly and ignores them",
        )
        .evidence(evidence)
    }
}

/// `http://user:secret@proxy:3128` → `http://[redacted]@proxy:3128`.
pub fn redact_userinfo(v: &str) -> String {
    let start = v.find("://").map_or(0, |i| i + 3);
    let rest = &v[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}[redacted]{}", &v[..start], &rest[at..]),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_are_redacted() {
        assert_eq!(
            redact_userinfo("http://bob:s3cret@proxy:3128/"),
            "http://[redacted]@proxy:3128/"
        );
        assert_eq!(redact_userinfo("proxy:3128"), "proxy:3128");
        assert_eq!(redact_userinfo("a@b:1"), "[redacted]@b:1");
    }
}

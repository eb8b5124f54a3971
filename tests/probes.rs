//! Every probe kind against real loopback fakes, through the scheduler's own
//! `run_check` (deadline, duration and timeout reason included).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tether::net::resolve::conf::ResolvConf;
use tether::net::resolve::hosts::Hosts;
use tether::net::resolve::Resolver;
use tether::outcome::{Phase, Reason, Status};

fn resolver(nameserver: Option<SocketAddr>) -> Resolver {
    let conf = ResolvConf {
        nameservers: vec![nameserver.unwrap_or_else(closed_udp)],
        search: vec!["corp.test".into()],
        ndots: 1,
        timeout: Duration::from_millis(400),
        attempts: 2,
    };
    Resolver::fixed(
        Hosts::parse("127.0.0.1 fake.test\n::1 fake.test v6only.test\n"),
        conf,
    )
}

/// A UDP port nothing listens on.
fn closed_udp() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn tcp_open_port_is_ok_and_reports_the_address() {
    let (_l, addr) = open_port();
    let o = run(
        &check(&format!("kind = \"tcp\"\ntarget = \"{addr}\"")),
        &resolver(None),
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.peer, Some(addr));
    assert!(o.phases.get(Phase::Connect) > Duration::ZERO);
}

#[test]
fn tcp_closed_port_is_connect_refused() {
    let o = run(
        &check(&format!("kind = \"tcp\"\ntarget = \"{}\"", closed_port())),
        &resolver(None),
    );
    assert_reason(&o, Reason::ConnectRefused);
}

#[test]
fn tcp_full_backlog_is_connect_timeout_at_the_deadline() {
    let fb = full_backlog();
    let c = check(&format!(
        "kind = \"tcp\"\ntarget = \"{}\"\ntimeout = \"300ms\"",
        fb.addr
    ));
    let o = run(&c, &resolver(None));
    assert_reason(&o, Reason::ConnectTimeout);
    assert!(o.duration >= Duration::from_millis(300), "{o:?}");
    assert!(o.message.contains("during connect"), "{}", o.message);
}

#[test]
fn tcp_connect_that_has_to_wait_completes_through_the_reactor() {
    // The first SYN is dropped (full queue); once the probe is seen waiting
    // in SYN_SENT, room is made, and the kernel's retransmitted SYN (1 s
    // later) is answered. The probe must have waited, not taken the
    // connect-completed-at-once path.
    let fb = full_backlog();
    let c = check(&format!(
        "kind = \"tcp\"\ntarget = \"{}\"\ntimeout = \"5s\"",
        fb.addr
    ));
    let addr = fb.addr;
    let drain = std::thread::spawn(move || {
        wait_for(
            "the probe's SYN_SENT socket",
            Duration::from_secs(5),
            || syn_sent_to(addr).then_some(()),
        );
        fb.accept_one();
        fb
    });
    let o = run(&c, &resolver(None));
    drain.join().unwrap();
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(
        o.phases.get(Phase::Connect) >= Duration::from_millis(500),
        "{o:?}"
    );
}

#[test]
fn tcp_ipv6_literal_and_dual_stack_name() {
    // A port listening on ::1 whose IPv4 twin is bound but not listening, so
    // connects to 127.0.0.1 are refused whatever else runs on this machine.
    let (_l, _v4, port) = (0..100)
        .find_map(|_| {
            let l = std::net::TcpListener::bind("[::1]:0").ok()?;
            let port = l.local_addr().ok()?.port();
            let v4 =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            v4.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
                .ok()?;
            Some((l, v4, port))
        })
        .expect("a port free on both families");
    let o = run(
        &check(&format!("kind = \"tcp\"\ntarget = \"[::1]:{port}\"")),
        &resolver(None),
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    // fake.test has 127.0.0.1 then ::1: IPv4 is refused, IPv6 answers; the
    // outcome says which address was used.
    let o = run(
        &check(&format!("kind = \"tcp\"\ntarget = \"fake.test:{port}\"")),
        &resolver(None),
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.peer.unwrap().to_string(), format!("[::1]:{port}"));
    // Pinned to IPv4 it fails, naming the refused address.
    let o = run(
        &check(&format!(
            "kind = \"tcp\"\ntarget = \"fake.test:{port}\"\nfamily = \"ipv4\""
        )),
        &resolver(None),
    );
    assert_reason(&o, Reason::ConnectRefused);
}

#[test]
fn tcp_send_and_expect_banner() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in l.incoming().flatten() {
            let mut b = [0u8; 6];
            let _ = s.read_exact(&mut b); // "HELLO\n"
            let _ = s.write_all(if &b == b"HELLO\n" {
                b"SSH-2.0-fake\r\n"
            } else {
                b"220 smtp\r\n"
            });
        }
    });
    let ok = check(&format!(
        "kind = \"tcp\"\ntarget = \"{addr}\"\nsend = \"HELLO\\n\"\nexpect = \"SSH-\""
    ));
    let o = run(&ok, &resolver(None));
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.message.contains("SSH-2.0-fake"), "{}", o.message);
    let bad = check(&format!(
        "kind = \"tcp\"\ntarget = \"{addr}\"\nsend = \"HOLA!\\n\"\nexpect = \"SSH-\""
    ));
    let o = run(&bad, &resolver(None));
    assert_reason(&o, Reason::ExpectMismatch);
    assert!(o.message.contains("220 smtp"), "{}", o.message);
}

#[test]
fn tcp_expect_from_a_silent_server_times_out_waiting_for_the_first_byte() {
    let addr = silent_server();
    let o = run(
        &check(&format!(
            "kind = \"tcp\"\ntarget = \"{addr}\"\nexpect = \"SSH-\"\ntimeout = \"300ms\""
        )),
        &resolver(None),
    );
    assert_reason(&o, Reason::Timeout);
    assert!(o.message.contains("during first_byte"), "{}", o.message);
}

#[test]
fn http_status_body_headers_and_credentials() {
    let mut unauthorized = reply(401, "no");
    unauthorized
        .headers
        .push(("WWW-Authenticate".into(), "Bearer".into()));
    let mut chunked = reply(200, "a chunked body that says healthy at the end");
    chunked.chunked = true;
    let (addr, requests) = http_server(vec![
        ("/healthz", reply(200, "status: ok")),
        ("/broken", reply(503, "down")),
        ("/denied", unauthorized),
        ("/forbidden", reply(403, "no")),
        ("/chunked", chunked),
        ("/created", reply(201, "")),
    ]);
    let r = resolver(None);
    let get = |path: &str, extra: &str| {
        run(
            &check(&format!(
                "kind = \"http\"\nurl = \"http://{addr}{path}\"\n{extra}"
            )),
            &r,
        )
    };

    let o = get(
        "/healthz",
        "body_contains = \"ok\"\nheaders = { Authorization = \"Bearer s3cret\" }",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.phases.get(Phase::FirstByte) > Duration::ZERO);
    let head = requests.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains("\r\nAuthorization: Bearer s3cret\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("\r\nHost: {addr}\r\n")), "{head}");

    assert_reason(
        &get("/healthz", "body_contains = \"healthy\""),
        Reason::BodyMismatch,
    );
    assert_reason(&get("/broken", ""), Reason::HttpStatus);
    assert_reason(&get("/denied", ""), Reason::CredentialsRejected);
    assert_reason(&get("/forbidden", ""), Reason::CredentialsRejected);
    assert_eq!(get("/broken", "expect_status = [503]").status, Status::Ok);
    assert_eq!(
        get("/chunked", "body_contains = \"healthy at the end\"").status,
        Status::Ok
    );
    assert_eq!(get("/created", "method = \"HEAD\"").status, Status::Ok);
    assert_reason(
        &get("/created", "expect_status = [200]"),
        Reason::HttpStatus,
    );
}

#[test]
fn http_redirects_only_when_asked() {
    let mut moved = reply(302, "");
    moved.headers.push(("Location".into(), "/new".into()));
    let mut looping = reply(301, "");
    looping.headers.push(("Location".into(), "/loop".into()));
    let (addr, _rx) = http_server(vec![
        ("/old", moved),
        ("/new", reply(200, "here")),
        ("/loop", looping),
    ]);
    let r = resolver(None);
    let c = |path: &str, follow: bool| {
        check(&format!(
            "kind = \"http\"\nurl = \"http://{addr}{path}\"\nfollow_redirects = {follow}"
        ))
    };
    let o = run(&c("/old", false), &r);
    assert_reason(&o, Reason::HttpStatus);
    assert!(
        o.message.contains("follow_redirects is off"),
        "{}",
        o.message
    );
    let o = run(&c("/old", true), &r);
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.message.contains("/new"), "{}", o.message);
    assert_reason(&run(&c("/loop", true), &r), Reason::TooManyRedirects);
    // One redirect that cannot be followed is no "too many".
    let mut odd = reply(302, "");
    odd.headers
        .push(("Location".into(), "ftp://files.example/x".into()));
    let (addr2, _rx2) = http_server(vec![("/odd", odd)]);
    let o = run(
        &check(&format!(
            "kind = \"http\"\nurl = \"http://{addr2}/odd\"\nfollow_redirects = true"
        )),
        &r,
    );
    assert_reason(&o, Reason::RedirectRefused);
}

#[test]
fn http_server_that_never_answers_times_out_without_blocking() {
    let addr = silent_server();
    let o = run(
        &check(&format!(
            "kind = \"http\"\nurl = \"http://{addr}/\"\ntimeout = \"300ms\""
        )),
        &resolver(None),
    );
    assert_reason(&o, Reason::Timeout);
}

#[test]
fn http_slow_server_within_and_beyond_the_timeout() {
    let mut slow = reply(200, "ok");
    slow.delay = Duration::from_millis(150);
    let (addr, _rx) = http_server(vec![("/slow", slow)]);
    let r = resolver(None);
    let o = run(
        &check(&format!(
            "kind = \"http\"\nurl = \"http://{addr}/slow\"\ntimeout = \"3s\""
        )),
        &r,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(
        o.phases.get(Phase::FirstByte) >= Duration::from_millis(150),
        "{o:?}"
    );
    let o = run(
        &check(&format!(
            "kind = \"http\"\nurl = \"http://{addr}/slow\"\ntimeout = \"50ms\""
        )),
        &r,
    );
    assert_reason(&o, Reason::Timeout);
}

#[test]
fn http_garbage_and_empty_replies() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for (i, mut s) in l.incoming().flatten().enumerate() {
            let mut b = [0u8; 512];
            let _ = s.read(&mut b);
            if i == 0 {
                let _ = s.write_all(b"SSH-2.0-not-http\r\n\r\n");
            } // else: close without replying
        }
    });
    let c = check(&format!("kind = \"http\"\nurl = \"http://{addr}/\""));
    assert_reason(&run(&c, &resolver(None)), Reason::HttpProtocol);
    // A clean close (FIN) is not a reset.
    let o = run(&c, &resolver(None));
    assert_reason(&o, Reason::ConnectionClosed);
    assert!(
        o.message.contains("closed the connection without replying"),
        "{}",
        o.message
    );
}

#[test]
fn http_heads_as_real_servers_send_them_and_the_bounds_past_them() {
    let with = |n: usize, value_len: usize| {
        let mut r = reply(200, "ok");
        for i in 0..n {
            r.headers.push((format!("X-H{i}"), "v".repeat(value_len)));
        }
        r
    };
    let (addr, _rx) = http_server(vec![
        ("/65", with(65, 10)),
        ("/400", with(400, 10)),
        ("/cookie", with(1, 20 * 1024)),
        ("/600", with(600, 10)),
        ("/70k", with(1, 70 * 1024)),
    ]);
    let r = resolver(None);
    let c = |path: &str| check(&format!("kind = \"http\"\nurl = \"http://{addr}{path}\""));
    // 64 headers used to be the limit, and 16 KiB of head: curl and
    // blackbox_exporter take these.
    for path in ["/65", "/400", "/cookie"] {
        let o = run(&c(path), &r);
        assert_eq!(o.status, Status::Ok, "{path}: {o:?}");
    }
    let o = run(&c("/600"), &r);
    assert_reason(&o, Reason::HttpHeadTooLarge);
    assert!(
        o.message.contains("more than 500 header fields"),
        "{}",
        o.message
    );
    let o = run(&c("/70k"), &r);
    assert_reason(&o, Reason::HttpHeadTooLarge);
    assert!(o.message.contains("larger than 64 KiB"), "{}", o.message);
}

#[test]
fn http_endless_interim_responses_are_an_error_not_a_stall() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in l.incoming().flatten() {
            let mut b = [0u8; 512];
            let _ = s.read(&mut b);
            std::thread::spawn(move || {
                let heads = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(200);
                while s.write_all(&heads).is_ok() {}
            });
        }
    });
    let c = check(&format!(
        "kind = \"http\"\nurl = \"http://{addr}/\"\ntimeout = \"3s\""
    ));
    let o = run(&c, &resolver(None));
    assert_reason(&o, Reason::HttpProtocol);
    assert!(
        o.message.contains("more than 16 interim (1xx) responses"),
        "{}",
        o.message
    );
}

#[test]
fn http_name_resolution_failure_is_reported_as_dns() {
    let (ns, _) = dns_server(Dns::NxDomain, vec![], vec![]);
    let o = run(
        &check("kind = \"http\"\nurl = \"http://nowhere.invalid:8080/\""),
        &resolver(Some(ns)),
    );
    assert_reason(&o, Reason::DnsNxdomain);
}

#[test]
fn dns_answers_and_expected_addresses() {
    let (ns, _) = dns_server(
        Dns::Answer,
        vec![[127, 0, 0, 7]],
        vec![[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    );
    let r = resolver(Some(ns));
    let o = run(
        &check(
            "kind = \"dns\"\nquery = \"db.example\"\nexpect_addresses = [\"127.0.0.7\", \"::1\"]",
        ),
        &r,
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.peer, Some(ns));
    assert!(o.message.contains("127.0.0.7, ::1"), "{}", o.message);
    let o = run(
        &check("kind = \"dns\"\nquery = \"db.example\"\nexpect_addresses = [\"127.0.0.8\"]"),
        &r,
    );
    assert_reason(&o, Reason::DnsMismatch);
    // Only A records wanted.
    let o = run(
        &check("kind = \"dns\"\nquery = \"db.example\"\nrecord = \"A\""),
        &r,
    );
    assert!(
        o.message.ends_with(&format!("127.0.0.7 (nameserver {ns})")),
        "{}",
        o.message
    );
    // The hosts file answers first, without asking the server.
    let o = run(&check("kind = \"dns\"\nquery = \"fake.test\""), &r);
    assert!(o.message.contains("hosts file"), "{}", o.message);
    // A TCP probe to a name resolved by the server.
    let (_l, open) = open_port();
    let (ns7, _) = dns_server(Dns::Answer, vec![[127, 0, 0, 1]], vec![]);
    let o = run(
        &check(&format!(
            "kind = \"tcp\"\ntarget = \"svc.example:{}\"",
            open.port()
        )),
        &resolver(Some(ns7)),
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.phases.get(Phase::Resolve) > Duration::ZERO);
}

#[test]
fn dns_nxdomain_servfail_and_silence() {
    let (nx, _) = dns_server(Dns::NxDomain, vec![], vec![]);
    assert_reason(
        &run(
            &check("kind = \"dns\"\nquery = \"nope.example\""),
            &resolver(Some(nx)),
        ),
        Reason::DnsNxdomain,
    );
    let (sf, _) = dns_server(Dns::ServFail, vec![], vec![]);
    assert_reason(
        &run(
            &check("kind = \"dns\"\nquery = \"x.example\""),
            &resolver(Some(sf)),
        ),
        Reason::DnsServfail,
    );
    // Silence: 2 attempts × 400 ms, then dns_timeout (before the check's 5 s deadline).
    let (quiet, _) = dns_server(Dns::Silence, vec![], vec![]);
    let o = run(
        &check("kind = \"dns\"\nquery = \"x.example\""),
        &resolver(Some(quiet)),
    );
    assert_reason(&o, Reason::DnsTimeout);
    assert!(o.duration >= Duration::from_millis(800), "{o:?}");
    // A deadline shorter than the resolver's patience: still dns_timeout, from the phase.
    let o = run(
        &check("kind = \"tcp\"\ntarget = \"x.example:1\"\ntimeout = \"200ms\""),
        &resolver(Some(quiet)),
    );
    assert_reason(&o, Reason::DnsTimeout);
    assert!(o.message.contains("during resolve"), "{}", o.message);
    // Nothing listening on the nameserver's port.
    let o = run(
        &check("kind = \"dns\"\nquery = \"x.example\""),
        &resolver(None),
    );
    assert_reason(&o, Reason::DnsError);
}

#[test]
fn dns_truncated_reply_is_retried_over_tcp() {
    let (ns, tcp_queries) = dns_server(Dns::Truncated, vec![[127, 0, 0, 9]], vec![]);
    let o = run(
        &check("kind = \"dns\"\nquery = \"big.example\"\nrecord = \"A\""),
        &resolver(Some(ns)),
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.message.contains("127.0.0.9"), "{}", o.message);
    assert_eq!(tcp_queries.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn dns_search_list_is_walked_for_short_names() {
    // Only db.corp.test exists: "db" (fewer dots than ndots) is found through
    // the search list; "db.other" is tried as-is first, then with the suffix.
    let (ns, _) = dns_server(Dns::Only("corp.test"), vec![[127, 0, 0, 4]], vec![]);
    let r = resolver(Some(ns));
    let o = run(&check("kind = \"dns\"\nquery = \"db\""), &r);
    assert_eq!(o.status, Status::Ok, "{o:?}");
    let o = run(&check("kind = \"dns\"\nquery = \"db.other\""), &r);
    assert_eq!(o.status, Status::Ok, "{o:?}");
    // An absolute name skips the search list.
    assert_reason(
        &run(&check("kind = \"dns\"\nquery = \"db.\""), &r),
        Reason::DnsNxdomain,
    );
}

#[test]
fn dns_explicit_server_bypasses_the_system_resolver() {
    // The resolver's nameserver is silent; the check's own `server` answers.
    let (quiet, _) = dns_server(Dns::Silence, vec![], vec![]);
    let (ns, _) = dns_server(Dns::Answer, vec![[127, 0, 0, 3]], vec![]);
    let o = run(
        &check(&format!(
            "kind = \"dns\"\nquery = \"db\"\nserver = \"{ns}\""
        )),
        &resolver(Some(quiet)),
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
}

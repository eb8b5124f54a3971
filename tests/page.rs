//! The status page (`GET /`): what the endpoint answers (one document, no
//! script, nothing external, a policy that allows only its own style by
//! hash, everything the agent names escaped), and what a real browser shows
//! (headless Chromium through its DevTools protocol): a row per check with
//! the right word and colour in every state, the agent's indicator,
//! sparklines, the flapping badge, a change shown without a reload by hand,
//! the same with JavaScript off, and the endpoint's limits holding with the
//! page open. Needs chromium (`bash .ci/run` installs it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{http_raw, temp_dir, wait_for, wait_for_opt, Agent};
use serde_json::Value;

/// A check in every state: ok (a listener), warning (a plugin exiting 1),
/// critical (a port bound but not listening: refused, and no other socket,
/// the agent's own endpoint included, can take it), flapping (a plugin that
/// alternates), pending (a plugin that runs for 30 s). Returns the agent,
/// the refusing socket (`listen` on it brings the check back) and the
/// listener.
fn agent_in_every_state(
    tag: &str,
    labels: &str,
    extra: &str,
) -> (Agent, socket2::Socket, TcpListener) {
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let refusing =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    refusing
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let down = refusing.local_addr().unwrap().as_socket().unwrap();
    let dir = temp_dir(tag);
    let counter = dir.join("flips");
    let config = format!(
        "[agent]\nname = \"edge-1\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nlabels = {labels}\n\n\
         [[check]]\nname = \"up\"\nkind = \"tcp\"\ntarget = \"{}\"\n\n\
         [[check]]\nname = \"warned\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"echo disk 85%; exit 1\"]\n\n\
         [[check]]\nname = \"down\"\nkind = \"tcp\"\nrole = \"control_plane\"\ntarget = \"{down}\"\n\n\
         [[check]]\nname = \"flappy\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \
         \"n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; exit $((n % 2 * 2))\"]\n\n\
         [[check]]\nname = \"slow\"\nkind = \"exec\"\ncommand = [\"/bin/sleep\", \"30\"]\n\
         interval = \"60s\"\ntimeout = \"40s\"\n\n{extra}",
        up.local_addr().unwrap(),
        c = counter.display()
    );
    (Agent::start_in(dir, &config), refusing, up)
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let head = raw.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn the_page_is_one_document_with_nothing_external_and_everything_escaped() {
    // An upstream that refuses: its state on the page, its token never.
    let refusing = common::closed_port();
    let (agent, _down, _up) = agent_in_every_state(
        "page-http",
        "{ site = \"<script>alert(1)</script>\", owner = \"a&b\\\"c\" }",
        &common::upstream::section(&format!("http://{refusing}/"), "page-secret-token"),
    );
    wait_for("down to be critical", Duration::from_secs(10), || {
        let (_, body) = agent.get("/");
        body.contains("check st-crit\" data-check=\"down\"")
            .then_some(())
    });
    let raw = http_raw(agent.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert_eq!(
        header(&raw, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&raw, "Refresh"), Some("5"));
    assert_eq!(header(&raw, "X-Content-Type-Options"), Some("nosniff"));
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    assert!(body.starts_with("<!doctype html>"), "{body}");

    // The policy allows nothing but the page's one stylesheet, by hash.
    let csp = header(&raw, "Content-Security-Policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    for part in [
        "img-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    let style = body
        .split_once("<style>")
        .and_then(|(_, r)| r.split_once("</style>"))
        .unwrap()
        .0;
    let hash = ring::digest::digest(&ring::digest::SHA256, style.as_bytes());
    assert!(
        csp.contains(&format!(
            "'sha256-{}'",
            tether::format::base64::encode(hash.as_ref())
        )),
        "the style's hash is not the policy's: {csp}"
    );
    assert_eq!(body.matches("<style>").count(), 1);

    // No script, nothing loaded from anywhere: no source attribute at all,
    // and the only links are the endpoint's own paths (a URL the agent
    // shows, its upstream's, is text).
    let lower = body.to_ascii_lowercase();
    for banned in [
        "<script",
        "javascript:",
        " src=",
        "<img",
        "<link",
        "<iframe",
        "<form",
        "@import",
        "url(",
    ] {
        assert!(!lower.contains(banned), "the page has {banned}");
    }
    for href in body.split("href=\"").skip(1) {
        let target = href.split('"').next().unwrap();
        assert!(target.starts_with('/'), "an external link: {target}");
    }

    // What the agent names is text, never markup.
    assert!(!body.contains("<script>alert(1)"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(body.contains("a&amp;b&quot;c"), "{body}");
    assert!(
        body.contains(&format!("upstream http://{refusing}/: <b>")),
        "{body}"
    );
    assert!(!body.contains("page-secret-token"), "the token on the page");

    // One row per check, each with its state word.
    let rows = body.matches("<tr class=\"check ").count();
    assert_eq!(rows, 5, "{body}");
    assert!(body.contains(
        "data-check=\"slow\"><td><span class=\"dot\"></span><span class=\"word\">PENDING"
    ));

    // HEAD: the same head, no body.
    let head = http_raw(agent.addr, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "a body after HEAD: {head}");
    // The doctor, rendered: its verdict as an indicator and a word, the
    // same policy.
    let doctor = http_raw(
        agent.addr,
        b"GET /doctor?format=html HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(doctor.starts_with("HTTP/1.1 200 OK\r\n"), "{doctor}");
    assert_eq!(
        header(&doctor, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&doctor, "Content-Security-Policy"), Some(csp));
    let word = match header(&doctor, "Tether-Verdict") {
        Some("0") => "OK",
        Some("1") => "WARNING",
        _ => "CRITICAL",
    };
    assert!(
        doctor.contains(&format!(
            "<span class=\"word\" id=\"verdict\">{word}</span>"
        )),
        "{doctor}"
    );
    assert!(doctor.contains("connect_refused"), "{doctor}");
    assert!(!doctor.to_ascii_lowercase().contains("<script"));
    // Only GET and HEAD: nothing on the page changes state.
    let post = http_raw(
        agent.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

/// The rows as the browser shows them: name, word, the dot's colour, a
/// sparkline drawn, a flapping badge.
fn rows(b: &mut Browser) -> Vec<(String, String, String, bool, bool)> {
    let v = b.eval(
        "JSON.stringify([...document.querySelectorAll('tr.check')].map(r => [\
         r.dataset.check, r.querySelector('.word').textContent,\
         getComputedStyle(r.querySelector('.dot')).backgroundColor,\
         !!r.querySelector('svg.spark polyline'), !!r.querySelector('.flapping')]))",
    );
    let parsed: Vec<(String, String, String, bool, bool)> =
        serde_json::from_str(v.as_str().unwrap_or("[]")).unwrap();
    parsed
}

const GREEN: &str = "rgb(26, 127, 55)";
const YELLOW: &str = "rgb(191, 135, 0)";
const RED: &str = "rgb(207, 34, 46)";
const GREY: &str = "rgb(140, 149, 159)";

fn row<'a>(
    rows: &'a [(String, String, String, bool, bool)],
    name: &str,
) -> &'a (String, String, String, bool, bool) {
    rows.iter()
        .find(|r| r.0 == name)
        .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
}

fn artefacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/page-test");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn chromium_shows_every_state_and_a_change_without_a_reload_by_hand() {
    let (agent, down, _up) = agent_in_every_state("page-browser", "{ site = \"fra1\" }", "");
    let url = format!("http://{}/", agent.addr);
    let mut b = Browser::start(&temp_dir("chromium-profile"), true);
    b.open(&url);

    // Every state once the flapping check has flipped enough (up to 21
    // runs, one a second).
    let shown = wait_for("every state on the page", Duration::from_secs(40), || {
        let r = rows(&mut b);
        (r.len() == 5 && row(&r, "flappy").4).then_some(r)
    });
    assert_eq!(row(&shown, "up").1, "OK");
    assert_eq!(row(&shown, "up").2, GREEN);
    assert_eq!(row(&shown, "warned").1, "WARNING");
    assert_eq!(row(&shown, "warned").2, YELLOW);
    assert_eq!(row(&shown, "down").1, "CRITICAL");
    assert_eq!(row(&shown, "down").2, RED);
    assert_eq!(row(&shown, "slow").1, "PENDING");
    assert_eq!(row(&shown, "slow").2, GREY);
    assert!(!row(&shown, "slow").3, "a sparkline before any run");
    for name in ["up", "warned", "down", "flappy"] {
        assert!(row(&shown, name).3, "no sparkline for {name}");
    }
    // The agent: the control plane is down, so offline, red, in words too.
    // (Read until a whole document answers: a look may land in a reload.)
    let offline = format!("OFFLINE {RED}");
    let mut agent_status = Value::Null;
    wait_for_opt(Duration::from_secs(12), || {
        agent_status = b.eval(
            "document.getElementById('agent-status').textContent + ' ' + \
             getComputedStyle(document.querySelector('#agent .big')).backgroundColor",
        );
        (agent_status.as_str() == Some(&*offline)).then_some(())
    });
    assert_eq!(agent_status.as_str(), Some(&*offline));
    b.screenshot(&artefacts().join("every-state.png"));

    // The control plane comes back: the page shows it by itself (its
    // Refresh header), the test never reloads it.
    let loads_before = b.eval("performance.timeOrigin").as_f64().unwrap();
    down.listen(16).unwrap();
    let started = Instant::now();
    wait_for(
        "the page to show down as OK",
        Duration::from_secs(30),
        || {
            let r = rows(&mut b);
            (r.len() == 5 && row(&r, "down").1 == "OK").then_some(())
        },
    );
    println!("the change showed after {:?}", started.elapsed());
    assert_ne!(
        b.eval("performance.timeOrigin").as_f64().unwrap(),
        loads_before,
        "the same document: the change came without a reload?"
    );
    let after = b.eval("document.getElementById('agent-status').textContent");
    assert_ne!(after.as_str(), Some("OFFLINE"));
    b.screenshot(&artefacts().join("recovered.png"));

    // On a phone-sized screen: one block per check, nothing wider than
    // the screen.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    );
    let wide = b.eval("document.documentElement.scrollWidth");
    assert!(
        wide.as_f64().unwrap() <= 390.0,
        "{wide} px wide on a 390 px screen"
    );
    b.screenshot(&artefacts().join("phone.png"));
}

#[test]
fn without_javascript_the_page_shows_the_same() {
    let (agent, _down, _up) = agent_in_every_state("page-nojs", "{}", "");
    let mut b = Browser::start(&temp_dir("chromium-nojs"), false);
    b.open(&format!("http://{}/", agent.addr));
    assert_eq!(b.eval("document.scripts.length"), Value::from(0));
    let shown = wait_for("the rows", Duration::from_secs(20), || {
        let r = rows(&mut b);
        (r.len() == 5 && row(&r, "down").1 == "CRITICAL").then_some(r)
    });
    assert_eq!(row(&shown, "up").1, "OK");
    assert_eq!(row(&shown, "up").2, GREEN);
}

#[test]
fn the_endpoint_limits_hold_with_the_page_open() {
    let (agent, _down, _up) = agent_in_every_state("page-limits", "{}", "");
    let mut b = Browser::start(&temp_dir("chromium-limits"), true);
    b.open(&format!("http://{}/", agent.addr));
    // More idle connections than the cap: /health and the page still
    // answer (the idle ones are closed first).
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(agent.addr).unwrap())
        .collect();
    assert_eq!(agent.get("/health").0, 200);
    assert_eq!(agent.get("/").0, 200);
    drop(idle);
    // A client that never finishes its request for the page is dropped
    // after the client deadline (5 s), and holds nothing up meanwhile.
    let mut slow = TcpStream::connect(agent.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert_eq!(agent.get("/health").0, 200);
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let sent = Instant::now();
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "an answer to half a request");
    assert!(
        sent.elapsed() < Duration::from_secs(8),
        "{:?}",
        sent.elapsed()
    );
    // A head past 8 KiB is refused, the page's path or not.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let raw = http_raw(agent.addr, big.as_bytes());
    assert!(raw.starts_with("HTTP/1.1 431"), "{raw}");
    // The open page keeps loading itself and the agent keeps answering. It
    // reloads every 5 s, so a look may land between one document and the
    // next (no rows yet): within two reloads it shows every check again.
    let shown = wait_for_opt(Duration::from_secs(12), || {
        (b.eval("document.querySelectorAll('tr.check').length") == 5).then_some(())
    });
    assert!(
        shown.is_some(),
        "the page's rows did not come back: {}",
        b.eval("document.location.href + ' ' + document.body.innerText")
    );
    assert_eq!(agent.get("/ready").0, 503, "the slow check is pending");
}

/// In a terminal browser the status reads as words.
#[test]
fn w3m_shows_the_status_in_words() {
    let (agent, _down, _up) = agent_in_every_state("page-w3m", "{}", "");
    wait_for(
        "a first run of every fast check",
        Duration::from_secs(10),
        || {
            let (_, body) = agent.get("/");
            (body.matches("class=\"check st-").count() == 5
                && !body.contains("st-pending\" data-check=\"down"))
            .then_some(())
        },
    );
    let out = std::process::Command::new("w3m")
        .args(["-dump", "-cols", "100"])
        .arg(format!("http://{}/", agent.addr))
        .output()
        .expect("w3m (bash .ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(text.contains("edge-1 OFFLINE (critical)"), "{text}");
    for (word, check) in [
        ("OK", "up"),
        ("WARNING", "warned"),
        ("CRITICAL", "down"),
        ("PENDING", "slow"),
    ] {
        assert!(
            text.lines().any(|l| l.contains(word) && l.contains(check)),
            "no line with {word} and {check}:\n{text}"
        );
    }
}

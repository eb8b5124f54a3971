//! The local HTTP endpoint (default 127.0.0.1:7341): `/` (the status page,
//! [`crate::serve::page`]), `/health`, `/ready`,
//! `/status` (`?history=1` adds the health history, `?format=table` for
//! terminals), `/metrics`, `/logs?n=200` (the newest log lines kept in
//! memory) and `/doctor` (`?format=json` or `html`; runs the runbook, one run at a
//! time, at most [`DOCTOR_DEADLINE`]). Bounded in every direction: request
//! heads of at most [`MAX_HEAD`], a client that has not sent its request or
//! read the answer within [`CLIENT_DEADLINE`] is dropped, at most
//! [`MAX_CONNECTIONS`] at once. At the cap a new connection is served by
//! closing the oldest one that has not yet sent its request, so idle
//! connections (any local user can open them) never keep `/health` from
//! answering; only when every connection is busy answering is the new one
//! closed. Other paths 404,
//! other methods 405, garbage 400, and nothing a client sends can panic it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_executor::{LocalExecutor, Task};
use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::agent::snapshot::Snapshot;
use crate::agent::state::{stall_limit, AgentState};
use crate::os::alarm::until;
use crate::os::procfs;
use crate::serve::metrics::{self, Chunked, Extra};
use crate::serve::page;

pub const MAX_HEAD: usize = 8 * 1024;
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
pub const MAX_CONNECTIONS: usize = 32;
/// A doctor run ends by then, whatever its steps' own deadlines.
pub const DOCTOR_DEADLINE: Duration = Duration::from_secs(120);
/// `/metrics` yields to every probe due while it renders; on a saturated
/// agent it answers 503 by then (Prometheus's default scrape timeout).
pub const METRICS_DEADLINE: Duration = Duration::from_secs(10);
const PATHS: &str = "/ /health /ready /status /metrics /logs /doctor";

pub async fn serve(
    ex: &'static LocalExecutor<'static>,
    listener: Async<TcpListener>,
    state: Rc<AgentState>,
) {
    let conns: Rc<RefCell<Conns>> = Rc::default();
    let doctoring = Rc::new(Cell::new(false));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("local endpoint: accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let evicted = {
            let mut c = conns.borrow_mut();
            if c.idle.len() + c.busy < MAX_CONNECTIONS {
                None
            } else if let Some((_, t)) = c.idle.pop_front() {
                Some(t)
            } else {
                log::debug!(
                    "local endpoint: {MAX_CONNECTIONS} connections busy, closing a new one"
                );
                continue;
            }
        };
        // Cancelled: the idle connection's future (and socket) is dropped.
        drop(evicted);
        let id = {
            let mut c = conns.borrow_mut();
            c.next_id += 1;
            c.next_id
        };
        let (st, cs, doc) = (state.clone(), conns.clone(), doctoring.clone());
        let task = ex.spawn(async move {
            handle(stream, &st, &doc, &cs, id).await;
            // Done (busy or still idle): leave the books.
            let mut c = cs.borrow_mut();
            match c.idle.iter().position(|(i, _)| *i == id) {
                Some(at) => {
                    if let Some((_, t)) = c.idle.remove(at) {
                        t.detach();
                    }
                }
                None => c.busy -= 1,
            }
        });
        conns.borrow_mut().idle.push_back((id, task));
    }
}

/// The endpoint's connections: those still reading their request (which a
/// new connection at the cap may close), oldest first, and how many are
/// answering.
#[derive(Default)]
struct Conns {
    next_id: u64,
    idle: VecDeque<(u64, Task<()>)>,
    busy: usize,
}

impl Conns {
    /// Connection `id` has its request: it can no longer be evicted.
    fn now_busy(&mut self, id: u64) {
        if let Some(at) = self.idle.iter().position(|(i, _)| *i == id) {
            if let Some((_, t)) = self.idle.remove(at) {
                t.detach();
            }
            self.busy += 1;
        }
    }
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    extra: String,
    body: String,
}

fn text(status: &'static str, body: impl Into<String>) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        extra: String::new(),
        body: body.into(),
    }
}

/// What a request asks for: an answer at once, or a doctor run.
enum Routed {
    Now(Response),
    Doctor(DoctorFormat),
    /// `/`: the status page, rendered in `handle` as `/status` is.
    Page(Box<crate::agent::snapshot::Snapshot>),
    /// `/metrics`: rendered in `handle`, yielding to the probes.
    Metrics(Box<(crate::agent::snapshot::Snapshot, Extra)>),
    /// `/status`, the same way: JSON, or the table (at a width).
    Status(Box<(crate::agent::snapshot::Snapshot, Option<Option<usize>>)>),
}

async fn handle(
    mut stream: Async<TcpStream>,
    state: &Rc<AgentState>,
    doctoring: &Cell<bool>,
    conns: &RefCell<Conns>,
    id: u64,
) {
    let Some((routed, head_only, chunks)) = until(
        Instant::now() + CLIENT_DEADLINE,
        read_request(&mut stream, state),
    )
    .await
    .flatten() else {
        return;
    };
    conns.borrow_mut().now_busy(id);
    // Who answers: `tether status` and `doctor` check that this is the
    // agent their configuration names, not another one on the port.
    let name = crate::format::text::clip(&state.config.borrow().agent.name, 200);
    let agent_id = state
        .uplink
        .borrow()
        .as_ref()
        .and_then(|u| u.identity.as_ref().ok().cloned())
        .map_or(String::new(), |id| format!("Tether-Agent-Id: {id}\r\n"));
    let head = |status: &str, content_type: &str, length: Option<usize>, extra: &str| {
        let length = length.map_or("Transfer-Encoding: chunked\r\n".into(), |n| {
            format!("Content-Length: {n}\r\n")
        });
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{length}Cache-Control: no-store\r\nConnection: close\r\nTether-Agent: {name}\r\n{agent_id}{extra}\r\n"
        )
    };
    let resp = match routed {
        Routed::Now(r) => r,
        Routed::Metrics(m) => {
            const TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
            // Sent on in chunks as it is rendered (a HEAD, or an HTTP/1.0
            // client, waits for the length instead).
            let mut chunked = Chunked::new(&mut stream, head("200 OK", TYPE, None, ""));
            let sink = (chunks && !head_only).then_some(&mut chunked);
            let render = metrics::render(&m.0, &m.1, sink);
            let rendered = until(Instant::now() + METRICS_DEADLINE, render).await;
            if chunked.started() {
                // Past the deadline, the body stays cut short: the
                // scraper sees an error, not fewer series.
                if let Some(rest) = rendered {
                    until(Instant::now() + CLIENT_DEADLINE, chunked.finish(&rest)).await;
                }
                return;
            }
            match rendered {
                Some(body) => Response {
                    status: "200 OK",
                    content_type: TYPE,
                    extra: String::new(),
                    body,
                },
                None => text(
                    "503 Service Unavailable",
                    format!(
                        "metrics did not render within {}: the agent is saturated\n",
                        crate::config::duration::format(METRICS_DEADLINE)
                    ),
                ),
            }
        }
        Routed::Status(s) => {
            let (snap, table) = &*s;
            let render = async {
                match table {
                    Some(width) => snap.to_table_sliced(*width, metrics::SLICE).await,
                    None => snap.to_json_sliced(metrics::SLICE).await,
                }
            };
            match until(Instant::now() + METRICS_DEADLINE, render).await {
                Some(body) => Response {
                    status: "200 OK",
                    content_type: if table.is_some() {
                        "text/plain; charset=utf-8"
                    } else {
                        "application/json"
                    },
                    // The severity the snapshot already has, for `tether
                    // status`'s exit code.
                    extra: format!("Tether-Severity: {}\r\n", snap.severity.as_str()),
                    body,
                },
                None => text(
                    "503 Service Unavailable",
                    format!(
                        "status did not render within {}: the agent is saturated\n",
                        crate::config::duration::format(METRICS_DEADLINE)
                    ),
                ),
            }
        }
        Routed::Page(snap) => match until(
            Instant::now() + METRICS_DEADLINE,
            page::render(&snap, metrics::SLICE),
        )
        .await
        {
            Some(body) => Response {
                status: "200 OK",
                content_type: "text/html; charset=utf-8",
                extra: format!(
                    "Tether-Severity: {}\r\n{}Refresh: {}\r\n",
                    snap.severity.as_str(),
                    page_headers(),
                    page::REFRESH_SECONDS
                ),
                body,
            },
            None => text(
                "503 Service Unavailable",
                format!(
                    "the page did not render within {}: the agent is saturated\n",
                    crate::config::duration::format(METRICS_DEADLINE)
                ),
            ),
        },
        Routed::Doctor(_) if doctoring.get() => {
            let mut r = text(
                "429 Too Many Requests",
                "a doctor run is in progress; try again when it has finished\n",
            );
            r.extra = "Retry-After: 10\r\n".into();
            r
        }
        Routed::Doctor(format) => {
            doctoring.set(true);
            let run = crate::diagnose::doctor::diagnose(state, true);
            let d = until(Instant::now() + DOCTOR_DEADLINE, run).await;
            doctoring.set(false);
            match d {
                Some(d) => {
                    let verdict = format!("Tether-Verdict: {}\r\n", d.exit_code());
                    let (content_type, extra, body) = match format {
                        DoctorFormat::Json => ("application/json", verdict, d.to_json()),
                        DoctorFormat::Text => ("text/plain; charset=utf-8", verdict, d.to_text()),
                        DoctorFormat::Html => (
                            "text/html; charset=utf-8",
                            verdict + &page_headers(),
                            page::doctor(&d),
                        ),
                    };
                    Response {
                        status: "200 OK",
                        content_type,
                        extra,
                        body,
                    }
                }
                None => text(
                    "504 Gateway Timeout",
                    "the doctor run did not finish in time\n",
                ),
            }
        }
    };
    let mut out = head(
        resp.status,
        resp.content_type,
        Some(resp.body.len()),
        &resp.extra,
    );
    if !head_only {
        out.push_str(&resp.body);
    }
    let write = async {
        let _ = stream.write_all(out.as_bytes()).await;
        let _ = stream.flush().await;
    };
    until(Instant::now() + CLIENT_DEADLINE, write).await;
}

/// Reads one request head; `None` when the client went away. With the
/// route: a HEAD request, and one that takes a chunked answer (HTTP/1.1).
async fn read_request(
    stream: &mut Async<TcpStream>,
    state: &AgentState,
) -> Option<(Routed, bool, bool)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    Some(loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or("");
                let path = req.path.unwrap_or("");
                let chunks = req.version == Some(1);
                break (route(method, path, state), method == "HEAD", chunks);
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                break (
                    Routed::Now(text(
                        "431 Request Header Fields Too Large",
                        "request head over 8 KiB\n",
                    )),
                    false,
                    false,
                )
            }
            Err(httparse::Error::TooManyHeaders) => {
                break (
                    Routed::Now(text(
                        "431 Request Header Fields Too Large",
                        "more than 32 request headers\n",
                    )),
                    false,
                    false,
                )
            }
            Err(_) => {
                break (
                    Routed::Now(text("400 Bad Request", "bad request\n")),
                    false,
                    false,
                )
            }
        }
    })
}

#[derive(Clone, Copy)]
enum DoctorFormat {
    Text,
    Json,
    Html,
}

/// What every HTML answer carries: its policy (only its own stylesheet),
/// no sniffing, no referrer, no framing (`head` adds `Cache-Control:
/// no-store` to every answer).
fn page_headers() -> String {
    format!(
        "Content-Security-Policy: {}\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\n",
        page::csp()
    )
}

/// `key=value` in a query string.
fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn route(method: &str, target: &str, state: &AgentState) -> Routed {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !PATHS.split(' ').any(|p| p == path) {
        return Routed::Now(text("404 Not Found", format!("not found; try {PATHS}\n")));
    }
    if method != "GET" && method != "HEAD" {
        let mut r = text("405 Method Not Allowed", "only GET and HEAD\n");
        r.extra = "Allow: GET, HEAD\r\n".into();
        return Routed::Now(r);
    }
    let table = param(query, "format") == Some("table");
    // `tether status` on a terminal: the table cut to its width.
    let width = param(query, "width")
        .and_then(|w| w.parse::<usize>().ok())
        .filter(|w| (40..=1000).contains(w));
    Routed::Now(match path {
        "/doctor" => {
            return Routed::Doctor(match param(query, "format") {
                Some("json") => DoctorFormat::Json,
                Some("html") => DoctorFormat::Html,
                _ => DoctorFormat::Text,
            })
        }
        "/" => return Routed::Page(Box::new(Snapshot::with_history(state))),
        "/logs" => {
            let n = match param(query, "n").map(str::parse::<usize>) {
                None => 200,
                Some(Ok(n)) => n.min(crate::os::logger::RING_LINES),
                Some(Err(_)) => {
                    return Routed::Now(text(
                        "400 Bad Request",
                        format!(
                            "n must be a number of lines, at most {}\n",
                            crate::os::logger::RING_LINES
                        ),
                    ))
                }
            };
            text("200 OK", crate::os::logger::recent(n))
        }
        "/health" => {
            let idle = state.last_turn.get().elapsed();
            let limit = stall_limit(&state.config.borrow());
            if idle > limit {
                text(
                    "503 Service Unavailable",
                    format!("scheduler stalled: last turn {}s ago\n", idle.as_secs()),
                )
            } else {
                text("200 OK", "ok\n")
            }
        }
        "/ready" => {
            let (pending, total) = state.pending();
            if pending == 0 {
                text("200 OK", "ready\n")
            } else {
                text(
                    "503 Service Unavailable",
                    format!(
                        "not ready: {pending} of {total} checks have not completed a first run\n"
                    ),
                )
            }
        }
        "/status" => {
            let snap = if param(query, "history") == Some("1") {
                Snapshot::with_history(state)
            } else {
                Snapshot::of(state)
            };
            return Routed::Status(Box::new((snap, table.then_some(width))));
        }
        _ => {
            let extra = Extra {
                in_flight: state.limit.borrow().in_use(),
                reloads: state.reloads.get(),
                reload_failures: state.reload_failures.get(),
                process: procfs::read_self(),
                lateness: state.lateness.view(),
                skipped: state.skipped.get(),
            };
            return Routed::Metrics(Box::new((Snapshot::of(state), extra)));
        }
    })
}

//! The local HTTP endpoint (default 127.0.0.1:8080): `/health`, `/ready`,
//! `/status` and `/metrics`. Bounded in every direction: request heads of at
//! most [`MAX_HEAD`], a client that has not finished within
//! [`CLIENT_DEADLINE`] is dropped, at most [`MAX_CONNECTIONS`] at once (more
//! are closed on accept). Other paths 404, other methods 405, garbage 400,
//! and nothing a client sends can panic it.

use std::cell::Cell;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::metrics::{self, Extra};
use crate::procfs;
use crate::scheduler::until;
use crate::state::{stall_limit, AgentState};

pub const MAX_HEAD: usize = 8 * 1024;
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(5);
pub const MAX_CONNECTIONS: usize = 32;

pub async fn serve(
    ex: &'static LocalExecutor<'static>,
    listener: Async<TcpListener>,
    state: Rc<AgentState>,
) {
    let active = Rc::new(Cell::new(0usize));
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
        if active.get() >= MAX_CONNECTIONS {
            log::debug!("local endpoint: {MAX_CONNECTIONS} connections open, closing a new one");
            continue;
        }
        active.set(active.get() + 1);
        let (st, act) = (state.clone(), active.clone());
        ex.spawn(async move {
            until(Instant::now() + CLIENT_DEADLINE, handle(stream, &st)).await;
            act.set(act.get() - 1);
        })
        .detach();
    }
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    extra: &'static str,
    body: String,
}

fn text(status: &'static str, body: impl Into<String>) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        extra: "",
        body: body.into(),
    }
}

async fn handle(mut stream: Async<TcpStream>, state: &AgentState) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (resp, head_only) = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or("");
                let path = req.path.unwrap_or("");
                break (route(method, path, state), method == "HEAD");
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                break (
                    text(
                        "431 Request Header Fields Too Large",
                        "request head over 8 KiB\n",
                    ),
                    false,
                )
            }
            Err(httparse::Error::TooManyHeaders) => {
                break (
                    text(
                        "431 Request Header Fields Too Large",
                        "more than 32 request headers\n",
                    ),
                    false,
                )
            }
            Err(_) => break (text("400 Bad Request", "bad request\n"), false),
        }
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{}\r\n",
        resp.status,
        resp.content_type,
        resp.body.len(),
        resp.extra
    );
    if !head_only {
        out.push_str(&resp.body);
    }
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.flush().await;
}

fn route(method: &str, target: &str, state: &AgentState) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !matches!(path, "/health" | "/ready" | "/status" | "/metrics") {
        return text(
            "404 Not Found",
            "not found; try /health /ready /status /metrics\n",
        );
    }
    if method != "GET" && method != "HEAD" {
        let mut r = text("405 Method Not Allowed", "only GET and HEAD\n");
        r.extra = "Allow: GET, HEAD\r\n";
        return r;
    }
    match path {
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
            let snap = state.snapshot();
            if query.split('&').any(|kv| kv == "format=table") {
                text("200 OK", snap.to_table())
            } else {
                Response {
                    status: "200 OK",
                    content_type: "application/json",
                    extra: "",
                    body: snap.to_json(),
                }
            }
        }
        _ => {
            let extra = Extra {
                in_flight: state.limit.borrow().in_use(),
                reloads: state.reloads.get(),
                reload_failures: state.reload_failures.get(),
                process: procfs::read_self(),
            };
            Response {
                status: "200 OK",
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                extra: "",
                body: metrics::render(&state.snapshot(), &extra),
            }
        }
    }
}

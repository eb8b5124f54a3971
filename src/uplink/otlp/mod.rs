//! OTLP/HTTP metrics, the third destination beside the upstream and
//! remote-write: the request ([`push`]) and what its answer means
//! ([`Answer`]), the wire format ([`wire`]), the points records stand for
//! ([`points`]) and the resource that sends them ([`resource`]). The loop
//! that drives it is `agent/otlp.rs`.
//!
//! Retries follow the OTLP specification: 429, 502, 503 and 504 and no
//! answer at all are retried (`Retry-After` honoured up to five minutes,
//! never shorter than the backoff); every other 4xx and 5xx is final for
//! the request, which is set aside, except those that are not about the
//! points: 401 and 403 (the credentials) and 404 (the URL) hold them
//! instead, and a redirect (3xx, not followed) is retried (the specification would drop them; a rotated token must not
//! cost the points sent meanwhile). A 2xx may name points the receiver
//! rejected (`partial_success`): the rest are stored, and those are
//! counted, not sent again.

pub mod points;
pub mod resource;
pub mod wire;

use std::time::SystemTime;

use crate::config::Otlp;
use crate::net::resolve::Resolver;
use crate::uplink::link::LinkState;
use crate::uplink::post::{answer_line, authorization, Destination};
use crate::uplink::upstream::{retry_after, MAX_RETRY_AFTER};

/// What a push came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// 2xx: stored, but for `rejected` points (and the receiver's
    /// message) when it said so.
    Stored { rejected: u64, message: String },
    /// 429, 502, 503, 504, or no usable answer: the same request goes
    /// again after the wait. `reached`: a connection was made.
    Retry {
        after: Option<std::time::Duration>,
        why: String,
        reached: bool,
    },
    /// 401, 403 (`CredentialsRejected`) or 404 (`NotFound`): held and
    /// asked again later.
    Held(LinkState, String),
    /// Any other code: the receiver will not take this request.
    Rejected(u16, String),
}

/// A request body as it goes out: an `ExportMetricsServiceRequest`,
/// gzip-compressed or not. Compressed once when made, so a batch held
/// through an outage takes a few KiB, not the raw request's tens.
pub struct Body {
    pub bytes: Vec<u8>,
    pub gzip: bool,
}

impl Body {
    pub fn new(request: Vec<u8>, gzip: bool) -> Body {
        let bytes = if gzip {
            crate::format::gzip::compress(&request)
        } else {
            request
        };
        Body { bytes, gzip }
    }
}

/// Posts one request; never takes longer than `o.timeout`.
pub async fn push(o: &Otlp, resolver: &Resolver, body: &Body) -> Answer {
    let to = Destination {
        url: &o.url,
        path: &o.url.path,
        ca_file: o.ca_file.as_ref(),
        timeout: o.timeout,
    };
    let mut headers: Vec<(String, String)> =
        vec![("Content-Type".into(), "application/x-protobuf".into())];
    if body.gzip {
        headers.push(("Content-Encoding".into(), "gzip".into()));
    }
    headers.extend(authorization(o.auth.as_ref()));
    headers.extend(o.headers.iter().cloned());
    let resp = match crate::uplink::post::post(&to, resolver, &headers, &body.bytes).await {
        Ok(r) => r,
        Err(e) => {
            return Answer::Retry {
                after: None,
                why: e.why,
                reached: e.connected,
            }
        }
    };
    let s = resp.status;
    let said = || {
        let line = wire::status_message(&resp.body).unwrap_or_else(|| resp.body_line());
        answer_line(&resp, &line)
    };
    match s {
        200..=299 => {
            let (rejected, message) = wire::partial_success(&resp.body).unwrap_or_default();
            Answer::Stored {
                rejected: rejected.max(0) as u64,
                message: crate::format::text::clip(&message, 300),
            }
        }
        429 | 502 | 503 | 504 => Answer::Retry {
            after: resp
                .header("retry-after")
                .and_then(|v| retry_after(v, SystemTime::now()))
                .map(|d| d.min(MAX_RETRY_AFTER)),
            why: said(),
            reached: true,
        },
        401 | 403 => Answer::Held(LinkState::CredentialsRejected, said()),
        404 => Answer::Held(LinkState::NotFound, said()),
        400..=599 => Answer::Rejected(s, said()),
        // A redirect (tether does not follow one) or a code HTTP does not
        // define says nothing against the points: kept, and asked again.
        _ => Answer::Retry {
            after: None,
            why: said(),
            reached: true,
        },
    }
}

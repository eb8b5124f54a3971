//! Prometheus remote-write 1.0: the request ([`push`]) and what its answer
//! means ([`Answer`]), the body ([`wire`]) and the samples a record stands
//! for ([`series`]). The loop that drives it is `agent/remote_write.rs`.
//!
//! Retries follow the spec: 5xx and 429 are retried (`Retry-After`
//! honoured up to five minutes, never shorter than the backoff), every
//! other 4xx is final for the samples it refused, except those that are
//! not about the samples: 401 and 403 (the credentials) and 404 (the URL)
//! hold them instead. The credentials go in the `Authorization` header and
//! nowhere else.

pub mod series;
pub mod wire;

use std::time::{Duration, SystemTime};

use crate::config::RemoteWrite;
use crate::net::resolve::Resolver;
use crate::uplink::link::LinkState;
use crate::uplink::post::{answer_line, authorization, Destination};
use crate::uplink::upstream::{retry_after, MAX_RETRY_AFTER};

/// Backoff between retries: full jitter over 1 s doubling to this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What a push came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// 2xx: every sample is stored.
    Stored,
    /// 5xx, 429, or no usable answer: the same batch goes again after the
    /// wait (`Retry-After`, if the receiver said). `reached`: a connection
    /// was made (false: DNS or TCP failed, nothing was sent).
    Retry {
        after: Option<Duration>,
        why: String,
        reached: bool,
    },
    /// 401, 403 (`CredentialsRejected`) or 404 (`NotFound`): not the
    /// samples' fault; they are held and asked for again later.
    Held(LinkState, String),
    /// Any other 4xx: the receiver will never take this request as it is
    /// (some sample in it is refused, or 413: it is too large).
    Rejected(u16, String),
}

/// Posts one snappy-compressed `WriteRequest`; never takes longer than
/// `rw.timeout`.
pub async fn push(rw: &RemoteWrite, resolver: &Resolver, body: &[u8]) -> Answer {
    let to = Destination {
        url: &rw.url,
        path: &rw.url.path,
        ca_file: rw.ca_file.as_ref(),
        timeout: rw.timeout,
    };
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/x-protobuf".into()),
        ("Content-Encoding".into(), "snappy".into()),
        ("X-Prometheus-Remote-Write-Version".into(), "0.1.0".into()),
    ];
    headers.extend(authorization(rw.auth.as_ref()));
    headers.extend(rw.headers.iter().cloned());
    let resp = match crate::uplink::post::post(&to, resolver, &headers, body).await {
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
    let said = || answer_line(&resp, &resp.body_line());
    let retry = |after| Answer::Retry {
        after,
        why: said(),
        reached: true,
    };
    match s {
        200..=299 => Answer::Stored,
        429 | 500..=599 => retry(
            resp.header("retry-after")
                .and_then(|v| retry_after(v, SystemTime::now()))
                .map(|d| d.min(MAX_RETRY_AFTER)),
        ),
        401 | 403 => Answer::Held(LinkState::CredentialsRejected, said()),
        404 => Answer::Held(LinkState::NotFound, said()),
        400..=499 => Answer::Rejected(s, said()),
        _ => retry(None),
    }
}

/// The wait before retry `failures + 1`: full jitter over 1 s doubling
/// to [`BACKOFF_CAP`], at least 1 s.
pub fn backoff(failures: u32) -> Duration {
    let cap = BACKOFF_CAP.min(Duration::from_secs(1) * 2u32.saturating_pow(failures.min(16)));
    let ms = fastrand::u64(1000..=cap.as_millis().max(1000) as u64);
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_between_one_and_thirty_seconds() {
        for f in 0..40 {
            let d = backoff(f);
            assert!(
                d >= Duration::from_secs(1) && d <= BACKOFF_CAP,
                "{f}: {d:?}"
            );
        }
    }
}

//! The HTTP/1 response reader: the input is what the server sends.
#![no_main]
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_lite::{AsyncRead, AsyncWrite};
use libfuzzer_sys::fuzz_target;
use tether::net::http1::{exchange, Limits, Request};

/// Reads the input in small pieces (headers split across reads), takes
/// whatever is written.
struct Server<'a> {
    input: &'a [u8],
}

impl AsyncRead for Server<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.input.len()).min(97);
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Server<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    for method in ["GET", "HEAD"] {
        let mut s = Server { input: data };
        let req = Request {
            method,
            path: "/healthz",
            host: "cp.example.com",
            headers: &[],
            body: b"",
        };
        let trace = tether::outcome::Trace::new(Instant::now());
        let limits = Limits {
            head: 64 * 1024,
            body: 64 * 1024,
        };
        if let Ok(r) = futures_lite::future::block_on(exchange(&mut s, &req, &trace, limits)) {
            let _ = r.body_line();
            let _ = tether::uplink::upstream::classify(&r, std::time::SystemTime::now());
        }
    }
});

//! Loopback targets the systems probe: listeners served by one thread of the
//! bench (async-io, so 1,000 listeners cost one thread), counting what they
//! accept, which is how every system's probes are verified.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_executor::LocalExecutor;
use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

pub struct Targets {
    pub addrs: Vec<SocketAddr>,
    /// TCP: connections accepted; HTTP: requests answered.
    served: Arc<AtomicU64>,
}

impl Targets {
    /// `n` listeners that accept and close.
    pub fn tcp(n: usize) -> Targets {
        Targets::start(n, false)
    }

    /// `n` HTTP servers: read the request head, answer 200 with a short
    /// body, close (no keep-alive: every probe connects anew, as the
    /// probers do).
    pub fn http(n: usize) -> Targets {
        Targets::start(n, true)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    fn start(n: usize, http: bool) -> Targets {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let served = Arc::new(AtomicU64::new(0));
        let count = served.clone();
        std::thread::spawn(move || {
            let ex: &'static LocalExecutor<'static> = Box::leak(Box::new(LocalExecutor::new()));
            for l in listeners {
                let l = Async::new(l).unwrap();
                let count = count.clone();
                ex.spawn(async move {
                    loop {
                        let Ok((s, _)) = l.accept().await else {
                            continue;
                        };
                        if !http {
                            count.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        let count = count.clone();
                        ex.spawn(async move {
                            if answer(s).await {
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                        })
                        .detach();
                    }
                })
                .detach();
            }
            futures_lite::future::block_on(ex.run(futures_lite::future::pending::<()>()));
        });
        Targets { addrs, served }
    }
}

async fn answer(mut s: Async<std::net::TcpStream>) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        .await
        .is_ok()
}

//! Resolving and connecting, shared by every TCP-based probe: resolve through
//! the stub resolver (phase `resolve`), then try each address in order
//! (phase `connect`), IPv4 before IPv6 unless the check pins a family. When
//! there are several addresses, each attempt gets an equal share of the time
//! left, so one black-holed address cannot eat the whole deadline.
//!
//! On loopback and on a fast LAN the handshake has usually finished by the
//! time a non-blocking connect(2) returns, so tether asks once more before
//! it hands the socket to the reactor: a probe
//! that only needs the connection then costs no epoll registration and no
//! extra turn of the loop. A socket is registered only when it must be
//! waited on or read.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::FutureExt;
use rustix::io::Errno;
use rustix::net::{ipproto, AddressFamily, SocketFlags, SocketType};

use crate::net::resolve::Family;
use crate::net::resolve::Resolver;
use crate::net::target::Host;
use crate::outcome::{connect_reason, Phase, Report, Trace};

/// What every probe may use besides its own spec.
pub struct Context<'a> {
    pub resolver: &'a Resolver,
    /// When the scheduler will drop this run; probes that split their time
    /// (several addresses) budget against it.
    pub deadline: Instant,
}

pub async fn connect(
    host: &Host,
    port: u16,
    family: Family,
    ctx: &Context<'_>,
    trace: &Trace,
) -> Result<Connection, Report> {
    trace.enter(Phase::Resolve);
    let addrs: Vec<IpAddr> = match host {
        Host::Ip(ip) => vec![*ip],
        // Boxed: the lookup's state machine is ~1 KiB, and only names need it.
        Host::Name(name) => match Box::pin(ctx.resolver.lookup(name, family)).await {
            Ok(a) => a.addrs,
            Err(e) => return Err(Report::crit(e.reason(), format!("resolving {name}: {e}"))),
        },
    };
    trace.enter(Phase::Connect);
    let mut failures: Vec<(SocketAddr, io::Error)> = Vec::new();
    for (i, ip) in addrs.iter().enumerate() {
        let addr = SocketAddr::new(*ip, port);
        trace.set_peer(addr);
        let left = addrs.len() - i;
        let attempt = connect_addr(addr);
        let result = if left > 1 {
            let share = ctx.deadline.saturating_duration_since(Instant::now()) / left as u32;
            attempt
                .or(async {
                    Timer::after(share).await;
                    Err(io::ErrorKind::TimedOut.into())
                })
                .await
        } else {
            attempt.await
        };
        match result {
            Ok(stream) => return Ok(stream),
            Err(e) => failures.push((addr, e)),
        }
    }
    let Some((addr, err)) = failures.pop() else {
        return Err(Report::crit(
            crate::outcome::Reason::DnsNoData,
            format!("{host} has no address"),
        ));
    };
    let mut msg = format!("connect to {addr}: {err}");
    for (other, e) in &failures {
        msg.push_str(&format!("; also tried {other}: {e}"));
    }
    Err(Report::crit(connect_reason(&err), msg))
}

/// An established TCP connection: not yet known to the reactor when it
/// completed at once, registered when it had to be waited for.
pub enum Connection {
    Ready(TcpStream),
    Watched(Async<TcpStream>),
}

impl Connection {
    /// The connection as an async stream, registering it if it is not yet.
    pub fn into_async(self) -> io::Result<Async<TcpStream>> {
        match self {
            Connection::Ready(s) => Async::new_nonblocking(s),
            Connection::Watched(s) => Ok(s),
        }
    }
}

/// Connect to one address: a non-blocking connect(2), one more look, and only
/// then the reactor.
pub async fn connect_addr(addr: SocketAddr) -> io::Result<Connection> {
    let domain = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(domain, SocketType::STREAM, flags, Some(ipproto::TCP))?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => return Ok(Connection::Ready(TcpStream::from(fd))),
        Err(Errno::INPROGRESS) | Err(Errno::AGAIN) => {}
        Err(e) => return Err(e.into()),
    }
    // Asking again answers in one system call: 0 (or EISCONN) once the
    // handshake is done, EALREADY while it is still going, and the failure
    // itself (ECONNREFUSED, ...) if it failed.
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(Errno::ISCONN) => return Ok(Connection::Ready(TcpStream::from(fd))),
        Err(Errno::ALREADY) | Err(Errno::INPROGRESS) | Err(Errno::AGAIN) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = TcpStream::from(fd);
    // Writable once the handshake finishes or fails.
    let stream = Async::new_nonblocking(stream)?;
    stream.writable().await?;
    match stream.get_ref().take_error()? {
        None => Ok(Connection::Watched(stream)),
        Some(e) => Err(e),
    }
}

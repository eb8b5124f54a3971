//! Resolving and connecting, shared by every TCP-based probe: resolve through
//! the stub resolver (phase `resolve`), then try each address in order
//! (phase `connect`), IPv4 before IPv6 unless the check pins a family. When
//! there are several addresses, each attempt gets an equal share of the time
//! left, so one black-holed address cannot eat the whole deadline.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::FutureExt;

use crate::config::Family;
use crate::probe::{connect_reason, Context, Phase, Report, Trace};
use crate::target::Host;

pub async fn connect(
    host: &Host,
    port: u16,
    family: Family,
    ctx: &Context<'_>,
    trace: &Trace,
) -> Result<Async<TcpStream>, Report> {
    trace.enter(Phase::Resolve);
    let addrs: Vec<IpAddr> = match host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => match ctx.resolver.lookup(name, family).await {
            Ok(a) => a.addrs,
            Err(e) => return Err(Report::crit(e.reason(), format!("resolving {name}: {e}"))),
        },
    };
    trace.enter(Phase::Connect);
    let mut failures: Vec<(SocketAddr, std::io::Error)> = Vec::new();
    for (i, ip) in addrs.iter().enumerate() {
        let addr = SocketAddr::new(*ip, port);
        trace.set_peer(addr);
        let left = addrs.len() - i;
        let attempt = Async::<TcpStream>::connect(addr);
        let result = if left > 1 {
            let share = ctx.deadline.saturating_duration_since(Instant::now()) / left as u32;
            attempt
                .or(async {
                    Timer::after(share).await;
                    Err(std::io::ErrorKind::TimedOut.into())
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
            crate::probe::Reason::DnsNoData,
            format!("{host} has no address"),
        ));
    };
    let mut msg = format!("connect to {addr}: {err}");
    for (other, e) in &failures {
        msg.push_str(&format!("; also tried {other}: {e}"));
    }
    Err(Report::crit(connect_reason(&err), msg))
}

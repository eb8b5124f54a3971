//! `dns`: resolve a name (A and AAAA by default) through the system path
//! (hosts file, then resolv.conf) or straight at one `server`, and optionally
//! require each of `expect_addresses` among the answers.

use crate::config::DnsSpec;
use crate::net::connect::Context;
use crate::net::resolve::Source;
use crate::outcome::{Phase, Reason, Report, Trace};

pub async fn probe(s: &DnsSpec, ctx: &Context<'_>, trace: &Trace) -> Report {
    trace.enter(Phase::Resolve);
    if let Some(server) = s.server {
        trace.set_peer(server);
    }
    let answer = match s.server {
        Some(server) => ctx.resolver.query_server(server, &s.query, s.family).await,
        None => ctx.resolver.lookup(&s.query, s.family).await,
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return Report::crit(e.reason(), format!("{}: {e}", s.query)),
    };
    if let Source::Dns(server) = answer.source {
        trace.set_peer(server);
    }
    let list = answer
        .addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let missing: Vec<String> = s
        .expect_addresses
        .iter()
        .filter(|e| !answer.addrs.contains(e))
        .map(|a| a.to_string())
        .collect();
    if !missing.is_empty() {
        return Report::crit(
            Reason::DnsMismatch,
            format!(
                "{} resolved to {list} ({}), missing {}",
                s.query,
                answer.source,
                missing.join(", ")
            ),
        );
    }
    Report::ok(format!(
        "{} resolved to {list} ({})",
        s.query, answer.source
    ))
}

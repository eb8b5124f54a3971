//! Asking the running agent: `GET` from its local endpoint, with a deadline,
//! and a check that the agent answering is the one this configuration names.

use super::*;

/// Why a request to the running agent got no answer.
pub(super) enum Fetch {
    /// Nothing accepts connections there: no agent is running.
    NotRunning(String),
    /// Something answered, but not usefully, or not in time.
    Failed(String),
}

/// The agent that answered is the one `config` names: its name, and its id
/// when this host has one for that configuration. Another agent (or
/// another program) holding the port is not reported as ours.
pub(super) fn same_agent(
    config: &Config,
    r: &crate::net::http1::Response,
    addr: SocketAddr,
) -> Result<(), Fetch> {
    let want = crate::format::text::clip(&config.agent.name, 200);
    let Some(name) = r.header("tether-agent").map(str::trim) else {
        return Err(Fetch::Failed(format!(
            "what answers on {addr} is not a tether agent (no Tether-Agent header); is another program using the port?"
        )));
    };
    if name != want {
        return Err(Fetch::Failed(format!(
            "the agent answering on {addr} is \"{name}\", not \"{want}\" as {} names: another agent holds the port, or this is not its configuration",
            config.source
        )));
    }
    if config.upstream.is_some() {
        if let (Some(theirs), Ok(Some(ours))) = (
            r.header("tether-agent-id").map(str::trim),
            crate::uplink::identity::read(&config.agent.state_dir),
        ) {
            if theirs != ours.id {
                return Err(Fetch::Failed(format!(
                    "the agent answering on {addr} has id {theirs}, not {} (from {}): another agent holds the port",
                    ours.id,
                    crate::uplink::identity::path(&config.agent.state_dir).display()
                )));
            }
        }
    }
    Ok(())
}

/// `GET path` from the agent's local endpoint.
pub(super) fn fetch(
    config: &Config,
    path: &str,
    limit: Duration,
) -> Result<crate::net::http1::Response, Fetch> {
    let mut addr = config.agent.listen;
    if addr.ip().is_unspecified() {
        let lo = if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        };
        addr = SocketAddr::new(lo, addr.port());
    }
    let get = async {
        let mut s = Async::<TcpStream>::connect(addr)
            .await
            .map_err(|e| Fetch::NotRunning(format!("no agent answering on {addr} ({e})")))?;
        let host = addr.to_string();
        let req = Request {
            method: "GET",
            path,
            host: &host,
            headers: &[],
            body: &[],
        };
        let limits = Limits {
            head: MAX_HEAD,
            body: 4 << 20,
        };
        exchange(&mut s, &req, &Trace::new(Instant::now()), limits)
            .await
            .map_err(|e| Fetch::Failed(format!("the agent on {addr}: {e}")))
    };
    match async_io::block_on(until(Instant::now() + limit, get)) {
        Some(Ok(r)) if r.status == 200 => {
            same_agent(config, &r, addr)?;
            Ok(r)
        }
        Some(Ok(r)) => Err(Fetch::Failed(format!(
            "the agent on {addr} answered HTTP {} to {path}: {}",
            r.status,
            String::from_utf8_lossy(&r.body).trim()
        ))),
        Some(Err(e)) => Err(e),
        None => Err(Fetch::Failed(format!(
            "the agent on {addr} did not answer {path} within {}",
            crate::config::duration::format(limit)
        ))),
    }
}

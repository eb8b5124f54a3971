//! The daemon: [`run`] wires the scheduler, the local endpoint and the control
//! stream (shutdown and reload) together on one executor. `main` feeds it
//! signals; tests can feed it anything, and bind `127.0.0.1:0` themselves.

use std::net::TcpListener;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use async_executor::LocalExecutor;
use async_io::Async;
use futures_lite::{Stream, StreamExt};

use crate::agent::delivery;
use crate::agent::scheduler;
use crate::agent::state::AgentState;
use crate::config::{self, Config, ConfigError};
use crate::net::resolve::Resolver;
use crate::os::logger;
use crate::serve::endpoint;

use super::executor;

pub enum Control {
    /// SIGTERM / SIGINT: stop now.
    Shutdown,
    /// SIGHUP: the freshly read configuration, or why it was refused.
    Reload(Box<Result<Config, ConfigError>>),
}

pub fn resolver_for(config: &Config) -> Resolver {
    Resolver::system(
        config.agent.hosts_file.clone(),
        config.agent.resolv_conf.clone(),
    )
}

/// Runs until the control stream says shutdown (or ends).
pub async fn run(
    ex: &'static LocalExecutor<'static>,
    config: Config,
    listener: Async<TcpListener>,
    mut control: impl Stream<Item = Control> + Unpin,
) {
    let listen = config.agent.listen;
    log::info!(
        "tether {} starting: {} checks from {}, local endpoint on {}",
        env!("CARGO_PKG_VERSION"),
        config.checks.len(),
        config.source,
        listener
            .get_ref()
            .local_addr()
            .map_or_else(|_| listen.to_string(), |a| a.to_string())
    );
    // Read before the first probe, not in the middle of one.
    crate::net::tls::load_system_roots();
    let resolver = resolver_for(&config);
    let state_dir = config.agent.state_dir.clone();
    let state = AgentState::new(config, resolver, crate::os::notify::Notifier::from_env());
    *state.history.borrow_mut() = crate::agent::history::History::open(&state_dir);
    // With no checks, ready at once; otherwise after the first runs.
    state.notify_status();
    state.notify_ready();
    let _scheduler = ex.spawn(scheduler::run(ex, state.clone()));
    let _endpoint = ex.spawn(endpoint::serve(ex, listener, state.clone()));
    let delivery = ex.spawn(delivery::run(state.clone()));
    let remote_write = ex.spawn(crate::agent::remote_write::run(state.clone()));
    let _on_change = ex.spawn({
        let state = state.clone();
        async move {
            let current = || {
                let c = state.config.borrow();
                Some(crate::agent::on_change::Command {
                    argv: c.agent.on_change.clone()?,
                    timeout: c.agent.on_change_timeout,
                    agent: c.agent.name.clone(),
                })
            };
            crate::agent::on_change::run(&state.on_change, current).await
        }
    });
    while let Some(c) = control.next().await {
        match c {
            Control::Shutdown => break,
            Control::Reload(r) => {
                state.systemd.reloading();
                match *r {
                    Ok(new) => reload(&state, new),
                    Err(e) => {
                        state.reload_failures.set(state.reload_failures.get() + 1);
                        log::error!("reload refused, the running configuration stays: {e}");
                    }
                }
                // READY=1 again once /ready would answer 200: at once if
                // refused or unchanged, after new checks' first runs if not.
                state.notify_ready();
            }
        }
    }
    state.systemd.stopping();
    log::info!("tether stopping");
    // Stop probing and the regular uploads, then one last upload and the
    // remote-write loop's last flush side by side (within 2 s: a request
    // still out then is cut), and the spool synced.
    let end = Instant::now() + delivery::SHUTDOWN_DEADLINE;
    state.stop_by.set(Some(end));
    state.remote.notify();
    drop(_scheduler);
    drop(delivery);
    // Boxed: made only now, not carried in the agent's future all along.
    Box::pin(futures_lite::future::zip(
        delivery::last_upload(&state),
        crate::os::alarm::until(end, remote_write),
    ))
    .await;
    delivery::close(&state);
}

fn reload(state: &Rc<AgentState>, new: Config) {
    let old_listen = state.config.borrow().agent.listen;
    if new.agent.listen != old_listen {
        log::warn!(
            "reload: `listen` changed to {}; the endpoint stays on {old_listen} until a restart",
            new.agent.listen
        );
    }
    log::set_max_level(new.agent.log_level);
    let (n, source) = (new.checks.len(), new.source.clone());
    let resolver = resolver_for(&new);
    crate::net::tls::load_system_roots();
    state.apply(new, resolver);
    log::info!("reloaded {source}: {n} checks; unchanged checks keep their state");
}

/// `tether run`: the daemon, on this process's one thread, until SIGTERM.
pub fn command(config: Config) -> i32 {
    logger::init(config.agent.log_level);
    let listener = match std::net::TcpListener::bind(config.agent.listen).and_then(Async::new) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {}: {e}", config.agent.listen);
            return 1;
        }
    };
    if !config.agent.listen.ip().is_loopback() {
        log::warn!("the local endpoint listens on {}, beyond loopback: /status and /metrics are readable from the network", config.agent.listen);
    }
    let signals = match async_signal::Signals::new([
        async_signal::Signal::Term,
        async_signal::Signal::Int,
        async_signal::Signal::Hup,
    ]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return 1;
        }
    };
    let explicit = if config.source == config::BUILTIN_SOURCE {
        None
    } else {
        Some(PathBuf::from(&config.source))
    };
    let control = signals.filter_map(move |sig| match sig {
        Ok(async_signal::Signal::Hup) => {
            log::info!("SIGHUP: reloading the configuration");
            let loaded = config::resolve_and_load(explicit.as_deref());
            Some(Control::Reload(Box::new(loaded)))
        }
        Ok(_) => Some(Control::Shutdown),
        Err(_) => None,
    });
    let ex = executor();
    // futures_lite's block_on, not async_io's: with async_io::block_on the
    // async-io thread still takes the reactor whenever this thread is busy
    // for 50 µs, then polls it with a backoff; measured, that cost 5 µs more
    // per probe than letting that thread be the reactor's only driver, which
    // wakes this one when a task is ready (benches/compare, footprint).
    //
    // Boxed: the agent's future is some 60 KB; on the stack it would be
    // copied into each frame it passes through, and those pages stay
    // resident for the life of the process (measured: 376 KiB of stack).
    let agent = Box::pin(run(ex, config, listener, control));
    futures_lite::future::block_on(ex.run(agent));
    0
}

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
use crate::os::{dirlock, logger};
use crate::serve::endpoint;

use super::executor;

pub enum Control {
    /// SIGTERM / SIGINT: stop now.
    Shutdown,
    /// SIGHUP: the freshly read configuration, or why it was refused.
    Reload(Box<Result<Config, ConfigError>>),
}

/// Runs until the control stream says shutdown (or ends).
pub async fn run(
    ex: &'static LocalExecutor<'static>,
    config: Config,
    listener: Async<TcpListener>,
    mut control: impl Stream<Item = Control> + Unpin,
    state_error: Option<(String, String)>,
) {
    let listen = config.agent.listen;
    log::info!(
        "tether {} starting: {} from {}, local endpoint on {}",
        env!("CARGO_PKG_VERSION"),
        crate::format::text::count(config.checks.len() as u64, "check"),
        config.source,
        listener
            .get_ref()
            .local_addr()
            .map_or_else(|_| listen.to_string(), |a| a.to_string())
    );
    // Read before the first probe, not in the middle of one.
    crate::net::tls::load_system_roots();
    let resolver = crate::agent::state::resolver_for(&config);
    let state_dir = config.agent.state_dir.clone();
    let local = config.clone();
    let state = AgentState::new(config, resolver, crate::os::notify::Notifier::from_env());
    *state.local.borrow_mut() = Some(local);
    if let Some((why, fix)) = state_error {
        log::error!("{why}: {fix}");
        *state.state_error.borrow_mut() = Some(why);
    }
    *state.history.borrow_mut() = crate::agent::history::History::open(&state_dir);
    // The control plane's last checks run at once, before it answers.
    crate::agent::remote_config::load_cached(&state);
    // With no checks, ready at once; otherwise after the first runs.
    state.notify_status();
    state.notify_ready();
    let _scheduler = ex.spawn(scheduler::run(ex, state.clone()));
    let _endpoint = ex.spawn(endpoint::serve(ex, listener, state.clone()));
    let delivery = ex.spawn(delivery::run(state.clone()));
    let remote_write = ex.spawn(crate::agent::remote_write::run(state.clone()));
    let otlp = ex.spawn(crate::agent::otlp::run(state.clone()));
    let _remote_config = ex.spawn(crate::agent::remote_config::run(state.clone()));
    let _spool_sync = ex.spawn(crate::agent::spool_sync::run(state.clone()));
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
                        // One error per line: a journal shows each alone.
                        let n = crate::format::text::count(e.0.len() as u64, "error");
                        log::error!("reload refused ({n}); the running configuration stays:");
                        for line in &e.0 {
                            log::error!("  {line}");
                        }
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
    // receivers' last flushes side by side (within 2 s: a request still
    // out then is cut), and the spool synced.
    let end = Instant::now() + delivery::SHUTDOWN_DEADLINE;
    state.stop_by.set(Some(end));
    state.remote.notify();
    state.otlp.notify();
    drop(_scheduler);
    drop(delivery);
    // Boxed: made only now, not carried in the agent's future all along.
    Box::pin(futures_lite::future::zip(
        delivery::last_upload(&state),
        futures_lite::future::zip(
            crate::os::alarm::until(end, remote_write),
            crate::os::alarm::until(end, otlp),
        ),
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
    logger::set_json(new.agent.log_json);
    let (n, source) = (new.checks.len(), new.source.clone());
    let resolver = crate::agent::state::resolver_for(&new);
    crate::net::tls::load_system_roots();
    *state.local.borrow_mut() = Some(new.clone());
    let new = crate::agent::remote_config::effective(state, new);
    state.apply(new, resolver);
    state.config_poll.notify();
    let n = crate::format::text::count(n as u64, "check");
    log::info!("reloaded {source}: {n}; unchanged checks keep their state");
}

/// Takes the state directory (created 0700 if missing) and the spool's,
/// when it lies elsewhere and a destination uses it: one agent per
/// directory. `Err(exit code)` when another agent holds one. When the state
/// directory's lock cannot even be made, `Ok` carries why, with the fix: the
/// agent then runs without durability, and says so (`state_unwritable`); a
/// spool that cannot be made is the outbox's to report (`spool_unavailable`).
fn lock_dirs(config: &Config) -> Result<Held, i32> {
    let state = &config.agent.state_dir;
    let spool = &config.spool.dir;
    let spooling = config.sends();
    let mut dirs = vec![state];
    if spooling && !spool.starts_with(state) {
        dirs.push(spool);
    }
    let mut locks = Vec::new();
    let mut unwritable = None;
    for dir in dirs {
        let taken = crate::os::files::private_dir(dir)
            .map_err(|error| dirlock::Refused::Unusable {
                dir: dir.clone(),
                error,
            })
            .and_then(|()| dirlock::take(dir));
        match taken {
            Ok(l) => locks.push(l),
            Err(e @ dirlock::Refused::Held { .. }) => {
                log::error!("{e}");
                return Err(1);
            }
            Err(e) if dir == state => {
                let fix = if std::env::var_os("INVOCATION_ID").is_some() {
                    "set StateDirectory=tether in the unit (the packaged unit does)".to_string()
                } else {
                    format!(
                        "as root, make it this user's: install -d -m 0700 -o {} {}",
                        rustix::process::getuid().as_raw(),
                        dir.display()
                    )
                };
                unwritable = Some((
                    e.to_string(),
                    format!("nothing can be spooled or kept across a restart, so what is not yet sent is lost if the agent stops (state_unwritable). Fix: {fix}; then restart tether"),
                ));
            }
            Err(_) => {}
        }
    }
    Ok(Held {
        _locks: locks,
        unwritable,
    })
}

/// The directories this agent holds (for its life), and why its state
/// directory cannot be written when it cannot: (why, the fix).
struct Held {
    _locks: Vec<dirlock::DirLock>,
    unwritable: Option<(String, String)>,
}

/// `tether run`: the daemon, on this process's one thread, until SIGTERM.
pub fn command(config: Config, dropins: Option<PathBuf>) -> i32 {
    logger::init(config.agent.log_level);
    logger::set_json(config.agent.log_json);
    // Before the listener: a second agent on this directory is told that,
    // not that the address is in use.
    let held = match lock_dirs(&config) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let listener = match std::net::TcpListener::bind(config.agent.listen).and_then(Async::new) {
        Ok(l) => l,
        Err(e) => {
            let key = match config.agent.listen_line {
                Some(line) => format!("[agent] listen in {}:{line}", config.source),
                None => format!("the default; [agent] listen in {}", config.source),
            };
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "address in use — another tether, or set listen".to_string()
            } else {
                e.to_string()
            };
            log::error!("cannot listen on {} ({key}): {why}", config.agent.listen);
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
            let loaded = config::resolve_and_load_with(explicit.as_deref(), dropins.as_deref());
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
    let agent = Box::pin(run(ex, config, listener, control, held.unwritable.clone()));
    futures_lite::future::block_on(ex.run(agent));
    0
}

//! `tether check`: every check (or one) once, as a Nagios plugin.

use super::*;

pub fn command(mut config: Config, opts: &Opts) -> i32 {
    // Warnings (no trust store) on stderr; the state changes the output
    // already shows only when asked for.
    logger::init(if opts.verbose {
        config.agent.log_level.max(log::LevelFilter::Info)
    } else {
        log::LevelFilter::Warn
    });
    if let Some(name) = &opts.check {
        if !config.checks.iter().any(|c| &c.name == name) {
            let names: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
            return plugin_error(&format!(
                "no check named \"{name}\" in {} (checks: {})",
                config.source,
                names.join(", ")
            ));
        }
        config.checks.retain(|c| &c.name == name);
    }
    let state = one_shot(&config);
    state.log_changes.set(opts.verbose);
    let ex = executor();
    // Boxed, as `run` is: no large future on the main thread's stack.
    async_io::block_on(ex.run(Box::pin(run_all_once(ex, &state))));
    let snap = crate::agent::snapshot::Snapshot::of(&state);
    print(&if opts.json {
        snap.to_json()
    } else if opts.table {
        snap.to_table_fit(terminal_width())
    } else {
        snap.to_nagios()
    });
    snap.exit_code()
}

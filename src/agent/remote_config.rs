//! Checks from the control plane, the agent's side: with `[upstream]
//! remote_config = true` the agent polls `GET <url>/v1/config` every
//! `config_poll` (±10 % jitter) with `If-None-Match` naming the revision it
//! runs. `304`: nothing changed. `200` with an `ETag`: a document validated
//! and merged with the local configuration ([`crate::config::remote`]);
//! applied as SIGHUP applies a file (unchanged checks keep their state),
//! kept in `<state_dir>/remote.toml` (checksummed, written atomically) so
//! the next start runs it before the control plane answers, and reported:
//! a `config` record (applied or rejected, with the error lines) on every
//! change, and the revision and hash in every heartbeat, `/status` and
//! `tether_config_info`. Failures back off like uploads do (at least 1 s,
//! `Retry-After` obeyed, never more often than `config_poll` unless busy).
//!
//! The cache file:
//!
//! ```text
//! tether-remote-config 1
//! revision=r42
//! crc32c=1a2b3c4d            CRC-32C of the document below
//!
//! [[check]]                  the document, as served
//! ...
//! ```

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use futures_lite::FutureExt;

use crate::agent::state::AgentState;
use crate::config::{remote, Config, Upstream};
use crate::os::alarm::Alarm;
use crate::os::clock::unix_millis;
use crate::uplink::upstream::Answer;
use crate::uplink::{crc32c, record, upstream};

/// A document larger than this is refused by the HTTP reader.
pub const MAX_DOCUMENT: usize = 1 << 20;

pub fn cache_path(state_dir: &Path) -> PathBuf {
    state_dir.join("remote.toml")
}

/// `local` with the running remote document's checks, if there is one and
/// it still merges (a reload may have made it invalid: then it is set
/// aside, reported as rejected, and `local` runs alone).
pub fn effective(state: &AgentState, local: Config) -> Config {
    if !enabled(&local) {
        // Turned off: the control plane's checks stop with it.
        let mut r = state.remote_config.borrow_mut();
        r.running = None;
        r.clashes.clear();
        return local;
    }
    let running = state.remote_config.borrow().running.clone();
    let Some((rev, text)) = running else {
        return local;
    };
    match remote::merge(&local, &rev, &text) {
        Ok((merged, clashes)) => {
            state.remote_config.borrow_mut().clashes = clashes;
            merged
        }
        Err(e) => {
            log_lines(
                &format!(
                    "remote configuration {rev} no longer fits the local one and is set aside"
                ),
                &e.0,
            );
            let mut r = state.remote_config.borrow_mut();
            r.running = None;
            r.rejected = Some((rev, e.0));
            local
        }
    }
}

/// At start: the cached document, if there is one, runs at once (the
/// control plane may be unreachable). A damaged cache is reported and
/// ignored, never fatal.
pub fn load_cached(state: &AgentState) {
    if !enabled(&state.config.borrow()) {
        return;
    }
    let dir = state.config.borrow().agent.state_dir.clone();
    let path = cache_path(&dir);
    let raw = match read_cache(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            log::error!("cannot read {}: {e}; ignored", path.display());
            return;
        }
    };
    let text = String::from_utf8_lossy(&raw);
    let Some((rev, doc)) = parse_cache(&text) else {
        log::error!(
            "{} is damaged (checksum or format): ignored; the control plane's next answer replaces it",
            path.display()
        );
        return;
    };
    log::info!("remote configuration {rev} from {}", path.display());
    state.remote_config.borrow_mut().running = Some((rev.to_string(), doc.to_string()));
    let local = state.local.borrow().clone();
    if let Some(local) = local {
        apply(state, effective(state, local));
    }
}

/// The cached document in `state_dir` (revision, text), if it is sound.
pub fn cached(state_dir: &Path) -> Option<(String, String)> {
    let raw = read_cache(state_dir).ok()?;
    let text = String::from_utf8(raw).ok()?;
    parse_cache(&text).map(|(r, d)| (r.to_string(), d.to_string()))
}

/// The cache file's bytes: a regular file, bounded (a document is at most
/// [`MAX_DOCUMENT`], its header a few lines).
fn read_cache(state_dir: &Path) -> std::io::Result<Vec<u8>> {
    crate::os::files::read_file(&cache_path(state_dir), MAX_DOCUMENT as u64 + 4096)
}

fn enabled(c: &Config) -> bool {
    c.upstream.as_ref().is_some_and(|u| u.remote_config)
}

fn parse_cache(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("tether-remote-config 1\nrevision=")?;
    let (rev, rest) = rest.split_once('\n')?;
    let rest = rest.strip_prefix("crc32c=")?;
    let (sum, doc) = rest.split_once("\n\n")?;
    let sum = u32::from_str_radix(sum, 16).ok()?;
    (remote::revision_ok(rev) && crc32c::checksum(&[doc.as_bytes()]) == sum).then_some((rev, doc))
}

fn write_cache(dir: &Path, rev: &str, doc: &str) -> std::io::Result<()> {
    let text = format!(
        "tether-remote-config 1\nrevision={rev}\ncrc32c={:08x}\n\n{doc}",
        crc32c::checksum(&[doc.as_bytes()])
    );
    let tmp = dir.join(".remote.toml.tmp");
    crate::os::files::write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, cache_path(dir))?;
    std::fs::File::open(dir)?.sync_all()
}

fn apply(state: &AgentState, config: Config) {
    let resolver = crate::agent::state::resolver_for(&config);
    state.apply(config, resolver);
}

fn log_lines(head: &str, lines: &[String]) {
    log::error!("{head}:");
    for l in lines {
        log::error!("  {l}");
    }
}

/// Polls while `[upstream] remote_config` is on; a reload wakes it.
pub async fn run(state: Rc<AgentState>) {
    let alarm = Alarm::new();
    let mut failures = 0u32;
    let mut next = Instant::now();
    loop {
        let up = state.config.borrow().upstream.clone();
        let Some(up) = up.filter(|u| u.remote_config) else {
            state.config_poll.wait().await;
            next = Instant::now();
            continue;
        };
        let woken = async {
            alarm.sleep_until(next).await;
            false
        }
        .or(async {
            state.config_poll.wait().await;
            true
        })
        .await;
        if woken {
            // A reload: look at the configuration again, and ask now.
            next = Instant::now();
            continue;
        }
        if state.stop_by.get().is_some() {
            return;
        }
        let wait = match poll(&state, &up).await {
            Ok(()) => {
                failures = 0;
                jitter(up.config_poll)
            }
            Err(after) => {
                failures += 1;
                let backoff = upstream::backoff(failures).max(Duration::from_secs(1));
                match after {
                    // Busy: obeyed, even beyond the poll interval.
                    Some(a) => upstream::retry_wait(Some(a), backoff),
                    None => backoff.min(up.config_poll),
                }
            }
        };
        next = Instant::now() + wait;
    }
}

/// `poll` ±10 %, so a fleet started together does not ask together.
fn jitter(poll: Duration) -> Duration {
    let ms = poll.as_millis() as u64;
    Duration::from_millis(ms - ms / 10 + fastrand::u64(0..=ms / 5))
}

/// One request; `Err` asks for a retry sooner than the next poll, with the
/// server's `Retry-After` if it said one.
async fn poll(state: &Rc<AgentState>, up: &Upstream) -> Result<(), Option<Duration>> {
    // The identity is the uplink's, made by whichever loop runs first.
    if state.uplink.borrow().is_none() {
        state.ensure_uplink();
    }
    let id = state
        .uplink
        .borrow()
        .as_ref()
        .and_then(|u| u.identity.clone().ok());
    let Some(id) = id else {
        return Ok(()); // no identity: nothing can be asked for (the link says why)
    };
    let path = upstream::path(up, "config");
    let to = upstream::destination(up, &path);
    let mut headers = vec![
        (
            "Authorization".to_string(),
            format!("Bearer {}", up.token.expose()),
        ),
        ("Tether-Agent".to_string(), id),
    ];
    if let Some((rev, _)) = &state.remote_config.borrow().running {
        headers.push(("If-None-Match".to_string(), format!("\"{rev}\"")));
    }
    let resolver = state.resolver.borrow().clone();
    let resp = match crate::uplink::post::get(&to, &resolver, &headers, MAX_DOCUMENT).await {
        Ok(r) => r,
        Err(e) => {
            failing(state, Some(e.why));
            return Err(None);
        }
    };
    failing(
        state,
        (!matches!(resp.status, 200 | 304))
            .then(|| format!("HTTP {} {}", resp.status, resp.reason)),
    );
    match resp.status {
        304 => Ok(()),
        200 => {
            let etag = resp.header("etag").map(|e| {
                e.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_string()
            });
            let Some(rev) = etag.filter(|r| remote::revision_ok(r)) else {
                log::warn!(
                    "remote configuration: answered without a usable ETag (its revision): ignored"
                );
                return Ok(());
            };
            match String::from_utf8(resp.body) {
                Ok(doc) => received(state, &rev, &doc),
                Err(_) => refused(state, &rev, vec![format!("remote {rev}: not UTF-8 text")]),
            }
            Ok(())
        }
        // The rest is sorted as an upload's answer is.
        _ => match upstream::classify(&resp, SystemTime::now()) {
            Answer::Busy(after) => Err(after),
            // Not the document's fault: the upload path shows the link's
            // state; ask again at the next poll.
            Answer::CredentialsRejected(_)
            | Answer::VersionUnsupported(_)
            | Answer::NotFound(_) => Ok(()),
            _ => Err(None),
        },
    }
}

/// Logs a failure to get the document once, when it starts or changes,
/// and when it ends.
fn failing(state: &AgentState, why: Option<String>) {
    let mut r = state.remote_config.borrow_mut();
    if r.failing == why {
        return;
    }
    match &why {
        Some(w) => {
            log::warn!("remote configuration: GET /v1/config: {w}; the running configuration stays")
        }
        None => log::info!("remote configuration: the control plane answers again"),
    }
    r.failing = why;
}

/// A document: applied, or refused with its errors.
fn received(state: &AgentState, rev: &str, doc: &str) {
    let known = {
        let r = state.remote_config.borrow();
        r.running.as_ref().is_some_and(|(v, _)| v == rev)
            || r.rejected.as_ref().is_some_and(|(v, _)| v == rev)
    };
    if known {
        return;
    }
    let Some(local) = state.local.borrow().clone() else {
        return;
    };
    match remote::merge(&local, rev, doc) {
        Ok((merged, clashes)) => {
            let dir = local.agent.state_dir.clone();
            if let Err(e) = write_cache(&dir, rev, doc) {
                log::error!(
                    "cannot keep remote configuration {rev} in {}: {e}; it runs, but a restart without the control plane starts without it",
                    cache_path(&dir).display()
                );
            }
            for c in &clashes {
                log::warn!("{c}");
            }
            let n = merged.checks.len() - local.checks.len();
            {
                let mut r = state.remote_config.borrow_mut();
                r.running = Some((rev.to_string(), doc.to_string()));
                r.rejected = None;
                r.clashes = clashes.clone();
            }
            apply(state, merged);
            log::info!(
                "remote configuration {rev} applied: {}",
                crate::format::text::count(n as u64, "check")
            );
            report(state, rev, true, &[], &clashes);
        }
        Err(e) => refused(state, rev, e.0),
    }
}

fn refused(state: &AgentState, rev: &str, errors: Vec<String>) {
    log_lines(
        &format!("remote configuration {rev} refused; the running configuration stays"),
        &errors,
    );
    report(state, rev, false, &errors, &[]);
    state.remote_config.borrow_mut().rejected = Some((rev.to_string(), errors));
}

fn report(state: &AgentState, rev: &str, applied: bool, errors: &[String], clashes: &[String]) {
    let hash = state.config_hash.borrow().clone();
    if let Some(u) = state.uplink.borrow_mut().as_mut() {
        let now = unix_millis(SystemTime::now());
        u.outbox
            .push(record::config(rev, applied, (errors, clashes), &hash, now));
        u.urgent.set(true);
    }
    state.deliver.notify();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_checked() {
        let dir = std::env::temp_dir().join(format!("tether-remote-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_cache(&dir, "r7", "[[check]]\nname = \"a\"\n").unwrap();
        let text = std::fs::read_to_string(cache_path(&dir)).unwrap();
        assert_eq!(
            parse_cache(&text),
            Some(("r7", "[[check]]\nname = \"a\"\n"))
        );
        assert_eq!(parse_cache(&text.replace("\"a\"", "\"b\"")), None);
        assert_eq!(parse_cache(&text.replace("r7", "r 7")), None);
        assert_eq!(parse_cache("tether-remote-config 1\n"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

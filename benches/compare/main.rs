//! tether side by side with Monit and blackbox_exporter, on loopback, in one
//! run, printed as one table (docs/benchmarks.md):
//!
//!   cargo bench --bench compare                 # everything, ~15 minutes
//!   cargo bench --bench compare -- tcp http     # only some sections
//!
//! Sections: `tcp` (footprint with 100 and 1,000 TCP targets: tether, Monit,
//! blackbox_exporter and the floor), `http` (100 HTTP checks: tether and
//! blackbox_exporter), `scale` (targets a second on one core), `spool`,
//! `drain`, `startup`, `fleet` (100 and 300 agents pushing to
//! VictoriaMetrics through a 60 s outage, directly and through vmagent;
//! the encoding cost; RSS with both destinations).
//!
//! tether is the static musl release build (built first), or `TETHER_BIN`.
//! The peers are Debian's packages, installed with apt if missing (as root).
//! `BENCH_RUNS` (default 3) runs of `BENCH_SECONDS` (default 20) per system;
//! every figure is the median of the runs, and every ratio the median of the
//! ratios measured within each run. A benchmark, not a test: it never fails
//! on a figure; where a goal is missed it says so.

mod agent;
mod drain;
mod fleet;
mod footprint;
mod fs;
mod http;
mod peers;
#[path = "../../tests/common/request.rs"]
mod request;
mod scale;
mod spool;
mod startup;
mod stats;
mod sys;
mod targets;

use std::path::PathBuf;

use footprint::{Kind, Sample};
use stats::median;
use targets::Targets;

const GOAL_CPU_US: f64 = 60.0;
const GOAL_RSS_MIB: f64 = 3.0;
const GOAL_RATE: usize = 10_000;
const GOAL_BINARY: u64 = 1_835_008; // 1.75 MiB

struct Settings {
    runs: usize,
    seconds: u64,
    scale_seconds: u64,
    only: Vec<String>,
    bin: PathBuf,
    work: PathBuf,
    peers: bool,
}

impl Settings {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    raise_fd_limit();
    // cargo passes --bench; anything else names sections.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let bin = agent::binary();
    let work = std::env::temp_dir().join(format!("tether-compare-{}", std::process::id()));
    let peers = peers::ensure_installed();
    let s = Settings {
        runs: env_number("BENCH_RUNS", 3).max(1) as usize,
        seconds: env_number("BENCH_SECONDS", 20).max(1),
        scale_seconds: env_number("SCALE_SECONDS", 10).max(1),
        only,
        bin,
        work,
        peers,
    };
    let mut report = vec![header(&s)];
    println!("{}", report[0]);
    if !s.peers {
        println!("Monit or blackbox_exporter missing and apt-get failed: peers left out");
    }
    if s.wants("tcp") {
        for n in [100, 1000] {
            report.push(tcp(&s, n));
        }
    }
    if s.wants("http") {
        report.push(http_section(&s));
    }
    if s.wants("scale") {
        report.push(scale_section(&s));
    }
    let mut rows = Vec::new();
    if s.wants("startup") {
        startup_rows(&s, &mut rows);
    }
    if s.wants("spool") {
        spool_rows(&s, &mut rows);
    }
    if s.wants("drain") {
        drain_rows(&s, &mut rows);
    }
    if s.wants("rss") {
        let r = fleet::rss_three_destinations(&s.bin, &s.work);
        report.push(format!(
            "RSS with 100 checks and all three destinations: {} KiB after 30 s, peak {} KiB at the end of a {} s outage of both receivers, {} KiB after the drain\n",
            r.steady_kib,
            r.outage_peak_kib,
            fleet::outage().as_secs(),
            r.peak_kib
        ));
    }
    if s.wants("fs") {
        report.push(fs_section(&s));
    }
    if s.wants("encode") {
        report.push(encode_section(&s));
    }
    if s.wants("fleet") {
        report.push(fleet_section(&s));
    }
    if !rows.is_empty() {
        let mut t = String::from(
            "### Startup, spool and drain\n\n| figure | measured | goal |\n|---|---|---|\n",
        );
        for r in rows {
            t.push_str(&r);
            t.push('\n');
        }
        report.push(t);
    }
    let _ = std::fs::remove_dir_all(&s.work);
    println!("\n\n{}", report.join("\n"));
}

/// The soft open-file limit up to the hard one: 1,000 listeners, twice.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    let _ = setrlimit(Resource::Nofile, l);
}

fn header(s: &Settings) -> String {
    let size = std::fs::metadata(&s.bin).map_or(0, |m| m.len());
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut h = format!(
        "## tether side by side ({date})\n\nMachine: {}.\n\ntether {} ({} B, {}), {}, {}.\n",
        sys::machine(),
        s.bin.display(),
        group(size),
        if size <= GOAL_BINARY {
            "goal ≤ 1.75 MiB met"
        } else {
            "goal ≤ 1.75 MiB MISSED"
        },
        sys::version_of(peers::MONIT, "-V").trim_start_matches("This is "),
        sys::version_of(peers::BLACKBOX, "--version"),
    );
    h.push_str(&format!(
        "Medians of {} runs, {} s per system per run; ratios are medians of the ratios within each run.\n",
        s.runs, s.seconds
    ));
    h
}

fn tcp(s: &Settings, n: usize) -> String {
    let targets = Targets::tcp(n);
    let mut runs: Vec<[Option<Sample>; 4]> = Vec::new();
    for r in 0..s.runs {
        let dir = s.work.join(format!("tcp{n}-{r}"));
        let t = footprint::tether(&s.bin, &dir.join("tether"), &targets, Kind::Tcp, s.seconds);
        progress(&format!("tcp {n} run {r} tether"), &t);
        let (m, b) = if s.peers {
            let m = footprint::monit_tcp(&dir.join("monit"), &targets, s.seconds);
            progress(&format!("tcp {n} run {r} monit"), &m);
            let b = footprint::blackbox(&dir.join("blackbox"), &targets, Kind::Tcp, s.seconds);
            progress(&format!("tcp {n} run {r} blackbox_exporter"), &b);
            (Some(m), Some(b))
        } else {
            (None, None)
        };
        let f = footprint::floor(&targets, s.seconds.min(10));
        progress(&format!("tcp {n} run {r} floor"), &f);
        runs.push([Some(t), m, b, Some(f)]);
    }
    let mut out = table_head(
        &format!("TCP: {n} loopback targets, each probed once a second"),
        "targets",
    );
    let names = [
        "tether",
        "Monit",
        "blackbox_exporter (scraped like Prometheus)",
        "floor: blocking connect+close, one thread",
    ];
    for (i, name) in names.iter().enumerate() {
        let col: Vec<&Sample> = runs.iter().filter_map(|r| r[i].as_ref()).collect();
        if col.is_empty() {
            continue;
        }
        out.push_str(&row(name, &col, i == 3));
    }
    for (i, peer) in [(1, "Monit"), (2, "blackbox_exporter")] {
        let pairs: Vec<(&Sample, &Sample)> = runs
            .iter()
            .filter_map(|r| Some((r[0].as_ref()?, r[i].as_ref()?)))
            .collect();
        if pairs.is_empty() {
            continue;
        }
        out.push_str(&ratio_row(&format!("tether / {peer}"), &pairs));
    }
    let t: Vec<&Sample> = runs.iter().filter_map(|r| r[0].as_ref()).collect();
    let gap = median(
        runs.iter()
            .filter_map(|r| Some(r[0].as_ref()?.cpu_us - r[3].as_ref()?.cpu_us))
            .collect(),
    );
    out.push_str(&format!("| tether − floor | {gap:.1} µs | | | | | |\n"));
    if n == 100 {
        let cpu = median(t.iter().map(|x| x.cpu_us).collect());
        let rss = median(t.iter().map(|x| x.hwm_kib as f64 / 1024.0).collect());
        out.push_str(&format!(
            "\nGoals at 100 checks: CPU per probe ≤ {GOAL_CPU_US} µs: {cpu:.1} µs, {}; peak RSS ≤ {GOAL_RSS_MIB} MiB: {rss:.2} MiB, {}.\n",
            met(cpu <= GOAL_CPU_US),
            met(rss <= GOAL_RSS_MIB)
        ));
    }
    out
}

fn http_section(s: &Settings) -> String {
    let targets = Targets::http(100);
    let mut runs: Vec<(Sample, Option<Sample>)> = Vec::new();
    for r in 0..s.runs {
        let dir = s.work.join(format!("http-{r}"));
        let t = footprint::tether(&s.bin, &dir.join("tether"), &targets, Kind::Http, s.seconds);
        progress(&format!("http run {r} tether"), &t);
        let b = s.peers.then(|| {
            let b = footprint::blackbox(&dir.join("blackbox"), &targets, Kind::Http, s.seconds);
            progress(&format!("http run {r} blackbox_exporter"), &b);
            b
        });
        runs.push((t, b));
    }
    let mut out = table_head(
        "HTTP: 100 checks (GET, expect 200) against loopback servers, once a second",
        "servers",
    );
    out.push_str(&row(
        "tether",
        &runs.iter().map(|r| &r.0).collect::<Vec<_>>(),
        false,
    ));
    let b: Vec<&Sample> = runs.iter().filter_map(|r| r.1.as_ref()).collect();
    if !b.is_empty() {
        out.push_str(&row(
            "blackbox_exporter (scraped like Prometheus)",
            &b,
            false,
        ));
        let pairs: Vec<(&Sample, &Sample)> = runs
            .iter()
            .filter_map(|r| Some((&r.0, r.1.as_ref()?)))
            .collect();
        out.push_str(&ratio_row("tether / blackbox_exporter", &pairs));
    }
    out
}

/// Filesystem checks in helpers: the cost per probe (agent and helpers)
/// beside a child per call, and lateness with a hung check.
fn fs_section(s: &Settings) -> String {
    let mut helper = Vec::new();
    let mut child = Vec::new();
    let mut late = Vec::new();
    let mut syncs = Vec::new();
    let targets = Targets::tcp(1000);
    for r in 0..s.runs {
        let c = fs::helper_cost(&s.bin, &s.work.join(format!("fs-{r}")), 100, s.seconds);
        println!(
            "fs run {r}: agent {:.1} µs + helpers {:.1} µs per file probe, {} helpers of {} KiB RSS, agent peak {} KiB",
            c.agent_us, c.helpers_us, c.helpers, c.helper_rss_kib, c.agent_hwm_kib
        );
        let per_call = fs::child_per_call(&s.bin, 300);
        println!("fs run {r}: a child per call {per_call:.1} µs");
        let calm = fs::lateness(
            &s.bin,
            &s.work.join(format!("fs-calm-{r}")),
            &targets,
            false,
            s.seconds,
        );
        let hung = fs::lateness(
            &s.bin,
            &s.work.join(format!("fs-hung-{r}")),
            &targets,
            true,
            s.seconds,
        );
        println!(
            "fs run {r}: 1,000 TCP lateness p99 <= {} s, mean {:.2} ms; with a hung check p99 <= {} s, mean {:.2} ms",
            calm.0, calm.1, hung.0, hung.1
        );
        let disk = fs::fsync_distribution(&s.work.join(format!("fsync-{r}")), 1000);
        let spool = fs::agent_fsyncs(
            &s.bin,
            &s.work.join(format!("spool-fsync-{r}")),
            &targets,
            s.seconds,
        );
        println!(
            "fs run {r}: 4 KiB fdatasync p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; the agent's spool: {} fsyncs, mean {:.2} ms, max {:.2} ms",
            disk.0, disk.1, disk.2, spool.0, spool.1, spool.2
        );
        helper.push(c);
        child.push(per_call);
        late.push((calm, hung));
        syncs.push((disk, spool));
    }
    let m = |f: &dyn Fn(&fs::Cost) -> f64| median(helper.iter().map(f).collect());
    let (agent_us, helpers_us) = (m(&|c| c.agent_us), m(&|c| c.helpers_us));
    format!(
        "### Filesystem checks in helper processes\n\n\
         | figure | median of {} runs |\n|---|---|\n\
         | `file` probe, 100 checks at 1 s: agent + helpers | {agent_us:.1} + {helpers_us:.1} = {:.1} µs |\n\
         | the same with a child started per call (spawn, stat, exit) | {:.1} µs |\n\
         | helpers alive / RSS each | {:.0} / {:.0} KiB |\n\
         | agent peak RSS with 100 `file` checks | {:.0} KiB |\n\
         | 1,000 TCP checks: lateness p99 bucket, mean | ≤ {} s, {:.2} ms |\n\
         | the same with a `cert_file` check hung on a FIFO | ≤ {} s, {:.2} ms |\n\
         | 4 KiB append + fdatasync on this disk: p50, p99, max | {:.2}, {:.2}, {:.2} ms |\n\
         | the agent's spool, upstream down, 100 checks: fsyncs, mean, max | {:.0}, {:.2} ms, {:.2} ms |\n",
        s.runs,
        agent_us + helpers_us,
        median(child),
        m(&|c| c.helpers as f64),
        m(&|c| c.helper_rss_kib as f64),
        m(&|c| c.agent_hwm_kib as f64),
        median(late.iter().map(|l| l.0 .0).collect()),
        median(late.iter().map(|l| l.0 .1).collect()),
        median(late.iter().map(|l| l.1 .0).collect()),
        median(late.iter().map(|l| l.1 .1).collect()),
        median(syncs.iter().map(|x| x.0 .0).collect()),
        median(syncs.iter().map(|x| x.0 .1).collect()),
        median(syncs.iter().map(|x| x.0 .2).collect()),
        median(syncs.iter().map(|x| x.1 .0).collect()),
        median(syncs.iter().map(|x| x.1 .1).collect()),
        median(syncs.iter().map(|x| x.1 .2).collect()),
    )
}

fn scale_section(s: &Settings) -> String {
    let targets = Targets::tcp(1000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        // The bench (listeners included) off tether's CPU 0.
        scale::pin_self(&format!("1-{}", cores - 1));
    }
    let mut out = String::from(
        "### Scale: TCP checks at 1 s, tether pinned to one core\n\n\
         | checks | probes/s seen by the targets | lateness p99 (bucket) | mean lateness | tether CPU | one /metrics | runs passed |\n\
         |---|---|---|---|---|---|---|\n",
    );
    // Each run climbs the steps until one misses; a step's row is the median
    // of the runs that reached it, the result the median of the runs' best.
    let mut seen: Vec<Vec<scale::Step>> = vec![Vec::new(); scale::STEPS.len()];
    let mut bests = Vec::new();
    for r in 0..s.runs {
        let mut best = 0;
        for (i, n) in scale::STEPS.iter().enumerate() {
            let dir = s.work.join(format!("scale{r}-{i}"));
            let st = scale::step(&s.bin, &dir, &targets, *n, s.scale_seconds);
            println!(
                "scale run {r} {n}: {:.0}/s, p99 <= {} s, mean {:.2} ms, {:.2} cores, /metrics {:.0} ms: {}",
                st.per_second,
                st.p99_le,
                st.mean_ms,
                st.cores,
                st.scrape_ms,
                if st.passed() { "pass" } else { "miss" }
            );
            let passed = st.passed();
            seen[i].push(st);
            if !passed {
                break;
            }
            best = *n;
        }
        bests.push(best as f64);
    }
    for (n, steps) in scale::STEPS.iter().zip(&seen) {
        if steps.is_empty() {
            break;
        }
        let m = |f: fn(&scale::Step) -> f64| median(steps.iter().map(f).collect());
        let p99 = m(|x| x.p99_le);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0}% of a core | {:.0} ms | {} of {} |\n",
            group(*n as u64),
            group(m(|x| x.per_second).round() as u64),
            if p99.is_finite() {
                format!("≤ {} ms", p99 * 1e3)
            } else {
                "—".into()
            },
            match m(|x| x.mean_ms) {
                v if v.is_nan() => "—".to_string(),
                v => format!("{v:.2} ms"),
            },
            m(|x| x.cores) * 100.0,
            m(|x| x.scrape_ms),
            steps.iter().filter(|x| x.passed()).count(),
            steps.len()
        ));
    }
    let best = median(bests.clone()) as u64;
    if cores >= 2 {
        scale::pin_self(&format!("0-{}", cores - 1));
    }
    out.push_str(&format!(
        "\nLargest step with p99 lateness ≤ 100 ms and ≥ 99% of probes done (median of the runs' {}): {} targets a second (goal {}: {}).\n",
        bests.iter().map(|b| group(*b as u64)).collect::<Vec<_>>().join(", "),
        group(best),
        group(GOAL_RATE as u64),
        met(best >= GOAL_RATE as u64)
    ));
    out
}

fn startup_rows(s: &Settings, rows: &mut Vec<String>) {
    let targets = Targets::tcp(100);
    let (mut health, mut ready) = (Vec::new(), Vec::new());
    for r in 0..5 {
        let f = startup::run(&s.bin, &s.work.join(format!("startup{r}")), &targets);
        println!(
            "startup run {r}: /health {:.1} ms, /ready {:.1} ms",
            f.health_ms, f.ready_ms
        );
        health.push(f.health_ms);
        ready.push(f.ready_ms);
    }
    rows.push(format!(
        "| startup: exec to `/health` answering, 100 checks (median of 5) | {:.1} ms | — |",
        median(health)
    ));
    rows.push(format!(
        "| startup: exec to `/ready` (every check's first run, spread over the 1 s interval) | {:.0} ms | — |",
        median(ready)
    ));
}

fn spool_rows(s: &Settings, rows: &mut Vec<String>) {
    let runs: Vec<spool::Figures> = (0..5)
        .map(|r| spool::run(&s.work.join(format!("spool{r}"))))
        .collect();
    let m = |f: fn(&spool::Figures) -> f64| median(runs.iter().map(f).collect());
    println!(
        "spool: full = {} records, {:.1} MiB",
        runs[0].records,
        runs[0].bytes as f64 / (1 << 20) as f64
    );
    rows.push(format!(
        "| spool append, `sync = \"batch\"`, 1,000 records per fdatasync (median of 5) | {} records/s | 100,000 |",
        group(m(|f| f.append_per_s) as u64)
    ));
    rows.push(format!(
        "| spool read + acknowledge, 500-record batches | {} records/s | — |",
        group(m(|f| f.read_ack_per_s) as u64)
    ));
    rows.push(format!(
        "| recover a full 64 MiB spool ({} records, every frame checked), page cache warm | {:.1} ms | 200 ms |",
        group(runs[0].records),
        m(|f| f.recover_warm_ms)
    ));
    let cold: Vec<f64> = runs.iter().filter_map(|f| f.recover_cold_ms).collect();
    rows.push(if cold.is_empty() {
        "| the same, page cache dropped | (needs root) | 200 ms |".into()
    } else {
        format!(
            "| the same, page cache dropped | {:.1} ms | 200 ms |",
            median(cold)
        )
    });
}

/// The remote-write encoding per check result, `ENCODE_RUNS` runs (default
/// 7), each beside the agent's CPU per TCP probe (100 loopback targets, 10
/// s) in the same run: the encoding's spread and the machine's speed at
/// that moment. The goal is held by the worst run.
fn encode_section(s: &Settings) -> String {
    let n = env_number("ENCODE_RUNS", 7).max(1) as usize;
    let targets = Targets::tcp(100);
    let mut runs: Vec<([f64; 4], f64)> = Vec::new();
    let mut otlp: Vec<[f64; 4]> = Vec::new();
    for r in 0..n {
        let e = fleet::encode_us_per_result();
        let o = fleet::otlp_encode_us_per_result();
        println!(
            "encode run {r}: OTLP {:.2} µs per result (points {:.2}, protobuf {:.2}, gzip {:.2})",
            o[0], o[1], o[2], o[3]
        );
        otlp.push(o);
        let dir = s.work.join(format!("encode-tcp-{r}"));
        let t = footprint::tether(&s.bin, &dir.join("tether"), &targets, Kind::Tcp, 10);
        println!(
            "encode run {r}: {:.2} µs per result (record {:.2}, protobuf {:.2}, snappy {:.2}); TCP probe {:.1} µs",
            e[0], e[1], e[2], e[3], t.cpu_us
        );
        runs.push((e, t.cpu_us));
    }
    let col = |f: fn(&([f64; 4], f64)) -> f64| {
        let v: Vec<f64> = runs.iter().map(f).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (median(v), lo, hi)
    };
    let (e, e_lo, e_hi) = col(|r| r.0[0]);
    let (p, p_lo, p_hi) = col(|r| r.0[1]);
    let (b, b_lo, b_hi) = col(|r| r.0[2]);
    let (z, z_lo, z_hi) = col(|r| r.0[3]);
    let (t, t_lo, t_hi) = col(|r| r.1);
    let (q, q_lo, q_hi) = col(|r| r.0[0] / r.1);
    let ocol = |i: usize| {
        let v: Vec<f64> = otlp.iter().map(|o| o[i]).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (median(v), lo, hi)
    };
    let (o, o_lo, o_hi) = ocol(0);
    let (op, op_lo, op_hi) = ocol(1);
    let (ob, ob_lo, ob_hi) = ocol(2);
    let (oz, oz_lo, oz_hi) = ocol(3);
    let sizes = fleet::body_sizes();
    let otlp_rows = format!(
        "| OTLP encoding per check result, same runs | {o:.2} µs | {o_lo:.2} – {o_hi:.2} µs | ≤ 10 µs in the worst run: {} |\n\
         | of which the points | {op:.2} µs | {op_lo:.2} – {op_hi:.2} µs | |\n\
         | of which protobuf | {ob:.2} µs | {ob_lo:.2} – {ob_hi:.2} µs | |\n\
         | of which gzip | {oz:.2} µs | {oz_lo:.2} – {oz_hi:.2} µs | |\n\
         | OTLP / remote-write encoding, medians | {:.2} | | |\n\
         | the request for the 250 results: OTLP raw / OTLP gzip / remote-write snappy | {} B / {} B / {} B | | |\n",
        met(o_hi <= 10.0),
        o / e,
        group(sizes.0 as u64),
        group(sizes.1 as u64),
        group(sizes.2 as u64)
    );
    format!(
        "### Remote-write and OTLP encoding\n\n\
         {n} runs; each encodes 200 batches of 250 stored result records (2,000 samples) in this process, then runs the agent with 100 TCP checks for 10 s. Median (lowest – highest).\n\n\
         | figure | median | range | goal |\n|---|---|---|---|\n\
         | encoding per check result | {e:.2} µs | {e_lo:.2} – {e_hi:.2} µs | ≤ 10 µs in the worst run: {} |\n\
         | of which reading the record | {p:.2} µs | {p_lo:.2} – {p_hi:.2} µs | |\n\
         | of which protobuf | {b:.2} µs | {b_lo:.2} – {b_hi:.2} µs | |\n\
         | of which snappy | {z:.2} µs | {z_lo:.2} – {z_hi:.2} µs | |\n\
         | the agent's CPU per TCP probe, same runs | {t:.1} µs | {t_lo:.1} – {t_hi:.1} µs | |\n\
         | encoding / TCP probe, within each run | {q:.3} | {q_lo:.3} – {q_hi:.3} | |\n{otlp_rows}",
        met(e_hi <= 10.0)
    )
}

/// The fleet table (`fleet.rs`): `FLEET_SIZES` (default "100,300").
fn fleet_section(s: &Settings) -> String {
    let sizes: Vec<usize> = std::env::var("FLEET_SIZES")
        .unwrap_or_else(|_| "100,300".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rss = fleet::rss_three_destinations(&s.bin, &s.work);
    let vmagent_size = std::fs::metadata("/usr/bin/vmagent").map_or(0, |m| m.len());
    let tether_size = std::fs::metadata(&s.bin).map_or(0, |m| m.len());
    let mut t = format!(
        "### Fleet: agents pushing to VictoriaMetrics, a {} s outage\n\n\
         Each agent: 10 TCP checks at 5 s, `[remote_write]` with the defaults. \
         Lost = probes the listeners accepted minus `tether_check_up` samples stored once; twice = samples stored a second time (same series and timestamp). \
         Against the stopped store: remote-write requests and TCP probes per agent per 5 s.\n\n\
         | agents | path | ingest (rows/s) | restore to complete (s) | probes accepted | samples stored | lost | twice | requests / probes per agent per 5 s, store down | agents' CPU per sample sent | agents' RSS, summed | relay CPU per sample | relay RSS |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        fleet::outage().as_secs()
    );
    let mut stores = String::from(
        "\nThe store's own cost (VictoriaMetrics single-node, in the steady window before the outage; peak RSS and data on disk at the end):\n\n\
         | agents | path | CPU per row inserted | rows held | series | peak RSS | data on disk per row |\n|---|---|---|---|---|---|---|\n",
    );
    let mut direct: Vec<fleet::Figures> = Vec::new();
    for n in sizes {
        for via in [false, true] {
            let f = fleet::run(&s.bin, &s.work, n, via);
            let lost = f.accepted as i64 - (f.stored as i64 - f.duplicates as i64);
            let path = if via {
                "agents → vmagent → store"
            } else {
                "agents → store"
            };
            println!(
                "fleet {n} {path}: ingest {:.0}/s, restore {:.1} s, accepted {}, stored {}, sent {} samples, {:.2} µs/sample, outage requests {:?} probes {:?} per agent per 5 s; store {:.2} µs/row, {} KiB peak, {:.2} B/row",
                f.ingest_per_s, f.restore_s, f.accepted, f.stored, f.samples_sent, f.agent_cpu_us_per_sample,
                f.outage_requests_per_5s, f.outage_probes_per_5s, f.store_cpu_us_per_row, f.store_hwm_kib, f.store_disk_bytes_per_row
            );
            t.push_str(&format!(
                "| {} | {path} | {} | {:.1} | {} | {} | {lost} | {} | {} | {:.2} µs | {:.1} MiB | {} | {} |\n",
                f.agents,
                group(f.ingest_per_s as u64),
                f.restore_s,
                group(f.accepted),
                group(f.stored),
                f.duplicates,
                match (f.outage_requests_per_5s, f.outage_probes_per_5s) {
                    (Some(q), Some(p)) => format!("{q:.2} / {p:.2}"),
                    _ => "—".into(),
                },
                f.agent_cpu_us_per_sample,
                f.agents_rss_kib as f64 / 1024.0,
                f.vmagent_cpu_us_per_sample
                    .map_or("—".into(), |c| format!("{c:.2} µs")),
                f.vmagent_rss_kib
                    .map_or("—".into(), |r| format!("{:.1} MiB", r as f64 / 1024.0)),
            ));
            stores.push_str(&format!(
                "| {} | {path} | {:.2} µs | {} | {} | {:.1} MiB | {:.2} B |\n",
                f.agents,
                f.store_cpu_us_per_row,
                group(f.store_rows),
                group(f.store_series),
                f.store_hwm_kib as f64 / 1024.0,
                f.store_disk_bytes_per_row
            ));
            if !via {
                direct.push(f);
            }
        }
    }
    t.push_str(&stores);
    t.push_str(&format!(
        "\n| figure | measured | goal |\n|---|---|---|\n\
         | RSS, 100 TCP checks at 1 s, `[upstream]`, `[remote_write]` and `[otlp]`, after 30 s | {:.2} MiB | — |\n\
         | the same, peak (VmHWM) through a {} s outage of both receivers (at its end: {:.2} MiB) and the drain after it | {:.2} MiB | ≤ 3 MiB: {} |\n\
         | binary: tether (static, everything) / vmagent | {} B / {} B | — |\n",
        rss.steady_kib as f64 / 1024.0,
        fleet::outage().as_secs(),
        rss.outage_peak_kib as f64 / 1024.0,
        rss.peak_kib as f64 / 1024.0,
        met(rss.peak_kib as f64 / 1024.0 <= GOAL_RSS_MIB),
        group(tether_size),
        group(vmagent_size)
    ));
    if let Some(f) = direct.last() {
        let per_agent = f.ingest_per_s / f.agents as f64;
        let rows = per_agent * 10_000.0;
        let series = f.store_series as f64 / f.agents as f64 * 10_000.0;
        let rss_per_series = f.store_hwm_kib as f64 * 1024.0 / f.store_series.max(1) as f64;
        t.push_str(&format!(
            "\nFor 10,000 such agents, from the {}-agent direct run: {} rows/s ({per_agent:.1} per agent); the store's CPU at {:.2} µs per row is {:.2} cores; its data grows {:.1} GiB a day at {:.2} B per row; {} active series, at this run's {:.0} B of peak RSS per series about {:.1} GiB of RSS (a linear estimate: VictoriaMetrics' caches do not grow linearly, so take it as an upper bound). Each agent spends {:.2} µs of CPU per sample on its own host.\n",
            f.agents,
            group(rows as u64),
            f.store_cpu_us_per_row,
            rows * f.store_cpu_us_per_row / 1e6,
            rows * 86_400.0 * f.store_disk_bytes_per_row / (1u64 << 30) as f64,
            f.store_disk_bytes_per_row,
            group(series as u64),
            rss_per_series,
            series * rss_per_series / (1u64 << 30) as f64,
            f.agent_cpu_us_per_sample
        ));
    }
    t
}

fn drain_rows(s: &Settings, rows: &mut Vec<String>) {
    let runs: Vec<drain::Figures> = (0..s.runs)
        .map(|r| {
            let f = drain::run(&s.bin, &s.work.join(format!("drain{r}")));
            println!(
                "drain run {r}: {:.0} records/s; lateness during the drain p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} probes); idle p99 {:.2} ms",
                f.rate, f.drain_p50_ms, f.drain_p99_ms, f.drain_max_ms, f.samples, f.idle_p99_ms
            );
            f
        })
        .collect();
    let m = |f: fn(&drain::Figures) -> f64| median(runs.iter().map(f).collect());
    rows.push(format!(
        "| drain {} spooled records to a loopback receiver | {} records/s | 50,000 |",
        group(drain::RECORDS),
        group(m(|f| f.rate) as u64)
    ));
    rows.push(format!(
        "| probe lateness during the drain, {} TCP checks at 1 s, p99 (max) | {:.2} ms ({:.2} ms) | < 50 ms |",
        group(drain::CHECKS as u64),
        m(|f| f.drain_p99_ms),
        m(|f| f.drain_max_ms)
    ));
    rows.push(format!(
        "| the same while idle, p99 | {:.2} ms | — |",
        m(|f| f.idle_p99_ms)
    ));
}

fn progress(what: &str, x: &Sample) {
    println!(
        "{what}: {:.1} µs/probe (utime+stime {:.1}), {} probes ({:.1}/s){}, VmHWM {} KiB, {} threads",
        x.cpu_us,
        x.ticks_us,
        x.probes,
        x.per_second(),
        x.claimed
            .map_or(String::new(), |c| format!(", {c} by its own count")),
        x.hwm_kib,
        x.threads
    );
}

/// A footprint table's title and header; `seen_by` counted the probes.
fn table_head(title: &str, seen_by: &str) -> String {
    format!(
        "### {title}\n\n\
         | system | CPU per probe | (utime+stime) | probes/s seen by the {seen_by} | peak RSS | threads | binary + libraries |\n\
         |---|---|---|---|---|---|---|\n"
    )
}

fn row(name: &str, col: &[&Sample], floor: bool) -> String {
    let m = |f: fn(&Sample) -> f64| median(col.iter().map(|x| f(x)).collect());
    let cpu = m(|x| x.cpu_us);
    let ticks = m(|x| x.ticks_us);
    let rate = m(|x| x.per_second());
    if floor {
        return format!("| {name} | {cpu:.1} µs | | {rate:.1} | | 1 | |\n");
    }
    format!(
        "| {name} | {cpu:.1} µs | {ticks:.0} µs | {rate:.1} | {:.2} MiB | {:.0} | {} |\n",
        m(|x| x.hwm_kib as f64) / 1024.0,
        m(|x| x.threads as f64),
        mb(m(|x| x.binary as f64))
    )
}

fn ratio_row(name: &str, pairs: &[(&Sample, &Sample)]) -> String {
    let r = |f: fn(&Sample) -> f64| median(pairs.iter().map(|(t, p)| f(t) / f(p)).collect());
    format!(
        "| {name} | {:.2}× | | | {:.2}× | | {:.2}× |\n",
        r(|x| x.cpu_us),
        r(|x| x.hwm_kib as f64),
        r(|x| x.binary as f64)
    )
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

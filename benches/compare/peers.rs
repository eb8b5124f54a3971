//! The peers, run as Debian packages them: Monit (`monit -I`, one `check
//! host` per target, `set daemon 1`) and prometheus-blackbox-exporter,
//! driven by the requests Prometheus sends when it scrapes it.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use async_io::{Async, Timer};
use futures_lite::AsyncWriteExt;

use crate::http;
use crate::sys;

pub const MONIT: &str = "/usr/bin/monit";
pub const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";

/// Installs Monit, blackbox_exporter and VictoriaMetrics (with vmagent)
/// with apt when missing (as root); true when all are there.
pub fn ensure_installed() -> bool {
    let have = || {
        Path::new(MONIT).exists()
            && Path::new(BLACKBOX).exists()
            && Path::new("/usr/bin/victoria-metrics").exists()
    };
    if !have() {
        println!(
            "installing monit, prometheus-blackbox-exporter and victoria-metrics with apt-get"
        );
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let _ = apt(&["update", "-qq"])
            && apt(&[
                "install",
                "-y",
                "-qq",
                "monit",
                "prometheus-blackbox-exporter",
                // The fleet section's store and relay.
                "victoria-metrics",
            ]);
    }
    have()
}

/// Monit checking every target once a second, in the foreground.
pub fn monit(dir: &Path, targets: &[SocketAddr]) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.display();
    let mut rc = format!(
        "set daemon 1\nset logfile {d}/monit.log\nset pidfile {d}/monit.pid\n\
         set idfile {d}/monit.id\nset statefile {d}/monit.state\n"
    );
    for (i, t) in targets.iter().enumerate() {
        rc.push_str(&format!(
            "\ncheck host t{i} with address {}\n    if failed port {} type tcp timeout 1 seconds then alert\n",
            t.ip(),
            t.port()
        ));
    }
    let path = dir.join("monitrc");
    std::fs::write(&path, rc).unwrap();
    // Monit refuses a control file others can read.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    Command::new(MONIT)
        .arg("-I")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// blackbox_exporter with a TCP and an HTTP module (1 s timeout, IPv4), and
/// the address it answers on.
pub fn blackbox(dir: &Path) -> (Child, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("blackbox.yml");
    std::fs::write(
        &config,
        "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 1s\n    tcp:\n      preferred_ip_protocol: ip4\n\
         \x20 http_2xx:\n    prober: http\n    timeout: 1s\n    http:\n      preferred_ip_protocol: ip4\n",
    )
    .unwrap();
    let addr = sys::free_port();
    let child = Command::new(BLACKBOX)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sys::wait_for(Duration::from_secs(10), Duration::from_millis(20), || {
        http::get(addr, "/-/healthy").filter(|r| r.0 == 200)
    })
    .expect("blackbox_exporter did not start");
    (child, addr)
}

/// Scrapes `/probe?module=…&target=…` for every target once a second, as
/// Prometheus does with `scrape_interval: 1s`: one keep-alive connection
/// per target, targets spread over the second, Prometheus 2.42's headers.
/// Counts 200 answers. Stops when dropped.
pub struct Scraper {
    pub ok: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Scraper {
    pub fn start(exporter: SocketAddr, module: &'static str, targets: Vec<String>) -> Scraper {
        let ok = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (ok2, stop2) = (ok.clone(), stop.clone());
        std::thread::spawn(move || {
            let ex = LocalExecutor::new();
            let n = targets.len() as u32;
            let t0 = Instant::now();
            let mut tasks = Vec::new();
            for (i, t) in targets.into_iter().enumerate() {
                let (ok, stop) = (ok2.clone(), stop2.clone());
                let offset = Duration::from_secs(1) * i as u32 / n;
                tasks.push(ex.spawn(async move {
                    let request = format!(
                        "GET /probe?module={module}&target={} HTTP/1.1\r\nHost: {exporter}\r\n\
                         User-Agent: Prometheus/2.42.0\r\n\
                         Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\
                         Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 1\r\n\r\n",
                        encode(&t)
                    );
                    let mut conn = None;
                    let mut buf = Vec::new();
                    for k in 0u32.. {
                        Timer::at(t0 + offset + Duration::from_secs(1) * k).await;
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        if conn.is_none() {
                            conn = Async::<std::net::TcpStream>::connect(exporter).await.ok();
                            buf.clear();
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        let answered = match c.write_all(request.as_bytes()).await {
                            Ok(()) => http::read_response(c, &mut buf).await,
                            Err(_) => None,
                        };
                        match answered {
                            Some(200) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Some(_) => {}
                            None => conn = None,
                        }
                    }
                }));
            }
            futures_lite::future::block_on(ex.run(async {
                for t in tasks {
                    t.await;
                }
            }));
        });
        Scraper { ok, stop }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Percent-encodes a query value (`:` and `/` included, as Prometheus does).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! Real Prometheus-compatible stores on loopback, as child processes with
//! their data in a temporary directory: Prometheus with its remote-write
//! receiver, VictoriaMetrics single-node. Read back through each store's own
//! query API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{http_raw, parse_response, temp_dir, wait_for};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Prometheus,
    Victoria,
}

pub struct Store {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// Prometheus's configuration file (scrapes, rules); ignored for
    /// VictoriaMetrics.
    prometheus_yml: String,
    child: Option<Child>,
}

/// Prometheus with nothing to scrape.
const QUIET: &str = "global:\n  scrape_interval: 1h\n";

/// One series as the store returns it: its labels (without `__name__`)
/// and its samples (Unix ms, value), in time order.
#[derive(Debug, Clone)]
pub struct Stored {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, f64)>,
}

impl Store {
    /// Starts the store on a free loopback port; waits until it is ready.
    pub fn start(kind: Kind) -> Store {
        Store::start_with(kind, QUIET)
    }

    /// Prometheus with this `prometheus.yml` (scrape targets, rule files).
    pub fn prometheus(prometheus_yml: &str) -> Store {
        Store::start_with(Kind::Prometheus, prometheus_yml)
    }

    fn start_with(kind: Kind, prometheus_yml: &str) -> Store {
        let dir = temp_dir(match kind {
            Kind::Prometheus => "prometheus",
            Kind::Victoria => "victoria",
        });
        // A port the kernel just handed out: if another process takes it
        // before the store binds, the start is tried on another one.
        for _ in 0..5 {
            let addr = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let mut s = Store {
                kind,
                addr,
                dir: dir.clone(),
                prometheus_yml: prometheus_yml.to_string(),
                child: None,
            };
            if s.run() {
                return s;
            }
        }
        panic!("{kind:?} did not start on any of five ports");
    }

    /// Starts the process (again) on the same port and data; `false` if
    /// it exited before it was ready (port taken).
    fn run(&mut self) -> bool {
        let data = self.dir.join("data");
        let log = std::fs::File::create(self.dir.join("store.log")).unwrap();
        let mut cmd = match self.kind {
            Kind::Prometheus => {
                let cfg = self.dir.join("prometheus.yml");
                std::fs::write(&cfg, &self.prometheus_yml).unwrap();
                let mut c = Command::new("prometheus");
                c.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address={}", self.addr))
                    .arg("--web.enable-remote-write-receiver")
                    .arg("--web.enable-lifecycle");
                c
            }
            Kind::Victoria => {
                let mut c = Command::new("victoria-metrics");
                c.arg(format!("-httpListenAddr={}", self.addr))
                    .arg(format!("-storageDataPath={}", data.display()))
                    .arg("-retentionPeriod=100y")
                    .arg("-search.latencyOffset=0s")
                    .arg("-search.disableCache");
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.kind));
        self.child = Some(child);
        let ready = match self.kind {
            Kind::Prometheus => "/-/ready",
            Kind::Victoria => "/health",
        };
        let addr = self.addr;
        let child = self.child.as_mut().unwrap();
        wait_for(
            &format!("{:?} to be ready", self.kind),
            Duration::from_secs(30),
            || {
                if child.try_wait().unwrap().is_some() {
                    return Some(false);
                }
                let up = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .is_ok()
                    && get(addr, ready).0 == 200;
                up.then_some(true)
            },
        )
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// Stops the store (SIGTERM, waited for): an outage.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            wait_for("the store to exit", Duration::from_secs(30), || {
                c.try_wait().unwrap()
            });
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        assert!(
            self.run(),
            "{:?} did not restart on {}",
            self.kind,
            self.addr
        );
    }

    /// Every sample of the series `selector` matches (NaN stale markers
    /// left out), through the store's own API: a range query over the
    /// last day for Prometheus, `/api/v1/export` for VictoriaMetrics.
    pub fn samples(&self, selector: &str) -> Vec<Stored> {
        let path = match self.kind {
            Kind::Prometheus => {
                format!("/api/v1/query?query={}", encode(&format!("{selector}[1d]")))
            }
            Kind::Victoria => format!("/api/v1/export?match%5B%5D={}", encode(selector)),
        };
        let (code, body) = get(self.addr, &path);
        assert_eq!(code, 200, "{path}: {body}");
        let mut out = Vec::new();
        let series: Vec<serde_json::Value> = match self.kind {
            Kind::Prometheus => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                v["data"]["result"].as_array().unwrap().clone()
            }
            Kind::Victoria => body
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    // Stale markers are exported as a bare NaN.
                    let l = l.replace("[NaN", "[null").replace(",NaN", ",null");
                    serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {}", clip(&l)))
                })
                .collect(),
        };
        for s in series {
            let name = s["metric"]["__name__"].as_str().unwrap_or("").to_string();
            let labels: BTreeMap<String, String> = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let samples: Vec<(i64, f64)> = match self.kind {
                Kind::Prometheus => s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                        (t, p[1].as_str().unwrap().parse().unwrap())
                    })
                    .collect(),
                Kind::Victoria => s["timestamps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(s["values"].as_array().unwrap())
                    .map(|(t, v)| {
                        let v = v.as_f64().unwrap_or(f64::NAN);
                        (t.as_i64().unwrap(), v)
                    })
                    .collect(),
            };
            let samples: Vec<(i64, f64)> =
                samples.into_iter().filter(|(_, v)| !v.is_nan()).collect();
            out.push(Stored {
                name,
                labels,
                samples,
            });
        }
        out
    }

    /// An instant query's result count (what is current now).
    pub fn current(&self, selector: &str) -> usize {
        self.query(selector).len()
    }

    /// An instant query: each result's labels and value.
    pub fn query(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let path = format!("/api/v1/query?query={}", encode(expr));
        let (code, body) = get(self.addr, &path);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (labels, r["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    }

    /// The value of the one result `expr` has now, if it has one.
    pub fn value(&self, expr: &str) -> Option<f64> {
        match self.query(expr).as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// Prometheus's alerts now (pending and firing), as JSON.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let (code, body) = get(self.addr, "/api/v1/alerts");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["alerts"].as_array().cloned().unwrap_or_default()
    }
}

fn clip(s: &str) -> &str {
    &s[..s.len().min(2000)]
}

/// A GET as HTTP/1.0: the store answers without chunks and closes.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let raw = http_raw(
        addr,
        format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes(),
    );
    parse_response(&raw)
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// vmalert evaluating `rules` against `store` (VictoriaMetrics), writing
/// recording results back to it and notifications to `notifier`.
pub struct Vmalert {
    pub addr: SocketAddr,
    child: Child,
}

impl Vmalert {
    pub fn start(rules: &std::path::Path, store: &Store, notifier: SocketAddr) -> Vmalert {
        for _ in 0..5 {
            let addr = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let log = std::fs::File::create(store.dir.join("vmalert.log")).unwrap();
            let mut child = Command::new("vmalert")
                .arg(format!("-rule={}", rules.display()))
                .arg(format!("-datasource.url=http://{}", store.addr))
                .arg(format!("-remoteWrite.url=http://{}", store.addr))
                .arg(format!("-notifier.url=http://{notifier}"))
                .arg("-evaluationInterval=1s")
                .arg(format!("-httpListenAddr={addr}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("cannot start vmalert");
            let ready = wait_for("vmalert to be ready", Duration::from_secs(30), || {
                if child.try_wait().unwrap().is_some() {
                    return Some(false);
                }
                let up = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .is_ok()
                    && get(addr, "/health").0 == 200;
                up.then_some(true)
            });
            if ready {
                return Vmalert { addr, child };
            }
        }
        panic!("vmalert did not start on any of five ports");
    }

    /// The alerts vmalert holds now (pending or firing), as JSON.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let (code, body) = get(self.addr, "/api/v1/alerts");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["alerts"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Vmalert {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

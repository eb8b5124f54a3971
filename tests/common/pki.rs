//! Certificates made at test time (rcgen) and a TLS server on loopback that
//! presents them: a CA, intermediates, leaves with chosen names and dates.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

fn days_from_now(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

impl Ca {
    pub fn root(cn: &str) -> Ca {
        let (params, key) = ca_params(cn);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, cn: &str) -> Ca {
        let (params, key) = ca_params(cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let p = dir.join(format!("ca-{}.pem", self.der.len()));
        std::fs::write(&p, &self.pem).unwrap();
        p
    }
}

fn ca_params(cn: &str) -> (CertificateParams, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = days_from_now(-30);
    p.not_after = days_from_now(3650);
    (p, KeyPair::generate().unwrap())
}

pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key: Vec<u8>,
    pub not_after: time::OffsetDateTime,
}

/// `names` (DNS names or IP addresses) as subjectAltName entries.
fn sans(names: &[&str]) -> Vec<SanType> {
    names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().unwrap()),
        })
        .collect()
}

/// A leaf for `names` (DNS names or IP addresses), valid from `from` to `to`
/// days from now, signed by `signer` or self-signed.
pub fn leaf(signer: Option<&Ca>, names: &[&str], from: i64, to: i64) -> Leaf {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = sans(names);
    p.distinguished_name.push(DnType::CommonName, names[0]);
    p.not_before = days_from_now(from);
    p.not_after = days_from_now(to);
    let key = KeyPair::generate().unwrap();
    let cert = match signer {
        Some(ca) => p.signed_by(&key, &ca.issuer).unwrap(),
        None => p.self_signed(&key).unwrap(),
    };
    Leaf {
        der: cert.der().clone(),
        pem: cert.pem(),
        key: key.serialize_der(),
        not_after: p.not_after,
    }
}

/// A self-signed certificate with CA:TRUE for `names`, as a plain
/// `openssl req -x509` makes (what many appliances ship).
pub fn ca_leaf(names: &[&str], from: i64, to: i64) -> Leaf {
    let (mut p, key) = ca_params(names[0]);
    p.subject_alt_names = sans(names);
    p.not_before = days_from_now(from);
    p.not_after = days_from_now(to);
    let cert = p.self_signed(&key).unwrap();
    Leaf {
        der: cert.der().clone(),
        pem: cert.pem(),
        key: key.serialize_der(),
        not_after: p.not_after,
    }
}

impl Leaf {
    pub fn write_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.pem).unwrap();
        p
    }
}

/// A TLS server for 127.0.0.1 with a leaf from a fresh test CA (valid for
/// 30 days), and that CA written as PEM into `dir`: (address, CA file).
pub fn trusted_server(dir: &Path) -> (SocketAddr, PathBuf, Leaf) {
    let root = Ca::root("Test Root");
    let l = leaf(Some(&root), &["127.0.0.1"], -1, 30);
    (tls_server(&l, &[]), root.write_pem(dir), l)
}

/// A TLS server on 127.0.0.1 presenting `leaf` followed by `chain`. After the
/// handshake it answers one HTTP request with `200 ok`, or just closes when
/// the client does.
pub fn tls_server(leaf: &Leaf, chain: &[&Ca]) -> SocketAddr {
    let config = server_config(leaf, chain);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let config = config.clone();
            thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    addr
}

/// A rustls server configuration presenting `leaf` followed by `chain`.
pub fn server_config(leaf: &Leaf, chain: &[&Ca]) -> Arc<rustls::ServerConfig> {
    let mut certs = vec![leaf.der.clone()];
    certs.extend(chain.iter().map(|c| c.der.clone()));
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.clone()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    Arc::new(config)
}

//! tether's TLS client, one for every use: `https://` checks, `tls` checks
//! and (next) the upstream. rustls with the ring provider on the one thread
//! (futures-rustls over any `AsyncRead + AsyncWrite`), trusting the system's
//! CA bundle ([`SYSTEM_BUNDLES`], or `SSL_CERT_FILE`) plus an optional
//! per-check `ca_file`.
//!
//! Certificates are always verified: chain, validity dates and hostname. The
//! verifier also *records* what it saw, the leaf certificate and the verdict,
//! so a check can report an expired or untrusted certificate's dates and
//! issuer. Whether a failed verdict fails the handshake is the caller's
//! choice ([`Verify`]): `https` checks and the upstream enforce it unless a
//! check sets `insecure_skip_verify`; a `tls` check completes the handshake
//! (it sends no data) and reports the verdict as its status.

use std::io;
use std::sync::{Arc, Mutex};

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::net::x509;
use crate::net::x509::load_pem_certs;
use crate::outcome::CertInfo;
use crate::outcome::Reason;

/// Whether a failed certificate verdict fails the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// The default: an untrusted, expired or misnamed certificate ends the
    /// handshake.
    Enforce,
    /// Complete the handshake whatever the verdict, and report the verdict.
    Record,
}

/// What the verifier saw during one handshake.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The leaf certificate, read; `Err` if it could not be read.
    pub leaf: Result<CertInfo, String>,
    /// The verdict on chain, dates and name.
    pub verdict: Result<(), rustls::Error>,
}

impl Seen {
    /// The reason code of a failed verdict.
    pub fn reason(&self) -> Option<Reason> {
        self.verdict.as_ref().err().map(cert_reason)
    }
}

/// Where operating systems keep their CA bundle; the first that exists is
/// used (Debian/Ubuntu, RHEL/Fedora, openSUSE, Alpine). `SSL_CERT_FILE`
/// replaces the list, as in OpenSSL and Go.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The system's trust anchors, read once and shared by every handshake.
pub struct SystemRoots {
    pub store: Arc<RootCertStore>,
    /// The store plus each `ca_file` set seen so far, built once each: a
    /// handshake does not copy 144 anchors. Dropped with the store on
    /// SIGHUP, so it holds at most the configuration's distinct sets.
    with_extra: std::cell::RefCell<Vec<(Vec<CertificateDer<'static>>, Arc<RootCertStore>)>>,
}

thread_local! {
    static SYSTEM: std::cell::RefCell<Option<std::rc::Rc<SystemRoots>>> =
        const { std::cell::RefCell::new(None) };
}

/// Reads the system CA bundle now (at start and on SIGHUP) and keeps it.
pub fn load_system_roots() -> std::rc::Rc<SystemRoots> {
    let candidates: Vec<std::path::PathBuf> = match std::env::var_os("SSL_CERT_FILE") {
        Some(p) => vec![p.into()],
        None => SYSTEM_BUNDLES.iter().map(Into::into).collect(),
    };
    let mut store = RootCertStore::empty();
    let names: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    // Where the anchors came from (or why there are none), for the log.
    let mut source = format!("no CA bundle found (looked for {})", names.join(", "));
    for p in &candidates {
        match std::fs::read(p) {
            Ok(pem) => {
                source = match load_pem_certs(&pem) {
                    Ok(certs) => {
                        let (added, _) = store.add_parsable_certificates(certs);
                        format!(
                            "{} ({})",
                            p.display(),
                            crate::format::text::count(added as u64, "certificate")
                        )
                    }
                    Err(e) => format!("{}: {e}", p.display()),
                };
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                source = format!("{}: {e}", p.display());
                break;
            }
        }
    }
    if store.is_empty() {
        log::warn!(
            "no trusted CA certificates: {source}; TLS checks and an https upstream trust only their ca_file (install ca-certificates, or set SSL_CERT_FILE)"
        );
    } else {
        log::info!("trusted CA certificates: {source}");
    }
    let roots = std::rc::Rc::new(SystemRoots {
        store: Arc::new(store),
        with_extra: Default::default(),
    });
    SYSTEM.with(|s| *s.borrow_mut() = Some(roots.clone()));
    roots
}

/// The system's anchors, read on first use if nobody loaded them yet.
pub fn system_roots() -> std::rc::Rc<SystemRoots> {
    SYSTEM
        .with(|s| s.borrow().clone())
        .unwrap_or_else(load_system_roots)
}

/// The system's anchors plus `extra` (already-parsed `ca_file` certificates).
fn roots(extra: &[CertificateDer<'static>]) -> Arc<RootCertStore> {
    let system = system_roots();
    if extra.is_empty() {
        return system.store.clone();
    }
    let mut cache = system.with_extra.borrow_mut();
    if let Some((_, store)) = cache.iter().find(|(certs, _)| certs == extra) {
        return store.clone();
    }
    let mut store = (*system.store).clone();
    // A certificate webpki cannot use as an anchor is skipped here; config
    // loading has already read each one, so this is not silent in practice.
    store.add_parsable_certificates(extra.iter().cloned());
    let store = Arc::new(store);
    cache.push((extra.to_vec(), store.clone()));
    store
}

/// ring's provider, trimmed for a client that only verifies: AES-GCM suites
/// only (every TLS 1.3 server must offer AES-128-GCM, and TLS 1.2 servers
/// offer ECDHE with AES-GCM), and no private-key loading (tether presents no
/// client certificate yet). Built field by field: starting from
/// `ring::default_provider()` would link every suite it lists (ChaCha20's
/// assembly) and RSA/ECDSA signing. Measured on the static binary.
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &SystemRandom,
        key_provider: &NoClientKeys,
    })
}

/// The signature algorithms webpki verifies with ring: ring's provider's own
/// table (rustls keeps it private), unchanged.
static SIGNATURE_ALGORITHMS: rustls::crypto::WebPkiSupportedAlgorithms = {
    use webpki::ring as alg;
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (
                SignatureScheme::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
            ),
            (
                SignatureScheme::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
            ),
            (SignatureScheme::ED25519, &[alg::ED25519]),
            (
                SignatureScheme::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA512,
                &[alg::RSA_PKCS1_2048_8192_SHA512],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA384,
                &[alg::RSA_PKCS1_2048_8192_SHA384],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA256,
                &[alg::RSA_PKCS1_2048_8192_SHA256],
            ),
        ],
    }
};

#[derive(Debug)]
struct SystemRandom;

impl rustls::crypto::SecureRandom for SystemRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

#[derive(Debug)]
struct NoClientKeys;

impl rustls::crypto::KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "tether does not present client certificates".into(),
        ))
    }
}

/// A client that handshakes once with `server_name` and remembers what it saw.
pub struct Client {
    connector: TlsConnector,
    recorder: Arc<Recorder>,
}

impl Client {
    /// `alpn` is offered as-is (`[b"http/1.1"]` for HTTPS, empty for `tls`).
    pub fn new(
        extra_roots: &[CertificateDer<'static>],
        verify: Verify,
        alpn: &[&[u8]],
    ) -> Result<Client, String> {
        let provider = provider();
        let roots = roots(extra_roots);
        // No anchors at all (no system bundle, no ca_file): every chain is
        // untrusted, but the handshake still shows the certificate.
        let inner = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("TLS verifier: {e}"))?,
            )
        };
        let recorder = Arc::new(Recorder {
            inner,
            verify,
            pinned: extra_roots.to_vec(),
            seen: Mutex::new(None),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Client {
            connector: TlsConnector::from(Arc::new(config)),
            recorder,
        })
    }

    /// Handshakes over `stream`. On failure the error says why, with the
    /// reason code; what the verifier saw is in [`Client::seen`] either way.
    pub async fn connect<S>(&self, server_name: &str, stream: S) -> Result<TlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| TlsError {
            reason: Reason::TlsHandshake,
            message: format!("`{server_name}` is not a valid TLS server name"),
        })?;
        self.connector
            .connect(name, stream)
            .await
            .map_err(|e| self.explain(&e, server_name))
    }

    pub fn seen(&self) -> Option<Seen> {
        self.recorder.seen.lock().ok()?.clone()
    }

    fn explain(&self, e: &io::Error, server_name: &str) -> TlsError {
        if let Some(seen) = self.seen() {
            if let Err(v) = &seen.verdict {
                if self.recorder.verify == Verify::Enforce {
                    return TlsError {
                        reason: cert_reason(v),
                        message: describe_verdict(v, &seen.leaf, server_name),
                    };
                }
            }
        }
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        let message = match inner {
            Some(rustls::Error::AlertReceived(a)) => {
                format!("TLS handshake with {server_name}: {}", alert_sentence(*a))
            }
            Some(m @ rustls::Error::InvalidMessage(_)) => format!(
                "TLS handshake with {server_name}: the server did not answer in TLS ({m}); is this port TLS?"
            ),
            Some(rustls::Error::PeerIncompatible(_)) => format!(
                "TLS handshake with {server_name}: the server offers no TLS version or cipher suite tether speaks (TLS 1.2 or 1.3 with AES-GCM)"
            ),
            Some(rustls::Error::PeerMisbehaved(_)) => format!(
                "TLS handshake with {server_name}: the server broke the TLS protocol"
            ),
            Some(other) => format!(
                "TLS handshake with {server_name} failed ({})",
                crate::format::text::clip(&other.to_string(), 120)
            ),
            None if e.kind() == io::ErrorKind::UnexpectedEof => format!(
                "TLS handshake with {server_name}: the server closed the connection (not TLS on this port?)"
            ),
            None => format!("TLS handshake with {server_name}: {e}"),
        };
        TlsError {
            reason: Reason::TlsHandshake,
            message,
        }
    }
}

#[derive(Debug)]
pub struct TlsError {
    pub reason: Reason,
    pub message: String,
}

/// What a TLS alert from the server means, in a sentence.
fn alert_sentence(a: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    match a {
        A::HandshakeFailure => "the server refused the handshake: no protocol version or cipher suite in common (tether offers TLS 1.2 and 1.3 with AES-GCM)".into(),
        A::ProtocolVersion => "the server speaks no TLS version tether does (1.2 and 1.3)".into(),
        A::UnrecognisedName => "the server does not serve the name tether asked for (SNI); check the host name or server_name".into(),
        A::CertificateRequired | A::BadCertificate => "the server requires a client certificate, and tether presents none".into(),
        A::AccessDenied => "the server denied access".into(),
        A::InternalError => "the server failed internally during the handshake".into(),
        A::NoApplicationProtocol => "the server speaks none of the application protocols tether offered (ALPN)".into(),
        other => format!("the server ended the handshake with the TLS alert {}", crate::format::text::clip(&format!("{other:?}"), 40)),
    }
}

/// The reason code of a certificate verdict.
pub fn cert_reason(e: &rustls::Error) -> Reason {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => Reason::TlsExpired,
            C::NotValidYet | C::NotValidYetContext { .. } => Reason::TlsNotYetValid,
            C::NotValidForName | C::NotValidForNameContext { .. } => Reason::TlsHostnameMismatch,
            _ => Reason::TlsUntrusted,
        },
        _ => Reason::TlsHandshake,
    }
}

/// One sentence for a failed verdict, with the leaf's facts an operator needs.
pub fn describe_verdict(
    e: &rustls::Error,
    leaf: &Result<CertInfo, String>,
    server_name: &str,
) -> String {
    let now = crate::os::clock::unix_secs(std::time::SystemTime::now());
    let Ok(info) = leaf else {
        return format!("certificate of {server_name} refused: {}", untrusted_why(e));
    };
    match cert_reason(e) {
        Reason::TlsExpired => format!(
            "certificate of {server_name} ({}) expired {} ({} days ago)",
            info.subject,
            crate::os::clock::rfc3339_unix(info.not_after),
            crate::net::x509::whole_days(now - info.not_after)
        ),
        Reason::TlsNotYetValid => format!(
            "certificate of {server_name} ({}) is not valid before {}",
            info.subject,
            crate::os::clock::rfc3339_unix(info.not_before)
        ),
        Reason::TlsHostnameMismatch => format!(
            "certificate is for {}, not {server_name}",
            if info.names.is_empty() {
                info.subject.clone()
            } else {
                info.names.join(", ")
            }
        ),
        _ => format!(
            "certificate of {server_name} ({}) issued by {} is not trusted: {}",
            info.subject,
            info.issuer,
            untrusted_why(e)
        ),
    }
}

#[derive(Debug)]
struct Recorder {
    inner: Option<Arc<WebPkiServerVerifier>>,
    verify: Verify,
    /// The check's `ca_file` certificates: a server certificate that is
    /// byte for byte one of them is trusted as itself (a pinned
    /// self-signed certificate, often CA:TRUE, that WebPKI refuses as a
    /// leaf); its dates and names are still judged.
    pinned: Vec<CertificateDer<'static>>,
    seen: Mutex<Option<Seen>>,
}

/// A verdict of tether's own, carried in `CertificateError::Other`.
#[derive(Debug)]
enum Why {
    /// The server sent only its own certificate, whose issuer is no trusted
    /// root: the intermediate is missing.
    IncompleteChain,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server sent no intermediate certificate")
    }
}

impl std::error::Error for Why {}

fn other(why: Why) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(why))))
}

/// The verdict on a certificate that is exactly a pinned one: its dates
/// and the name, no chain.
fn pinned_verdict(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let bad = |c| rustls::Error::InvalidCertificate(c);
    let info = x509::parse(end_entity).map_err(|_| bad(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now > info.not_after {
        return Err(bad(CertificateError::Expired));
    }
    if now < info.not_before {
        return Err(bad(CertificateError::NotValidYet));
    }
    webpki::EndEntityCert::try_from(end_entity)
        .map_err(|_| bad(CertificateError::BadEncoding))?
        .verify_is_valid_for_subject_name(server_name)
        .map_err(|_| bad(CertificateError::NotValidForName))
}

/// Why a chain is not trusted, as a sentence (rustls's and webpki's errors
/// print as debug text: `UnknownIssuer`, `Other(OtherError(…))`).
pub fn untrusted_why(e: &rustls::Error) -> String {
    use CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return "the certificate could not be verified".into();
    };
    match c {
        C::UnknownIssuer => "its issuer is not a CA this host trusts (the system bundle or the check's ca_file)".into(),
        C::BadSignature => "a signature in its chain does not verify".into(),
        C::BadEncoding => "it is not a well-formed X.509 certificate".into(),
        C::Revoked => "it is revoked".into(),
        C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "it is signed with an algorithm tether does not accept (RSA, ECDSA and Ed25519 with SHA-2 are)".into()
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "it is not meant for a TLS server (its extended key usage says otherwise)".into()
        }
        C::UnhandledCriticalExtension => "it has a critical extension tether does not know".into(),
        C::Other(o) => {
            if let Some(w) = o.0.downcast_ref::<Why>() {
                match w {
                    Why::IncompleteChain => "the server sent only its own certificate, and its issuer is not a CA this host trusts: either the server does not send the intermediate certificate (configure it to send its full chain) or the issuing CA must be trusted (ca_file)".into(),
                }
            } else if let Some(w) = o.0.downcast_ref::<webpki::Error>() {
                match w {
                    webpki::Error::CaUsedAsEndEntity => "it is a CA certificate (CA:TRUE) used as the server's own certificate; to trust exactly this certificate, give it as ca_file".into(),
                    webpki::Error::EndEntityUsedAsCa => "a server certificate in its chain is used as a CA".into(),
                    webpki::Error::PathLenConstraintViolated => "its chain is longer than a CA in it allows".into(),
                    webpki::Error::NameConstraintViolation => "it names a host that a CA in its chain may not certify".into(),
                    webpki::Error::MaximumPathDepthExceeded | webpki::Error::MaximumPathBuildCallsExceeded => "its chain is too long to verify".into(),
                    _ => "it breaks a rule of X.509 path validation".into(),
                }
            } else {
                "it could not be verified".into()
            }
        }
        _ => "it could not be verified".into(),
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.inner {
            Some(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        let leaf = x509::parse(end_entity);
        let verdict = match verdict {
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                pinned_verdict(end_entity, server_name, now)
            }
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
                if intermediates.is_empty()
                    && leaf.as_ref().is_ok_and(|l| l.issuer != l.subject) =>
            {
                Err(other(Why::IncompleteChain))
            }
            v => v,
        };
        let seen = Seen {
            leaf,
            verdict: verdict.clone(),
        };
        if let Ok(mut slot) = self.seen.lock() {
            *slot = Some(seen);
        }
        match verdict {
            Err(e) if self.verify == Verify::Enforce => Err(e),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &SIGNATURE_ALGORITHMS)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &SIGNATURE_ALGORITHMS)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SIGNATURE_ALGORITHMS.supported_schemes()
    }
}

//! TLS: `tls`, `https` and `cert_file` checks against certificates made at
//! test time and TLS servers on loopback. Test CAs are not in the system
//! bundle, so trust comes from `ca_file` unless a test wants it missing.

mod common;

use std::path::Path;

use common::pki::{ca_leaf, leaf, tls_server, Ca};
use common::*;
use tether::outcome::{Outcome, Phase, Reason, Status};

fn resolver() -> tether::net::resolve::Resolver {
    hosts_resolver("127.0.0.1 svc.test\n")
}

fn tls_check(addr: std::net::SocketAddr, extra: &str) -> Outcome {
    run(
        &check(&format!("kind = \"tls\"\ntarget = \"{addr}\"\n{extra}")),
        &resolver(),
    )
}

fn ca_line(dir: &Path, ca: &Ca) -> String {
    format!("ca_file = \"{}\"", ca.write_pem(dir).display())
}

fn days_left(o: &Outcome) -> i64 {
    let c = o.detail.cert.as_ref().expect("certificate detail");
    let now = tether::os::clock::unix_secs(std::time::SystemTime::now());
    // Whole days, truncated toward zero, as the agent counts them.
    (c.info.not_after - now) / 86_400
}

#[test]
fn valid_chain_is_ok_with_dates_names_and_days_left() {
    let dir = temp_dir("tls-valid");
    let root = Ca::root("Test Root");
    let inter = root.intermediate("Test Intermediate");
    let l = leaf(Some(&inter), &["svc.test", "127.0.0.1"], -1, 100);
    let addr = tls_server(&l, &[&inter]);
    let o = tls_check(addr, &ca_line(&dir, &root));
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!((98..=100).contains(&days_left(&o)), "{o:?}");
    let cert = o.detail.cert.as_ref().unwrap();
    assert_eq!(cert.verified, Some(true));
    assert_eq!(cert.info.subject, "CN=svc.test");
    assert_eq!(cert.info.issuer, "CN=Test Intermediate");
    assert_eq!(cert.info.names, vec!["svc.test", "127.0.0.1"]);
    assert!(o.message.contains("verified"), "{}", o.message);
    assert!(o.phases.get(Phase::Tls) > std::time::Duration::ZERO);
    // By name, through the resolver, with SNI svc.test.
    let by_name = run(
        &check(&format!(
            "kind = \"tls\"\ntarget = \"svc.test:{}\"\n{}",
            addr.port(),
            ca_line(&dir, &root)
        )),
        &resolver(),
    );
    assert_eq!(by_name.status, Status::Ok, "{by_name:?}");
}

#[test]
fn expired_certificate_is_crit_and_still_reports_when_it_expired() {
    let dir = temp_dir("tls-expired");
    let root = Ca::root("Test Root");
    let l = leaf(Some(&root), &["127.0.0.1"], -30, -3);
    let addr = tls_server(&l, &[]);
    let o = tls_check(addr, &ca_line(&dir, &root));
    assert_reason(&o, Reason::TlsExpired);
    assert_eq!(days_left(&o), -3, "{o:?}");
    let date = tether::os::clock::rfc3339_unix(l.not_after.unix_timestamp());
    assert!(o.message.contains(&date), "{} lacks {date}", o.message);
    assert_eq!(o.detail.cert.as_ref().unwrap().verified, Some(false));
}

#[test]
fn not_yet_valid_certificate_is_crit() {
    let dir = temp_dir("tls-future");
    let root = Ca::root("Test Root");
    let addr = tls_server(&leaf(Some(&root), &["127.0.0.1"], 2, 90), &[]);
    assert_reason(
        &tls_check(addr, &ca_line(&dir, &root)),
        Reason::TlsNotYetValid,
    );
}

#[test]
fn wrong_hostname_is_a_mismatch_naming_both() {
    let dir = temp_dir("tls-name");
    let root = Ca::root("Test Root");
    let addr = tls_server(&leaf(Some(&root), &["other.test"], -1, 90), &[]);
    let o = tls_check(addr, &ca_line(&dir, &root));
    assert_reason(&o, Reason::TlsHostnameMismatch);
    assert!(
        o.message.contains("other.test") && o.message.contains("127.0.0.1"),
        "{}",
        o.message
    );
    // server_name asks for the name the certificate carries: ok.
    let o = tls_check(
        addr,
        &format!("{}\nserver_name = \"other.test\"", ca_line(&dir, &root)),
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
}

#[test]
fn untrusted_issuer_is_crit_and_names_the_issuer() {
    let root = Ca::root("Unknown Root");
    let addr = tls_server(&leaf(Some(&root), &["127.0.0.1"], -1, 90), &[]);
    let o = tls_check(addr, "");
    assert_reason(&o, Reason::TlsUntrusted);
    assert!(o.message.contains("CN=Unknown Root"), "{}", o.message);
    assert!(
        (88..=90).contains(&days_left(&o)),
        "dates still reported: {o:?}"
    );
}

#[test]
fn self_signed_certificate_trusted_through_ca_file() {
    let dir = temp_dir("tls-self");
    let l = leaf(None, &["127.0.0.1"], -1, 60);
    let addr = tls_server(&l, &[]);
    let path = l.write_pem(&dir, "self.pem");
    let o = tls_check(addr, &format!("ca_file = \"{}\"", path.display()));
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_reason(&tls_check(addr, ""), Reason::TlsUntrusted);
}

#[test]
fn a_pinned_ca_true_self_signed_certificate_is_trusted_as_itself() {
    // `openssl req -x509` makes CA:TRUE certificates, which WebPKI refuses
    // as a server's own (CaUsedAsEndEntity) even when given as ca_file.
    let dir = temp_dir("tls-pinned");
    let l = ca_leaf(&["127.0.0.1", "svc.test"], -1, 60);
    let addr = tls_server(&l, &[]);
    let pin = format!(
        "ca_file = \"{}\"",
        l.write_pem(&dir, "pinned.pem").display()
    );
    let o = tls_check(addr, &pin);
    assert_eq!(o.status, Status::Ok, "{o:?}");
    let o = https(&format!("https://{addr}/"), &pin);
    assert_eq!(o.status, Status::Ok, "{o:?}");
    // Its names and dates are still judged.
    let o = tls_check(addr, &format!("{pin}\nserver_name = \"other.test\""));
    assert_reason(&o, Reason::TlsHostnameMismatch);
    let old = ca_leaf(&["127.0.0.1"], -30, -2);
    let old_addr = tls_server(&old, &[]);
    let old_pin = format!("ca_file = \"{}\"", old.write_pem(&dir, "old.pem").display());
    let o = tls_check(old_addr, &old_pin);
    assert_reason(&o, Reason::TlsExpired);
    assert!(o.message.contains("(2 days ago)"), "{}", o.message);
    // Not pinned: untrusted, said as a sentence with the way out.
    let o = tls_check(addr, "");
    assert_reason(&o, Reason::TlsUntrusted);
    assert!(
        !o.message.contains("Other(") && !o.message.contains("UnknownIssuer"),
        "{}",
        o.message
    );
    assert!(
        o.message
            .contains("to trust exactly this certificate, give it as ca_file"),
        "{}",
        o.message
    );
}

#[test]
fn a_missing_intermediate_is_named() {
    let dir = temp_dir("tls-chain");
    let root = Ca::root("Chain Root");
    let mid = root.intermediate("Chain Intermediate");
    let l = leaf(Some(&mid), &["127.0.0.1"], -1, 60);
    let ca = ca_line(&dir, &root);
    let full = tls_server(&l, &[&mid]);
    assert_eq!(tls_check(full, &ca).status, Status::Ok);
    let short = tls_server(&l, &[]);
    let o = tls_check(short, &ca);
    assert_reason(&o, Reason::TlsUntrusted);
    assert!(
        o.message
            .contains("does not send the intermediate certificate"),
        "{}",
        o.message
    );
}

#[test]
fn expiry_thresholds_warn_and_crit_before_expiry() {
    let dir = temp_dir("tls-soon");
    let root = Ca::root("Test Root");
    let addr = tls_server(&leaf(Some(&root), &["127.0.0.1"], -1, 5), &[]);
    let ca = ca_line(&dir, &root);
    let o = tls_check(addr, &ca);
    assert_eq!(
        (o.status, o.reason),
        (Status::Warn, Some(Reason::CertExpiring)),
        "{o:?}"
    );
    let o = tls_check(addr, &format!("{ca}\nwarn_days = 30\ncrit_days = 7"));
    assert_reason(&o, Reason::CertExpiring);
    let o = tls_check(addr, &format!("{ca}\nwarn_days = 3"));
    assert_eq!(o.status, Status::Ok, "{o:?}");
}

#[test]
fn insecure_skip_verify_reports_instead_of_failing() {
    let root = Ca::root("Unknown Root");
    let addr = tls_server(&leaf(Some(&root), &["127.0.0.1"], -1, 90), &[]);
    let o = tls_check(addr, "insecure_skip_verify = true");
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.message.contains("NOT VERIFIED"), "{}", o.message);
    let cert = o.detail.cert.as_ref().unwrap();
    assert!(cert.verify_skipped && cert.verified == Some(false));
}

#[test]
fn plain_tcp_server_is_a_handshake_failure() {
    let addr = banner_server(b"SSH-2.0-fake\r\n");
    let o = tls_check(addr, "");
    assert_reason(&o, Reason::TlsHandshake);
    assert!(o.message.contains("127.0.0.1"), "{}", o.message);
}

#[test]
fn silent_server_times_out_in_the_tls_phase() {
    let addr = silent_server();
    let o = tls_check(addr, "timeout = \"300ms\"");
    assert_reason(&o, Reason::TlsTimeout);
    assert!(o.message.contains("during tls"), "{}", o.message);
}

fn https(url: &str, extra: &str) -> Outcome {
    run(
        &check(&format!("kind = \"http\"\nurl = \"{url}\"\n{extra}")),
        &resolver(),
    )
}

#[test]
fn https_verified_get_times_the_tls_phase() {
    let dir = temp_dir("https-ok");
    let root = Ca::root("Test Root");
    let addr = tls_server(&leaf(Some(&root), &["svc.test"], -1, 90), &[]);
    let url = format!("https://svc.test:{}/healthz", addr.port());
    let o = https(&url, &ca_line(&dir, &root));
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.message.contains("HTTP 200"), "{}", o.message);
    assert!(o.phases.get(Phase::Tls) > std::time::Duration::ZERO);
    assert!(o.phases.get(Phase::FirstByte) > std::time::Duration::ZERO);
    assert_eq!(o.detail.cert.as_ref().unwrap().verified, Some(true));
}

#[test]
fn https_certificate_failures_have_their_own_codes() {
    let dir = temp_dir("https-bad");
    let root = Ca::root("Test Root");
    let ca = ca_line(&dir, &root);
    let expired = tls_server(&leaf(Some(&root), &["127.0.0.1"], -9, -1), &[]);
    let misnamed = tls_server(&leaf(Some(&root), &["other.test"], -1, 9), &[]);
    let cases = [
        (expired, ca.as_str(), Reason::TlsExpired),
        (misnamed, ca.as_str(), Reason::TlsHostnameMismatch),
        (misnamed, "", Reason::TlsUntrusted),
    ];
    for (addr, extra, reason) in cases {
        let o = https(&format!("https://{addr}/"), extra);
        assert_reason(&o, reason);
        assert_eq!(o.phases.get(Phase::FirstByte), std::time::Duration::ZERO);
    }
    let o = https(
        &format!("https://{misnamed}/"),
        "insecure_skip_verify = true",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.message.contains("NOT verified"), "{}", o.message);
}

#[test]
fn cert_file_judges_the_earliest_expiry_in_the_file() {
    let dir = temp_dir("cert-file");
    let root = Ca::root("Test Root");
    let soon = leaf(Some(&root), &["client.test"], -1, 5);
    let path = dir.join("chain.pem");
    std::fs::write(&path, format!("{}{}", soon.pem, root.pem)).unwrap();
    let file = |p: &Path, extra: &str| {
        run(
            &check(&format!(
                "kind = \"cert_file\"\npath = \"{}\"\n{extra}",
                p.display()
            )),
            &resolver(),
        )
    };
    let o = file(&path, "");
    assert_eq!(
        (o.status, o.reason),
        (Status::Warn, Some(Reason::CertExpiring)),
        "{o:?}"
    );
    assert!((4..=5).contains(&days_left(&o)), "{o:?}");
    let expired = leaf(None, &["old.test"], -20, -2).write_pem(&dir, "old.pem");
    assert_reason(&file(&expired, ""), Reason::TlsExpired);
    assert_reason(&file(&dir.join("missing.pem"), ""), Reason::FileMissing);
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    assert_reason(&file(&junk, ""), Reason::FileError);
}

/// The system CA bundle is the trust store (no roots are compiled in), and
/// `SSL_CERT_FILE` replaces it, as in OpenSSL and Go. Run through the binary
/// so each case gets its own environment.
#[test]
fn the_system_bundle_is_trusted_and_ssl_cert_file_replaces_it() {
    let dir = temp_dir("tls-system");
    let root = Ca::root("Pretend System Root");
    let addr = tls_server(&leaf(Some(&root), &["127.0.0.1"], -1, 30), &[]);
    let cfg = dir.join("t.toml");
    std::fs::write(
        &cfg,
        with_agent_defaults(
            &format!("[[check]]\nname = \"cp\"\nkind = \"tls\"\ntarget = \"{addr}\"\n"),
            &dir,
        ),
    )
    .unwrap();
    let check = |bundle: &Path| {
        common::tether_command()
            .args(["check", "-c"])
            .arg(&cfg)
            .env("SSL_CERT_FILE", bundle)
            .output()
            .unwrap()
    };
    // The test CA as the whole system bundle: trusted without a ca_file.
    let trusted = check(&root.write_pem(&dir));
    let out = String::from_utf8_lossy(&trusted.stdout);
    assert_eq!(trusted.status.code(), Some(0), "{out}");
    // No bundle at all: nothing is trusted, and the log says where it looked.
    let none = check(&dir.join("missing.pem"));
    let (out, err) = (
        String::from_utf8_lossy(&none.stdout),
        String::from_utf8_lossy(&none.stderr),
    );
    assert_eq!(none.status.code(), Some(2), "{out}");
    assert!(out.contains("tls_untrusted"), "{out}");
    assert!(
        err.contains("no trusted CA certificates") && err.contains("missing.pem"),
        "{err}"
    );
}

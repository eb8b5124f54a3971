//! The reason codes: why a probe did not come back ok, one stable
//! snake_case code and one sentence each, and the mapping from I/O errors.

macro_rules! reasons {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// Why a probe did not come back ok: a stable snake_case code carried in
        /// every result, exported in `/status` and counted in `/metrics`.
        /// Codes are an interface: never rename one, only add.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason { $(#[doc = $doc] $variant,)* }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];
            pub fn code(self) -> &'static str {
                match self { $(Reason::$variant => $code,)* }
            }
        }
    };
}

reasons! {
    ConnectRefused => "connect_refused", "The target answered the SYN with a RST: nothing listens there.";
    ConnectTimeout => "connect_timeout", "No answer to the SYN before the deadline: a filtered port or a full backlog.";
    HostUnreachable => "host_unreachable", "The kernel or a router reported the host unreachable.";
    NetworkUnreachable => "network_unreachable", "No route to the target's network.";
    ConnectError => "connect_error", "Any other error while connecting.";
    ConnectionReset => "connection_reset", "The peer reset the connection (RST) mid-exchange.";
    DnsNxdomain => "dns_nxdomain", "The name does not exist (NXDOMAIN) in any search domain.";
    DnsNoData => "dns_no_data", "The name exists but has no address of the wanted family.";
    DnsTimeout => "dns_timeout", "No nameserver answered within its timeout and attempts.";
    DnsServfail => "dns_servfail", "The nameservers answered SERVFAIL.";
    DnsRefused => "dns_refused", "The nameservers refused the query.";
    DnsError => "dns_error", "A malformed reply or no usable nameserver.";
    DnsMismatch => "dns_mismatch", "The answer lacks an expected address.";
    HttpStatus => "http_status", "The HTTP status is not one of the expected ones.";
    CredentialsRejected => "credentials_rejected", "HTTP 401 or 403: the credentials the connector presents were refused.";
    BodyMismatch => "body_mismatch", "The response body lacks `body_contains`.";
    HttpProtocol => "http_protocol", "The server's reply is not valid HTTP/1.x.";
    TooManyRedirects => "too_many_redirects", "More redirects than allowed, or a redirect to an unsupported URL.";
    TlsHandshake => "tls_handshake", "The TLS handshake failed for a reason other than the certificate (protocol, alert, not TLS).";
    TlsTimeout => "tls_timeout", "The deadline passed during the TLS handshake.";
    TlsUntrusted => "tls_untrusted", "The certificate chain does not lead to a trusted root (unknown issuer, bad signature, wrong usage).";
    TlsExpired => "tls_expired", "A certificate is past its notAfter date (or fewer than `crit_days` days remain).";
    TlsNotYetValid => "tls_not_yet_valid", "A certificate's notBefore date is in the future (check the clock).";
    TlsHostnameMismatch => "tls_hostname_mismatch", "The certificate is not valid for the name (or address) that was asked for.";
    CertExpiring => "cert_expiring", "Fewer than `warn_days` days remain before the certificate expires.";
    FileMissing => "file_missing", "The path does not exist.";
    FileError => "file_error", "The path cannot be read, or its content is not what the check expects.";
    ExecStatus => "exec_status", "The command exited non-zero: 1 is warn, 2 crit, others unknown (a Nagios plugin's verdict).";
    ExecSignal => "exec_signal", "The command was killed by a signal (other than tether's at the deadline).";
    ExecError => "exec_error", "The command could not be started (not found, not executable).";
    FileStale => "file_stale", "The file was last modified longer ago than `warn_age` / `crit_age`.";
    FileTooSmall => "file_too_small", "The file is smaller than `min_size`.";
    FsTimeout => "fs_timeout", "A filesystem call (stat, open, read, statvfs, create, write, fsync, unlink) did not return before the deadline: a hung mount or a failing disk. The message names the call and the path.";
    FsStuck => "fs_stuck", "Not tried: an earlier call on this path is still stuck in the kernel, or every filesystem helper is (the message says which).";
    FsHelperError => "fs_helper_error", "The helper process that makes the check's filesystem calls could not be started or died.";
    NotWritable => "not_writable", "The directory does not let the agent create, write, fsync and remove a file.";
    CpuOverloaded => "cpu_overloaded", "The CPU busy percent over the window is at or above `warn_percent`: the host is overloaded.";
    MemoryLow => "memory_low", "Available memory is below `memory_warn_percent` / `memory_crit_percent` of the total.";
    DiskLow => "disk_low", "Free space on `disk_path` is below `disk_warn_percent` / `disk_crit_percent`.";
    ExpectMismatch => "expect_mismatch", "The TCP banner does not start with `expect`.";
    Timeout => "timeout", "The deadline passed after connecting, waiting for or reading the reply.";
    InFlightLimit => "in_flight_limit", "The probe could not start before its deadline: too many probes in flight.";
    IoError => "io_error", "Another I/O error during the exchange.";
    ConnectionClosed => "connection_closed", "The peer closed the connection cleanly (FIN) before its reply was complete.";
    RedirectRefused => "redirect_refused", "A redirect the check will not follow: from https to http, or to a Location that is not a usable URL.";
    HttpHeadTooLarge => "http_head_too_large", "The response head is larger than 64 KiB or has more than 500 header fields.";
}

/// Maps a connect error to its reason code.
pub fn connect_reason(e: &std::io::Error) -> Reason {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => Reason::ConnectRefused,
        K::TimedOut => Reason::ConnectTimeout,
        K::HostUnreachable => Reason::HostUnreachable,
        K::NetworkUnreachable => Reason::NetworkUnreachable,
        _ => Reason::ConnectError,
    }
}

/// Maps an error during an established exchange to its reason code.
pub fn io_reason(e: &std::io::Error) -> Reason {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Reason::ConnectionReset,
        K::UnexpectedEof => Reason::ConnectionClosed,
        K::TimedOut => Reason::Timeout,
        _ => Reason::IoError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let c = r.code();
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
            assert!(seen.insert(c), "duplicate {c}");
        }
    }
}

//! Syslog delivery: RFC 5424 messages over UDP, or over TCP and TLS with
//! RFC 6587 octet counting (`LEN SP MSG`), which lets a message hold any byte.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Transport;
use crate::detect::rule::Severity;

/// How long to wait for the SIEM to accept a connection or a write.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Facility `local4` (20), the usual one for security tools' own events.
const FACILITY: u8 = 20;

/// TLS settings: the CA file to trust instead of the system's roots.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// PEM CA certificates.
    pub ca_file: Option<PathBuf>,
}

/// The syslog severity of an alert severity (critical 2, high 3, medium 4, low 5).
fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
    }
}

/// This machine's name, for the HOSTNAME field.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    // RFC 5424: printable US-ASCII without spaces, or the nil value.
    let clean: String = name.chars().filter(|c| c.is_ascii_graphic()).collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// One RFC 5424 message: `<PRI>1 TIMESTAMP HOST emrwatch PID MSGID - BODY`.
pub fn rfc5424(severity: Severity, msgid: &str, body: &str) -> String {
    let pri = u16::from(FACILITY) * 8 + u16::from(syslog_severity(severity));
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!(
        "<{pri}>1 {now} {} emrwatch {} {msgid} - {body}",
        hostname(),
        std::process::id()
    )
}

/// Sends every message, framed for `transport`, over one connection.
pub fn send(
    transport: Transport,
    host: &str,
    port: u16,
    msgid: &str,
    messages: &[(Severity, String)],
    tls: &TlsSettings,
) -> std::io::Result<()> {
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to no address")))?;
    let framed = messages
        .iter()
        .map(|(sev, body)| rfc5424(*sev, msgid, body));
    match transport {
        Transport::Udp => {
            let bind = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let sock = UdpSocket::bind(bind)?;
            sock.connect(addr)?;
            for m in framed {
                sock.send(m.as_bytes())?;
            }
            Ok(())
        }
        Transport::Tcp => {
            let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
            stream.set_write_timeout(Some(TIMEOUT))?;
            write_octet_counted(&mut stream, framed)?;
            stream.shutdown(std::net::Shutdown::Write)
        }
        Transport::Tls => {
            let config = tls_config(tls)?;
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
            let conn =
                rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
            let tcp = TcpStream::connect_timeout(&addr, TIMEOUT)?;
            tcp.set_write_timeout(Some(TIMEOUT))?;
            tcp.set_read_timeout(Some(TIMEOUT))?;
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            write_octet_counted(&mut stream, framed)?;
            stream.conn.send_close_notify();
            stream.flush()
        }
    }
}

fn write_octet_counted(
    out: &mut dyn Write,
    messages: impl Iterator<Item = String>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for m in messages {
        write!(buf, "{} ", m.len())?;
        buf.extend_from_slice(m.as_bytes());
    }
    out.write_all(&buf)?;
    out.flush()
}

fn tls_config(tls: &TlsSettings) -> std::io::Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| std::io::Error::other(format!("CA file {}: {e}", path.display())))?
            {
                let cert = cert.map_err(|e| {
                    std::io::Error::other(format!("CA file {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(std::io::Error::other)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot use is not a reason to fail.
                let _ = roots.add(cert);
            }
        }
    }
    // rustls is built with two crypto providers here (object_store's and
    // ours); name one rather than rely on a process default.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_counting_counts_bytes_not_chars() {
        let mut out = Vec::new();
        write_octet_counted(&mut out, ["é\nx".to_string(), "ab".to_string()].into_iter()).unwrap();
        assert_eq!(out, "4 é\nx2 ab".as_bytes());
    }

    #[test]
    fn the_header_carries_facility_and_severity() {
        let m = rfc5424(Severity::Critical, "CEF", "CEF:0|x");
        assert!(m.starts_with("<162>1 "), "{m}");
        assert!(
            m.contains(" emrwatch ") && m.ends_with(" CEF - CEF:0|x"),
            "{m}"
        );
    }
}

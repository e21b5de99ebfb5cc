//! SIEM sinks: where a scheduled run delivers its new alerts.
//!
//! A sink is written as a URL, in the config file (`sinks = [...]`) or with
//! `--sink`:
//!
//! | sink | what is sent |
//! |---|---|
//! | `cef+udp://HOST:PORT` | [CEF](cef) in RFC 5424 syslog, one datagram per alert |
//! | `cef+tcp://HOST:PORT` | the same over TCP, RFC 6587 octet-counted frames |
//! | `cef+tls://HOST:PORT` | the same over TLS (RFC 5425) |
//! | `leef+udp://…`, `leef+tcp://…`, `leef+tls://…` | [LEEF 2.0](leef), same transports |
//! | `ecs+file:///PATH` | [ECS](ecs)-style JSON, one alert per line, appended to PATH |

pub mod cef;
pub mod ecs;
pub mod leef;
pub mod syslog;

use std::path::PathBuf;

use crate::detect::Alert;
use crate::detect::rule::Severity;

/// Vendor, product and version in CEF and LEEF headers.
pub const VENDOR: (&str, &str, &str) = ("emrwatch", "emrwatch", env!("CARGO_PKG_VERSION"));

/// A CEF or LEEF message split into its header fields and its key-value pairs.
pub type Parsed = (Vec<String>, Vec<(String, String)>);

/// Splits the `|`-separated header of a CEF or LEEF message body (after
/// `CEF:`/`LEEF:`) into its first `fields` fields, unescaping `\|` and `\\`;
/// returns them and the rest of the message.
pub fn split_header(body: &str, fields: usize) -> Option<(Vec<String>, &str)> {
    let mut header = Vec::new();
    let mut cur = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    cur.push(n);
                }
            }
            '|' => {
                header.push(std::mem::take(&mut cur));
                if header.len() == fields {
                    return Some((header, &body[i + 1..]));
                }
            }
            c => cur.push(c),
        }
    }
    None
}

/// Reverses the backslash escapes of CEF and LEEF values: `\n`, `\r`, `\t`
/// are line feed, carriage return and tab; a backslash before any other
/// character stands for that character.
pub fn unescape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// CEF/LEEF severity (0-10) of an alert severity.
pub fn severity_number(s: Severity) -> u8 {
    match s {
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// The message format of a syslog sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageFormat {
    /// ArcSight CEF.
    Cef,
    /// QRadar LEEF 2.0.
    Leef,
}

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One datagram per message.
    Udp,
    /// Octet-counted frames (RFC 6587).
    Tcp,
    /// Octet-counted frames over TLS (RFC 5425).
    Tls,
}

/// A parsed sink URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// CEF or LEEF over syslog to `host:port`.
    Syslog {
        /// CEF or LEEF.
        format: MessageFormat,
        /// UDP, TCP or TLS.
        transport: Transport,
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// ECS JSON lines appended to a file.
    EcsFile(PathBuf),
}

impl SinkSpec {
    /// Parses `cef+tcp://host:port`, `leef+udp://host:port`, `ecs+file:///path`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let usage = "expected cef+udp|tcp|tls://HOST:PORT, leef+udp|tcp|tls://HOST:PORT \
                     or ecs+file:///PATH";
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("sink {s:?}: {usage}"))?;
        if scheme == "ecs+file" {
            if !rest.starts_with('/') {
                return Err(format!(
                    "sink {s:?}: the file must be an absolute path (ecs+file:///var/lib/emrwatch/alerts.json)"
                ));
            }
            return Ok(Self::EcsFile(PathBuf::from(rest)));
        }
        let (fmt, tr) = scheme
            .split_once('+')
            .ok_or_else(|| format!("sink {s:?}: {usage}"))?;
        let format = match fmt {
            "cef" => MessageFormat::Cef,
            "leef" => MessageFormat::Leef,
            _ => {
                return Err(format!(
                    "sink {s:?}: unknown message format {fmt:?}; {usage}"
                ));
            }
        };
        let transport = match tr {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(format!("sink {s:?}: unknown transport {tr:?}; {usage}")),
        };
        let url =
            url::Url::parse(&format!("syslog://{rest}")).map_err(|e| format!("sink {s:?}: {e}"))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("sink {s:?}: no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = url
            .port()
            .ok_or_else(|| format!("sink {s:?}: no port (syslog is usually 514, TLS 6514)"))?;
        Ok(Self::Syslog {
            format,
            transport,
            host,
            port,
        })
    }
}

/// Delivers alerts to every sink; stops at the first sink that fails.
pub fn deliver(
    sinks: &[SinkSpec],
    alerts: &[Alert],
    tls: &syslog::TlsSettings,
) -> Result<(), String> {
    if alerts.is_empty() {
        return Ok(());
    }
    for sink in sinks {
        match sink {
            SinkSpec::Syslog {
                format,
                transport,
                host,
                port,
            } => {
                let messages: Vec<(Severity, String)> = alerts
                    .iter()
                    .map(|al| {
                        let body = match format {
                            MessageFormat::Cef => cef::format(al),
                            MessageFormat::Leef => leef::format(al),
                        };
                        (al.severity, body)
                    })
                    .collect();
                let msgid = match format {
                    MessageFormat::Cef => "CEF",
                    MessageFormat::Leef => "LEEF",
                };
                syslog::send(*transport, host, *port, msgid, &messages, tls)
                    .map_err(|e| format!("sink {transport:?} {host}:{port}: {e}"))?;
            }
            SinkSpec::EcsFile(path) => {
                ecs::append(path, alerts).map_err(|e| format!("sink {}: {e}", path.display()))?
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls_parse() {
        assert_eq!(
            SinkSpec::parse("cef+tcp://127.0.0.1:6514").unwrap(),
            SinkSpec::Syslog {
                format: MessageFormat::Cef,
                transport: Transport::Tcp,
                host: "127.0.0.1".into(),
                port: 6514
            }
        );
        assert_eq!(
            SinkSpec::parse("ecs+file:///tmp/a.json").unwrap(),
            SinkSpec::EcsFile("/tmp/a.json".into())
        );
        for bad in [
            "cef://h:1",
            "cef+smtp://h:1",
            "xml+udp://h:1",
            "leef+udp://h",
            "ecs+file://rel",
        ] {
            assert!(SinkSpec::parse(bad).is_err(), "{bad}");
        }
    }
}

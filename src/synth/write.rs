//! The generated access events as bytes: FHIR R4 AuditEvent NDJSON (the
//! default, as a hospital following IHE BALP writes it), a flat JSON-lines log
//! with the canonical field names, or a CSV export with a header.
//!
//! Written by hand into a reused buffer rather than through `write!` or serde:
//! formatting is most of the generator's time, and it must reach a million
//! events per second.

use super::Kind;

/// The output formats of `emrwatch gen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// FHIR R4 AuditEvent, one resource per line (`.ndjson`).
    #[default]
    Fhir,
    /// Flat JSON lines with the canonical column names (`.jsonl`).
    Ndjson,
    /// CSV with a header row and the canonical column names (`.csv`).
    Csv,
}

impl OutputFormat {
    /// The file extension of a day file, before any `.gz`.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Fhir => "ndjson",
            OutputFormat::Ndjson => "jsonl",
            OutputFormat::Csv => "csv",
        }
    }
    /// What a file starts with (the CSV header).
    pub fn preamble(self) -> &'static [u8] {
        match self {
            OutputFormat::Csv => {
                b"ts,user_id,user_role,patient_id,action,outcome,resource,src_ip,app,event_id\n"
            }
            _ => b"",
        }
    }
}

/// One event, borrowed from the population.
pub struct EventView<'a> {
    /// `YYYYMMDD-`, the day part of the event id.
    pub id_prefix: &'a [u8],
    /// Position in the day's file: the rest of the id.
    pub seq: u64,
    /// `YYYY-MM-DDT`, the day part of the timestamp.
    pub date_prefix: &'a [u8],
    /// UTC microseconds.
    pub ts: i64,
    /// Staff user id.
    pub user: &'a str,
    /// Staff role.
    pub role: &'a str,
    /// Staff index, which numbers the user's own workstation address.
    pub user_index: usize,
    /// The last octet of a 203.0.113.0/24 address, when not from the user's own.
    pub foreign_ip: Option<u8>,
    /// Patient id (ignored for logins and logouts).
    pub patient: &'a str,
    /// FHIR resource type of the chart section.
    pub resource: &'a str,
    /// What was done.
    pub kind: Kind,
}

/// Appends the decimal digits of `n`.
pub fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push2(buf: &mut Vec<u8>, n: i64) {
    buf.push(b'0' + (n / 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// `date_prefix` + `HH:MM:SS.mmmZ` of `ts` (which must fall on that day).
fn push_time(buf: &mut Vec<u8>, date_prefix: &[u8], ts: i64) {
    buf.extend_from_slice(date_prefix);
    let sod = ts.rem_euclid(86_400_000_000) / 1000;
    let (ms, s) = (sod % 1000, sod / 1000);
    push2(buf, s / 3600);
    buf.push(b':');
    push2(buf, s / 60 % 60);
    buf.push(b':');
    push2(buf, s % 60);
    buf.push(b'.');
    buf.push(b'0' + (ms / 100) as u8);
    push2(buf, ms % 100);
    buf.push(b'Z');
}

fn push_ip(buf: &mut Vec<u8>, e: &EventView) {
    match e.foreign_ip {
        Some(x) => {
            buf.extend_from_slice(b"203.0.113.");
            push_u64(buf, u64::from(x));
        }
        None => {
            // Each user works from their own address.
            let u = e.user_index as u64;
            buf.extend_from_slice(b"10.");
            push_u64(buf, u / 65_536 % 256);
            buf.push(b'.');
            push_u64(buf, u / 256 % 256);
            buf.push(b'.');
            push_u64(buf, u % 256);
        }
    }
}

fn push_id(buf: &mut Vec<u8>, e: &EventView) {
    buf.extend_from_slice(e.id_prefix);
    push_u64(buf, e.seq);
}

/// Appends one line of `format` for `e`.
pub fn event(buf: &mut Vec<u8>, format: OutputFormat, e: &EventView) {
    match format {
        OutputFormat::Fhir => fhir(buf, e),
        OutputFormat::Ndjson => ndjson(buf, e),
        OutputFormat::Csv => csv(buf, e),
    }
}

fn outcome(kind: Kind) -> &'static str {
    if matches!(kind, Kind::Login { failed: true }) {
        "failure"
    } else {
        "success"
    }
}

fn fhir(buf: &mut Vec<u8>, e: &EventView) {
    // type, subtype and action of each kind, as BALP writes them.
    let head: &[u8] = match e.kind {
        Kind::Login { .. } => {
            br#"{"resourceType":"AuditEvent","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110114"},"subtype":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110122"}],"action":"E","#
        }
        Kind::Logout => {
            br#"{"resourceType":"AuditEvent","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110114"},"subtype":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110123"}],"action":"E","#
        }
        Kind::BreakGlass => REST_READ,
        Kind::Print => REST_PRINT,
        Kind::Export => REST_EXPORT,
        Kind::Plain(code, _) => match code {
            "C" => REST_CREATE,
            "U" => REST_UPDATE,
            "D" => REST_DELETE,
            "E" => REST_SEARCH,
            _ => REST_READ,
        },
    };
    buf.extend_from_slice(head);
    buf.extend_from_slice(br#""id":""#);
    push_id(buf, e);
    buf.extend_from_slice(br#"","recorded":""#);
    push_time(buf, e.date_prefix, e.ts);
    buf.extend_from_slice(if matches!(e.kind, Kind::Login { failed: true }) {
        br#"","outcome":"4","#
    } else {
        br#"","outcome":"0","#
    });
    if matches!(e.kind, Kind::BreakGlass) {
        buf.extend_from_slice(
            br#""purposeOfEvent":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"BTG"}]}],"#,
        );
    }
    buf.extend_from_slice(
        br#""agent":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}]},"role":[{"coding":[{"system":"urn:emrwatch:role","code":""#,
    );
    buf.extend_from_slice(e.role.as_bytes());
    buf.extend_from_slice(br#""}]}],"who":{"identifier":{"system":"urn:emrwatch:staff","value":""#);
    buf.extend_from_slice(e.user.as_bytes());
    buf.extend_from_slice(br#""}},"requestor":true,"network":{"address":""#);
    push_ip(buf, e);
    buf.extend_from_slice(br#"","type":"2"}}],"source":{"observer":{"display":"EMR"}}"#);
    if e.kind.has_patient() {
        buf.extend_from_slice(br#","entity":[{"what":{"reference":"Patient/"#);
        buf.extend_from_slice(e.patient.as_bytes());
        buf.extend_from_slice(
            br#""},"role":{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}},{"what":{"reference":""#,
        );
        buf.extend_from_slice(e.resource.as_bytes());
        buf.push(b'/');
        push_id(buf, e);
        buf.extend_from_slice(br#""}}]"#);
    }
    buf.extend_from_slice(b"}\n");
}

/// The head of a RESTful AuditEvent: its type, subtype and action.
macro_rules! rest_head {
    ($name:ident, $sub:literal, $action:literal) => {
        const $name: &[u8] = concat!(
            r#"{"resourceType":"AuditEvent","type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"},"subtype":[{"system":"http://hl7.org/fhir/restful-interaction","code":""#,
            $sub,
            r#""}],"action":""#,
            $action,
            r#"","#
        )
        .as_bytes();
    };
}
rest_head!(REST_CREATE, "create", "C");
rest_head!(REST_UPDATE, "update", "U");
rest_head!(REST_DELETE, "delete", "D");
rest_head!(REST_SEARCH, "search-type", "E");
rest_head!(REST_READ, "read", "R");
rest_head!(REST_PRINT, "print", "R");
rest_head!(REST_EXPORT, "export", "R");

/// Lower-cased FHIR resource type, as the FHIR decoder stores it.
fn push_lower(buf: &mut Vec<u8>, s: &str) {
    buf.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
}

fn ndjson(buf: &mut Vec<u8>, e: &EventView) {
    buf.extend_from_slice(br#"{"ts":""#);
    push_time(buf, e.date_prefix, e.ts);
    buf.extend_from_slice(br#"","user_id":""#);
    buf.extend_from_slice(e.user.as_bytes());
    buf.extend_from_slice(br#"","user_role":""#);
    buf.extend_from_slice(e.role.as_bytes());
    if e.kind.has_patient() {
        buf.extend_from_slice(br#"","patient_id":""#);
        buf.extend_from_slice(e.patient.as_bytes());
        buf.extend_from_slice(br#"","resource":""#);
        push_lower(buf, e.resource);
    }
    buf.extend_from_slice(br#"","action":""#);
    buf.extend_from_slice(e.kind.action().as_bytes());
    buf.extend_from_slice(br#"","outcome":""#);
    buf.extend_from_slice(outcome(e.kind).as_bytes());
    buf.extend_from_slice(br#"","src_ip":""#);
    push_ip(buf, e);
    buf.extend_from_slice(br#"","app":"EMR","event_id":""#);
    push_id(buf, e);
    buf.extend_from_slice(b"\"}\n");
}

fn csv(buf: &mut Vec<u8>, e: &EventView) {
    // No field ever needs quoting: ids, roles and codes are plain ASCII words.
    push_time(buf, e.date_prefix, e.ts);
    buf.push(b',');
    buf.extend_from_slice(e.user.as_bytes());
    buf.push(b',');
    buf.extend_from_slice(e.role.as_bytes());
    buf.push(b',');
    if e.kind.has_patient() {
        buf.extend_from_slice(e.patient.as_bytes());
    }
    buf.push(b',');
    buf.extend_from_slice(e.kind.action().as_bytes());
    buf.push(b',');
    buf.extend_from_slice(outcome(e.kind).as_bytes());
    buf.push(b',');
    if e.kind.has_patient() {
        push_lower(buf, e.resource);
    }
    buf.push(b',');
    push_ip(buf, e);
    buf.extend_from_slice(b",EMR,");
    push_id(buf, e);
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_format_like_the_standard_library() {
        for n in [0u64, 7, 10, 99, 100, 12_345, u64::MAX] {
            let mut b = Vec::new();
            push_u64(&mut b, n);
            assert_eq!(b, n.to_string().into_bytes());
        }
        let day = crate::ingest::timestamp::days_from_civil(2026, 11, 2);
        for us in [0i64, 999_000, 3_723_456_000, 86_399_999_000] {
            let ts = day * 86_400_000_000 + us;
            let mut b = Vec::new();
            push_time(&mut b, b"2026-11-02T", ts);
            assert_eq!(String::from_utf8(b).unwrap(), super::super::rfc3339(ts));
        }
    }
}

//! `fhir`: HL7 FHIR AuditEvent (R4 and R5), one resource or Bundle per record.
//!
//! The mapping is DESIGN.md's "FHIR AuditEvent mapping" table. Older versions
//! (DSTU2, STU3) are recognised and rejected with a reason that names them;
//! resources that are not AuditEvents (in a Bundle or on their own) are skipped
//! and counted, since bulk exports mix resource types.

use std::borrow::Cow;

use simd_json::prelude::*;
use simd_json::tape::Value;

use super::builder::{AccessBuilder, AccessRow};
use super::json::{TapeParser, array_at, clip, str_at};
use super::timestamp::parse_rfc3339;
use super::{RecordOutcome, RecordSink};

/// Decodes FHIR AuditEvent JSON records.
#[derive(Debug, Default)]
pub struct FhirDecoder {
    parser: TapeParser,
}

impl FhirDecoder {
    /// Decodes the record in `buf[..len]` (padded) into `out`.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        len: usize,
        line: u64,
        out: &mut AccessBuilder,
        sink: &mut RecordSink,
    ) -> RecordOutcome {
        if buf[..len].trim_ascii_start().starts_with(b"<") {
            sink.reject(
                line,
                "XML is not a supported FHIR encoding: export AuditEvents as JSON (NDJSON or a Bundle)".into(),
            );
            return RecordOutcome::rejected();
        }
        let parsed = self.parser.parse(buf, len, |root| {
            if root.is_array() {
                // A JSON array of resources: treat like a Bundle's entries.
                let mut outcome = RecordOutcome::default();
                for (i, res) in root
                    .as_array()
                    .into_iter()
                    .flat_map(|a| a.iter())
                    .enumerate()
                {
                    outcome.merge(decode_resource(res, line, out, sink, Some(i)));
                }
                return outcome;
            }
            decode_resource(root, line, out, sink, None)
        });
        parsed.unwrap_or_else(|reason| {
            sink.reject(line, reason);
            RecordOutcome::rejected()
        })
    }
}

fn decode_resource(
    res: Value<'_, '_>,
    line: u64,
    out: &mut AccessBuilder,
    sink: &mut RecordSink,
    entry: Option<usize>,
) -> RecordOutcome {
    let prefix = |reason: String| match entry {
        Some(i) => format!("entry {i}: {reason}"),
        None => reason,
    };
    match str_at(res, "resourceType") {
        Some("AuditEvent") => match map_audit_event(res) {
            Ok(row) => {
                out.append(&row, line);
                RecordOutcome::stored(1)
            }
            Err(reason) => {
                sink.reject(line, prefix(reason));
                RecordOutcome::rejected()
            }
        },
        Some("Bundle") => {
            let mut outcome = RecordOutcome::default();
            for (i, e) in array_at(res, "entry").enumerate() {
                match e.get("resource") {
                    Some(r) => outcome.merge(decode_resource(r, line, out, sink, Some(i))),
                    None => outcome.skipped += 1,
                }
            }
            outcome
        }
        Some(_) => RecordOutcome::skipped(),
        None if !res.is_object() => {
            sink.reject(line, prefix("not a JSON object".into()));
            RecordOutcome::rejected()
        }
        None => {
            sink.reject(
                line,
                prefix("missing `resourceType`: not a FHIR resource".into()),
            );
            RecordOutcome::rejected()
        }
    }
}

/// The FHIR release a resource looks like it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    Dstu2,
    Stu3,
    R4,
    R5,
}

/// The top-level elements of an AuditEvent that the mapping reads, found in
/// one pass over its keys (looking each up by name rescans the object, and
/// that was a tenth of the ingest time).
#[derive(Default, Clone, Copy)]
struct Elements<'t, 'i> {
    recorded: Option<Value<'t, 'i>>,
    action: Option<Value<'t, 'i>>,
    outcome: Option<Value<'t, 'i>>,
    type_: Option<Value<'t, 'i>>,
    subtype: Option<Value<'t, 'i>>,
    category: Option<Value<'t, 'i>>,
    code: Option<Value<'t, 'i>>,
    agent: Option<Value<'t, 'i>>,
    entity: Option<Value<'t, 'i>>,
    patient: Option<Value<'t, 'i>>,
    source: Option<Value<'t, 'i>>,
    purpose_of_event: Option<Value<'t, 'i>>,
    authorization: Option<Value<'t, 'i>>,
    /// DSTU2 only.
    event: Option<Value<'t, 'i>>,
}

impl<'t, 'i> Elements<'t, 'i> {
    fn of(ev: Value<'t, 'i>) -> Self {
        let mut e = Self::default();
        let Some(obj) = ev.as_object() else { return e };
        for (k, v) in obj.iter() {
            let slot = match k {
                "recorded" => &mut e.recorded,
                "action" => &mut e.action,
                "outcome" => &mut e.outcome,
                "type" => &mut e.type_,
                "subtype" => &mut e.subtype,
                "category" => &mut e.category,
                "code" => &mut e.code,
                "agent" => &mut e.agent,
                "entity" => &mut e.entity,
                "patient" => &mut e.patient,
                "source" => &mut e.source,
                "purposeOfEvent" => &mut e.purpose_of_event,
                "authorization" => &mut e.authorization,
                "event" | "participant" => &mut e.event,
                _ => continue,
            };
            *slot = Some(v);
        }
        e
    }

    fn agents(&self) -> impl Iterator<Item = Value<'t, 'i>> + use<'t, 'i> {
        self.agent
            .and_then(|a| a.as_array())
            .map(|a| a.iter())
            .into_iter()
            .flatten()
    }

    fn release(&self) -> Release {
        if self.event.is_some() {
            return Release::Dstu2;
        }
        if self.agents().any(|a| {
            a.get("who").is_none() && (a.get("userId").is_some() || a.get("reference").is_some())
        }) {
            return Release::Stu3;
        }
        if self.outcome.is_some_and(|o| o.is_object())
            || self.code.is_some()
            || self.patient.is_some()
            || self.authorization.is_some()
            || self.category.is_some()
        {
            return Release::R5;
        }
        Release::R4
    }
}

/// The elements of an agent that the mapping reads, in one pass.
#[derive(Default, Clone, Copy)]
struct Agent<'t, 'i> {
    requestor: bool,
    who: Option<Value<'t, 'i>>,
    role: Option<Value<'t, 'i>>,
    type_: Option<Value<'t, 'i>>,
    network: Option<Value<'t, 'i>>,
    network_string: Option<&'i str>,
    purpose_of_use: Option<Value<'t, 'i>>,
    alt_id: Option<&'i str>,
    name: Option<&'i str>,
}

impl<'t, 'i> Agent<'t, 'i> {
    fn of(a: Value<'t, 'i>) -> Self {
        let mut agent = Self::default();
        let Some(obj) = a.as_object() else {
            return agent;
        };
        for (k, v) in obj.iter() {
            match k {
                "requestor" => agent.requestor = v.as_bool() == Some(true),
                "who" => agent.who = Some(v),
                "role" => agent.role = Some(v),
                "type" => agent.type_ = Some(v),
                "network" => agent.network = Some(v),
                "networkString" => agent.network_string = v.into_string(),
                "purposeOfUse" => agent.purpose_of_use = Some(v),
                "altId" => agent.alt_id = v.into_string(),
                "name" => agent.name = v.into_string(),
                _ => {}
            }
        }
        agent
    }
}

/// Cuts `/_history/…` off a reference: `Patient/123/_history/2` names version 2 of Patient/123.
fn without_history(r: &str) -> &str {
    // Most references have no `_` at all: skip building a substring searcher.
    if memchr::memchr(b'_', r.as_bytes()).is_none() {
        return r;
    }
    match memchr::memmem::find(r.as_bytes(), b"/_history/") {
        Some(i) => &r[..i],
        None => r,
    }
}

/// The id part of a reference: `Practitioner/123` → `123`, and a full URL's last segment.
///
/// memchr rather than `split`/`rsplit`: std's char-pattern searches were a
/// twentieth of FHIR decoding, and every event has two references.
fn reference_id(r: &str) -> &str {
    let r = match memchr::memchr2(b'#', b'?', r.as_bytes()) {
        Some(i) => &r[..i],
        None => r,
    };
    let r = without_history(r.trim_end_matches('/'));
    match memchr::memrchr(b'/', r.as_bytes()) {
        Some(i) => &r[i + 1..],
        None => r,
    }
}

/// The resource type of a reference: `Observation/1` → `Observation`.
fn reference_type(r: &str) -> Option<&str> {
    let r = without_history(r).trim_end_matches('/');
    let head = &r[..memchr::memrchr(b'/', r.as_bytes())?];
    let t = match memchr::memrchr(b'/', head.as_bytes()) {
        Some(i) => &head[i + 1..],
        None => head,
    };
    t.starts_with(|c: char| c.is_ascii_uppercase()).then_some(t)
}

/// `identifier.value`, else the reference's id.
fn identify<'i>(reference: Value<'_, 'i>) -> Option<&'i str> {
    reference
        .get("identifier")
        .and_then(|i| str_at(i, "value"))
        .or_else(|| str_at(reference, "reference").map(reference_id))
        .filter(|s| !s.is_empty())
}

/// Codes of a CodeableConcept (`coding[].code`) or of a bare Coding (`code`),
/// found in one pass over each object (these lookups were a tenth of FHIR decoding).
fn codes<'t, 'i>(v: Value<'t, 'i>) -> impl Iterator<Item = &'i str> + 't {
    let (mut direct, mut coding) = (None, None);
    if let Some(obj) = v.as_object() {
        for (k, x) in obj.iter() {
            match k {
                "code" => direct = x.into_string(),
                "coding" => coding = x.as_array(),
                _ => {}
            }
        }
    }
    direct.into_iter().chain(
        coding
            .into_iter()
            .flat_map(|a| a.iter())
            .filter_map(|c| str_at(c, "code")),
    )
}

/// The codes of an element (a CodeableConcept, a Coding, or an array of
/// them), read once and then asked several questions.
#[derive(Default)]
struct Codes<'t, 'i> {
    codes: [&'i str; 4],
    len: usize,
    /// More codes than fit: questions go back to the element.
    overflow: Option<Value<'t, 'i>>,
}

impl<'t, 'i> Codes<'t, 'i> {
    fn of(v: Option<Value<'t, 'i>>) -> Self {
        let mut out = Self::default();
        let mut add = |x: Value<'_, 'i>| {
            for c in codes(x) {
                if out.len < out.codes.len() {
                    out.codes[out.len] = c;
                    out.len += 1;
                } else {
                    out.overflow = v;
                }
            }
        };
        match v {
            Some(x) if x.is_array() => x
                .as_array()
                .into_iter()
                .flat_map(|a| a.iter())
                .for_each(&mut add),
            Some(x) => add(x),
            None => {}
        }
        out
    }

    fn has(&self, wanted: &str) -> bool {
        match self.overflow {
            Some(v) => has_code(Some(v), &[wanted]),
            None => self.codes[..self.len].contains(&wanted),
        }
    }
}

fn first_code<'i>(v: Option<Value<'_, 'i>>) -> Option<&'i str> {
    v.and_then(|v| codes(v).next())
}

/// Whether an element (a CodeableConcept, a Coding, or an array of them) carries one of `wanted`.
fn has_code(v: Option<Value<'_, '_>>, wanted: &[&str]) -> bool {
    let check = |x: Value<'_, '_>| codes(x).any(|c| wanted.contains(&c));
    match v {
        Some(x) if x.is_array() => x.as_array().is_some_and(|a| a.iter().any(check)),
        Some(x) => check(x),
        None => false,
    }
}

fn map_audit_event<'i>(ev: Value<'_, 'i>) -> Result<AccessRow<'i>, String> {
    let el = Elements::of(ev);
    match el.release() {
        Release::Dstu2 => {
            return Err(
                "FHIR DSTU2 AuditEvent (event/participant) is not supported: export R4 or R5"
                    .into(),
            );
        }
        Release::Stu3 => {
            return Err(
                "FHIR STU3 AuditEvent (agent.userId/reference) is not supported: export R4 or R5"
                    .into(),
            );
        }
        Release::R4 | Release::R5 => {}
    }
    let recorded = match el.recorded {
        Some(v) => v.into_string().ok_or("`recorded` is not a string")?,
        None => return Err("missing `recorded`".into()),
    };
    let ts = parse_rfc3339(recorded).ok_or_else(|| {
        format!(
            "unparseable timestamp in `recorded`: {:?} (a FHIR instant needs date, time and zone)",
            clip(recorded)
        )
    })?;

    // The requestor acts; without one, the first agent does.
    let mut agent: Option<Agent<'_, 'i>> = None;
    let mut btg_agent = false;
    for a in el.agents() {
        let parsed = Agent::of(a);
        btg_agent |= has_code(parsed.purpose_of_use, &["BTG"]);
        if agent.is_none() || (parsed.requestor && !agent.is_some_and(|x| x.requestor)) {
            agent = Some(parsed);
        }
    }

    let user_id = agent
        .and_then(|a| {
            a.who
                .and_then(|w| identify(w).or_else(|| str_at(w, "display")))
                .or(a.alt_id)
                .or(a.name)
        })
        .unwrap_or("");
    let user_role = agent.and_then(|a| {
        a.role
            .and_then(|r| r.as_array())
            .and_then(|roles| roles.iter().find_map(|r| codes(r).next()))
            .or_else(|| first_code(a.type_))
    });

    let mut workstation = None;
    let mut src_ip = None;
    if let Some(a) = agent {
        if let Some(net) = a.network {
            match (
                str_at(net, "address"),
                net.get("type").and_then(|t| t.into_string()),
            ) {
                (Some(addr), Some("1")) => workstation = Some(addr),
                (Some(addr), Some("2")) => src_ip = Some(addr),
                _ => {}
            }
        }
        if let Some(s) = a.network_string {
            if s.parse::<std::net::IpAddr>().is_ok() {
                src_ip = Some(s);
            } else {
                workstation = Some(s);
            }
        }
    }

    // Patient: R5 `patient`, else the entity that is a Patient by reference or by role 1.
    let mut patient_id = el.patient.and_then(identify);
    let mut resource = None;
    for e in el
        .entity
        .and_then(|e| e.as_array())
        .into_iter()
        .flat_map(|a| a.iter())
    {
        let what = e.get("what");
        let reference = what.and_then(|w| str_at(w, "reference"));
        let rtype = reference.and_then(reference_type);
        let is_patient = rtype == Some("Patient") || has_code(e.get("role"), &["1"]);
        if is_patient {
            if patient_id.is_none() {
                patient_id = what.and_then(identify);
            }
        } else if resource.is_none() {
            resource = rtype;
        }
    }

    let outcome = match el.outcome {
        None => "success",
        Some(o) => {
            let code = if o.is_object() {
                o.get("code").and_then(|c| str_at(c, "code"))
            } else {
                o.into_string()
            };
            match code {
                Some("0") | None => "success",
                Some("4" | "8" | "12") => "failure",
                Some(other) => return Err(format!("unknown `outcome` code {:?}", clip(other))),
            }
        }
    };

    // R5 renamed type/subtype to category/code.
    let type_ = el.type_.or(el.category);
    let subtype = el.subtype.or(el.code);
    let (type_codes, sub_codes) = (Codes::of(type_), Codes::of(subtype));
    let is_auth = type_codes.has("110114");
    let action = if is_auth && sub_codes.has("110122") {
        if outcome == "failure" {
            "login_failed"
        } else {
            "login"
        }
    } else if is_auth && sub_codes.has("110123") {
        "logout"
    } else if has_code(el.purpose_of_event, &["BTG"])
        || has_code(el.authorization, &["BTG"])
        || btg_agent
    {
        "break_glass"
    } else if sub_codes.has("print") {
        "print"
    } else if sub_codes.has("export") || type_codes.has("110106") {
        // DICOM 110106 "Export" (to media, or a disclosure) is an export whatever its subtype.
        "export"
    } else {
        match el.action.and_then(|a| a.into_string()) {
            Some("C") => "create",
            Some("R") => "view",
            Some("U") => "update",
            Some("D") => "delete",
            Some("E") => "query",
            Some(other) => {
                return Err(format!(
                    "unknown `action` code {:?} (expected C, R, U, D or E)",
                    clip(other)
                ));
            }
            None => return Err("missing `action`".into()),
        }
    };

    let app = el.source.and_then(|s| s.get("observer")).and_then(|o| {
        str_at(o, "display")
            .or_else(|| o.get("identifier").and_then(|i| str_at(i, "value")))
            .or_else(|| str_at(o, "reference"))
    });

    Ok(AccessRow {
        ts,
        user_id: Cow::Borrowed(user_id),
        user_role: user_role.map(Cow::Borrowed),
        department: None,
        patient_id: patient_id.map(Cow::Borrowed),
        action: Cow::Borrowed(action),
        resource: resource.map(lowercase),
        outcome: Cow::Borrowed(outcome),
        workstation: workstation.map(Cow::Borrowed),
        src_ip: src_ip.map(Cow::Borrowed),
        session_id: None,
        app: app.map(Cow::Borrowed),
    })
}

/// Lower-cases a resource type, borrowing when it already is.
fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(reference_id("Practitioner/123"), "123");
        assert_eq!(
            reference_id("https://x.org/fhir/Patient/p1/_history/2"),
            "p1"
        );
        assert_eq!(reference_id("abc"), "abc");
        assert_eq!(reference_id("Patient/p1#contained"), "p1");
        assert_eq!(reference_id("Patient/p2?_format=json"), "p2");
        assert_eq!(reference_id("Patient/p3/"), "p3");
        assert_eq!(
            reference_id("https://x.org/Patient/p4/_history/7?a=b#c"),
            "p4"
        );
        assert_eq!(reference_type("Observation/1"), Some("Observation"));
        assert_eq!(
            reference_type("https://erp.example/Task/160.1"),
            Some("Task")
        );
        assert_eq!(reference_type("urn:uuid:1234"), None);
        assert_eq!(reference_type("Patient/p1/_history/2"), Some("Patient"));
        assert_eq!(reference_type("Patient/p3/"), Some("Patient"));
        assert_eq!(reference_type("observation/1"), None);
        assert_eq!(reference_type("/1"), None);
    }

    #[test]
    fn codes_are_read_once_and_an_element_with_many_still_answers() {
        let mut parser = super::TapeParser::default();
        let mut doc = br#"[{"coding":[{"code":"a"},{"code":"b"}]},{"code":"c"},{"coding":[{"code":"d"},{"code":"e"},{"code":"f"}]}]"#.to_vec();
        let len = doc.len();
        doc.extend_from_slice(&[b' '; simd_json::INPUT_PADDING]);
        parser
            .parse(&mut doc, len, |v| {
                let codes = super::Codes::of(Some(v));
                for c in ["a", "b", "c", "d", "e", "f"] {
                    assert!(codes.has(c), "{c}");
                }
                assert!(!codes.has("g"));
                assert!(!super::Codes::of(None).has("a"));
            })
            .unwrap();
    }

    /// Decodes each record with the plain reader tried first or not: the
    /// batch and the rejects (line, reason).
    fn decode_all(
        records: &[Vec<u8>],
        plain: bool,
    ) -> (arrow::record_batch::RecordBatch, Vec<(u64, String)>) {
        let mut out = AccessBuilder::with_capacity(records.len());
        let mut sink = RecordSink::new("mem://t".into());
        for (n, r) in records.iter().enumerate() {
            // A decoder per record: one that gave up on the plain reader
            // after a run of records it cannot read would test nothing.
            let mut d = FhirDecoder::default();
            d.parser.try_plain = plain;
            let mut buf = r.clone();
            buf.extend_from_slice(&[b' '; simd_json::INPUT_PADDING]);
            sink.begin(0, r);
            d.decode(&mut buf, r.len(), n as u64 + 1, &mut out, &mut sink);
        }
        let rejects = sink.rejects.iter().map(|r| (r.line, r.reason.clone()));
        (out.finish("mem://t"), rejects.collect())
    }

    /// Every JSON AuditEvent and Bundle in `../shared/data/external` (every
    /// FHIR release, pretty-printed, with and without escapes), and lines as
    /// `emrwatch gen` writes them, some damaged: alike with and without the
    /// plain reader.
    #[test]
    fn the_plain_reader_decodes_fhir_as_simd_json_does() {
        let external =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/external");
        let mut records = Vec::new();
        for dir in [
            "fhir-auditevent/dstu2-1.0.2",
            "fhir-auditevent/stu3-3.0.1",
            "fhir-auditevent/r4-4.0.1",
            "ihe-balp-auditevent/example",
            "gematik-erezept-auditevent",
        ] {
            for e in std::fs::read_dir(external.join(dir)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "json") {
                    records.push(std::fs::read(p).unwrap());
                }
            }
        }
        assert!(records.len() > 50, "{} files", records.len());
        let gen_line = br#"{"resourceType":"AuditEvent","type":{"code":"rest"},"subtype":[{"code":"read"}],"action":"R","recorded":"2026-11-01T00:00:01.946Z","outcome":"0","agent":[{"role":[{"coding":[{"code":"nurse"}]}],"who":{"identifier":{"value":"u01297"}},"requestor":true,"network":{"address":"10.0.5.17","type":"2"}}],"source":{"observer":{"display":"EMR"}},"entity":[{"what":{"reference":"Patient/MRN0034026"},"role":{"code":"1"}},{"what":{"reference":"ImagingStudy/1"}}]}"#;
        for at in (0..gen_line.len()).step_by(7) {
            let mut damaged = gen_line.to_vec();
            damaged[at] = b"x\\\"}]0 \xff"[at % 8];
            records.push(damaged);
            records.push(gen_line[..at].to_vec());
        }
        records.push(gen_line.to_vec());
        let (plain, plain_rejects) = decode_all(&records, true);
        let (simd, simd_rejects) = decode_all(&records, false);
        assert_eq!(plain, simd);
        assert_eq!(plain_rejects, simd_rejects);
        assert!(plain.num_rows() > 50 && plain_rejects.len() > 20);
    }
}

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

fn release(ev: Value<'_, '_>) -> Release {
    if ev.get("event").is_some() || ev.get("participant").is_some() {
        return Release::Dstu2;
    }
    let agents_stu3 = array_at(ev, "agent").any(|a| {
        a.get("who").is_none() && (a.get("userId").is_some() || a.get("reference").is_some())
    });
    if agents_stu3 {
        return Release::Stu3;
    }
    let outcome_is_object = ev.get("outcome").is_some_and(|o| o.is_object());
    if outcome_is_object
        || ev.get("code").is_some()
        || ev.get("patient").is_some()
        || ev.get("authorization").is_some()
        || ev.get("category").is_some()
    {
        return Release::R5;
    }
    Release::R4
}

/// The id part of a reference: `Practitioner/123` → `123`, and a full URL's last segment.
fn reference_id(r: &str) -> &str {
    let r = r.split(['#', '?']).next().unwrap_or(r);
    let r = r.trim_end_matches('/');
    // `Patient/123/_history/2` names version 2 of Patient/123.
    let r = match r.find("/_history/") {
        Some(i) => &r[..i],
        None => r,
    };
    r.rsplit('/').next().unwrap_or(r)
}

/// The resource type of a reference: `Observation/1` → `Observation`.
fn reference_type(r: &str) -> Option<&str> {
    let r = match r.find("/_history/") {
        Some(i) => &r[..i],
        None => r,
    };
    let mut parts = r.trim_end_matches('/').rsplit('/');
    parts.next()?;
    parts
        .next()
        .filter(|t| t.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
}

/// `identifier.value`, else the reference's id.
fn identify<'i>(reference: Value<'_, 'i>) -> Option<&'i str> {
    reference
        .get("identifier")
        .and_then(|i| str_at(i, "value"))
        .or_else(|| str_at(reference, "reference").map(reference_id))
        .filter(|s| !s.is_empty())
}

/// Codes of a CodeableConcept (`coding[].code`) or of a bare Coding (`code`).
fn codes<'t, 'i>(v: Value<'t, 'i>) -> impl Iterator<Item = &'i str> + 't {
    let direct = str_at(v, "code");
    direct
        .into_iter()
        .chain(array_at(v, "coding").filter_map(|c| str_at(c, "code")))
}

fn first_code<'i>(v: Option<Value<'_, 'i>>) -> Option<&'i str> {
    v.and_then(|v| codes(v).next())
}

fn any_code(v: Value<'_, '_>, key: &str, wanted: &[&str]) -> bool {
    let check = |x: Value<'_, '_>| codes(x).any(|c| wanted.contains(&c));
    match v.get(key) {
        Some(x) if x.is_array() => x.as_array().is_some_and(|a| a.iter().any(check)),
        Some(x) => check(x),
        None => false,
    }
}

fn map_audit_event<'i>(ev: Value<'_, 'i>) -> Result<AccessRow<'i>, String> {
    match release(ev) {
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
    let recorded = match ev.get("recorded") {
        Some(v) => v.into_string().ok_or("`recorded` is not a string")?,
        None => return Err("missing `recorded`".into()),
    };
    let ts = parse_rfc3339(recorded).ok_or_else(|| {
        format!(
            "unparseable timestamp in `recorded`: {:?} (a FHIR instant needs date, time and zone)",
            clip(recorded)
        )
    })?;

    let agents: Vec<Value<'_, 'i>> = array_at(ev, "agent").collect();
    let agent = agents
        .iter()
        .copied()
        .find(|a| a.get("requestor").and_then(|r| r.as_bool()) == Some(true))
        .or_else(|| agents.first().copied());

    let user_id = agent
        .and_then(|a| {
            a.get("who")
                .and_then(|w| identify(w).or_else(|| str_at(w, "display")))
                .or_else(|| str_at(a, "altId"))
                .or_else(|| str_at(a, "name"))
        })
        .unwrap_or("");
    let user_role = agent.and_then(|a| {
        array_at(a, "role")
            .find_map(|r| codes(r).next())
            .or_else(|| first_code(a.get("type")))
    });

    let mut workstation = None;
    let mut src_ip = None;
    if let Some(a) = agent {
        if let Some(net) = a.get("network") {
            match (
                str_at(net, "address"),
                net.get("type").and_then(|t| t.into_string()),
            ) {
                (Some(addr), Some("1")) => workstation = Some(addr),
                (Some(addr), Some("2")) => src_ip = Some(addr),
                _ => {}
            }
        }
        if let Some(s) = str_at(a, "networkString") {
            if s.parse::<std::net::IpAddr>().is_ok() {
                src_ip = Some(s);
            } else {
                workstation = Some(s);
            }
        }
    }

    // Patient: R5 `patient`, else the entity that is a Patient by reference or by role 1.
    let mut patient_id = ev.get("patient").and_then(identify);
    let mut resource = None;
    for e in array_at(ev, "entity") {
        let what = e.get("what");
        let reference = what.and_then(|w| str_at(w, "reference"));
        let rtype = reference.and_then(reference_type);
        let is_patient =
            rtype == Some("Patient") || e.get("role").is_some_and(|r| codes(r).any(|c| c == "1"));
        if is_patient {
            if patient_id.is_none() {
                patient_id = what.and_then(identify);
            }
        } else if resource.is_none() {
            resource = rtype;
        }
    }

    let outcome = match ev.get("outcome") {
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
    let type_key = if ev.get("type").is_some() {
        "type"
    } else {
        "category"
    };
    let subtype_key = if ev.get("subtype").is_some() {
        "subtype"
    } else {
        "code"
    };
    let is_auth = any_code(ev, type_key, &["110114"]);
    let action = if is_auth && any_code(ev, subtype_key, &["110122"]) {
        if outcome == "failure" {
            "login_failed"
        } else {
            "login"
        }
    } else if is_auth && any_code(ev, subtype_key, &["110123"]) {
        "logout"
    } else if ["purposeOfEvent", "authorization"]
        .iter()
        .any(|k| any_code(ev, k, &["BTG"]))
        || agents
            .iter()
            .any(|a| any_code(*a, "purposeOfUse", &["BTG"]))
    {
        "break_glass"
    } else if any_code(ev, subtype_key, &["print"]) {
        "print"
    } else if any_code(ev, subtype_key, &["export"]) || any_code(ev, type_key, &["110106"]) {
        // DICOM 110106 "Export" (to media, or a disclosure) is an export whatever its subtype.
        "export"
    } else {
        match ev.get("action").and_then(|a| a.into_string()) {
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

    let app = ev
        .get("source")
        .and_then(|s| s.get("observer"))
        .and_then(|o| {
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
        resource: resource.map(|r| Cow::Owned(r.to_ascii_lowercase())),
        outcome: Cow::Borrowed(outcome),
        workstation: workstation.map(Cow::Borrowed),
        src_ip: src_ip.map(Cow::Borrowed),
        session_id: None,
        app: app.map(Cow::Borrowed),
    })
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
        assert_eq!(reference_type("Observation/1"), Some("Observation"));
        assert_eq!(
            reference_type("https://erp.example/Task/160.1"),
            Some("Task")
        );
        assert_eq!(reference_type("urn:uuid:1234"), None);
        assert_eq!(reference_type("Patient/p1/_history/2"), Some("Patient"));
    }
}

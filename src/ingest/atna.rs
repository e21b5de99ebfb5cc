//! `atna`: IHE ATNA audit messages (DICOM PS3.15 A.5 / RFC 3881 XML), as
//! PACS and radiology systems send them: one document per file, one message
//! per line, or wrapped in RFC 5424 syslog (octet-counted or not). Every
//! `<AuditMessage>…</AuditMessage>` in a record is one access event, so the
//! wrapping never matters.
//!
//! | column | from |
//! |---|---|
//! | ts | `EventIdentification@EventDateTime` (UTC when it has no offset) |
//! | user_id, user_role | the first `ActiveParticipant` with `UserIsRequestor="true"` and a `UserID` (else the first with a `UserID`); its `RoleIDCode` code |
//! | workstation / src_ip | that participant's `NetworkAccessPointID` with `NetworkAccessPointTypeCode` 1 / 2 |
//! | patient_id | `ParticipantObjectID` of the object with type code 1 and role 1 (patient): the ID of an HL7 CX (`ID^^^&OID&ISO`), FHIR token (`system\|ID`) or reference (`Patient/ID`) |
//! | action | `EventActionCode` C/R/U/D/E → create/view/update/delete/query; `EventID` 110106 → export; 110114 with `EventTypeCode` 110122/110123 → login/logout (a failed login: login_failed); `EventTypeCode` 110127 → break_glass |
//! | outcome | `EventOutcomeIndicator` 0 → success, else failure |
//! | resource | the first other object's `ParticipantObjectIDTypeCode` text (else code), lower-cased |
//! | app | `AuditSourceIdentification@AuditSourceID` |
//!
//! Codes are read from `csd-code` (DICOM) or `code` (RFC 3881).

use std::borrow::Cow;

use memchr::memmem;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::builder::{AccessBuilder, AccessRow};
use super::json::clip;
use super::timestamp::parse_rfc3339;
use super::{RecordOutcome, RecordSink};

const OPEN: &[u8] = b"<AuditMessage";
const CLOSE: &[u8] = b"</AuditMessage>";

/// Whether `head` (a file's first bytes or line) holds an ATNA audit message.
pub fn looks_like_atna(head: &[u8]) -> bool {
    memmem::find(head, OPEN).is_some()
}

/// Decodes the audit messages of one record.
pub fn decode(
    record: &[u8],
    line: u64,
    out: &mut AccessBuilder,
    sink: &mut RecordSink,
) -> RecordOutcome {
    let mut stored = 0;
    let mut at = 0;
    while let Some(p) = memmem::find(&record[at..], OPEN) {
        let start = at + p;
        let Some(q) = memmem::find(&record[start..], CLOSE) else {
            sink.reject(
                line,
                "an <AuditMessage> without its </AuditMessage> (truncated?)".into(),
            );
            return RecordOutcome {
                stored,
                rejected: 1,
                skipped: 0,
            };
        };
        let end = start + q + CLOSE.len();
        match message(&record[start..end]) {
            Ok(m) => match m.row() {
                Ok(row) => {
                    out.append(&row, line);
                    stored += 1;
                }
                Err(reason) => {
                    sink.reject(line, reason);
                    return RecordOutcome {
                        stored,
                        rejected: 1,
                        skipped: 0,
                    };
                }
            },
            Err(reason) => {
                sink.reject(line, reason);
                return RecordOutcome {
                    stored,
                    rejected: 1,
                    skipped: 0,
                };
            }
        }
        at = end;
    }
    if stored == 0 {
        sink.reject(line, "no <AuditMessage> in this record".into());
        return RecordOutcome::rejected();
    }
    RecordOutcome::stored(stored)
}

/// A participant of the message.
#[derive(Debug, Default)]
struct Participant {
    user: Option<String>,
    requestor: bool,
    role: Option<String>,
    access_point: Option<String>,
    access_point_type: Option<String>,
}

/// A participant object (patient, study, query…).
#[derive(Debug, Default)]
struct Object {
    id: Option<String>,
    type_code: Option<String>,
    role: Option<String>,
    id_type: Option<String>,
}

/// What one message says, as read.
#[derive(Debug, Default)]
struct Message {
    action_code: Option<String>,
    time: Option<String>,
    outcome: Option<String>,
    event_id: Option<String>,
    event_types: Vec<String>,
    participants: Vec<Participant>,
    objects: Vec<Object>,
    source: Option<String>,
}

/// The values of the attributes `names` (by local name), in one pass over
/// the element's attributes; empty values are `None`.
fn attrs<const N: usize>(e: &BytesStart, names: [&[u8]; N]) -> Result<[Option<String>; N], String> {
    let mut out = [const { None }; N];
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|err| format!("bad XML attribute: {err}"))?;
        let key = a.key.local_name();
        if let Some(i) = names.iter().position(|n| *n == key.as_ref()) {
            let v = a
                .unescape_value()
                .map_err(|err| format!("bad XML attribute value: {err}"))?;
            let v = v.trim();
            if !v.is_empty() {
                out[i] = Some(v.to_string());
            }
        }
    }
    Ok(out)
}

/// A coded value: DICOM's `csd-code`, RFC 3881's `code`.
fn code(e: &BytesStart) -> Result<Option<String>, String> {
    let [dicom, rfc3881] = attrs(e, [b"csd-code", b"code"])?;
    Ok(dicom.or(rfc3881))
}

/// Reads one `<AuditMessage>…</AuditMessage>`.
fn message(xml: &[u8]) -> Result<Message, String> {
    // The slice reader borrows from `xml`: no copy of each event.
    let mut reader = Reader::from_reader(xml);
    let mut m = Message::default();
    // Which parent the coded children belong to.
    #[derive(PartialEq)]
    enum In {
        Other,
        Event,
        Participant,
        Object,
    }
    let mut within = In::Other;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("XML error at byte {}: {e}", reader.error_position()))?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                match e.local_name().as_ref() {
                    b"EventIdentification"
                    | b"ActiveParticipant"
                    | b"ParticipantObjectIdentification" => {
                        within = In::Other;
                    }
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match e.local_name().as_ref() {
            b"EventIdentification" => {
                [m.action_code, m.time, m.outcome] = attrs(
                    e,
                    [
                        b"EventActionCode",
                        b"EventDateTime",
                        b"EventOutcomeIndicator",
                    ],
                )?;
                if !empty {
                    within = In::Event;
                }
            }
            b"EventID" if within == In::Event => m.event_id = code(e)?,
            b"EventTypeCode" if within == In::Event => m.event_types.extend(code(e)?),
            b"ActiveParticipant" => {
                let [user, requestor, access_point, access_point_type] = attrs(
                    e,
                    [
                        b"UserID",
                        b"UserIsRequestor",
                        b"NetworkAccessPointID",
                        b"NetworkAccessPointTypeCode",
                    ],
                )?;
                m.participants.push(Participant {
                    user,
                    requestor: requestor.is_some_and(|v| v == "true"),
                    access_point,
                    access_point_type,
                    role: None,
                });
                if !empty {
                    within = In::Participant;
                }
            }
            b"RoleIDCode" if within == In::Participant => {
                if let Some(p) = m.participants.last_mut()
                    && p.role.is_none()
                {
                    p.role = code(e)?;
                }
            }
            b"AuditSourceIdentification" => {
                let [id] = attrs(e, [b"AuditSourceID"])?;
                m.source = m.source.take().or(id);
            }
            b"ParticipantObjectIdentification" => {
                let [id, type_code, role] = attrs(
                    e,
                    [
                        b"ParticipantObjectID",
                        b"ParticipantObjectTypeCode",
                        b"ParticipantObjectTypeCodeRole",
                    ],
                )?;
                m.objects.push(Object {
                    id,
                    type_code,
                    role,
                    id_type: None,
                });
                if !empty {
                    within = In::Object;
                }
            }
            b"ParticipantObjectIDTypeCode" if within == In::Object => {
                if let Some(o) = m.objects.last_mut() {
                    let [text, display, dicom, rfc3881] =
                        attrs(e, [b"originalText", b"displayName", b"csd-code", b"code"])?;
                    o.id_type = text.or(display).or(dicom).or(rfc3881);
                }
            }
            _ => {}
        }
    }
    Ok(m)
}

/// The identifier in a ParticipantObjectID: an HL7 CX (`ID^^^&OID&ISO`), a
/// FHIR token (`system|ID`) or reference (`Patient/ID`), or plain.
fn patient_id(id: &str) -> &str {
    let id = id.split('^').next().unwrap_or(id);
    let id = id.rsplit('|').next().unwrap_or(id);
    id.strip_prefix("Patient/").unwrap_or(id)
}

/// `2001-12-17T09:30:47` (no offset: UTC) or RFC 3339.
fn timestamp(s: &str) -> Option<i64> {
    parse_rfc3339(s).or_else(|| {
        let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        Some(naive.and_utc().timestamp_micros())
    })
}

impl Message {
    fn row(&self) -> Result<AccessRow<'_>, String> {
        let time = self
            .time
            .as_deref()
            .ok_or("no EventIdentification@EventDateTime")?;
        let ts =
            timestamp(time).ok_or_else(|| format!("unparseable EventDateTime {:?}", clip(time)))?;
        let who = self
            .participants
            .iter()
            .find(|p| p.requestor && p.user.is_some())
            .or_else(|| self.participants.iter().find(|p| p.user.is_some()))
            .ok_or("no ActiveParticipant with a UserID")?;
        let failed = self.outcome.as_deref().is_some_and(|o| o != "0");
        let has_type = |c: &str| self.event_types.iter().any(|t| t == c);
        let action = match (self.event_id.as_deref(), self.action_code.as_deref()) {
            (Some("110114"), _) if has_type("110122") && failed => "login_failed",
            (Some("110114"), _) if has_type("110122") => "login",
            (Some("110114"), _) if has_type("110123") => "logout",
            _ if has_type("110127") => "break_glass",
            (Some("110106"), _) => "export",
            (_, Some("C")) => "create",
            (_, Some("R")) => "view",
            (_, Some("U")) => "update",
            (_, Some("D")) => "delete",
            (_, Some("E")) => "query",
            (_, other) => {
                return Err(format!(
                    "EventActionCode {:?} is none of C, R, U, D, E",
                    other.unwrap_or("")
                ));
            }
        };
        let is_patient =
            |o: &&Object| o.type_code.as_deref() == Some("1") && o.role.as_deref() == Some("1");
        let patient = self
            .objects
            .iter()
            .find(is_patient)
            .and_then(|o| o.id.as_deref())
            .map(patient_id)
            .filter(|id| !id.is_empty());
        let resource = self
            .objects
            .iter()
            .find(|o| !is_patient(o))
            .and_then(|o| o.id_type.as_deref())
            .map(|t| Cow::Owned(t.to_lowercase()));
        let point = |kind: &str| {
            who.access_point
                .as_deref()
                .filter(|_| who.access_point_type.as_deref() == Some(kind))
                .map(Cow::Borrowed)
        };
        Ok(AccessRow {
            ts,
            user_id: Cow::Borrowed(who.user.as_deref().unwrap_or_default()),
            user_role: who.role.as_deref().map(Cow::Borrowed),
            department: None,
            patient_id: patient.map(Cow::Borrowed),
            action: Cow::Borrowed(action),
            resource,
            outcome: Cow::Borrowed(if failed { "failure" } else { "success" }),
            workstation: point("1"),
            src_ip: point("2"),
            session_id: None,
            app: self.source.as_deref().map(Cow::Borrowed),
        })
    }
}

//! `ndjson`: any JSON-lines access log, mapped to `access_events` by a
//! [`Mapping`] (dotted paths, value maps, a timestamp format).

use std::borrow::Cow;
use std::sync::Arc;

use simd_json::prelude::*;
use simd_json::tape::Value;

use super::builder::{AccessBuilder, AccessRow};
use super::json::{TapeParser, clip, path};
use super::mapping::{FieldSpec, Mapping, col};
use super::{RecordOutcome, RecordSink};
use crate::schema;

/// Decodes mapped JSON-lines records.
#[derive(Debug)]
pub struct NdjsonDecoder {
    parser: TapeParser,
    mapping: Arc<Mapping>,
}

impl NdjsonDecoder {
    /// A decoder applying `mapping`.
    pub fn new(mapping: Arc<Mapping>) -> Self {
        Self {
            parser: TapeParser::default(),
            mapping,
        }
    }

    /// Decodes the record in `buf[..len]` (padded) into `out`.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        len: usize,
        line: u64,
        out: &mut AccessBuilder,
        sink: &mut RecordSink,
    ) -> RecordOutcome {
        let mapping = &self.mapping;
        let result = self
            .parser
            .parse(buf, len, |root| {
                if !root.is_object() {
                    return Err("not a JSON object".to_string());
                }
                map_record(root, mapping).map(|row| out.append(&row, line))
            })
            .and_then(|r| r);
        match result {
            Ok(()) => RecordOutcome::stored(1),
            Err(reason) => {
                sink.reject(line, reason);
                RecordOutcome::rejected()
            }
        }
    }
}

/// A scalar as text: strings as they are, numbers and booleans printed.
fn text<'i>(v: Value<'_, 'i>) -> Option<Cow<'i, str>> {
    if let Some(s) = v.into_string() {
        return Some(Cow::Borrowed(s));
    }
    if v.is_null() || v.is_array() || v.is_object() {
        return None;
    }
    if let Some(i) = v.as_i64() {
        return Some(Cow::Owned(i.to_string()));
    }
    if let Some(u) = v.as_u64() {
        return Some(Cow::Owned(u.to_string()));
    }
    if let Some(f) = v.as_f64() {
        return Some(Cow::Owned(f.to_string()));
    }
    v.as_bool()
        .map(|b| Cow::Borrowed(if b { "true" } else { "false" }))
}

fn field<'i>(root: Value<'_, 'i>, spec: &'i FieldSpec) -> Option<Cow<'i, str>> {
    let raw = if spec.path.is_empty() {
        None
    } else {
        path(root, &spec.path).and_then(text)
    };
    match raw {
        Some(v) if v.is_empty() => spec.default.as_deref().map(Cow::Borrowed),
        Some(v) => Some(match spec.values.get(v.as_ref()) {
            Some(mapped) => Cow::Borrowed(mapped.as_str()),
            None => v,
        }),
        None => spec.default.as_deref().map(Cow::Borrowed),
    }
}

fn map_record<'i>(root: Value<'_, 'i>, mapping: &'i Mapping) -> Result<AccessRow<'i>, String> {
    let f = &mapping.fields;
    let ts_spec = &f[col::TS];
    let ts_value = if ts_spec.path.is_empty() {
        None
    } else {
        path(root, &ts_spec.path)
    };
    let ts_name = ts_spec.path.join(".");
    let ts = match ts_value {
        None => return Err(format!("missing timestamp field `{ts_name}`")),
        Some(v) => {
            let parsed = if let Some(s) = v.into_string() {
                mapping.timestamp.parse_str(s)
            } else if let Some(i) = v.as_i64() {
                mapping.timestamp.from_i64(i)
            } else if let Some(x) = v.as_f64() {
                mapping.timestamp.from_f64(x)
            } else {
                None
            };
            parsed.ok_or_else(|| match v.into_string() {
                Some(s) => format!("unparseable timestamp in `{ts_name}`: {:?}", clip(s)),
                None => format!("unparseable timestamp in `{ts_name}`: not a string or number"),
            })?
        }
    };
    let get = |c: usize| field(root, &f[c]);
    let user_id = get(col::USER_ID)
        .ok_or_else(|| format!("missing user field `{}`", f[col::USER_ID].path.join(".")))?;
    let action = get(col::ACTION)
        .ok_or_else(|| format!("missing action field `{}`", f[col::ACTION].path.join(".")))?;
    if !schema::ACTIONS.contains(&action.as_ref()) {
        return Err(format!(
            "action {:?} is not one of {}: add it under [values.action] in the mapping",
            clip(&action),
            schema::ACTIONS.join(", ")
        ));
    }
    let outcome = get(col::OUTCOME).unwrap_or(Cow::Borrowed("success"));
    if outcome != "success" && outcome != "failure" {
        return Err(format!(
            "outcome {:?} is neither success nor failure: add it under [values.outcome] in the mapping",
            clip(&outcome)
        ));
    }
    Ok(AccessRow {
        ts,
        user_id,
        user_role: get(col::USER_ROLE),
        department: get(col::DEPARTMENT),
        patient_id: get(col::PATIENT_ID),
        action,
        resource: get(col::RESOURCE),
        outcome,
        workstation: get(col::WORKSTATION),
        src_ip: get(col::SRC_IP),
        session_id: get(col::SESSION_ID),
        app: get(col::APP),
    })
}

//! Columns of a small vocabulary (`action`, `outcome`) held as dictionaries
//! in the events a detect run keeps in memory.
//!
//! As views they take 16 bytes a row each, 300 MB of a 10-million-event
//! run's 840 MB, every byte of it faulted in and zeroed by the kernel; as
//! dictionaries 4 bytes, and a comparison with a constant (`outcome =
//! 'success'`, `action IN (...)`) compares the dozen values once and gathers
//! a bit per row instead of comparing every row's value. Arrow's own cast
//! hashes every value; a vocabulary's values fit in their views, so a row's
//! key is found by its view in a small table of the views seen.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, DictionaryArray, Int32Array, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type};
use arrow::error::ArrowError;

/// The columns encoded: compared with constants by the rules, never grouped
/// or joined on (DataFusion groups dictionaries row by row, a slower path).
pub const COLUMNS: &[&str] = &[crate::schema::ACTION, crate::schema::OUTCOME];

/// The type an encoded column has: the canonical schema's dictionary, whose
/// values are `Utf8` so that comparing with a text constant keeps it one.
pub fn data_type() -> DataType {
    crate::schema::dict_utf8()
}

/// Slots of the table of recently seen views: a power of two, several
/// times a vocabulary's size.
const SLOTS: usize = 64;

/// No inline view: its low 32 bits, the length, exceed 12.
const EMPTY: u128 = u128::MAX;

/// `a` (text of any string type) as a dictionary of its distinct values, in
/// the order they first appear; nulls stay null.
pub fn encode(a: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let viewed;
    let v = match a.as_string_view_opt() {
        Some(v) => v,
        None => {
            viewed = cast(a, &DataType::Utf8View)?;
            viewed.as_string_view()
        }
    };
    let mut values = StringBuilder::new();
    // Inline views by a hash of the view, each with its key: a row is one
    // multiply and one compare (1.6 % of a detect run's CPU with a linear
    // search of the values seen). A miss, a collision or a long value goes
    // to the map of every value seen.
    let mut recent = [(EMPTY, 0i32); SLOTS];
    let mut map: HashMap<&str, i32> = HashMap::new();
    let mut keys = Vec::with_capacity(v.len());
    let has_nulls = v.null_count() > 0;
    for (i, &view) in v.views().iter().enumerate() {
        if has_nulls && v.is_null(i) {
            keys.push(0);
            continue;
        }
        let slot = slot(view);
        if recent[slot].0 == view {
            keys.push(recent[slot].1);
            continue;
        }
        let s = v.value(i);
        let next = map.len() as i32;
        let k = *map.entry(s).or_insert_with(|| {
            values.append_value(s);
            next
        });
        if view as u32 <= 12 {
            recent[slot] = (view, k);
        }
        keys.push(k);
    }
    if map.is_empty() {
        // Only nulls: a null's key must still name a value.
        values.append_value("");
    }
    let keys = Int32Array::new(keys.into(), v.nulls().cloned());
    let dict = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values.finish()))?;
    Ok(Arc::new(dict))
}

/// The slot of `view` in the table of recent views.
fn slot(view: u128) -> usize {
    let folded = (view as u64) ^ ((view >> 64) as u64);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, StringViewArray};
    use proptest::prelude::*;

    fn decoded(a: &ArrayRef) -> Vec<Option<String>> {
        let plain = cast(a, &DataType::Utf8).unwrap();
        plain
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect()
    }

    fn value() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            1 => Just(None),
            // Few short values, as actions are; sometimes many, and long.
            6 => (0..8u8).prop_map(|n| Some(format!("v{n}"))),
            2 => (0..200u16).prop_map(|n| Some(format!("value{n}"))),
            1 => (0..4u8).prop_map(|n| Some(format!("a value longer than a view {n}"))),
        ]
    }

    proptest! {
        #[test]
        fn a_column_decodes_to_itself(rows in prop::collection::vec(value(), 0..600), view in any::<bool>()) {
            let a: ArrayRef = if view {
                Arc::new(StringViewArray::from_iter(rows.iter().map(|s| s.as_deref())))
            } else {
                Arc::new(StringArray::from_iter(rows.iter().map(|s| s.as_deref())))
            };
            let d = encode(&a).unwrap();
            prop_assert_eq!(d.data_type(), &data_type());
            prop_assert_eq!(decoded(&d), rows.clone());
            // Each distinct value once in the dictionary.
            let dict = d.as_dictionary::<Int32Type>();
            let mut seen: Vec<Option<String>> = decoded(dict.values());
            let n = seen.len();
            seen.sort();
            seen.dedup();
            prop_assert_eq!(seen.len(), n);
        }
    }

    #[test]
    fn only_nulls_encode_to_nulls() {
        let a: ArrayRef = Arc::new(StringViewArray::from(vec![None::<&str>, None]));
        let d = encode(&a).unwrap();
        assert_eq!(d.null_count(), 2);
        assert_eq!(decoded(&d), vec![None, None]);
    }
}

//! `distinct_count(x)`: how many distinct non-null values each group has,
//! exactly.
//!
//! DataFusion's `count(DISTINCT x)` on text keeps a hash set per group (6.8 GB
//! for the (user, day) groups of 10 million events); the rules used to count
//! in two groupings instead, per (user, day, patient) and then per (user,
//! day), which hashes every event into millions of groups. Here a group keeps
//! a vector of 16-byte keys, one per value seen, sorted and deduplicated
//! whenever it fills (so it holds at most about twice its distinct values)
//! and once more at the end. Most groups in detection are one user's day:
//! tens of values, sorted in cache.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryViewArray, BooleanArray, Int64Array, ListArray, make_view,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::{can_cast_types, cast, filter};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

/// `distinct_count(x)`: the number of distinct non-null values of `x` (any
/// type; values are compared as their bytes, others as their text).
pub fn distinct_count() -> AggregateUDF {
    AggregateUDF::from(DistinctCountUdf {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DistinctCountUdf {
    signature: Signature,
}

/// The partial state: each group's distinct values, as bytes.
fn state_field(name: &str) -> FieldRef {
    Arc::new(Field::new_list(
        format!("{name}[values]"),
        Field::new_list_field(DataType::BinaryView, true),
        true,
    ))
}

impl AggregateUDFImpl for DistinctCountUdf {
    fn name(&self) -> &str {
        "distinct_count"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![state_field(args.name)])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneGroup(DistinctCount::default())))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(DistinctCount::default()))
    }
}

/// Values as the bytes of a Utf8View or BinaryView array, whose 16-byte views
/// are the keys of values of 12 bytes or fewer.
fn byte_views(a: &ArrayRef) -> Result<BinaryViewArray> {
    let viewed = match a.data_type() {
        DataType::BinaryView => a.clone(),
        t if can_cast_types(t, &DataType::BinaryView) => cast(a, &DataType::BinaryView)?,
        _ => cast(&cast(a, &DataType::Utf8View)?, &DataType::BinaryView)?,
    };
    Ok(viewed.as_binary_view().clone())
}

/// The key of a value of at most 12 bytes is its view: its length in the low
/// 32 bits, then its bytes, zero-padded (as DataFusion's groupings compare
/// them). A longer value's key is its length and its number among the long
/// values seen; lengths over 12 keep the two kinds apart.
const INLINE: u32 = 12;

#[derive(Debug, Default)]
struct DistinctCount {
    /// Each group's keys: sorted and deduplicated up to some point, then as seen.
    groups: Vec<Vec<u128>>,
    /// Values longer than 12 bytes and their numbers, and by number.
    long: HashMap<Arc<[u8]>, u64>,
    long_values: Vec<Arc<[u8]>>,
    /// Bytes the groups' vectors and the long values hold, counted as they
    /// grow: DataFusion asks after every batch.
    held: usize,
}

impl DistinctCount {
    fn key(&mut self, values: &BinaryViewArray, row: usize) -> u128 {
        let view = values.views()[row];
        let len = view as u32;
        if len <= INLINE {
            return view;
        }
        let bytes = values.value(row);
        let n = match self.long.get(bytes) {
            Some(n) => *n,
            None => {
                let n = self.long_values.len() as u64;
                let owned: Arc<[u8]> = bytes.into();
                // The bytes, the map's entry and the list's.
                self.held += owned.len() + 48;
                self.long_values.push(owned.clone());
                self.long.insert(owned, n);
                n
            }
        };
        u128::from(len) | (u128::from(n) << 32)
    }

    fn push(&mut self, group: usize, key: u128) {
        let g = &mut self.groups[group];
        // A value straight after itself takes no slot (a cheap test; how
        // often it helps depends on the log).
        if g.last() == Some(&key) {
            return;
        }
        if g.len() == g.capacity() && g.len() >= 32 {
            g.sort_unstable();
            g.dedup();
        }
        let before = g.capacity();
        if before == 0 {
            // A user's day reads about twenty charts: growing from Vec's
            // first 4 slots took three reallocations per group, each a
            // copy to fresh memory (aggregation 860-1000 -> 750-800 ms on
            // 10 million events).
            g.reserve_exact(16);
        }
        g.push(key);
        self.held += (g.capacity() - before) * size_of::<u128>();
    }

    fn add(
        &mut self,
        values: &BinaryViewArray,
        rows: impl Iterator<Item = (usize, usize)>,
        filter: Option<&BooleanArray>,
    ) {
        for (row, group) in rows {
            if values.is_null(row) || filter.is_some_and(|f| f.is_null(row) || !f.value(row)) {
                continue;
            }
            let key = self.key(values, row);
            self.push(group, key);
        }
    }

    /// The first groups `emit_to` names, each sorted and deduplicated.
    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<u128>> {
        let mut taken = emit_to.take_needed(&mut self.groups);
        for g in &mut taken {
            self.held -= g.capacity() * size_of::<u128>();
            g.sort_unstable();
            g.dedup();
        }
        taken
    }

    /// The partial state of `groups` (each sorted and deduplicated): their
    /// values, as bytes.
    fn list(&self, groups: &[Vec<u128>]) -> Result<ArrayRef> {
        // A short value's key is its view: the views are the keys, copied,
        // and only long values are written out again.
        let mut long = Vec::new();
        let views: Vec<u128> = groups
            .iter()
            .flatten()
            .map(|&key| {
                if key as u32 <= INLINE {
                    key
                } else {
                    let bytes = &self.long_values[(key >> 32) as u64 as usize];
                    let view = make_view(bytes, 0, long.len() as u32);
                    long.extend_from_slice(bytes);
                    view
                }
            })
            .collect();
        let buffers = if long.is_empty() {
            Vec::new()
        } else {
            vec![Buffer::from_vec(long)]
        };
        let values = BinaryViewArray::try_new(ScalarBuffer::from(views), buffers, None)?;
        let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
        let field = Arc::new(Field::new_list_field(DataType::BinaryView, true));
        let list = ListArray::try_new(field, offsets, Arc::new(values), None)?;
        Ok(Arc::new(list))
    }

    /// Adds keys of `group` from a partial state (another accumulator's
    /// [`DistinctCount::list`], or a row's own from `convert_to_state`).
    fn merge_keys(&mut self, group: usize, keys: &[u128]) {
        let g = &mut self.groups[group];
        if !g.is_empty() {
            // One key at a time, deduplicated as the vector fills: sorting
            // the group at every merge would be quadratic when each row
            // arrives as a state of its own.
            for &key in keys {
                self.push(group, key);
            }
            return;
        }
        let before = g.capacity();
        g.extend_from_slice(keys);
        self.held += (g.capacity() - before) * size_of::<u128>();
    }
}

impl GroupsAccumulator for DistinctCount {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let values = byte_views(&values[0])?;
        self.add(
            &values,
            group_indices.iter().copied().enumerate(),
            opt_filter,
        );
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let counts: Int64Array = self.take(emit_to).iter().map(|g| g.len() as i64).collect();
        Ok(Arc::new(counts))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        Ok(vec![self.list(&taken)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let lists = values[0].as_list::<i32>();
        let flat = lists.values().as_binary_view().clone();
        let offsets = lists.value_offsets();
        let views = flat.views();
        for (i, &g) in group_indices.iter().enumerate() {
            if lists.is_null(i) {
                continue;
            }
            let (from, to) = (offsets[i] as usize, offsets[i + 1] as usize);
            // Short values' views are their keys: copied as they are.
            if flat.null_count() == 0 && views[from..to].iter().all(|v| *v as u32 <= INLINE) {
                self.merge_keys(g, &views[from..to]);
            } else {
                self.add(&flat, (from..to).map(|row| (row, g)), None);
            }
        }
        Ok(())
    }

    /// Each row's value as a partial state of its own (an empty list for a
    /// null or filtered-out row), for when DataFusion skips the partial
    /// aggregation of rows that share few groups.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = byte_views(&values[0])?;
        let keep: BooleanArray = (0..values.len())
            .map(|i| {
                Some(values.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i)))
            })
            .collect();
        let kept = filter(&values, &keep)?;
        let offsets = OffsetBuffer::from_lengths(keep.values().iter().map(usize::from));
        let field = Arc::new(Field::new_list_field(DataType::BinaryView, true));
        Ok(vec![Arc::new(ListArray::try_new(
            field, offsets, kept, None,
        )?)])
    }

    fn size(&self) -> usize {
        self.held + self.groups.capacity() * size_of::<Vec<u128>>()
    }
}

/// `distinct_count` without GROUP BY (and as a window function): one group.
#[derive(Debug)]
struct OneGroup(DistinctCount);

impl Accumulator for OneGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let zeros = vec![0; values[0].len()];
        self.0.update_batch(values, &zeros, None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // Keep the values: a window frame asks again as it grows.
        self.0.groups.resize_with(1, Vec::new);
        let g = &mut self.0.groups[0];
        g.sort_unstable();
        g.dedup();
        Ok(ScalarValue::Int64(Some(g.len() as i64)))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.evaluate()?;
        let list = self.0.list(&self.0.groups[..1])?;
        Ok(vec![ScalarValue::try_from_array(&list, 0)?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let zeros = vec![0; states[0].len()];
        GroupsAccumulator::merge_batch(&mut self.0, states, &zeros, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use proptest::prelude::*;

    /// Rows (group, value) in `parts` partitions, counted by SQL in a session
    /// of `partitions` (more than one: partial states are merged).
    async fn counts(
        rows: &[(i64, Option<String>)],
        parts: usize,
        partitions: usize,
        sql: &str,
    ) -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        let chunk = rows.len().div_ceil(parts).max(1);
        let mut batches: Vec<Vec<RecordBatch>> = rows
            .chunks(chunk)
            .map(|c| {
                let g = Int64Array::from_iter_values(c.iter().map(|r| r.0));
                let v: StringArray = c.iter().map(|r| r.1.clone()).collect();
                vec![RecordBatch::try_new(schema.clone(), vec![Arc::new(g), Arc::new(v)]).unwrap()]
            })
            .collect();
        if batches.is_empty() {
            batches.push(Vec::new());
        }
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_target_partitions(partitions),
        );
        ctx.register_udaf(distinct_count());
        let t = MemTable::try_new(schema, batches).unwrap();
        ctx.register_table("t", Arc::new(t)).unwrap();
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    fn by_group(batches: &[RecordBatch]) -> BTreeMap<i64, i64> {
        let mut out = BTreeMap::new();
        for b in batches {
            let g = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
            let n = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                out.insert(g.value(i), n.value(i));
            }
        }
        out
    }

    fn expected(rows: &[(i64, Option<String>)]) -> BTreeMap<i64, i64> {
        let mut sets: BTreeMap<i64, HashSet<&str>> = BTreeMap::new();
        for (g, v) in rows {
            let set = sets.entry(*g).or_default();
            if let Some(v) = v {
                set.insert(v);
            }
        }
        sets.into_iter().map(|(g, s)| (g, s.len() as i64)).collect()
    }

    /// Values short (a view alone) and long (beyond 12 bytes), some sharing
    /// a prefix of 12 bytes, some empty, some null.
    fn value() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(String::new())),
            4 => (0u32..40).prop_map(|n| Some(format!("p{n}"))),
            4 => (0u32..40).prop_map(|n| Some(format!("MRN-LONG-PREFIX-{n}"))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn counts_equal_a_hash_set_per_group(
            rows in proptest::collection::vec((0i64..6, value()), 0..400),
            parts in 1usize..4,
            partitions in 1usize..4,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(counts(
                &rows,
                parts,
                partitions,
                "SELECT g, distinct_count(v) FROM t GROUP BY g",
            ));
            prop_assert_eq!(by_group(&got), expected(&rows));
        }
    }

    #[tokio::test]
    async fn filters_count_only_chosen_rows_and_no_group_is_one_group() {
        let rows: Vec<(i64, Option<String>)> = [(1, "a"), (1, "b"), (1, "a"), (2, "c"), (2, "x")]
            .into_iter()
            .map(|(g, v)| (g, Some(v.to_string())))
            .collect();
        let got = counts(
            &rows,
            2,
            2,
            "SELECT g, distinct_count(v) FILTER (WHERE v <> 'x') FROM t GROUP BY g",
        )
        .await;
        assert_eq!(by_group(&got), BTreeMap::from([(1, 2), (2, 1)]));
        let got = counts(&rows, 2, 2, "SELECT 0 AS g, distinct_count(v) FROM t").await;
        assert_eq!(by_group(&got), BTreeMap::from([(0, 4)]));
        // Numbers are compared as their text; an empty table counts none.
        let got = counts(&rows, 1, 1, "SELECT 0 AS g, distinct_count(g) FROM t").await;
        assert_eq!(by_group(&got), BTreeMap::from([(0, 2)]));
        let got = counts(&[], 1, 1, "SELECT 0 AS g, distinct_count(v) FROM t").await;
        assert_eq!(by_group(&got), BTreeMap::from([(0, 0)]));
    }

    #[test]
    fn a_group_seeing_few_values_many_times_stays_small() {
        let mut acc = DistinctCount::default();
        let values: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..100_000).map(|i| format!("v{}", i % 7 * 13 % 10)),
        ));
        let groups = vec![0; values.len()];
        acc.update_batch(&[values], &groups, None, 1).unwrap();
        // Seven distinct values: deduplicated whenever the vector fills, it
        // never grows past its first size of at least 32.
        assert!(
            acc.groups[0].capacity() <= 64,
            "{}",
            acc.groups[0].capacity()
        );
        assert!(acc.size() < 4096, "{}", acc.size());
        let n = acc.evaluate(EmitTo::All).unwrap();
        assert_eq!(n.as_primitive::<arrow::datatypes::Int64Type>().value(0), 7);
        assert_eq!(acc.size(), 0);
    }

    #[test]
    fn rows_converted_to_states_merge_to_the_same_counts() {
        let acc = DistinctCount::default();
        let values: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            None,
            Some("a"),
            Some("a long value, beyond a view"),
            Some("b"),
        ]));
        let keep = BooleanArray::from(vec![true, true, true, true, false]);
        let state = acc.convert_to_state(&[values], Some(&keep)).unwrap();
        let mut merged = DistinctCount::default();
        merged.merge_batch(&state, &[0, 0, 1, 1, 1], 2).unwrap();
        let n = merged.evaluate(EmitTo::All).unwrap();
        let n = n.as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!((n.value(0), n.value(1)), (1, 2));
    }

    #[test]
    fn a_group_merged_from_one_row_states_counts_and_stays_small() {
        // DataFusion may skip the partial aggregation and send each row as a
        // state of its own: 200,000 rows of one group, 50 distinct values.
        let acc = DistinctCount::default();
        let values: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..200_000).map(|i| format!("v{}", i % 50)),
        ));
        let states = acc.convert_to_state(&[values], None).unwrap();
        let mut merged = DistinctCount::default();
        merged.merge_batch(&states, &[0; 200_000], 1).unwrap();
        assert!(merged.size() < 4096, "{}", merged.size());
        let n = merged.evaluate(EmitTo::All).unwrap();
        assert_eq!(n.as_primitive::<arrow::datatypes::Int64Type>().value(0), 50);
    }
}

//! `care_relationship(user_id, patient_id, ts, margin)`: whether the
//! reference `encounters` table explains an access, for rules and analysts.
//!
//! An access is explained when an encounter of the patient, with the user or
//! with the user's department (`staff.department`), is open at `ts` give or
//! take `margin`: from `start_ts - margin` to `coalesce(end_ts, start_ts) +
//! margin`, both ends included. A null user, patient or time is explained by
//! nothing (false, as a join on a null key matches nothing), and so is an
//! access by a user missing from `staff` unless the encounter names them.
//!
//! It is the anti-join `unexplained_access` was written as, done as a lookup:
//! DataFusion hashed and compared every chart open twice (by patient and
//! department, then by patient and user) and copied the unmatched ones out
//! between the joins; here each open costs a lookup of its patient's few
//! encounters. The index is built on the first call (so sessions that never
//! call the function never pay for it), or ahead of it by [`Care::prepare`]
//! (`emrwatch detect` does so while it reads the events).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray, RecordBatch, StringViewArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, IntervalUnit, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One encounter, as the lookup needs it.
#[derive(Debug, Clone, Copy)]
struct Encounter {
    /// Index of the encounter's user (`NONE`: none).
    user: u32,
    /// Index of the encounter's department (`NONE`: none).
    department: u32,
    start_us: i64,
    end_us: i64,
}

const NONE: u32 = u32::MAX;

/// The first 32 bits of a long id's sort key in [`Index::build`] (a short
/// key's are its length, at most 12).
const LONG_KEY: u128 = 0xFFFF_FFF0;

/// The view of an id of 12 bytes or fewer, which holds the whole id (its
/// length and its bytes; the rest zero): a key compared and hashed as one
/// integer, with no string to follow.
fn short_key(view: u128) -> Option<u128> {
    let len = view as u32;
    match len {
        0..12 => Some(view & ((1u128 << (32 + 8 * len)) - 1)),
        12 => Some(view),
        _ => None,
    }
}

fn short_key_of(s: &str) -> Option<u128> {
    (s.len() <= 12).then(|| {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&(s.len() as u32).to_le_bytes());
        b[4..4 + s.len()].copy_from_slice(s.as_bytes());
        u128::from_le_bytes(b)
    })
}

/// Values by id while the index is built: ids of up to 12 bytes (every id
/// `emrwatch gen` and the EMRs we read write) by their view, longer ones by
/// their text. Keyed by text, each lookup also followed a pointer to
/// compare the id (2.5 s for the view on 10 million events).
#[derive(Debug)]
struct Ids<V> {
    short: Map<u128, V>,
    long: Map<Box<str>, V>,
}

impl<V> Default for Ids<V> {
    fn default() -> Self {
        Self {
            short: Map::default(),
            long: Map::default(),
        }
    }
}

impl<V: Copy> Ids<V> {
    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    fn get_or_insert(&mut self, id: &str, v: V) -> V {
        match short_key_of(id) {
            Some(k) => *self.short.entry(k).or_insert(v),
            None => match self.long.get(id) {
                Some(&old) => old,
                None => {
                    self.long.insert(id.into(), v);
                    v
                }
            },
        }
    }
}

/// A slot of a [`Table`]: a short id's key and its value.
#[derive(Debug, Clone, Copy)]
struct Slot<V> {
    /// [`EMPTY`] in an empty slot.
    key: [u64; 2],
    value: V,
}

/// No short key starts so: its first 32 bits are a length of at most 12.
const EMPTY: [u64; 2] = [u64::MAX, u64::MAX];

/// Values by id, built once and read by whole batches: short ids in an
/// open-addressing table whose slots the lookups prefetch rows ahead of
/// need, long ids in a map. The lookups miss the cache: the patients'
/// table and the encounters outgrow it at hospital scale (384,600 patients,
/// 500,000 encounters: 36 MB), and waiting on memory for each chart open
/// was most of the function's time.
#[derive(Debug)]
struct Table<V> {
    slots: Vec<Slot<V>>,
    mask: usize,
    hasher: foldhash::fast::RandomState,
    long: Map<Box<str>, V>,
}

/// Rows ahead of the current one whose memory a batch's lookups prefetch:
/// enough misses in flight to cover a trip to memory.
const AHEAD: usize = 16;

/// Asks the CPU to bring `p`'s cache line in; a hint, never a fault.
#[inline(always)]
fn prefetch<T>(p: &T) {
    // SAFETY: x86-64 always has SSE, and a prefetch reads nothing: it
    // cannot fault, whatever the address.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (p as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl<V: Copy + Default> Table<V> {
    fn new(ids: Ids<V>) -> Self {
        Self::of(ids.short.into_iter(), ids.long)
    }

    /// Short ids' keys (each once) and long ids, with their values.
    fn of(short: impl ExactSizeIterator<Item = (u128, V)>, long: Map<Box<str>, V>) -> Self {
        // At most half full: linear probing then mostly finds a key, or
        // its absence, in the slot it prefetched.
        let capacity = (short.len() * 2).next_power_of_two().max(16);
        let mut table = Table {
            slots: vec![
                Slot {
                    key: EMPTY,
                    value: V::default(),
                };
                capacity
            ],
            mask: capacity - 1,
            hasher: foldhash::fast::RandomState::default(),
            long,
        };
        for (key, value) in short {
            let mut at = table.home(key);
            while table.slots[at].key != EMPTY {
                at = (at + 1) & table.mask;
            }
            table.slots[at] = Slot {
                key: [key as u64, (key >> 64) as u64],
                value,
            };
        }
        table
    }

    fn home(&self, key: u128) -> usize {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key) as usize & self.mask
    }

    /// The value of each valid row of `ids` (`None` for nulls and unknown
    /// ids), looking up each row's home slot after prefetching the one
    /// `AHEAD` rows on.
    fn get_all(&self, ids: &StringViewArray, valid: impl Fn(usize) -> bool) -> Vec<Option<V>> {
        let views = ids.views();
        // usize::MAX: a null; mask + 1: a long id.
        let homes: Vec<usize> = (0..ids.len())
            .map(|i| {
                if !valid(i) {
                    usize::MAX
                } else {
                    short_key(views[i]).map_or(self.mask + 1, |k| self.home(k))
                }
            })
            .collect();
        (0..ids.len())
            .map(|i| {
                if let Some(slot) = homes.get(i + AHEAD).and_then(|&h| self.slots.get(h)) {
                    prefetch(slot);
                }
                match homes[i] {
                    usize::MAX => None,
                    h if h > self.mask => self.long.get(ids.value(i)).copied(),
                    mut at => {
                        let key = short_key(views[i]).map(|k| [k as u64, (k >> 64) as u64])?;
                        loop {
                            let s = &self.slots[at];
                            if s.key == key {
                                return Some(s.value);
                            }
                            if s.key == EMPTY {
                                return None;
                            }
                            at = (at + 1) & self.mask;
                        }
                    }
                }
            })
            .collect()
    }
}

/// The encounters of each patient, and each user's index and department.
#[derive(Debug)]
struct Index {
    /// user id -> (user index, department index or NONE).
    users: Table<(u32, u32)>,
    /// patient id -> that patient's encounters in `encounters` (from, count).
    patients: Table<(u32, u32)>,
    /// Grouped by patient.
    encounters: Vec<Encounter>,
}

fn text_column(batch: &RecordBatch, name: &str) -> Result<StringViewArray> {
    let Some(c) = batch.column_by_name(name) else {
        return exec_err!("care_relationship: the reference table has no `{name}` column");
    };
    Ok(cast(c, &DataType::Utf8View)?.as_string_view().clone())
}

fn time_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let Some(c) = batch.column_by_name(name) else {
        return exec_err!("care_relationship: the reference table has no `{name}` column");
    };
    let c = cast(c, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    Ok(c.as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect())
}

impl Index {
    fn build(staff: &RecordBatch, encounters: &RecordBatch) -> Result<Self> {
        let mut users_ix: Ids<(u32, u32)> = Ids::default();
        let mut departments: Ids<u32> = Ids::default();
        let mut department = |d: Option<&str>| match d {
            Some(d) => {
                let n = departments.len() as u32;
                departments.get_or_insert(d, n)
            }
            None => NONE,
        };
        let user_ids = text_column(staff, "user_id")?;
        let user_departments = text_column(staff, "department")?;
        for (u, d) in user_ids.iter().zip(user_departments.iter()) {
            let Some(u) = u else { continue };
            let n = users_ix.len() as u32;
            let d = department(d);
            // A user listed twice keeps the first row.
            users_ix.get_or_insert(u, (n, d));
        }
        let patients = text_column(encounters, "patient_id")?;
        let users = text_column(encounters, "user_id")?;
        let enc_departments = text_column(encounters, "department")?;
        let starts = time_column(encounters, "start_ts")?;
        let ends = time_column(encounters, "end_ts")?;
        // Each encounter by its patient's key, sorted to group them: a short
        // id's view, or a long id's number (its first 32 bits, a length for
        // short keys, say which). Sorting took half the time of grouping
        // 500,000 encounters with a hash map of their patients.
        let mut long_ids: Map<Box<str>, u32> = Map::default();
        let mut rows: Vec<(u128, Encounter)> = Vec::with_capacity(encounters.num_rows());
        for i in 0..encounters.num_rows() {
            let Some(start_us) = starts[i].filter(|_| patients.is_valid(i)) else {
                continue;
            };
            let key = short_key(patients.views()[i]).unwrap_or_else(|| {
                let n = long_ids.len() as u32;
                let n = *long_ids.entry(patients.value(i).into()).or_insert(n);
                LONG_KEY | (u128::from(n) << 32)
            });
            let user = if users.is_valid(i) {
                let n = users_ix.len() as u32;
                users_ix.get_or_insert(users.value(i), (n, NONE)).0
            } else {
                NONE
            };
            let dept = department(
                enc_departments
                    .is_valid(i)
                    .then(|| enc_departments.value(i)),
            );
            rows.push((
                key,
                Encounter {
                    user,
                    department: dept,
                    start_us,
                    end_us: ends[i].unwrap_or(start_us),
                },
            ));
        }
        rows.sort_unstable_by_key(|(k, _)| *k);
        // Each patient's run of encounters (from, count), in key order.
        let mut runs: Vec<(u128, (u32, u32))> = Vec::new();
        for (i, (key, _)) in rows.iter().enumerate() {
            match runs.last_mut() {
                Some((k, (_, n))) if k == key => *n += 1,
                _ => runs.push((*key, (i as u32, 1))),
            }
        }
        let mut long_runs = vec![(0, 0); long_ids.len()];
        runs.retain(|(key, run)| {
            let long = *key as u32 == LONG_KEY as u32;
            if long {
                long_runs[(key >> 32) as usize] = *run;
            }
            !long
        });
        let long = long_ids
            .into_iter()
            .map(|(id, n)| (id, long_runs[n as usize]))
            .collect();
        Ok(Index {
            users: Table::new(users_ix),
            patients: Table::of(runs.into_iter(), long),
            encounters: rows.into_iter().map(|(_, e)| e).collect(),
        })
    }

    /// Whether an encounter of each row's patient with its user or their
    /// department holds its time within `margin_us` (false for a row with
    /// a null). The patients and users are looked up a batch at a time,
    /// then each row's encounters are tested, prefetched rows ahead.
    fn explain(
        &self,
        users: &StringViewArray,
        patients: &StringViewArray,
        times: &PrimitiveArray<TimestampMicrosecondType>,
        margin_us: i64,
    ) -> BooleanArray {
        let valid = |i| users.is_valid(i) && patients.is_valid(i) && times.is_valid(i);
        let runs = self.patients.get_all(patients, valid);
        let staff = self.users.get_all(users, |i| valid(i) && runs[i].is_some());
        (0..runs.len())
            .map(|i| {
                if let Some(&Some((from, _))) = runs.get(i + AHEAD) {
                    prefetch(&self.encounters[from as usize]);
                }
                let Some((from, n)) = runs[i] else {
                    return Some(false);
                };
                let ts_us = times.value(i);
                let (u, d) = staff[i].unwrap_or((NONE, NONE));
                Some(
                    self.encounters[from as usize..(from + n) as usize]
                        .iter()
                        .any(|e| {
                            ((u != NONE && e.user == u) || (d != NONE && e.department == d))
                                && ts_us >= e.start_us.saturating_sub(margin_us)
                                && ts_us <= e.end_us.saturating_add(margin_us)
                        }),
                )
            })
            .collect()
    }
}

/// The reference tables `care_relationship` reads, and the index it builds
/// from them once: on its first call, or ahead of it with
/// [`Care::prepare`]. Clones share the index.
#[derive(Debug, Clone)]
pub struct Care(Arc<CareTables>);

#[derive(Debug)]
struct CareTables {
    staff: RecordBatch,
    encounters: RecordBatch,
    index: OnceLock<std::result::Result<Index, String>>,
}

impl Care {
    /// Over these `staff` and `encounters` tables (in the reference schema).
    pub fn new(staff: RecordBatch, encounters: RecordBatch) -> Self {
        Self(Arc::new(CareTables {
            staff,
            encounters,
            index: OnceLock::new(),
        }))
    }

    fn index(&self) -> Result<&Index> {
        let t = &self.0;
        match t
            .index
            .get_or_init(|| Index::build(&t.staff, &t.encounters).map_err(|e| e.to_string()))
        {
            Ok(ix) => Ok(ix),
            Err(e) => exec_err!("{e}"),
        }
    }

    /// Builds the index now, if no call has yet. Detect does so on the
    /// thread that read the reference tables, while the events are read:
    /// built on the first call, it held up that query's partition, and the
    /// others waited for it (about 0.2 s on 500,000 encounters).
    pub fn prepare(&self) -> Result<()> {
        self.index().map(|_| ())
    }

    /// `care_relationship` over these tables.
    pub fn udf(&self) -> ScalarUDF {
        ScalarUDF::new_from_impl(CareRelationship {
            signature: Signature::user_defined(Volatility::Immutable),
            care: Some(self.clone()),
        })
    }
}

/// The UDF; it holds the reference tables (none in a session without
/// `--ref`).
#[derive(Debug)]
struct CareRelationship {
    signature: Signature,
    care: Option<Care>,
}

impl PartialEq for CareRelationship {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for CareRelationship {}

impl std::hash::Hash for CareRelationship {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self as *const Self as usize).hash(state);
    }
}

/// `margin` as microseconds: a constant day-and-time interval.
fn margin_us(arg: &ColumnarValue) -> Result<i64> {
    let v = match arg {
        // coerce_types casts every interval to this one.
        ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(v))) => *v,
        _ => {
            return exec_err!(
                "care_relationship: the margin must be a constant interval (INTERVAL '1' DAY)"
            );
        }
    };
    if v.months != 0 {
        return exec_err!(
            "care_relationship: the margin must be in days, hours or minutes, not months"
        );
    }
    Ok(i64::from(v.days) * 86_400_000_000 + v.nanoseconds / 1_000)
}

fn to_array(v: &ColumnarValue, rows: usize, to: &DataType) -> Result<ArrayRef> {
    Ok(cast(&v.to_array(rows)?, to)?)
}

impl ScalarUDFImpl for CareRelationship {
    fn name(&self) -> &str {
        "care_relationship"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            ) || matches!(t, DataType::Dictionary(_, v) if v.is_string())
        };
        match args {
            [u, p, ts, m]
                if text(u)
                    && text(p)
                    && matches!(ts, DataType::Timestamp(_, _) | DataType::Null)
                    && matches!(m, DataType::Interval(_)) =>
            {
                Ok(vec![
                    DataType::Utf8View,
                    DataType::Utf8View,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    DataType::Interval(IntervalUnit::MonthDayNano),
                ])
            }
            _ => plan_err!(
                "care_relationship(user_id, patient_id, ts, margin) takes two texts, a \
                 timestamp and an interval (care_relationship(user_id, patient_id, ts, \
                 INTERVAL '1' DAY)); got {args:?}"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let margin = margin_us(&args.args[3])?;
        let Some(care) = &self.care else {
            return exec_err!(
                "care_relationship reads the reference tables: pass --ref DIR \
                 (a folder with staff.csv, patients.csv and encounters.csv)"
            );
        };
        let index = care.index()?;
        let users = to_array(&args.args[0], rows, &DataType::Utf8View)?;
        let patients = to_array(&args.args[1], rows, &DataType::Utf8View)?;
        let times = to_array(
            &args.args[2],
            rows,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )?;
        let (users, patients) = (users.as_string_view(), patients.as_string_view());
        let times = times.as_primitive::<TimestampMicrosecondType>();
        Ok(ColumnarValue::Array(Arc::new(
            index.explain(users, patients, times, margin),
        )))
    }
}

/// `care_relationship` in a session without reference tables: calling it
/// says to pass `--ref` (rather than DataFusion's "Invalid function").
/// [`crate::reference::Reference::register`] replaces it.
pub fn care_relationship_without_reference() -> ScalarUDF {
    ScalarUDF::new_from_impl(CareRelationship {
        signature: Signature::user_defined(Volatility::Immutable),
        care: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fmt::Write as _;

    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::reference::Reference;

    const HOUR: i64 = 3_600_000_000;
    /// 2026-11-01T00:00:00Z.
    const T0: i64 = 1_793_491_200_000_000;
    // Ids on both sides of 12 bytes, the longest a view holds.
    const USERS: &[&str] = &["u1", "u2", "abcdefghijkl", "a-very-long-user-id-13"];
    const PATIENTS: &[&str] = &[
        "p1",
        "p2",
        "MRN000000001",
        "patient-with-a-long-id",
        "another-long-patient-id",
    ];
    const DEPARTMENTS: &[&str] = &["icu", "ed", "medicine"];

    /// Patient, user, department, start hour, length in hours (None: open).
    type TestEncounter = (usize, Option<usize>, Option<usize>, i64, Option<i64>);

    fn time(us: i64) -> String {
        chrono::DateTime::from_timestamp_micros(us)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    /// A session with these staff departments (None: empty), encounters
    /// (patient, user, department, start hour, length in hours or open) and
    /// accesses (user, patient, hour) as `access`, with a row number `k`.
    async fn session(
        staff: &[Option<usize>],
        encounters: &[TestEncounter],
        accesses: &[(Option<usize>, Option<usize>, Option<i64>)],
    ) -> (SessionContext, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = String::from(
            "user_id,first_name,last_name,role,department,address,zip,hire_date,termination_date\n",
        );
        for (u, d) in staff.iter().enumerate() {
            let d = d.map_or("", |d| DEPARTMENTS[d]);
            writeln!(s, "{},A,B,nurse,{d},,,,", USERS[u]).unwrap();
        }
        std::fs::write(dir.path().join("staff.csv"), s).unwrap();
        std::fs::write(
            dir.path().join("patients.csv"),
            "patient_id,first_name,last_name,birth_date,address,zip,deceased_date,vip,employee_user_id\n",
        )
        .unwrap();
        let mut e = String::from("encounter_id,patient_id,user_id,department,start_ts,end_ts\n");
        for (i, (p, u, d, start, len)) in encounters.iter().enumerate() {
            let start_us = T0 + start * HOUR;
            writeln!(
                e,
                "e{i},{},{},{},{},{}",
                PATIENTS[*p],
                u.map_or("", |u| USERS[u]),
                d.map_or("", |d| DEPARTMENTS[d]),
                time(start_us),
                len.map_or(String::new(), |l| time(start_us + l * HOUR)),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("encounters.csv"), e).unwrap();
        let ctx = SessionContext::new();
        Reference::load(dir.path()).unwrap().register(&ctx).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("user_id", DataType::Utf8, true),
            Field::new("patient_id", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..accesses.len() as i64)),
                Arc::new(StringArray::from_iter(
                    accesses.iter().map(|a| a.0.map(|u| USERS[u])),
                )),
                Arc::new(StringArray::from_iter(
                    accesses.iter().map(|a| a.1.map(|p| PATIENTS[p])),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter(
                        accesses.iter().map(|a| a.2.map(|h| T0 + h * HOUR)),
                    )
                    .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("access", Arc::new(table)).unwrap();
        (ctx, dir)
    }

    async fn rows(ctx: &SessionContext, sql: &str) -> BTreeSet<i64> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    async fn table(ctx: &SessionContext, name: &str) -> RecordBatch {
        let df = ctx.sql(&format!("SELECT * FROM {name}")).await.unwrap();
        let batches = df.collect().await.unwrap();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    /// The error of a query that plans but fails to run.
    async fn run_error(ctx: &SessionContext, sql: &str) -> String {
        let df = ctx.sql(sql).await.unwrap();
        df.collect().await.unwrap_err().to_string()
    }

    /// The relationship as a join says it, the way `unexplained_access` was
    /// written before the function.
    fn by_join(margin: &str) -> String {
        format!(
            "SELECT DISTINCT a.k FROM access a \
             LEFT JOIN staff s ON s.user_id = a.user_id \
             JOIN encounters c ON c.patient_id = a.patient_id \
             WHERE (c.user_id = a.user_id OR c.department = s.department) \
               AND a.ts >= c.start_ts - {margin} \
               AND a.ts <= coalesce(c.end_ts, c.start_ts) + {margin}"
        )
    }

    fn by_function(margin: &str) -> String {
        format!("SELECT k FROM access WHERE care_relationship(user_id, patient_id, ts, {margin})")
    }

    #[tokio::test]
    async fn explains_by_user_or_department_within_the_margin() {
        // u1 (icu) and u2 (ed); p1's encounter with icu 10:00-12:00 on day 2.
        let (ctx, _dir) = session(
            &[Some(0), Some(1)],
            &[(0, None, Some(0), 34, Some(2))],
            &[
                (Some(0), Some(0), Some(35)),      // 0: icu, during
                (Some(1), Some(0), Some(35)),      // 1: ed: not theirs
                (Some(0), Some(0), Some(34 - 24)), // 2: a day before: the margin
                (Some(0), Some(0), Some(34 - 25)), // 3: 25 hours before
                (Some(0), Some(0), Some(36 + 24)), // 4: a day after the end
                (Some(0), Some(1), Some(35)),      // 5: another patient
                (None, Some(0), Some(35)),         // 6: no user
                (Some(0), None, Some(35)),         // 7: no patient
                (Some(0), Some(0), None),          // 8: no time
                (Some(2), Some(0), Some(35)),      // 9: not in staff
            ],
        )
        .await;
        assert_eq!(
            rows(&ctx, &by_function("INTERVAL '1' DAY")).await,
            BTreeSet::from([0, 2, 4])
        );
        assert_eq!(
            rows(&ctx, &by_function("INTERVAL '1' HOUR")).await,
            BTreeSet::from([0])
        );
        let err = run_error(&ctx, &by_function("INTERVAL '1' MONTH")).await;
        assert!(err.contains("not months"), "{err}");
        let err = ctx
            .sql("SELECT care_relationship(user_id, patient_id, 3, INTERVAL '1' DAY) FROM access")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("takes two texts"), "{err}");
    }

    #[tokio::test]
    async fn an_index_prepared_ahead_is_the_one_the_function_uses() {
        let (ctx, dir) = session(
            &[Some(0)],
            &[(0, Some(0), None, 10, Some(2))],
            &[(Some(0), Some(0), Some(11)), (Some(0), Some(1), Some(11))],
        )
        .await;
        let (staff, encounters) = (table(&ctx, "staff").await, table(&ctx, "encounters").await);
        let care = Care::new(staff.clone(), encounters.clone());
        assert!(care.0.index.get().is_none());
        care.prepare().unwrap();
        let built: *const _ = care.0.index.get().unwrap();
        // A session's function shares the prepared index and builds no other.
        ctx.register_udf(care.udf());
        assert_eq!(
            rows(&ctx, &by_function("INTERVAL '1' DAY")).await,
            BTreeSet::from([0])
        );
        assert!(std::ptr::eq(built, care.0.index.get().unwrap()));
        // A malformed table fails to prepare, saying what is missing.
        let no_department = staff.project(&[0]).unwrap();
        let err = Care::new(no_department, encounters).prepare().unwrap_err();
        assert!(err.to_string().contains("no `department` column"), "{err}");
        drop(dir);
    }

    #[tokio::test]
    async fn without_reference_tables_it_asks_for_them() {
        let ctx = SessionContext::new();
        crate::functions::register(&ctx);
        let err = run_error(
            &ctx,
            "SELECT care_relationship('u1', 'p1', TIMESTAMP '2026-11-01T00:00:00Z', \
             INTERVAL '1' DAY)",
        )
        .await;
        assert!(err.contains("pass --ref DIR"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The prefetching table finds each id's value, and nothing for ids
        /// it does not hold or rows the caller skips: short and long ids,
        /// sets large enough for long probe chains and wrapping around.
        #[test]
        fn the_table_finds_what_a_map_finds(
            held in proptest::collection::btree_set("[a-z0-9]{0,16}", 0..3000),
            asked in proptest::collection::vec("[a-z0-9]{0,16}", 1..200),
        ) {
            let mut ids = Ids::default();
            let want: std::collections::BTreeMap<&str, (u32, u32)> = held
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), (i as u32, i as u32 + 1)))
                .collect();
            for (id, v) in &want {
                ids.get_or_insert(id, *v);
            }
            let table = Table::new(ids);
            let rows: Vec<Option<&str>> = asked
                .iter()
                .map(String::as_str)
                .chain(held.iter().map(String::as_str))
                .enumerate()
                .map(|(i, id)| (i % 7 != 3).then_some(id))
                .collect();
            let array = StringViewArray::from(rows.clone());
            let got = table.get_all(&array, |i| i % 5 != 1 && array.is_valid(i));
            for (i, id) in rows.iter().enumerate() {
                let expected = id.filter(|_| i % 5 != 1).and_then(|id| want.get(id).copied());
                proptest::prop_assert_eq!(got[i], expected, "row {} ({:?})", i, id);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever the tables, the function explains exactly the accesses
        /// the join does: ids short and long, nulls, open encounters.
        #[test]
        fn explains_what_the_join_explains(
            staff in proptest::collection::vec(
                proptest::option::weighted(0.8, 0..DEPARTMENTS.len()), USERS.len()),
            encounters in proptest::collection::vec((
                0..PATIENTS.len(),
                proptest::option::weighted(0.6, 0..USERS.len()),
                proptest::option::weighted(0.7, 0..DEPARTMENTS.len()),
                0i64..120,
                proptest::option::weighted(0.8, 0i64..72),
            ), 0..12),
            accesses in proptest::collection::vec((
                proptest::option::weighted(0.95, 0..USERS.len()),
                proptest::option::weighted(0.95, 0..PATIENTS.len()),
                proptest::option::weighted(0.95, -30i64..200),
            ), 1..60),
            hours in proptest::sample::select(vec![0, 1, 24, 48]),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (want, got) = rt.block_on(async {
                let (ctx, _dir) = session(&staff, &encounters, &accesses).await;
                let margin = format!("INTERVAL '{hours}' HOUR");
                (rows(&ctx, &by_join(&margin)).await, rows(&ctx, &by_function(&margin)).await)
            });
            proptest::prop_assert_eq!(want, got);
        }
    }
}

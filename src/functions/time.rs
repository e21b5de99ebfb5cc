//! `date_trunc` and `date_part` with a fast path for UTC timestamps, which is
//! what the store holds.
//!
//! DataFusion 55 takes its arithmetic path only for timestamps without a time
//! zone; a `UTC` column goes through chrono per value and formats an error
//! message for each one even when nothing fails (apache/datafusion#25325).
//! That was a quarter of the after_hours rule's time on a 10-million-event
//! store; `date_part` converts every value through chrono-tz. Truncating a
//! UTC instant to a second, minute, hour or day, or taking its hour or
//! minute, is integer arithmetic; everything else (other zones, other parts,
//! scalars) goes to DataFusion's own implementation.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int32Array, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, FieldRef, TimeUnit, TimestampMicrosecondType};
use datafusion::error::Result;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::scalar::ScalarValue;

/// Which function a [`Utc`] wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `date_trunc(granularity, ts)`
    Trunc,
    /// `date_part(part, ts)`
    Part,
}

/// One of DataFusion's `date_trunc` or `date_part`, with integer arithmetic
/// on UTC microsecond timestamps where the result cannot depend on a
/// calendar.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Utc {
    kind: Kind,
    inner: Arc<ScalarUDF>,
}

/// `ts` truncated to `granularity`, for the granularities whose length
/// never varies in UTC. Each unit is a constant, and `floor` inlined: a
/// division by a constant is a multiplication, by a variable a hardware
/// divide (the group key of user_days and after_hours' hours: 10 million
/// values each).
fn floor_to(
    granularity: &str,
    ts: &TimestampMicrosecondArray,
) -> Option<TimestampMicrosecondArray> {
    Some(match granularity.to_ascii_lowercase().as_str() {
        "second" => ts.unary(floor::<1_000_000>),
        "minute" => ts.unary(floor::<60_000_000>),
        "hour" => ts.unary(floor::<3_600_000_000>),
        "day" => ts.unary(floor::<86_400_000_000>),
        _ => return None,
    })
}

/// Whether `tz` names UTC (arrow accepts these spellings).
fn is_utc(tz: &str) -> bool {
    matches!(
        tz,
        "UTC" | "utc" | "Z" | "+00:00" | "+0000" | "+00" | "Etc/UTC"
    )
}

/// The unit name and the UTC microsecond timestamps of a call, when it has
/// that shape.
fn utc_call(args: &[ColumnarValue]) -> Option<(&str, &dyn Array)> {
    let [ColumnarValue::Scalar(unit), ColumnarValue::Array(ts)] = args else {
        return None;
    };
    let unit = match unit {
        ScalarValue::Utf8(Some(u))
        | ScalarValue::LargeUtf8(Some(u))
        | ScalarValue::Utf8View(Some(u)) => u,
        _ => return None,
    };
    match ts.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if is_utc(tz) => {
            Some((unit, ts.as_ref()))
        }
        _ => None,
    }
}

/// `date_trunc`'s fast path, when it applies: `None` sends the call to DataFusion.
fn truncate_utc(args: &[ColumnarValue]) -> Option<ColumnarValue> {
    let (granularity, ts) = utc_call(args)?;
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let out = floor_to(granularity, ts)?.with_timezone_opt(ts.timezone());
    Some(ColumnarValue::Array(Arc::new(out)))
}

/// `v` truncated to a multiple of `UNIT`, towards the past.
fn floor<const UNIT: i64>(v: i64) -> i64 {
    v - v.rem_euclid(UNIT)
}

/// Which `UNIT` of its `MODULO` `v` falls in (the hour of the day, say).
fn part_of<const UNIT: i64, const MODULO: i64>(v: i64) -> i32 {
    v.div_euclid(UNIT).rem_euclid(MODULO) as i32
}

/// `date_part`'s fast path for `hour` and `minute` (DataFusion returns them
/// as Int32): `None` sends the call to DataFusion.
fn part_utc(args: &[ColumnarValue]) -> Option<ColumnarValue> {
    let (part, ts) = utc_call(args)?;
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let out: Int32Array = match part.to_ascii_lowercase().as_str() {
        "hour" => ts.unary(part_of::<3_600_000_000, 24>),
        "minute" => ts.unary(part_of::<60_000_000, 60>),
        _ => return None,
    };
    Some(ColumnarValue::Array(Arc::new(out)))
}

impl ScalarUDFImpl for Utc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let fast = match self.kind {
            Kind::Trunc => truncate_utc(&args.args),
            Kind::Part => part_utc(&args.args),
        };
        match fast {
            Some(out) => Ok(out),
            None => self.inner.invoke_with_args(args),
        }
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(input)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// The `date_trunc` to register in place of DataFusion's.
pub fn date_trunc() -> ScalarUDF {
    ScalarUDF::new_from_impl(Utc {
        kind: Kind::Trunc,
        inner: datafusion::functions::datetime::date_trunc(),
    })
}

/// The `date_part` (and `extract`) to register in place of DataFusion's.
pub fn date_part() -> ScalarUDF {
    ScalarUDF::new_from_impl(Utc {
        kind: Kind::Part,
        inner: datafusion::functions::datetime::date_part(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;

    /// Truncates `values` (µs since the epoch, some null) in `tz` with the
    /// given function registered as date_trunc.
    async fn run(udf: ScalarUDF, tz: &str, unit: &str, values: &[Option<i64>]) -> ArrayRef {
        let name = udf.name().to_string();
        let ctx = SessionContext::new();
        ctx.register_udf(udf);
        let ts = TimestampMicrosecondArray::from(values.to_vec()).with_timezone(tz);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            ts.data_type().clone(),
            true,
        )]));
        let batch = arrow::array::RecordBatch::try_new(schema, vec![Arc::new(ts)]).unwrap();
        ctx.register_batch("t", batch).unwrap();
        let out = ctx
            .sql(&format!("SELECT {name}('{unit}', ts) AS d FROM t"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        out[0].column(0).clone()
    }

    #[tokio::test]
    async fn equals_datafusion_on_utc_and_falls_back_elsewhere() {
        use datafusion::functions::datetime as df;
        // Before and after the epoch, on and off the boundaries, a null.
        let mut values: Vec<Option<i64>> = vec![None, Some(0), Some(-1), Some(-86_400_000_000)];
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 1843 to 2096: DataFusion works in nanoseconds, which end in 2262.
            values.push(Some(
                x.rem_euclid(8_000_000_000_000_000) - 4_000_000_000_000_000,
            ));
        }
        for tz in ["UTC", "+00:00", "Europe/Paris"] {
            for g in ["second", "minute", "hour", "day", "DAY", "month"] {
                let ours = run(date_trunc(), tz, g, &values).await;
                let theirs = run(df::date_trunc().as_ref().clone(), tz, g, &values).await;
                assert_eq!(&ours, &theirs, "date_trunc {tz} {g}");
            }
            for p in ["hour", "HOUR", "minute", "second", "dow", "day"] {
                let ours = run(date_part(), tz, p, &values).await;
                let theirs = run(df::date_part().as_ref().clone(), tz, p, &values).await;
                assert_eq!(&ours, &theirs, "date_part {tz} {p}");
            }
        }
    }

    #[test]
    fn fast_path_only_for_utc_and_fixed_units() {
        let ts = || {
            ColumnarValue::Array(Arc::new(
                TimestampMicrosecondArray::from(vec![90_061_000_001]).with_timezone("UTC"),
            ))
        };
        let g = |s: &str| ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.into())));
        let Some(ColumnarValue::Array(d)) = truncate_utc(&[g("day"), ts()]) else {
            panic!("day in UTC takes the fast path");
        };
        assert_eq!(
            d.as_primitive::<TimestampMicrosecondType>().value(0),
            86_400_000_000
        );
        assert!(truncate_utc(&[g("week"), ts()]).is_none());
        let paris = ColumnarValue::Array(Arc::new(
            TimestampMicrosecondArray::from(vec![0]).with_timezone("Europe/Paris"),
        ));
        assert!(truncate_utc(&[g("day"), paris]).is_none());
        let naive = ColumnarValue::Array(Arc::new(Int64Array::from(vec![0])));
        assert!(truncate_utc(&[g("day"), naive]).is_none());
        let Some(ColumnarValue::Array(h)) = part_utc(&[g("hour"), ts()]) else {
            panic!("the hour in UTC takes the fast path");
        };
        assert_eq!(h.as_primitive::<arrow::datatypes::Int32Type>().value(0), 1);
        assert!(part_utc(&[g("dow"), ts()]).is_none());
    }
}

//! `date_trunc` with a fast path for UTC timestamps, which is what the store
//! holds.
//!
//! DataFusion 55 takes its arithmetic path only for timestamps without a time
//! zone; a `UTC` column goes through chrono per value and formats an error
//! message for each one even when nothing fails (apache/datafusion#25325).
//! That was a quarter of the after_hours rule's time on a 10-million-event
//! store. Truncating a UTC instant to a second, minute, hour or day is integer
//! arithmetic; everything else (other zones, weeks, months, scalars) goes to
//! DataFusion's own implementation.

use std::sync::Arc;

use arrow::array::{Array, AsArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, FieldRef, TimeUnit, TimestampMicrosecondType};
use datafusion::error::Result;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::scalar::ScalarValue;

/// DataFusion's `date_trunc`, with integer truncation of UTC microsecond
/// timestamps to `second`, `minute`, `hour` or `day`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateTrunc {
    inner: Arc<ScalarUDF>,
}

impl DateTrunc {
    /// Wraps DataFusion's implementation.
    pub fn new() -> Self {
        Self {
            inner: datafusion::functions::datetime::date_trunc(),
        }
    }
}

impl Default for DateTrunc {
    fn default() -> Self {
        Self::new()
    }
}

/// Microseconds in one unit of `granularity`, for the granularities whose
/// length never varies in UTC.
fn unit_us(granularity: &str) -> Option<i64> {
    match granularity.to_ascii_lowercase().as_str() {
        "second" => Some(1_000_000),
        "minute" => Some(60_000_000),
        "hour" => Some(3_600_000_000),
        "day" => Some(86_400_000_000),
        _ => None,
    }
}

/// Whether `tz` names UTC (arrow accepts these spellings).
fn is_utc(tz: &str) -> bool {
    matches!(
        tz,
        "UTC" | "utc" | "Z" | "+00:00" | "+0000" | "+00" | "Etc/UTC"
    )
}

/// The fast path, when it applies: `None` sends the call to DataFusion.
fn truncate_utc(args: &[ColumnarValue]) -> Option<ColumnarValue> {
    let [ColumnarValue::Scalar(granularity), ColumnarValue::Array(ts)] = args else {
        return None;
    };
    let granularity = match granularity {
        ScalarValue::Utf8(Some(g))
        | ScalarValue::LargeUtf8(Some(g))
        | ScalarValue::Utf8View(Some(g)) => g,
        _ => return None,
    };
    let unit = unit_us(granularity)?;
    let DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) = ts.data_type() else {
        return None;
    };
    if !is_utc(tz) {
        return None;
    }
    let ts = ts.as_primitive::<TimestampMicrosecondType>();
    let out: TimestampMicrosecondArray = ts
        .unary::<_, TimestampMicrosecondType>(|v| v - v.rem_euclid(unit))
        .with_timezone(tz.clone());
    Some(ColumnarValue::Array(Arc::new(out)))
}

impl ScalarUDFImpl for DateTrunc {
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
        match truncate_utc(&args.args) {
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
    ScalarUDF::new_from_impl(DateTrunc::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;

    /// Truncates `values` (µs since the epoch, some null) in `tz` with the
    /// given function registered as date_trunc.
    async fn run(udf: ScalarUDF, tz: &str, granularity: &str, values: &[Option<i64>]) -> ArrayRef {
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
            .sql(&format!(
                "SELECT date_trunc('{granularity}', ts) AS d FROM t"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        out[0].column(0).clone()
    }

    #[tokio::test]
    async fn equals_datafusion_on_utc_and_falls_back_elsewhere() {
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
                let theirs = run(
                    datafusion::functions::datetime::date_trunc()
                        .as_ref()
                        .clone(),
                    tz,
                    g,
                    &values,
                )
                .await;
                assert_eq!(&ours, &theirs, "{tz} {g}");
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
    }
}

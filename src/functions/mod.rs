//! SQL functions for detection, registered in every session (detect, scan,
//! sql), so analysts use the same statistics as the rules:
//!
//! - `median(x)` and `mad(x)` (median absolute deviation): aggregates, also
//!   usable as window functions (`mad(n) OVER (PARTITION BY role)`). Our
//!   `median` replaces DataFusion's: it always returns Float64 and treats NaN
//!   as missing.
//! - `robust_z(x) OVER (PARTITION BY …)`: each row's `(x - median) / (1.4826 MAD)`
//!   within its partition (see [`simd::robust_z`] for a zero MAD).
//!
//! - `care_relationship(user_id, patient_id, ts, margin)`: whether an
//!   encounter explains an access ([`care`]); registered with the reference
//!   tables, which it reads.
//! - `distinct_count(x)`: the exact number of distinct values, cheaper than
//!   `count(DISTINCT x)` for many small groups ([`distinct`]).
//! - `date_trunc` and `date_part`: DataFusion's, with integer arithmetic for
//!   UTC timestamps ([`time`]).
//!
//! The per-value passes are AVX2 with a scalar fallback ([`simd`]).

pub mod care;
pub mod distinct;
pub mod simd;
pub mod time;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, PartitionEvaluator, Volatility, WindowUDF, create_udaf, create_udwf,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// Which statistic an [`OrderStat`] accumulator returns.
#[derive(Debug, Clone, Copy)]
enum Stat {
    Median,
    Mad,
}

/// Collects a group's values; the statistic needs all of them.
#[derive(Debug)]
struct OrderStat {
    stat: Stat,
    values: Vec<f64>,
}

fn as_f64(a: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

impl Accumulator for OrderStat {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let a = as_f64(&values[0])?;
        if a.null_count() == 0 {
            self.values.extend_from_slice(a.values());
        } else {
            self.values.extend(a.iter().flatten());
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = simd::median_mad(&self.values).map(|(m, mad)| match self.stat {
            Stat::Median => m,
            Stat::Mad => mad,
        });
        Ok(ScalarValue::Float64(v))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            self.values.iter().map(|v| Some(*v)),
        )]);
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                let a = as_f64(&lists.value(i))?;
                self.values.extend(a.iter().flatten());
            }
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        // Sliding window frames: remove one occurrence of each value.
        for v in as_f64(&values[0])?.iter().flatten() {
            if let Some(i) = self.values.iter().position(|x| x.to_bits() == v.to_bits()) {
                self.values.swap_remove(i);
            }
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }
}

fn order_stat(name: &str, stat: Stat) -> AggregateUDF {
    create_udaf(
        name,
        vec![DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(Box::new(OrderStat {
                stat,
                values: Vec::new(),
            }))
        }),
        Arc::new(vec![DataType::List(Arc::new(Field::new_list_field(
            DataType::Float64,
            true,
        )))]),
    )
}

/// `median(x)`: the median of the non-null, non-NaN values (Float64).
pub fn median() -> AggregateUDF {
    order_stat("median", Stat::Median)
}

/// `mad(x)`: the median absolute deviation from the median.
pub fn mad() -> AggregateUDF {
    order_stat("mad", Stat::Mad)
}

#[derive(Debug)]
struct RobustZ;

impl PartitionEvaluator for RobustZ {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let a = as_f64(&values[0])?;
        // Once per partition, so checked in every build.
        assert_eq!(a.len(), num_rows, "a partition's values and rows agree");
        // Nulls become NaN (missing) for the kernels, and null again after.
        let x: Vec<f64> = a.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let z = simd::robust_z(&x);
        Ok(Arc::new(Float64Array::new(z.into(), a.nulls().cloned())))
    }
}

/// `robust_z(x) OVER (…)`: each row's robust z-score within its window partition.
pub fn robust_z() -> WindowUDF {
    create_udwf(
        "robust_z",
        DataType::Float64,
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|| Ok(Box::new(RobustZ))),
    )
}

/// Registers every detection function in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(median());
    ctx.register_udaf(mad());
    ctx.register_udaf(distinct::distinct_count());
    ctx.register_udwf(robust_z());
    ctx.register_udf(time::date_trunc());
    ctx.register_udf(time::date_part());
    ctx.register_udf(care::care_relationship_without_reference());
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::Schema;

    async fn query(sql: &str) -> Vec<RecordBatch> {
        let ctx = SessionContext::new();
        register(&ctx);
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "a", "a", "a", "b", "b"])),
                Arc::new(Int64Array::from(vec![
                    Some(10),
                    Some(11),
                    Some(9),
                    Some(10),
                    Some(60),
                    None,
                    Some(4),
                ])),
            ],
        )
        .unwrap();
        ctx.register_batch("t", batch).unwrap();
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    fn f64s(b: &[RecordBatch], col: usize) -> Vec<Option<f64>> {
        b.iter()
            .flat_map(|b| {
                b.column(col)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .unwrap()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn median_and_mad_as_aggregates() {
        let b = query("SELECT g, median(n), mad(n) FROM t GROUP BY g ORDER BY g").await;
        assert_eq!(f64s(&b, 1), vec![Some(10.0), Some(4.0)]);
        assert_eq!(f64s(&b, 2), vec![Some(1.0), Some(0.0)]);
    }

    #[tokio::test]
    async fn robust_z_and_mad_as_window_functions() {
        let b = query(
            "SELECT n, robust_z(n) OVER (PARTITION BY g) AS z, mad(n) OVER (PARTITION BY g) AS m \
             FROM t WHERE g = 'a' ORDER BY n",
        )
        .await;
        let z = f64s(&b, 1);
        // 9 10 10 11 60 around median 10, MAD 1: the 60 is the outlier.
        assert_eq!(z[1], Some(0.0));
        assert!(
            (z[4].unwrap() - 50.0 / simd::MAD_TO_SIGMA).abs() < 1e-9,
            "{z:?}"
        );
        assert_eq!(f64s(&b, 2), vec![Some(1.0); 5]);
        // A null input is a null score, and does not count.
        let b = query("SELECT robust_z(n) OVER (PARTITION BY g) FROM t WHERE g = 'b'").await;
        assert_eq!(f64s(&b, 0).iter().filter(|v| v.is_none()).count(), 1);
    }
}

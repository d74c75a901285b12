//! `date_trunc` with integer arithmetic for UTC timestamps.
//!
//! Every `time` column is a UTC timestamp, and nearly every dashboard query buckets it with
//! `date_trunc('hour' | 'day' | …, time)`. DataFusion's `date_trunc` truncates hours, days
//! and weeks of a timestamp that carries a time zone value by value through calendar
//! conversions, even when the zone is UTC, where an hour, a day and a week are fixed lengths:
//! over a million points that was most of a TSBS query's time. This function answers hours,
//! days and weeks of UTC (or zone-less) timestamp arrays with a division, and hands every
//! other case — other zones, months and longer, scalars, `Time` values — to DataFusion's own.
//! Everything else about the function (its signature, its return type, the ordering and
//! the predicate rewrites it enables) is DataFusion's.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, PrimitiveArray};
use arrow::datatypes::{
    ArrowTimestampType, DataType, FieldRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature,
};

/// `date_trunc` (and its alias `datetrunc`), fast for UTC hours, days and weeks.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcDateTrunc {
    inner: UdfEq<Arc<dyn ScalarUDFImpl>>,
}

impl Default for UtcDateTrunc {
    fn default() -> Self {
        Self {
            inner: datafusion::functions::datetime::date_trunc()
                .inner()
                .clone()
                .into(),
        }
    }
}

impl UtcDateTrunc {
    /// The function, to register over DataFusion's.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self::default())
    }
}

/// Nanoseconds in a day.
const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// A granularity of fixed length in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixed {
    Hour,
    Day,
    /// Weeks start on Monday.
    Week,
}

impl Fixed {
    fn parse(granularity: &ColumnarValue) -> Option<Self> {
        let ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(g))
            | ScalarValue::Utf8View(Some(g))
            | ScalarValue::LargeUtf8(Some(g)),
        ) = granularity
        else {
            return None;
        };
        match g.to_ascii_lowercase().as_str() {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            _ => None,
        }
    }

    /// Truncates `value`, a timestamp in a unit of which a day has `units_per_day`; `None` on
    /// overflow.
    fn truncate(self, value: i64, units_per_day: i64) -> Option<i64> {
        match self {
            Self::Hour => {
                let hour = units_per_day / 24;
                Some(value - value.rem_euclid(hour))
            }
            Self::Day => Some(value - value.rem_euclid(units_per_day)),
            Self::Week => {
                // 1970-01-01 was a Thursday: Monday is 3 days before it.
                let days = value.div_euclid(units_per_day);
                let monday = days - (days + 3).rem_euclid(7);
                monday.checked_mul(units_per_day)
            }
        }
    }
}

/// Whether a time zone is UTC (or absent, which `date_trunc` treats alike).
fn is_utc(tz: Option<&str>) -> bool {
    match tz {
        None => true,
        Some(tz) => matches!(tz, "UTC" | "utc" | "Z" | "+00:00" | "+00" | "Etc/UTC"),
    }
}

fn truncate_array<T: ArrowTimestampType>(array: &ArrayRef, fixed: Fixed) -> Option<ArrayRef> {
    let units_per_day = match T::UNIT {
        TimeUnit::Second => DAY_NS / 1_000_000_000,
        TimeUnit::Millisecond => DAY_NS / 1_000_000,
        TimeUnit::Microsecond => DAY_NS / 1_000,
        TimeUnit::Nanosecond => DAY_NS,
    };
    let array = array.as_any().downcast_ref::<PrimitiveArray<T>>()?;
    let mut values = Vec::with_capacity(array.len());
    for &v in array.values() {
        values.push(fixed.truncate(v, units_per_day)?);
    }
    let truncated = PrimitiveArray::<T>::new(values.into(), array.nulls().cloned())
        .with_timezone_opt(array.timezone().map(Arc::<str>::from));
    Some(Arc::new(truncated))
}

/// The fast answer, when there is one.
fn fast(args: &ScalarFunctionArgs) -> Option<ColumnarValue> {
    let [granularity, ColumnarValue::Array(array)] = args.args.as_slice() else {
        return None;
    };
    let fixed = Fixed::parse(granularity)?;
    let DataType::Timestamp(unit, tz) = array.data_type() else {
        return None;
    };
    if !is_utc(tz.as_deref()) {
        return None;
    }
    let truncated = match unit {
        TimeUnit::Second => truncate_array::<TimestampSecondType>(array, fixed),
        TimeUnit::Millisecond => truncate_array::<TimestampMillisecondType>(array, fixed),
        TimeUnit::Microsecond => truncate_array::<TimestampMicrosecondType>(array, fixed),
        TimeUnit::Nanosecond => truncate_array::<TimestampNanosecondType>(array, fixed),
    }?;
    Some(ColumnarValue::Array(truncated))
}

#[warn(clippy::missing_trait_methods)] // delegates every method but one
impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
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

    fn is_nullable(&self, args: &[Expr], schema: &dyn datafusion::common::ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match fast(&args) {
            Some(result) => Ok(result),
            None => self.inner.invoke_with_args(args),
        }
    }

    fn with_updated_config(
        &self,
        _config: &datafusion::config::ConfigOptions,
    ) -> Option<ScalarUDF> {
        None
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.preimage(args, lit_expr, info)
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<datafusion::logical_expr::StructFieldMapping> {
        self.inner.struct_field_mapping(literal_args)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.placement(args)
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    use super::*;

    /// Runs `udf` on `granularity` and `array` as DataFusion would.
    fn invoke(udf: &ScalarUDF, granularity: &str, array: ArrayRef) -> ArrayRef {
        let args = vec![
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(granularity.into()))),
            ColumnarValue::Array(array.clone()),
        ];
        let arg_fields = vec![
            Arc::new(Field::new("g", DataType::Utf8, false)),
            Arc::new(Field::new("t", array.data_type().clone(), true)),
        ];
        let return_field = Arc::new(Field::new("r", array.data_type().clone(), true));
        let result = udf
            .invoke_with_args(ScalarFunctionArgs {
                args,
                arg_fields,
                number_rows: array.len(),
                return_field,
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap();
        result.into_array(array.len()).unwrap()
    }

    /// Values around the epoch, far before and after it, at unit boundaries and off them.
    fn values(units_per_day: i64) -> Vec<Option<i64>> {
        let mut values = vec![None, Some(0), Some(-1), Some(1)];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Within ±100 years of the epoch.
            let span = 100 * 365 * units_per_day;
            values.push(Some((x % (2 * span as u64)) as i64 - span));
        }
        for day in [-100_000i64, -1, 0, 1, 19_000, 20_000, 100_000] {
            for offset in [-1, 0, 1] {
                values.push(Some(day * units_per_day + offset));
                values.push(Some(day * units_per_day + units_per_day / 24 + offset));
            }
        }
        values
    }

    fn check<T: ArrowTimestampType>(units_per_day: i64) {
        let ours = UtcDateTrunc::udf();
        let theirs = datafusion::functions::datetime::date_trunc();
        for tz in [Some("UTC"), Some("+00:00"), None, Some("Europe/Berlin")] {
            let array: ArrayRef = Arc::new(
                values(units_per_day)
                    .into_iter()
                    .collect::<PrimitiveArray<T>>()
                    .with_timezone_opt(tz),
            );
            for granularity in ["hour", "day", "week", "HOUR", "minute", "month", "year"] {
                let expected = invoke(&theirs, granularity, array.clone());
                let got = invoke(&ours, granularity, array.clone());
                assert_eq!(&got, &expected, "{granularity} {tz:?} {:?}", T::UNIT);
            }
        }
    }

    #[test]
    fn answers_what_datafusion_answers_in_every_unit() {
        check::<TimestampNanosecondType>(DAY_NS);
        check::<TimestampMicrosecondType>(DAY_NS / 1_000);
        check::<TimestampMillisecondType>(DAY_NS / 1_000_000);
        check::<TimestampSecondType>(DAY_NS / 1_000_000_000);
    }

    #[test]
    fn takes_the_fast_path_for_utc_hours_days_and_weeks_only() {
        let array: ArrayRef = Arc::new(
            PrimitiveArray::<TimestampNanosecondType>::from(vec![Some(1)]).with_timezone("UTC"),
        );
        let args = |g: &str, array: ArrayRef| ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(g.into()))),
                ColumnarValue::Array(array.clone()),
            ],
            arg_fields: vec![],
            number_rows: 1,
            return_field: Arc::new(Field::new("r", array.data_type().clone(), true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        for g in ["hour", "Day", "week"] {
            assert!(fast(&args(g, array.clone())).is_some(), "{g}");
        }
        assert!(fast(&args("month", array.clone())).is_none());
        let berlin: ArrayRef = Arc::new(
            PrimitiveArray::<TimestampNanosecondType>::from(vec![Some(1)])
                .with_timezone("Europe/Berlin"),
        );
        assert!(fast(&args("hour", berlin)).is_none());
        let name = UtcDateTrunc::udf();
        assert_eq!(name.name(), "date_trunc");
        assert!(name.aliases().iter().any(|a| a == "datetrunc"));
    }
}

//! `ExportMetricsServiceRequest` → a `metrics` record batch: one row per data point, of
//! every metric type, in one wide table.
//!
//! Exemplars are kept, all of them, as a list on their data point's row (`exemplars`).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Array, Float64Builder, Int32Builder, ListBuilder, RecordBatch,
    StringBuilder, TimestampNanosecondArray, UInt32Array, UInt64Array, UInt64Builder,
    new_null_array,
};
use arrow::datatypes::DataType;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
};
use strata_storage::Signal;
use strata_storage::schema::{self, UTC, list_item};

use super::wire::{self, Fields, Unsupported, push_key_value};
use super::{
    Attribute, Converted, ListOffsets, MapColumn, Origin, OriginColumns, Rejected, Rendered,
    WireAttr, append_hex, attributes_of, strings, struct_array, timestamp, timestamps,
};

/// The `aggregation_temporality` column's value.
pub fn temporality_name(t: i32) -> &'static str {
    match t {
        1 => "delta",
        2 => "cumulative",
        _ => "unspecified",
    }
}

/// 64-bit FNV-1a, a stable hash for series ids (the same input hashes the same everywhere,
/// in every release).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// Writes a field and a separator no UTF-8 text contains.
    fn field(&mut self, bytes: &[u8]) {
        self.write(bytes);
        self.write(&[0xff]);
    }
}

/// Hashes attributes in key order, so that the order a client sends them in does not matter.
fn hash_attributes<A: Attribute>(h: &mut Fnv, attributes: &[A], text: &mut String) {
    let mut sorted: Vec<&A> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key().cmp(b.key()));
    for kv in sorted {
        h.field(kv.key().as_bytes());
        text.clear();
        kv.value().write_text(text);
        h.field(text.as_bytes());
    }
    h.write(&[0xfe]);
}

/// Offset and counts of exponential histogram buckets (absent: offset 0, no buckets).
fn buckets(b: &Option<Buckets>) -> (i32, &[u64]) {
    b.as_ref()
        .map_or((0, &[][..]), |b| (b.offset, b.bucket_counts.as_slice()))
}

/// Everything a data point row shares with its metric, scope and resource.
struct Context<'a> {
    origin: &'a Origin<'a>,
    resource_hash: Fnv,
    metric_name: &'a str,
    description: &'a str,
    unit: &'a str,
    metric_type: &'static str,
    temporality: Option<&'static str>,
    is_monotonic: Option<bool>,
}

struct Builder {
    time: Vec<i64>,
    start_time: Vec<Option<i64>>,
    metric_name: StringBuilder,
    metric_type: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    series: Vec<u64>,
    origin: OriginColumns,
    attributes: MapColumn,
    sums: Group<SumColumns>,
    flags: Vec<u32>,
    value: Float64Builder,
    stats: Group<StatColumns>,
    histograms: Group<HistogramColumns>,
    exponential: Group<ExponentialColumns>,
    quantiles: ListOffsets,
    q_quantile: Vec<f64>,
    q_value: Vec<f64>,
    exemplars: ListOffsets,
    ex_time: Vec<i64>,
    ex_value: Float64Builder,
    ex_trace_id: StringBuilder,
    ex_span_id: StringBuilder,
    ex_attributes: MapColumn,
    text: String,
    /// The rows the request holds: what a group's columns are sized for.
    capacity: usize,
}

/// Nullable columns that only some metric types fill (a sum's temporality, a histogram's
/// count and buckets), built lazily: the rows before one with values are appended as nulls
/// when it comes, and columns no row of the request fills are made at the end, all null, at
/// once (`new_null_array`). A gauge's row then costs nothing in the fifteen columns of the
/// other types, where it was a null appended to each.
struct Group<C> {
    /// Rows appended to the columns so far (none while there are no columns).
    filled: usize,
    columns: Option<C>,
}

/// The builders of one [`Group`].
trait Columns: Sized {
    /// The columns' names in the metrics schema, in schema order.
    const NAMES: &'static [&'static str];
    fn with_capacity(rows: usize) -> Self;
    fn append_nulls(&mut self, n: usize);
    /// The columns, in the order of [`Self::NAMES`].
    fn finish(self) -> Vec<ArrayRef>;
}

impl<C> Default for Group<C> {
    fn default() -> Self {
        Self {
            filled: 0,
            columns: None,
        }
    }
}

impl<C: Columns> Group<C> {
    /// The columns, ready for the values of row `row`: made at the group's first value
    /// (sized for `capacity` rows), with the rows since its last value appended as nulls.
    /// Call it at most once per row, for rows in ascending order.
    fn at(&mut self, row: usize, capacity: usize) -> &mut C {
        let columns = self
            .columns
            .get_or_insert_with(|| C::with_capacity(capacity));
        debug_assert!(row >= self.filled, "rows come once each, in order");
        columns.append_nulls(row - self.filled);
        self.filled = row + 1;
        columns
    }

    /// The columns of `rows` rows, the rows after the last value null.
    fn finish(self, rows: usize) -> Vec<ArrayRef> {
        match self.columns {
            Some(mut columns) => {
                columns.append_nulls(rows - self.filled);
                columns.finish()
            }
            None => {
                let schema = schema::metrics_schema();
                C::NAMES
                    .iter()
                    .map(|name| {
                        let field = schema.field_with_name(name).expect("a metrics column");
                        new_null_array(field.data_type(), rows)
                    })
                    .collect()
            }
        }
    }
}

/// A sum's `aggregation_temporality` and `is_monotonic` (a histogram's temporality too).
struct SumColumns {
    temporality: StringBuilder,
    is_monotonic: BooleanBuilder,
}

impl Columns for SumColumns {
    const NAMES: &'static [&'static str] = &["aggregation_temporality", "is_monotonic"];
    fn with_capacity(rows: usize) -> Self {
        Self {
            temporality: strings(rows, 16),
            is_monotonic: BooleanBuilder::with_capacity(rows),
        }
    }
    fn append_nulls(&mut self, n: usize) {
        self.temporality.append_nulls(n);
        self.is_monotonic.append_nulls(n);
    }
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.temporality.finish()),
            Arc::new(self.is_monotonic.finish()),
        ]
    }
}

/// `count`, `sum`, `min` and `max` of histograms and summaries.
struct StatColumns {
    count: UInt64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
}

impl Columns for StatColumns {
    const NAMES: &'static [&'static str] = &["count", "sum", "min", "max"];
    fn with_capacity(rows: usize) -> Self {
        Self {
            count: UInt64Builder::with_capacity(rows),
            sum: Float64Builder::with_capacity(rows),
            min: Float64Builder::with_capacity(rows),
            max: Float64Builder::with_capacity(rows),
        }
    }
    fn append_nulls(&mut self, n: usize) {
        self.count.append_nulls(n);
        self.sum.append_nulls(n);
        self.min.append_nulls(n);
        self.max.append_nulls(n);
    }
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
        ]
    }
}

/// A histogram's buckets.
struct HistogramColumns {
    bucket_counts: ListBuilder<UInt64Builder>,
    explicit_bounds: ListBuilder<Float64Builder>,
}

impl Columns for HistogramColumns {
    const NAMES: &'static [&'static str] = &["bucket_counts", "explicit_bounds"];
    fn with_capacity(rows: usize) -> Self {
        Self {
            bucket_counts: u64_list(rows, 0),
            explicit_bounds: f64_list(rows, 0),
        }
    }
    fn append_nulls(&mut self, n: usize) {
        self.bucket_counts.append_nulls(n);
        self.explicit_bounds.append_nulls(n);
    }
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.explicit_bounds.finish()),
        ]
    }
}

/// An exponential histogram's scale, zero bucket and buckets.
struct ExponentialColumns {
    scale: Int32Builder,
    zero_count: UInt64Builder,
    zero_threshold: Float64Builder,
    positive_offset: Int32Builder,
    positive_counts: ListBuilder<UInt64Builder>,
    negative_offset: Int32Builder,
    negative_counts: ListBuilder<UInt64Builder>,
}

impl Columns for ExponentialColumns {
    const NAMES: &'static [&'static str] = &[
        "scale",
        "zero_count",
        "zero_threshold",
        "positive_offset",
        "positive_bucket_counts",
        "negative_offset",
        "negative_bucket_counts",
    ];
    fn with_capacity(rows: usize) -> Self {
        Self {
            scale: Int32Builder::with_capacity(rows),
            zero_count: UInt64Builder::with_capacity(rows),
            zero_threshold: Float64Builder::with_capacity(rows),
            positive_offset: Int32Builder::with_capacity(rows),
            positive_counts: u64_list(rows, 0),
            negative_offset: Int32Builder::with_capacity(rows),
            negative_counts: u64_list(rows, 0),
        }
    }
    fn append_nulls(&mut self, n: usize) {
        self.scale.append_nulls(n);
        self.zero_count.append_nulls(n);
        self.zero_threshold.append_nulls(n);
        self.positive_offset.append_nulls(n);
        self.positive_counts.append_nulls(n);
        self.negative_offset.append_nulls(n);
        self.negative_counts.append_nulls(n);
    }
    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.scale.finish()),
            Arc::new(self.zero_count.finish()),
            Arc::new(self.zero_threshold.finish()),
            Arc::new(self.positive_offset.finish()),
            Arc::new(self.positive_counts.finish()),
            Arc::new(self.negative_offset.finish()),
            Arc::new(self.negative_counts.finish()),
        ]
    }
}

fn u64_list(rows: usize, items: usize) -> ListBuilder<UInt64Builder> {
    ListBuilder::with_capacity(UInt64Builder::with_capacity(items), rows)
        .with_field(list_item(DataType::UInt64, false))
}

fn f64_list(rows: usize, items: usize) -> ListBuilder<Float64Builder> {
    ListBuilder::with_capacity(Float64Builder::with_capacity(items), rows)
        .with_field(list_item(DataType::Float64, false))
}

/// Values of a row that differ by metric type; absent ones are `NULL`.
#[derive(Default)]
struct Point<'a> {
    value: Option<f64>,
    count: Option<u64>,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    bucket_counts: Option<&'a [u64]>,
    explicit_bounds: Option<&'a [f64]>,
    exponential: Option<Exponential<'a>>,
    quantiles: Option<Vec<(f64, f64)>>,
}

struct Exponential<'a> {
    scale: i32,
    zero_count: u64,
    zero_threshold: f64,
    positive: (i32, &'a [u64]),
    negative: (i32, &'a [u64]),
}

/// Fields every data point type has.
struct Common<'a, A> {
    attributes: &'a [A],
    start_time_unix_nano: u64,
    time_unix_nano: u64,
    flags: u32,
    exemplars: &'a [Exemplar],
}

impl Builder {
    fn new(rows: usize) -> Self {
        Self {
            time: Vec::with_capacity(rows),
            start_time: Vec::with_capacity(rows),
            metric_name: strings(rows, 16),
            metric_type: strings(rows, 16),
            description: strings(rows, 16),
            unit: strings(rows, 16),
            series: Vec::with_capacity(rows),
            origin: OriginColumns::default(),
            attributes: MapColumn::with_capacity(rows),
            sums: Group::default(),
            flags: Vec::with_capacity(rows),
            value: Float64Builder::with_capacity(rows),
            stats: Group::default(),
            histograms: Group::default(),
            exponential: Group::default(),
            quantiles: ListOffsets::with_capacity(rows),
            q_quantile: Vec::new(),
            q_value: Vec::new(),
            exemplars: ListOffsets::with_capacity(rows),
            ex_time: Vec::new(),
            ex_value: Float64Builder::with_capacity(0),
            ex_trace_id: strings(0, 0),
            ex_span_id: strings(0, 0),
            ex_attributes: MapColumn::with_capacity(0),
            text: String::new(),
            capacity: rows,
        }
    }

    fn push(
        &mut self,
        ctx: &Context<'_>,
        common: &Common<'_, impl Attribute>,
        point: Point<'_>,
    ) -> Result<(), String> {
        let time = timestamp(common.time_unix_nano, "time_unix_nano")?;
        let start = match common.start_time_unix_nano {
            0 => None,
            ns => Some(timestamp(ns, "start_time_unix_nano")?),
        };
        self.origin.append(ctx.origin)?;
        let row = self.time.len();
        self.time.push(time);
        self.start_time.push(start);
        self.metric_name.append_value(ctx.metric_name);
        self.metric_type.append_value(ctx.metric_type);
        self.description.append_value(ctx.description);
        self.unit.append_value(ctx.unit);
        let mut h = ctx.resource_hash;
        h.field(ctx.metric_name.as_bytes());
        hash_attributes(&mut h, common.attributes, &mut self.text);
        self.series.push(h.0);
        self.attributes.append(common.attributes);
        if ctx.temporality.is_some() || ctx.is_monotonic.is_some() {
            let c = self.sums.at(row, self.capacity);
            c.temporality.append_option(ctx.temporality);
            c.is_monotonic.append_option(ctx.is_monotonic);
        }
        self.flags.push(common.flags);

        self.value.append_option(point.value);
        if point.count.is_some()
            || point.sum.is_some()
            || point.min.is_some()
            || point.max.is_some()
        {
            let c = self.stats.at(row, self.capacity);
            c.count.append_option(point.count);
            c.sum.append_option(point.sum);
            c.min.append_option(point.min);
            c.max.append_option(point.max);
        }
        if point.bucket_counts.is_some() || point.explicit_bounds.is_some() {
            let c = self.histograms.at(row, self.capacity);
            match point.bucket_counts {
                Some(counts) => {
                    c.bucket_counts.values().append_slice(counts);
                    c.bucket_counts.append(true);
                }
                None => c.bucket_counts.append(false),
            }
            match point.explicit_bounds {
                Some(bounds) => {
                    c.explicit_bounds.values().append_slice(bounds);
                    c.explicit_bounds.append(true);
                }
                None => c.explicit_bounds.append(false),
            }
        }
        if let Some(e) = point.exponential {
            let c = self.exponential.at(row, self.capacity);
            c.scale.append_value(e.scale);
            c.zero_count.append_value(e.zero_count);
            c.zero_threshold.append_value(e.zero_threshold);
            c.positive_offset.append_value(e.positive.0);
            c.positive_counts.values().append_slice(e.positive.1);
            c.positive_counts.append(true);
            c.negative_offset.append_value(e.negative.0);
            c.negative_counts.values().append_slice(e.negative.1);
            c.negative_counts.append(true);
        }
        match point.quantiles {
            Some(q) => {
                for (quantile, value) in q {
                    self.q_quantile.push(quantile);
                    self.q_value.push(value);
                }
                self.quantiles.push(self.q_quantile.len());
            }
            None => self.quantiles.push_null(),
        }
        for ex in common.exemplars {
            self.ex_time
                .push(i64::try_from(ex.time_unix_nano).unwrap_or(i64::MAX));
            self.ex_value.append_option(ex.value.map(|v| match v {
                exemplar::Value::AsDouble(d) => d,
                exemplar::Value::AsInt(i) => i as f64,
            }));
            append_hex(&mut self.ex_trace_id, &ex.trace_id);
            append_hex(&mut self.ex_span_id, &ex.span_id);
            self.ex_attributes.append(&ex.filtered_attributes);
        }
        self.exemplars.push(self.ex_time.len());
        Ok(())
    }

    /// Appends a gauge or sum point; one without a value is rejected.
    fn push_number(
        &mut self,
        ctx: &Context<'_>,
        common: &Common<'_, impl Attribute>,
        value: Option<f64>,
    ) -> Result<(), String> {
        let value = value.ok_or_else(|| "data point has no value".to_string())?;
        let point = Point {
            value: Some(value),
            ..Default::default()
        };
        self.push(ctx, common, point)
    }

    fn finish(mut self) -> RecordBatch {
        let ts = timestamps;
        let rows = self.time.len();
        let quantile_values = struct_array(
            schema::quantile_fields(),
            vec![
                Arc::new(Float64Array::from(self.q_quantile)),
                Arc::new(Float64Array::from(self.q_value)),
            ],
        );
        let exemplar_values = struct_array(
            schema::exemplar_fields(),
            vec![
                ts(self.ex_time),
                Arc::new(self.ex_value.finish()),
                Arc::new(self.ex_trace_id.finish()),
                Arc::new(self.ex_span_id.finish()),
                Arc::new(self.ex_attributes.finish()),
            ],
        );
        let [service, resource_attributes, scope_name, scope_version] = self.origin.finish();
        let mut columns: Vec<ArrayRef> = vec![
            ts(self.time),
            Arc::new(TimestampNanosecondArray::from(self.start_time).with_timezone(UTC)),
            Arc::new(self.metric_name.finish()),
            Arc::new(self.metric_type.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(UInt64Array::from(self.series)),
            service,
            resource_attributes,
            scope_name,
            scope_version,
            Arc::new(self.attributes.finish()),
        ];
        columns.extend(self.sums.finish(rows));
        columns.push(Arc::new(UInt32Array::from(self.flags)));
        columns.push(Arc::new(self.value.finish()));
        columns.extend(self.stats.finish(rows));
        columns.extend(self.histograms.finish(rows));
        columns.extend(self.exponential.finish(rows));
        columns.extend([
            Arc::new(
                self.quantiles
                    .finish(DataType::Struct(schema::quantile_fields()), quantile_values),
            ),
            Arc::new(
                self.exemplars
                    .finish(DataType::Struct(schema::exemplar_fields()), exemplar_values),
            ) as ArrayRef,
        ]);
        RecordBatch::try_new(schema::buffer_schema_for(Signal::Metrics), columns)
            .expect("columns are built to the metrics schema")
    }
}

/// A number data point's value as a double (integers converted).
fn number_double(v: Option<number_data_point::Value>) -> Option<f64> {
    v.map(|v| match v {
        number_data_point::Value::AsDouble(d) => d,
        number_data_point::Value::AsInt(i) => i as f64,
    })
}

/// The reason of a rejected data point, as `partial_success` reports it.
fn rejection(point: usize, metric: &str, resource: usize, reason: &str) -> String {
    format!("data point {point} of metric {metric:?} (resource {resource}): {reason}")
}

/// Converts the data points of a request; points without a value or with out-of-range
/// timestamps are rejected.
pub fn metrics_to_batch(request: &ExportMetricsServiceRequest) -> Converted {
    let rows: usize = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum();
    let mut b = Builder::new(rows);
    let mut rejected = Rejected::default();
    let mut text = String::new();

    for (ri, rm) in request.resource_metrics.iter().enumerate() {
        let resource_attrs = attributes_of(rm.resource.as_ref());
        let resource_rendered = Rendered::new(resource_attrs);
        let mut resource_hash = Fnv::new();
        hash_attributes(&mut resource_hash, resource_attrs, &mut text);
        for sm in &rm.scope_metrics {
            let origin = Origin::of(resource_attrs, &resource_rendered, sm.scope.as_ref());
            for metric in &sm.metrics {
                let mut ctx = Context {
                    origin: &origin,
                    resource_hash,
                    metric_name: &metric.name,
                    description: &metric.description,
                    unit: &metric.unit,
                    metric_type: "gauge",
                    temporality: None,
                    is_monotonic: None,
                };
                let mut reject = |i: usize, reason: String| {
                    rejected.add(|| rejection(i, &metric.name, ri, &reason))
                };
                match &metric.data {
                    None => {}
                    Some(Data::Gauge(g)) => {
                        for (i, p) in g.data_points.iter().enumerate() {
                            let common = Common {
                                attributes: &p.attributes,
                                start_time_unix_nano: p.start_time_unix_nano,
                                time_unix_nano: p.time_unix_nano,
                                flags: p.flags,
                                exemplars: &p.exemplars,
                            };
                            if let Err(e) = b.push_number(&ctx, &common, number_double(p.value)) {
                                reject(i, e);
                            }
                        }
                    }
                    Some(Data::Sum(s)) => {
                        ctx.metric_type = "sum";
                        ctx.temporality = Some(temporality_name(s.aggregation_temporality));
                        ctx.is_monotonic = Some(s.is_monotonic);
                        for (i, p) in s.data_points.iter().enumerate() {
                            let common = Common {
                                attributes: &p.attributes,
                                start_time_unix_nano: p.start_time_unix_nano,
                                time_unix_nano: p.time_unix_nano,
                                flags: p.flags,
                                exemplars: &p.exemplars,
                            };
                            if let Err(e) = b.push_number(&ctx, &common, number_double(p.value)) {
                                reject(i, e);
                            }
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        ctx.metric_type = "histogram";
                        ctx.temporality = Some(temporality_name(h.aggregation_temporality));
                        for (i, p) in h.data_points.iter().enumerate() {
                            let common = Common {
                                attributes: &p.attributes,
                                start_time_unix_nano: p.start_time_unix_nano,
                                time_unix_nano: p.time_unix_nano,
                                flags: p.flags,
                                exemplars: &p.exemplars,
                            };
                            let point = Point {
                                count: Some(p.count),
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                                bucket_counts: Some(&p.bucket_counts),
                                explicit_bounds: Some(&p.explicit_bounds),
                                ..Default::default()
                            };
                            if let Err(e) = b.push(&ctx, &common, point) {
                                reject(i, e);
                            }
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        ctx.metric_type = "exponential_histogram";
                        ctx.temporality = Some(temporality_name(h.aggregation_temporality));
                        for (i, p) in h.data_points.iter().enumerate() {
                            let common = Common {
                                attributes: &p.attributes,
                                start_time_unix_nano: p.start_time_unix_nano,
                                time_unix_nano: p.time_unix_nano,
                                flags: p.flags,
                                exemplars: &p.exemplars,
                            };
                            let point = Point {
                                count: Some(p.count),
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                                exponential: Some(Exponential {
                                    scale: p.scale,
                                    zero_count: p.zero_count,
                                    zero_threshold: p.zero_threshold,
                                    positive: buckets(&p.positive),
                                    negative: buckets(&p.negative),
                                }),
                                ..Default::default()
                            };
                            if let Err(e) = b.push(&ctx, &common, point) {
                                reject(i, e);
                            }
                        }
                    }
                    Some(Data::Summary(s)) => {
                        ctx.metric_type = "summary";
                        for (i, p) in s.data_points.iter().enumerate() {
                            let common = Common {
                                attributes: &p.attributes,
                                start_time_unix_nano: p.start_time_unix_nano,
                                time_unix_nano: p.time_unix_nano,
                                flags: p.flags,
                                exemplars: &[],
                            };
                            let point = Point {
                                count: Some(p.count),
                                sum: Some(p.sum),
                                quantiles: Some(
                                    p.quantile_values
                                        .iter()
                                        .map(|q| (q.quantile, q.value))
                                        .collect(),
                                ),
                                ..Default::default()
                            };
                            if let Err(e) = b.push(&ctx, &common, point) {
                                reject(i, e);
                            }
                        }
                    }
                }
            }
        }
    }

    Converted::of(b.time.len() as u64, rejected, || b.finish())
}

/// A metric of a protobuf-encoded request as the fast path reads it: a gauge or a sum,
/// whose data points are a range of the points read (still encoded).
struct MetricFields<'a> {
    name: &'a str,
    description: &'a str,
    unit: &'a str,
    data: NumberData,
    points: std::ops::Range<usize>,
}

/// The data of a metric of number points.
enum NumberData {
    /// A metric without data: no rows.
    None,
    Gauge,
    Sum {
        temporality: i32,
        is_monotonic: bool,
    },
}

/// A `Metric`: its name, description and unit, its gauge or sum, its data points into
/// `points`. Histograms, exponential histograms and summaries are left to prost, and so is a
/// metric with more than one data field (prost would merge or replace them).
fn metric_fields<'a>(
    buf: &'a [u8],
    points: &mut Vec<&'a [u8]>,
    metadata: &mut Vec<WireAttr<'a>>,
) -> wire::Result<MetricFields<'a>> {
    let (mut name, mut description, mut unit) = ("", "", "");
    let mut data = None;
    metadata.clear();
    for field in Fields::new(buf) {
        match field? {
            (1, f) => name = f.string()?,
            (2, f) => description = f.string()?,
            (3, f) => unit = f.string()?,
            // Read (and so checked) like every field, but not stored, as when decoded.
            (12, f) => push_key_value(metadata, f)?,
            (n @ (5 | 7), f) if data.is_none() => data = Some((n, f.bytes()?)),
            _ => return Err(Unsupported),
        }
    }
    let first_point = points.len();
    let data = match data {
        None => NumberData::None,
        Some((kind, data)) => {
            let (mut temporality, mut is_monotonic) = (0, false);
            for field in Fields::new(data) {
                match (kind, field?) {
                    (_, (1, f)) => points.push(f.bytes()?),
                    (7, (2, f)) => temporality = f.int32()?,
                    (7, (3, f)) => is_monotonic = f.varint()? != 0,
                    _ => return Err(Unsupported),
                }
            }
            match kind {
                5 => NumberData::Gauge,
                _ => NumberData::Sum {
                    temporality,
                    is_monotonic,
                },
            }
        }
    };
    Ok(MetricFields {
        name,
        description,
        unit,
        data,
        points: first_point..points.len(),
    })
}

/// The fields of a `NumberDataPoint` other than its attributes.
struct NumberFields {
    start_time_unix_nano: u64,
    time_unix_nano: u64,
    flags: u32,
    value: Option<f64>,
}

/// A `NumberDataPoint`; its attributes into `attrs` (cleared first). Points with exemplars
/// are left to prost.
fn number_point<'a>(buf: &'a [u8], attrs: &mut Vec<WireAttr<'a>>) -> wire::Result<NumberFields> {
    let mut point = NumberFields {
        start_time_unix_nano: 0,
        time_unix_nano: 0,
        flags: 0,
        value: None,
    };
    attrs.clear();
    for field in Fields::new(buf) {
        match field? {
            (2, f) => point.start_time_unix_nano = f.fixed64()?,
            (3, f) => point.time_unix_nano = f.fixed64()?,
            // The value is a oneof: the last one wins.
            (4, f) => point.value = Some(f64::from_bits(f.fixed64()?)),
            (6, f) => point.value = Some(f.fixed64()? as i64 as f64),
            (7, f) => push_key_value(attrs, f)?,
            (8, f) => point.flags = f.uint32()?,
            _ => return Err(Unsupported),
        }
    }
    Ok(point)
}

/// Converts the data points of a protobuf-encoded `ExportMetricsServiceRequest` of gauges and
/// sums without decoding it into messages first: the same rows as `metrics_to_batch` of the
/// decoded request. [`Unsupported`] for other metric types, exemplars, and whatever is not
/// read exactly as prost reads it (`wire.rs`).
pub(crate) fn metrics_from_protobuf(body: &[u8]) -> wire::Result<Converted> {
    let request = wire::Request::read(body)?;
    let mut attrs = Vec::new();
    let mut points = Vec::new();
    let metrics = request
        .items
        .iter()
        .map(|m| metric_fields(m, &mut points, &mut attrs))
        .collect::<wire::Result<Vec<_>>>()?;
    let mut b = Builder::new(points.len());
    let mut rejected = Rejected::default();
    let mut text = String::new();
    request.for_each_scope(|ri, resource_attrs, origin, items| {
        let mut resource_hash = Fnv::new();
        hash_attributes(&mut resource_hash, resource_attrs, &mut text);
        for metric in &metrics[items] {
            let (metric_type, temporality, is_monotonic) = match metric.data {
                NumberData::None => continue,
                NumberData::Gauge => ("gauge", None, None),
                NumberData::Sum {
                    temporality,
                    is_monotonic,
                } => (
                    "sum",
                    Some(temporality_name(temporality)),
                    Some(is_monotonic),
                ),
            };
            let ctx = Context {
                origin,
                resource_hash,
                metric_name: metric.name,
                description: metric.description,
                unit: metric.unit,
                metric_type,
                temporality,
                is_monotonic,
            };
            for (i, point) in points[metric.points.clone()].iter().enumerate() {
                let fields = number_point(point, &mut attrs)?;
                let common = Common {
                    attributes: &attrs,
                    start_time_unix_nano: fields.start_time_unix_nano,
                    time_unix_nano: fields.time_unix_nano,
                    flags: fields.flags,
                    exemplars: &[],
                };
                if let Err(reason) = b.push_number(&ctx, &common, fields.value) {
                    rejected.add(|| rejection(i, metric.name, ri, &reason));
                }
            }
        }
        Ok(())
    })?;
    Ok(Converted::of(b.time.len() as u64, rejected, || b.finish()))
}

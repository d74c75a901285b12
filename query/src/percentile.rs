//! `approx_percentile_cont` with a groups accumulator.
//!
//! "p99 of duration per operation" is the query a trace dashboard runs most, and DataFusion's
//! `approx_percentile_cont` has no [`GroupsAccumulator`]: grouped, it runs one t-digest
//! [`Accumulator`] per group through DataFusion's adapter, which for every batch takes each
//! group's rows apart, sorts them and merges them into that group's digest — a sort, a merge
//! and their allocations per group per batch, whatever few rows the group had in it.
//!
//! [`PercentileGroups`] keeps each group's values in a buffer and merges a buffer into the
//! group's digest once it holds [`MERGE_VALUES`] of them (or when every buffer together holds
//! [`PENDING_VALUES`], or when the group is emitted): one sort and one merge per thousand
//! values. The digest is DataFusion's own ([`TDigest`]), its state the same six fields, its
//! final answer the same `estimate_quantile`; what changes is only how many values each
//! merge takes, which a t-digest's answer depends on anyway (DataFusion's does, on batch
//! boundaries). Everything else about the function — its name, signature, coercions, return
//! type, `WITHIN GROUP` ordering, the ungrouped accumulator — is DataFusion's. Calls it does
//! not handle (`DISTINCT`, a percentile or centroid count that is not a literal) are left to
//! DataFusion's adapter.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Float64Builder, ListArray,
    PrimitiveArray, UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, UInt64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::functions_aggregate::approx_percentile_cont::ApproxPercentileCont;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion_functions_aggregate_common::tdigest::{Centroid, DEFAULT_MAX_SIZE, TDigest};

/// A group's buffer is merged into its digest once it holds this many values.
pub const MERGE_VALUES: usize = 1024;
/// Every buffer is merged once all of them together hold this many values (8 MiB), so that
/// many groups with few values each do not keep every value.
pub const PENDING_VALUES: usize = 1 << 20;

/// DataFusion's `approx_percentile_cont`, with [`PercentileGroups`] for grouped aggregation.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub struct ApproxPercentile {
    inner: ApproxPercentileCont,
}

impl ApproxPercentile {
    /// The function, to register over DataFusion's.
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::new_from_impl(Self::default())
    }
}

/// A literal float or integer argument.
fn literal(expr: &Arc<dyn PhysicalExpr>) -> Option<&ScalarValue> {
    expr.downcast_ref::<Literal>().map(Literal::value)
}

/// The percentile and digest size of a call this module handles.
fn groups_parameters(args: &AccumulatorArgs) -> Option<(f64, usize)> {
    if args.is_distinct || !(2..=3).contains(&args.exprs.len()) {
        return None;
    }
    let percentile = match literal(&args.exprs[1])? {
        ScalarValue::Float64(Some(p)) => *p,
        ScalarValue::Float32(Some(p)) => *p as f64,
        _ => return None,
    };
    if !(0.0..=1.0).contains(&percentile) {
        return None;
    }
    let descending = args
        .order_bys
        .first()
        .is_some_and(|sort| sort.options.descending);
    let percentile = if descending {
        1.0 - percentile
    } else {
        percentile
    };
    let max_size = match args.exprs.get(2) {
        None => DEFAULT_MAX_SIZE,
        Some(expr) => match literal(expr)? {
            ScalarValue::Int64(Some(n)) if *n > 0 => *n as usize,
            ScalarValue::UInt64(Some(n)) if *n > 0 => *n as usize,
            _ => return None,
        },
    };
    let float_input = matches!(
        args.expr_fields[0].data_type(),
        DataType::Float16 | DataType::Float32 | DataType::Float64
    );
    float_input.then_some((percentile, max_size))
}

impl AggregateUDFImpl for ApproxPercentile {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        groups_parameters(&args).is_some()
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let Some((percentile, max_size)) = groups_parameters(&args) else {
            return exec_err!("approx_percentile_cont: no groups accumulator for this call");
        };
        Ok(Box::new(PercentileGroups::new(
            percentile,
            max_size,
            args.return_field.data_type().clone(),
        )))
    }
}

/// The t-digests of every group, each with the values not yet merged into it.
#[derive(Debug)]
pub struct PercentileGroups {
    percentile: f64,
    max_size: usize,
    return_type: DataType,
    digests: Vec<TDigest>,
    /// Each group's values not yet merged, as [`order_key`]s: integers sort faster than
    /// floats compared with `total_cmp`, in the same order.
    pending: Vec<Vec<u64>>,
    /// A sorted buffer turned back into floats, for the merge.
    sorted: Vec<f64>,
    /// Values in all of `pending`.
    pending_values: usize,
    /// Centroids in all of `digests`, for [`GroupsAccumulator::size`].
    centroids: usize,
}

impl PercentileGroups {
    pub fn new(percentile: f64, max_size: usize, return_type: DataType) -> Self {
        Self {
            percentile,
            max_size,
            return_type,
            digests: Vec::new(),
            pending: Vec::new(),
            sorted: Vec::new(),
            pending_values: 0,
            centroids: 0,
        }
    }

    fn resize(&mut self, total_num_groups: usize) {
        if self.digests.len() < total_num_groups {
            self.digests
                .resize_with(total_num_groups, || TDigest::new(self.max_size));
            self.pending.resize_with(total_num_groups, Vec::new);
        }
    }

    /// Merges group `g`'s buffer into its digest.
    fn merge_pending(&mut self, g: usize) {
        let values = &mut self.pending[g];
        if values.is_empty() {
            return;
        }
        values.sort_unstable();
        self.sorted.clear();
        self.sorted
            .extend(values.iter().map(|&key| from_order_key(key)));
        let merged = self.digests[g].merge_sorted_f64(&self.sorted);
        self.pending_values -= values.len();
        values.clear();
        self.replace_digest(g, merged);
    }

    fn replace_digest(&mut self, g: usize, digest: TDigest) {
        self.centroids =
            self.centroids + digest.centroids().len() - self.digests[g].centroids().len();
        self.digests[g] = digest;
    }

    fn merge_all_pending(&mut self) {
        for g in 0..self.pending.len() {
            self.merge_pending(g);
        }
        // What the buffers grew to is given back; they grow again where values come.
        for values in &mut self.pending {
            *values = Vec::new();
        }
    }

    /// The digests of the groups `emit_to` names, their buffers merged, taken out.
    fn take_digests(&mut self, emit_to: EmitTo) -> Vec<TDigest> {
        let n = match emit_to {
            EmitTo::All => self.digests.len(),
            EmitTo::First(n) => n.min(self.digests.len()),
        };
        for g in 0..n {
            self.merge_pending(g);
        }
        emit_to.take_needed(&mut self.pending);
        let taken = emit_to.take_needed(&mut self.digests);
        self.centroids -= taken.iter().map(|d| d.centroids().len()).sum::<usize>();
        taken
    }

    fn push(&mut self, g: usize, value: f64) {
        let values = &mut self.pending[g];
        values.push(order_key(value));
        self.pending_values += 1;
        if values.len() >= MERGE_VALUES {
            self.merge_pending(g);
        }
    }
}

/// An integer whose order is `f64::total_cmp`'s order of the floats: the sign bit set for
/// positive values, every bit flipped for negative ones.
fn order_key(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

fn from_order_key(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    })
}

/// The input (a float after the signature's coercion) as `Float64`.
fn float64(values: &ArrayRef) -> Result<ArrayRef> {
    match values.data_type() {
        DataType::Float64 => Ok(Arc::clone(values)),
        DataType::Float16 | DataType::Float32 => {
            Ok(arrow::compute::cast(values, &DataType::Float64)?)
        }
        other => exec_err!("approx_percentile_cont: unexpected input type {other}"),
    }
}

/// Rows of `values` to take: valid, and passing the filter when there is one.
fn selected(values: &dyn Array, filter: Option<&BooleanArray>, row: usize) -> bool {
    values.is_valid(row) && filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

impl GroupsAccumulator for PercentileGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let values = float64(&values[0])?;
        let values = values.as_primitive::<Float64Type>();
        let raw = values.values();
        if values.null_count() == 0 && opt_filter.is_none() {
            for (&g, &v) in group_indices.iter().zip(raw.iter()) {
                self.push(g, v);
            }
        } else {
            for (row, &g) in group_indices.iter().enumerate() {
                if selected(values, opt_filter, row) {
                    self.push(g, raw[row]);
                }
            }
        }
        if self.pending_values >= PENDING_VALUES {
            self.merge_all_pending();
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let answers: Float64Array = self
            .take_digests(emit_to)
            .iter()
            .map(|d| (d.count() > 0.0).then(|| d.estimate_quantile(self.percentile)))
            .collect();
        Ok(arrow::compute::cast(&answers, &self.return_type)?)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        state_of(&self.take_digests(emit_to))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let [max_size, sum, count, max, min, centroids] = values else {
            return exec_err!("approx_percentile_cont: {} state columns", values.len());
        };
        let max_size = max_size.as_primitive::<UInt64Type>();
        let [sum, count, max, min] =
            [sum, count, max, min].map(|a| a.as_primitive::<Float64Type>());
        let centroids = centroids.as_list::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            if max_size.is_null(row) || count.value(row) == 0.0 {
                continue;
            }
            let pairs = centroids.value(row);
            let pairs = pairs.as_primitive::<Float64Type>().values();
            let digest = TDigest::try_from_parts(
                max_size.value(row) as usize,
                sum.value(row),
                count.value(row),
                max.value(row),
                min.value(row),
                pairs
                    .chunks_exact(2)
                    .map(|p| Centroid::new(p[0], p[1]))
                    .collect(),
            )?;
            let merged = TDigest::merge_digests([&self.digests[g], &digest]);
            self.replace_digest(g, merged);
        }
        Ok(())
    }

    /// Each row as a group of its own: a digest of its value, or an empty one.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = float64(&values[0])?;
        let values = values.as_primitive::<Float64Type>();
        let digests: Vec<TDigest> = (0..values.len())
            .map(|row| {
                if selected(values, opt_filter, row) {
                    TDigest::new_with_centroid(self.max_size, Centroid::new(values.value(row), 1.0))
                } else {
                    TDigest::new(self.max_size)
                }
            })
            .collect();
        state_of(&digests)
    }

    /// Counted, not summed over the groups (it is asked after every batch): the digests and
    /// their centroids, the buffers and their values.
    fn size(&self) -> usize {
        self.digests.capacity() * size_of::<TDigest>()
            + self.centroids * size_of::<Centroid>()
            + self.pending.capacity() * size_of::<Vec<u64>>()
            + self.pending_values * size_of::<u64>()
            + self.sorted.capacity() * size_of::<f64>()
    }
}

/// The six state fields of DataFusion's `approx_percentile_cont` (see
/// [`TDigest::to_scalar_state`]), one row per digest.
fn state_of(digests: &[TDigest]) -> Result<Vec<ArrayRef>> {
    let column = |f: fn(&TDigest) -> f64| -> ArrayRef {
        Arc::new(
            digests
                .iter()
                .map(f)
                .collect::<PrimitiveArray<Float64Type>>(),
        )
    };
    let max_size: UInt64Array = digests.iter().map(|d| d.max_size() as u64).collect();
    let mut means_and_weights = Float64Builder::new();
    for d in digests {
        for c in d.centroids() {
            means_and_weights.append_value(c.mean());
            means_and_weights.append_value(c.weight());
        }
    }
    let offsets = OffsetBuffer::from_lengths(digests.iter().map(|d| 2 * d.centroids().len()));
    let centroids = ListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        offsets,
        Arc::new(means_and_weights.finish()),
        None,
    )?;
    Ok(vec![
        Arc::new(max_size),
        column(TDigest::sum),
        column(TDigest::count),
        column(TDigest::max),
        column(TDigest::min),
        Arc::new(centroids),
    ])
}

#[cfg(test)]
mod tests;

//! The groups accumulator against DataFusion's accumulator and exact percentiles.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::functions_aggregate::approx_percentile_cont::ApproxPercentileAccumulator;
use datafusion::prelude::SessionContext;

use super::*;

/// `n` values 1..=n in a scrambled but fixed order.
fn scrambled(n: u64) -> Vec<f64> {
    // 7919 is prime and does not divide n below: a permutation.
    (0..n).map(|i| ((i * 7919) % n + 1) as f64).collect()
}

fn answers(acc: &mut PercentileGroups, emit: EmitTo) -> Vec<Option<f64>> {
    let out = acc.evaluate(emit).unwrap();
    out.as_primitive::<Float64Type>().iter().collect()
}

fn update(acc: &mut PercentileGroups, groups: &[usize], values: Vec<Option<f64>>, total: usize) {
    let values: ArrayRef = Arc::new(Float64Array::from(values));
    acc.update_batch(&[values], groups, None, total).unwrap();
}

#[test]
fn one_merge_gives_datafusions_answer() {
    // Fewer values than MERGE_VALUES: one sort and one merge, as DataFusion's accumulator
    // does for one batch.
    let values = scrambled(1000);
    let mut ours = PercentileGroups::new(0.99, DEFAULT_MAX_SIZE, DataType::Float64);
    update(
        &mut ours,
        &vec![0; values.len()],
        values.iter().copied().map(Some).collect(),
        1,
    );
    let mut theirs = ApproxPercentileAccumulator::new(0.99, DataType::Float64);
    theirs
        .update_batch(&[Arc::new(Float64Array::from(values)) as ArrayRef])
        .unwrap();
    let ScalarValue::Float64(Some(expected)) = theirs.evaluate().unwrap() else {
        panic!("a value");
    };
    assert_eq!(answers(&mut ours, EmitTo::All), [Some(expected)]);
}

#[test]
fn interleaved_groups_come_out_near_their_exact_percentiles() {
    // Group 0: 1..=100000; group 1: 10 × that; group 2: nulls only; many batches of a few
    // rows of each, so that buffers are merged many times.
    let a = scrambled(100_000);
    let mut acc = PercentileGroups::new(0.99, DEFAULT_MAX_SIZE, DataType::Float64);
    for chunk in a.chunks(700) {
        let mut groups = Vec::new();
        let mut values = Vec::new();
        for &v in chunk {
            groups.extend([0, 1, 2]);
            values.extend([Some(v), Some(10.0 * v), None]);
        }
        update(&mut acc, &groups, values, 3);
    }
    let got = answers(&mut acc, EmitTo::All);
    let near = |got: Option<f64>, exact: f64| (got.unwrap() - exact).abs() / exact < 0.002;
    assert!(near(got[0], 99_000.0), "{got:?}");
    assert!(near(got[1], 990_000.0), "{got:?}");
    assert_eq!(got[2], None, "a group of nulls has no percentile");
}

#[test]
fn filtered_rows_are_left_out() {
    let mut acc = PercentileGroups::new(0.5, DEFAULT_MAX_SIZE, DataType::Float64);
    let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 1000.0, 3.0, 1000.0, 5.0]));
    let filter = BooleanArray::from(vec![Some(true), Some(false), Some(true), None, Some(true)]);
    acc.update_batch(&[values], &[0; 5], Some(&filter), 1)
        .unwrap();
    assert_eq!(answers(&mut acc, EmitTo::All), [Some(3.0)]);
}

#[test]
fn emitting_the_first_groups_shifts_the_rest() {
    let mut acc = PercentileGroups::new(1.0, DEFAULT_MAX_SIZE, DataType::Float64);
    update(
        &mut acc,
        &[0, 1, 2, 1],
        vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)],
        3,
    );
    assert_eq!(answers(&mut acc, EmitTo::First(1)), [Some(1.0)]);
    // Former groups 1 and 2 are now 0 and 1.
    update(&mut acc, &[1], vec![Some(30.0)], 2);
    assert_eq!(answers(&mut acc, EmitTo::All), [Some(4.0), Some(30.0)]);
}

#[test]
fn states_merge_into_the_whole() {
    let values = scrambled(20_000);
    let (left, right) = values.split_at(7_000);
    let state_of = |part: &[f64]| {
        let mut acc = PercentileGroups::new(0.9, DEFAULT_MAX_SIZE, DataType::Float64);
        // Group 1 stays empty: its state merges as nothing.
        update(
            &mut acc,
            &vec![0; part.len()],
            part.iter().copied().map(Some).collect(),
            2,
        );
        acc.state(EmitTo::All).unwrap()
    };
    let mut merged = PercentileGroups::new(0.9, DEFAULT_MAX_SIZE, DataType::Float64);
    for state in [state_of(left), state_of(right)] {
        assert_eq!(state.len(), 6);
        merged.merge_batch(&state, &[0, 1], 2).unwrap();
    }
    let got = answers(&mut merged, EmitTo::All);
    assert!((got[0].unwrap() - 18_000.0).abs() < 90.0, "{got:?}");
    assert_eq!(got[1], None);
    // The state reads back through DataFusion's own digest.
    let mut again = PercentileGroups::new(0.9, DEFAULT_MAX_SIZE, DataType::Float64);
    update(&mut again, &[0, 0], vec![Some(1.0), Some(2.0)], 1);
    let state = again.state(EmitTo::All).unwrap();
    let scalars: Vec<ScalarValue> = state
        .iter()
        .map(|c| ScalarValue::try_from_array(c, 0).unwrap())
        .collect();
    let digest = TDigest::from_scalar_state(&scalars);
    assert_eq!(
        (digest.count(), digest.min(), digest.max()),
        (2.0, 1.0, 2.0)
    );
}

#[test]
fn many_small_groups_do_not_keep_every_value() {
    let groups = 4_000;
    let per_group = PENDING_VALUES / groups + 10; // fewer than MERGE_VALUES each
    let mut acc = PercentileGroups::new(0.5, DEFAULT_MAX_SIZE, DataType::Float64);
    for round in 0..per_group {
        let values = (0..groups)
            .map(|g| Some((g * 1_000 + round) as f64))
            .collect();
        update(&mut acc, &(0..groups).collect::<Vec<_>>(), values, groups);
    }
    // Past PENDING_VALUES every buffer was merged: what is pending is the rounds since.
    assert!(acc.pending_values <= 10 * groups, "{}", acc.pending_values);
    let got = answers(&mut acc, EmitTo::All);
    for (g, answer) in got.iter().enumerate() {
        let median = (g * 1_000) as f64 + per_group as f64 / 2.0;
        assert!(
            (answer.unwrap() - median).abs() <= 2.0,
            "group {g}: {answer:?}"
        );
    }
}

/// A table of `(g, v, i)`: groups "a" (1..=n), "b" (v = 7) and "c" (null v), in four
/// partitions of batches of 1000 rows, `i` the integer value of `v`.
fn table(n: u64) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Utf8, false),
        Field::new("v", DataType::Float64, true),
        Field::new("i", DataType::Int64, true),
    ]));
    let mut rows: Vec<(&str, Option<f64>)> = Vec::new();
    for v in scrambled(n) {
        rows.extend([("a", Some(v)), ("b", Some(7.0)), ("c", None)]);
    }
    let batches: Vec<RecordBatch> = rows
        .chunks(1000)
        .map(|chunk| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| r.0))),
                    Arc::new(Float64Array::from_iter(chunk.iter().map(|r| r.1))),
                    Arc::new(Int64Array::from_iter(
                        chunk.iter().map(|r| r.1.map(|v| v as i64)),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    let partitions = batches
        .chunks(batches.len().div_ceil(4))
        .map(<[_]>::to_vec)
        .collect();
    MemTable::try_new(schema, partitions).unwrap()
}

async fn query(ours: bool, sql: &str) -> Vec<(String, Option<f64>)> {
    let ctx = SessionContext::new();
    if ours {
        ctx.register_udaf(ApproxPercentile::udaf());
    }
    ctx.register_table("t", Arc::new(table(50_000))).unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in batches {
        let g = b.column(0).as_string::<i32>();
        let p = arrow::compute::cast(b.column(1), &DataType::Float64).unwrap();
        let p = p.as_primitive::<Float64Type>();
        for row in 0..b.num_rows() {
            out.push((
                g.value(row).to_string(),
                p.is_valid(row).then(|| p.value(row)),
            ));
        }
    }
    out.sort_by(|x, y| x.0.cmp(&y.0));
    out
}

#[tokio::test]
async fn sql_answers_agree_with_datafusions() {
    for (sql, exact_a) in [
        (
            "SELECT g, approx_percentile_cont(v, 0.99) FROM t GROUP BY g",
            49_500.0,
        ),
        (
            "SELECT g, approx_percentile_cont(i, 0.5) FROM t GROUP BY g",
            25_000.0,
        ),
        (
            "SELECT g, approx_percentile_cont(v, 0.9, 200) FROM t GROUP BY g",
            45_000.0,
        ),
        (
            "SELECT g, approx_percentile_cont(0.01) WITHIN GROUP (ORDER BY v DESC) FROM t GROUP BY g",
            49_500.0,
        ),
        (
            "SELECT g, approx_percentile_cont(v, 0.5) FILTER (WHERE v < 10001) FROM t GROUP BY g",
            5_000.0,
        ),
    ] {
        let ours = query(true, sql).await;
        let theirs = query(false, sql).await;
        assert_eq!(ours.len(), 3, "{sql}: {ours:?}");
        for ((g, mine), (_, df)) in ours.iter().zip(&theirs) {
            match g.as_str() {
                "a" => {
                    let (mine, df) = (mine.unwrap(), df.unwrap());
                    assert!((mine - exact_a).abs() / exact_a < 0.005, "{sql}: {mine}");
                    // DataFusion's digest, merged batch by batch, strays further.
                    assert!(
                        (mine - df).abs() / exact_a < 0.01,
                        "{sql}: {mine} against {df}"
                    );
                }
                "b" => assert_eq!((*mine, *df), (Some(7.0), Some(7.0)), "{sql}"),
                _ => assert_eq!((*mine, *df), (None, None), "{sql}"),
            }
        }
    }
}

#[test]
fn rows_converted_to_state_merge_like_updates() {
    let mut acc = PercentileGroups::new(1.0, DEFAULT_MAX_SIZE, DataType::Float64);
    let values: ArrayRef = Arc::new(Float64Array::from(vec![
        Some(1.0),
        None,
        Some(3.0),
        Some(100.0),
    ]));
    let filter = BooleanArray::from(vec![true, true, true, false]);
    let state = acc.convert_to_state(&[values], Some(&filter)).unwrap();
    assert_eq!(state[2].len(), 4, "a state row per input row");
    acc.merge_batch(&state, &[0, 0, 0, 0], 1).unwrap();
    // The null and the filtered-out 100 are not in it.
    assert_eq!(answers(&mut acc, EmitTo::All), [Some(3.0)]);
}

#[test]
fn order_keys_sort_as_total_cmp_does() {
    let mut floats = vec![
        3.5,
        -0.0,
        0.0,
        -1e300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        1e-310,
        -2.0,
        f64::MIN_POSITIVE,
    ];
    let mut keys: Vec<u64> = floats.iter().map(|&v| order_key(v)).collect();
    keys.sort_unstable();
    floats.sort_by(f64::total_cmp);
    let back: Vec<u64> = keys.iter().map(|&k| from_order_key(k).to_bits()).collect();
    assert_eq!(back, floats.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
}

//! What splitting log lines into their template and fields costs, and rebuilding them: reads
//! a text file of log lines (one per line) and times `lines::split_column` and
//! `lines::rebuild` over all of them, best of `REPEATS` (default 5), printing JSON.
//!
//! ```text
//! cargo build --profile profiling -p strata-storage --example lines
//! target/profiling/examples/lines access.log [REPEATS]
//! ```

use std::time::Instant;

use arrow::array::{Array, StringArray};
use strata_storage::lines::{rebuild, split_column};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: lines FILE [REPEATS]");
    let repeats: usize = args.next().map_or(5, |r| r.parse().expect("REPEATS"));
    let text = std::fs::read_to_string(&path).expect("a UTF-8 text file");
    let bodies = StringArray::from_iter_values(text.lines().collect::<Vec<_>>());
    let rows = bodies.len();
    let mut split_ns = f64::MAX;
    let mut rebuild_ns = f64::MAX;
    let mut whole = 0;
    for _ in 0..repeats {
        let start = Instant::now();
        let split = split_column(&bodies);
        split_ns = split_ns.min(start.elapsed().as_nanos() as f64 / rows as f64);
        let columns: Vec<&dyn Array> = split.columns.iter().map(|c| c.as_ref()).collect();
        let start = Instant::now();
        let lines = rebuild(split.body.as_ref(), &columns).expect("rebuilds");
        rebuild_ns = rebuild_ns.min(start.elapsed().as_nanos() as f64 / rows as f64);
        assert_eq!(lines, bodies, "every line rebuilt");
        whole = rows - split.body.null_count();
    }
    println!(
        "{{\"lines\": {rows}, \"bytes_per_line\": {:.1}, \"kept_whole\": {whole}, \"split_ns_per_line\": {split_ns:.0}, \"rebuild_ns_per_line\": {rebuild_ns:.0}}}",
        bodies.value_data().len() as f64 / rows as f64
    );
}

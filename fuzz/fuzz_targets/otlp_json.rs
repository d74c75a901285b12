//! OTLP/JSON bodies (`application/json`): the decoder of `strata_proto::json` for the
//! signal, then the conversion to Arrow. The first byte picks the signal (0 traces, 1 logs,
//! 2 metrics, by its value mod 3); the rest is the body. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_fuzz::convert_and_check;
use strata_ingest::{Logs, Metrics, OtlpSignal, Traces};

fn run<S: OtlpSignal>(body: &[u8]) {
    // The receiver's own entry point (`OtlpSignal::decode_json` calls
    // `strata_proto::json::decode_{traces,logs,metrics}`).
    if let Ok(request) = S::decode_json(body) {
        convert_and_check::<S>(&request);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => run::<Traces>(body),
        1 => run::<Logs>(body),
        _ => run::<Metrics>(body),
    }
});

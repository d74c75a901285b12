//! OTLP protobuf bodies (gRPC and `application/x-protobuf`): prost decode of the export
//! request, then the conversion to Arrow. The first byte picks the signal (0 traces,
//! 1 logs, 2 metrics, by its value mod 3); the rest is the body. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use strata_fuzz::convert_and_check;
use strata_ingest::{Logs, Metrics, OtlpSignal, Traces};

fn run<S: OtlpSignal>(body: &[u8]) {
    if let Ok(request) = S::Request::decode(body) {
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

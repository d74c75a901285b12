//! OTLP protobuf bodies (gRPC and `application/x-protobuf`): the receivers' decoding and
//! conversion (`OtlpSignal::convert_protobuf`; for traces, logs, gauges and sums the fast
//! path that reads the bytes directly, with prost behind it) against prost's decode of the
//! export request and the conversion of the decoded request. The first byte picks the
//! signal (0 traces, 1 logs, 2 metrics, by its value mod 3); the rest is the body. Must
//! never panic, and the two must agree: the same rows, or both an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use strata_fuzz::{RECEIVED_NS, convert_and_check};
use strata_ingest::{Logs, Metrics, OtlpSignal, Traces};

fn run<S: OtlpSignal>(body: &[u8]) {
    let received = S::convert_protobuf(body, RECEIVED_NS);
    match S::Request::decode(body) {
        Ok(request) => {
            convert_and_check::<S>(&request);
            let decoded = S::convert(&request, RECEIVED_NS);
            assert_eq!(
                received.ok(),
                Some(decoded),
                "not the rows of the decoded request"
            );
        }
        Err(_) => assert!(received.is_err(), "accepted a body prost refuses"),
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

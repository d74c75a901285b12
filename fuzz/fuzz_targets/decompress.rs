//! Request-body decompression of the HTTP receiver (`strata_ingest::http::gunzip`, gzip
//! with its members concatenated, bounded by the body limit). The first two bytes choose
//! the limit (0..=65535 bytes, so "exactly at the limit" and "over it" are both reached);
//! the rest is the compressed body. Checks: never panics, never returns more than the limit,
//! and agrees with an independent unbounded decoder on what fits.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use strata_ingest::IngestError;
use strata_ingest::http::gunzip;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limit = u16::from_le_bytes([data[0], data[1]]) as usize;
    let body = &data[2..];
    let result = gunzip(body, limit);
    // Reference: the same decoder with a cap far above the limit (bounded so a bomb in the
    // input cannot exhaust memory here either).
    let mut reference = Vec::new();
    let reference_ok = flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut reference)
        .is_ok();
    match result {
        Ok(out) => {
            assert!(out.len() <= limit, "{} bytes out, limit {limit}", out.len());
            assert!(reference_ok, "accepted what the decoder refuses");
            assert_eq!(
                out.as_ref(),
                &reference[..],
                "output differs from the decoder's"
            );
        }
        Err(IngestError::TooLarge { limit: reported }) => {
            assert_eq!(reported, limit);
            assert!(reference.len() > limit, "refused as too large but fits");
        }
        Err(IngestError::Decode(_)) => {}
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
});

//! # strata-fuzz
//!
//! Shared by the fuzz targets in `fuzz_targets/` (one file each, see docs/FUZZING.md): the
//! step every OTLP target ends with, a decoded request through the ingest conversion the
//! way the receivers run it (`OtlpSignal::convert`), with the invariants the storage layer
//! relies on checked.

use arrow::array::Array;
use strata_ingest::OtlpSignal;
use strata_storage::schema::buffer_schema_for;

/// A fixed "received at" time (2024-01-01T00:00:00Z): runs are reproducible.
pub const RECEIVED_NS: i64 = 1_704_067_200_000_000_000;

/// Converts a decoded request as the receivers do, then checks what came out: rows only
/// when items were accepted, one row per accepted item, the write buffer's schema, valid
/// Arrow data (the resource maps put back on every row too), and a response that encodes.
pub fn convert_and_check<S: OtlpSignal>(request: &S::Request) {
    let converted = S::convert(request, RECEIVED_NS);
    match &converted.batch {
        None => assert_eq!(converted.accepted, 0, "items accepted but no rows"),
        Some(batch) => {
            assert!(converted.accepted > 0, "a batch with no accepted items");
            assert_eq!(batch.num_rows() as u64, converted.accepted);
            assert_eq!(
                batch.schema(),
                buffer_schema_for(S::SIGNAL),
                "not the write buffer's schema"
            );
            let table = strata_storage::resources::to_table(batch).expect("resources taken");
            for column in batch.columns().iter().chain(table.columns()) {
                column
                    .to_data()
                    .validate_full()
                    .expect("invalid Arrow data");
            }
        }
    }
    assert_eq!(
        converted.rejected.count == 0,
        converted.rejected.first_reason.is_none(),
        "rejections without a reason or a reason without rejections"
    );
    let response = S::response(&converted.rejected);
    let _ = prost::Message::encode_to_vec(&response);
    let json = S::encode_json(&response);
    assert!(
        std::str::from_utf8(&json).is_ok(),
        "response JSON is not UTF-8"
    );
}

//! Tenant-id validation: the receivers' entry point (`Ingestor::tenant`, raw header bytes)
//! and `TenantId::new`. Any accepted id must be a safe object-store path segment: not
//! empty, not `.` or `..`, no `/`, `\`, whitespace or control characters, at most 150
//! bytes, and its object path must parse back to the same segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_ingest::Ingestor;
use strata_storage::parquet_file::object_path;
use strata_storage::{Signal, TenantId};

fn check_accepted(id: &TenantId) {
    let s = id.as_str();
    assert!(!s.is_empty());
    assert!(
        s.len() <= strata_storage::MAX_TENANT_LEN,
        "{} bytes",
        s.len()
    );
    assert!(s != "." && s != "..");
    assert!(
        !s.chars()
            .any(|c| c == '/' || c == '\\' || c.is_whitespace() || c.is_control()),
        "{s:?}"
    );
    // The id is one segment of the file path, and the path stays under `tenant={id}/`.
    let path = object_path(s, Signal::Spans, 0, "0190f000-0000-7000-8000-000000000000");
    let segments: Vec<&str> = path.split('/').collect();
    assert_eq!(segments.len(), 5, "{path:?}");
    assert_eq!(segments[0], format!("tenant={s}"));
    let parsed = object_store::path::Path::parse(&path)
        .unwrap_or_else(|e| panic!("{path:?} is not a valid object path: {e}"));
    assert_eq!(parsed.as_ref(), path, "object path changed on parsing");
    let first = parsed.parts().next().expect("a first segment");
    assert_eq!(first.as_ref(), segments[0]);
    // Labels and logs print it unchanged.
    assert_eq!(id.to_string(), s);
}

fuzz_target!(|data: &[u8]| {
    match Ingestor::tenant(Some(data)) {
        Ok(id) => {
            check_accepted(&id);
            assert_eq!(
                id.as_str().as_bytes(),
                data,
                "accepted id differs from the header"
            );
        }
        Err(_) => {}
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let direct = TenantId::new(text);
        assert_eq!(direct.is_ok(), Ingestor::tenant(Some(data)).is_ok());
        if let Ok(id) = direct {
            check_accepted(&id);
        }
    }
});

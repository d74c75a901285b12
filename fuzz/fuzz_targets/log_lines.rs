//! Log lines stored by field (`strata_storage::lines`): the input, split at newlines, is a
//! column of log bodies. Every line must be rebuilt byte for byte from the file layout, a
//! split line's template must hold one marker per field, and a line is kept whole exactly
//! when it is not split.
#![no_main]

use arrow::array::{Array, StringArray};
use libfuzzer_sys::fuzz_target;
use strata_storage::lines::{FIELDS, rebuild, split_column};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<Option<&str>> = text
        .split('\n')
        .map(|l| (l != "\u{0}").then_some(l))
        .collect();
    let bodies = StringArray::from(lines.clone());
    let split = split_column(&bodies);
    assert_eq!(split.columns.len(), 1 + 2 * FIELDS);
    let columns: Vec<&dyn Array> = split.columns.iter().map(|c| c.as_ref()).collect();
    let rebuilt = rebuild(split.body.as_ref(), &columns).expect("a split column rebuilds");
    let templates = split.columns[0]
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("templates are strings");
    for (row, line) in lines.iter().enumerate() {
        assert_eq!(
            rebuilt.is_valid(row).then(|| rebuilt.value(row)),
            *line,
            "row {row}"
        );
        // Kept whole (or null) exactly when not split.
        assert_eq!(split.body.is_valid(row), line.is_some() && templates.is_null(row));
        if templates.is_valid(row) {
            let markers = templates
                .value(row)
                .bytes()
                .filter(|b| (0x10..=0x1b).contains(b))
                .count();
            assert!((1..=FIELDS).contains(&markers), "{markers} fields");
        }
    }
});

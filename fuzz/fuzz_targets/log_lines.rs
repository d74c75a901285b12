//! Log lines stored by field (`strata_storage::lines`): the input, split at newlines, is a
//! column of log bodies. Every line must be rebuilt byte for byte from the file layout, a
//! split line's template must hold one marker per field, and a line is kept whole exactly
//! when it is not split. A search for a term no number renders (the last line's bytes outside
//! digits, `.` and `-`) must answer as the whole line does.
#![no_main]

use arrow::array::{Array, StringArray};
use libfuzzer_sys::fuzz_target;
use strata_storage::lines::{FIELDS, contains, rebuild, searchable_without_numbers, split_column};

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
    let term: String = lines
        .last()
        .copied()
        .flatten()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_ascii_digit() && !matches!(c, '.' | '-'))
        .take(8)
        .collect();
    let found = searchable_without_numbers(&term).then(|| {
        let texts: Vec<&dyn Array> = (0..FIELDS).map(|k| columns[1 + 2 * k]).collect();
        contains(&term, split.body.as_ref(), columns[0], &texts)
            .expect("a split column is searched")
    });
    for (row, line) in lines.iter().enumerate() {
        if let Some(found) = &found {
            assert_eq!(
                found.is_valid(row).then(|| found.value(row)),
                line.map(|l| l.contains(term.as_str())),
                "row {row}, term {term:?}"
            );
        }
        assert_eq!(
            rebuilt.is_valid(row).then(|| rebuilt.value(row)),
            *line,
            "row {row}"
        );
        // Kept whole (or null) exactly when not split.
        assert_eq!(
            split.body.is_valid(row),
            line.is_some() && templates.is_null(row)
        );
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

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};

use super::*;

const NGINX: &str = "10.1.2.3 - - [05/Jan/2026:10:00:00 +0000] \"GET /api/items/42 HTTP/1.1\" 200 5123 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" rt=0.012";

fn split_one(line: &str) -> Option<(String, Vec<Found>)> {
    let mut template = String::new();
    let mut fields = Vec::new();
    split(line, &mut template, &mut fields).then_some((template, fields))
}

/// Splits `lines` into the file's columns and rebuilds them.
fn round_trip(lines: &[Option<&str>]) -> Vec<Option<String>> {
    let split = split_column(&StringArray::from(lines.to_vec()));
    let columns: Vec<&dyn Array> = split.columns.iter().map(|c| c.as_ref()).collect();
    let rebuilt = rebuild(split.body.as_ref(), &columns).unwrap();
    rebuilt.iter().map(|l| l.map(str::to_string)).collect()
}

fn owned(lines: &[Option<&str>]) -> Vec<Option<String>> {
    lines.iter().map(|l| l.map(str::to_string)).collect()
}

#[test]
fn an_access_log_line_is_its_template_and_typed_fields() {
    let (template, fields) = split_one(NGINX).unwrap();
    assert_eq!(
        template,
        "\u{12} - - [\u{10}] \"\u{10}\" \u{11} \u{11} \"-\" \"\u{10}\" rt=\u{15}"
    );
    let values: Vec<(u8, &str, i64)> = fields
        .iter()
        .map(|f| (f.marker, &NGINX[f.text.clone()], f.number))
        .collect();
    assert_eq!(
        values,
        vec![
            (IPV4, "10.1.2.3", 0x0a01_0203),
            (TEXT, "05/Jan/2026:10:00:00 +0000", 0),
            (TEXT, "GET /api/items/42 HTTP/1.1", 0),
            (INTEGER, "200", 200),
            (INTEGER, "5123", 5123),
            (TEXT, "Mozilla/5.0 (X11; Linux x86_64)", 0),
            (DECIMAL + 3, "0.012", 12),
        ]
    );
    assert_eq!(round_trip(&[Some(NGINX)]), owned(&[Some(NGINX)]));
}

#[test]
fn words_without_digits_stay_in_the_template() {
    let line = "user u17 placed order ord_00ab for 12.50 EUR";
    let (template, fields) = split_one(line).unwrap();
    assert_eq!(template, "user \u{10} placed order \u{10} for \u{14} EUR");
    assert_eq!(fields.len(), 3);
    // A key's digits do not make its value a field; a value's do.
    let (template, fields) = split_one("k1=abc k2=a5 x=\"3 apples\"").unwrap();
    assert_eq!(template, "k1=abc k2=\u{10} x=\"\u{10}\"");
    assert_eq!(fields.len(), 2);
    // A line of words alone has no fields: it is stored whole.
    assert!(split_one("connection closed by peer").is_none());
}

#[test]
fn numbers_are_stored_as_numbers_only_when_they_render_back() {
    for (text, marker, number) in [
        ("0", INTEGER, 0),
        ("-17", INTEGER, -17),
        ("123456789012345678", INTEGER, 123_456_789_012_345_678),
        ("0.5", DECIMAL + 1, 5),
        ("-3.250", DECIMAL + 3, -3250),
        ("1.000000001", DECIMAL + 9, 1_000_000_001),
        ("255.255.255.255", IPV4, 0xffff_ffff),
        ("0.0.0.0", IPV4, 0),
    ] {
        assert_eq!(classify(text), (marker, number), "{text}");
        let mut out = String::new();
        render(marker, number, &mut out).unwrap();
        assert_eq!(out, text);
    }
    for text in [
        "007",
        "-0",
        "-0.00",
        "+5",
        "1234567890123456789",
        "1.0000000001",
        "1.",
        ".5",
        "1e5",
        "01.2.3.4",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "--1",
        "1-2",
        "٣",
    ] {
        assert_eq!(classify(text).0, TEXT, "{text}");
    }
}

#[test]
fn every_line_is_rebuilt_byte_for_byte() {
    let long = (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
    let lines = [
        Some(NGINX),
        None,
        Some(""),
        Some("   "),
        Some("  leading and trailing 12  "),
        Some("two  spaces  9  between"),
        Some("tab\tseparated\t42\tfields"),
        Some("unclosed \"quote 12 and [bracket 7"),
        Some("\"\" [] \"1\" [2]"),
        Some("key= =1 a=b=3 k=\"quoted 5 value\" k2=\"open 6"),
        Some("naïve café 3€ 日本 42 ok"),
        Some("marker \u{10} byte 1"),
        Some("escape \u{1b}[31m red 1 \u{1b}[0m"),
        Some(long.as_str()),
        Some("-0 -0.00 007 +5 1.2.3.4.5 256.1.1.1 9223372036854775807"),
        Some("{\"json\":true,\"n\":12,\"s\":\"a b\"}"),
    ];
    assert_eq!(round_trip(&lines), owned(&lines));
    // The line of more than FIELDS fields and the one with a marker byte are stored whole.
    assert!(split_one(&long).is_none());
    assert!(split_one("marker \u{10} byte 1").is_none());
}

/// Strings drawn deterministically (xorshift) from an alphabet.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A string of fewer than `len` characters of `alphabet`.
    fn string(&mut self, len: u64, alphabet: &[char]) -> String {
        let len = (self.next() % len) as usize;
        (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect()
    }
}

/// The text columns of a split column.
fn texts(split: &Split) -> Vec<&dyn Array> {
    (0..FIELDS)
        .map(|k| split.columns[1 + 2 * k].as_ref())
        .collect()
}

#[test]
fn generated_lines_round_trip() {
    // Lines drawn from the bytes that steer the splitter, deterministically.
    let alphabet: Vec<char> = " \"[]=.-0123456789aZé\t".chars().collect();
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    let lines: Vec<String> = (0..5_000).map(|_| draw.string(40, &alphabet)).collect();
    let refs: Vec<Option<&str>> = lines.iter().map(|l| Some(l.as_str())).collect();
    assert_eq!(round_trip(&refs), owned(&refs));
}

#[test]
fn a_batch_round_trips_through_the_file_layout() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("time", DataType::Int64, false),
        Field::new(BODY, DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![
                Some(NGINX),
                None,
                Some("no fields"),
            ])),
        ],
    )
    .unwrap();
    let file = to_file(&batch).unwrap();
    assert_eq!(file.schema(), file_schema_of(&schema));
    assert_eq!(file.num_columns(), 2 + 1 + 2 * FIELDS);
    // The access log line is split; the null and the line of words are kept in `body`.
    let body = file.column_by_name(BODY).unwrap().as_string::<i32>();
    assert!(body.is_null(0));
    assert!(body.is_null(1));
    assert_eq!(body.value(2), "no fields");
    let templates = file
        .column_by_name(TEMPLATE_COLUMN)
        .unwrap()
        .as_string::<i32>();
    assert_eq!(templates.value(0).matches('\u{10}').count(), 3);
    assert!(templates.is_null(1));
    assert!(templates.is_null(2));
    // Already split: unchanged.
    assert_eq!(to_file(&file).unwrap(), file);
    let back = materialise(&file).unwrap();
    assert_eq!(back, batch);
    assert_eq!(back.schema(), schema);
}

#[test]
fn hostile_line_columns_are_errors() {
    let columns = |template: &str, text: Option<&str>, number: Option<i64>| -> Vec<ArrayRef> {
        let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![template]))];
        for k in 0..FIELDS {
            columns.push(Arc::new(StringArray::from(vec![if k == 0 {
                text
            } else {
                None
            }])));
            columns.push(Arc::new(Int64Array::from(vec![if k == 0 {
                number
            } else {
                None
            }])));
        }
        columns
    };
    let body = StringArray::from(vec![None::<&str>]);
    let check = |columns: Vec<ArrayRef>| {
        let refs: Vec<&dyn Array> = columns.iter().map(|c| c.as_ref()).collect();
        rebuild(&body, &refs)
    };
    // Good: one text field.
    assert_eq!(
        check(columns("a \u{10} b", Some("x"), None))
            .unwrap()
            .value(0),
        "a x b"
    );
    // A marker whose field is null, an IPv4 number out of range, an unknown marker kind is
    // impossible (every marker byte has a kind), too many markers, too few columns.
    assert!(check(columns("a \u{10}", None, Some(1))).is_err());
    assert!(check(columns("\u{11}", Some("x"), None)).is_err());
    assert!(check(columns("\u{12}", None, Some(1 << 40))).is_err());
    assert!(check(columns("\u{12}", None, Some(-1))).is_err());
    assert!(check(columns(&"\u{10}".repeat(FIELDS + 1), Some("x"), None)).is_err());
    let mut short = columns("x", None, None);
    short.pop();
    assert!(check(short).is_err());
    // A number column of another type.
    let mut wrong = columns("\u{11}", None, Some(1));
    wrong[2] = Arc::new(StringArray::from(vec!["1"]));
    assert!(check(wrong).is_err());
}

/// Whether each line of `lines` contains `term`, by [`contains`] over their split columns.
fn contains_split(term: &str, lines: &[Option<&str>]) -> Vec<Option<bool>> {
    let split = split_column(&StringArray::from(lines.to_vec()));
    contains(
        term,
        split.body.as_ref(),
        split.columns[0].as_ref(),
        &texts(&split),
    )
    .unwrap()
    .iter()
    .collect()
}

#[test]
fn a_term_is_found_as_in_the_whole_line() {
    let app = "Request to cart.shop.svc timed out after 24ms (attempt 3/3)";
    let lines = [
        Some(NGINX),
        Some(app),
        None,
        Some("no fields at all"),
        Some("k=\"quoted 5 value\" tail"),
        Some("[bracket 7 inside] after"),
        Some("x1y x2y z"),
        Some("split Moz 3illa"),
    ];
    let expect = |term: &str| -> Vec<Option<bool>> {
        lines.iter().map(|l| l.map(|l| l.contains(term))).collect()
    };
    for term in [
        "timed out",
        "Mozilla",
        "GET /api/items/",
        "HTTP/",
        " tail",
        "value\" t",
        "inside] af",
        "y x",
        "fields",
        "Moz",
        "",
        "absent",
        "é",
    ] {
        assert!(searchable_without_numbers(term), "{term}");
        assert_eq!(contains_split(term, &lines), expect(term), "{term:?}");
    }
    // Terms a number field could render are not searched this way.
    for term in ["200", "a.b", "-", "1", "\u{11}"] {
        assert!(!searchable_without_numbers(term), "{term}");
        let split = split_column(&StringArray::from(vec![Some(app)]));
        let texts = texts(&split);
        assert!(contains(term, split.body.as_ref(), split.columns[0].as_ref(), &texts).is_err());
    }
}

#[test]
fn generated_lines_answer_a_search_as_their_text() {
    let alphabet: Vec<char> = " \"[]=.-0123456789abé\t".chars().collect();
    let mut draw = Draw(0x2545_f491_4f6c_dd1d);
    let lines: Vec<String> = (0..5_000).map(|_| draw.string(40, &alphabet)).collect();
    let refs: Vec<Option<&str>> = lines.iter().map(|l| Some(l.as_str())).collect();
    // Terms of the bytes a number never renders, so that they span templates and text.
    let term_alphabet: Vec<char> = " \"[]=abé\t".chars().collect();
    let mut found = 0;
    for _ in 0..200 {
        let term = draw.string(4, &term_alphabet);
        let answers = contains_split(&term, &refs);
        for (line, answer) in lines.iter().zip(answers) {
            assert_eq!(answer, Some(line.contains(&term)), "{term:?} in {line:?}");
            found += usize::from(answer == Some(true));
        }
    }
    assert!(found > 0);
}

#[test]
fn hostile_columns_are_errors_to_a_search() {
    let body = StringArray::from(vec![None::<&str>]);
    let null_texts: Vec<ArrayRef> = (0..FIELDS)
        .map(|_| Arc::new(StringArray::from(vec![None::<&str>])) as ArrayRef)
        .collect();
    let texts: Vec<&dyn Array> = null_texts.iter().map(|c| c.as_ref()).collect();
    let search = |template: &str, texts: &[&dyn Array]| {
        contains("x", &body, &StringArray::from(vec![template]), texts)
    };
    // A text marker whose field is null; too many markers; too few columns; a template of
    // another type.
    assert!(search("a \u{10}", &texts).is_err());
    assert!(search(&("\u{11}".repeat(FIELDS) + "\u{10}"), &texts).is_err());
    assert!(search("a", &texts[1..]).is_err());
    assert!(contains("x", &body, &Int64Array::from(vec![1]), &texts).is_err());
    // A template with only number markers needs no field to answer.
    assert!(search("a \u{11} x", &texts).unwrap().value(0));
    assert!(!search("a \u{11}", &texts).unwrap().value(0));
}

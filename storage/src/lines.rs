//! Log lines stored by field.
//!
//! Most log bodies are lines of fields that vary around text that does not: an access log's
//! address, time, request, status and sizes; an application's ids and amounts between the
//! words of its message. Written as one string per row, each line's fields are compressed
//! only as well as a general-purpose compressor finds them again in the text.
//!
//! A logs file therefore stores a line as its *template* — the line with each field replaced
//! by a one-byte marker of the field's kind — in `body_template`, and the fields, by their
//! position in the line, in `body_text_{k}` (text) or `body_number_{k}` (integers, IPv4
//! addresses and decimals, as `Int64`). Lines that share a template (an access log's share
//! one or two) then cost a dictionary index, and each field position is a column of one
//! kind of value. `body` keeps the lines stored whole and is null where a line is split.
//!
//! A field is a space-separated token, the content of a `"…"` or `[…]` token, or the value
//! of a `key=value` token, that contains a digit: words without one stay in the template.
//! A number is stored as one only when it renders back to the same text (no leading zeros,
//! no `+`, at most 18 digits), so the line is rebuilt byte for byte. A line with more than
//! [`FIELDS`] fields, without any, or with a byte used as a marker (`0x10..=0x1B`), is stored
//! whole.
//!
//! Readers put the line back ([`rebuild`], [`materialise`] and the query layer's expression
//! adapter), so the `logs` table is unchanged; the write buffer keeps `body` as it came.
//! Files written before this layout have no `body_template` and are read as they are.

use std::ops::Range;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Int64Array, Int64Builder, RecordBatch,
    RecordBatchOptions, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, Schema, SchemaRef};

use crate::{Error, Result};

/// The table column stored by field.
pub const BODY: &str = "body";
/// A split line's template: the line with a marker in place of each field.
pub const TEMPLATE_COLUMN: &str = "body_template";
/// The most fields a line is split into; a line with more is stored whole.
pub const FIELDS: usize = 12;

/// Marker of a text field.
const TEXT: u8 = 0x10;
/// Marker of an integer field.
const INTEGER: u8 = 0x11;
/// Marker of an IPv4 address field (its 32 bits, big-endian, as the number).
const IPV4: u8 = 0x12;
/// Marker of a decimal with `s` digits after the point is `DECIMAL + s` (`s` in 1..=9); the
/// number is the digits without the point.
const DECIMAL: u8 = 0x12;
/// Most digits after a decimal point.
const MAX_SCALE: usize = 9;
/// Most digits of an integer or of a decimal's mantissa (fits an `i64`).
const MAX_DIGITS: usize = 18;

fn is_marker(b: u8) -> bool {
    b.wrapping_sub(TEXT) <= DECIMAL + MAX_SCALE as u8 - TEXT
}

/// The text column of field `k` (`body_text_{k}`).
pub fn text_column(k: usize) -> &'static str {
    static NAMES: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..FIELDS).map(|k| format!("body_text_{k}")).collect());
    &NAMES[k]
}

/// The number column of field `k` (`body_number_{k}`).
pub fn number_column(k: usize) -> &'static str {
    static NAMES: LazyLock<Vec<String>> =
        LazyLock::new(|| (0..FIELDS).map(|k| format!("body_number_{k}")).collect());
    &NAMES[k]
}

/// The columns a logs file holds after the table's: the template, then each position's text
/// and number.
pub fn line_fields() -> &'static [FieldRef] {
    static FIELDS_OF_A_FILE: LazyLock<Vec<FieldRef>> = LazyLock::new(|| {
        let mut fields = vec![Arc::new(Field::new(TEMPLATE_COLUMN, DataType::Utf8, true))];
        for k in 0..FIELDS {
            fields.push(Arc::new(Field::new(text_column(k), DataType::Utf8, true)));
            fields.push(Arc::new(Field::new(
                number_column(k),
                DataType::Int64,
                true,
            )));
        }
        fields
    });
    &FIELDS_OF_A_FILE
}

/// Whether `name` is one of the columns [`line_fields`] adds.
pub fn is_line_column(name: &str) -> bool {
    line_fields().iter().any(|f| f.name() == name)
}

/// `schema` with the line columns after its own, if it has a `body` and not yet them.
pub fn file_schema_of(schema: &SchemaRef) -> SchemaRef {
    if schema.index_of(BODY).is_err() || schema.index_of(TEMPLATE_COLUMN).is_ok() {
        return schema.clone();
    }
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    fields.extend(line_fields().iter().cloned());
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` without the line columns.
pub fn table_schema_of(schema: &SchemaRef) -> SchemaRef {
    if schema.index_of(TEMPLATE_COLUMN).is_err() {
        return schema.clone();
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .filter(|f| !is_line_column(f.name()))
        .cloned()
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// One field of a line: where its text is, and its marker and number.
#[derive(Clone, Debug, PartialEq)]
struct Found {
    marker: u8,
    text: Range<usize>,
    number: i64,
}

/// Splits `line` into `template` and `fields`; false if it is to be stored whole.
fn split(line: &str, template: &mut String, fields: &mut Vec<Found>) -> bool {
    template.clear();
    fields.clear();
    let b = line.as_bytes();
    // Without an early exit per byte, so that the check runs a vector at a time.
    if b.chunks(64)
        .any(|chunk| chunk.iter().fold(false, |seen, &c| seen | is_marker(c)))
    {
        return false;
    }
    // The template is the line with each field's text replaced by its marker; `copied` is
    // how far the line has been copied into it. A range with a digit is a field.
    let mut copied = 0;
    let mut field = |text: Range<usize>, template: &mut String, fields: &mut Vec<Found>| {
        if fields.len() == FIELDS {
            return false;
        }
        let (marker, number) = classify(&line[text.clone()]);
        template.push_str(&line[copied..text.start]);
        template.push(marker as char);
        copied = text.end;
        fields.push(Found {
            marker,
            text,
            number,
        });
        true
    };
    let has_digit = |r: Range<usize>| b[r].iter().any(u8::is_ascii_digit);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        // A quoted or bracketed token runs to its closing byte, spaces and all.
        let close = match b[i] {
            b'"' => Some(b'"'),
            b'[' => Some(b']'),
            _ => None,
        };
        if let Some(close) = close
            && let Some(p) = memchr::memchr(close, &b[i + 1..])
        {
            let text = i + 1..i + 1 + p;
            if has_digit(text.clone()) && !field(text, template, fields) {
                return false;
            }
            i += p + 2;
            continue;
        }
        // One pass over the token: its end, its first `=` and its last digit.
        let mut end = i;
        let mut equals = None;
        let mut last_digit = None;
        while end < b.len() && b[end] != b' ' {
            match b[end] {
                b'=' if equals.is_none() && end > i => equals = Some(end),
                c if c.is_ascii_digit() => last_digit = Some(end),
                _ => {}
            }
            end += 1;
        }
        // `key=value`: the value is the field (quoted, it runs to its closing quote).
        let value = equals.map_or(i, |p| p + 1);
        if value > i
            && b.get(value) == Some(&b'"')
            && let Some(p) = memchr::memchr(b'"', &b[value + 1..])
        {
            let text = value + 1..value + 1 + p;
            if has_digit(text.clone()) && !field(text, template, fields) {
                return false;
            }
            i = value + p + 2;
            continue;
        }
        if last_digit.is_some_and(|d| d >= value) && !field(value..end, template, fields) {
            return false;
        }
        i = end;
    }
    template.push_str(&line[copied..]);
    // A line without fields is its own template: stored whole, it keeps the template
    // column's dictionary to the lines that share one.
    !fields.is_empty()
}

/// A field's marker and number (0 for text).
fn classify(s: &str) -> (u8, i64) {
    // Only digits, points and a minus make a number or an address: most text fails at once.
    let mut points = 0;
    for &c in s.as_bytes() {
        match c {
            b'0'..=b'9' | b'-' => {}
            b'.' => points += 1,
            _ => return (TEXT, 0),
        }
    }
    if points == 3
        && let Some(address) = ipv4(s)
    {
        return (IPV4, address);
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let canonical = |d: &str| {
        !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()) && (d == "0" || !d.starts_with('0'))
    };
    if !canonical(whole) {
        return (TEXT, 0);
    }
    let (scale, fraction) = match fraction {
        None => (0, ""),
        Some(f) if (1..=MAX_SCALE).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
            (f.len(), f)
        }
        Some(_) => return (TEXT, 0),
    };
    if whole.len() + fraction.len() > MAX_DIGITS {
        return (TEXT, 0);
    }
    let mut number: i64 = 0;
    for c in whole.bytes().chain(fraction.bytes()) {
        number = number * 10 + i64::from(c - b'0');
    }
    // "-0" and "-0.00" would render without their sign.
    if negative && number == 0 {
        return (TEXT, 0);
    }
    let number = if negative { -number } else { number };
    match scale {
        0 => (INTEGER, number),
        s => (DECIMAL + s as u8, number),
    }
}

/// A dotted-quad IPv4 address without leading zeros, as its 32 bits.
fn ipv4(s: &str) -> Option<i64> {
    let mut address: i64 = 0;
    let mut parts = 0;
    for part in s.split('.') {
        if part.is_empty()
            || part.len() > 3
            || !part.bytes().all(|c| c.is_ascii_digit())
            || (part.len() > 1 && part.starts_with('0'))
        {
            return None;
        }
        let octet: i64 = part.parse().ok()?;
        if octet > 255 {
            return None;
        }
        address = address << 8 | octet;
        parts += 1;
    }
    (parts == 4).then_some(address)
}

/// Appends a numeric field's text to `out`.
fn render(marker: u8, number: i64, out: &mut String) -> Result<()> {
    match marker {
        INTEGER => {
            if number < 0 {
                out.push('-');
            }
            push_digits(number.unsigned_abs(), 1, out);
        }
        IPV4 if (0..=u32::MAX as i64).contains(&number) => {
            for (i, octet) in (number as u32).to_be_bytes().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_digits(u64::from(octet), 1, out);
            }
        }
        m if m > DECIMAL && m <= DECIMAL + MAX_SCALE as u8 => {
            let scale = u32::from(m - DECIMAL);
            let unit = 10u64.pow(scale);
            let magnitude = number.unsigned_abs();
            if number < 0 {
                out.push('-');
            }
            push_digits(magnitude / unit, 1, out);
            out.push('.');
            push_digits(magnitude % unit, scale as usize, out);
        }
        _ => return Err(corrupt(format!("number {number} for marker {marker:#x}"))),
    }
    Ok(())
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn push_digits(mut n: u64, width: usize, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n > 0 || digits.len() - at < width {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

fn corrupt(reason: String) -> Error {
    Error::Io(std::io::Error::other(format!(
        "{TEMPLATE_COLUMN}: {reason}"
    )))
}

/// The columns of split lines, in [`line_fields`] order after `body`.
pub struct Split {
    /// The lines stored whole; null where a line is split (or was null).
    pub body: ArrayRef,
    /// `body_template`, then each position's text and number column.
    pub columns: Vec<ArrayRef>,
}

/// Splits each line of `bodies` that can be split.
pub fn split_column(bodies: &StringArray) -> Split {
    let rows = bodies.len();
    let mut columns = Columns::new(rows);
    let mut template = String::new();
    let mut fields = Vec::with_capacity(FIELDS);
    for (row, line) in bodies.iter().enumerate() {
        match line {
            Some(line) if split(line, &mut template, &mut fields) => {
                columns.templates.push(row, &template);
                for (k, f) in fields.iter().enumerate() {
                    if f.marker == TEXT {
                        columns.texts[k].push(row, &line[f.text.clone()]);
                    } else {
                        columns.numbers[k].push(row, &f.number);
                    }
                }
            }
            Some(line) => columns.whole.push(row, line),
            None => {}
        }
    }
    columns.finish(rows)
}

/// A column built a value at a time, its nulls appended only when a later row has a value
/// (or at the end): most field positions have a value in few of a line's columns.
struct Lazy<B> {
    builder: B,
    /// Rows written so far, nulls included.
    rows: usize,
}

/// What [`Lazy`] needs of a builder.
trait Builder {
    type Value: ?Sized;
    fn append_nulls(&mut self, n: usize);
    fn append_value(&mut self, value: &Self::Value);
    fn finish(&mut self) -> ArrayRef;
}

impl Builder for StringBuilder {
    type Value = str;
    fn append_nulls(&mut self, n: usize) {
        StringBuilder::append_nulls(self, n);
    }
    fn append_value(&mut self, value: &str) {
        StringBuilder::append_value(self, value);
    }
    fn finish(&mut self) -> ArrayRef {
        Arc::new(StringBuilder::finish(self))
    }
}

impl Builder for Int64Builder {
    type Value = i64;
    fn append_nulls(&mut self, n: usize) {
        Int64Builder::append_nulls(self, n);
    }
    fn append_value(&mut self, value: &i64) {
        Int64Builder::append_value(self, *value);
    }
    fn finish(&mut self) -> ArrayRef {
        Arc::new(Int64Builder::finish(self))
    }
}

impl<B: Builder> Lazy<B> {
    fn push(&mut self, row: usize, value: &B::Value) {
        self.builder.append_nulls(row - self.rows);
        self.builder.append_value(value);
        self.rows = row + 1;
    }

    fn finish(&mut self, rows: usize) -> ArrayRef {
        self.builder.append_nulls(rows - self.rows);
        self.builder.finish()
    }
}

/// The columns [`split_column`] builds.
struct Columns {
    whole: Lazy<StringBuilder>,
    templates: Lazy<StringBuilder>,
    texts: Vec<Lazy<StringBuilder>>,
    numbers: Vec<Lazy<Int64Builder>>,
}

impl Columns {
    fn new(rows: usize) -> Self {
        let strings = |bytes| Lazy {
            builder: StringBuilder::with_capacity(rows, bytes),
            rows: 0,
        };
        Self {
            whole: strings(0),
            templates: strings(rows * 16),
            texts: (0..FIELDS).map(|_| strings(rows * 8)).collect(),
            numbers: (0..FIELDS)
                .map(|_| Lazy {
                    builder: Int64Builder::with_capacity(rows),
                    rows: 0,
                })
                .collect(),
        }
    }

    fn finish(mut self, rows: usize) -> Split {
        let mut columns = vec![self.templates.finish(rows)];
        for (text, number) in self.texts.iter_mut().zip(self.numbers.iter_mut()) {
            columns.push(text.finish(rows));
            columns.push(number.finish(rows));
        }
        Split {
            body: self.whole.finish(rows),
            columns,
        }
    }
}

/// A batch of table rows (or of rows in the resource layout) with its lines split: `body`
/// keeps the lines stored whole, the line columns follow the batch's. A batch without
/// `body`, or already split, passes unchanged.
pub fn to_file(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    if schema.index_of(TEMPLATE_COLUMN).is_ok() {
        return Ok(batch.clone());
    }
    let Ok(index) = schema.index_of(BODY) else {
        return Ok(batch.clone());
    };
    let bodies = batch
        .column(index)
        .as_string_opt::<i32>()
        .ok_or_else(|| corrupt("body is not a string column".into()))?;
    let split = split_column(bodies);
    let mut columns = batch.columns().to_vec();
    columns[index] = split.body;
    columns.extend(split.columns);
    Ok(RecordBatch::try_new_with_options(
        file_schema_of(&schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// The lines of a file's rows: `body` where stored whole, else rebuilt from the template and
/// fields. `columns` are the line columns in [`line_fields`] order.
pub fn rebuild(body: &dyn Array, columns: &[&dyn Array]) -> Result<StringArray> {
    if columns.len() != 1 + 2 * FIELDS {
        return Err(corrupt(format!("{} line columns", columns.len())));
    }
    let body = string(body, BODY)?;
    let templates = string(columns[0], TEMPLATE_COLUMN)?;
    let texts: Vec<&StringArray> = (0..FIELDS)
        .map(|k| string(columns[1 + 2 * k], text_column(k)))
        .collect::<Result<_>>()?;
    let numbers: Vec<&Int64Array> = (0..FIELDS)
        .map(|k| {
            columns[2 + 2 * k]
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| corrupt(format!("{} is not Int64", number_column(k))))
        })
        .collect::<Result<_>>()?;
    let rows = body.len();
    if columns.iter().any(|c| c.len() != rows) {
        return Err(corrupt("line columns of unequal lengths".into()));
    }
    let mut out = StringBuilder::with_capacity(rows, body.value_data().len() + rows * 64);
    let mut line = String::new();
    for row in 0..rows {
        if body.is_valid(row) || templates.is_null(row) {
            out.append_option(body.is_valid(row).then(|| body.value(row)));
            continue;
        }
        line.clear();
        let template = templates.value(row);
        let mut k = 0;
        let mut copied = 0;
        for (at, &marker) in template.as_bytes().iter().enumerate() {
            if !is_marker(marker) {
                continue;
            }
            line.push_str(&template[copied..at]);
            copied = at + 1;
            if k == FIELDS {
                return Err(corrupt(format!("a template of more than {FIELDS} fields")));
            }
            if marker == TEXT {
                if texts[k].is_null(row) {
                    return Err(corrupt(format!("{} is null", text_column(k))));
                }
                line.push_str(texts[k].value(row));
            } else {
                if numbers[k].is_null(row) {
                    return Err(corrupt(format!("{} is null", number_column(k))));
                }
                render(marker, numbers[k].value(row), &mut line)?;
            }
            k += 1;
        }
        line.push_str(&template[copied..]);
        out.append_value(&line);
    }
    Ok(out.finish())
}

/// Whether [`contains`] can search for `term`: it holds no byte a number field renders
/// (digits, `.`, `-`) and no marker, so it is never found across a number field and the
/// number columns need not be read.
pub fn searchable_without_numbers(term: &str) -> bool {
    !term
        .bytes()
        .any(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || is_marker(b))
}

/// For each row, whether its line contains `term` (null where the line is null), found
/// without rebuilding the line: in `body` where stored whole, else in the template's text
/// (a line has the term there when its template does) and, for a template with text
/// fields, in the template with those put back. `term` must be
/// [`searchable_without_numbers`]; the number columns are not read. `texts` are the
/// `body_text_{k}` columns in order.
pub fn contains(
    term: &str,
    body: &dyn Array,
    template: &dyn Array,
    texts: &[&dyn Array],
) -> Result<BooleanArray> {
    if !searchable_without_numbers(term) {
        return Err(Error::Io(std::io::Error::other(format!(
            "{term:?} is not searchable without the number fields"
        ))));
    }
    if texts.len() != FIELDS {
        return Err(corrupt(format!("{} text columns", texts.len())));
    }
    let body = string(body, BODY)?;
    let templates = string(template, TEMPLATE_COLUMN)?;
    let texts: Vec<&StringArray> = texts
        .iter()
        .enumerate()
        .map(|(k, a)| string(*a, text_column(k)))
        .collect::<Result<_>>()?;
    let rows = body.len();
    if templates.len() != rows || texts.iter().any(|c| c.len() != rows) {
        return Err(corrupt("line columns of unequal lengths".into()));
    }
    let finder = memchr::memmem::Finder::new(term.as_bytes());
    let mut out = BooleanBuilder::with_capacity(rows);
    let mut line = Vec::new();
    for row in 0..rows {
        if body.is_valid(row) {
            out.append_value(finder.find(body.value(row).as_bytes()).is_some());
            continue;
        }
        if templates.is_null(row) {
            out.append_null();
            continue;
        }
        let template = templates.value(row).as_bytes();
        if finder.find(template).is_some() {
            out.append_value(true);
            continue;
        }
        if memchr::memchr(TEXT, template).is_none() {
            out.append_value(false);
            continue;
        }
        // The template with its text fields put back and its number markers left, which
        // the term does not hold.
        line.clear();
        let mut copied = 0;
        for (k, at) in template
            .iter()
            .enumerate()
            .filter(|(_, b)| is_marker(**b))
            .map(|(at, _)| at)
            .enumerate()
        {
            if k == FIELDS {
                return Err(corrupt(format!("a template of more than {FIELDS} fields")));
            }
            if template[at] != TEXT {
                continue;
            }
            if texts[k].is_null(row) {
                return Err(corrupt(format!("{} is null", text_column(k))));
            }
            line.extend_from_slice(&template[copied..at]);
            line.extend_from_slice(texts[k].value(row).as_bytes());
            copied = at + 1;
        }
        line.extend_from_slice(&template[copied..]);
        out.append_value(finder.find(&line).is_some());
    }
    Ok(out.finish())
}

fn string<'a>(a: &'a dyn Array, name: &str) -> Result<&'a StringArray> {
    a.as_string_opt::<i32>()
        .ok_or_else(|| corrupt(format!("{name} is not a string column")))
}

/// A batch read from a file with split lines, with `body` rebuilt and the line columns
/// dropped. Batches without them pass unchanged.
pub fn materialise(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    if schema.index_of(TEMPLATE_COLUMN).is_err() {
        return Ok(batch.clone());
    }
    let body = schema.index_of(BODY)?;
    let columns: Vec<&dyn Array> = line_fields()
        .iter()
        .map(|f| schema.index_of(f.name()).map(|i| batch.column(i).as_ref()))
        .collect::<std::result::Result<_, _>>()?;
    let lines = rebuild(batch.column(body).as_ref(), &columns)?;
    let table_schema = table_schema_of(&schema);
    let table_columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| !is_line_column(f.name()))
        .map(|(f, c)| {
            if f.name() == BODY {
                Arc::new(lines.clone()) as ArrayRef
            } else {
                c.clone()
            }
        })
        .collect();
    Ok(RecordBatch::try_new_with_options(
        table_schema,
        table_columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

#[cfg(test)]
mod tests;

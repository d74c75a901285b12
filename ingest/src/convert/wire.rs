//! Reading OTLP straight from its protobuf encoding, without decoding it into owned
//! messages first: strings and ids are borrowed from the request body.
//!
//! A reader here is a fast path with prost as its reference. It gives up
//! ([`Unsupported`]) on anything it does not read exactly as prost would: unknown fields,
//! a singular message that occurs twice (prost merges them), groups, malformed or deeply
//! nested input. The caller then decodes the body with prost, which accepts it or names the
//! error. So whatever the fast path accepts, prost accepts too and converts to the same
//! rows; the differential tests (`convert/tests.rs`) and the `otlp_protobuf` fuzz target
//! check exactly that.

use std::borrow::Cow;
use std::ops::Range;

use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use super::{AttrValue, Origin, Rendered, WireAttr, service_name};

/// The fast path does not read this input; prost decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsupported;

pub(crate) type Result<T> = std::result::Result<T, Unsupported>;

/// The value of one field, by wire type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Field<'a> {
    #[inline]
    pub(crate) fn varint(self) -> Result<u64> {
        match self {
            Field::Varint(v) => Ok(v),
            _ => Err(Unsupported),
        }
    }

    /// `uint32`, truncated as prost does.
    #[inline]
    pub(crate) fn uint32(self) -> Result<u32> {
        self.varint().map(|v| v as u32)
    }

    /// `int32` and enums, truncated as prost does.
    #[inline]
    pub(crate) fn int32(self) -> Result<i32> {
        self.varint().map(|v| v as i32)
    }

    #[inline]
    pub(crate) fn fixed64(self) -> Result<u64> {
        match self {
            Field::Fixed64(v) => Ok(v),
            _ => Err(Unsupported),
        }
    }

    #[inline]
    pub(crate) fn fixed32(self) -> Result<u32> {
        match self {
            Field::Fixed32(v) => Ok(v),
            _ => Err(Unsupported),
        }
    }

    /// `bytes` and embedded messages.
    #[inline]
    pub(crate) fn bytes(self) -> Result<&'a [u8]> {
        match self {
            Field::Len(b) => Ok(b),
            _ => Err(Unsupported),
        }
    }

    /// `string`: valid UTF-8, as prost requires. Most are ASCII, checked a word at a time.
    #[inline]
    pub(crate) fn string(self) -> Result<&'a str> {
        let bytes = self.bytes()?;
        if bytes.is_ascii() {
            // SAFETY: ASCII is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).map_err(|_| Unsupported)
    }
}

/// The fields of one message, in the order they are encoded.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    #[inline]
    fn next_field(&mut self) -> Result<(u32, Field<'a>)> {
        let tag = varint(&mut self.buf)?;
        let number = u32::try_from(tag >> 3).map_err(|_| Unsupported)?;
        if number == 0 {
            return Err(Unsupported);
        }
        let field = match tag & 7 {
            0 => Field::Varint(varint(&mut self.buf)?),
            1 => Field::Fixed64(u64::from_le_bytes(
                take(&mut self.buf, 8)?.try_into().unwrap(),
            )),
            2 => {
                let len = usize::try_from(varint(&mut self.buf)?).map_err(|_| Unsupported)?;
                Field::Len(take(&mut self.buf, len)?)
            }
            5 => Field::Fixed32(u32::from_le_bytes(
                take(&mut self.buf, 4)?.try_into().unwrap(),
            )),
            // Groups (3, 4) and the undefined wire types.
            _ => return Err(Unsupported),
        };
        Ok((number, field))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Field<'a>)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let next = self.next_field();
        if next.is_err() {
            self.buf = &[];
        }
        Some(next)
    }
}

#[inline]
fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8]> {
    if buf.len() < len {
        return Err(Unsupported);
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

/// A base-128 varint of at most ten bytes, the tenth at most 1 (prost's rule).
#[inline]
fn varint(buf: &mut &[u8]) -> Result<u64> {
    // Tags and most lengths and counts take one byte.
    if let Some((&byte, rest)) = buf.split_first()
        && byte < 0x80
    {
        *buf = rest;
        return Ok(u64::from(byte));
    }
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first().ok_or(Unsupported)?;
        *buf = rest;
        if i == 9 && byte > 1 {
            return Err(Unsupported);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Unsupported)
}

/// Sets a singular embedded message, which prost would merge if it occurred twice.
pub(crate) fn once<'a>(slot: &mut Option<&'a [u8]>, field: Field<'a>) -> Result<()> {
    if slot.is_some() {
        return Err(Unsupported);
    }
    *slot = Some(field.bytes()?);
    Ok(())
}

/// The outline of an export request, the same for every signal: its `Resource…` messages
/// (1: resource, 2: scope messages, 3: schema URL), their `Scope…` messages (1: scope,
/// 2: items, 3: schema URL) and the items (spans, log records, metrics), each still encoded.
/// Read first because a resource or scope may follow its items; it also counts the items,
/// to size the columns by.
pub(crate) struct Request<'a> {
    pub(crate) resources: Vec<ResourceSlices<'a>>,
    pub(crate) scopes: Vec<ScopeSlices<'a>>,
    pub(crate) items: Vec<&'a [u8]>,
}

/// A resource message and the range of its scopes in [`Request::scopes`].
pub(crate) struct ResourceSlices<'a> {
    pub(crate) resource: Option<&'a [u8]>,
    pub(crate) scopes: Range<usize>,
}

/// A scope message and the range of its items in [`Request::items`].
pub(crate) struct ScopeSlices<'a> {
    pub(crate) scope: Option<&'a [u8]>,
    pub(crate) items: Range<usize>,
}

impl<'a> Request<'a> {
    pub(crate) fn read(body: &'a [u8]) -> Result<Self> {
        let mut request = Request {
            resources: Vec::new(),
            scopes: Vec::new(),
            items: Vec::new(),
        };
        for field in Fields::new(body) {
            match field? {
                (1, f) => request.read_resource(f.bytes()?)?,
                _ => return Err(Unsupported),
            }
        }
        Ok(request)
    }

    fn read_resource(&mut self, buf: &'a [u8]) -> Result<()> {
        let first_scope = self.scopes.len();
        let resource = outline(buf, |scope| self.read_scope(scope))?;
        self.resources.push(ResourceSlices {
            resource,
            scopes: first_scope..self.scopes.len(),
        });
        Ok(())
    }

    fn read_scope(&mut self, buf: &'a [u8]) -> Result<()> {
        let first_item = self.items.len();
        let scope = outline(buf, |item| {
            self.items.push(item);
            Ok(())
        })?;
        self.scopes.push(ScopeSlices {
            scope,
            items: first_item..self.items.len(),
        });
        Ok(())
    }

    /// Calls `each` for every scope, in order: the index of its resource, that resource's
    /// attributes, what the scope's rows share, and the range of its items in
    /// [`Request::items`].
    pub(crate) fn for_each_scope(
        &self,
        mut each: impl FnMut(usize, &[WireAttr<'a>], &Origin<'_>, Range<usize>) -> Result<()>,
    ) -> Result<()> {
        let (mut resource_attrs, mut scope_attrs) = (Vec::new(), Vec::new());
        for (ri, resource) in self.resources.iter().enumerate() {
            resource_attributes(resource.resource, &mut resource_attrs)?;
            let rendered = Rendered::new(&resource_attrs);
            for scope in &self.scopes[resource.scopes.clone()] {
                let (scope_name, scope_version) = scope_fields(scope.scope, &mut scope_attrs)?;
                let origin = Origin::new(
                    service_name(&resource_attrs),
                    &rendered,
                    scope_name,
                    scope_version,
                );
                each(ri, &resource_attrs, &origin, scope.items.clone())?;
            }
        }
        Ok(())
    }
}

/// A `Resource…` or `Scope…` message: its resource or scope (field 1), returned, each of
/// its children (field 2) handed to `child`, and its schema URL (field 3), checked.
fn outline<'a>(
    buf: &'a [u8],
    mut child: impl FnMut(&'a [u8]) -> Result<()>,
) -> Result<Option<&'a [u8]>> {
    let mut first = None;
    for field in Fields::new(buf) {
        match field? {
            (1, f) => once(&mut first, f)?,
            (2, f) => child(f.bytes()?)?,
            (3, f) => {
                f.string()?;
            }
            _ => return Err(Unsupported),
        }
    }
    Ok(first)
}

/// A `Resource`'s attributes into `attrs` (cleared first; none without a resource). Entity
/// references are left to prost.
fn resource_attributes<'a>(
    resource: Option<&'a [u8]>,
    attrs: &mut Vec<WireAttr<'a>>,
) -> Result<()> {
    attrs.clear();
    for field in Fields::new(resource.unwrap_or_default()) {
        match field? {
            (1, f) => push_key_value(attrs, f)?,
            (2, f) => {
                f.uint32()?;
            }
            _ => return Err(Unsupported),
        }
    }
    Ok(())
}

/// An `InstrumentationScope`'s name and version (empty without a scope); its attributes are
/// read (into `attrs`, cleared first) but not stored, as when decoded.
fn scope_fields<'a>(
    scope: Option<&'a [u8]>,
    attrs: &mut Vec<WireAttr<'a>>,
) -> Result<(&'a str, &'a str)> {
    let (mut name, mut version) = ("", "");
    attrs.clear();
    for field in Fields::new(scope.unwrap_or_default()) {
        match field? {
            (1, f) => name = f.string()?,
            (2, f) => version = f.string()?,
            (3, f) => push_key_value(attrs, f)?,
            (4, f) => {
                f.uint32()?;
            }
            _ => return Err(Unsupported),
        }
    }
    Ok((name, version))
}

/// A `KeyValue`.
pub(crate) fn key_value(buf: &[u8]) -> Result<WireAttr<'_>> {
    let mut key = "";
    let mut value = None;
    for field in Fields::new(buf) {
        match field? {
            (1, f) => key = f.string()?,
            (2, f) => once(&mut value, f)?,
            // key_strindex: profiles only; ignored, as it is when decoded.
            (3, f) => {
                f.int32()?;
            }
            _ => return Err(Unsupported),
        }
    }
    let value = optional_any_value(value)?;
    Ok(WireAttr { key, value })
}

/// Appends the `KeyValue`s of a repeated field to `out`.
pub(crate) fn push_key_value<'a>(out: &mut Vec<WireAttr<'a>>, field: Field<'a>) -> Result<()> {
    out.push(key_value(field.bytes()?)?);
    Ok(())
}

/// An optional `AnyValue` (a log body): empty when absent.
pub(crate) fn optional_any_value(buf: Option<&[u8]>) -> Result<AttrValue<'_>> {
    buf.map_or(Ok(AttrValue::Empty), any_value)
}

/// An `AnyValue`. Its fields form a oneof: the last one wins. Arrays and key-value lists
/// are decoded by prost (they are rare and become JSON text anyway), after a check that
/// they nest no deeper than the whole request may.
fn any_value(buf: &[u8]) -> Result<AttrValue<'_>> {
    let mut value = AttrValue::Empty;
    let mut nested = false;
    for field in Fields::new(buf) {
        value = match field? {
            (1, f) => AttrValue::Str(f.string()?),
            (2, f) => AttrValue::Bool(f.varint()? != 0),
            (3, f) => AttrValue::Int(f.varint()? as i64),
            (4, f) => AttrValue::Double(f64::from_bits(f.fixed64()?)),
            (5 | 6, f) => {
                f.bytes()?;
                nested = true;
                AttrValue::Empty
            }
            (7, f) => AttrValue::Bytes(f.bytes()?),
            (8, f) => {
                f.int32()?;
                AttrValue::Empty
            }
            _ => return Err(Unsupported),
        };
    }
    if !nested {
        return Ok(value);
    }
    nesting_within(buf, MAX_NESTING)?;
    let decoded = <AnyValue as prost::Message>::decode(buf).map_err(|_| Unsupported)?;
    Ok(match decoded.value {
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            AttrValue::Nested(Cow::Owned(v))
        }
        // A scalar came last, and was read above.
        _ => value,
    })
}

/// Levels of arrays and key-value lists the fast path reads. prost allows 100 levels of
/// messages per request; an attribute value starts at most 7 deep and each level of nesting
/// costs at most 3 (`KeyValueList` → `KeyValue` → `AnyValue`), so 24 stays well inside.
const MAX_NESTING: u32 = 24;

/// Whether an `AnyValue` nests arrays and lists at most `budget` levels deep.
fn nesting_within(any: &[u8], budget: u32) -> Result<()> {
    for field in Fields::new(any) {
        let (number, f) = field?;
        if number != 5 && number != 6 {
            continue;
        }
        let budget = budget.checked_sub(1).ok_or(Unsupported)?;
        // ArrayValue.values are AnyValues; KeyValueList.values are KeyValues (value: 2).
        for item in Fields::new(f.bytes()?) {
            let item = item?.1.bytes()?;
            if number == 5 {
                nesting_within(item, budget)?;
                continue;
            }
            for kv_field in Fields::new(item) {
                if let (2, value) = kv_field? {
                    nesting_within(value.bytes()?, budget)?;
                }
            }
        }
    }
    Ok(())
}

//! Reading a request's JSON into its input types, with errors that name
//! the field. serde's own error type only carries English text, so the
//! value is read through a deserializer of ours whose error keeps the kind
//! (unknown field, missing field, anything else) and the field's name as
//! data; `serde_path_to_error` adds the path to it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::Value;

use crate::domain::error::FieldError;

/// Reads `value` into `T`; a value that does not fit is a [`FieldError`]
/// whose field is the dotted path to it (`trigger.every_s`, `headers.x`,
/// `items[2]`), the empty string for the value itself.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(ValueDeserializer::new(value)).map_err(|e| {
        let path = path_of(e.path());
        match e.into_inner() {
            ReadError::UnknownField { field, expected } => FieldError::new(
                join(&path, &field),
                match expected {
                    [] => "unknown field; none is allowed here".to_string(),
                    names => format!(
                        "unknown field; expected one of {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            ),
            ReadError::MissingField(field) => FieldError::new(join(&path, field), "is required"),
            ReadError::Other(message) => FieldError::new(render(&path), message),
        }
    })
}

/// The path as dotted segments; serde_path_to_error writes the root as `.`.
fn path_of(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Seq { index } => Some(format!("[{index}]")),
            Segment::Unknown => None,
        })
        .collect()
}

/// `path` plus `name`, unless the path already ends at that name (an
/// unknown field's path does when it is nested).
fn join(path: &[String], name: &str) -> String {
    let mut segments = path.to_vec();
    if segments.last().map(String::as_str) != Some(name) {
        segments.push(name.to_string());
    }
    render(&segments)
}

fn render(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        // An empty key would vanish from the path: show it quoted.
        out.push_str(if segment.is_empty() { "\"\"" } else { segment });
    }
    out
}

/// Why a value did not fit, as data.
#[derive(Debug)]
enum ReadError {
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    /// Any other mismatch, in serde's words (`invalid type: string "x",
    /// expected u32`) or ours (a bad instant).
    Other(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::UnknownField { field, .. } => write!(f, "unknown field `{field}`"),
            ReadError::MissingField(field) => write!(f, "missing field `{field}`"),
            ReadError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ReadError {}

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ReadError::Other(msg.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        ReadError::UnknownField {
            field: field.to_string(),
            expected,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        ReadError::MissingField(field)
    }
}

/// An enum written as an object of one key: the key names the variant,
/// its value is the variant's.
struct OneKey<'a, E> {
    variant: &'a str,
    value: &'a Value,
    error: PhantomData<E>,
}

impl<'de, 'a, E: de::Error> de::EnumAccess<'de> for OneKey<'a, E> {
    type Error = E;
    type Variant = ValueDeserializer<'a, E>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), E> {
        let name: StrDeserializer<'_, E> = self.variant.into_deserializer();
        Ok((seed.deserialize(name)?, ValueDeserializer::new(self.value)))
    }
}

impl<'de, E: de::Error> de::VariantAccess<'de> for ValueDeserializer<'_, E> {
    type Error = E;

    fn unit_variant(self) -> Result<(), E> {
        match self.value {
            Value::Null => Ok(()),
            other => Err(E::invalid_type(unexpected(other), &"nothing")),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, E> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, E> {
        de::Deserializer::deserialize_any(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

/// A `serde::Deserializer` over a borrowed JSON value, generic over its
/// error type.
struct ValueDeserializer<'a, E> {
    value: &'a Value,
    error: PhantomData<E>,
}

impl<'a, E> ValueDeserializer<'a, E> {
    fn new(value: &'a Value) -> Self {
        Self {
            value,
            error: PhantomData,
        }
    }
}

impl<'de, E: de::Error> de::Deserializer<'de> for ValueDeserializer<'_, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                let float = n.as_f64().unwrap_or(f64::NAN);
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if float.fract() == 0.0 && float.abs() < 9.0e15 {
                    // `5.0` is the integer 5 in JSON Schema's eyes: read
                    // it as one (exactly, below 2^53).
                    if float >= 0.0 {
                        visitor.visit_u64(float as u64)
                    } else {
                        visitor.visit_i64(float as i64)
                    }
                } else {
                    visitor.visit_f64(float)
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => visitor.visit_seq(SeqReader {
                items: items.iter(),
                error: PhantomData,
            }),
            Value::Object(map) => visitor.visit_map(MapReader {
                entries: map.iter(),
                pending: None,
                error: PhantomData,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            // A unit variant by name.
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            // A variant with a value: an object of one key (a calendar's
            // `{"date": "2026-12-25"}`, §11.4).
            Value::Object(map) if map.len() == 1 => {
                let (variant, value) = map.iter().next().expect("one entry");
                visitor.visit_enum(OneKey::<E> {
                    variant,
                    value,
                    error: PhantomData,
                })
            }
            _ => self.deserialize_any(visitor),
        }
    }

    /// A struct is read from an object only: serde would also take an
    /// array of its fields in order, which no client of a JSON API means.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(E::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map
        identifier ignored_any
    }
}

/// What a value is, in serde's words for an error.
fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => de::Unexpected::Unsigned(u),
            (_, Some(i)) => de::Unexpected::Signed(i),
            _ => de::Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct SeqReader<'a, E> {
    items: std::slice::Iter<'a, Value>,
    error: PhantomData<E>,
}

impl<'de, E: de::Error> de::SeqAccess<'de> for SeqReader<'_, E> {
    type Error = E;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, E> {
        self.items
            .next()
            .map(|v| seed.deserialize(ValueDeserializer::new(v)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapReader<'a, E> {
    entries: serde_json::map::Iter<'a>,
    pending: Option<&'a Value>,
    error: PhantomData<E>,
}

impl<'de, E: de::Error> de::MapAccess<'de> for MapReader<'_, E> {
    type Error = E;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, E> {
        match self.entries.next() {
            Some((key, value)) => {
                self.pending = Some(value);
                let key: StrDeserializer<'_, E> = key.as_str().into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, E> {
        let value = self
            .pending
            .take()
            .ok_or_else(|| E::custom("a map value was read before its key"))?;
        seed.deserialize(ValueDeserializer::new(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The path of the first string (or key) holding a NUL character, which
/// PostgreSQL cannot store, under `path`.
pub fn nul_at(value: &Value, path: String) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_at(v, join(k))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_integral_float_reads_as_the_integer_it_is() {
        assert_eq!(from_value::<u32>(&serde_json::json!(5.0)), Ok(5));
        assert_eq!(from_value::<i64>(&serde_json::json!(-3.0)), Ok(-3));
        assert!(from_value::<u32>(&serde_json::json!(5.5)).is_err());
    }

    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        every_s: Option<u32>,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Cron,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: Option<String>,
        required: u8,
        inner: Option<Inner>,
        #[serde(default)]
        items: Vec<u8>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        any: Option<Value>,
    }

    fn error(v: Value) -> String {
        from_value::<Outer>(&v).unwrap_err().to_string()
    }

    #[test]
    fn reads_what_fits() {
        let o: Outer = from_value(
            &json!({"required": 1, "inner": {"every_s": 5, "kind": "cron"},
            "items": [1, 2], "headers": {"x": "y"}, "any": {"deep": [null, 1.5]}}),
        )
        .unwrap();
        assert_eq!(o.items, [1, 2]);
        assert_eq!(o.any, Some(json!({"deep": [null, 1.5]})));
        let o: Outer = from_value(&json!({"required": 1, "name": null})).unwrap();
        assert_eq!(o.name, None);
    }

    #[test]
    fn unknown_fields_name_themselves_at_any_depth() {
        assert_eq!(
            error(json!({"required": 1, "bogus": 1})),
            "bogus: unknown field; expected one of `name`, `required`, `inner`, `items`, `headers`, `any`"
        );
        assert_eq!(
            error(json!({"required": 1, "inner": {"evry_s": 1}})),
            "inner.evry_s: unknown field; expected one of `every_s`, `kind`"
        );
    }

    #[test]
    fn missing_fields_and_wrong_types_name_their_path() {
        assert_eq!(error(json!({})), "required: is required");
        assert_eq!(
            error(json!({"required": 1, "inner": {"every_s": "often"}})),
            "inner.every_s: invalid type: string \"often\", expected u32"
        );
        assert_eq!(
            error(json!({"required": 1, "items": [1, -1]})),
            "items[1]: invalid value: integer `-1`, expected u8"
        );
        assert_eq!(
            error(json!({"required": 1, "headers": {"x": 2}})),
            "headers.x: invalid type: integer `2`, expected a string"
        );
        assert_eq!(
            error(json!({"required": 1, "inner": {"kind": "hourly"}})),
            "inner.kind: unknown variant `hourly`, expected `cron`"
        );
        assert_eq!(
            from_value::<Outer>(&json!("x")).unwrap_err().to_string(),
            "invalid type: string \"x\", expected struct Outer"
        );
        // serde would read a struct from an array of its fields; not here.
        assert_eq!(
            error(json!({"required": 1, "inner": [5, "cron"]})),
            "inner: invalid type: sequence, expected struct Inner"
        );
    }
}

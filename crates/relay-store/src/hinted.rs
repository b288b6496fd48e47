//! Bound values that tell sqlx how many bytes they will take in a statement's arguments.
//!
//! The query macros reserve the arguments buffer once, from the parameters' size hints, but an
//! array's hint is the size of the slice reference (16 bytes). Ingest's batch INSERT binds
//! ~100 KB of bodies, so its buffer grew by doubling from a few bytes, copying what it held at
//! each step: 3 % of the relay's CPU under load went to those copies (`perf`, 2026-12-07).

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::{Encode, Postgres, Type};

/// `value`, bound as itself, with a size hint of `bytes`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hinted<T> {
    value: T,
    bytes: usize,
}

/// A one-dimensional array's header in PostgreSQL's binary format (dimensions, flags,
/// element type, length, lower bound) and the value's own length prefix.
const ARRAY_OVERHEAD: usize = 24;
/// Each element's length prefix.
const ELEMENT_OVERHEAD: usize = 4;

impl<'a, T> Hinted<&'a [T]> {
    /// A one-dimensional array parameter whose element `e` encodes to `element_bytes(e)`
    /// bytes (an estimate is fine: a short one costs one more doubling of the buffer, a long
    /// one unused capacity).
    pub(crate) fn array_with(elements: &'a [T], element_bytes: impl Fn(&T) -> usize) -> Self {
        let bytes = ARRAY_OVERHEAD
            + elements
                .iter()
                .map(|element| ELEMENT_OVERHEAD + element_bytes(element))
                .sum::<usize>();
        Self {
            value: elements,
            bytes,
        }
    }
}

impl<'a, T: AsRef<[u8]>> Hinted<&'a [T]> {
    /// A `bytea[]` or `text[]` parameter: its exact encoded size.
    pub(crate) fn array(elements: &'a [T]) -> Self {
        Self::array_with(elements, |element| element.as_ref().len())
    }
}

impl<'q, T: Encode<'q, Postgres>> Encode<'q, Postgres> for Hinted<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        self.value.encode_by_ref(buf)
    }

    fn size_hint(&self) -> usize {
        self.bytes
    }
}

impl<T: Type<Postgres>> Type<Postgres> for Hinted<T> {
    fn type_info() -> PgTypeInfo {
        T::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        T::compatible(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arrays_hint_is_its_encoded_size() {
        let bodies: Vec<&[u8]> = vec![b"{}", b"{\"a\":1}", b""];
        let hinted = Hinted::array(bodies.as_slice());
        let mut buf = PgArgumentBuffer::default();
        let null = hinted.encode_by_ref(&mut buf).expect("encodes");
        assert!(matches!(null, IsNull::No));
        // The buffer holds the array; the value's own length prefix is written by the
        // arguments, not by the value.
        assert_eq!(hinted.size_hint(), buf.len() + 4);
    }

    #[test]
    fn a_null_element_is_its_length_prefix_alone() {
        let ids: Vec<Option<&str>> = vec![Some("r-1"), None, Some("request-2")];
        let hinted = Hinted::array_with(ids.as_slice(), |id| id.map_or(0, str::len));
        let mut buf = PgArgumentBuffer::default();
        let null = hinted.encode_by_ref(&mut buf).expect("encodes");
        assert!(matches!(null, IsNull::No));
        assert_eq!(hinted.size_hint(), buf.len() + 4);
    }
}

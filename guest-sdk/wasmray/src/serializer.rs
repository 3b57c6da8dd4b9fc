//! postcard encoding, with arrays of plain numbers written in one piece.
//!
//! postcard's serializer handles a `Vec<f64>` one element at a time: a function call and a
//! buffer check per element, ~1 ns each, which made a 1 MiB `put` cost a millisecond. In
//! postcard's format a sequence of `u8`, `i8`, `bool`, `f32` or `f64` is its length followed by
//! the elements' little-endian bytes — exactly their bytes in wasm32's memory. [`Fast`] wraps
//! postcard's serializer, delegates everything to it (so the bytes are postcard's, and postcard
//! decodes them), and only in `collect_seq` — which serde calls for `[T]` and `Vec<T>` —
//! writes such a slice's memory with one `try_extend`.
//!
//! Three outputs ([`Flavor`]s) share it: [`Count`] measures a value before anything is
//! allocated for it; [`Exact`] fills a `Vec` of that size; the streaming `put` in `api.rs`
//! hands pieces to the host. This file does not talk to the host.

use postcard::ser_flavors::Flavor;
use serde::Serialize;
use serde::ser;

type Result<T> = std::result::Result<T, postcard::Error>;

/// Encodes `value` into `output` with postcard's format.
pub(crate) fn serialize<T: Serialize + ?Sized, F: Flavor>(
    value: &T,
    output: F,
) -> Result<F::Output> {
    let mut serializer = postcard::Serializer { output };
    value.serialize(Fast(&mut serializer))?;
    serializer.output.finalize()
}

/// The encoded length of `value`, without writing it anywhere.
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize> {
    serialize(value, Count(0))
}

/// Counts bytes.
pub(crate) struct Count(usize);

impl Flavor for Count {
    type Output = usize;

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len();
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

/// Appends to a `Vec` allocated at the right size beforehand.
pub(crate) struct Exact(pub(crate) Vec<u8>);

impl Flavor for Exact {
    type Output = Vec<u8>;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// postcard's serializer, passed down to every nested value so that nested arrays take the fast
/// path too.
struct Fast<'a, F: Flavor>(&'a mut postcard::Serializer<F>);

impl<F: Flavor> Fast<'_, F> {
    fn again(&mut self) -> Fast<'_, F> {
        Fast(&mut *self.0)
    }
}

/// The memory of a `&[T]` or `&Vec<T>` whose elements postcard writes as their own bytes, and
/// the number of elements.
fn plain_bytes<I: ?Sized>(iter: &I) -> Option<(usize, &[u8])> {
    // wasm32 is little-endian, as postcard's encoding of floats is; elsewhere, no fast path.
    if cfg!(target_endian = "big") {
        return None;
    }
    macro_rules! slice_of {
        ($($element:ty),*) => {$(
            if typeid::of::<I>() == typeid::of::<&[$element]>() {
                // SAFETY: `I` is `&[$element]` (type IDs equal up to lifetimes), and the
                // reference we read lives as long as the borrow of `iter`.
                let slice: &[$element] = unsafe { *(iter as *const I).cast::<&[$element]>() };
                return Some((slice.len(), as_bytes(slice)));
            }
            if typeid::of::<I>() == typeid::of::<&Vec<$element>>() {
                // SAFETY: as above, `I` is `&Vec<$element>`.
                let vec: &Vec<$element> = unsafe { *(iter as *const I).cast::<&Vec<$element>>() };
                return Some((vec.len(), as_bytes(vec.as_slice())));
            }
        )*};
    }
    slice_of!(u8, i8, bool, f32, f64);
    None
}

/// The bytes of a slice of numbers or bools (no padding, every byte initialized).
fn as_bytes<T: Copy>(slice: &[T]) -> &[u8] {
    // SAFETY: only called with `u8`, `i8`, `bool`, `f32`, `f64`: types without padding whose
    // every byte is initialized; the new slice covers exactly the old one's memory and borrows
    // it for the same lifetime.
    unsafe { std::slice::from_raw_parts(slice.as_ptr().cast::<u8>(), size_of_val(slice)) }
}

impl<'a, F: Flavor> ser::Serializer for Fast<'a, F> {
    type Ok = ();
    type Error = postcard::Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.0.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.0.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.0.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.0.serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.0.serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<()> {
        self.0.serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.0.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.0.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.0.serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.0.serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<()> {
        self.0.serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.0.serialize_f32(v)
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.0.serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.0.serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.0.serialize_str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.0.serialize_bytes(v)
    }
    fn serialize_none(self) -> Result<()> {
        self.0.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        // postcard's `Some` tag, then the value through this serializer.
        self.0.output.try_push(1)?;
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.0.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<()> {
        self.0.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.0.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        // The variant's index as postcard writes it for a unit variant, then the value.
        self.again()
            .0
            .serialize_unit_variant(name, index, variant)?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self> {
        (&mut *self.0).serialize_seq(len)?;
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self> {
        (&mut *self.0).serialize_tuple_variant(name, index, variant, len)?;
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self> {
        (&mut *self.0).serialize_map(len)?;
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self> {
        (&mut *self.0).serialize_struct_variant(name, index, variant, len)?;
        Ok(self)
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<()> {
        self.0.collect_str(value)
    }

    fn collect_seq<I>(self, iter: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if let Some((len, bytes)) = plain_bytes(&iter) {
            (&mut *self.0).serialize_seq(Some(len))?;
            return self.0.output.try_extend(bytes);
        }
        // serde's own `collect_seq`, through this serializer.
        let iter = iter.into_iter();
        let len = match iter.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let mut seq = self.serialize_seq(len)?;
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }
}

/// The compound parts of a value: each element or field goes through [`Fast`] again; postcard
/// writes nothing at their end.
macro_rules! compound {
    ($($part:ident: $method:ident $(($key:ty))?;)*) => {$(
        impl<F: Flavor> ser::$part for Fast<'_, F> {
            type Ok = ();
            type Error = postcard::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $key,)? value: &T) -> Result<()> {
                value.serialize(self.again())
            }
            fn end(self) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

compound! {
    SerializeSeq: serialize_element;
    SerializeTuple: serialize_element;
    SerializeTupleStruct: serialize_field;
    SerializeTupleVariant: serialize_field;
    SerializeStruct: serialize_field(&'static str);
    SerializeStructVariant: serialize_field(&'static str);
}

impl<F: Flavor> ser::SerializeMap for Fast<'_, F> {
    type Ok = ();
    type Error = postcard::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        key.serialize(self.again())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(self.again())
    }
    fn end(self) -> Result<()> {
        Ok(())
    }
}

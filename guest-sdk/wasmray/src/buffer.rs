//! `Buffer<T>`: an immutable array of plain numbers that lives in the object store and is read
//! zero-copy (Ray's numpy arrays in plasma), and the sealed [`Plain`] trait of its element types.
//!
//! A buffer is a handle to a raw-bytes object (`put_bytes`: no postcard framing) plus, once
//! read, the memory it is read through. Making one costs one copy into the store; reading one
//! that came from elsewhere (a task argument, a return value, a `get`) costs a mapping of the
//! store's pages into this instance, done by [`crate::region`] on first access. It travels as
//! its object ref, so passing it around never copies the array.
//!
//! This file does not talk to the host about mappings (the region does) and does not encode
//! values (it serializes as an [`ObjectRef`], which [`crate::codec`] handles).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::OnceCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use wasmray_abi::MAP_ALIGN;

use crate::codec;
use crate::object_ref::ObjectRef;
use crate::region::Region;
use crate::sys;

mod sealed {
    /// Keeps [`super::Plain`] closed: only this crate decides which types any bytes may become.
    pub trait Sealed {}
}

/// An element type of a [`Buffer`]: `u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32`
/// or `f64`, stored little-endian (wasm's byte order).
///
/// Every one of them has no padding and accepts any bit pattern, which is what lets a buffer
/// hand out the store's bytes as `&[T]` without checking them. The trait is sealed: it cannot be
/// implemented outside this crate.
pub trait Plain:
    sealed::Sealed + Copy + Default + PartialEq + PartialOrd + fmt::Debug + 'static
{
}

macro_rules! plain {
    ($($t:ty),*) => {
        $(
            impl sealed::Sealed for $t {}
            impl Plain for $t {}
        )*
    };
}

plain!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

/// The contents of a `put_bytes` object: what a buffer's ref points at. Never (de)serialized as
/// a value; the type only tells such refs apart from typed ones.
pub(crate) enum Bytes {}

/// A copied object this small is moved out of its region (a whole `MAP_ALIGN`) into a vector of
/// its own size, so that many small buffers do not hold 64 KiB each.
const SMALL_COPY: usize = MAP_ALIGN as usize / 2;

/// An immutable array of plain numbers in the object store, shared zero-copy between tasks.
///
/// ```ignore
/// #[wasmray::remote]
/// fn total(values: wasmray::Buffer<f64>) -> f64 {
///     values.iter().sum() // the store's pages, mapped into this task: no copy
/// }
///
/// let values = wasmray::Buffer::from_vec(vec![1.0, 2.0, 3.0]); // one copy into the store
/// let sums: Vec<_> = (0..10).map(|_| total::remote(&values)).collect(); // refs, not copies
/// ```
///
/// **Making one.** [`from_slice`](Self::from_slice) and [`from_vec`](Self::from_vec) (also
/// `From<Vec<T>>`) store the elements with one `put_bytes` call straight from their memory: one
/// copy, into the store. `from_vec` keeps the vector as this buffer's local contents, so reading
/// it back here costs nothing more; `from_slice` keeps nothing and reads back like a received
/// buffer.
///
/// **Reading one.** A buffer received as a task argument, a return value or through
/// [`get`](crate::get) is read through a mapping: on first access (deref,
/// [`as_slice`](Self::as_slice), [`as_ptr`](Self::as_ptr)) the SDK reserves a region of this
/// instance's memory, aligned to and rounded up to 64 KiB, and the host maps the store's pages
/// over it copy-on-write, without copying them. Small objects are copied instead (the host
/// decides); those up to 32 KiB then move into a vector of their own size. [`len`](Self::len) and
/// [`is_empty`](Self::is_empty) ask the host for the length and never map. When the last clone
/// is dropped, the mapping is ended (before the region goes back to the allocator) and the ref
/// released. In an actor instance a buffer may live in the actor's state across calls. In a
/// task, a buffer (like an [`ObjectRef`]) belongs to the task call: its ref and its mapping end
/// when the call returns, so one kept in a `static` of a reused instance cannot be read in a
/// later call (reading a mapped one then panics rather than showing zeros).
///
/// **Travelling.** A buffer serializes as its object ref, so it can be a remote function's
/// argument or result, sit inside other values, and be [`put`](crate::put) and
/// [`get`](crate::get) as an `ObjectRef<Buffer<T>>`: only the ref moves, never the array.
///
/// **Immutability and copy-on-write.** There is no `DerefMut`: the object never changes. The
/// memory a buffer is read through is nevertheless this instance's own: writing through
/// [`as_ptr`](Self::as_ptr) (see there for the rules) changes only what this instance sees
/// through this buffer and its clones (the mapped pages are copied privately on first write, a
/// local vector is simply changed); the stored object and every other task's view stay as they
/// were. Cloning is cheap: clones share the ref and the mapping.
///
/// The object's length must be a whole number of `T`s; reading one that is not panics, naming
/// both sizes.
pub struct Buffer<T: Plain> {
    shared: Rc<Shared<T>>,
}

/// What the clones of one buffer share.
struct Shared<T> {
    /// The object's length in bytes, once known (at creation, or from `object_len`).
    byte_len: OnceCell<usize>,
    /// Where the elements are readable in this instance, once they are.
    contents: OnceCell<Contents<T>>,
    /// The ref. Declared last because fields drop in order: the region is unmapped and freed
    /// before the handle is released.
    object: ObjectRef<Bytes>,
}

/// Where a buffer's elements are readable.
enum Contents<T> {
    /// No elements: nothing to map.
    Empty,
    /// A vector of ours: the one `from_vec` stored, or a small object the host copied.
    Owned(Owned<T>),
    /// A region the host mapped (or copied) the object into.
    Region(Region),
}

/// A `Vec<T>` taken apart, so that its pointer keeps the allocation's own write permission
/// (a pointer obtained from a `Vec` through `&self` may not be written through).
struct Owned<T> {
    ptr: *mut T,
    len: usize,
    capacity: usize,
}

impl<T: Plain> Owned<T> {
    fn new(values: Vec<T>) -> Self {
        let mut values = ManuallyDrop::new(values);
        Self {
            ptr: values.as_mut_ptr(),
            len: values.len(),
            capacity: values.capacity(),
        }
    }

    /// Copies the `count` elements the host copied into `region` into a vector of their size.
    fn copy_from(region: &Region, count: usize) -> Self {
        let mut values = Vec::<T>::with_capacity(count);
        // SAFETY: `region` holds `count * size_of::<T>()` bytes the host copied there (its
        // length was checked by `elements`), at an address aligned to `MAP_ALIGN`, more than
        // any `Plain` type needs, and any bytes are a valid `T`. `values` is a fresh allocation
        // with room for `count` elements, so the ranges do not overlap, and after the copy its
        // first `count` elements are initialized.
        unsafe {
            ptr::copy_nonoverlapping(region.as_ptr().cast::<T>(), values.as_mut_ptr(), count);
            values.set_len(count);
        }
        Self::new(values)
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: these are the raw parts of a `Vec<T>` that `Owned::new` took over and nobody
        // else owns; the vector is rebuilt (and freed) once, here.
        drop(unsafe { Vec::from_raw_parts(self.ptr, self.len, self.capacity) });
    }
}

impl<T: Plain> Buffer<T> {
    /// Stores a copy of `values` in the object store: one `put_bytes` straight from the slice's
    /// memory, no intermediate vector. Nothing is kept here; reading the buffer maps the object.
    ///
    /// # Panics
    /// When the slice is 4 GiB or larger. The host traps the guest when the store cannot hold
    /// the bytes.
    pub fn from_slice(values: &[T]) -> Self {
        let handle = put_bytes(values);
        Self::from_parts(handle, size_of_val(values), None)
    }

    /// Stores `values` in the object store (one copy, as [`from_slice`](Self::from_slice)) and
    /// keeps the vector as this buffer's local contents, so reading it here maps nothing.
    ///
    /// # Panics
    /// As [`from_slice`](Self::from_slice).
    pub fn from_vec(values: Vec<T>) -> Self {
        let handle = put_bytes(&values);
        let byte_len = size_of_val(values.as_slice());
        let contents = if values.is_empty() {
            Contents::Empty
        } else {
            Contents::Owned(Owned::new(values))
        };
        Self::from_parts(handle, byte_len, Some(contents))
    }

    fn from_parts(handle: u32, byte_len: usize, contents: Option<Contents<T>>) -> Self {
        let buffer = Self::from_object(ObjectRef::from_handle(handle));
        // The cells are fresh: setting them cannot fail.
        let _ = buffer.shared.byte_len.set(byte_len);
        if let Some(contents) = contents {
            let _ = buffer.shared.contents.set(contents);
        }
        buffer
    }

    fn from_object(object: ObjectRef<Bytes>) -> Self {
        Self {
            shared: Rc::new(Shared {
                byte_len: OnceCell::new(),
                contents: OnceCell::new(),
                object,
            }),
        }
    }

    /// The number of elements. Asks the host for the object's length once; never maps it.
    ///
    /// # Panics
    /// When the object's length is not a whole number of `T`s.
    pub fn len(&self) -> usize {
        elements::<T>(self.byte_len(), self.handle())
    }

    /// Whether the buffer has no elements. Never maps the object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The handle of the object in this instance's table (meaningless in any other instance).
    pub fn handle(&self) -> u32 {
        self.shared.object.handle()
    }

    /// The elements, mapping the object on first use (also what deref gives).
    ///
    /// # Panics
    /// When the object's length is not a whole number of `T`s.
    pub fn as_slice(&self) -> &[T] {
        let (ptr, len) = self.raw_parts();
        // SAFETY: `ptr` is non-null and aligned for `T` (a dangling pointer for no elements, a
        // vector's buffer, or a region aligned to `MAP_ALIGN`), and `len` elements from it are
        // initialized: a vector's first `len`, or the `len * size_of::<T>()` bytes the host put
        // in the region. Any bytes are a valid `Plain` value. The memory belongs to `Shared`,
        // which `self` keeps alive for the slice's lifetime, and nothing changes it meanwhile:
        // the SDK never writes to it and `as_ptr`'s callers promise not to while a slice lives.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// A copy of the elements in a new vector.
    pub fn to_vec(&self) -> Vec<T> {
        self.as_slice().to_vec()
    }

    /// The address of the first element (dangling but aligned when there are none), mapping
    /// the object on first use.
    ///
    /// Unlike a pointer obtained from the slice, this one carries the memory's own permissions:
    /// writing through `as_ptr().cast_mut()` is allowed while no slice of this buffer or of a
    /// clone is alive, within `len()` elements. Such writes change only this instance's private
    /// copy-on-write pages (or its local vector): every clone here sees them, the stored object
    /// and all other instances do not.
    pub fn as_ptr(&self) -> *const T {
        self.raw_parts().0
    }

    /// Whether this instance reads the buffer through a mapping of the store's pages (no copy
    /// was made), mapping it on first use. `false` for an empty buffer, for one made here with
    /// `from_vec`, and for an object the host chose to copy (small objects).
    pub fn is_mapped(&self) -> bool {
        matches!(self.contents(), Contents::Region(region) if region.is_mapped())
    }

    /// The pointer and the element count of the contents, loading them on first use.
    fn raw_parts(&self) -> (*mut T, usize) {
        match self.contents() {
            Contents::Empty => (NonNull::<T>::dangling().as_ptr(), 0),
            Contents::Owned(owned) => (owned.ptr, owned.len),
            Contents::Region(region) => {
                (region.as_ptr().cast::<T>(), region.len() / size_of::<T>())
            }
        }
    }

    fn contents(&self) -> &Contents<T> {
        let contents = self.shared.contents.get_or_init(|| self.load());
        if let Contents::Region(region) = contents {
            region.check_live();
        }
        contents
    }

    /// Makes the elements readable here: maps (or copies) the object into a new region.
    fn load(&self) -> Contents<T> {
        let byte_len = self.byte_len();
        let count = elements::<T>(byte_len, self.handle());
        if count == 0 {
            return Contents::Empty;
        }
        let region = Region::map(self.handle(), byte_len);
        if region.is_copied() && byte_len <= SMALL_COPY {
            Contents::Owned(Owned::copy_from(&region, count))
        } else {
            Contents::Region(region)
        }
    }

    fn byte_len(&self) -> usize {
        *self
            .shared
            .byte_len
            .get_or_init(|| object_len(&self.shared.object))
    }
}

/// Stores the bytes of `values` as a new raw-bytes object and returns its handle.
fn put_bytes<T: Plain>(values: &[T]) -> u32 {
    let len = codec::abi_len(size_of_val(values), "the values passed to Buffer");
    // SAFETY: `values` is a live slice of exactly `len` bytes that the host only reads; a
    // `Plain` type has no padding, so every one of those bytes is initialized.
    unsafe { sys::put_bytes(values.as_ptr().cast::<u8>(), len) }
}

/// The length in bytes of the object behind `object`, waiting for it if it is not ready yet.
///
/// # Panics
/// When the host still reports it not ready after `wait` said it was (a ref that is not a
/// buffer's made its way into one), or when it is too large for this guest.
fn object_len(object: &ObjectRef<Bytes>) -> usize {
    let handle = object.handle();
    // SAFETY: `object_len` takes a scalar and touches no guest memory; the host checks the
    // handle against its table.
    let mut len = unsafe { sys::object_len(handle) };
    if len < 0 {
        // Not ready yet; `wait` gives the CPU back (and keeps an actor's books) while it blocks.
        crate::wait(std::slice::from_ref(object), 1, None);
        // SAFETY: as above.
        len = unsafe { sys::object_len(handle) };
    }
    if len < 0 {
        panic!("wasmray: object {handle} is not ready after waiting for it: not a Buffer's object");
    }
    match usize::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("wasmray: object {handle} ({len} bytes) is too large for this guest"),
    }
}

/// The number of `T`s in `bytes` bytes of object `handle`.
///
/// # Panics
/// When `bytes` is not a multiple of `size_of::<T>()`, naming both.
fn elements<T: Plain>(bytes: usize, handle: u32) -> usize {
    let size = size_of::<T>();
    if !bytes.is_multiple_of(size) {
        panic!(
            "wasmray: Buffer<{}> needs a whole number of {size}-byte elements, but object \
             {handle} holds {bytes} bytes",
            std::any::type_name::<T>()
        );
    }
    bytes / size
}

impl<T: Plain> Deref for Buffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Plain> AsRef<[T]> for Buffer<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Plain> Clone for Buffer<T> {
    /// Shares the ref and the mapping: no copy, no host call.
    fn clone(&self) -> Self {
        Self {
            shared: Rc::clone(&self.shared),
        }
    }
}

impl<T: Plain> fmt::Debug for Buffer<T> {
    /// The handle and the length, not the elements (which may be gigabytes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Buffer<{}>(handle {}, {} elements)",
            std::any::type_name::<T>(),
            self.handle(),
            self.len()
        )
    }
}

impl<T: Plain> From<Vec<T>> for Buffer<T> {
    fn from(values: Vec<T>) -> Self {
        Self::from_vec(values)
    }
}

impl<T: Plain> From<&[T]> for Buffer<T> {
    fn from(values: &[T]) -> Self {
        Self::from_slice(values)
    }
}

impl<T: Plain> Serialize for Buffer<T> {
    /// Writes the object ref, as an [`ObjectRef`] does: only inside a value wasmray encodes.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.shared.object.serialize(serializer)
    }
}

impl<'de, T: Plain> Deserialize<'de> for Buffer<T> {
    /// Takes the object ref, as an [`ObjectRef`] does; nothing is read or mapped yet.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ObjectRef::<Bytes>::deserialize(deserializer).map(Self::from_object)
    }
}

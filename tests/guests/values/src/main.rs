//! values: what crosses the boundary by value — std collections and derived types in a crate
//! that depends only on `wasmray` — and large `put`s, which the SDK streams into the store.
//!
//! Each line is `<case>: <what came back>`; expected output, in this order:
//!
//! ```text
//! map: {"key1": ["value"], "key2": ["a", "b"]}
//! set: [1, 2, 3]
//! nested: Outer { name: "outer", inner: Inner { pair: (7, "seven"), maybe: Some(2.5) }, shape: Circle { radius: 1.5 }, tags: {"x"} }
//! enum variants: [Point, Circle { radius: 2.0 }, Square(3.0)]
//! put f64 x 4194304: equal
//! put u8 x 1048576: equal
//! put i8, bool, f32 x 300000: equal
//! put with refs inside: 300000 bytes, refs 5 and 6
//! put of many small parts: 20000 strings, equal
//! wait for more refs than given: Panic "wasmray::wait: num_returns (3) is larger than the number of refs given (2)"
//! ```
//!
//! - `map`, `set`: a task gets and returns a `HashMap<String, Vec<String>>` (the Ray docs' first
//!   `get` example) and a `HashSet<u32>`; printed sorted.
//! - `nested`: structs and an enum derived with `wasmray::Serialize`/`Deserialize`, holding a
//!   tuple, an `Option` and a `BTreeSet`, through a task.
//! - `put ...`: arrays of the types the SDK copies whole, large enough to be streamed, `put`
//!   and read back element for element; `with refs inside`: a struct holding a large byte array
//!   and two refs, streamed, read back by a task; `many small parts`: a `Vec<String>` of 1.3 MB,
//!   streamed piece by piece.
//! - `wait for more refs than given`: a task calls `wait(&[a, b], 3, ..)`, which panics naming
//!   both numbers, as Ray raises.

use std::collections::{BTreeSet, HashMap, HashSet};
use wasmray::{Deserialize, ObjectRef, Serialize, TaskError};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Inner {
    pair: (u8, String),
    maybe: Option<f64>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Point,
    Circle { radius: f64 },
    Square(f64),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Outer {
    name: String,
    inner: Inner,
    shape: Shape,
    tags: BTreeSet<String>,
}

/// A large value with refs inside, for the streamed put.
#[derive(Serialize, Deserialize)]
struct Bundle {
    bytes: Vec<u8>,
    first: ObjectRef<u64>,
    second: ObjectRef<u64>,
}

#[wasmray::remote]
fn extend_map(mut map: HashMap<String, Vec<String>>) -> HashMap<String, Vec<String>> {
    map.insert("key2".into(), vec!["a".into(), "b".into()]);
    map
}

#[wasmray::remote]
fn echo_set(set: HashSet<u32>) -> HashSet<u32> {
    set
}

#[wasmray::remote]
fn echo_outer(outer: Outer) -> Outer {
    outer
}

#[wasmray::remote]
fn echo_shapes(shapes: Vec<Shape>) -> Vec<Shape> {
    shapes
}

#[wasmray::remote]
fn open_bundle(bundle: Bundle) -> Result<(usize, u64, u64), TaskError> {
    Ok((
        bundle.bytes.len(),
        wasmray::get(&bundle.first)?,
        wasmray::get(&bundle.second)?,
    ))
}

#[wasmray::remote]
fn wait_for_too_many() -> usize {
    let refs = [wasmray::put(&1u8), wasmray::put(&2u8)];
    wasmray::wait(&refs, 3, None).0.len()
}

fn round_trip<T: Serialize + wasmray::serde::de::DeserializeOwned + PartialEq>(
    value: &T,
) -> Result<&'static str, TaskError> {
    let back = wasmray::get(&wasmray::put(value))?;
    Ok(if back == *value { "equal" } else { "DIFFERENT" })
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    let map = HashMap::from([("key1".to_string(), vec!["value".to_string()])]);
    let map = wasmray::get(&extend_map::remote(map))?;
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort();
    let listed: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{k:?}: {v:?}"))
        .collect();
    println!("map: {{{}}}", listed.join(", "));

    let set = wasmray::get(&echo_set::remote(HashSet::from([3, 1, 2])))?;
    let mut sorted: Vec<_> = set.into_iter().collect();
    sorted.sort();
    println!("set: {sorted:?}");

    let outer = Outer {
        name: "outer".into(),
        inner: Inner {
            pair: (7, "seven".into()),
            maybe: Some(2.5),
        },
        shape: Shape::Circle { radius: 1.5 },
        tags: BTreeSet::from(["x".to_string()]),
    };
    println!("nested: {:?}", wasmray::get(&echo_outer::remote(outer))?);
    let shapes = vec![
        Shape::Point,
        Shape::Circle { radius: 2.0 },
        Shape::Square(3.0),
    ];
    println!(
        "enum variants: {:?}",
        wasmray::get(&echo_shapes::remote(shapes))?
    );

    let floats: Vec<f64> = (0..4_194_304).map(|i| f64::from(i) * 0.5 - 7.25).collect();
    println!("put f64 x {}: {}", floats.len(), round_trip(&floats)?);
    drop(floats);
    let bytes: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
    println!("put u8 x {}: {}", bytes.len(), round_trip(&bytes)?);
    let n = 300_000;
    let mixed: (Vec<i8>, Vec<bool>, Vec<f32>) = (
        (0..n).map(|i| (i % 256) as u8 as i8).collect(),
        (0..n).map(|i| i % 3 == 0).collect(),
        (0..n).map(|i| i as f32 / 3.0).collect(),
    );
    println!("put i8, bool, f32 x {n}: {}", round_trip(&mixed)?);

    let bundle = Bundle {
        bytes: vec![9; 300_000],
        first: wasmray::put(&5u64),
        second: wasmray::put(&6u64),
    };
    let stored = wasmray::put(&bundle);
    drop(bundle);
    let (len, first, second) = wasmray::get(&open_bundle::remote(&stored))??;
    println!("put with refs inside: {len} bytes, refs {first} and {second}");

    let strings: Vec<String> = (0..20_000)
        .map(|i| format!("string number {i:>10}"))
        .collect();
    println!(
        "put of many small parts: {} strings, {}",
        strings.len(),
        round_trip(&strings)?
    );

    match wasmray::get(&wait_for_too_many::options().max_retries(0).remote()) {
        Ok(count) => println!("wait for more refs than given: unexpectedly returned {count}"),
        Err(error) => println!(
            "wait for more refs than given: {:?} {:?}",
            error.kind,
            error.message.lines().nth(1).unwrap_or("")
        ),
    }
    Ok(())
}

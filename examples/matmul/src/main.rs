//! matmul: a small DAG of tasks over 500×500 matrices (Ray docs: passing object refs between
//! tasks). Two `create_matrix(seed)` tasks run in parallel; `multiply_matrices(a, b)` receives
//! their refs and runs once both are ready. Only the checksum comes back to the driver.
//!
//! Matrices are `Vec<f64>` in row-major order, `N = 500`. Entry `(i, j)` of matrix `seed` is
//! [`entry`]`(seed, i, j) = ((31·seed + 17·i + 7·j) mod 11) / 4 − 1.25`, computed in `u64`: a
//! multiple of 1/4 in `[-1.25, 1.25]`. Every product and partial sum of the multiplication is
//! then a multiple of 1/16 far below 2^49, so f64 computes them exactly and the checksum does
//! not depend on the order of summation: a native computation with the same formula reproduces
//! it bit for bit. The driver multiplies matrix 1 by matrix 2 (`C = A1 · A2`).
//!
//! It prints exactly these lines:
//!
//! ```text
//! matrices: 500x500
//! checksum = <sum of all entries of C, formatted {:.6}>
//! multiply took <seconds, {:.3}>s
//! ```

use std::time::Instant;
use wasmray::TaskError;

/// Rows and columns of every matrix.
const N: usize = 500;

/// Entry `(i, j)` of matrix `seed`: a multiple of 1/4 in `[-1.25, 1.25]`.
pub fn entry(seed: u64, i: u64, j: u64) -> f64 {
    ((31 * seed + 17 * i + 7 * j) % 11) as f64 / 4.0 - 1.25
}

#[wasmray::remote]
fn create_matrix(seed: u64) -> Vec<f64> {
    let mut matrix = Vec::with_capacity(N * N);
    for i in 0..N as u64 {
        for j in 0..N as u64 {
            matrix.push(entry(seed, i, j));
        }
    }
    matrix
}

#[wasmray::remote]
fn multiply_matrices(a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    assert_eq!(
        (a.len(), b.len()),
        (N * N, N * N),
        "matrices must be {N}x{N}"
    );
    let mut c = vec![0.0; N * N];
    for i in 0..N {
        let row = &mut c[i * N..(i + 1) * N];
        for k in 0..N {
            let a_ik = a[i * N + k];
            let b_row = &b[k * N..(k + 1) * N];
            for (c_ij, b_kj) in row.iter_mut().zip(b_row) {
                *c_ij += a_ik * b_kj;
            }
        }
    }
    c
}

#[wasmray::remote]
fn checksum(matrix: Vec<f64>) -> f64 {
    matrix.iter().sum()
}

#[wasmray::main]
fn main() -> Result<(), TaskError> {
    println!("matrices: {N}x{N}");
    let start = Instant::now();
    let a = create_matrix::remote(1);
    let b = create_matrix::remote(2);
    let c = multiply_matrices::remote(a, b);
    let sum = wasmray::get(&checksum::remote(c))?;
    let took = start.elapsed().as_secs_f64();
    println!("checksum = {sum:.6}");
    println!("multiply took {took:.3}s");
    Ok(())
}

//! Data movement for any element type: transpose, concat, constant pad, copy
//! (`ts_transpose`, `ts_concat`, `ts_pad`, `ts_copy`). The element type is a type parameter
//! instead of C's `elem_size`.

use crate::{idx, Dims, Element};

/// Transposes a rank <= 4 tensor (leading dims padded with 1); `perm` as ONNX Transpose.
pub fn transpose<T: Copy>(in_dims: &[i32; 4], perm: &[i32; 4], input: &[T], output: &mut [T]) {
    let dims = in_dims.map(idx);
    let perm = perm.map(idx);
    let size: usize = dims.iter().product();
    assert!(input.len() >= size && output.len() >= size);
    let mut in_strides = [1usize; 4];
    for i in (0..3).rev() {
        in_strides[i] = in_strides[i + 1] * dims[i + 1];
    }
    let out_dims = perm.map(|p| dims[p]);
    let s = perm.map(|p| in_strides[p]); // input stride of each output axis
    if size == 0 {
        return;
    }
    let mut rows = output[..size].chunks_exact_mut(out_dims[3]);
    for o0 in 0..out_dims[0] {
        for o1 in 0..out_dims[1] {
            for o2 in 0..out_dims[2] {
                let src = o0 * s[0] + o1 * s[1] + o2 * s[2];
                if let Some(row) = rows.next() {
                    for (o3, y) in row.iter_mut().enumerate() {
                        *y = input[src + o3 * s[3]];
                    }
                }
            }
        }
    }
}

/// Concatenation: row `i` of the output (of `outer` rows) is the concatenation of chunk `i` of
/// each input, `chunk_elems[k]` elements of input `k`.
pub fn concat<T: Copy>(inputs: &[&[T]], chunk_elems: &[i32], outer: usize, output: &mut [T]) {
    assert_eq!(inputs.len(), chunk_elems.len());
    let row: usize = chunk_elems.iter().map(|&c| idx(c)).sum();
    assert!(output.len() >= row * outer);
    let mut at = 0;
    for r in 0..outer {
        for (x, &chunk) in inputs.iter().zip(chunk_elems) {
            let chunk = idx(chunk);
            output[at..at + chunk].copy_from_slice(&x[r * chunk..(r + 1) * chunk]);
            at += chunk;
        }
    }
}

/// Constant padding of a rank <= 4 tensor: `pads = {b0, b1, b2, b3, e0, e1, e2, e3}` (negative
/// values crop, as ONNX Pad); `value` is the fill element.
pub fn pad<T: Copy>(
    in_dims: &[i32; 4],
    pads: &[i32; 8],
    value: &[T; 1],
    input: &[T],
    output: &mut [T],
) {
    let value = value[0];
    let out_dims: [i32; 4] = core::array::from_fn(|i| in_dims[i] + pads[i] + pads[4 + i]);
    let out = out_dims.map(idx);
    let dims = in_dims.map(idx);
    assert!(input.len() >= dims.iter().product() && output.len() >= out.iter().product());
    // along the last axis, output o3 reads input o3 - pads[3] when that is in [0, in_dims[3])
    let lo = pads[3].max(0);
    let hi = (pads[3] + in_dims[3]).min(out_dims[3]).max(lo);
    let (lo, hi) = (idx(lo), idx(hi));
    let row_len = out[3];
    if row_len == 0 {
        return;
    }
    let inside = |o: usize, d: usize| -> Option<usize> {
        let i = o as i64 - i64::from(pads[d]);
        (0..dims[d] as i64).contains(&i).then_some(i as usize)
    };
    let mut rows = output.chunks_exact_mut(row_len);
    for o0 in 0..out[0] {
        for o1 in 0..out[1] {
            for o2 in 0..out[2] {
                let Some(row) = rows.next() else { return };
                match (inside(o0, 0), inside(o1, 1), inside(o2, 2)) {
                    (Some(i0), Some(i1), Some(i2)) => {
                        let start = ((i0 * dims[1] + i1) * dims[2] + i2) * dims[3];
                        let first = (lo as i64 - i64::from(pads[3])) as usize;
                        row[..lo].fill(value);
                        row[lo..hi]
                            .copy_from_slice(&input[start + first..start + first + (hi - lo)]);
                        row[hi..].fill(value);
                    }
                    _ => row.fill(value),
                }
            }
        }
    }
}

/// Reshape into a separate buffer: `output = input`.
pub fn copy<T: Copy>(input: &[T], output: &mut [T]) {
    let n = output.len();
    output.copy_from_slice(&input[..n]);
}

/// Row bands of NHWC tensors (patch-based execution): `output[b] = input[b, begin..begin + rows]`
/// for every batch `b`.
pub fn slice_rows<T: Copy>(
    input_dims: &Dims,
    begin: usize,
    rows: usize,
    input: &[T],
    output: &mut [T],
) {
    let row = input_dims.w * input_dims.c;
    assert!(begin + rows <= input_dims.h && input.len() >= input_dims.size());
    assert!(output.len() >= input_dims.n * rows * row);
    if row == 0 || rows == 0 {
        return;
    }
    for (b, out) in output
        .chunks_exact_mut(rows * row)
        .take(input_dims.n)
        .enumerate()
    {
        let start = (b * input_dims.h + begin) * row;
        out.copy_from_slice(&input[start..start + rows * row]);
    }
}

/// `output = base` (zeros when `None`), then rows `begin..begin + rows` of every batch = `input`
/// (`[n, rows, w, c]`).
pub fn write_rows<T: Element>(
    output_dims: &Dims,
    begin: usize,
    rows: usize,
    base: Option<&[T]>,
    input: &[T],
    output: &mut [T],
) {
    let size = output_dims.size();
    assert!(output.len() >= size);
    match base {
        Some(base) => output[..size].copy_from_slice(&base[..size]),
        None => output[..size].fill(T::zeroed()),
    }
    write_rows_inplace(output_dims, begin, rows, input, output);
}

/// [`write_rows`] whose base is the output itself (the memory plan runs it in place): only the
/// band moves.
pub fn write_rows_inplace<T: Copy>(
    output_dims: &Dims,
    begin: usize,
    rows: usize,
    input: &[T],
    output: &mut [T],
) {
    let row = output_dims.w * output_dims.c;
    assert!(begin + rows <= output_dims.h && output.len() >= output_dims.size());
    assert!(input.len() >= output_dims.n * rows * row);
    if row == 0 || rows == 0 || output_dims.h == 0 {
        return;
    }
    for (out, x) in output
        .chunks_exact_mut(output_dims.h * row)
        .zip(input.chunks_exact(rows * row))
        .take(output_dims.n)
    {
        out[begin * row..(begin + rows) * row].copy_from_slice(x);
    }
}

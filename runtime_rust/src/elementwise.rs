//! int8 elementwise kernels: broadcasting add and mul, table lookup, clip, requantize
//! (`ts_add_s8`, `ts_mul_s8`, `ts_lookup_s8`, `ts_clip_s8`, `ts_requantize_s8`).

use crate::requantize::requantize;
use crate::{clamp_i8, idx, Operand};

/// Headroom shift of int8 add (`quant.ADD_LEFT_SHIFT`).
pub const ADD_LEFT_SHIFT: u32 = 20;

/// Parameters of int8 add and mul (`ts_elementwise_params`; `quant.add_params` / `quant.mul_multiplier`).
#[derive(Clone, Copy, Debug)]
pub struct ElementwiseParams {
    /// `-zero_point` of a.
    pub a_offset: i32,
    /// `-zero_point` of b.
    pub b_offset: i32,
    /// add only: rescale of a.
    pub a_multiplier: i32,
    /// add only.
    pub a_shift: i32,
    /// add only: rescale of b.
    pub b_multiplier: i32,
    /// add only.
    pub b_shift: i32,
    /// Output rescale.
    pub out_multiplier: i32,
    /// Output rescale shift.
    pub out_shift: i32,
    /// `+zero_point` of the output.
    pub output_offset: i32,
    /// Lower output bound (int8).
    pub act_min: i32,
    /// Upper output bound (int8).
    pub act_max: i32,
}

#[inline(always)]
fn add_one(p: &ElementwiseParams, a: i8, b: i8) -> i8 {
    let ra = requantize(
        (i32::from(a) + p.a_offset) << ADD_LEFT_SHIFT,
        p.a_multiplier,
        p.a_shift,
    );
    let rb = requantize(
        (i32::from(b) + p.b_offset) << ADD_LEFT_SHIFT,
        p.b_multiplier,
        p.b_shift,
    );
    let y = requantize(ra + rb, p.out_multiplier, p.out_shift) + p.output_offset;
    clamp_i8(y, p.act_min, p.act_max)
}

#[inline(always)]
fn mul_one(p: &ElementwiseParams, a: i8, b: i8) -> i8 {
    let prod = (i32::from(a) + p.a_offset) * (i32::from(b) + p.b_offset);
    let y = requantize(prod, p.out_multiplier, p.out_shift) + p.output_offset;
    clamp_i8(y, p.act_min, p.act_max)
}

/// Element strides and dims as indices.
pub(crate) struct Broadcast {
    dims: [usize; 4],
    a: [usize; 4],
    b: [usize; 4],
}

impl Broadcast {
    pub(crate) fn new(out_dims: &[i32; 4], a_strides: &[i32; 4], b_strides: &[i32; 4]) -> Self {
        Self {
            dims: out_dims.map(idx),
            a: a_strides.map(idx),
            b: b_strides.map(idx),
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.dims.iter().product()
    }

    /// One past the largest element index an operand with `strides` reads (0 when nothing is read).
    pub(crate) fn extent(&self, strides: &[usize; 4]) -> usize {
        if self.size() == 0 {
            return 0;
        }
        1 + (0..4)
            .map(|d| (self.dims[d] - 1) * strides[d])
            .sum::<usize>()
    }

    /// Calls `row(y_start, a_start, b_start)` for each innermost row of the output.
    #[inline(always)]
    pub(crate) fn rows(&self, mut row: impl FnMut(usize, usize, usize)) {
        let [d0, d1, d2, d3] = self.dims;
        let mut y = 0;
        for i0 in 0..d0 {
            for i1 in 0..d1 {
                for i2 in 0..d2 {
                    let pa = i0 * self.a[0] + i1 * self.a[1] + i2 * self.a[2];
                    let pb = i0 * self.b[0] + i1 * self.b[1] + i2 * self.b[2];
                    row(y, pa, pb);
                    y += d3;
                }
            }
        }
    }

    /// `y[i] = f(a[ia(i)], b[ib(i)])` over the broadcast.
    #[inline(always)]
    pub(crate) fn apply<T: Copy>(&self, a: &[T], b: &[T], y: &mut [T], f: impl Fn(T, T) -> T) {
        assert!(a.len() >= self.extent(&self.a) && b.len() >= self.extent(&self.b));
        assert!(y.len() >= self.size());
        let (d3, sa, sb) = (self.dims[3], self.a[3], self.b[3]);
        self.rows(|py, pa, pb| {
            let out = &mut y[py..py + d3];
            match (sa, sb) {
                (1, 1) => {
                    for ((y, &a), &b) in out.iter_mut().zip(&a[pa..pa + d3]).zip(&b[pb..pb + d3]) {
                        *y = f(a, b);
                    }
                }
                (1, 0) => {
                    let b = b[pb];
                    for (y, &a) in out.iter_mut().zip(&a[pa..pa + d3]) {
                        *y = f(a, b);
                    }
                }
                (0, 1) => {
                    let a = a[pa];
                    for (y, &b) in out.iter_mut().zip(&b[pb..pb + d3]) {
                        *y = f(a, b);
                    }
                }
                _ => {
                    for (i, y) in out.iter_mut().enumerate() {
                        *y = f(a[pa + i * sa], b[pb + i * sb]);
                    }
                }
            }
        });
    }

    /// The same with one or both operands being the output buffer itself (in place).
    #[inline(always)]
    pub(crate) fn apply_inplace<T: Copy>(
        &self,
        a: Operand<'_, T>,
        b: Operand<'_, T>,
        y: &mut [T],
        f: impl Fn(T, T) -> T,
    ) {
        assert!(y.len() >= self.size());
        let (d3, sa, sb) = (self.dims[3], self.a[3], self.b[3]);
        match (a, b) {
            (Operand::Slice(a), Operand::Slice(b)) => self.apply(a, b, y, f),
            (Operand::Output, Operand::Output) => {
                for y in &mut y[..self.size()] {
                    *y = f(*y, *y);
                }
            }
            (Operand::Output, Operand::Slice(b)) => {
                assert!(b.len() >= self.extent(&self.b));
                self.rows(|py, _, pb| {
                    for (i, y) in y[py..py + d3].iter_mut().enumerate() {
                        *y = f(*y, b[pb + i * sb]);
                    }
                });
            }
            (Operand::Slice(a), Operand::Output) => {
                assert!(a.len() >= self.extent(&self.a));
                self.rows(|py, pa, _| {
                    for (i, y) in y[py..py + d3].iter_mut().enumerate() {
                        *y = f(a[pa + i * sa], *y);
                    }
                });
            }
        }
    }
}

/// int8 add with 4-D broadcasting: `out_dims` are the output's dims, `a_strides` / `b_strides`
/// each operand's element strides per output dim (0 where it is broadcast).
pub fn add_s8(
    params: &ElementwiseParams,
    out_dims: &[i32; 4],
    a_strides: &[i32; 4],
    b_strides: &[i32; 4],
    a: &[i8],
    b: &[i8],
    output: &mut [i8],
) {
    Broadcast::new(out_dims, a_strides, b_strides)
        .apply(a, b, output, |a, b| add_one(params, a, b));
}

/// [`add_s8`] where `a` and/or `b` is the output buffer ([`Operand::Output`]).
pub fn add_s8_inplace(
    params: &ElementwiseParams,
    out_dims: &[i32; 4],
    a_strides: &[i32; 4],
    b_strides: &[i32; 4],
    a: Operand<'_, i8>,
    b: Operand<'_, i8>,
    output: &mut [i8],
) {
    Broadcast::new(out_dims, a_strides, b_strides)
        .apply_inplace(a, b, output, |a, b| add_one(params, a, b));
}

/// int8 mul with 4-D broadcasting (see [`add_s8`]).
pub fn mul_s8(
    params: &ElementwiseParams,
    out_dims: &[i32; 4],
    a_strides: &[i32; 4],
    b_strides: &[i32; 4],
    a: &[i8],
    b: &[i8],
    output: &mut [i8],
) {
    Broadcast::new(out_dims, a_strides, b_strides)
        .apply(a, b, output, |a, b| mul_one(params, a, b));
}

/// [`mul_s8`] where `a` and/or `b` is the output buffer ([`Operand::Output`]).
pub fn mul_s8_inplace(
    params: &ElementwiseParams,
    out_dims: &[i32; 4],
    a_strides: &[i32; 4],
    b_strides: &[i32; 4],
    a: Operand<'_, i8>,
    b: Operand<'_, i8>,
    output: &mut [i8],
) {
    Broadcast::new(out_dims, a_strides, b_strides)
        .apply_inplace(a, b, output, |a, b| mul_one(params, a, b));
}

#[inline(always)]
fn lookup(table: &[i8; 256], x: i8) -> i8 {
    table[usize::from(x as u8 ^ 0x80)]
}

/// `y = table[x + 128]`: sigmoid, tanh and any other unary int8 function (`quant.lookup_table`).
pub fn lookup_s8(table: &[i8; 256], input: &[i8], output: &mut [i8]) {
    assert!(input.len() >= output.len());
    for (y, &x) in output.iter_mut().zip(input) {
        *y = lookup(table, x);
    }
}

/// [`lookup_s8`] in place.
pub fn lookup_s8_inplace(table: &[i8; 256], data: &mut [i8]) {
    for x in data {
        *x = lookup(table, *x);
    }
}

/// `y = clamp(x, act_min, act_max)`.
pub fn clip_s8(act_min: i32, act_max: i32, input: &[i8], output: &mut [i8]) {
    assert!(input.len() >= output.len());
    for (y, &x) in output.iter_mut().zip(input) {
        *y = clamp_i8(i32::from(x), act_min, act_max);
    }
}

/// [`clip_s8`] in place.
pub fn clip_s8_inplace(act_min: i32, act_max: i32, data: &mut [i8]) {
    for x in data {
        *x = clamp_i8(i32::from(*x), act_min, act_max);
    }
}

#[inline(always)]
fn requantize_one(input_offset: i32, multiplier: i32, shift: i32, output_offset: i32, x: i8) -> i8 {
    let y = requantize(i32::from(x) + input_offset, multiplier, shift) + output_offset;
    clamp_i8(y, i32::from(i8::MIN), i32::from(i8::MAX))
}

/// `y = clamp(requantize(x + input_offset, multiplier, shift) + output_offset)`: int8 -> int8
/// between two quantizations.
pub fn requantize_s8(
    input_offset: i32,
    multiplier: i32,
    shift: i32,
    output_offset: i32,
    input: &[i8],
    output: &mut [i8],
) {
    assert!(input.len() >= output.len());
    for (y, &x) in output.iter_mut().zip(input) {
        *y = requantize_one(input_offset, multiplier, shift, output_offset, x);
    }
}

/// [`requantize_s8`] in place.
pub fn requantize_s8_inplace(
    input_offset: i32,
    multiplier: i32,
    shift: i32,
    output_offset: i32,
    data: &mut [i8],
) {
    for x in data {
        *x = requantize_one(input_offset, multiplier, shift, output_offset, *x);
    }
}

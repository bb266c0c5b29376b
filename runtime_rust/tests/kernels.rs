//! Small hand-checked cases for the kernels (the full comparison with the Python reference and
//! with C runs from tests/test_rust.py on generated models).

use tinysplit_rt::*;

#[test]
fn concat_interleaves_chunks_row_by_row() {
    let a = [1, 2, 3, 4];
    let b = [10, 20, 30, 40, 50, 60];
    let mut y = [0i8; 10];
    concat(&[&a, &b], &[2, 3], 2, &mut y);
    assert_eq!(y, [1, 2, 10, 20, 30, 3, 4, 40, 50, 60]);
}

#[test]
fn pad_fills_and_crops() {
    // [1, 1, 2, 3] -> pad one row before, crop one column at the end, add one after: [1, 1, 3, 3]
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut y = [0.0f32; 9];
    pad(
        &[1, 1, 2, 3],
        &[0, 0, 1, -1, 0, 0, 0, 1],
        &[-1.0],
        &x,
        &mut y,
    );
    assert_eq!(y, [-1.0, -1.0, -1.0, 2.0, 3.0, -1.0, 5.0, 6.0, -1.0]);
}

#[test]
fn transpose_moves_axes() {
    let x: [i8; 6] = [0, 1, 2, 3, 4, 5]; // [1, 1, 2, 3]
    let mut y = [0i8; 6];
    transpose(&[1, 1, 2, 3], &[0, 1, 3, 2], &x, &mut y);
    assert_eq!(y, [0, 3, 1, 4, 2, 5]);
}

#[test]
fn copy_copies() {
    let mut y = [0i8; 3];
    copy(&[1i8, 2, 3], &mut y);
    assert_eq!(y, [1, 2, 3]);
}

fn add_params() -> ElementwiseParams {
    // illustrative parameters of the right ranges (the in-place test compares two kernels)
    ElementwiseParams {
        a_offset: -3,
        b_offset: 4,
        a_multiplier: 1073741824,
        a_shift: -1,
        b_multiplier: 1073741824,
        b_shift: 0,
        out_multiplier: 1280,
        out_shift: 1,
        output_offset: 1,
        act_min: -128,
        act_max: 127,
    }
}

#[test]
fn in_place_add_equals_out_of_place() {
    let dims = [1, 2, 3, 4];
    let full = [0, 12, 4, 1];
    let row = [0, 0, 0, 1]; // b broadcast along all but the last axis
    let a: [i8; 24] = core::array::from_fn(|i| (i as i32 * 9 - 100) as i8);
    let b: [i8; 4] = [-128, -3, 50, 127];
    let mut want = [0i8; 24];
    add_s8(&add_params(), &dims, &full, &row, &a, &b, &mut want);
    let mut got = a;
    add_s8_inplace(
        &add_params(),
        &dims,
        &full,
        &row,
        Operand::Output,
        Operand::Slice(&b),
        &mut got,
    );
    assert_eq!(got, want);
    // the broadcast operand second, the in-place one first
    let mut want2 = [0i8; 24];
    add_s8(&add_params(), &dims, &row, &full, &b, &a, &mut want2);
    let mut got2 = a;
    add_s8_inplace(
        &add_params(),
        &dims,
        &row,
        &full,
        Operand::Slice(&b),
        Operand::Output,
        &mut got2,
    );
    assert_eq!(got2, want2);
    // x + x
    let mut want3 = [0i8; 24];
    add_s8(&add_params(), &dims, &full, &full, &a, &a, &mut want3);
    let mut got3 = a;
    add_s8_inplace(
        &add_params(),
        &dims,
        &full,
        &full,
        Operand::Output,
        Operand::Output,
        &mut got3,
    );
    assert_eq!(got3, want3);
}

#[test]
fn unary_in_place_variants_equal_out_of_place() {
    let x: [i8; 256] = core::array::from_fn(|i| (i as i32 - 128) as i8);
    let table: [i8; 256] = core::array::from_fn(|i| (255 - i as i32 - 128) as i8);
    let (mut want, mut got) = ([0i8; 256], x);
    lookup_s8(&table, &x, &mut want);
    lookup_s8_inplace(&table, &mut got);
    assert_eq!(got, want);
    assert_eq!(want[0], 127); // table[x + 128] with x = -128
    let (mut want, mut got) = ([0i8; 256], x);
    clip_s8(-5, 20, &x, &mut want);
    clip_s8_inplace(-5, 20, &mut got);
    assert_eq!(got, want);
    assert_eq!((want[0], want[255], want[130]), (-5, 20, 2));
    let (mut want, mut got) = ([0i8; 256], x);
    requantize_s8(3, 1518500250, 1, -7, &x, &mut want);
    requantize_s8_inplace(3, 1518500250, 1, -7, &mut got);
    assert_eq!(got, want);
}

#[test]
fn quantize_rounds_half_to_even_and_saturates() {
    let x = [
        0.5f32,
        1.5,
        2.5,
        -0.5,
        -1.5,
        1000.0,
        -1000.0,
        f32::NAN,
        0.49,
    ];
    let mut y = [0i8; 9];
    quantize_f32_s8(1.0, 2, &x, &mut y);
    assert_eq!(y, [2, 4, 4, 2, 0, 127, -128, 2, 2]);
    let mut back = [0.0f32; 3];
    dequantize_s8_f32(0.5, 2, &[2, 4, -128], &mut back);
    assert_eq!(back, [0.0, 1.0, -65.0]);
}

#[test]
fn softmax_of_equal_values_is_uniform() {
    let table: [i32; 256] =
        core::array::from_fn(|k| (1_048_576.0 * libm_exp(-0.1 * k as f64)).round() as i32);
    let mut y = [0i8; 4];
    // y = zy + round(E * 2^16 * 256 / (4E * 2^16)) = -128 + 64
    softmax_s8(&table, 256 * 65536, -128, 1, 4, &[7, 7, 7, 7], &mut y);
    assert_eq!(y, [-64; 4]);
}

fn libm_exp(x: f64) -> f64 {
    x.exp()
}

#[test]
fn average_pool_counts_padding_only_when_asked() {
    let dims = Dims {
        n: 1,
        h: 2,
        w: 2,
        c: 1,
    };
    let out = Dims {
        n: 1,
        h: 1,
        w: 1,
        c: 1,
    };
    let mut params = PoolParams {
        kernel: Hw { h: 3, w: 3 },
        stride: Hw { h: 1, w: 1 },
        pad: Padding {
            top: 1,
            left: 1,
            bottom: 0,
            right: 0,
        },
        count_include_pad: false,
        act_min: -128,
        act_max: 127,
        input_zero_point: -10,
    };
    let x = [1i8, 2, 3, 5];
    let mut y = [0i8; 1];
    avg_pool_s8(&params, &dims, &x, &out, &mut y);
    assert_eq!(y, [3]); // 11 / 4 = 2.75
    params.count_include_pad = true;
    avg_pool_s8(&params, &dims, &x, &out, &mut y);
    assert_eq!(y, [-4]); // (11 - 50) / 9 = -4.33
    max_pool_s8(&params, &dims, &x, &out, &mut y);
    assert_eq!(y, [5]);
}

#[test]
fn kernels_need_no_scratch() {
    let p = ConvParams {
        input_offset: 0,
        output_offset: 0,
        stride: Hw { h: 1, w: 1 },
        dilation: Hw { h: 1, w: 1 },
        pad: Padding {
            top: 0,
            left: 0,
            bottom: 0,
            right: 0,
        },
        groups: 1,
        act_min: -128,
        act_max: 127,
    };
    let d = Dims {
        n: 1,
        h: 8,
        w: 8,
        c: 8,
    };
    let f = Dims {
        n: 4,
        h: 3,
        w: 3,
        c: 8,
    };
    assert_eq!(conv_s8_buffer_size(&p, &d, &f, &d), 0);
    assert_eq!(depthwise_conv_s8_buffer_size(&p, &d, &f, &d), 0);
    let fc = FcParams {
        input_offset: 0,
        output_offset: 0,
        act_min: -128,
        act_max: 127,
    };
    assert_eq!(fully_connected_s8_buffer_size(&fc, 40, 10), 0);
}

#[test]
fn conv_with_padding_and_groups() {
    // 1x3x3x2 input, two groups of one channel, 2x2 kernel, one pixel of padding top-left, stride 2
    let p = ConvParams {
        input_offset: 1,
        output_offset: 0,
        stride: Hw { h: 2, w: 2 },
        dilation: Hw { h: 1, w: 1 },
        pad: Padding {
            top: 1,
            left: 1,
            bottom: 0,
            right: 0,
        },
        groups: 2,
        act_min: -128,
        act_max: 127,
    };
    let x: [i8; 18] = core::array::from_fn(|i| i as i8);
    let w = [1i8, 1, 1, 1, -1, -1, -1, -1]; // [2, 2, 2, 1]
    let one = [1 << 30; 2];
    let shift = [1; 2]; // multiplier 1.0
    let q = ChannelQuant {
        multiplier: &one,
        shift: &shift,
    };
    let mut y = [0i8; 8];
    conv_s8(
        &p,
        &q,
        &Dims {
            n: 1,
            h: 3,
            w: 3,
            c: 2,
        },
        &x,
        &Dims {
            n: 2,
            h: 2,
            w: 2,
            c: 1,
        },
        &w,
        Some(&[-100, 0]),
        &Dims {
            n: 1,
            h: 2,
            w: 2,
            c: 2,
        },
        &mut y,
        &mut [],
    );
    // output (0, 0) sees only input (0, 0): channel 0: -100 + (0 + 1), channel 1: -(1 + 1)
    assert_eq!(&y[..2], &[-99, -2]);
    // output (1, 1) sees inputs (1..3, 1..3): channel 0 values 8, 10, 14, 16 (+1 each)
    assert_eq!(
        &y[6..],
        &[-100 + 8 + 10 + 14 + 16 + 4, -(9 + 11 + 15 + 17 + 4)]
    );
}

#[test]
fn row_bands_move_rows_per_batch() {
    let dims = Dims {
        n: 2,
        h: 3,
        w: 1,
        c: 2,
    };
    let x: [i8; 12] = core::array::from_fn(|i| i as i8);
    let mut band = [0i8; 4];
    slice_rows(&dims, 1, 1, &x, &mut band);
    assert_eq!(band, [2, 3, 8, 9]);
    let mut y = [7i8; 12];
    write_rows(&dims, 2, 1, None, &[-1, -2, -3, -4], &mut y);
    assert_eq!(y, [0, 0, 0, 0, -1, -2, 0, 0, 0, 0, -3, -4]);
    write_rows(&dims, 0, 1, Some(&x), &[50, 51, 52, 53], &mut y);
    assert_eq!(y, [50, 51, 2, 3, 4, 5, 52, 53, 8, 9, 10, 11]);
    write_rows_inplace(&dims, 1, 1, &[60, 61, 62, 63], &mut y);
    assert_eq!(y, [50, 51, 60, 61, 4, 5, 52, 53, 62, 63, 10, 11]);
}

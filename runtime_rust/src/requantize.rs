//! The fixed-point requantization of `quant.py`, bit for bit (`runtime_c/src/requantize.h`).
//!
//! ```text
//! requantize(acc, m, s) = rdiv_pot(high_mul(acc << max(s, 0), m), max(-s, 0))
//! high_mul(a, m)        = (a * m + 2^30) >> 31      (64-bit product, arithmetic shift)
//! rdiv_pot(x, e)        = x / 2^e rounded half away from zero
//! ```
//! The left shift happens in 32 bits with two's complement wrap-around (as the reference's
//! `astype(int32)`); `m` is in `[0, 2^31)` and `s` in `[-31, 30]` (`quant.quantize_multiplier`).

/// `(a * m + 2^30) >> 31` on 64 bits, truncated to 32 bits.
#[inline(always)]
pub fn high_mul(a: i32, m: i32) -> i32 {
    ((i64::from(a) * i64::from(m) + (1 << 30)) >> 31) as i32
}

/// `x / 2^e` rounded half away from zero, for `0 <= e <= 31`.
#[inline(always)]
pub fn rdiv_pot(x: i32, e: u32) -> i32 {
    let mask = (1u32 << e).wrapping_sub(1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(remainder > threshold)
}

/// The rescale every int8 kernel applies to its `i32` accumulator.
#[inline(always)]
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0) as u32;
    let right = (-shift).max(0) as u32;
    rdiv_pot(high_mul(acc.wrapping_shl(left), multiplier), right)
}

/// [`requantize`] prepared once per output channel for the hot loops.
///
/// With `right = -s >= 1` the two roundings fuse into one 64-bit step:
/// `rdiv_pot(h, e) = floor((h + 2^(e-1) - [h < 0]) / 2^e)` and `h = floor((x*m + 2^30) / 2^31)`
/// give `requantize = floor((x*m + 2^30 + 2^(30+e) - [h < 0] * 2^31) / 2^(31+e))`. `[h < 0]` may be
/// replaced by `[x*m < 0]`: they differ only when `x*m < 0 <= h`, i.e. `h == 0`, where rounding with
/// `e >= 1` has no tie to break; and `[x*m < 0]` is the sign bit of `x ^ m` except when `x*m == 0`,
/// by the same argument. So the result equals [`requantize`] for every `i32` accumulator (the
/// unit tests check it exhaustively over edge cases and on random values).
#[derive(Clone, Copy, Debug)]
pub struct Requant {
    round: i64,
    multiplier: i32,
    left: u32,
    right_m1: i32,
}

impl Requant {
    /// Prepares `(multiplier, shift)`.
    #[inline(always)]
    pub fn new(multiplier: i32, shift: i32) -> Self {
        let right = (-shift).max(0);
        let round = (1i64 << 30) + if right >= 1 { 1i64 << (30 + right) } else { 0 };
        Self {
            round,
            multiplier,
            left: shift.max(0) as u32,
            right_m1: right - 1,
        }
    }

    /// `requantize(acc, multiplier, shift)`.
    #[inline(always)]
    pub fn apply(&self, acc: i32) -> i32 {
        if self.right_m1 >= 0 {
            let negative = i64::from(((acc ^ self.multiplier) as u32) >> 31);
            let v = self.round - (negative << 31) + i64::from(acc) * i64::from(self.multiplier);
            ((v >> 32) as i32) >> self.right_m1
        } else {
            ((self.round + i64::from(acc.wrapping_shl(self.left)) * i64::from(self.multiplier))
                >> 31) as i32
        }
    }

    /// `clamp(requantize(acc) + output_offset, act_min, act_max)` as int8.
    #[inline(always)]
    pub fn output(&self, acc: i32, output_offset: i32, act_min: i32, act_max: i32) -> i8 {
        crate::clamp_i8(self.apply(acc) + output_offset, act_min, act_max)
    }
}

/// `clamp(requantize(acc, m, s) + output_offset, act_min, act_max)`: the conv / fully connected epilogue.
#[inline(always)]
pub fn requantize_output(
    acc: i32,
    multiplier: i32,
    shift: i32,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
) -> i8 {
    crate::clamp_i8(
        requantize(acc, multiplier, shift) + output_offset,
        act_min,
        act_max,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependencies in no_std tests).
    pub(crate) struct Lcg(u64);

    impl Lcg {
        pub(crate) fn new(seed: u64) -> Self {
            Self(
                seed.wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407),
            )
        }
        pub(crate) fn next_u32(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
    }

    #[test]
    fn rdiv_pot_rounds_half_away_from_zero() {
        assert_eq!(rdiv_pot(5, 1), 3);
        assert_eq!(rdiv_pot(-5, 1), -3);
        assert_eq!(rdiv_pot(3, 1), 2);
        assert_eq!(rdiv_pot(-3, 1), -2);
        assert_eq!(rdiv_pot(6, 2), 2);
        assert_eq!(rdiv_pot(-6, 2), -2);
        assert_eq!(rdiv_pot(5, 2), 1);
        assert_eq!(rdiv_pot(-5, 2), -1);
        assert_eq!(rdiv_pot(7, 0), 7);
        assert_eq!(rdiv_pot(i32::MIN, 31), -1);
        assert_eq!(rdiv_pot(i32::MAX, 31), 1);
        assert_eq!(rdiv_pot(-(1 << 30), 31), -1);
        assert_eq!(rdiv_pot((1 << 30) - 1, 31), 0);
    }

    #[test]
    fn prepared_requant_equals_plain_requantize() {
        let accs = [
            0,
            1,
            -1,
            2,
            -2,
            127,
            -128,
            255,
            -255,
            1 << 20,
            -(1 << 20),
            (1 << 30) - 1,
            -(1 << 30),
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
        ];
        let multipliers = [0, 1 << 30, (1 << 30) + 1, 1518500250, i32::MAX];
        for shift in -31..=30 {
            for &m in &multipliers {
                let q = Requant::new(m, shift);
                for &acc in &accs {
                    assert_eq!(q.apply(acc), requantize(acc, m, shift), "{acc} {m} {shift}");
                }
            }
        }
        let mut r = Lcg::new(7);
        for _ in 0..200_000 {
            let acc = r.next_u32() as i32 >> (r.next_u32() % 32);
            let m = ((r.next_u32() >> 1) | (1 << 30)) as i32;
            let shift = (r.next_u32() % 62) as i32 - 31;
            assert_eq!(Requant::new(m, shift).apply(acc), requantize(acc, m, shift));
        }
    }
}

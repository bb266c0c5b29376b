//! Noise at the cut (`ts_noise_s8`): `y = sat8(x + n)`, `n` drawn by inversion of a CDF table from
//! one little-endian 32-bit word of the platform's CSPRNG per element (`quant.noise_table`,
//! `quant.add_noise`).

/// The platform's cryptographically strong random generator, as generated models see it: fills
/// `buf` with the next bytes of one stream. Noise hides activations only while the server cannot
/// predict it: on a device this must be a CSPRNG (Ariel OS: `ariel_os::random::crypto_rng()`).
pub trait Random {
    /// Fills `buf` with fresh random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Random for F {
    fn fill(&mut self, buf: &mut [u8]) {
        self(buf);
    }
}

/// Elements per [`Random::fill`] in generated code: a noise layer holds 256 random bytes on the stack.
pub const RANDOM_CHUNK: usize = 64;

/// The rounded noise law as a CDF over integers (`ts_noise_params`):
/// `n = min_value + #{i : cdf[i] <= u}`.
#[derive(Clone, Copy, Debug)]
pub struct NoiseParams<'a> {
    /// `-K`.
    pub min_value: i32,
    /// `2K >= 2` nondecreasing entries.
    pub cdf: &'a [u32],
}

/// `#{i : cdf[i] <= u}` for a nondecreasing table of size >= 1, with a probe sequence whose length
/// depends on the table size only, never on `u` (the layer's time, sent as telemetry, says
/// nothing about the noise).
#[inline(always)]
fn count_at_most(cdf: &[u32], u: u32) -> i32 {
    let mut base = 0usize;
    let mut n = cdf.len();
    while n > 1 {
        let half = n / 2;
        // invariant: the count lies in [base, base + n]
        base += usize::from(cdf[base + half] <= u) * half;
        n -= half;
    }
    (base + usize::from(cdf[base] <= u)) as i32
}

/// `y = sat8(x + n)`; element `j` draws `n` from `random[4j..4j + 4]`. Elementwise: a long tensor
/// may run in pieces, each with the next bytes of the stream.
pub fn noise_s8(params: &NoiseParams<'_>, random: &[u8], input: &[i8], output: &mut [i8]) {
    assert!(!params.cdf.is_empty() && input.len() >= output.len());
    assert!(random.len() >= 4 * output.len());
    for ((y, &x), r) in output.iter_mut().zip(input).zip(random.chunks_exact(4)) {
        let u = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let v = i32::from(x) + params.min_value + count_at_most(params.cdf, u);
        *y = v.clamp(-128, 127) as i8;
    }
}

/// [`noise_s8`] in place.
pub fn noise_s8_inplace(params: &NoiseParams<'_>, random: &[u8], data: &mut [i8]) {
    assert!(!params.cdf.is_empty() && random.len() >= 4 * data.len());
    for (x, r) in data.iter_mut().zip(random.chunks_exact(4)) {
        let u = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        let v = i32::from(*x) + params.min_value + count_at_most(params.cdf, u);
        *x = v.clamp(-128, 127) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_at_most_is_a_right_bisection() {
        let cdf = [10, 20, 20, 30, 40, 50];
        for u in [0, 9, 10, 19, 20, 21, 29, 30, 49, 50, u32::MAX] {
            let want = cdf.iter().filter(|&&c| c <= u).count() as i32;
            assert_eq!(count_at_most(&cdf, u), want, "u = {u}");
        }
        assert_eq!(count_at_most(&[5], 4), 0);
        assert_eq!(count_at_most(&[5], 5), 1);
    }

    #[test]
    fn noise_saturates_and_matches_in_place() {
        // K = 2: n in [-2, 2]; u below every entry gives -2, at or above all gives +2
        let cdf = [100, 200, 300, 400];
        let params = NoiseParams {
            min_value: -2,
            cdf: &cdf,
        };
        let x = [0i8, 127, -128, 5];
        let mut random = [0u8; 16];
        for (r, u) in random.chunks_exact_mut(4).zip([0u32, 400, 0, 250]) {
            r.copy_from_slice(&u.to_le_bytes());
        }
        let mut y = [0i8; 4];
        noise_s8(&params, &random, &x, &mut y);
        assert_eq!(y, [-2, 127, -128, 5]);
        let mut z = x;
        noise_s8_inplace(&params, &random, &mut z);
        assert_eq!(z, y);
    }
}

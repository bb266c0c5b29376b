//! The static activation arena and safe, checked views into it.
//!
//! tinysplit's memory plan places every intermediate tensor and every kernel's scratch buffer at
//! a byte offset in one arena. Tensors whose lifetimes overlap never overlap in memory, except
//! that an op the plan runs in place writes its output over its input (same offset). Generated
//! code turns the plan into Rust borrows per kernel call:
//!
//! 1. [`regions`] splits the arena into the disjoint `&mut [u8]` byte ranges that call touches
//!    (each distinct range once; it panics if two of them overlap, which a valid plan never asks);
//! 2. [`view`] / [`view_mut`] reinterpret a range as `&[i8]`, `&[f32]`, ... (checked by `bytemuck`
//!    for size and alignment: the arena is 16-byte aligned and the plan's offsets are multiples of 8);
//! 3. an in-place op gets the single `&mut` range through the kernel's `*_inplace` variant.
//!
//! So the borrow checker sees exactly one mutable borrow per range and call, and no `unsafe` is
//! needed anywhere.

/// Element types a tensor in the arena can have.
pub trait Element: bytemuck::Pod {}
impl Element for i8 {}
impl Element for u8 {}
impl Element for i32 {}
impl Element for f32 {}

/// `N` bytes of activation memory, aligned for every element type the kernels use.
///
/// `Arena::new()` is a `const fn`, so a model (and its arena) can live in a `static` (e.g. with
/// `static_cell`) instead of on the stack.
#[repr(C, align(16))]
#[derive(Clone, Debug)]
pub struct Arena<const N: usize>([u8; N]);

impl<const N: usize> Arena<N> {
    /// A zeroed arena.
    pub const fn new() -> Self {
        Self([0; N])
    }

    /// The arena's bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Size in bytes.
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether the arena has no bytes.
    pub const fn is_empty(&self) -> bool {
        N == 0
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Splits `arena` into the byte ranges `spans` = `[(offset, len), ...]`, returned in the order
/// asked. The ranges must be pairwise disjoint and inside the arena (else this panics).
pub fn regions<const K: usize>(arena: &mut [u8], spans: [(usize, usize); K]) -> [&mut [u8]; K] {
    let mut order: [usize; K] = core::array::from_fn(|i| i);
    order.sort_unstable_by_key(|&i| spans[i].0);
    let mut out: [&mut [u8]; K] = core::array::from_fn(|_| Default::default());
    let mut rest = arena;
    let mut base = 0;
    for &i in &order {
        let (offset, len) = spans[i];
        assert!(offset >= base, "arena regions overlap");
        let (_, tail) = core::mem::take(&mut rest).split_at_mut(offset - base);
        let (region, tail) = tail.split_at_mut(len);
        out[i] = region;
        rest = tail;
        base = offset + len;
    }
    out
}

/// The bytes of an arena range as a slice of `T`.
#[inline]
pub fn view<T: Element>(bytes: &[u8]) -> &[T] {
    bytemuck::cast_slice(bytes)
}

/// The bytes of an arena range as a mutable slice of `T`.
#[inline]
pub fn view_mut<T: Element>(bytes: &mut [u8]) -> &mut [T] {
    bytemuck::cast_slice_mut(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_come_back_in_the_order_asked() {
        let mut arena = Arena::<64>::new();
        let [a, b, c] = regions(arena.bytes_mut(), [(32, 8), (0, 16), (16, 16)]);
        a.fill(1);
        b.fill(2);
        c.fill(3);
        assert_eq!((a.len(), b.len(), c.len()), (8, 16, 16));
        let bytes = arena.bytes_mut();
        assert!(bytes[..16].iter().all(|&x| x == 2));
        assert!(bytes[16..32].iter().all(|&x| x == 3));
        assert!(bytes[32..40].iter().all(|&x| x == 1));
        assert!(bytes[40..].iter().all(|&x| x == 0));
    }

    #[test]
    #[should_panic(expected = "overlap")]
    fn overlapping_regions_panic() {
        let mut arena = Arena::<64>::new();
        let _ = regions(arena.bytes_mut(), [(0, 16), (8, 16)]);
    }

    #[test]
    #[should_panic]
    fn regions_past_the_end_panic() {
        let mut arena = Arena::<64>::new();
        let _ = regions(arena.bytes_mut(), [(60, 8)]);
    }

    #[test]
    fn typed_views_of_aligned_offsets() {
        let mut arena = Arena::<64>::new();
        let [f, i] = regions(arena.bytes_mut(), [(8, 16), (40, 3)]);
        view_mut::<f32>(f).copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        view_mut::<i8>(i).copy_from_slice(&[-1, 0, 1]);
        assert_eq!(view::<f32>(f), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(view::<i8>(i), &[-1, 0, 1]);
    }
}

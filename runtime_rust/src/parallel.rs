//! Layers split over cores by output rows (`tinysplit compile --cores N --lang rust`).
//!
//! A convolution or pooling layer on a batch-1 NHWC tensor computes each output row from a window
//! of input rows, the same way whatever other rows it computes. So a layer can be cut into row
//! bands, one per core: band `k` reads its input rows (with the window's halo, padding only at the
//! tensor's edges) and writes its own output rows. [`row_band_for`] is that arithmetic (the twin of
//! the C runtime's `ts_row_band_for`), [`split_rows`] cuts a layer's buffers into [`Band`]s and
//! hands them to a [`Cores`] implementation, which runs them (one per core) and returns when all
//! are done: that return is the layer's barrier.
//!
//! Without `unsafe`, a core can only be handed borrows that end before the handing-over call
//! returns, so implementations either start threads scoped to the call, or copy: a worker core
//! that lives longer (a persistent host thread, an Ariel OS thread pinned to a core) gets its band
//! through a [`Handoff`] buffer of its own, which the calling core fills with the band's input rows
//! and empties of its output rows ([`run_on_workers`], over the platform's [`Worker`]s: a lock and
//! a wake-up each). [`handoff_bytes`] sizes that buffer at compile time.
//!
//! [`OneCore`] runs the bands one after the other on the calling core.

use crate::arena::{Arena, Element};

/// The rows of one band of a row-split layer (`ts_row_band`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowBand {
    /// First output row of the band.
    pub out_begin: usize,
    /// Output rows of the band (0: this part has no rows).
    pub out_rows: usize,
    /// First input row the band reads.
    pub in_begin: usize,
    /// Input rows the band reads.
    pub in_rows: usize,
    /// Zero rows above the band's input (the layer's padding, where the band starts at the top).
    pub pad_top: usize,
    /// Zero rows below the band's input.
    pub pad_bottom: usize,
}

/// Part `part` of `parts` of a layer with `out_h` output rows computed from `in_h` input rows by a
/// window of `kernel_extent` rows (dilation included) moved by `stride`, with `pad_top` zero rows
/// above the input. Parts get `ceil(out_h / parts)` rows each, the last ones fewer or none, as
/// `ts_row_band_for` in the C runtime and `core_plan` in the compiler's tiling report.
pub const fn row_band_for(
    part: usize,
    parts: usize,
    out_h: usize,
    in_h: usize,
    stride: usize,
    kernel_extent: usize,
    pad_top: usize,
) -> RowBand {
    let chunk = out_h.div_ceil(parts);
    let out_begin = min(part * chunk, out_h);
    let out_end = min(out_begin + chunk, out_h);
    if out_end <= out_begin {
        return RowBand {
            out_begin,
            out_rows: 0,
            in_begin: 0,
            in_rows: 0,
            pad_top: 0,
            pad_bottom: 0,
        };
    }
    // input rows the band's windows cover, before clipping to the tensor (may be < 0 or > in_h)
    let want_begin = (out_begin * stride) as isize - pad_top as isize;
    let want_end = ((out_end - 1) * stride + kernel_extent) as isize - pad_top as isize;
    let in_begin = if want_begin > 0 { want_begin } else { 0 };
    let in_end = if want_end < in_h as isize {
        want_end
    } else {
        in_h as isize
    };
    let in_end = if in_end > in_begin { in_end } else { in_begin };
    RowBand {
        out_begin,
        out_rows: out_end - out_begin,
        in_begin: in_begin as usize,
        in_rows: (in_end - in_begin) as usize,
        pad_top: (in_begin - want_begin) as usize,
        pad_bottom: (want_end - in_end) as usize,
    }
}

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

/// The geometry of one row-split layer, as the generated code states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowSplit {
    /// Output rows.
    pub out_h: usize,
    /// Input rows.
    pub in_h: usize,
    /// Window stride along rows.
    pub stride: usize,
    /// Window extent along rows (dilation included).
    pub kernel_extent: usize,
    /// The layer's zero rows above the input.
    pub pad_top: usize,
    /// Bytes of one input row (width x channels x element size).
    pub in_row_bytes: usize,
    /// Bytes of one output row.
    pub out_row_bytes: usize,
    /// Scratch bytes of one core (the layer's scratch region holds one such slice per core).
    pub scratch_bytes: usize,
}

impl RowSplit {
    /// Part `part` of `parts` ([`row_band_for`]).
    pub const fn band(&self, part: usize, parts: usize) -> RowBand {
        row_band_for(
            part,
            parts,
            self.out_h,
            self.in_h,
            self.stride,
            self.kernel_extent,
            self.pad_top,
        )
    }
}

/// The kernel call of one band: `(rows, input rows, output rows, scratch)`, buffers as bytes (the
/// generated function views them typed). A plain function, so that it can be handed to another
/// core as it is.
pub type BandTask = fn(&RowBand, &[u8], &mut [u8], &mut [u8]);

/// One core's share of a row-split layer.
#[derive(Debug, Default)]
pub struct Band<'a> {
    /// Which rows.
    pub rows: RowBand,
    /// The input rows `rows.in_begin .. rows.in_begin + rows.in_rows`.
    pub input: &'a [u8],
    /// The output rows `rows.out_begin .. rows.out_begin + rows.out_rows`.
    pub output: &'a mut [u8],
    /// This core's scratch.
    pub scratch: &'a mut [u8],
}

impl Band<'_> {
    /// Runs `task` on this band, on the calling core.
    pub fn run(&mut self, task: BandTask) {
        task(&self.rows, self.input, self.output, self.scratch);
    }
}

/// Runs the bands of a row-split layer, band `k` on core `k`.
pub trait Cores {
    /// Cores that share a layer (the calling one included), at least 1.
    fn count(&self) -> usize;

    /// Runs `task` on every band (at most [`count`](Cores::count) of them), and returns once all
    /// of them are done, their output rows written.
    fn run(&self, task: BandTask, bands: &mut [Band<'_>]);
}

/// One core: the bands run one after the other (a split layer with one band is the whole layer).
#[derive(Clone, Copy, Debug, Default)]
pub struct OneCore;

impl Cores for OneCore {
    fn count(&self) -> usize {
        1
    }

    fn run(&self, task: BandTask, bands: &mut [Band<'_>]) {
        for band in bands {
            band.run(task);
        }
    }
}

/// Splits a layer by output rows over `cores` (at most `MAX_CORES`, the number the model's memory
/// plan holds scratch for) and runs `task` on each band; returns when every band is done.
///
/// `input` and `output` are the layer's whole tensors, `scratch` its scratch region (`MAX_CORES`
/// slices of `split.scratch_bytes`, or empty).
pub fn split_rows<const MAX_CORES: usize>(
    cores: &impl Cores,
    split: &RowSplit,
    input: &[u8],
    output: &mut [u8],
    scratch: &mut [u8],
    task: BandTask,
) {
    let parts = cores.count();
    assert!(
        (1..=MAX_CORES).contains(&parts),
        "the model was compiled for 1 to {MAX_CORES} cores, not {parts}"
    );
    assert!(input.len() == split.in_h * split.in_row_bytes);
    assert!(output.len() == split.out_h * split.out_row_bytes);
    let mut bands: [Band<'_>; MAX_CORES] = core::array::from_fn(|_| Band::default());
    let mut output_rest = output;
    let mut scratch_rest = scratch;
    let mut count = 0;
    for part in 0..parts {
        let rows = split.band(part, parts);
        if rows.out_rows == 0 {
            break; // parts after an empty one are empty too
        }
        let (band_output, rest) =
            core::mem::take(&mut output_rest).split_at_mut(rows.out_rows * split.out_row_bytes);
        output_rest = rest;
        let scratch_len = split.scratch_bytes.min(scratch_rest.len());
        let (band_scratch, rest) = core::mem::take(&mut scratch_rest).split_at_mut(scratch_len);
        scratch_rest = rest;
        let begin = rows.in_begin * split.in_row_bytes;
        bands[count] = Band {
            rows,
            input: &input[begin..begin + rows.in_rows * split.in_row_bytes],
            output: band_output,
            scratch: band_scratch,
        };
        count += 1;
    }
    cores.run(task, &mut bands[..count]);
}

const HANDOFF_ALIGN: usize = 16;

const fn align_up(bytes: usize) -> usize {
    bytes.div_ceil(HANDOFF_ALIGN) * HANDOFF_ALIGN
}

/// Where a band's buffers lie in a [`Handoff`]: (output offset, scratch offset, total bytes).
const fn handoff_layout(input: usize, output: usize, scratch: usize) -> (usize, usize, usize) {
    let output_at = align_up(input);
    let scratch_at = align_up(output_at + output);
    (output_at, scratch_at, scratch_at + scratch)
}

/// Bytes a [`Handoff`] needs for any band but the first (the calling core's) of any of `splits`,
/// for 2 to `max_cores` cores. A `const fn`: generated crates state it as a constant.
pub const fn handoff_bytes(splits: &[RowSplit], max_cores: usize) -> usize {
    let mut most = 0;
    let mut i = 0;
    while i < splits.len() {
        let split = &splits[i];
        let mut parts = 2;
        while parts <= max_cores {
            let mut part = 1;
            while part < parts {
                let rows = split.band(part, parts);
                let (_, _, bytes) = handoff_layout(
                    rows.in_rows * split.in_row_bytes,
                    rows.out_rows * split.out_row_bytes,
                    split.scratch_bytes,
                );
                if bytes > most {
                    most = bytes;
                }
                part += 1;
            }
            parts += 1;
        }
        i += 1;
    }
    most
}

/// Where a worker's [`Handoff`] is in its band's life.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Nothing loaded (or unloaded already).
    Empty,
    /// A band waits for the worker.
    Loaded(BandTask),
    /// The worker is computing it (a panic leaves it here).
    Running,
    /// The worker computed it: its output rows wait to be unloaded.
    Ran,
    /// The calling core took it back before the worker started, and computed it in place.
    Reclaimed,
}

/// A worker core's copy of one band: the calling core [`load`](Handoff::load)s the band's input
/// rows and task, the worker [`run`](Handoff::run)s it on the copy, the calling core
/// [`unload`](Handoff::unload)s the output rows into the band, or [`reclaim`](Handoff::reclaim)s
/// it if the worker has not started it. The platform's lock around the handoff orders the steps
/// (the worker holds it while it computes). `N`: [`handoff_bytes`] of the model.
#[derive(Clone, Debug)]
pub struct Handoff<const N: usize> {
    stage: Stage,
    rows: RowBand,
    input: usize,
    output: usize,
    scratch: usize,
    buffer: Arena<N>,
}

impl<const N: usize> Handoff<N> {
    /// An empty handoff (`const`: it can live in a `static`).
    pub const fn new() -> Self {
        Self {
            stage: Stage::Empty,
            rows: RowBand {
                out_begin: 0,
                out_rows: 0,
                in_begin: 0,
                in_rows: 0,
                pad_top: 0,
                pad_bottom: 0,
            },
            input: 0,
            output: 0,
            scratch: 0,
            buffer: Arena::new(),
        }
    }

    /// Copies the band's input rows in, to run `task` on them (panics if they do not fit).
    pub fn load(&mut self, task: BandTask, band: &Band<'_>) {
        let (input, output, scratch) = (band.input.len(), band.output.len(), band.scratch.len());
        let (_, _, bytes) = handoff_layout(input, output, scratch);
        assert!(
            bytes <= N,
            "a band of {bytes} bytes does not fit a handoff of {N}"
        );
        self.buffer.bytes_mut()[..input].copy_from_slice(band.input);
        (self.stage, self.rows) = (Stage::Loaded(task), band.rows);
        (self.input, self.output, self.scratch) = (input, output, scratch);
    }

    /// The worker's step: runs the loaded band on the copy; nothing if no band waits.
    pub fn run(&mut self) {
        let Stage::Loaded(task) = self.stage else {
            return;
        };
        self.stage = Stage::Running;
        let (output_at, scratch_at, end) = handoff_layout(self.input, self.output, self.scratch);
        let (head, scratch) = self.buffer.bytes_mut()[..end].split_at_mut(scratch_at);
        let (input, output) = head.split_at_mut(output_at);
        task(
            &self.rows,
            &input[..self.input],
            &mut output[..self.output],
            scratch,
        );
        self.stage = Stage::Ran;
    }

    /// Takes the loaded band back if the worker has not started it; then the caller computes it.
    pub fn reclaim(&mut self) -> bool {
        let waiting = matches!(self.stage, Stage::Loaded(_));
        if waiting {
            self.stage = Stage::Reclaimed;
        }
        waiting
    }

    /// Whether the worker has computed the loaded band (its output rows wait to be unloaded).
    pub fn finished(&self) -> bool {
        matches!(self.stage, Stage::Ran)
    }

    /// Copies the output rows the worker computed into the band (nothing if the band was
    /// reclaimed); panics if the worker did not finish it.
    pub fn unload(&mut self, band: &mut Band<'_>) {
        match core::mem::replace(&mut self.stage, Stage::Empty) {
            Stage::Ran => {
                let (output_at, _, _) = handoff_layout(self.input, self.output, self.scratch);
                band.output
                    .copy_from_slice(&self.buffer.bytes_mut()[output_at..output_at + self.output]);
            }
            Stage::Reclaimed => {}
            _ => panic!("a worker core did not finish its band"),
        }
    }
}

impl<const N: usize> Default for Handoff<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A worker core as the calling core sees it: its [`Handoff`] behind the platform's lock (which
/// the worker holds while it computes a band), and a way to wake it.
pub trait Worker<const N: usize> {
    /// `f` on the handoff if its lock is free now; `None` while the worker computes.
    fn try_with<R>(&self, f: impl FnOnce(&mut Handoff<N>) -> R) -> Option<R>;

    /// `f` on the handoff, once its lock is free.
    fn with<R>(&self, f: impl FnOnce(&mut Handoff<N>) -> R) -> R;

    /// Tells the worker that a band is loaded. It then locks the handoff and
    /// [`run`](Handoff::run)s it (any number of wake-ups may fold into one).
    fn wake(&self);
}

/// [`Cores::run`] for a calling core and worker cores that get their bands through handoffs:
/// band `k` > 0 goes to `workers[k - 1]`, the calling core computes band 0 in place, then takes
/// back every band a worker has not started (a worker the scheduler has not run yet would only
/// make it wait) and computes it in place too, then waits for the others and copies their output
/// rows out.
pub fn run_on_workers<const N: usize>(
    workers: &[impl Worker<N>],
    task: BandTask,
    bands: &mut [Band<'_>],
) {
    let Some((own, others)) = bands.split_first_mut() else {
        return;
    };
    assert!(others.len() <= workers.len(), "more bands than cores");
    for (worker, band) in workers.iter().zip(others.iter()) {
        worker.with(|handoff| handoff.load(task, band));
        worker.wake();
    }
    own.run(task);
    for (worker, band) in workers.iter().zip(others.iter_mut()) {
        if worker.try_with(Handoff::reclaim) == Some(true) {
            band.run(task);
        }
    }
    for (worker, band) in workers.iter().zip(others.iter_mut()) {
        worker.with(|handoff| handoff.unload(band));
    }
}

/// The bytes of a typed buffer (a graph input or output handed to [`split_rows`]).
#[inline]
pub fn bytes<T: Element>(data: &[T]) -> &[u8] {
    bytemuck::cast_slice(data)
}

/// The bytes of a typed buffer, mutable.
#[inline]
pub fn bytes_mut<T: Element>(data: &mut [T]) -> &mut [u8] {
    bytemuck::cast_slice_mut(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    /// `ts_row_band_for` by hand: 3x3 conv, stride 1, pad 1, 32 rows in 2 and 3 parts.
    #[test]
    fn bands_of_a_padded_conv() {
        let top = row_band_for(0, 2, 32, 32, 1, 3, 1);
        let bottom = row_band_for(1, 2, 32, 32, 1, 3, 1);
        assert_eq!(
            top,
            RowBand {
                out_begin: 0,
                out_rows: 16,
                in_begin: 0,
                in_rows: 17,
                pad_top: 1,
                pad_bottom: 0
            }
        );
        assert_eq!(
            bottom,
            RowBand {
                out_begin: 16,
                out_rows: 16,
                in_begin: 15,
                in_rows: 17,
                pad_top: 0,
                pad_bottom: 1
            }
        );
        let middle = row_band_for(1, 3, 32, 32, 1, 3, 1);
        assert_eq!((middle.out_begin, middle.out_rows), (11, 11));
        assert_eq!((middle.in_begin, middle.in_rows), (10, 13));
        assert_eq!((middle.pad_top, middle.pad_bottom), (0, 0));
    }

    #[test]
    fn strided_window_and_empty_parts() {
        // 2x2 pool, stride 2, 5 output rows from 10 in 4 parts: 2, 2, 1, 0 rows
        let rows: [RowBand; 4] = core::array::from_fn(|p| row_band_for(p, 4, 5, 10, 2, 2, 0));
        assert_eq!(rows.map(|b| b.out_rows), [2, 2, 1, 0]);
        assert_eq!(rows.map(|b| b.in_begin), [0, 4, 8, 0]);
        assert_eq!(rows.map(|b| b.in_rows), [4, 4, 2, 0]);
    }

    /// Every band's windows are its input rows plus its padding, and the bands tile the output.
    #[test]
    fn bands_cover_every_row_once() {
        for (out_h, in_h, stride, extent, pad) in [
            (32, 32, 1, 3, 1),
            (16, 32, 2, 3, 1),
            (25, 49, 2, 10, 4),
            (7, 7, 1, 5, 2),
            (3, 6, 2, 3, 1),
        ] {
            for parts in 1..=5 {
                let mut next = 0;
                for part in 0..parts {
                    let b = row_band_for(part, parts, out_h, in_h, stride, extent, pad);
                    if b.out_rows == 0 {
                        continue;
                    }
                    assert_eq!(b.out_begin, next);
                    next += b.out_rows;
                    let want_begin = (b.out_begin * stride) as isize - pad as isize;
                    let want_end = ((next - 1) * stride + extent) as isize - pad as isize;
                    assert_eq!(b.in_begin as isize - b.pad_top as isize, want_begin);
                    assert_eq!((b.in_begin + b.in_rows + b.pad_bottom) as isize, want_end);
                    assert!(b.in_begin + b.in_rows <= in_h);
                }
                assert_eq!(next, out_h);
            }
        }
    }

    /// A 1-D "layer": output row r = sum of input rows r-1, r, r+1 (zero padded), 2 bytes a row.
    fn sum3(rows: &RowBand, input: &[u8], output: &mut [u8], scratch: &mut [u8]) {
        scratch.fill(0xAA);
        let padded = |i: usize| -> u8 {
            if i < rows.pad_top || i >= rows.pad_top + rows.in_rows {
                0
            } else {
                input[2 * (i - rows.pad_top)]
            }
        };
        for r in 0..rows.out_rows {
            let v = padded(r) + padded(r + 1) + padded(r + 2);
            output[2 * r..2 * r + 2].copy_from_slice(&[v, rows.out_begin as u8]);
        }
    }

    const SUM3: RowSplit = RowSplit {
        out_h: 7,
        in_h: 7,
        stride: 1,
        kernel_extent: 3,
        pad_top: 1,
        in_row_bytes: 2,
        out_row_bytes: 2,
        scratch_bytes: 4,
    };

    fn run_sum3(cores: &impl Cores) -> [u8; 14] {
        let input: [u8; 14] = core::array::from_fn(|i| if i % 2 == 0 { i as u8 } else { 0 });
        let mut output = [0u8; 14];
        let mut scratch = [0u8; 16];
        split_rows::<4>(cores, &SUM3, &input, &mut output, &mut scratch, sum3);
        output
    }

    type SumHandoff = Handoff<{ handoff_bytes(&[SUM3], 4) }>;

    /// A worker that never runs by itself: `eager` ones compute their band when woken, the others
    /// leave it to be reclaimed.
    struct Inline {
        handoff: RefCell<SumHandoff>,
        eager: bool,
    }

    impl Worker<{ handoff_bytes(&[SUM3], 4) }> for Inline {
        fn try_with<R>(&self, f: impl FnOnce(&mut SumHandoff) -> R) -> Option<R> {
            Some(f(&mut self.handoff.borrow_mut()))
        }

        fn with<R>(&self, f: impl FnOnce(&mut SumHandoff) -> R) -> R {
            f(&mut self.handoff.borrow_mut())
        }

        fn wake(&self) {
            if self.eager {
                self.handoff.borrow_mut().run();
            }
        }
    }

    /// `cores` cores, every band but the first through a handoff.
    struct Copying {
        cores: usize,
        workers: [Inline; 3],
    }

    impl Copying {
        fn new(cores: usize, eager: bool) -> Self {
            let workers = core::array::from_fn(|_| Inline {
                handoff: RefCell::new(Handoff::new()),
                eager,
            });
            Self { cores, workers }
        }
    }

    impl Cores for Copying {
        fn count(&self) -> usize {
            self.cores
        }

        fn run(&self, task: BandTask, bands: &mut [Band<'_>]) {
            run_on_workers(&self.workers, task, bands);
        }
    }

    #[test]
    fn split_rows_equals_one_band() {
        let whole = run_sum3(&OneCore);
        let sums: [u8; 7] = core::array::from_fn(|r| whole[2 * r]);
        assert_eq!(sums, [2, 6, 12, 18, 24, 30, 22]);
        for cores in 1..=4 {
            for eager in [true, false] {
                let split = run_sum3(&Copying::new(cores, eager));
                let sums_split: [u8; 7] = core::array::from_fn(|r| split[2 * r]);
                assert_eq!(sums_split, sums, "{cores} cores, eager {eager}");
            }
        }
        // 4 parts of ceil(7 / 4) = 2 rows: the bands start at rows 0, 2, 4, 6
        let four = run_sum3(&Copying::new(4, true));
        let starts: [u8; 7] = core::array::from_fn(|r| four[2 * r + 1]);
        assert_eq!(starts, [0, 0, 2, 2, 4, 4, 6]);
    }

    #[test]
    fn handoff_bytes_is_the_largest_worker_band() {
        // 2 parts: band 1 has 3 output rows and reads 4 input rows (6 B, 8 B) plus 4 B scratch
        assert_eq!(handoff_bytes(&[SUM3], 2), 16 + 16 + 4);
        assert_eq!(handoff_bytes(&[SUM3], 1), 0);
    }

    #[test]
    #[should_panic(expected = "compiled for 1 to 4 cores")]
    fn more_cores_than_the_plan_holds_panic() {
        run_sum3(&Copying::new(5, true));
    }
}

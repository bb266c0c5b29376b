//! Row-split layers on host threads (cargo feature `std`; the device build stays `no_std`).
//!
//! [`ThreadPool`] starts its worker threads once and keeps them for every layer and inference:
//! starting threads per split layer (`std::thread::scope`, which could lend the arena's bands
//! without copies) costs about 30 us a layer on the 2-core development host, a third of what a
//! DS-CNN layer computes in. Measured side by side there (a busy machine), 2 threads spawned per
//! layer ran ResNet-8 at 0.4 to 0.8 and DS-CNN at 0.2 to 0.6 times the one-thread speed, where
//! this pool ran both at 0.9 to 1.3 times. Without `unsafe` a long-lived thread cannot borrow a layer's
//! arena bytes, so each worker gets its band through its own [`Handoff`] (a copy of the band's
//! input rows in, its output rows out: a few kilobytes of `memcpy` against a convolution over
//! them), exactly as the Ariel OS application does with threads pinned to cores
//! ([`run_on_workers`]). The calling thread computes band 0 in place meanwhile, and takes back a
//! band whose worker has not started it by then, so a worker the OS has not scheduled (a busy
//! machine) delays nothing.
//!
//! Waiting (a worker for its next band, the calling thread for a worker's result) spins first
//! (the next split layer follows within microseconds), then yields the CPU, then sleeps, so idle
//! workers cost nothing between inferences and more threads than CPUs still make progress.

extern crate std;

use std::format;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::parallel::{run_on_workers, Band, BandTask, Cores, Handoff, Worker};

/// How long a waiter polls before it yields the CPU between polls.
const SPIN: Duration = Duration::from_micros(20);
/// How long a waiter polls (spinning, then yielding) before it sleeps.
const POLL: Duration = Duration::from_millis(2);

/// Polls `ready` (spinning, then yielding the CPU) until it gives a value or [`POLL`] is over.
fn poll<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if let Some(value) = ready() {
                return Some(value);
            }
            core::hint::spin_loop();
        }
        let waited = start.elapsed();
        if waited > POLL {
            return None;
        }
        if waited > SPIN {
            std::thread::yield_now();
        }
    }
}

/// A counter that the calling thread raises and a worker waits on.
#[derive(Default)]
struct Signal {
    epoch: AtomicU32,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Signal {
    fn raise(&self) {
        self.epoch.fetch_add(1, SeqCst);
        // a sleeper counts itself before it last reads the epoch (both SeqCst): if none is
        // counted here, any later one reads the new epoch and does not sleep
        if self.sleepers.load(SeqCst) > 0 {
            let _guard = lock(&self.lock);
            self.wake.notify_all();
        }
    }

    /// Waits until the epoch leaves `seen`; returns the new one.
    fn wait_past(&self, seen: u32) -> u32 {
        let moved = || Some(self.epoch.load(SeqCst)).filter(|&epoch| epoch != seen);
        if let Some(epoch) = poll(moved) {
            return epoch;
        }
        let mut guard = lock(&self.lock);
        self.sleepers.fetch_add(1, SeqCst);
        while self.epoch.load(SeqCst) == seen {
            guard = self
                .wake
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.sleepers.fetch_sub(1, SeqCst);
        self.epoch.load(SeqCst)
    }
}

/// A lock that a panicking holder does not poison: a worker's panic surfaces as its unfinished
/// band ([`Handoff::unload`] panics in the calling thread).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn try_lock<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// One worker thread's handoff and wake-up.
struct PoolWorker<const N: usize> {
    handoff: Mutex<Handoff<N>>,
    start: Signal,
    quit: AtomicBool,
}

impl<const N: usize> PoolWorker<N> {
    fn serve(&self) {
        let mut seen = 0;
        loop {
            seen = self.start.wait_past(seen);
            if self.quit.load(SeqCst) {
                return;
            }
            let mut handoff = lock(&self.handoff);
            // a panicking kernel leaves its band unfinished; the thread lives on
            let _ = catch_unwind(AssertUnwindSafe(|| handoff.run()));
        }
    }
}

impl<const N: usize> Worker<N> for PoolWorker<N> {
    fn try_with<R>(&self, f: impl FnOnce(&mut Handoff<N>) -> R) -> Option<R> {
        try_lock(&self.handoff).map(|mut handoff| f(&mut handoff))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Handoff<N>) -> R) -> R {
        let mut handoff = poll(|| try_lock(&self.handoff)).unwrap_or_else(|| lock(&self.handoff));
        f(&mut handoff)
    }

    fn wake(&self) {
        self.start.raise();
    }
}

/// `threads` host threads for row-split layers: the calling one and `threads - 1` workers that
/// live as long as the pool. `N`: the model's `HANDOFF_BYTES`.
pub struct ThreadPool<const N: usize> {
    workers: Arc<[PoolWorker<N>]>,
    threads: Vec<JoinHandle<()>>,
}

impl<const N: usize> ThreadPool<N> {
    /// Starts `threads - 1` worker threads (`threads` >= 1).
    pub fn new(threads: usize) -> Self {
        assert!(
            threads >= 1,
            "a thread pool needs at least the calling thread"
        );
        let workers: Arc<[PoolWorker<N>]> = (1..threads)
            .map(|_| PoolWorker {
                handoff: Mutex::new(Handoff::new()),
                start: Signal::default(),
                quit: AtomicBool::new(false),
            })
            .collect();
        let threads = (0..workers.len())
            .map(|k| {
                let workers = Arc::clone(&workers);
                std::thread::Builder::new()
                    .name(format!("tinysplit-core{}", k + 1))
                    .spawn(move || workers[k].serve())
                    .expect("cannot start a worker thread")
            })
            .collect();
        Self { workers, threads }
    }
}

impl<const N: usize> Cores for ThreadPool<N> {
    fn count(&self) -> usize {
        self.workers.len() + 1
    }

    fn run(&self, task: BandTask, bands: &mut [Band<'_>]) {
        run_on_workers(&self.workers, task, bands);
    }
}

impl<const N: usize> Drop for ThreadPool<N> {
    fn drop(&mut self) {
        for worker in self.workers.iter() {
            worker.quit.store(true, SeqCst);
            worker.start.raise();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::{handoff_bytes, split_rows, OneCore, RowBand, RowSplit};

    /// Output row r: the input row sum r-1..=r+1 (zero padded), as wrapping bytes, 64 B a row.
    fn blur(rows: &RowBand, input: &[u8], output: &mut [u8], _scratch: &mut [u8]) {
        for r in 0..rows.out_rows {
            for c in 0..64 {
                let mut sum = 0u8;
                for k in 0..3 {
                    let i = r + k;
                    if i >= rows.pad_top && i < rows.pad_top + rows.in_rows {
                        sum = sum.wrapping_add(input[64 * (i - rows.pad_top) + c]);
                    }
                }
                output[64 * r + c] = sum;
            }
        }
    }

    const BLUR: RowSplit = RowSplit {
        out_h: 37,
        in_h: 37,
        stride: 1,
        kernel_extent: 3,
        pad_top: 1,
        in_row_bytes: 64,
        out_row_bytes: 64,
        scratch_bytes: 0,
    };

    fn blurred(cores: &impl Cores, seed: u8) -> std::vec::Vec<u8> {
        let input: std::vec::Vec<u8> = (0..37 * 64).map(|i| (i as u8).wrapping_mul(seed)).collect();
        let mut output = std::vec![0u8; 37 * 64];
        split_rows::<4>(cores, &BLUR, &input, &mut output, &mut [], blur);
        output
    }

    #[test]
    fn pool_equals_one_core() {
        for threads in 1..=4 {
            let pool = ThreadPool::<{ handoff_bytes(&[BLUR], 4) }>::new(threads);
            for seed in 1..20 {
                assert_eq!(
                    blurred(&pool, seed),
                    blurred(&OneCore, seed),
                    "{threads} threads"
                );
            }
        }
    }

    static WORKER_STARTED: AtomicBool = AtomicBool::new(false);

    /// Band 0 waits until the worker has claimed band 1, which panics on the worker.
    fn explode_on_the_worker(rows: &RowBand, _: &[u8], _: &mut [u8], _: &mut [u8]) {
        if rows.out_begin == 0 {
            let start = Instant::now();
            while !WORKER_STARTED.load(SeqCst) && start.elapsed() < Duration::from_secs(20) {
                std::thread::yield_now();
            }
        } else if std::thread::current().name() == Some("tinysplit-core1") {
            WORKER_STARTED.store(true, SeqCst);
            panic!("kernel failed");
        }
    }

    #[test]
    #[should_panic(expected = "did not finish its band")]
    fn a_worker_panic_reaches_the_caller() {
        let pool = ThreadPool::<{ handoff_bytes(&[BLUR], 2) }>::new(2);
        let input = [0u8; 37 * 64];
        let mut output = [0u8; 37 * 64];
        split_rows::<2>(
            &pool,
            &BLUR,
            &input,
            &mut output,
            &mut [],
            explode_on_the_worker,
        );
    }
}

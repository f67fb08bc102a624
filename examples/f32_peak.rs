//! The core's f32 throughput as the Sapiens kernel can use it: separate multiplies and adds
//! (the kernel uses no FMA, so AVX and portable builds stay bit-identical) on 256-bit AVX
//! vectors, 12 independent accumulator chains so neither latency nor dependencies bound it,
//! one thread. With the forward pass's FLOP count this gives the bound issue 12 compares the
//! pass against.
//!
//!   cargo run --release --example f32_peak
//!
//! Prints GFLOP/s (a multiply and an add per lane counted as two) for the best of 5 runs.

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn chains(rounds: u64) -> f32 {
    use std::arch::x86_64::*;
    // x = x * c + d with c < 1: every chain converges to d / (1 - c) and stays a normal
    // number through any number of rounds; the compiler cannot fold it away.
    let c = _mm256_set1_ps(std::hint::black_box(0.999_99));
    let d = _mm256_set1_ps(std::hint::black_box(1e-5));
    let mut acc = [_mm256_set1_ps(1.5); 12];
    for _ in 0..rounds {
        for a in acc.iter_mut() {
            *a = _mm256_add_ps(_mm256_mul_ps(*a, c), d);
        }
    }
    let mut sum = _mm256_setzero_ps();
    for a in acc {
        sum = _mm256_add_ps(sum, a);
    }
    let mut lanes = [0f32; 8];
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        if !std::is_x86_feature_detected!("avx") {
            eprintln!("no AVX on this machine");
            return;
        }
        const ROUNDS: u64 = 200_000_000;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            // SAFETY: AVX was detected above.
            let value = unsafe { chains(std::hint::black_box(ROUNDS)) };
            std::hint::black_box(value);
            best = best.min(started.elapsed().as_secs_f64());
        }
        // 12 chains × 8 lanes × (one multiply + one add) per round.
        let flops = ROUNDS as f64 * 12.0 * 8.0 * 2.0;
        println!(
            "f32 mul+add, AVX, one thread: {:.1} GFLOP/s (best of 5, {:.2} s)",
            flops / best / 1e9,
            best
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    eprintln!("this measure is written for x86_64 AVX");
}

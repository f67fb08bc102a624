//! Engine speed on one core: numbering one chain, and both grafting strategies with liabilities
//! and OASis for one VH/VL pair (SCIENCE.md §5 targets: ≤ 1 ms per pair).
//!
//!   cargo bench --bench engine

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use veneer::engine::humanize::{Humanizer, Strategy, Variant};
use veneer::engine::humanness::OasisSet;
use veneer::engine::numbering::number;

// Campath-1H parental (rat), from the Hu-mAb set.
const VH: &str = "EVKLLESGGGLVQPGGSMRLSCAGSGFTFTDFYMNWIRQPAGKAPEWLGFIRDKAKGYTTEYNPSVKGRFTISRDNTQNMLYLQMNTLRAEDTATYYCAREGHTAAPFDYWGQGVMVTVSS";
const VL: &str = "DIKMTQSPSFLSASVGDRVTLNCKASQNIDKYLNWYQQKLGESPKLLIYNTNNLQTGIPSRFSGSGSGTDFTLTISSLQPEDVATYFCLQHISRPRTFGTGTKLELK";

fn engine(c: &mut Criterion) {
    let peptides = OasisSet::embedded();
    let humanizer = Humanizer::new(peptides);
    // Warm the lazily parsed tables so the benches measure the work, not the first load.
    let variant = Variant::new(VH, Some(VL)).expect("Campath numbers");
    humanizer
        .humanize(&variant, &Strategy::ALL)
        .expect("humanizes");

    c.bench_function("number one chain (type detected)", |b| {
        b.iter(|| number(black_box(VH.as_bytes())).expect("numbers"))
    });
    c.bench_function("prepare variant (number VH+VL, check types)", |b| {
        b.iter(|| Variant::new(black_box(VH), Some(black_box(VL))).expect("numbers"))
    });
    c.bench_function(
        "both grafting strategies + liabilities + OASis, one pair",
        |b| {
            b.iter(|| {
                let variant = Variant::new(black_box(VH), Some(black_box(VL))).expect("numbers");
                humanizer
                    .humanize(&variant, &Strategy::ALL)
                    .expect("humanizes")
            })
        },
    );
}

criterion_group!(benches, engine);
criterion_main!(benches);

//! Engine speed on one core (SCIENCE.md §5 targets): numbering one chain; both grafting
//! strategies with liabilities and OASis for one VH/VL pair (≤ 1 ms); the Sapiens forward pass
//! for one chain; all three strategies for one pair (≤ 20 ms).
//!
//!   cargo bench --bench engine

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use veneer::engine::humanize::{Humanizer, Strategy, Variant};
use veneer::engine::humanness::OasisSet;
use veneer::engine::numbering::number;
use veneer::engine::sapiens::SapiensModel;

// Campath-1H parental (rat), from the Hu-mAb set.
const VH: &str = "EVKLLESGGGLVQPGGSMRLSCAGSGFTFTDFYMNWIRQPAGKAPEWLGFIRDKAKGYTTEYNPSVKGRFTISRDNTQNMLYLQMNTLRAEDTATYYCAREGHTAAPFDYWGQGVMVTVSS";
const VL: &str = "DIKMTQSPSFLSASVGDRVTLNCKASQNIDKYLNWYQQKLGESPKLLIYNTNNLQTGIPSRFSGSGSGTDFTLTISSLQPEDVATYFCLQHISRPRTFGTGTKLELK";

fn engine(c: &mut Criterion) {
    let humanizer = Humanizer::new(OasisSet::embedded());
    let grafting = [Strategy::CdrGrafting, Strategy::CdrGraftingVernier];
    // Warm the lazily parsed tables so the benches measure the work, not the first load.
    let variant = Variant::new(VH, Some(VL)).expect("Campath numbers");
    humanizer
        .humanize(&variant, &Strategy::DEFAULT)
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
                humanizer.humanize(&variant, &grafting).expect("humanizes")
            })
        },
    );
    c.bench_function("sapiens forward pass, one VH", |b| {
        b.iter(|| {
            SapiensModel::vh()
                .predict(black_box(VH.as_bytes()))
                .expect("scores")
        })
    });
    c.bench_function("all three strategies + parental report, one pair", |b| {
        b.iter(|| {
            let variant = Variant::new(black_box(VH), Some(black_box(VL))).expect("numbers");
            let parental = humanizer.parental(&variant);
            let results = humanizer
                .humanize(&variant, &Strategy::DEFAULT)
                .expect("humanizes");
            (parental, results)
        })
    });
}

criterion_group!(benches, engine);
criterion_main!(benches);

//! Engine speed on one core (SCIENCE.md §5 targets): numbering one chain; both grafting
//! strategies with liabilities and OASis for one VH/VL pair (≤ 1 ms); the Sapiens forward pass
//! for one chain; all three strategies for one pair (≤ 20 ms); Sapiens with k passes per pair
//! (≤ k × one pass); five designs with the full report per pair (≤ 50 ms); the XLSX export of
//! 1,000 antibodies' designs (≤ 2 s).
//!
//!   cargo bench --bench engine

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use veneer::engine::humanize::{Humanizer, SapiensOptions, Strategy, StrategySpec, Variant};
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
            let parental = humanizer.parental(&variant).expect("reports");
            let results = humanizer
                .humanize(&variant, &Strategy::DEFAULT)
                .expect("humanizes");
            (parental, results)
        })
    });

    let sapiens = |iterations, max_mutations| StrategySpec {
        strategy: Strategy::Sapiens,
        sapiens: SapiensOptions {
            iterations,
            max_mutations,
            ..SapiensOptions::default()
        },
    };
    for k in [1u8, 2, 3, 5] {
        c.bench_function(&format!("sapiens, {k} pass(es), one pair"), |b| {
            // A fresh variant each time: a variant keeps the Sapiens passes it has made.
            b.iter_batched(
                || Variant::new(VH, Some(VL)).expect("numbers"),
                |variant| humanizer.run(&variant, sapiens(k, None)).expect("runs"),
                BatchSize::SmallInput,
            )
        });
    }
    let five = [
        StrategySpec::from(Strategy::CdrGrafting),
        StrategySpec::from(Strategy::CdrGraftingVernier),
        sapiens(1, None),
        sapiens(2, Some(12)),
        StrategySpec::from(Strategy::CdrGraftingSapiens),
    ];
    c.bench_function("five designs + parental report, ranked, one pair", |b| {
        b.iter(|| {
            let variant = Variant::new(black_box(VH), Some(black_box(VL))).expect("numbers");
            let parental = humanizer.parental(&variant).expect("reports");
            (
                parental,
                humanizer.humanize(&variant, &five).expect("humanizes"),
            )
        })
    });

    // 1,000 antibodies (this one, three designs each) as one workbook.
    let variant = Variant::new(VH, Some(VL)).expect("numbers");
    let parental =
        serde_json::to_value(humanizer.parental(&variant).expect("reports")).expect("json");
    let results: Vec<serde_json::Value> = humanizer
        .humanize(&variant, &Strategy::DEFAULT)
        .expect("humanizes")
        .iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect();
    let names: Vec<String> = (0..1000).map(|i| format!("antibody{i}")).collect();
    let antibodies: Vec<veneer::export::Antibody> = names
        .iter()
        .map(|name| veneer::export::Antibody {
            name,
            job_id: None,
            parental: &parental,
            results: &results,
        })
        .collect();
    let mut group = c.benchmark_group("export");
    group.sample_size(10);
    group.bench_function("xlsx, 1,000 antibodies x 3 designs", |b| {
        b.iter(|| veneer::export::xlsx(black_box(&antibodies)).expect("writes"))
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);

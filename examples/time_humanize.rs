//! Times humanization of the Hu-mAb parental pairs in one thread (a quick check beside the
//! criterion bench): `cargo run --release --example time_humanize -- [strategies]`.
use std::time::Instant;
use veneer::engine::humanize::{Humanizer, Strategy, Variant};
use veneer::engine::humanness::OasisSet;

fn main() {
    let strategies = Strategy::parse_list(
        &std::env::args()
            .nth(1)
            .unwrap_or("cdr_grafting,cdr_grafting_vernier".into()),
    )
    .expect("strategies");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/examples/humab25_parental.csv"
    ))
    .expect("csv");
    let pairs: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].to_string(), f[2].to_string())
        })
        .collect();
    let humanizer = Humanizer::new(OasisSet::embedded());
    for round in 0..3 {
        let start = Instant::now();
        for (vh, vl) in &pairs {
            let variant = Variant::new(vh, Some(vl)).expect("variant");
            humanizer.humanize(&variant, &strategies).expect("humanize");
        }
        println!(
            "round {round}: {:.3} ms per pair",
            start.elapsed().as_secs_f64() * 1e3 / pairs.len() as f64
        );
    }
}

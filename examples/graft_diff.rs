//! Prints where veneer's grafts differ from AbNumber's for oracle chains (research aid).
//! `cargo run --release --example graft_diff -- [straight|vernier] [NAME...]`
use serde_json::Value;
use veneer::engine::grafting::{Backmutations, graft_onto_human_germline};
use veneer::engine::numbering::number;
use veneer::engine::sequence::clean;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let strategy = args.first().map_or("straight", String::as_str).to_string();
    let wanted = &args[1.min(args.len())..];
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/abnumber_grafts.jsonl"
    );
    for line in std::fs::read_to_string(path).expect("fixture").lines() {
        let e: Value = serde_json::from_str(line).expect("json");
        let name = e["name"].as_str().unwrap_or("");
        if e.get("error").is_some() || (!wanted.is_empty() && !wanted.iter().any(|w| w == name)) {
            continue;
        }
        let chain = clean(e["sequence"].as_str().unwrap_or(""))
            .and_then(|r| number(&r))
            .expect("numbers");
        let graft = graft_onto_human_germline(
            &chain,
            Backmutations {
                vernier: strategy == "vernier",
                hallmark: false,
            },
        )
        .expect("grafts");
        let e = &e["hm"];
        let expected = e[strategy.as_str()].as_str().unwrap_or("");
        if graft.sequence() != expected {
            let genes_same = Some(graft.acceptor.v_gene) == e["v_gene"].as_str()
                && Some(graft.acceptor.j_gene) == e["j_gene"].as_str();
            println!(
                "{name} genes {} ours {}+{} abnumber {}+{} ties {} {}",
                if genes_same { "same" } else { "DIFF" },
                graft.acceptor.v_gene,
                graft.acceptor.j_gene,
                e["v_gene"],
                e["j_gene"],
                e["v_ties"],
                e["j_ties"]
            );
            println!("  ours     {}", graft.sequence());
            println!("  abnumber {expected}");
        }
    }
}

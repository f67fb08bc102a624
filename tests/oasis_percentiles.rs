//! OASis percentiles against BioPhi's own report: `parental_oasis_biophi.csv` (BioPhi's OASis
//! report on the 25 Hu-mAb parentals, relaxed threshold) gives each identity and the
//! percentile BioPhi printed for it; the engine's table and interpolation must give the same
//! number for the same identity, for the heavy, light and whole-antibody tables.

use veneer::engine::humanness::{PercentileTable, oasis_percentile};

#[test]
fn percentiles_equal_biophis_report_for_the_same_identities() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/humab25/parental_oasis_biophi.csv"
    );
    let mut reader = csv::Reader::from_path(path).expect("the BioPhi report");
    let header = reader.headers().expect("header").clone();
    let at = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let mut checked = 0;
    for row in reader.records() {
        let row = row.expect("row");
        assert_eq!(&row[at("Threshold")], "relaxed");
        for (table, identity, percentile) in [
            (PercentileTable::Mean, "OASis Identity", "OASis Percentile"),
            (
                PercentileTable::Heavy,
                "Heavy OASis Identity",
                "Heavy OASis Percentile",
            ),
            (
                PercentileTable::Light,
                "Light OASis Identity",
                "Light OASis Percentile",
            ),
        ] {
            let identity: f64 = row[at(identity)].parse().expect("identity");
            let expected: f64 = row[at(percentile)].parse().expect("percentile");
            let ours = oasis_percentile(table, identity, 10).expect("a percentile");
            assert!(
                (ours - expected).abs() < 1e-12,
                "{} {table:?}: ours {ours}, BioPhi {expected}",
                &row[0]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 75);
    assert_eq!(oasis_percentile(PercentileTable::Heavy, 1.2, 10), None);
    assert_eq!(oasis_percentile(PercentileTable::Heavy, 0.5, 95), None);
}

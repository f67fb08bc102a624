//! A humanness source that fails some queries (BioPhi's database with a bad page, a lock, a
//! vanished file) fails exactly the humanizations that asked those queries: with two running
//! at once, each gets only its own outcome — never the other's error, never a result built on
//! a guessed "not human".

use std::collections::HashSet;
use std::sync::Arc;

use veneer::engine::chain::ChainType;
use veneer::engine::humanize::{Humanizer, Strategy, Variant};
use veneer::engine::humanness::{HumanPeptides, OasisSet, PeptideError};

// Campath-1H and Hu-mAb AntiCD28 parental chains.
const A_VH: &str = "EVKLLESGGGLVQPGGSMRLSCAGSGFTFTDFYMNWIRQPAGKAPEWLGFIRDKAKGYTTEYNPSVKGRFTISRDNTQNMLYLQMNTLRAEDTATYYCAREGHTAAPFDYWGQGVMVTVSS";
const A_VL: &str = "DIKMTQSPSFLSASVGDRVTLNCKASQNIDKYLNWYQQKLGESPKLLIYNTNNLQTGIPSRFSGSGSGTDFTLTISSLQPEDVATYFCLQHISRPRTFGTGTKLELK";
const B_VH: &str = "EVKLQQSGPGLVTPSQSLSITCTVSGFSLSDYGVHWVRQSPGQGLEWLGVIWAGGGTNYNSALMSRKSISKDNSKSQVFLKMNSLQADDTAVYYCARDKGYSYYYSMDYWGQGTSVTVSS";
const B_VL: &str = "DIETLQSPASLAVSLGQRATISCRASESVEYYVTSLMQWYQQKPGQPPKLLIFAASNVESGVPARFSGSGSGTNFSLNIHPVDEDDVAMYFCQQSRKYVPYTFGGGTKLEIK";

/// The embedded set, but every query about a 9-mer of `poisoned` fails.
struct FailsOn {
    poisoned: HashSet<Vec<u8>>,
}

impl HumanPeptides for FailsOn {
    fn is_human(&self, peptide: &[u8], chain: ChainType) -> Result<bool, PeptideError> {
        if self.poisoned.contains(peptide) {
            return Err(PeptideError("database disk image is malformed".into()));
        }
        OasisSet::embedded().is_human(peptide, chain)
    }

    fn describe(&self) -> String {
        "fails on Campath's CDR-H3 9-mers".into()
    }
}

#[test]
fn two_concurrent_humanizations_each_get_only_their_own_outcome() {
    // Campath's CDR-H3 region: no 9-mer of AntiCD28 is among them.
    let cdr_h3 = "CAREGHTAAPFDYWGQG";
    let poisoned: HashSet<Vec<u8>> = cdr_h3.as_bytes().windows(9).map(<[u8]>::to_vec).collect();
    for chain in [B_VH, B_VL] {
        assert!(chain.as_bytes().windows(9).all(|w| !poisoned.contains(w)));
    }
    let source = Arc::new(FailsOn { poisoned });
    let expected_b = Humanizer::new(OasisSet::embedded())
        .humanize(
            &Variant::new(B_VH, Some(B_VL)).expect("valid"),
            &Strategy::DEFAULT,
        )
        .expect("the plain set answers");

    let run = |vh: &'static str, vl: &'static str, source: Arc<FailsOn>| {
        std::thread::spawn(move || {
            let variant = Variant::new(vh, Some(vl)).expect("valid");
            (0..40)
                .map(|_| Humanizer::new(source.as_ref()).humanize(&variant, &Strategy::DEFAULT))
                .collect::<Vec<_>>()
        })
    };
    let a = run(A_VH, A_VL, Arc::clone(&source));
    let b = run(B_VH, B_VL, Arc::clone(&source));
    for outcome in a.join().expect("thread A") {
        let error = outcome.expect_err("A's queries fail, so A fails");
        assert!(
            error
                .0
                .contains("OASis peptide source failed: database disk image is malformed"),
            "{error}"
        );
    }
    for outcome in b.join().expect("thread B") {
        assert_eq!(outcome.expect("B never sees A's error"), expected_b);
    }
}

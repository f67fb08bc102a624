//! The browser app's copies of engine facts stay equal to the engine: the Kabat CDR spans and
//! Vernier positions in `web/kabat.js` are what `engine::numbering::kabat_cdr` and
//! `engine::grafting::is_vernier` say, for every Kabat number of both chain kinds.

use veneer::engine::chain::ChainType;
use veneer::engine::grafting::is_vernier;
use veneer::engine::numbering::{Position, kabat_cdr};

const KABAT_JS: &str = include_str!("../web/kabat.js");

/// The numbers in the JS array literal that follows `name:` inside the `block` constant.
fn js_list(block: &str, name: &str) -> Vec<u32> {
    let start = KABAT_JS
        .find(&format!("export const {block} = {{"))
        .unwrap_or_else(|| panic!("kabat.js defines {block}"));
    let body = &KABAT_JS[start..];
    let body = &body[..body.find("};").expect("the constant ends")];
    let line = body
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{block}.{name}"));
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a number"))
        .collect()
}

fn position(number: u32) -> Position {
    Position {
        number: number as _,
        insertion: None,
    }
}

#[test]
fn kabat_regions_in_the_web_app_equal_the_engines() {
    for (letter, chain) in [("H", ChainType::H), ("L", ChainType::K)] {
        let spans = js_list("CDRS", letter);
        let vernier = js_list("VERNIER", letter);
        for n in 1..=130u32 {
            let js_cdr = spans
                .chunks(2)
                .position(|s| (s[0]..=s[1]).contains(&n))
                .map(|i| i as u8 + 1);
            assert_eq!(js_cdr, kabat_cdr(chain, position(n)), "{letter}{n} CDR");
            assert_eq!(
                vernier.contains(&n),
                is_vernier(chain, position(n)),
                "{letter}{n} Vernier"
            );
        }
    }
}

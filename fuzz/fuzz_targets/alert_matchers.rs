//! Label matchers (`strata_alert::matchers`): `parse_matchers` and `Matcher::from_str`, the
//! parsers behind routes, inhibition rules and silences. Whatever parses prints back (the
//! `Display` form, which is also how a silence's matchers are saved) to an equal matcher
//! that matches the same values; a single matcher parses exactly when the list has one.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use strata_alert::Matcher;
use strata_alert::matchers::{
    MAX_MATCHER_BYTES, MAX_MATCHERS, MatchOp, format_matchers, parse_matchers,
};

/// Values to match against: the empty string (a missing label), the matcher's own value and
/// a few that regexes like `.*`, `a|b` or `[0-9]+` tell apart.
fn probes<'a>(m: &'a Matcher, input: &'a str) -> [&'a str; 6] {
    [&m.value, "", "a", "cart", "0123", input]
}

fn check(m: &Matcher, input: &str) {
    assert!(!m.name.is_empty());
    let text = m.to_string();
    let back = Matcher::from_str(&text)
        .unwrap_or_else(|e| panic!("{m:?} prints as {text:?}, which does not parse: {e}"));
    assert_eq!(&back, m, "{text:?}");
    for v in probes(m, input) {
        assert_eq!(
            back.matches_value(v),
            m.matches_value(v),
            "{text:?} on {v:?}"
        );
    }
    match m.op {
        MatchOp::Eq => assert!(m.matches_value(&m.value)),
        MatchOp::NotEq => assert!(!m.matches_value(&m.value)),
        MatchOp::Re | MatchOp::NotRe => {}
    }
    // Silences are saved as JSON, their matchers as strings.
    let json = serde_json::to_string(m).expect("a matcher serializes");
    let restored: Matcher = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{m:?} saved as {json} does not load: {e}"));
    assert_eq!(&restored, m);
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let list = parse_matchers(input);
    let single = Matcher::from_str(input);
    match &list {
        Ok(list) => {
            assert!(list.len() <= MAX_MATCHERS);
            for m in list {
                check(m, input);
            }
            let formatted = format_matchers(list);
            if formatted.len() <= MAX_MATCHER_BYTES {
                let again = parse_matchers(&formatted)
                    .unwrap_or_else(|e| panic!("{formatted:?} does not parse: {e}"));
                assert_eq!(&again, list, "{formatted:?}");
            }
            assert_eq!(single.is_ok(), list.len() == 1, "{input:?}");
            if let Ok(m) = &single {
                assert_eq!(m, &list[0]);
            }
        }
        Err(e) => {
            assert!(
                single.is_err(),
                "{input:?}: one matcher, but not a list: {e}"
            );
            assert!(e.input.len() <= 80);
        }
    }
});

//! Annotation and webhook-body templates (`strata_alert::template`): parsed when a rule or
//! the alerter configuration is saved, rendered at every notification. A parsed template
//! prints back (`Display`) to an equal one, reads only valid paths, and renders without
//! panicking; a lone `{{ path | json }}` renders as one JSON string whatever the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_alert::template::{MAX_TEMPLATE_BYTES, Template};

/// Values a lookup can return: missing, empty, with quotes, backslashes, newlines, braces,
/// control characters and non-ASCII text.
fn lookup(path: &str) -> Option<String> {
    match path.len() % 4 {
        0 => None,
        1 => Some(String::new()),
        2 => Some("say \"hi\"\\\n\t{{ $value }}\u{0}\u{7f}é🙂".into()),
        _ => Some(path.repeat(3)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Template::parse(src) else {
        return;
    };
    assert!(src.len() <= MAX_TEMPLATE_BYTES);
    let printed = t.to_string();
    let again = Template::parse(&printed)
        .unwrap_or_else(|e| panic!("{src:?} prints as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, t, "{printed:?}");
    // Without variables the template is its text.
    if t.paths().next().is_none() {
        assert_eq!(t.render(&|_| Some("x".into())), src);
    }
    let rendered = t.render(&lookup);
    assert_eq!(rendered, again.render(&lookup));
    for path in t.paths() {
        assert!(path.starts_with(['$', '.']), "{path:?}");
        let json = Template::parse(&format!("{{{{ {path} | json }}}}"))
            .unwrap_or_else(|e| panic!("path {path:?} alone does not parse: {e}"));
        let body = json.render(&lookup);
        let value: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path:?} | json renders {body:?}, not JSON: {e}"));
        assert_eq!(
            value.as_str(),
            Some(lookup(path).unwrap_or_default().as_str())
        );
    }
});

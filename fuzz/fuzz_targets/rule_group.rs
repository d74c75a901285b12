//! Rule groups (`strata_alert::rules`): `parse_group`, a group sent to the API as YAML or
//! JSON, and `parse_rule_file`, a rule file's text. An accepted group validates, names a
//! valid tenant and a positive interval, its annotations all parse as templates, and it
//! survives the way the rule store keeps it (JSON) and a client sending that JSON back.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use strata_alert::rules::{
    MAX_GROUP_BYTES, MAX_NAME_BYTES, MAX_RULES_PER_GROUP, RuleFile, RuleGroup, parse_group,
    parse_rule_file,
};
use strata_alert::template::Template;

fn check_group(g: &RuleGroup) {
    g.validate().expect("an accepted group validates again");
    assert!(!g.name.trim().is_empty() && g.name.len() <= MAX_NAME_BYTES);
    assert!(!g.rules.is_empty() && g.rules.len() <= MAX_RULES_PER_GROUP);
    assert!(!g.interval().is_zero());
    g.tenant_id().expect("an accepted group's tenant is valid");
    for rule in &g.rules {
        let sql = rule.evaluated_sql();
        assert!(!sql.trim().is_empty());
        let templates = rule.annotation_templates();
        assert_eq!(
            templates.len(),
            rule.annotations.len(),
            "an annotation does not parse"
        );
        for (_, t) in &templates {
            let _ = t.render(&|p: &str| Some(p.to_string()));
            assert_eq!(Template::parse(&t.to_string()).as_ref(), Ok(t));
        }
        let _ = (rule.hold(), rule.keep_firing());
    }
    // The rule store saves a group as JSON and loads it back.
    let json = serde_json::to_string(g).expect("a group serializes");
    let stored: RuleGroup = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("saved group {json} does not load: {e}"));
    assert_eq!(&stored, g);
    // A client gets that JSON and sends it back unchanged.
    if json.len() <= MAX_GROUP_BYTES {
        let resent =
            parse_group(json.as_bytes()).unwrap_or_else(|e| panic!("{json} is refused: {e}"));
        assert_eq!(&resent, g);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = parse_group(data) {
        check_group(&g);
        // The same group in a rule file.
        let file = serde_json::to_string(&RuleFile {
            groups: vec![g.clone()],
        })
        .unwrap();
        let parsed = parse_rule_file(Path::new("fuzz.yml"), &file)
            .unwrap_or_else(|e| panic!("{file} is refused as a rule file: {e}"));
        assert_eq!(parsed.groups, vec![g]);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(file) = parse_rule_file(Path::new("fuzz.yml"), text)
    {
        for g in &file.groups {
            check_group(g);
        }
    }
});

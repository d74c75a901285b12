//! The alerter configuration (`strata_alert::config::AlerterConfig::from_yaml`): the YAML
//! file with routes, inhibition rules, time intervals, receivers (URLs, body templates),
//! escalation policies, correlation and delivery settings. An accepted configuration
//! compiles, survives serialization, and what the alerter then does with it (route alerts,
//! check time intervals, walk escalation steps) does not panic; route keys are unique.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use strata_alert::config::{AlerterConfig, Compiled, Route};
use strata_alert::{Labels, Matcher};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every key in the tree, each once (alert groups are keyed by route).
fn keys<'a>(route: &'a Route, seen: &mut BTreeSet<&'a str>) {
    assert!(
        seen.insert(&route.key),
        "two routes with key {:?}",
        route.key
    );
    assert!(!route.receiver.is_empty());
    assert!(!route.group_interval.is_zero() && !route.repeat_interval.is_zero());
    for child in &route.routes {
        keys(child, seen);
    }
}

/// Label sets made of what the configuration's matchers ask for, plus fixed ones.
fn probes(route: &Route, out: &mut Vec<Labels>) {
    let set: Labels = route
        .matchers
        .iter()
        .map(|m: &Matcher| (m.name.clone(), m.value.clone()))
        .collect();
    if !set.is_empty() {
        out.push(set);
    }
    for child in &route.routes {
        probes(child, out);
    }
}

fn exercise(c: &Compiled) {
    let mut seen = BTreeSet::new();
    keys(&c.route, &mut seen);
    for key in &seen {
        assert_eq!(c.route.find(key).map(|r| r.key.as_str()), Some(*key));
    }
    let mut sets = vec![
        Labels::new(),
        labels(&[("alertname", "HighErrorRate"), ("service", "cart")]),
        labels(&[("severity", "critical"), ("service.name", "pay")]),
    ];
    probes(&c.route, &mut sets);
    for l in &sets {
        let routes = c.route.routes_for(l);
        assert!(!routes.is_empty(), "an alert routed nowhere");
        for r in routes {
            let _ = r.group_labels(l);
            for now in [i64::MIN, -1, 0, 1_795_000_000_000_000_000, i64::MAX] {
                let _ = c.muted(r, now);
            }
        }
        let _ = c.correlation.service_of(l);
        for rule in &c.inhibit {
            let _ = strata_alert::matchers::matches_all(&rule.source, l);
            let _ = strata_alert::matchers::matches_all(&rule.target, l);
        }
    }
    for name in c.intervals.keys() {
        for now in [
            i64::MIN,
            0,
            951_782_400_000_000_000,
            1_795_000_000_000_000_000,
            i64::MAX,
        ] {
            let _ = c.in_interval(name, now);
        }
    }
    for p in c.policies.values() {
        let total = p.total_steps();
        assert!(total >= p.steps.len());
        let mut last = None;
        for i in (0..total.min(64)).chain(total.saturating_sub(2)..total) {
            let (s, delay) = p.step(i).expect("a step within total_steps");
            assert!(s < p.steps.len());
            if let Some((j, previous)) = last
                && j < i
            {
                assert!(delay >= previous, "step {i} before step {j}");
            }
            last = Some((i, delay));
        }
        assert_eq!(p.step(total), None);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = AlerterConfig::from_yaml(text) else {
        return;
    };
    let compiled = config
        .compile()
        .expect("an accepted configuration compiles");
    exercise(&compiled);
    // Serialized (as the API shows it) and read back: the same configuration.
    let json = serde_json::to_string(&config).expect("a configuration serializes");
    let back: AlerterConfig =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json} does not load: {e}"));
    assert_eq!(back, config);
    back.compile().expect("the reloaded configuration compiles");
});

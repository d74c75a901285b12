//! Rule files and rule groups: the Prometheus rule-file shape with `sql` in place of `expr`.
//!
//! ```yaml
//! groups:
//!   - name: checkout
//!     interval: 15s          # default 1m
//!     tenant: acme           # Strata extension, files only; default `default`
//!     rules:
//!       - alert: HighErrorRate
//!         sql: SELECT service_name AS service, avg(...) AS value FROM spans ... GROUP BY 1
//!         condition: value > 0.05
//!         for: 1m
//!         keep_firing_for: 2m
//!         labels: {severity: page}
//!         annotations: {summary: "{{ $labels.service }} error rate {{ $value }}"}
//! ```
//!
//! Each result row of a rule's SQL is one alert instance (`crate::eval`). With a `condition`,
//! the SQL evaluated is `SELECT * FROM (<sql>) AS rule WHERE <condition>`. Groups are
//! validated when loaded or saved ([`RuleGroup::validate`]); their SQL is planned (not run)
//! by the rule store through [`crate::scheduler::RuleQuerier::validate`].
//!
//! Alert names must be unique within a group (Prometheus allows duplicates; Strata keys an
//! instance's saved state by group and alert name, so it refuses them).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_storage::TenantId;

use crate::model::{ALERTNAME, Labels};
use crate::template::Template;

/// A group's evaluation interval when it names none (Prometheus' default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Longest `sql` (and `condition`) accepted.
pub const MAX_SQL_BYTES: usize = 64 * 1024;
/// Most rules in one group.
pub const MAX_RULES_PER_GROUP: usize = 1_000;
/// Longest group or alert name.
pub const MAX_NAME_BYTES: usize = 256;

/// A rule file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

/// Rules evaluated together, in order, every `interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    /// The tenant whose data the group's rules query (rule files only; groups saved through
    /// the API belong to the caller's tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(
        default,
        with = "crate::time::option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    pub rules: Vec<Rule>,
}

/// One alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The alert's name (label `alertname`).
    pub alert: String,
    /// A query whose rows are the alert's instances: a numeric `value` column, the other
    /// columns are labels.
    pub sql: String,
    /// A boolean SQL expression over the result's columns; rows where it is not true are not
    /// instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// How long an instance is active before it fires (pending until then).
    #[serde(
        rename = "for",
        default,
        with = "crate::time::option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub for_: Option<Duration>,
    /// How long a firing instance keeps firing after its row disappeared.
    #[serde(
        default,
        with = "crate::time::option_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_firing_for: Option<Duration>,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Templates (`crate::template`) over `$labels.<name>`, `$value`, `$alertname`.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub annotations: Labels,
}

/// Why rules cannot be loaded or saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The group is invalid (the message says where and why).
    #[error("{0}")]
    Invalid(String),
    /// A rule file cannot be read or parsed, or holds an invalid group.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

impl Rule {
    /// The SQL the scheduler runs: `sql`, filtered by `condition` when there is one.
    pub fn evaluated_sql(&self) -> String {
        match &self.condition {
            Some(condition) => format!(
                "SELECT * FROM ({}) AS rule WHERE {}",
                self.sql.trim().trim_end_matches(';'),
                condition
            ),
            None => self.sql.clone(),
        }
    }

    /// `for`, zero when unset.
    pub fn hold(&self) -> Duration {
        self.for_.unwrap_or_default()
    }

    /// `keep_firing_for`, zero when unset.
    pub fn keep_firing(&self) -> Duration {
        self.keep_firing_for.unwrap_or_default()
    }

    /// The parsed annotation templates (validated rules only parse).
    pub fn annotation_templates(&self) -> Vec<(String, Template)> {
        (self.annotations.iter())
            .filter_map(|(k, v)| Template::parse(v).ok().map(|t| (k.clone(), t)))
            .collect()
    }

    fn validate(&self, group: &str) -> Result<(), RuleError> {
        let at = |message: String| {
            RuleError::Invalid(format!("group {group:?}, rule {:?}: {message}", self.alert))
        };
        if self.alert.trim().is_empty() {
            return Err(RuleError::Invalid(format!(
                "group {group:?}: a rule has an empty 'alert' name"
            )));
        }
        if self.alert.len() > MAX_NAME_BYTES {
            return Err(at(format!("'alert' is longer than {MAX_NAME_BYTES} bytes")));
        }
        if self.sql.trim().is_empty() {
            return Err(at("'sql' is empty".into()));
        }
        if self.sql.len() > MAX_SQL_BYTES {
            return Err(at(format!(
                "'sql' is {} bytes, longer than the limit of {MAX_SQL_BYTES}",
                self.sql.len()
            )));
        }
        if let Some(condition) = &self.condition {
            if condition.trim().is_empty() {
                return Err(at("'condition' is empty (leave it out instead)".into()));
            }
            if condition.len() > MAX_SQL_BYTES {
                return Err(at(format!(
                    "'condition' is longer than the limit of {MAX_SQL_BYTES} bytes"
                )));
            }
        }
        for name in self.labels.keys() {
            if !is_label_name(name) {
                return Err(at(format!(
                    "label name {name:?} is invalid (want [a-zA-Z_][a-zA-Z0-9_]*)"
                )));
            }
            if name == ALERTNAME {
                return Err(at("label 'alertname' is set from 'alert'".into()));
            }
        }
        for (name, text) in &self.annotations {
            if !is_label_name(name) {
                return Err(at(format!(
                    "annotation name {name:?} is invalid (want [a-zA-Z_][a-zA-Z0-9_]*)"
                )));
            }
            Template::parse(text).map_err(|e| at(format!("annotation {name:?}: {e}")))?;
        }
        Ok(())
    }
}

impl RuleGroup {
    /// `interval`, or [`DEFAULT_INTERVAL`].
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(DEFAULT_INTERVAL)
    }

    /// Checks everything but the SQL's meaning (which needs the query engine).
    pub fn validate(&self) -> Result<(), RuleError> {
        let name = &self.name;
        if name.trim().is_empty() {
            return Err(RuleError::Invalid("a group has an empty 'name'".into()));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(RuleError::Invalid(format!(
                "group name is longer than {MAX_NAME_BYTES} bytes"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(RuleError::Invalid(format!(
                "group name {name:?} holds a control character"
            )));
        }
        if let Some(t) = &self.tenant {
            TenantId::new(t)
                .map_err(|e| RuleError::Invalid(format!("group {name:?}: tenant {t:?}: {e}")))?;
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            return Err(RuleError::Invalid(format!(
                "group {name:?}: 'interval' must be greater than zero"
            )));
        }
        if self.rules.is_empty() {
            return Err(RuleError::Invalid(format!("group {name:?} has no rules")));
        }
        if self.rules.len() > MAX_RULES_PER_GROUP {
            return Err(RuleError::Invalid(format!(
                "group {name:?} has {} rules, more than the limit of {MAX_RULES_PER_GROUP}",
                self.rules.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for rule in &self.rules {
            rule.validate(name)?;
            if !seen.insert(rule.alert.as_str()) {
                return Err(RuleError::Invalid(format!(
                    "group {name:?}: two rules are named {:?} (alert names must be unique \
                     within a group)",
                    rule.alert
                )));
            }
        }
        Ok(())
    }

    /// The tenant the group belongs to: its `tenant`, or the default tenant.
    pub fn tenant_id(&self) -> Result<TenantId, RuleError> {
        match &self.tenant {
            Some(t) => TenantId::new(t).map_err(|e| {
                RuleError::Invalid(format!("group {:?}: tenant {t:?}: {e}", self.name))
            }),
            None => Ok(TenantId::default_tenant()),
        }
    }
}

pub use crate::model::is_label_name;

/// Largest rule group accepted through the API.
pub const MAX_GROUP_BYTES: usize = 1024 * 1024;

/// Reads `text` as JSON when it is JSON of the right shape, else as YAML.
///
/// JSON is nearly YAML, but not quite: in a double-quoted string the YAML parser refuses
/// some characters JSON allows raw (DEL) and folds some line breaks (NEL, U+0085) into a
/// space, so a group read back as JSON (the rule store's form, what the API returns) and
/// sent again would be refused or changed. Bodies that are not JSON, or are JSON that does
/// not fit (`labels: {a: 1}`, which YAML reads as a string), get the YAML reading and its
/// error.
fn from_json_or_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, serde_yaml_ng::Error> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(_) => serde_yaml_ng::from_str(text),
    }
}

/// Parses one rule group sent to the API, as YAML or JSON, and validates it
/// (names, labels, templates; not the SQL, which needs the engine).
pub fn parse_group(body: &[u8]) -> Result<RuleGroup, RuleError> {
    if body.len() > MAX_GROUP_BYTES {
        return Err(RuleError::Invalid(format!(
            "a rule group is at most {MAX_GROUP_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| RuleError::Invalid("a rule group must be UTF-8 text".into()))?;
    let group: RuleGroup = from_json_or_yaml(text)
        .map_err(|e| RuleError::Invalid(format!("not a rule group: {e}")))?;
    group.validate()?;
    Ok(group)
}

/// Parses and validates one rule file's text (`path` names it in errors).
pub fn parse_rule_file(path: &Path, text: &str) -> Result<RuleFile, RuleError> {
    let file_err = |message: String| RuleError::File {
        path: path.to_path_buf(),
        message,
    };
    let file: RuleFile = from_json_or_yaml(text).map_err(|e| file_err(e.to_string()))?;
    for group in &file.groups {
        group.validate().map_err(|e| file_err(e.to_string()))?;
    }
    Ok(file)
}

/// Loads `--rules`: one file, or every `*.yml` / `*.yaml` file of a directory (not its
/// subdirectories) in name order. Group names must be unique per tenant across all files.
/// Returns each group with its tenant, in file order.
pub fn load_rules(path: &Path) -> Result<Vec<(TenantId, RuleGroup)>, RuleError> {
    let io_err = |p: &Path, e: std::io::Error| RuleError::File {
        path: p.to_path_buf(),
        message: e.to_string(),
    };
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| io_err(path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|ext| ext == "yml" || ext == "yaml")
            })
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut out: Vec<(TenantId, RuleGroup)> = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| io_err(&file, e))?;
        for group in parse_rule_file(&file, &text)?.groups {
            let tenant = group.tenant_id().map_err(|e| RuleError::File {
                path: file.clone(),
                message: e.to_string(),
            })?;
            if !seen.insert((tenant.as_str().to_string(), group.name.clone())) {
                return Err(RuleError::File {
                    path: file.clone(),
                    message: format!(
                        "group {:?} of tenant {tenant} is defined twice (group names are \
                         unique per tenant across rule files)",
                        group.name
                    ),
                });
            }
            out.push((tenant, group));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
groups:
  - name: checkout
    interval: 15s
    rules:
      - alert: HighErrorRate
        sql: |
          SELECT service_name AS service,
                 avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS value
          FROM spans WHERE time > now() - INTERVAL '5 minutes' GROUP BY service_name
        condition: value > 0.05
        for: 1m
        keep_firing_for: 2m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.service }} error rate {{ $value }}"
"#;

    fn group() -> RuleGroup {
        parse_rule_file(Path::new("x.yml"), EXAMPLE)
            .unwrap()
            .groups
            .remove(0)
    }

    fn invalid(g: &RuleGroup) -> String {
        match g.validate() {
            Err(RuleError::Invalid(m)) => m,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn the_example_file_parses_with_its_durations_and_condition() {
        let g = group();
        assert_eq!(g.interval(), Duration::from_secs(15));
        assert_eq!(g.tenant_id().unwrap().as_str(), "default");
        let r = &g.rules[0];
        assert_eq!(r.hold(), Duration::from_secs(60));
        assert_eq!(r.keep_firing(), Duration::from_secs(120));
        assert_eq!(r.labels["severity"], "page");
        assert!(
            r.evaluated_sql()
                .starts_with("SELECT * FROM (SELECT service_name AS service")
        );
        assert!(r.evaluated_sql().ends_with(") AS rule WHERE value > 0.05"));
        // Round trip through the stored (JSON) form.
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<RuleGroup>(&json).unwrap(), g);
        let mut no_interval = g.clone();
        no_interval.interval = None;
        assert_eq!(no_interval.interval(), DEFAULT_INTERVAL);
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let mut g = group();
        g.name = " ".into();
        assert!(invalid(&g).contains("empty 'name'"));

        let mut g = group();
        g.rules.push(g.rules[0].clone());
        assert!(invalid(&g).contains("two rules are named \"HighErrorRate\""));

        let mut g = group();
        g.rules[0].labels.insert("bad-name".into(), "x".into());
        assert!(invalid(&g).contains("label name \"bad-name\" is invalid"));

        let mut g = group();
        g.rules[0].labels.insert("9lives".into(), "x".into());
        assert!(invalid(&g).contains("\"9lives\""));

        let mut g = group();
        g.rules[0]
            .annotations
            .insert("description".into(), "{{ $value ".into());
        let m = invalid(&g);
        assert!(m.contains("annotation \"description\""), "{m}");
        assert!(m.contains("unclosed"), "{m}");

        let mut g = group();
        g.interval = Some(Duration::ZERO);
        assert!(invalid(&g).contains("'interval' must be greater than zero"));

        let mut g = group();
        g.rules[0].sql = "  \n".into();
        assert!(invalid(&g).contains("'sql' is empty"));

        let mut g = group();
        g.rules[0].sql = "x".repeat(MAX_SQL_BYTES + 1);
        assert!(invalid(&g).contains("longer than the limit"));

        let mut g = group();
        g.rules[0].alert = String::new();
        assert!(invalid(&g).contains("empty 'alert'"));

        let mut g = group();
        g.rules.clear();
        assert!(invalid(&g).contains("has no rules"));

        let mut g = group();
        g.tenant = Some("no/slash".into());
        assert!(invalid(&g).contains("tenant"));
    }

    #[test]
    fn unknown_fields_negative_durations_and_expr_are_refused() {
        let p = Path::new("rules.yml");
        for (text, want) in [
            (
                "groups: [{name: a, rules: [{alert: A, sql: 'SELECT 1 AS value', bogus: 1}]}]",
                "unknown field `bogus`",
            ),
            (
                "groups: [{name: a, rules: [{alert: A, expr: 'up == 0'}]}]",
                "unknown field `expr`",
            ),
            (
                "groups: [{name: a, interval: -5m, rules: [{alert: A, sql: 'SELECT 1'}]}]",
                "invalid duration",
            ),
            (
                "groups: [{name: a, interval: 0s, rules: [{alert: A, sql: 'SELECT 1'}]}]",
                "greater than zero",
            ),
        ] {
            let err = parse_rule_file(p, text).unwrap_err().to_string();
            assert!(err.starts_with("rules.yml: "), "{err}");
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn a_directory_loads_its_yaml_files_in_name_order_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "b.yaml",
            "groups: [{name: second, tenant: acme, rules: [{alert: B, sql: 'SELECT 1 AS value'}]}]",
        );
        write(
            "a.yml",
            "groups: [{name: first, rules: [{alert: A, sql: 'SELECT 1 AS value'}]}]",
        );
        write("notes.txt", "not yaml: [");
        let groups = load_rules(dir.path()).unwrap();
        let names: Vec<(&str, &str)> = (groups.iter())
            .map(|(t, g)| (t.as_str(), g.name.as_str()))
            .collect();
        assert_eq!(names, [("default", "first"), ("acme", "second")]);

        // One file on its own.
        assert_eq!(load_rules(&dir.path().join("b.yaml")).unwrap().len(), 1);

        // A duplicate group of the same tenant, and a broken file: the error names the file.
        write(
            "c.yml",
            "groups: [{name: first, rules: [{alert: C, sql: 'SELECT 1 AS value'}]}]",
        );
        let err = load_rules(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("c.yml") && err.contains("defined twice"),
            "{err}"
        );
        write(
            "c.yml",
            "groups: [{name: third, rules: [{alert: '', sql: x}]}]",
        );
        let err = load_rules(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("c.yml") && err.contains("empty 'alert'"),
            "{err}"
        );
        let err = load_rules(&dir.path().join("missing.yml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.yml"), "{err}");
    }

    /// Caught by the round-trip check of fuzz/fuzz_targets/rule_group.rs: a group as the API
    /// returns it (JSON), with a DEL or a NEL in a string, was refused or changed when sent
    /// back, because the YAML parser read the JSON.
    #[test]
    fn json_groups_are_read_as_json() {
        let mut g = group();
        g.rules[0]
            .annotations
            .insert("summary".into(), "a\u{7f}b\u{85}c\u{2028}d\u{feff}".into());
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(parse_group(json.as_bytes()).unwrap(), g);
        let file = serde_json::to_string(&RuleFile {
            groups: vec![g.clone()],
        })
        .unwrap();
        assert_eq!(
            parse_rule_file(Path::new("r.json"), &file).unwrap().groups,
            vec![g]
        );
        // YAML, and JSON that only YAML reads (a number as a label value), still parse.
        let yaml = "{name: y, rules: [{alert: A, sql: SELECT 1, labels: {n: 1}}]}";
        assert_eq!(
            parse_group(yaml.as_bytes()).unwrap().rules[0].labels["n"],
            "1"
        );
        let numeric = r#"{"name":"y","rules":[{"alert":"A","sql":"SELECT 1","labels":{"n":1}}]}"#;
        assert_eq!(
            parse_group(numeric.as_bytes()).unwrap().rules[0].labels["n"],
            "1"
        );
        let e = parse_group(br#"{"name":"y","rules":[],"bogus":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
    }
}

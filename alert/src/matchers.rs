//! Label matchers in the Alertmanager syntax: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"`; the value quoted (with `\"`, `\\`, `\n` escapes) or bare.
//! Regexes are fully anchored, as in Prometheus. A label an alert lacks matches as the empty
//! string. Lists are written `{a="b", c=~"x|y"}` or without braces, comma-separated.
//!
//! Matchers come from users (configuration, silences): input is bounded
//! ([`MAX_MATCHER_BYTES`], [`MAX_MATCHERS`], [`REGEX_SIZE_LIMIT`]) and a bad one is an error,
//! never a panic.

use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Labels;

/// Longest matcher or matcher list accepted, in bytes.
pub const MAX_MATCHER_BYTES: usize = 4096;
/// Most matchers in one list.
pub const MAX_MATCHERS: usize = 64;
/// Compiled size limit of one regex (bytes), so a hostile pattern cannot blow up memory.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Eq,
    NotEq,
    Re,
    NotRe,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::NotEq => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

/// Why a matcher does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid matcher {input:?}: {message}")]
pub struct MatcherError {
    /// The offending text (truncated to 80 bytes).
    pub input: String,
    pub message: String,
}

impl MatcherError {
    fn new(input: &str, message: impl Into<String>) -> Self {
        let mut end = input.len().min(80);
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            input: input[..end].to_string(),
            message: message.into(),
        }
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.op, &self.value) == (&other.name, other.op, &other.value)
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// A matcher; compiles the regex of `=~` and `!~` (anchored).
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let text = || format!("{name}{}{value:?}", op.as_str());
        if name.is_empty() || !valid_name(name) {
            return Err(MatcherError::new(&text(), "invalid label name"));
        }
        // The limit applies to the printed form (how a silence's matchers are saved), so
        // whatever is accepted also parses back: escapes make it longer than name and value.
        let escapes = value
            .chars()
            .filter(|c| matches!(c, '"' | '\\' | '\n'))
            .count();
        if name.len() + op.as_str().len() + value.len() + escapes + 2 > MAX_MATCHER_BYTES {
            return Err(MatcherError::new(&text(), "matcher too long"));
        }
        let re = match op {
            MatchOp::Re | MatchOp::NotRe => Some(
                RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| MatcherError::new(&text(), format!("invalid regex: {e}")))?,
            ),
            _ => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Whether `value` (the label's value, empty when absent) matches.
    pub fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => value == self.value,
            (MatchOp::NotEq, _) => value != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(value),
            (MatchOp::NotRe, Some(re)) => !re.is_match(value),
            _ => false,
        }
    }

    /// Whether the label set matches (a missing label is the empty string).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }
}

/// Whether every matcher matches.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, MatcherError> {
        let list = parse_matchers(s)?;
        match <[Matcher; 1]>::try_from(list) {
            Ok([m]) => Ok(m),
            Err(_) => Err(MatcherError::new(s, "expected exactly one matcher")),
        }
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Writes a list as `{a="b", c=~"x|y"}`.
pub fn format_matchers(matchers: &[Matcher]) -> String {
    let inner: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Parses `{a="b", c=~"x|y"}`, `a="b", c=~"x|y"` or a single matcher. An empty list
/// (`{}` or blank) is an empty vector.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    if input.len() > MAX_MATCHER_BYTES {
        return Err(MatcherError::new(
            input,
            format!("longer than {MAX_MATCHER_BYTES} bytes"),
        ));
    }
    let err = |m: &str| MatcherError::new(input, m);
    let mut s = input.trim();
    if let Some(rest) = s.strip_prefix('{') {
        s = rest
            .strip_suffix('}')
            .ok_or_else(|| err("missing closing '}'"))?
            .trim();
    } else if s.ends_with('}') {
        return Err(err("missing opening '{'"));
    }
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.trim_start().is_empty() {
        if out.len() >= MAX_MATCHERS {
            return Err(err(&format!("more than {MAX_MATCHERS} matchers")));
        }
        let t = rest.trim_start();
        let name_len = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(t.len());
        let name = &t[..name_len];
        if name.is_empty() {
            return Err(err("expected a label name"));
        }
        let t = t[name_len..].trim_start();
        let (op, t) = if let Some(r) = t.strip_prefix("=~") {
            (MatchOp::Re, r)
        } else if let Some(r) = t.strip_prefix("!~") {
            (MatchOp::NotRe, r)
        } else if let Some(r) = t.strip_prefix("!=") {
            (MatchOp::NotEq, r)
        } else if let Some(r) = t.strip_prefix('=') {
            (MatchOp::Eq, r)
        } else {
            return Err(err(&format!(
                "expected one of = != =~ !~ after label name {name:?}"
            )));
        };
        let t = t.trim_start();
        let (value, t) = if let Some(q) = t.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('"' | '\\'))) => value.push(c),
                        // Other escapes are kept as written (regex escapes such as `\d`).
                        Some((_, c)) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err(err("unterminated quoted value")),
                    },
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| err("unterminated quoted value"))?;
            (value, &q[end..])
        } else {
            let end = t.find([',', '"', '{', '}']).unwrap_or(t.len());
            if t[end..].starts_with(['"', '{', '}']) || t.starts_with(['=', '~']) {
                return Err(err("unexpected character in unquoted value"));
            }
            (t[..end].trim_end().to_string(), &t[end..])
        };
        out.push(Matcher::new(name, op, &value).map_err(|e| err(&e.message))?);
        let t = t.trim_start();
        rest = if let Some(r) = t.strip_prefix(',') {
            if r.trim().is_empty() {
                // A trailing comma is accepted, as Alertmanager does.
                ""
            } else {
                r
            }
        } else if t.is_empty() {
            ""
        } else {
            return Err(err(&format!(
                "expected ',' before {:?}",
                t.chars().next().unwrap_or(' ')
            )));
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_round_trips() {
        let list = parse_matchers(r#"{a="b", c=~"x|y", d!=e , e!~"f.*"}"#).unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(
            format_matchers(&list),
            r#"{a="b", c=~"x|y", d!="e", e!~"f.*"}"#
        );
        assert_eq!(parse_matchers(&format_matchers(&list)).unwrap(), list);
        let m: Matcher = r#"msg="say \"hi\"\\""#.parse().unwrap();
        assert_eq!(m.value, "say \"hi\"\\");
        assert_eq!(m.to_string().parse::<Matcher>().unwrap(), m);
        assert!(parse_matchers("{}").unwrap().is_empty());
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let m: Matcher = "service=~\"cart|pay\"".parse().unwrap();
        assert!(m.matches(&labels(&[("service", "cart")])));
        assert!(!m.matches(&labels(&[("service", "carts")])));
        let absent: Matcher = "team=\"\"".parse().unwrap();
        assert!(absent.matches(&labels(&[])));
        let not: Matcher = "env!~\"prod.*\"".parse().unwrap();
        assert!(not.matches(&labels(&[("env", "dev")])));
        assert!(!not.matches(&labels(&[("env", "production")])));
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for bad in [
            "",
            "=\"x\"",
            "a",
            "a==",
            "a=\"x",
            "a=~\"(\"",
            "{a=\"b\"",
            "a=\"b\"}",
            "a=\"b\" c=\"d\"",
            "1a=\"b\"",
            "a=b\"c",
            "a=\"\\",
            "a=~\"x{100000}{100000}\"",
            "é=\"x\"",
        ] {
            assert!(bad.parse::<Matcher>().is_err(), "{bad:?} should be refused");
        }
        let long = format!("a=\"{}\"", "x".repeat(MAX_MATCHER_BYTES));
        assert!(parse_matchers(&long).is_err());
        // Caught by the round-trip check of fuzz/fuzz_targets/alert_matchers.rs: raw newlines
        // (and regex escapes such as `\d`) print longer than written, so a matcher under the
        // limit printed over it and its saved form did not parse back.
        for value in ["\n".repeat(3000), "\\d".repeat(1500)] {
            let input = format!("a=~\"{value}\"");
            assert!(input.len() <= MAX_MATCHER_BYTES);
            if let Ok(m) = input.parse::<Matcher>() {
                assert!(m.to_string().len() <= MAX_MATCHER_BYTES);
                assert_eq!(m.to_string().parse::<Matcher>().unwrap(), m);
            }
        }
        let fits = format!("a=\"{}\"", "\n".repeat((MAX_MATCHER_BYTES - 4) / 2));
        let m: Matcher = fits.parse().unwrap();
        assert_eq!(m.to_string().len(), MAX_MATCHER_BYTES);
        assert_eq!(m.to_string().parse::<Matcher>().unwrap(), m);
        let over = format!("a=\"{}\"", "\n".repeat((MAX_MATCHER_BYTES - 4) / 2 + 1));
        assert!(
            over.parse::<Matcher>()
                .unwrap_err()
                .message
                .contains("too long")
        );
        let many: Vec<String> = (0..=MAX_MATCHERS).map(|i| format!("a{i}=\"x\"")).collect();
        assert!(parse_matchers(&many.join(",")).is_err());
        assert!(parse_matchers("a=\"b\",c=\"d\"").unwrap().len() == 2);
    }

    #[test]
    fn every_short_string_parses_or_errs_without_panicking() {
        let alphabet = [
            "a", "=", "!", "~", "\"", "\\", "{", "}", ",", " ", "é", "(", "*",
        ];
        let mut stack = vec![String::new()];
        let mut tried = 0;
        while let Some(s) = stack.pop() {
            if let Ok(list) = parse_matchers(&s) {
                // Whatever parses, round-trips.
                assert_eq!(
                    parse_matchers(&format_matchers(&list)).unwrap(),
                    list,
                    "{s:?}"
                );
            }
            tried += 1;
            if s.chars().count() < 5 {
                stack.extend(alphabet.iter().map(|c| format!("{s}{c}")));
            }
        }
        assert_eq!(tried, (0..=5).map(|n| 13usize.pow(n)).sum::<usize>());
    }
}

//! A small template language for annotations and webhook bodies.
//!
//! `{{ path }}` inserts a value looked up by the caller; `{{ path | json }}` inserts it as a
//! JSON string literal (quoted and escaped), for bodies that are JSON. Paths are what the
//! caller defines: rules offer `$labels.<name>`, `$value` and `$alertname`; webhook bodies
//! offer `.Status`, `.Receiver`, `.GroupKey`, `.GroupLabels.<name>`, … (docs/ALERTING.md). An
//! unknown path renders as the empty string, as a missing label does in Prometheus. Anything
//! outside `{{ }}` is copied as is. Templates are parsed when a rule or configuration is
//! saved, so a syntax error is reported then, not at the first notification.

use std::fmt;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var { path: String, json: bool },
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error at byte {offset}: {message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// Longest template accepted.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

impl Template {
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        let err = |offset: usize, message: &str| TemplateError {
            offset,
            message: message.to_string(),
        };
        if src.len() > MAX_TEMPLATE_BYTES {
            return Err(err(MAX_TEMPLATE_BYTES, "template longer than 64 KiB"));
        }
        let mut parts = Vec::new();
        let mut rest = src;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let body_start = open + 2;
            let Some(close) = rest[body_start..].find("}}") else {
                return Err(err(offset + open, "unclosed '{{'"));
            };
            let body = &rest[body_start..body_start + close];
            if body.contains("{{") {
                return Err(err(offset + open, "'{{' inside '{{ }}'"));
            }
            let (path, filter) = match body.split_once('|') {
                Some((path, filter)) => (path.trim(), Some(filter.trim())),
                None => (body.trim(), None),
            };
            let json = match filter {
                None => false,
                Some("json") => true,
                Some(other) => {
                    return Err(err(
                        offset + body_start,
                        &format!("unknown filter {other:?} (the only filter is 'json')"),
                    ));
                }
            };
            if !is_path(path) {
                return Err(err(
                    offset + body_start,
                    &format!(
                        "{path:?} is not a value path (e.g. $labels.service, $value, .Status)"
                    ),
                ));
            }
            parts.push(Part::Var {
                path: path.to_string(),
                json,
            });
            let consumed = body_start + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Renders with `lookup` giving each path's value (`None`: empty).
    pub fn render(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var { path, json } => {
                    let value = lookup(path).unwrap_or_default();
                    if *json {
                        out.push_str(&serde_json::Value::String(value).to_string());
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }

    /// The paths the template reads.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { path, .. } => Some(path.as_str()),
            Part::Text(_) => None,
        })
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(text) => f.write_str(text)?,
                Part::Var { path, json: false } => write!(f, "{{{{ {path} }}}}")?,
                Part::Var { path, json: true } => write!(f, "{{{{ {path} | json }}}}")?,
            }
        }
        Ok(())
    }
}

/// `$name`, `.Name`, with `.segment`s after: letters, digits, `_`; a segment may not be empty.
fn is_path(path: &str) -> bool {
    let rest = if let Some(rest) = path.strip_prefix('$') {
        rest
    } else if let Some(rest) = path.strip_prefix('.') {
        rest
    } else {
        return false;
    };
    !rest.is_empty()
        && rest.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(path: &str) -> Option<String> {
        match path {
            "$labels.service" => Some("cart".into()),
            "$value" => Some("0.25".into()),
            ".Status" => Some("firing".into()),
            ".CommonAnnotations.summary" => Some("say \"hi\"\n".into()),
            _ => None,
        }
    }

    #[test]
    fn renders_paths_and_text() {
        let t =
            Template::parse("{{ $labels.service }} errors at {{$value}} ({{ $labels.missing }})")
                .unwrap();
        assert_eq!(t.render(&lookup), "cart errors at 0.25 ()");
        assert_eq!(Template::parse("plain").unwrap().render(&lookup), "plain");
        assert_eq!(Template::parse("").unwrap().render(&lookup), "");
    }

    #[test]
    fn json_filter_quotes_and_escapes() {
        let t = Template::parse(
            r#"{"s": {{ .Status | json }}, "m": {{ .CommonAnnotations.summary|json }}}"#,
        )
        .unwrap();
        let body = t.render(&lookup);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["s"], "firing");
        assert_eq!(v["m"], "say \"hi\"\n");
    }

    #[test]
    fn syntax_errors_name_the_place() {
        for (src, at) in [
            ("a {{ $value", 2),
            ("{{ }}", 2),
            ("{{ value }}", 2),
            ("{{ $labels. }}", 2),
            ("{{ $value | upper }}", 2),
            ("x {{ {{ $value }} }}", 2),
        ] {
            let e = Template::parse(src).unwrap_err();
            assert_eq!(e.offset, at, "{src}: {e}");
        }
        assert!(Template::parse(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).is_err());
    }

    #[test]
    fn display_round_trips() {
        let src = "{{ $labels.a }}-{{ .B | json }}";
        let t = Template::parse(src).unwrap();
        assert_eq!(Template::parse(&t.to_string()).unwrap(), t);
        assert_eq!(t.paths().collect::<Vec<_>>(), vec!["$labels.a", ".B"]);
    }
}

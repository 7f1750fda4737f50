//! A job's labels and the label selectors that pick jobs by them (DESIGN.md
//! §11.9): Kubernetes' key and value syntax and its selector grammar, so
//! `team=data,env!=dev,tier in (gold,silver)` means here what it means to
//! `kubectl get -l`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::domain::error::{FieldError, Reason};

/// A job's labels, by key.
pub type Labels = BTreeMap<String, String>;

/// The most labels a job carries.
pub const MAX_LABELS: usize = 32;
/// The longest value, and the longest key name (after any prefix).
const MAX_NAME: usize = 63;
/// The longest key prefix (a DNS subdomain).
const MAX_PREFIX: usize = 253;

/// Reads the `labels` object of a request: each value a string, each key
/// and value of Kubernetes' syntax, at most [`MAX_LABELS`].
pub fn parse(map: &Map<String, Value>, field: &str) -> Result<Labels, FieldError> {
    if map.len() > MAX_LABELS {
        return Err(FieldError::new(
            field,
            format!(
                "has {} labels; a job carries at most {MAX_LABELS}",
                map.len()
            ),
        ));
    }
    let mut labels = Labels::new();
    for (key, value) in map {
        let at = format!("{field}.{key}");
        check_key(key).map_err(|r| FieldError::new(&at, r.to_string()))?;
        let Value::String(value) = value else {
            return Err(FieldError::new(at, "must be a string"));
        };
        check_value(value).map_err(|r| FieldError::new(&at, r.to_string()))?;
        labels.insert(key.clone(), value.clone());
    }
    Ok(labels)
}

/// `[prefix/]name`: the name 1 to 63 characters, alphanumeric at both ends
/// with `-`, `_` and `.` between; the prefix a lowercase DNS subdomain.
pub fn check_key(key: &str) -> Result<(), Reason> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let dns = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ok = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX
            && prefix.split('.').all(|part| {
                part.starts_with(dns)
                    && part.ends_with(dns)
                    && part.chars().all(|c| dns(c) || c == '-')
            });
        if !ok {
            return Err(Reason::new(format!(
                "the key's prefix {prefix:?} must be a lowercase DNS subdomain \
                 (`example.com`) of at most {MAX_PREFIX} characters"
            )));
        }
    }
    if name.is_empty() {
        return Err(Reason::new("the key's name must not be empty"));
    }
    check_name(name).map_err(|why| Reason::new(format!("the key's name {why}")))
}

/// Empty, or 1 to 63 characters alphanumeric at both ends with `-`, `_`
/// and `.` between.
pub fn check_value(value: &str) -> Result<(), Reason> {
    if value.is_empty() {
        return Ok(());
    }
    check_name(value).map_err(|why| Reason::new(format!("the value {why}")))
}

fn check_name(name: &str) -> Result<(), String> {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if name.chars().count() > MAX_NAME {
        return Err(format!("must be at most {MAX_NAME} characters"));
    }
    if !name.starts_with(alnum)
        || !name.ends_with(alnum)
        || !name
            .chars()
            .all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{name:?} must be letters, digits, `-`, `_` and `.`, \
             beginning and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key` (the label is set).
    Exists(String),
    /// `!key`.
    Absent(String),
    /// `key=value`, `key==value`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=value`, `key notin (a,b)`: also a job without the label.
    NotIn(String, Vec<String>),
}

impl Requirement {
    pub fn key(&self) -> &str {
        match self {
            Self::Exists(k) | Self::Absent(k) | Self::In(k, _) | Self::NotIn(k, _) => k,
        }
    }

    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(self.key());
        match self {
            Self::Exists(_) => value.is_some(),
            Self::Absent(_) => value.is_none(),
            Self::In(_, values) => value.is_some_and(|v| values.contains(v)),
            Self::NotIn(_, values) => value.is_none_or(|v| !values.contains(v)),
        }
    }
}

/// Requirements that all hold; none selects every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.0
    }

    /// Kubernetes' grammar: requirements split by `,`, each `key`, `!key`,
    /// `key=value`, `key==value`, `key!=value`, `key in (v, …)` or
    /// `key notin (v, …)`, with spaces allowed around the parts.
    pub fn parse(text: &str) -> Result<Self, Reason> {
        let mut lexer = Lexer::new(text);
        let mut requirements = Vec::new();
        if lexer.peek() == Token::End {
            return Ok(Self::default());
        }
        loop {
            requirements.push(requirement(&mut lexer)?);
            match lexer.next() {
                Token::End => return Ok(Self(requirements)),
                Token::Comma => {}
                other => {
                    return Err(lexer.error(format!("expected `,` or the end, found {other}")));
                }
            }
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Exists(k) => k.clone(),
                Requirement::Absent(k) => format!("!{k}"),
                Requirement::In(k, v) if v.len() == 1 => format!("{k}={}", v[0]),
                Requirement::NotIn(k, v) if v.len() == 1 => format!("{k}!={}", v[0]),
                Requirement::In(k, v) => format!("{k} in ({})", v.join(",")),
                Requirement::NotIn(k, v) => format!("{k} notin ({})", v.join(",")),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The `selector` query parameter: none or blank selects every job.
pub fn selector_param(text: Option<&str>) -> Result<Selector, FieldError> {
    let text = text.unwrap_or("");
    if text.len() > 4096 {
        return Err(FieldError::new("selector", "must be at most 4096 bytes"));
    }
    Selector::parse(text).map_err(|r| FieldError::new("selector", r.to_string()))
}

fn requirement(lexer: &mut Lexer<'_>) -> Result<Requirement, Reason> {
    let negated = lexer.peek() == Token::Bang;
    if negated {
        lexer.next();
    }
    let key = match lexer.next() {
        Token::Word(word) => word.to_string(),
        other => return Err(lexer.error(format!("expected a label key, found {other}"))),
    };
    check_key(&key).map_err(|r| lexer.error(format!("{key}: {r}")))?;
    if negated {
        return match lexer.peek() {
            Token::Comma | Token::End => Ok(Requirement::Absent(key)),
            other => Err(lexer.error(format!(
                "`!{key}` takes no operator or value, found {other}"
            ))),
        };
    }
    let operator = lexer.next();
    let values = match operator {
        Token::Comma | Token::End => {
            lexer.back(operator);
            return Ok(Requirement::Exists(key));
        }
        Token::Equals | Token::NotEquals => vec![value(lexer, &key)?],
        Token::Word("in") | Token::Word("notin") => value_set(lexer, &key)?,
        Token::Greater | Token::Less => {
            return Err(lexer.error(format!(
                "`{key}`: `>` and `<` are not supported; use `=`, `!=`, `in` or `notin`"
            )));
        }
        other => {
            return Err(lexer.error(format!(
                "after `{key}` expected `=`, `==`, `!=`, `in`, `notin`, `,` or the end, \
                 found {other}"
            )));
        }
    };
    Ok(match operator {
        Token::Equals | Token::Word("in") => Requirement::In(key, values),
        _ => Requirement::NotIn(key, values),
    })
}

fn value(lexer: &mut Lexer<'_>, key: &str) -> Result<String, Reason> {
    let token = lexer.next();
    let value = match token {
        Token::Word(word) => word,
        // `key=` selects the empty value, as in Kubernetes.
        Token::Comma | Token::End | Token::Close => {
            lexer.back(token);
            ""
        }
        other => return Err(lexer.error(format!("`{key}`: expected a value, found {other}"))),
    };
    check_value(value).map_err(|r| lexer.error(format!("`{key}`: {r}")))?;
    Ok(value.to_string())
}

fn value_set(lexer: &mut Lexer<'_>, key: &str) -> Result<Vec<String>, Reason> {
    match lexer.next() {
        Token::Open => {}
        other => return Err(lexer.error(format!("`{key}`: expected `(`, found {other}"))),
    }
    let mut values = vec![value(lexer, key)?];
    loop {
        match lexer.next() {
            Token::Close => return Ok(values),
            Token::Comma => values.push(value(lexer, key)?),
            other => {
                return Err(lexer.error(format!("`{key}`: expected `,` or `)`, found {other}")));
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Bang,
    Equals,
    NotEquals,
    Greater,
    Less,
    Comma,
    Open,
    Close,
    End,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "`{w}`"),
            Token::Bang => f.write_str("`!`"),
            Token::Equals => f.write_str("`=`"),
            Token::NotEquals => f.write_str("`!=`"),
            Token::Greater => f.write_str("`>`"),
            Token::Less => f.write_str("`<`"),
            Token::Comma => f.write_str("`,`"),
            Token::Open => f.write_str("`(`"),
            Token::Close => f.write_str("`)`"),
            Token::End => f.write_str("the end"),
        }
    }
}

struct Lexer<'a> {
    text: &'a str,
    at: usize,
    /// A token read and put back.
    held: Option<(Token<'a>, usize)>,
    /// Where the last token began, for errors.
    last: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            at: 0,
            held: None,
            last: 0,
        }
    }

    fn error(&self, message: String) -> Reason {
        Reason::new(format!("at character {}: {message}", self.last + 1))
    }

    fn back(&mut self, token: Token<'a>) {
        self.held = Some((token, self.last));
    }

    fn peek(&mut self) -> Token<'a> {
        let token = self.next();
        self.back(token);
        token
    }

    fn next(&mut self) -> Token<'a> {
        if let Some((token, at)) = self.held.take() {
            self.last = at;
            return token;
        }
        let rest = &self.text[self.at..];
        let trimmed = rest.trim_start();
        self.at += rest.len() - trimmed.len();
        self.last = self.at;
        let mut chars = trimmed.chars();
        let (token, len) = match chars.next() {
            None => (Token::End, 0),
            Some(',') => (Token::Comma, 1),
            Some('(') => (Token::Open, 1),
            Some(')') => (Token::Close, 1),
            Some('>') => (Token::Greater, 1),
            Some('<') => (Token::Less, 1),
            Some('!') if chars.next() == Some('=') => (Token::NotEquals, 2),
            Some('!') => (Token::Bang, 1),
            Some('=') if chars.next() == Some('=') => (Token::Equals, 2),
            Some('=') => (Token::Equals, 1),
            Some(_) => {
                let len = trimmed
                    .find(|c: char| c.is_whitespace() || ",()!=<>".contains(c))
                    .unwrap_or(trimmed.len());
                (Token::Word(&trimmed[..len]), len)
            }
        };
        self.at += len;
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(text: &str) -> Selector {
        Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn refusal(text: &str) -> String {
        Selector::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn the_designs_example_reads_as_kubernetes_does() {
        let s = sel("team=data,env!=dev,tier in (gold,silver)");
        assert_eq!(
            s.0,
            vec![
                Requirement::In("team".into(), vec!["data".into()]),
                Requirement::NotIn("env".into(), vec!["dev".into()]),
                Requirement::In("tier".into(), vec!["gold".into(), "silver".into()]),
            ]
        );
        assert!(s.matches(&labels(&[("team", "data"), ("tier", "gold")])));
        assert!(s.matches(&labels(&[
            ("team", "data"),
            ("env", "prod"),
            ("tier", "silver")
        ])));
        assert!(!s.matches(&labels(&[
            ("team", "data"),
            ("env", "dev"),
            ("tier", "gold")
        ])));
        assert!(!s.matches(&labels(&[("team", "data"), ("tier", "bronze")])));
        assert!(!s.matches(&labels(&[("tier", "gold")])));
    }

    #[test]
    fn every_operator_and_spacing() {
        let job = labels(&[("app", "web"), ("example.com/tier", "gold")]);
        for (text, expected) in [
            ("", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("missing", false),
            ("app==web", true),
            ("app = web", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app notin (api, worker)", true),
            ("app notin (web)", false),
            ("missing notin (web)", true),
            ("example.com/tier in ( gold , silver )", true),
            ("  app  ,  example.com/tier  ", true),
            ("app in (api)", false),
            ("app=", false),
            ("missing=", false),
        ] {
            assert_eq!(sel(text).matches(&job), expected, "{text}");
        }
        assert!(sel("app=").matches(&labels(&[("app", "")])));
    }

    #[test]
    fn a_selector_prints_as_it_parses() {
        for text in [
            "team=data,env!=dev,tier in (gold,silver)",
            "a,!b,c notin (x,y)",
            "",
        ] {
            assert_eq!(sel(&sel(text).to_string()), sel(text));
        }
    }

    #[test]
    fn a_bad_selector_says_where_and_why() {
        assert_eq!(
            refusal("team=data,"),
            "at character 11: expected a label key, found the end"
        );
        assert!(
            refusal("team in gold").contains("expected `(`"),
            "{}",
            refusal("team in gold")
        );
        assert!(refusal("tier in (gold").contains("expected `,` or `)`"));
        assert!(refusal("team=data extra").contains("expected `,` or the end, found `extra`"));
        assert!(refusal("count>3").contains("`>` and `<` are not supported"));
        assert!(refusal("!team=data").contains("takes no operator"));
        assert!(refusal("-bad=x").contains("the key's name"));
        assert!(refusal("Example.com/x=y").contains("prefix"));
        assert!(refusal("team=-x").contains("the value"));
        assert!(refusal("team ~ x").contains("after `team` expected"));
    }

    #[test]
    fn labels_follow_kubernetes_syntax() {
        let ok = json!({"team": "data", "cronhook.io/owner": "ops", "empty": "",
                        "a.b_c-d": "x.Y_z-1"});
        assert_eq!(parse(ok.as_object().unwrap(), "labels").unwrap().len(), 4);
        for (bad, field, why) in [
            (json!({"team": 1}), "labels.team", "must be a string"),
            (json!({"": "x"}), "labels.", "must not be empty"),
            (
                json!({"-team": "x"}),
                "labels.-team",
                "beginning and ending",
            ),
            (json!({"a/b/c": "x"}), "labels.a/b/c", "the key's name"),
            (json!({"UPPER.io/x": "x"}), "labels.UPPER.io/x", "prefix"),
            (json!({"team": "x".repeat(64)}), "labels.team", "at most 63"),
            (json!({"team": "a b"}), "labels.team", "letters, digits"),
        ] {
            let e = parse(bad.as_object().unwrap(), "labels").unwrap_err();
            assert_eq!(e.field, field, "{bad}");
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
        let many: Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
        let e = parse(&many, "labels").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("labels", "has 33 labels; a job carries at most 32")
        );
    }
}

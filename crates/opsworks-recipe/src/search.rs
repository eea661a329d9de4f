//! `search(index, query)` over data bags: a small Lucene subset — `key:value`, `*`/`?` wildcards,
//! quoted values, `AND`/`OR`/`NOT` (also `&&`, `||`, `!`, `-`), parentheses, and `*:*`.
//! Adjacent terms without an operator are OR-ed, as in Lucene. Nested keys are addressed with
//! dots (`owner.name:bob`) or Chef's flattened underscores (`owner_name:bob`).

use serde_json::Value;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// Matches every item.
    All,
    /// `key:pattern`.
    Term { key: String, pattern: String },
    /// Both sides match.
    And(Box<Query>, Box<Query>),
    /// Either side matches.
    Or(Box<Query>, Box<Query>),
    /// The inner query does not match.
    Not(Box<Query>),
}

/// Why a query could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid search query `{query}`: {message}")]
pub struct QueryError {
    /// The query as given.
    pub query: String,
    /// What was wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == '!' || (c == '-' && out.last().is_none_or(|t| !matches!(t, Tok::Word(_)))) {
            out.push(Tok::Not);
            i += 1;
        } else if chars[i..].starts_with(&['&', '&']) {
            out.push(Tok::And);
            i += 2;
        } else if chars[i..].starts_with(&['|', '|']) {
            out.push(Tok::Or);
            i += 2;
        } else {
            let mut word = String::new();
            let mut quoted = false;
            while i < chars.len() {
                let c = chars[i];
                if c == '"' {
                    quoted = !quoted;
                    i += 1;
                    continue;
                }
                if c == '\\' && i + 1 < chars.len() {
                    word.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                if !quoted && (c.is_whitespace() || c == '(' || c == ')') {
                    break;
                }
                word.push(c);
                i += 1;
            }
            if quoted {
                return Err("unterminated quote".into());
            }
            out.push(match word.as_str() {
                "AND" => Tok::And,
                "OR" => Tok::Or,
                "NOT" => Tok::Not,
                _ => Tok::Word(word),
            });
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn or(&mut self) -> Result<Query, String> {
        let mut left = self.and()?;
        loop {
            match self.peek() {
                Some(Tok::Or) => {
                    self.pos += 1;
                    left = Query::Or(Box::new(left), Box::new(self.and()?));
                }
                Some(Tok::Word(_) | Tok::Not | Tok::Open) => {
                    left = Query::Or(Box::new(left), Box::new(self.and()?));
                }
                _ => return Ok(left),
            }
        }
    }
    fn and(&mut self) -> Result<Query, String> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            left = Query::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Query, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Not) => {
                self.pos += 1;
                Ok(Query::Not(Box::new(self.unary()?)))
            }
            Some(Tok::Open) => {
                self.pos += 1;
                let q = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                Ok(q)
            }
            Some(Tok::Word(w)) => {
                self.pos += 1;
                let Some((k, v)) = w.split_once(':') else {
                    return Err(format!("term `{w}` is not `key:value`"));
                };
                if k.is_empty() || v.is_empty() {
                    return Err(format!("term `{w}` needs both a key and a value"));
                }
                if k == "*" && v == "*" {
                    return Ok(Query::All);
                }
                Ok(Query::Term {
                    key: k.to_string(),
                    pattern: v.to_string(),
                })
            }
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("unexpected end of query".into()),
        }
    }
}

impl Query {
    /// Parses a query string.
    pub fn parse(q: &str) -> Result<Query, QueryError> {
        let err = |message: String| QueryError {
            query: q.to_string(),
            message,
        };
        let toks = tokenize(q).map_err(err)?;
        if toks.is_empty() {
            return Ok(Query::All);
        }
        let mut p = Parser { toks, pos: 0 };
        let query = p.or().map_err(err)?;
        if p.pos != p.toks.len() {
            return Err(err(format!("unexpected {:?}", p.toks[p.pos])));
        }
        Ok(query)
    }

    /// Whether a data bag item matches.
    pub fn matches(&self, item: &Value) -> bool {
        match self {
            Query::All => true,
            Query::And(a, b) => a.matches(item) && b.matches(item),
            Query::Or(a, b) => a.matches(item) || b.matches(item),
            Query::Not(a) => !a.matches(item),
            Query::Term { key, pattern } => {
                let mut values = Vec::new();
                lookup(item, key, &mut values);
                values.iter().any(|v| value_matches(v, pattern))
            }
        }
    }
}

/// Collects the values at `key` (dotted path, or Chef-style `a_b` flattening; `*` = any top-level key).
fn lookup<'a>(item: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    if key == "*" {
        if let Value::Object(m) = item {
            out.extend(m.values());
        }
        return;
    }
    let Value::Object(m) = item else { return };
    if let Some(v) = m.get(key) {
        out.push(v);
    }
    for (k, v) in m {
        for sep in ['.', '_'] {
            if let Some(rest) = key
                .strip_prefix(k.as_str())
                .and_then(|r| r.strip_prefix(sep))
            {
                lookup(v, rest, out);
            }
        }
    }
}

fn value_matches(v: &Value, pattern: &str) -> bool {
    match v {
        Value::Array(a) => a.iter().any(|e| value_matches(e, pattern)),
        Value::String(s) => glob(pattern, s),
        Value::Null => glob(pattern, "null"),
        Value::Object(_) => pattern == "*",
        other => glob(pattern, &other.to_string()),
    }
}

/// `*` matches any run of characters, `?` exactly one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Value> {
        vec![
            json!({"id": "alice", "team": "ops", "shell": "/bin/bash", "groups": ["sudo", "dev"], "owner": {"name": "x"}}),
            json!({"id": "bob", "team": "dev", "shell": "/bin/false", "groups": ["dev"], "uid": 1001}),
            json!({"id": "carol", "team": "ops", "shell": "/bin/zsh", "groups": []}),
        ]
    }

    fn ids(q: &str) -> Vec<String> {
        let q = Query::parse(q).unwrap();
        items()
            .iter()
            .filter(|i| q.matches(i))
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn key_value_and_wildcards() {
        assert_eq!(ids("team:ops"), ["alice", "carol"]);
        assert_eq!(ids("id:a*"), ["alice"]);
        assert_eq!(ids("id:?ob"), ["bob"]);
        assert_eq!(ids("*:*"), ["alice", "bob", "carol"]);
        assert_eq!(ids("groups:sudo"), ["alice"]);
        assert_eq!(ids("uid:1001"), ["bob"]);
        assert_eq!(ids("owner.name:x"), ["alice"]);
        assert_eq!(ids("owner_name:x"), ["alice"]);
        assert_eq!(ids("shell:\"/bin/bash\""), ["alice"]);
    }

    #[test]
    fn boolean_operators_and_precedence() {
        assert_eq!(ids("team:ops AND NOT shell:/bin/zsh"), ["alice"]);
        assert_eq!(ids("team:dev OR id:carol"), ["bob", "carol"]);
        assert_eq!(ids("id:alice OR id:bob AND team:ops"), ["alice"]);
        assert_eq!(ids("(id:alice OR id:bob) AND groups:dev"), ["alice", "bob"]);
        assert_eq!(ids("-team:ops"), ["bob"]);
        assert_eq!(ids("id:alice id:bob"), ["alice", "bob"]);
    }

    #[test]
    fn bad_queries_are_errors() {
        assert!(Query::parse("team").is_err());
        assert!(Query::parse("(team:ops").is_err());
        assert!(Query::parse("team:ops AND").is_err());
        assert!(Query::parse("id:\"x").is_err());
    }
}

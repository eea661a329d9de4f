//! Strings of a policy that may hold policy variables (`${aws:username}`), in `Resource` and in
//! condition values: compiled once when fixed, resolved against the request when not.
//!
//! Only documents of `Version` `2012-10-17` have variables; in `2008-10-17` `${...}` is plain text.
//! `${*}`, `${?}` and `${$}` stand for the literal characters; `${key, 'default'}` gives a value
//! for an absent key. A variable whose key is absent (and has no default) or has several values
//! makes that one policy value match nothing.

use std::borrow::Cow;

use crate::context::{Key, RequestContext};
use crate::wildcard::{Builder, Wildcard};

/// One part of a string with variables.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Policy text: `*` and `?` are wildcards where the operator has them.
    Text(String),
    /// A character written `${*}`, `${?}` or `${$}`.
    Escaped(char),
    /// `${key}` or `${key, 'default'}`.
    Var { key: Key, default: Option<String> },
}

/// A policy string, fixed or with variables.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Splits `s` into text and variables; `None` when it has no variable (then use `s` as is).
    pub(crate) fn parse(s: &str) -> Option<Template> {
        if !s.contains("${") {
            return None;
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        let mut any_var = false;
        while let Some(i) = rest.find("${") {
            let Some(close) = rest[i..].find('}') else {
                break;
            };
            let inner = rest[i + 2..i + close].trim();
            let part = match inner {
                "*" => Some(Part::Escaped('*')),
                "?" => Some(Part::Escaped('?')),
                "$" => Some(Part::Escaped('$')),
                _ => parse_var(inner),
            };
            match part {
                Some(part) => {
                    text.push_str(&rest[..i]);
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                    any_var = true;
                }
                // Not a variable: keep the characters as they are.
                None => text.push_str(&rest[..i + close + 1]),
            }
            rest = &rest[i + close + 1..];
        }
        if !any_var {
            return None;
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Some(Template { parts })
    }

    /// The string with variables replaced, every character literal.
    pub(crate) fn resolve_literal(&self, ctx: &RequestContext) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Escaped(c) => out.push(*c),
                Part::Var { key, default } => out.push_str(&var_value(ctx, key, default)?),
            }
        }
        Some(out)
    }

    /// A wildcard pattern with variables replaced by their (literal) values.
    pub(crate) fn resolve_wildcard(&self, ctx: &RequestContext) -> Option<Wildcard> {
        let mut builder = Builder::default();
        for part in &self.parts {
            match part {
                Part::Text(t) => builder.pattern(t),
                Part::Escaped(c) => builder.literal(c.encode_utf8(&mut [0; 4])),
                Part::Var { key, default } => builder.literal(&var_value(ctx, key, default)?),
            }
        }
        Some(builder.build())
    }
}

fn parse_var(inner: &str) -> Option<Part> {
    let (name, default) = match inner.split_once(',') {
        Some((name, default)) => {
            let default = default.trim();
            let quoted = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))?;
            (name.trim(), Some(quoted.to_owned()))
        }
        None => (inner, None),
    };
    // A key is `vendor:name` (names may hold `/`, as in `aws:PrincipalTag/team`).
    let (vendor, rest) = name.split_once(':')?;
    if vendor.is_empty() || rest.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some(Part::Var {
        key: Key::parse(name),
        default,
    })
}

fn var_value<'a>(
    ctx: &'a RequestContext,
    key: &Key,
    default: &Option<String>,
) -> Option<Cow<'a, str>> {
    match ctx.single_string(key) {
        Some(v) => Some(v),
        None => default.as_deref().map(|d| Cow::Owned(d.to_owned())),
    }
}

/// A wildcard string (`Resource`, `StringLike`, ARN parts): compiled, or resolved per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pattern {
    Fixed(Wildcard),
    Template(Template),
}

impl Pattern {
    /// Compiles `s`; `variables` is whether the document's version has policy variables.
    pub(crate) fn new(s: &str, variables: bool) -> Pattern {
        match variables.then(|| Template::parse(s)).flatten() {
            Some(t) => Pattern::Template(t),
            None => Pattern::Fixed(Wildcard::new(s)),
        }
    }

    /// Whether `text` matches, variables taken from `ctx`.
    pub(crate) fn matches(&self, text: &str, ctx: &RequestContext) -> bool {
        match self {
            Pattern::Fixed(w) => w.matches(text),
            Pattern::Template(t) => t.resolve_wildcard(ctx).is_some_and(|w| w.matches(text)),
        }
    }
}

/// A literal string (`StringEquals` and the like): fixed, or resolved per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Fixed(String),
    Template(Template),
}

impl Literal {
    /// Reads `s`; `variables` as for [`Pattern::new`].
    pub(crate) fn new(s: &str, variables: bool) -> Literal {
        match variables.then(|| Template::parse(s)).flatten() {
            Some(t) => Literal::Template(t),
            None => Literal::Fixed(s.to_owned()),
        }
    }

    /// The value for this request: `None` when a variable has no value.
    pub(crate) fn resolve<'s>(&'s self, ctx: &RequestContext) -> Option<Cow<'s, str>> {
        match self {
            Literal::Fixed(s) => Some(Cow::Borrowed(s)),
            Literal::Template(t) => t.resolve_literal(ctx).map(Cow::Owned),
        }
    }

    /// Lowercases fixed text now and resolved text later, for the `IgnoreCase` operators.
    pub(crate) fn lowercased(self) -> Literal {
        match self {
            Literal::Fixed(s) => Literal::Fixed(s.to_lowercase()),
            t => t,
        }
    }
}

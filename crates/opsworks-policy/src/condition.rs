//! The `Condition` element: operators, their values compiled once, and their evaluation with
//! IAM's rules for absent keys, `...IfExists` and the `ForAllValues:`/`ForAnyValue:` qualifiers.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::context::{Key, RequestContext, Value, Values, parse_bool};
use crate::dates::{self, Instant};
use crate::pattern::{Literal, Pattern};

/// How a comparison operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// The family of an operator, before its values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    String,
    StringIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

/// What an operator name means: its family and whether it is the negated form.
fn operator(name: &str) -> Option<(Family, bool)> {
    use Family::*;
    Some(match name {
        "StringEquals" => (String, false),
        "StringNotEquals" => (String, true),
        "StringEqualsIgnoreCase" => (StringIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (StringIgnoreCase, true),
        "StringLike" => (StringLike, false),
        "StringNotLike" => (StringLike, true),
        "NumericEquals" => (Numeric(Cmp::Eq), false),
        "NumericNotEquals" => (Numeric(Cmp::Eq), true),
        "NumericLessThan" => (Numeric(Cmp::Lt), false),
        "NumericLessThanEquals" => (Numeric(Cmp::Le), false),
        "NumericGreaterThan" => (Numeric(Cmp::Gt), false),
        "NumericGreaterThanEquals" => (Numeric(Cmp::Ge), false),
        "DateEquals" => (Date(Cmp::Eq), false),
        "DateNotEquals" => (Date(Cmp::Eq), true),
        "DateLessThan" => (Date(Cmp::Lt), false),
        "DateLessThanEquals" => (Date(Cmp::Le), false),
        "DateGreaterThan" => (Date(Cmp::Gt), false),
        "DateGreaterThanEquals" => (Date(Cmp::Ge), false),
        "Bool" => (Bool, false),
        "BinaryEquals" => (Binary, false),
        "IpAddress" => (Ip, false),
        "NotIpAddress" => (Ip, true),
        "ArnEquals" | "ArnLike" => (Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Arn, true),
        "Null" => (Null, false),
        _ => return None,
    })
}

/// `ForAllValues:` or `ForAnyValue:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    ForAll,
    ForAny,
}

/// A parsed operator name: `[ForAllValues:|ForAnyValue:]Operator[IfExists]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OperatorName {
    family: Family,
    negated: bool,
    if_exists: bool,
    set: Option<SetQualifier>,
}

impl OperatorName {
    /// Reads an operator name; `None` when IAM has no such operator. `Null` takes neither
    /// `IfExists` nor a set qualifier.
    pub(crate) fn parse(name: &str) -> Option<OperatorName> {
        let (set, rest) = if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAll), rest)
        } else if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAny), rest)
        } else {
            (None, name)
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        let (family, negated) = operator(base)?;
        if family == Family::Null && (if_exists || set.is_some()) {
            return None;
        }
        Some(OperatorName {
            family,
            negated,
            if_exists,
            set,
        })
    }

    /// Whether policy variables may appear in this operator's values.
    fn takes_variables(&self) -> bool {
        matches!(
            self.family,
            Family::String | Family::StringIgnoreCase | Family::StringLike | Family::Arn
        )
    }
}

/// Why a condition value was refused: what it should have been.
pub(crate) struct BadValue(pub(crate) &'static str);

/// An ARN pattern: six colon-separated parts compared one by one.
#[derive(Debug, Clone, PartialEq)]
enum ArnPattern {
    Parts(Vec<Pattern>),
    /// A value without six parts, matched as a whole.
    Whole(Pattern),
}

/// The compiled values of one key under one operator.
#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Equals(Vec<Literal>),
    EqualsIgnoreCase(Vec<Literal>),
    Like(Vec<Pattern>),
    Numeric(Cmp, Vec<f64>),
    Date(Cmp, Vec<Instant>),
    Bool(Vec<bool>),
    Ip(Vec<IpNet>),
    Arn(Vec<ArnPattern>),
    /// The wanted answers to "is the key absent?".
    Null(Vec<bool>),
}

/// One key tested by one operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    key: Key,
    op: OperatorName,
    matcher: Matcher,
}

impl Condition {
    /// Compiles the values of `key` under `op`; `variables` is whether the document has policy
    /// variables. Fails on the first value that is not what the operator compares.
    pub(crate) fn new(
        op: OperatorName,
        key: &str,
        values: &[String],
        variables: bool,
    ) -> Result<Condition, (usize, BadValue)> {
        let vars = variables && op.takes_variables();
        fn all<T>(
            values: &[String],
            what: &'static str,
            f: impl Fn(&str) -> Option<T>,
        ) -> Result<Vec<T>, (usize, BadValue)> {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| f(v).ok_or((i, BadValue(what))))
                .collect()
        }
        let matcher = match op.family {
            Family::String | Family::Binary => {
                Matcher::Equals(values.iter().map(|v| Literal::new(v, vars)).collect())
            }
            Family::StringIgnoreCase => Matcher::EqualsIgnoreCase(
                values
                    .iter()
                    .map(|v| Literal::new(v, vars).lowercased())
                    .collect(),
            ),
            Family::StringLike => {
                Matcher::Like(values.iter().map(|v| Pattern::new(v, vars)).collect())
            }
            Family::Numeric(cmp) => Matcher::Numeric(
                cmp,
                all(values, "a number (integer or decimal)", parse_number)?,
            ),
            Family::Date(cmp) => Matcher::Date(
                cmp,
                all(
                    values,
                    "a date (W3C ISO 8601 or epoch seconds)",
                    dates::parse,
                )?,
            ),
            Family::Bool => Matcher::Bool(all(values, "true or false", parse_bool)?),
            Family::Ip => Matcher::Ip(all(
                values,
                "an IP address or CIDR block (IPv4 or IPv6)",
                parse_net,
            )?),
            Family::Arn => Matcher::Arn(values.iter().map(|v| arn_pattern(v, vars)).collect()),
            Family::Null => Matcher::Null(all(values, "true or false", parse_bool)?),
        };
        Ok(Condition {
            key: Key::parse(key),
            op,
            matcher,
        })
    }

    /// Whether the condition holds for `ctx`.
    pub(crate) fn holds(&self, ctx: &RequestContext) -> bool {
        let values = ctx.values(&self.key);
        if let Matcher::Null(wanted) = &self.matcher {
            let absent = match values {
                Values::Missing => true,
                Values::Many(list) => list.is_empty(),
                Values::One(_) => false,
            };
            return wanted.contains(&absent);
        }
        // One request value against the operator: for the negated operators, "matches none".
        let per_value = |v: Value| self.matches_any(v, ctx) != self.op.negated;
        match (self.op.set, values) {
            (None, Values::Missing) => self.op.if_exists || self.op.negated,
            (None, Values::One(v)) => per_value(v),
            (None, Values::Many([])) => self.op.if_exists || self.op.negated,
            (None, Values::Many(list)) => {
                let any = list.iter().any(|s| self.matches_any(Value::Str(s), ctx));
                any != self.op.negated
            }
            // "True when every request value matches, and also when the key is absent or empty."
            (Some(SetQualifier::ForAll), Values::Missing) => true,
            (Some(SetQualifier::ForAll), Values::One(v)) => per_value(v),
            (Some(SetQualifier::ForAll), Values::Many(list)) => {
                list.iter().all(|s| per_value(Value::Str(s)))
            }
            // "False for an absent key or an empty set", unless IfExists.
            (Some(SetQualifier::ForAny), Values::Missing | Values::Many([])) => self.op.if_exists,
            (Some(SetQualifier::ForAny), Values::One(v)) => per_value(v),
            (Some(SetQualifier::ForAny), Values::Many(list)) => {
                list.iter().any(|s| per_value(Value::Str(s)))
            }
        }
    }

    /// Whether one request value matches any of the policy values (the positive operator).
    fn matches_any(&self, v: Value, ctx: &RequestContext) -> bool {
        match &self.matcher {
            Matcher::Equals(lits) => {
                let text = v.as_str();
                lits.iter()
                    .any(|l| l.resolve(ctx).is_some_and(|p| *p == *text))
            }
            Matcher::EqualsIgnoreCase(lits) => {
                let text = v.as_str();
                let lower;
                let text: &str = if text.is_ascii() {
                    &text
                } else {
                    lower = text.to_lowercase();
                    &lower
                };
                lits.iter().any(|l| match l {
                    Literal::Fixed(p) => text.eq_ignore_ascii_case(p),
                    t => t
                        .resolve(ctx)
                        .is_some_and(|p| p.to_lowercase() == text.to_lowercase()),
                })
            }
            Matcher::Like(patterns) => {
                let text = v.as_str();
                patterns.iter().any(|p| p.matches(&text, ctx))
            }
            Matcher::Numeric(cmp, numbers) => match request_number(v) {
                Some(n) => numbers.iter().any(|p| cmp.holds(n, *p)),
                None => false,
            },
            Matcher::Date(cmp, dates) => match request_date(v) {
                Some(t) => dates.iter().any(|p| cmp.holds(t, *p)),
                None => false,
            },
            Matcher::Bool(bools) => match v {
                Value::Bool(b) => bools.contains(&b),
                Value::Str(s) => parse_bool(s).is_some_and(|b| bools.contains(&b)),
                _ => false,
            },
            Matcher::Ip(nets) => {
                let ip = match v {
                    Value::Ip(ip) => Some(ip),
                    Value::Str(s) => s.parse::<IpAddr>().ok(),
                    _ => None,
                };
                ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
            }
            Matcher::Arn(arns) => {
                let text = v.as_str();
                arns.iter().any(|a| arn_matches(a, &text, ctx))
            }
            Matcher::Null(_) => false,
        }
    }
}

fn arn_pattern(v: &str, vars: bool) -> ArnPattern {
    let parts: Vec<&str> = v.splitn(6, ':').collect();
    if parts.len() == 6 {
        ArnPattern::Parts(parts.iter().map(|p| Pattern::new(p, vars)).collect())
    } else {
        ArnPattern::Whole(Pattern::new(v, vars))
    }
}

fn arn_matches(pattern: &ArnPattern, text: &str, ctx: &RequestContext) -> bool {
    match pattern {
        ArnPattern::Whole(p) => p.matches(text, ctx),
        ArnPattern::Parts(parts) => {
            let mut got = text.splitn(6, ':');
            let mut n = 0;
            for (p, t) in parts.iter().zip(got.by_ref()) {
                if !p.matches(t, ctx) {
                    return false;
                }
                n += 1;
            }
            n == 6
        }
    }
}

fn request_number(v: Value) -> Option<f64> {
    match v {
        Value::Epoch(n) => Some(n as f64),
        Value::Str(s) => parse_number(s),
        _ => None,
    }
}

fn request_date(v: Value) -> Option<Instant> {
    match v {
        Value::Time(t) => Some(t.as_nanosecond()),
        Value::Epoch(n) => Some(i128::from(n) * dates::NANOS),
        Value::Str(s) => dates::parse(s),
        _ => None,
    }
}

/// A number as IAM's numeric operators read it: an integer or a decimal.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
    if !plain {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A CIDR block, or a bare address meaning `/32` (`/128`).
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

//! The request as policies see it: the action, the resource and the condition keys.

use std::borrow::Cow;
use std::net::IpAddr;

use jiff::Timestamp;

/// A condition key, its name matched case-insensitively as IAM does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    CurrentTime,
    EpochTime,
    SourceIp,
    SecureTransport,
    Username,
    Userid,
    PrincipalArn,
    PrincipalAccount,
    PrincipalType,
    RequestedRegion,
    /// Any other key, lowercased.
    Other(String),
}

impl Key {
    /// The key named `name`, whatever its case.
    pub(crate) fn parse(name: &str) -> Key {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "aws:currenttime" => Key::CurrentTime,
            "aws:epochtime" => Key::EpochTime,
            "aws:sourceip" => Key::SourceIp,
            "aws:securetransport" => Key::SecureTransport,
            "aws:username" => Key::Username,
            "aws:userid" => Key::Userid,
            "aws:principalarn" => Key::PrincipalArn,
            "aws:principalaccount" => Key::PrincipalAccount,
            "aws:principaltype" => Key::PrincipalType,
            "aws:requestedregion" => Key::RequestedRegion,
            _ => Key::Other(lower),
        }
    }

    /// The lowercased name, under which values that did not parse are kept.
    fn lower_name(&self) -> &str {
        match self {
            Key::CurrentTime => "aws:currenttime",
            Key::EpochTime => "aws:epochtime",
            Key::SourceIp => "aws:sourceip",
            Key::SecureTransport => "aws:securetransport",
            Key::Username => "aws:username",
            Key::Userid => "aws:userid",
            Key::PrincipalArn => "aws:principalarn",
            Key::PrincipalAccount => "aws:principalaccount",
            Key::PrincipalType => "aws:principaltype",
            Key::RequestedRegion => "aws:requestedregion",
            Key::Other(name) => name,
        }
    }
}

/// One value of a key in the request, typed where the key has a type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Str(&'a str),
    Time(Timestamp),
    Epoch(i64),
    Ip(IpAddr),
    Bool(bool),
}

impl Value<'_> {
    /// The value as text, as a string operator compares it.
    pub(crate) fn as_str(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s),
            Value::Time(t) => Cow::Owned(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            Value::Epoch(n) => Cow::Owned(n.to_string()),
            Value::Ip(ip) => Cow::Owned(ip.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }
}

/// The values of a key in the request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values<'a> {
    Missing,
    One(Value<'a>),
    /// A multivalued key (possibly empty).
    Many(&'a [String]),
}

/// Everything policies are evaluated against: the action, the resource and the condition keys.
///
/// Build one per request: `RequestContext::new("opsworks:DeleteStack", &stack_arn)` then the
/// `with_*` setters for the keys the request has. `aws:CurrentTime` and `aws:EpochTime` are the
/// time of [`RequestContext::new`] unless [`RequestContext::with_current_time`] says otherwise.
#[derive(Debug, Clone)]
pub struct RequestContext {
    action: String,
    action_lower: String,
    resource: String,
    current_time: Timestamp,
    source_ip: Option<IpAddr>,
    secure_transport: Option<bool>,
    username: Option<String>,
    userid: Option<String>,
    principal_arn: Option<String>,
    principal_account: Option<String>,
    principal_type: Option<String>,
    requested_region: Option<String>,
    /// Other keys, lowercased, with their values (a global key whose value did not parse too).
    other: Vec<(String, Vec<String>)>,
}

impl RequestContext {
    /// A request for `action` (`service:Name`, e.g. `opsworks:DeleteStack`) on `resource` (an ARN,
    /// or `*` for actions without a resource type).
    pub fn new(action: &str, resource: &str) -> RequestContext {
        RequestContext {
            action: action.to_owned(),
            action_lower: action.to_lowercase(),
            resource: resource.to_owned(),
            current_time: Timestamp::now(),
            source_ip: None,
            secure_transport: None,
            username: None,
            userid: None,
            principal_arn: None,
            principal_account: None,
            principal_type: None,
            requested_region: None,
            other: Vec::new(),
        }
    }

    /// The action as given.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The action lowercased, as action patterns are matched.
    pub(crate) fn action_lower(&self) -> &str {
        &self.action_lower
    }

    /// The resource ARN, or `*`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Sets `aws:CurrentTime` and `aws:EpochTime`.
    pub fn with_current_time(mut self, now: Timestamp) -> Self {
        self.current_time = now;
        self
    }

    /// Sets `aws:SourceIp`.
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// Sets `aws:SecureTransport` (whether the request came over TLS).
    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = Some(secure);
        self
    }

    /// Sets the keys of an IAM user: `aws:username`, `aws:userid`, `aws:PrincipalArn`,
    /// `aws:PrincipalAccount` and `aws:PrincipalType` (`User`).
    pub fn with_iam_user(mut self, arn: &str, name: &str, user_id: &str, account: &str) -> Self {
        self.principal_arn = Some(arn.to_owned());
        self.username = Some(name.to_owned());
        self.userid = Some(user_id.to_owned());
        self.principal_account = Some(account.to_owned());
        self.principal_type = Some("User".to_owned());
        self
    }

    /// Sets `aws:RequestedRegion`.
    pub fn with_requested_region(mut self, region: &str) -> Self {
        self.requested_region = Some(region.to_owned());
        self
    }

    /// Sets any key (its name in any case) to one or more values. The global keys with a type
    /// take the parsed value (`aws:SourceIp` an address, `aws:SecureTransport` `true`/`false`,
    /// `aws:CurrentTime` a date, `aws:EpochTime` seconds); a value that does not parse is kept
    /// as text, which the typed operators then do not match. An empty list is a key that is
    /// present with no values (multivalued keys).
    pub fn with_key<I, S>(mut self, name: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        let key = Key::parse(name);
        if let [one] = values.as_slice() {
            let typed = match &key {
                Key::CurrentTime => crate::dates::parse(one)
                    .and_then(|n| Timestamp::from_nanosecond(n).ok())
                    .map(|t| self.current_time = t),
                Key::EpochTime => one
                    .parse::<i64>()
                    .ok()
                    .and_then(|s| Timestamp::from_second(s).ok())
                    .map(|t| self.current_time = t),
                Key::SourceIp => one.parse().ok().map(|ip| self.source_ip = Some(ip)),
                Key::SecureTransport => parse_bool(one).map(|b| self.secure_transport = Some(b)),
                Key::Other(_) => None,
                text => self.text_slot(text).map(|slot| *slot = Some(one.clone())),
            };
            if typed.is_some() {
                return self;
            }
        }
        let lower = key.lower_name().to_owned();
        self.other.retain(|(k, _)| *k != lower);
        self.other.push((lower, values));
        self
    }

    /// Where a global key holding text is kept.
    fn text_slot(&mut self, key: &Key) -> Option<&mut Option<String>> {
        Some(match key {
            Key::Username => &mut self.username,
            Key::Userid => &mut self.userid,
            Key::PrincipalArn => &mut self.principal_arn,
            Key::PrincipalAccount => &mut self.principal_account,
            Key::PrincipalType => &mut self.principal_type,
            Key::RequestedRegion => &mut self.requested_region,
            _ => return None,
        })
    }

    /// The values of `key` in this request.
    pub(crate) fn values(&self, key: &Key) -> Values<'_> {
        let typed = match key {
            Key::CurrentTime => Some(Value::Time(self.current_time)),
            Key::EpochTime => Some(Value::Epoch(self.current_time.as_second())),
            Key::SourceIp => self.source_ip.map(Value::Ip),
            Key::SecureTransport => self.secure_transport.map(Value::Bool),
            Key::Username => self.username.as_deref().map(Value::Str),
            Key::Userid => self.userid.as_deref().map(Value::Str),
            Key::PrincipalArn => self.principal_arn.as_deref().map(Value::Str),
            Key::PrincipalAccount => self.principal_account.as_deref().map(Value::Str),
            Key::PrincipalType => self.principal_type.as_deref().map(Value::Str),
            Key::RequestedRegion => self.requested_region.as_deref().map(Value::Str),
            Key::Other(_) => None,
        };
        if let Some(v) = typed {
            return Values::One(v);
        }
        let name = key.lower_name();
        match self.other.iter().find(|(k, _)| k == name) {
            Some((_, values)) => match values.as_slice() {
                [one] => Values::One(Value::Str(one)),
                many => Values::Many(many),
            },
            None => Values::Missing,
        }
    }

    /// The value of a single-valued key as text, for policy variables.
    pub(crate) fn single_string(&self, key: &Key) -> Option<Cow<'_, str>> {
        match self.values(key) {
            Values::One(v) => Some(match v {
                Value::Str(s) => Cow::Borrowed(s),
                other => Cow::Owned(other.as_str().into_owned()),
            }),
            _ => None,
        }
    }
}

/// `true` or `false`, in any case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

//! Tag rules of stacks and layers: key and value limits, reserved keys, the per-resource limit,
//! and a layer's effective tags (its stack's, overridden by its own).
//!
//! The limits are the original's (`shared/reference/opsworks.md` §1.16, the `TagResource`
//! documentation): keys of 1 to 127 and values of at most 255 Unicode letters, digits, white
//! space and `+ - = . _ : /`, trimmed of surrounding white space; at most 40 user tags on a
//! resource and 50 in all; the prefixes `aws:`, `opsworks:`, `rds:` and the key `Name` are reserved.

use std::collections::BTreeMap;

/// Tags of one resource, by key.
pub type Tags = BTreeMap<String, String>;

/// The most user tags one resource may carry.
pub const MAX_USER_TAGS: usize = 40;
/// The most tags a resource may carry in all (a layer's own and those it inherits).
pub const MAX_TOTAL_TAGS: usize = 50;
/// The longest key.
pub const MAX_KEY_CHARS: usize = 127;
/// The longest value.
pub const MAX_VALUE_CHARS: usize = 255;
/// Key prefixes reserved for AWS and OpsWorks (compared without regard to case).
pub const RESERVED_PREFIXES: [&str; 3] = ["aws:", "opsworks:", "rds:"];

/// Why tags were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// An empty key (after trimming).
    #[error("Tag keys cannot be empty")]
    EmptyKey,
    /// A key over [`MAX_KEY_CHARS`].
    #[error("The tag key '{0}' is longer than 127 characters")]
    KeyTooLong(String),
    /// A value over [`MAX_VALUE_CHARS`].
    #[error("The value of tag '{0}' is longer than 255 characters")]
    ValueTooLong(String),
    /// A key with a character outside the allowed set.
    #[error(
        "The tag key '{0}' contains characters that are not allowed; use Unicode letters, digits, white space and + - = . _ : /"
    )]
    KeyCharset(String),
    /// A value with a character outside the allowed set.
    #[error(
        "The value of tag '{0}' contains characters that are not allowed; use Unicode letters, digits, white space and + - = . _ : /"
    )]
    ValueCharset(String),
    /// A reserved key or key prefix.
    #[error(
        "The tag key '{0}' is reserved; keys may not be Name nor start with aws:, opsworks: or rds:"
    )]
    Reserved(String),
    /// Over [`MAX_USER_TAGS`] on the resource.
    #[error("A resource can have at most 40 tags; this request would leave {0}")]
    TooMany(usize),
    /// Over [`MAX_TOTAL_TAGS`] counting those a layer inherits from its stack.
    #[error(
        "A layer can have at most 50 tags including those of its stack; this request would leave {0}"
    )]
    TooManyInAll(usize),
}

fn allowed_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || matches!(c, '+' | '-' | '=' | '.' | '_' | ':' | '/')
}

/// Checks one tag and returns it trimmed, as the original stores it.
pub fn check_tag(key: &str, value: &str) -> Result<(String, String), TagError> {
    let key = key.trim();
    let value = value.trim();
    if key.is_empty() {
        return Err(TagError::EmptyKey);
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(TagError::KeyTooLong(key.to_string()));
    }
    if !key.chars().all(allowed_char) {
        return Err(TagError::KeyCharset(key.to_string()));
    }
    let lower = key.to_lowercase();
    if key == "Name" || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(TagError::Reserved(key.to_string()));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(TagError::ValueTooLong(key.to_string()));
    }
    if !value.chars().all(allowed_char) {
        return Err(TagError::ValueCharset(key.to_string()));
    }
    Ok((key.to_string(), value.to_string()))
}

/// The resource's tags after adding (or overwriting) `new`, each checked and trimmed; refused
/// when the resource would carry more than [`MAX_USER_TAGS`].
pub fn with_tags<'a>(
    existing: &Tags,
    new: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Tags, TagError> {
    let mut out = existing.clone();
    for (k, v) in new {
        let (k, v) = check_tag(k, v)?;
        out.insert(k, v);
    }
    if out.len() > MAX_USER_TAGS {
        return Err(TagError::TooMany(out.len()));
    }
    Ok(out)
}

/// A layer's effective tags: its stack's, with the layer's own values where it sets the key.
pub fn effective_layer_tags(stack: &Tags, layer: &Tags) -> Tags {
    let mut out = stack.clone();
    out.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Checks a layer's effective tags against [`MAX_TOTAL_TAGS`].
pub fn check_total(effective: &Tags) -> Result<(), TagError> {
    if effective.len() > MAX_TOTAL_TAGS {
        Err(TagError::TooManyInAll(effective.len()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_are_trimmed_and_checked() {
        assert_eq!(
            check_tag("  padded  ", "  value "),
            Ok(("padded".into(), "value".into()))
        );
        assert!(check_tag("a+b-c=d.e_f:g/h", "ünïcödé 1+1=2").is_ok());
        assert_eq!(check_tag("   ", "v"), Err(TagError::EmptyKey));
        assert_eq!(
            check_tag("bad*key", "v"),
            Err(TagError::KeyCharset("bad*key".into()))
        );
        assert_eq!(
            check_tag("key", "bad#value"),
            Err(TagError::ValueCharset("key".into()))
        );
        assert_eq!(
            check_tag("mail@host", "v"),
            Err(TagError::KeyCharset("mail@host".into()))
        );
        assert!(check_tag("key", "").is_ok());
    }

    #[test]
    fn lengths_are_inclusive() {
        assert!(check_tag(&"k".repeat(127), &"v".repeat(255)).is_ok());
        assert!(matches!(
            check_tag(&"k".repeat(128), "v"),
            Err(TagError::KeyTooLong(_))
        ));
        assert!(matches!(
            check_tag("k", &"v".repeat(256)),
            Err(TagError::ValueTooLong(_))
        ));
        // Characters, not bytes.
        assert!(check_tag(&"é".repeat(127), &"ü".repeat(255)).is_ok());
    }

    #[test]
    fn reserved_keys() {
        for key in ["aws:cost", "AWS:cost", "opsworks:stack", "rds:db", "Name"] {
            assert_eq!(
                check_tag(key, "v"),
                Err(TagError::Reserved(key.into())),
                "{key}"
            );
        }
        assert!(check_tag("name", "v").is_ok());
        assert!(check_tag("awsome", "v").is_ok());
    }

    #[test]
    fn forty_tags_per_resource() {
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let forty = with_tags(&Tags::new(), keys.iter().map(|k| (k.as_str(), "v"))).unwrap();
        assert_eq!(forty.len(), 40);
        assert_eq!(
            with_tags(&forty, [("one-more", "v")]),
            Err(TagError::TooMany(41))
        );
        // Overwriting an existing key does not count twice.
        assert_eq!(
            with_tags(&forty, [("k0", "changed")]).unwrap()["k0"],
            "changed"
        );
    }

    #[test]
    fn a_bad_tag_refuses_the_whole_request() {
        let before = tags(&[("a", "1")]);
        assert!(with_tags(&before, [("b", "2"), ("aws:x", "3")]).is_err());
    }

    #[test]
    fn layers_inherit_and_override_stack_tags() {
        let stack = tags(&[("env", "prod"), ("team", "ops")]);
        let layer = tags(&[("env", "staging"), ("role", "web")]);
        assert_eq!(
            effective_layer_tags(&stack, &layer),
            tags(&[("env", "staging"), ("role", "web"), ("team", "ops")])
        );
        let big: Tags = (0..51)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(check_total(&big), Err(TagError::TooManyInAll(51)));
    }
}

//! Limits AWS documents that the service model does not carry.

/// The largest custom JSON a stack, layer or deployment may carry (the original's 120 KB).
pub const MAX_CUSTOM_JSON_BYTES: usize = 120 * 1024;

/// Why a custom JSON string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomJsonError {
    /// Not parseable as JSON.
    #[error("CustomJson is not valid JSON: {0}")]
    Invalid(String),
    /// Valid JSON, but not an object.
    #[error("CustomJson must be a JSON object")]
    NotAnObject,
    /// Larger than [`MAX_CUSTOM_JSON_BYTES`].
    #[error("CustomJson is {0} bytes; the limit is 122880 bytes")]
    TooLarge(usize),
}

/// Checks a custom JSON string: a JSON object within the size limit.
pub fn check_custom_json(
    s: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, CustomJsonError> {
    if s.len() > MAX_CUSTOM_JSON_BYTES {
        return Err(CustomJsonError::TooLarge(s.len()));
    }
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(CustomJsonError::NotAnObject),
        Err(e) => Err(CustomJsonError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_json_must_be_a_bounded_object() {
        assert!(check_custom_json(r#"{"a": {"b": 1}}"#).is_ok());
        assert_eq!(check_custom_json("[1]"), Err(CustomJsonError::NotAnObject));
        assert!(matches!(
            check_custom_json("{"),
            Err(CustomJsonError::Invalid(_))
        ));
        let big = format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_CUSTOM_JSON_BYTES));
        assert!(matches!(
            check_custom_json(&big),
            Err(CustomJsonError::TooLarge(_))
        ));
    }
}

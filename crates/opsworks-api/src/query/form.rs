//! Strict `application/x-www-form-urlencoded` decoding into a flat key → value map.
//!
//! Hand-written rather than `form_urlencoded::parse`, which is lenient by design: it passes a bad
//! `%` sequence through and replaces invalid UTF-8, where we must refuse both with a clear error.

use std::collections::BTreeMap;

use super::AwsError;

/// The most parameters one request may carry.
pub const MAX_PARAMETERS: usize = 10_000;
/// The longest parameter name, in bytes.
pub const MAX_KEY_BYTES: usize = 1_024;
/// The most dot-separated parts one parameter name may have (`Tags.member.1.Key` has 4).
pub const MAX_KEY_PARTS: usize = 24;

fn malformed(message: String) -> AwsError {
    AwsError::MalformedQueryString { message }
}

/// Decodes `+` and `%XX`; anything else after a `%`, or bytes that are not UTF-8, is an error.
fn decode(raw: &[u8], what: &str) -> Result<String, AwsError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| h.bytes().all(|b| b.is_ascii_hexdigit()))
                });
                let Some(b) = hex else {
                    return Err(malformed(format!(
                        "The {what} has a '%' at byte {i} that is not followed by two hexadecimal digits."
                    )));
                };
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| malformed(format!("The {what} does not decode to valid UTF-8.")))
}

/// Adds the pairs of a form (or query string) to `into`, refusing a key seen before.
pub(crate) fn parse_into(raw: &[u8], into: &mut BTreeMap<String, String>) -> Result<(), AwsError> {
    for pair in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        if into.len() >= MAX_PARAMETERS {
            return Err(malformed(format!(
                "The request has more than {MAX_PARAMETERS} parameters."
            )));
        }
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        if k.len() > MAX_KEY_BYTES * 3 {
            return Err(malformed(format!(
                "A parameter name is longer than {MAX_KEY_BYTES} bytes."
            )));
        }
        let key = decode(k, "parameter name")?;
        if key.is_empty() {
            return Err(malformed("A parameter has an empty name.".into()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(malformed(format!(
                "A parameter name is longer than {MAX_KEY_BYTES} bytes."
            )));
        }
        let parts = key.split('.').count();
        if parts > MAX_KEY_PARTS {
            return Err(malformed(format!(
                "The parameter {key} is nested {parts} levels deep; at most {MAX_KEY_PARTS} are allowed."
            )));
        }
        if key.split('.').any(str::is_empty) {
            return Err(malformed(format!(
                "The parameter name {key} has an empty part between dots."
            )));
        }
        let value = decode(v, &format!("value of {key}"))?;
        if into.contains_key(&key) {
            return Err(malformed(format!(
                "The parameter {key} appears more than once."
            )));
        }
        into.insert(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let mut out = BTreeMap::new();
        parse_into(raw.as_bytes(), &mut out).map(|()| out)
    }

    #[test]
    fn decodes_plus_and_percent_escapes_as_python_urlencode_writes_them() {
        let got = parse("Action=CreateUser&Path=%2Fops%2F&Tags.member.1.Value=a+b%26c&Empty=&Bare")
            .unwrap();
        assert_eq!(got["Path"], "/ops/");
        assert_eq!(got["Tags.member.1.Value"], "a b&c");
        assert_eq!(got["Empty"], "");
        assert_eq!(got["Bare"], "");
        assert_eq!(parse("A=%C3%A9%e2%82%ac").unwrap()["A"], "é€");
        assert!(parse("").unwrap().is_empty());
        assert_eq!(parse("&&A=1&").unwrap().len(), 1);
    }

    #[test]
    fn bad_percent_encoding_and_invalid_utf8_are_refused() {
        for raw in [
            "A=%", "A=%4", "A=%zz", "A=%+1", "%=1", "A=%C3", "A=%FF%FE", "A%2=1",
        ] {
            let err = parse(raw).unwrap_err();
            assert_eq!(err.code(), "MalformedQueryString", "{raw}");
        }
        assert!(
            parse("A=%4")
                .unwrap_err()
                .message()
                .contains("two hexadecimal digits")
        );
        assert!(parse("A=%C3").unwrap_err().message().contains("UTF-8"));
    }

    #[test]
    fn repeated_empty_and_overlong_keys_are_refused() {
        let err = parse("UserName=a&UserName=b").unwrap_err();
        assert_eq!(
            err.message(),
            "The parameter UserName appears more than once."
        );
        // The same key spelled two ways is still the same key.
        assert!(parse("UserName=a&User%4Eame=b").is_err());
        assert!(parse("=x").unwrap_err().message().contains("empty name"));
        assert!(
            parse("Tags..1=x")
                .unwrap_err()
                .message()
                .contains("empty part")
        );
        assert!(parse("Tags.=x").is_err());
        let deep = vec!["a"; MAX_KEY_PARTS + 1].join(".");
        assert!(
            parse(&format!("{deep}=1"))
                .unwrap_err()
                .message()
                .contains("levels deep")
        );
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(
            parse(&format!("{long}=1"))
                .unwrap_err()
                .message()
                .contains("longer than")
        );
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let raw: Vec<String> = (0..=MAX_PARAMETERS).map(|i| format!("K{i}=v")).collect();
        let err = parse(&raw.join("&")).unwrap_err();
        assert!(
            err.message().contains("more than 10000 parameters"),
            "{}",
            err.message()
        );
    }
}

//! AWS Signature Version 4: verification of incoming requests, and a signer for our own tools.
//!
//! Hand-written rather than built on `aws-sigv4` (see `shared/reference/dependencies.md` §4): the
//! verifier must put the canonical request and string-to-sign into its mismatch errors as AWS
//! does, enforce our own clock-skew and scope policy, and AWS JSON 1.1 only ever signs `POST /`.
//! The same verifier serves every service of the endpoint: the caller names the services whose
//! credential scopes it accepts ([`verify_for`]), and [`scope_service`] reads the scope's service
//! before verification, to route the request (and word its errors) by it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ApiError;

/// The only algorithm AWS clients use with SigV4.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// How far a request's date may be from the server's clock, either way.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The parts of a request the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// The path, as sent.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Every header as (name, value); names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// What a verified signature tells about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key ID that signed.
    pub access_key_id: String,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope (`opsworks`, `iam`, `elasticloadbalancing`, ...).
    pub service: String,
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authorization {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    terminator: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn header<'a>(parts: &RequestParts<'a>, name: &str) -> Option<&'a str> {
    parts
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

fn parse_authorization(value: &str) -> Result<Authorization, ApiError> {
    let incomplete = |what: &str| {
        ApiError::IncompleteSignature(format!(
            "Authorization header requires '{what}' parameter. Authorization={value}"
        ))
    };
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        return Err(ApiError::IncompleteSignature(format!(
            "Authorization header requires the {ALGORITHM} algorithm. Authorization={value}"
        )));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope.iter().any(|s| s.is_empty()) {
        return Err(ApiError::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    }
    Ok(Authorization {
        access_key_id: scope[0].to_string(),
        date: scope[1].to_string(),
        region: scope[2].to_string(),
        service: scope[3].to_string(),
        terminator: scope[4].to_string(),
        signed_headers: signed.split(';').map(|h| h.to_ascii_lowercase()).collect(),
        signature: signature.to_string(),
    })
}

/// Parses `YYYYMMDDTHHMMSSZ` into seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<i64> {
    // Digits everywhere else, checked byte by byte before slicing: a multi-byte character of
    // the right byte length must not get as far as a slice that splits it.
    let b = s.as_bytes();
    let form = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !form {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    iso.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

fn format_amz_date(epoch: i64) -> String {
    jiff::Timestamp::from_second(epoch)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default()
}

/// The service named by the credential scope of the request's `Authorization` header, without
/// verifying anything: what routes a request to its service before [`verify_for`] checks it.
pub fn scope_service<'a>(parts: &RequestParts<'a>) -> Option<&'a str> {
    let value = header(parts, "authorization")?.strip_prefix(ALGORITHM)?;
    let credential = value
        .split(',')
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let scope: Vec<&str> = credential.split('/').collect();
    (scope.len() == 5 && !scope[3].is_empty()).then(|| scope[3])
}

/// Verifies a SigV4-signed request to the OpsWorks API (credential scope service `opsworks`).
///
/// `secret_for` returns the secret of an access key ID, or `None` when the key is unknown.
/// `now` is seconds since the epoch. On a signature mismatch the error carries the canonical
/// request and string-to-sign the server computed, so a client author can see what differs.
pub fn verify(
    parts: &RequestParts<'_>,
    now: i64,
    secret_for: impl FnOnce(&str) -> Option<String>,
) -> Result<Verified, ApiError> {
    verify_for(parts, now, &[crate::SIGNING_NAME], secret_for)
}

/// Verifies a SigV4-signed request whose credential scope names one of `services`
/// (`["iam"]`, or every signing name of [`crate::Service::ALL`]), as [`verify`] does.
pub fn verify_for(
    parts: &RequestParts<'_>,
    now: i64,
    services: &[&str],
    secret_for: impl FnOnce(&str) -> Option<String>,
) -> Result<Verified, ApiError> {
    let Some(auth_value) = header(parts, "authorization") else {
        return Err(ApiError::MissingAuthenticationToken(
            "Missing Authentication Token".into(),
        ));
    };
    let auth = parse_authorization(auth_value)?;
    let amz_date = header(parts, "x-amz-date").ok_or_else(|| {
        ApiError::IncompleteSignature(format!(
            "Authorization header requires existence of a 'X-Amz-Date' header. Authorization={auth_value}"
        ))
    })?;
    let Some(when) = parse_amz_date(amz_date) else {
        return Err(ApiError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        )));
    };
    if !services.contains(&auth.service.as_str()) {
        let expected: Vec<String> = services.iter().map(|s| format!("'{s}'")).collect();
        return Err(ApiError::InvalidSignature(format!(
            "Credential should be scoped to correct service: {}. ",
            expected.join(" or ")
        )));
    }
    if auth.terminator != "aws4_request" {
        return Err(ApiError::InvalidSignature(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
            auth.terminator
        )));
    }
    if !valid_region(&auth.region) {
        return Err(ApiError::InvalidSignature(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }
    if auth.date != amz_date[..8] {
        return Err(ApiError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from 'x-amz-date'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    if when < now - MAX_SKEW_SECONDS {
        return Err(ApiError::InvalidSignature(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format_amz_date(now - MAX_SKEW_SECONDS),
            format_amz_date(now)
        )));
    }
    if when > now + MAX_SKEW_SECONDS {
        return Err(ApiError::InvalidSignature(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format_amz_date(now + MAX_SKEW_SECONDS),
            format_amz_date(now)
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(ApiError::InvalidSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let Some(secret) = secret_for(&auth.access_key_id) else {
        return Err(ApiError::UnrecognizedClient(
            "The security token included in the request is invalid.".into(),
        ));
    };

    let canonical = canonical_request(parts, &auth.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = string_to_sign(amz_date, &scope, &canonical);
    let expected = signature(
        &secret,
        &auth.date,
        &auth.region,
        &auth.service,
        &string_to_sign,
    );
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(Verified {
            access_key_id: auth.access_key_id,
            region: auth.region,
            service: auth.service,
        })
    } else {
        Err(ApiError::InvalidSignature(format!(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
        )))
    }
}

fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Builds the canonical request over the named headers.
fn canonical_request(parts: &RequestParts<'_>, signed: &[String]) -> Result<String, ApiError> {
    let mut lines = Vec::with_capacity(signed.len());
    for name in signed {
        let values: Vec<String> = parts
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| collapse_spaces(v))
            .collect();
        if values.is_empty() {
            return Err(ApiError::InvalidSignature(format!(
                "The request signature names header '{name}' in SignedHeaders, but the request does not carry it."
            )));
        }
        lines.push(format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = to_hex(&Sha256::digest(parts.body));
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method,
        canonical_path(parts.path),
        canonical_query(parts.query),
        lines.concat(),
        signed.join(";"),
        payload_hash
    ))
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// URI-encodes every byte except the unreserved ones, as SigV4 requires.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    uri_encode(&percent_decode(path), true)
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        to_hex(&Sha256::digest(canonical.as_bytes()))
    )
}

/// Lowercase hex, written in one pass into one allocation (`hex::encode` goes character by
/// character, which showed in the server's profile: every request hashes three times).
fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    // The buffer is exactly twice the input, so this cannot fail, and hex digits are ASCII.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn signature(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    to_hex(&hmac(&k_signing, string_to_sign.as_bytes()))
}

/// Signs an AWS JSON 1.1 request the way botocore does, for our own clients (load generator,
/// tests, the console's calls into the API). Returns the `X-Amz-Date` and `Authorization` values;
/// `headers` must already hold `host` and every other header to sign.
pub fn sign(
    parts: &RequestParts<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    now: i64,
) -> (String, String) {
    sign_for(
        parts,
        access_key_id,
        secret,
        region,
        crate::SIGNING_NAME,
        now,
    )
}

/// Signs a request for the service `service` (its SigV4 signing name), as [`sign`] does.
pub fn sign_for(
    parts: &RequestParts<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    now: i64,
) -> (String, String) {
    let amz_date = format_amz_date(now);
    let mut names: Vec<String> = parts
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.push("x-amz-date".into());
    names.sort();
    names.dedup();
    let mut headers: Vec<(&str, &str)> = parts.headers.to_vec();
    headers.push(("x-amz-date", &amz_date));
    let with_date = RequestParts {
        headers: &headers,
        ..*parts
    };
    // Every name comes from the headers themselves, so the canonical request always builds.
    let canonical = canonical_request(&with_date, &names).unwrap_or_default();
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sts = string_to_sign(&amz_date, &scope, &canonical);
    let sig = signature(secret, date, region, service, &sts);
    let auth = format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={sig}",
        names.join(";")
    );
    (amz_date, auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000;

    fn signed(body: &[u8], secret: &str, now: i64) -> (String, String) {
        let headers = [
            ("host", "127.0.0.1:1"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "OpsWorks_20130218.DescribeStacks"),
        ];
        sign(
            &RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body,
            },
            "AKIDTEST",
            secret,
            "us-east-1",
            now,
        )
    }

    fn check(body: &[u8], date: &str, auth: &str, now: i64) -> Result<Verified, ApiError> {
        let headers = [
            ("Host", "127.0.0.1:1"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", "OpsWorks_20130218.DescribeStacks"),
            ("X-Amz-Date", date),
            ("Authorization", auth),
        ];
        verify(
            &RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body,
            },
            now,
            |k| (k == "AKIDTEST").then(|| "s3cret".to_string()),
        )
    }

    #[test]
    fn dates_with_multibyte_characters_are_malformed_not_a_panic() {
        // 16 bytes with `T` at byte 8, but `é` straddles a field boundary (found by proptest).
        assert_eq!(parse_amz_date("é01ééTé4é7Z"), None);
        assert_eq!(parse_amz_date("201\u{e9}112T160000Z"), None);
        assert_eq!(parse_amz_date("20251124T160000Z"), Some(1_764_000_000));
    }

    #[test]
    fn aws_documented_example_signature() {
        // The GET example of the AWS SigV4 documentation (iam ListUsers, 20150830T123600Z).
        let headers = [
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", "iam.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ];
        let parts = RequestParts {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let names: Vec<String> = ["content-type", "host", "x-amz-date"]
            .map(String::from)
            .to_vec();
        let canonical = canonical_request(&parts, &names).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let sts = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/iam/aws4_request",
            &canonical,
        );
        let sig = signature(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
            &sts,
        );
        assert_eq!(
            sig,
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn a_signed_request_verifies() {
        let (date, auth) = signed(b"{}", "s3cret", NOW);
        let v = check(b"{}", &date, &auth, NOW + 30).unwrap();
        assert_eq!(v.access_key_id, "AKIDTEST");
        assert_eq!(v.region, "us-east-1");
    }

    #[test]
    fn tampered_body_wrong_secret_stale_date_and_unknown_key_are_refused() {
        let (date, auth) = signed(b"{}", "s3cret", NOW);
        let err = check(b"{\"a\":1}", &date, &auth, NOW).unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");
        assert!(
            err.message()
                .contains("The Canonical String for this request should have been")
        );

        let (date, auth) = signed(b"{}", "wrong", NOW);
        assert_eq!(
            check(b"{}", &date, &auth, NOW).unwrap_err().code(),
            "InvalidSignatureException"
        );

        let (date, auth) = signed(b"{}", "s3cret", NOW - 16 * 60);
        let err = check(b"{}", &date, &auth, NOW).unwrap_err();
        assert!(
            err.message().starts_with("Signature expired"),
            "{}",
            err.message()
        );

        let (date, auth) = signed(b"{}", "s3cret", NOW);
        let other = auth.replace("AKIDTEST", "AKIDOTHER");
        assert_eq!(
            check(b"{}", &date, &other, NOW).unwrap_err().code(),
            "UnrecognizedClientException"
        );
    }

    #[test]
    fn malformed_or_missing_authorization() {
        let headers = [("Host", "h")];
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            verify(&parts, NOW, |_| None).unwrap_err().code(),
            "MissingAuthenticationTokenException"
        );
        let err = check(
            b"",
            "20251124T000000Z",
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/20251124/us-east-1/opsworks/aws4_request",
            NOW,
        )
        .unwrap_err();
        assert_eq!(err.code(), "IncompleteSignatureException");
        let (date, auth) = signed(b"{}", "s3cret", NOW);
        let wrong_service = auth.replace("/opsworks/", "/ec2/");
        assert_eq!(
            check(b"{}", &date, &wrong_service, NOW).unwrap_err().code(),
            "InvalidSignatureException"
        );
    }

    fn form_request(service: &str, body: &[u8], now: i64) -> Vec<(String, String)> {
        let mut headers = vec![
            ("host".to_string(), "127.0.0.1:1".to_string()),
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
        ];
        let borrowed: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &borrowed,
            body,
        };
        let (date, auth) = sign_for(&parts, "AKIDTEST", "s3cret", "eu-west-1", service, now);
        headers.push(("x-amz-date".into(), date));
        headers.push(("authorization".into(), auth));
        headers
    }

    #[test]
    fn other_services_verify_when_allowed_and_route_by_their_scope() {
        let body = b"Action=ListUsers&Version=2010-05-08";
        let services: Vec<&str> = crate::Service::ALL
            .iter()
            .map(|s| s.signing_name())
            .collect();
        for service in ["iam", "sts", "rds", "elasticloadbalancing", "ec2"] {
            let headers = form_request(service, body, NOW);
            let borrowed: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let parts = RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers: &borrowed,
                body,
            };
            assert_eq!(scope_service(&parts), Some(service));
            let v = verify_for(&parts, NOW, &services, |k| {
                (k == "AKIDTEST").then(|| "s3cret".to_string())
            })
            .unwrap();
            assert_eq!(
                (v.service.as_str(), v.region.as_str()),
                (service, "eu-west-1")
            );
            // The OpsWorks verifier still insists on its own scope.
            let err = verify(&parts, NOW, |_| Some("s3cret".into())).unwrap_err();
            assert_eq!(
                err.message(),
                "Credential should be scoped to correct service: 'opsworks'. "
            );
            let err = verify_for(&parts, NOW, &["iam", "sts"], |_| Some("s3cret".into()));
            if service != "iam" && service != "sts" {
                assert!(err.unwrap_err().message().contains("'iam' or 'sts'"));
            }
        }
    }

    #[test]
    fn scope_service_reads_only_a_well_formed_credential() {
        let parts = |auth: &'static str| {
            let headers: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([("Authorization", auth)]));
            RequestParts {
                method: "POST",
                path: "/",
                query: "",
                headers,
                body: b"",
            }
        };
        assert_eq!(
            scope_service(&parts(
                "AWS4-HMAC-SHA256 Credential=AK/20251124/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=00"
            )),
            Some("rds")
        );
        assert_eq!(
            scope_service(&parts("AWS4-HMAC-SHA256 Credential=AK/x/rds")),
            None
        );
        assert_eq!(scope_service(&parts("Basic abc")), None);
        assert_eq!(
            scope_service(&parts("AWS4-HMAC-SHA256 Credential=AK/d/r//aws4_request")),
            None
        );
    }
}

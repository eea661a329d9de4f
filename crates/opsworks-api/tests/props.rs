//! Property tests of the wire layer: the model validator takes any JSON for any operation and
//! SigV4 verification takes any request without panicking; what `sign` signs, `verify` accepts,
//! and any change to the body is caught. Fixed case counts keep them quick.

use opsworks_api::model;
use opsworks_api::sigv4::{self, RequestParts};
use proptest::prelude::*;
use serde_json::{Map, Value};

const NOW: i64 = 1_764_000_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, a few levels deep, with strings that include unicode and control characters.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[A-Za-z]{0,12}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object using the member names of `operation`'s input (and of the shapes below it), so
/// the validator goes deep rather than stopping at unknown members.
fn body_for(operation: &'static str) -> impl Strategy<Value = Value> {
    let m = model();
    let mut names: Vec<String> = Vec::new();
    let mut todo: Vec<String> = m
        .operation(operation)
        .and_then(|op| op.input.as_ref())
        .map(|i| vec![i.shape.clone()])
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(shape) = todo.pop() {
        if !seen.insert(shape.clone()) {
            continue;
        }
        if let Some(s) = m.shape(&shape) {
            for (name, member) in &s.members {
                names.push(name.clone());
                todo.push(member.shape.clone());
            }
            for r in [&s.member, &s.key, &s.value].into_iter().flatten() {
                todo.push(r.shape.clone());
            }
        }
    }
    if names.is_empty() {
        names.push("Anything".into());
    }
    let names = std::sync::Arc::new(names);
    json().prop_recursive(3, 64, 8, move |inner| {
        let names = names.clone();
        prop::collection::vec((0..names.len(), inner), 0..8).prop_map(move |kv| {
            Value::Object(
                kv.into_iter()
                    .map(|(i, v)| (names[i].clone(), v))
                    .collect::<Map<_, _>>(),
            )
        })
    })
}

fn operation_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = model().operations.keys().map(|k| k.as_str()).collect();
    names.sort();
    names
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_validator_takes_any_json_for_any_operation(
        op in prop::sample::select(operation_names()),
        body in json(),
    ) {
        let _ = model().validate_input(op, &body);
    }

    #[test]
    fn the_validator_takes_any_members_of_the_operation(
        (op, body) in prop::sample::select(operation_names())
            .prop_flat_map(|op| (Just(op), body_for(op))),
    ) {
        if let Err(e) = model().validate_input(op, &body) {
            // A refusal is one of the client errors, worded, never an internal fault.
            prop_assert!(
                matches!(e.code(), "ValidationException" | "SerializationException"),
                "{}: {}", e.code(), e.message()
            );
            prop_assert!(!e.message().is_empty());
        }
    }

    #[test]
    fn unknown_operations_are_refused_not_panicked_on(op in ".{0,40}", body in json()) {
        if model().operation(&op).is_none() {
            prop_assert!(model().validate_input(&op, &body).is_err());
        }
    }
}

/// Header names a verifier looks at, and some it does not.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "authorization",
            "Authorization",
            "x-amz-date",
            "X-Amz-Date",
            "host",
            "content-type",
            "x-amz-target",
        ])
        .prop_map(String::from),
        "[a-zA-Z-]{1,12}",
        ".{0,8}",
    ]
}

/// Authorization values near the real form: the algorithm, then credential, signed headers and
/// signature parts made of arbitrary pieces.
fn authorization() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z0-9-]{0,10}",
        ".{0,10}",
        Just("aws4_request".to_string())
    ];
    let scope = prop::collection::vec(piece, 0..7).prop_map(|p| p.join("/"));
    let headers = prop::collection::vec(header_name(), 0..5).prop_map(|h| h.join(";"));
    prop_oneof![
        (scope, headers, "[0-9a-f]{0,64}|.{0,20}").prop_map(|(c, h, s)| format!(
            "AWS4-HMAC-SHA256 Credential={c}, SignedHeaders={h}, Signature={s}"
        )),
        ".{0,80}",
        "AWS4-HMAC-SHA256.{0,60}",
    ]
}

/// `X-Amz-Date` values: the right form with any digits, and anything of 16 bytes or not.
fn amz_date() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{8}T[0-9]{6}Z",
        ".{16}",
        ".{0,20}",
        // Multi-byte characters where the digits go: slicing by position must not panic.
        "[0-9é]{6}T[0-9]{6}Z",
        Just("20251124T160000Z".to_string()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn verification_takes_any_request(
        method in ".{0,8}",
        path in ".{0,30}",
        query in ".{0,40}",
        auth in authorization(),
        date in amz_date(),
        extra in prop::collection::vec((header_name(), ".{0,30}"), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now in prop_oneof![Just(NOW), any::<i64>()],
    ) {
        let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth), ("x-amz-date", &date)];
        headers.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let parts = RequestParts { method: &method, path: &path, query: &query, headers: &headers, body: &body };
        let _ = sigv4::verify(&parts, now, |_| Some("secret".to_string()));
        let _ = sigv4::verify(&parts, now, |_| None);
    }

    #[test]
    fn any_date_in_a_well_formed_request_is_an_error_not_a_panic(
        date in prop_oneof![
            "[0-9é]{5,8}T[0-9é]{4,6}Z",
            "[0-9]{8}T[0-9]{6}Z",
            ".{14,16}",
        ],
    ) {
        let auth = "AWS4-HMAC-SHA256 Credential=AKID/20251124/us-east-1/opsworks/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=00";
        let headers = [("host", "h"), ("x-amz-date", date.as_str()), ("authorization", auth)];
        let parts = RequestParts { method: "POST", path: "/", query: "", headers: &headers, body: b"" };
        prop_assert!(sigv4::verify(&parts, NOW, |_| Some("s".into())).is_err());
    }

    #[test]
    fn what_sign_signs_verify_accepts_and_a_changed_body_fails(
        path in "(/[A-Za-z0-9._~%-]{0,8}){0,4}",
        query in "([a-zA-Z0-9]{1,5}(=[a-zA-Z0-9%.-]{0,6})?&){0,4}",
        target in ".{0,20}",
        body in prop::collection::vec(any::<u8>(), 0..128),
        flip in any::<prop::sample::Index>(),
        secret in "[A-Za-z0-9/+]{1,40}",
    ) {
        let headers = [
            ("host", "127.0.0.1:9730"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let parts = RequestParts { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
        let (date, auth) = sigv4::sign(&parts, "AKIDPROP", &secret, "us-east-1", NOW);
        let mut all = headers.to_vec();
        all.push(("x-amz-date", &date));
        all.push(("authorization", &auth));
        let signed = RequestParts { headers: &all, ..parts };
        let ok = sigv4::verify(&signed, NOW, |k| (k == "AKIDPROP").then(|| secret.clone()));
        prop_assert!(ok.is_ok(), "{:?}", ok);
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip.index(changed.len());
            changed[i] ^= 0x01;
            let tampered = RequestParts { body: &changed, ..signed };
            let refused = sigv4::verify(&tampered, NOW, |_| Some(secret.clone()));
            prop_assert!(refused.is_err());
        }
    }
}

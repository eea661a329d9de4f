//! Every `MalformedPolicyDocument` this crate gives: IAM's own message (`aws_message`) and the
//! detailed one (`Display`) that says what is wrong and where; and IAM's size quotas.

use opsworks_policy::{
    Policy, PolicyError, PolicyKind, SizeLimitExceeded, check_size, counted_size,
};

/// (kind, document, IAM's message, the detailed message)
const CASES: &[(PolicyKind, &str, &str, &str)] = &[
    (
        PolicyKind::InlineUser,
        r#"{"Version": "#,
        r#"This policy contains invalid Json"#,
        r#"This policy contains invalid Json: EOF while parsing a value at line 1 column 12"#,
    ),
    (
        PolicyKind::InlineUser,
        r#"not json"#,
        r#"This policy contains invalid Json"#,
        r#"This policy contains invalid Json: expected ident at line 1 column 2"#,
    ),
    (
        PolicyKind::InlineUser,
        r#"[]"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. The document is an array, not a JSON object (at the document)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*"},"Foo":1}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Unknown field Foo (at the document)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Foo":1}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Unknown field Foo (at Statement)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"opsworks:*","Resource":"*"},{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Foo":1}]}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Unknown field Foo (at Statement[1])."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Effect":"Deny"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Duplicate field Effect (at line 1 column 99)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2013-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Version 2013-10-17 is not one IAM knows (2012-10-17 or 2008-10-17) (at Version)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":20121017,"Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Version must be a string, not a number (at Version)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17"}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. The policy has no Statement (at the document)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":[]}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Statement is an empty list (at Statement)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":"x"}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Statement must be an object or an array of objects, not a string (at Statement)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":["x"]}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. A statement must be an object, not a string (at Statement[0])."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Action":"opsworks:*","Resource":"*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. The statement has no Effect (at Statement)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Permit","Action":"opsworks:*","Resource":"*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Invalid Effect Permit: it must be Allow or Deny (at Statement.Effect)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"opsworks:*","Resource":"*"}}"#,
        r#"The policy failed legacy parsing"#,
        r#"The policy failed legacy parsing: Effect allow must be written Allow or Deny (at Statement.Effect)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","NotAction":"iam:*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. A statement may have Action or NotAction, not both (at Statement)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","NotResource":"*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. A statement may have Resource or NotResource, not both (at Statement)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Principal":"*"}}"#,
        r#"Policy document should not specify a principal."#,
        r#"Policy document should not specify a principal. Principal found (at Statement)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"opsworks:*","Resource":"*"},{"Effect":"Allow","Action":"opsworks:*","Resource":"*","NotPrincipal":{"AWS":"x"}}]}"#,
        r#"Policy document should not specify a principal."#,
        r#"Policy document should not specify a principal. NotPrincipal found (at Statement[1])."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"StringFoo":{"aws:username":"a"}}}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Unsupported condition operator StringFoo (at Statement.Condition)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"NullIfExists":{"aws:username":"true"}}}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Unsupported condition operator NullIfExists (at Statement.Condition)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}}"#,
        r#"The policy failed legacy parsing"#,
        r#"The policy failed legacy parsing: "tomorrow" is not a date (W3C ISO 8601 or epoch seconds) for DateLessThan (at Statement.Condition.DateLessThan.aws:CurrentTime)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}}"#,
        r#"The policy failed legacy parsing"#,
        r#"The policy failed legacy parsing: "ten" is not a number (integer or decimal) for NumericLessThan (at Statement.Condition.NumericLessThan.s3:max-keys)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","10.0.0.0/33"]}}}}"#,
        r#"The policy failed legacy parsing"#,
        r#"The policy failed legacy parsing: "10.0.0.0/33" is not an IP address or CIDR block (IPv4 or IPv6) for IpAddress (at Statement.Condition.IpAddress.aws:SourceIp)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}"#,
        r#"The policy failed legacy parsing"#,
        r#"The policy failed legacy parsing: "yes" is not true or false for Bool (at Statement.Condition.Bool.aws:SecureTransport)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"Null":{"aws:SourceIp":"maybe"}}}}"#,
        r#"The policy failed legacy parsing"#,
        r#"The policy failed legacy parsing: "maybe" is not true or false for Null (at Statement.Condition.Null.aws:SourceIp)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"StringEquals":"x"}}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. The StringEquals block must be an object of condition keys, not a string (at Statement.Condition.StringEquals)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"StringEquals":{"aws:username":{}}}}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. A condition value must be a string, number or boolean, not an object (at Statement.Condition.StringEquals.aws:username)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":[]}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Condition must be an object, not an array (at Statement.Condition)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"opsworks:*","Resource":"*"},{"Sid":"A","Effect":"Allow","Action":"opsworks:*","Resource":"*"}]}"#,
        r#"Statement IDs (SID) in a single policy must be unique."#,
        r#"Statement IDs (SID) in a single policy must be unique. "A" is used twice."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Sid":1,"Effect":"Allow","Action":"opsworks:*","Resource":"*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Sid must be a string, not a number (at Statement.Sid)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}"#,
        r#"Policy statement must contain actions."#,
        r#"Policy statement must contain actions. Statement has neither Action nor NotAction, or an empty list."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
        r#"Policy statement must contain actions."#,
        r#"Policy statement must contain actions. Statement has neither Action nor NotAction, or an empty list."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*"}}"#,
        r#"Policy statement must contain resources."#,
        r#"Policy statement must contain resources. Statement has neither Resource nor NotResource, or an empty list."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","NotResource":[]}}"#,
        r#"Policy statement must contain resources."#,
        r#"Policy statement must contain resources. Statement has neither Resource nor NotResource, or an empty list."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"DeleteStack","Resource":"*"}}"#,
        r#"Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."#,
        r#"Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. "DeleteStack" at Statement.Action is not of the form service:action."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["opsworks:x","opsworks:Delete:Stack"],"Resource":"*"}}"#,
        r#"Actions/Condition can contain only one colon."#,
        r#"Actions/Condition can contain only one colon. "opsworks:Delete:Stack" at Statement.Action[1] has more."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ops works:DeleteStack","Resource":"*"}}"#,
        r#"Vendor ops works is not valid"#,
        r#"Vendor ops works is not valid (at Statement.Action)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":7,"Resource":"*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Action must be a string or an array of strings, not a number (at Statement.Action)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["a:b",7],"Resource":"*"}}"#,
        r#"Syntax errors in policy."#,
        r#"Syntax errors in policy. Action must be a string or an array of strings; it holds a number (at Statement.Action)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"stack-1"}}"#,
        r#"Resource stack-1 must be in ARN format or "*"."#,
        r#"Resource stack-1 must be in ARN format or "*". (at Statement.Resource)"#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"arn:amazon:opsworks:*:*:stack/*"}}"#,
        r#"Partition "amazon" is not valid for resource "arn:amazon:opsworks:*:*:stack/*"."#,
        r#"Partition "amazon" is not valid for resource "arn:amazon:opsworks:*:*:stack/*". (at Statement.Resource)"#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"arn:aws"}}"#,
        r#"Resource vendor must be fully qualified and cannot contain regexes."#,
        r#"Resource vendor must be fully qualified and cannot contain regexes. "arn:aws" at Statement.Resource."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"arn:aws:ops*:*:*:stack/*"}}"#,
        r#"Resource vendor must be fully qualified and cannot contain regexes."#,
        r#"Resource vendor must be fully qualified and cannot contain regexes. "arn:aws:ops*:*:*:stack/*" at Statement.Resource."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"arn:aws::us-east-1:1:x"}}"#,
        r#"The policy failed legacy parsing"#,
        r#"The policy failed legacy parsing: Resource arn:aws::us-east-1:1:x is not an ARN of six parts (at Statement.Resource)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"arn:aws:opsworks::stack"}}"#,
        r#"The policy failed legacy parsing"#,
        r#"The policy failed legacy parsing: Resource arn:aws:opsworks::stack is not an ARN of six parts (at Statement.Resource)."#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:*","Resource":"arn:aws:iam:us-east-1:123456789012:user/alice"}}"#,
        r#"IAM resource arn:aws:iam:us-east-1:123456789012:user/alice cannot contain region information."#,
        r#"IAM resource arn:aws:iam:us-east-1:123456789012:user/alice cannot contain region information. (at Statement.Resource)"#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:us-east-1::bucket"}}"#,
        r#"Resource arn:aws:s3:us-east-1::bucket can not contain region information."#,
        r#"Resource arn:aws:s3:us-east-1::bucket can not contain region information. (at Statement.Resource)"#,
    ),
    (
        PolicyKind::InlineUser,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:*","Resource":"arn:aws:iam::123456789012:alice"}}"#,
        r#"IAM resource path must either be "*" or start with user/, federated-user/, role/, group/, instance-profile/, mfa/, server-certificate/, policy/, sms-mfa/, saml-provider/, oidc-provider/, report/, access-report/."#,
        r#"IAM resource path must either be "*" or start with user/, federated-user/, role/, group/, instance-profile/, mfa/, server-certificate/, policy/, sms-mfa/, saml-provider/, oidc-provider/, report/, access-report/. "arn:aws:iam::123456789012:alice" at Statement.Resource."#,
    ),
    (
        PolicyKind::Managed,
        r#"{"Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*"}}"#,
        r#"Policy document must be version 2012-10-17 or greater."#,
        r#"Policy document must be version 2012-10-17 or greater. This one is without a Version."#,
    ),
    (
        PolicyKind::Managed,
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*"}}"#,
        r#"Policy document must be version 2012-10-17 or greater."#,
        r#"Policy document must be version 2012-10-17 or greater. This one is version 2008-10-17."#,
    ),
];

#[test]
fn every_malformed_document_message() {
    for (kind, doc, aws, detailed) in CASES {
        let err = match Policy::parse(doc, *kind) {
            Ok(_) => panic!("accepted: {doc}"),
            Err(e) => e,
        };
        assert_eq!(err.aws_message(), *aws, "{doc}");
        assert_eq!(err.to_string(), *detailed, "{doc}");
        assert_eq!(err.code(), "MalformedPolicyDocument");
    }
}

#[test]
fn the_first_failing_check_gives_the_message() {
    // Syntax comes before the version, the version before the principal, legacy parsing before
    // Sids, Sids before missing actions, resource formats before action prefixes.
    let first = |kind, doc: &str| Policy::parse(doc, kind).unwrap_err();
    let e = first(
        PolicyKind::Managed,
        r#"{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*","Foo":1}}"#,
    );
    assert!(matches!(e, PolicyError::Syntax { .. }), "{e}");
    let e = first(
        PolicyKind::Managed,
        r#"{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*","Principal":"*"}}"#,
    );
    assert!(matches!(e, PolicyError::VersionTooOld { .. }), "{e}");
    let e = first(
        PolicyKind::InlineUser,
        r#"{"Statement":{"Effect":"allow","Action":"a:b","Resource":"*","Principal":"*"}}"#,
    );
    assert!(matches!(e, PolicyError::PrincipalNotAllowed { .. }), "{e}");
    let e = first(
        PolicyKind::InlineUser,
        r#"{"Statement":[{"Sid":"a","Effect":"deny","Action":"a:b","Resource":"*"},{"Sid":"a","Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
    );
    assert!(matches!(e, PolicyError::LegacyParsing { .. }), "{e}");
    let e = first(
        PolicyKind::InlineUser,
        r#"{"Statement":[{"Sid":"a","Effect":"Deny","Resource":"*"},{"Sid":"a","Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
    );
    assert!(matches!(e, PolicyError::DuplicateSid { .. }), "{e}");
    let e = first(
        PolicyKind::InlineUser,
        r#"{"Statement":[{"Effect":"Deny","Action":"nope","Resource":"x"},{"Effect":"Allow","Resource":"*"}]}"#,
    );
    assert!(matches!(e, PolicyError::MissingActions { .. }), "{e}");
    let e = first(
        PolicyKind::InlineUser,
        r#"{"Statement":{"Effect":"Deny","Action":"nope","Resource":"x"}}"#,
    );
    assert!(matches!(e, PolicyError::ResourceNotArn { .. }), "{e}");
    let e = first(
        PolicyKind::InlineUser,
        r#"{"Statement":{"Effect":"Deny","Action":"nope"}}"#,
    );
    assert!(matches!(e, PolicyError::ActionWithoutVendor { .. }), "{e}");
    // A resource IAM's legacy parser cannot split fails before a missing action is noticed.
    let e = first(
        PolicyKind::InlineUser,
        r#"{"Statement":{"Effect":"Allow","Resource":"arn:aws:s3::bucket"}}"#,
    );
    assert!(matches!(e, PolicyError::LegacyParsing { .. }), "{e}");
}

#[test]
fn what_iam_accepts() {
    for (kind, doc) in [
        // No Version (2008-10-17 implied) and 2008-10-17 are fine inline.
        (
            PolicyKind::InlineUser,
            r#"{"Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*"}}"#,
        ),
        (
            PolicyKind::InlineGroup,
            r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"opsworks:*","Resource":"*"}}"#,
        ),
        // Fields in any order, Statement as one object, lists with nulls, empty value lists.
        (
            PolicyKind::Managed,
            r#"{"Statement":[{"Resource":["*",null],"Action":["opsworks:*",null],"Effect":"Deny"}],"Version":"2012-10-17","Id":"x"}"#,
        ),
        (
            PolicyKind::Managed,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"aws:username":[]}}}}"#,
        ),
        // An unknown operator over no keys tests nothing.
        (
            PolicyKind::Managed,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Whatever":{}}}}"#,
        ),
        // Sids of any characters, empty Sids repeated.
        (
            PolicyKind::Managed,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"my_sid-1","Effect":"Allow","Action":"a:b","Resource":"*"},{"Sid":"","Effect":"Allow","Action":"a:b","Resource":"*"},{"Sid":"","Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
        ),
        // Wildcard service in actions, condition values as numbers and booleans.
        (
            PolicyKind::Managed,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*:Describe*","Resource":"arn:aws:iam::*:user/*","Condition":{"NumericLessThan":{"s3:max-keys":10},"Bool":{"aws:SecureTransport":true}}}}"#,
        ),
        // Lenient dates of IAM's legacy parser.
        (
            PolicyKind::Managed,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":["2016","2016-12-13t2:00:00.593194+23"]}}}}"#,
        ),
    ] {
        if let Err(e) = Policy::parse(doc, kind) {
            panic!("refused {doc}: {e}");
        }
    }
}

#[test]
fn size_quotas() {
    assert_eq!(PolicyKind::InlineUser.max_size(), 2048);
    assert_eq!(PolicyKind::InlineGroup.max_size(), 5120);
    assert_eq!(PolicyKind::Managed.max_size(), 6144);
    assert!(PolicyKind::Managed.requires_current_version());
    assert!(!PolicyKind::InlineUser.requires_current_version());
    assert!(!PolicyKind::InlineGroup.requires_current_version());

    // White space is not counted, wherever it is.
    assert_eq!(counted_size("{ \"a\" :\n\t\"b c\" }"), 10);
    assert_eq!(counted_size("é"), 1);

    assert_eq!(check_size(PolicyKind::InlineUser, 2048, "alice"), Ok(()));
    let e = check_size(PolicyKind::InlineUser, 2049, "alice").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Maximum policy size of 2048 bytes exceeded for user alice"
    );
    assert_eq!(e.code(), "LimitExceeded");
    assert_eq!(check_size(PolicyKind::InlineGroup, 5120, "devs"), Ok(()));
    assert_eq!(
        check_size(PolicyKind::InlineGroup, 5121, "devs")
            .unwrap_err()
            .to_string(),
        "Maximum policy size of 5120 bytes exceeded for group devs"
    );
    assert_eq!(check_size(PolicyKind::Managed, 6144, ""), Ok(()));
    assert_eq!(
        check_size(PolicyKind::Managed, 6145, "").unwrap_err(),
        SizeLimitExceeded::Managed { limit: 6144 }
    );
    assert_eq!(
        SizeLimitExceeded::Managed { limit: 6144 }.to_string(),
        "Cannot exceed quota for PolicySize: 6144"
    );

    // A document padded with white space past the quota still fits: only the rest counts.
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"opsworks:*",{}"Resource":"*"}}}}"#,
        " ".repeat(5000)
    );
    assert!(doc.len() > 2048);
    assert!(Policy::parse(&doc, PolicyKind::InlineUser).is_ok());
    assert_eq!(
        check_size(PolicyKind::InlineUser, counted_size(&doc), "alice"),
        Ok(())
    );
}

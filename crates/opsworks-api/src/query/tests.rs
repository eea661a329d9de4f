//! Tests of the Query/EC2 layer: botocore's own requests and what it must read back
//! (`tests/botocore/`), every validation and malformed-input path, and arbitrary forms.

use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/botocore")
}

/// The synthetic models of `tests/botocore/wiretest-*.json`.
fn wiretest(protocol: &str) -> ServiceModel {
    let path = fixtures().join(format!("wiretest-{protocol}.json"));
    ServiceModel::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn wire_for<'m>(name: &str, synthetic: &'m [ServiceModel; 2]) -> Wire<'m> {
    match name {
        "wiretest-query" | "wiretest-ec2" => {
            let ec2 = name == "wiretest-ec2";
            Wire {
                model: &synthetic[usize::from(ec2)],
                protocol: if ec2 { Protocol::Ec2 } else { Protocol::Query },
                dialect: if ec2 { Dialect::Ec2 } else { Dialect::Coral },
                namespace: "https://wiretest.example/doc/2020-01-01/".into(),
                millis: false,
            }
        }
        other => Wire::of(service(other)).unwrap(),
    }
}

fn service(name: &str) -> Service {
    match name {
        "iam" => Service::Iam,
        "sts" => Service::Sts,
        "rds" => Service::Rds,
        "elb" => Service::Elb,
        "ec2" => Service::Ec2,
        other => panic!("no service {other}"),
    }
}

/// botocore's serialized requests parse into its caller's parameters; our XML for each sample
/// output and error is the committed `xml/<case>.xml`, which `check_xml.py` replays through
/// botocore's clients. `OPSWORKS_BLESS_XML=1` rewrites the XML files instead of comparing.
#[test]
fn botocore_fixtures() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap())
            .unwrap();
    assert_eq!(cases["botocore"], "1.35.99");
    let synthetic = [wiretest("query"), wiretest("ec2")];
    let bless = std::env::var_os(opsworks_env::OPSWORKS_BLESS_XML).is_some();
    let cases = cases["cases"].as_array().unwrap();
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    let (mut parsed, mut written) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let wire = wire_for(case["service"].as_str().unwrap(), &synthetic);
        let operation = case["operation"].as_str().unwrap();
        if let Some(body) = case["body"].as_str() {
            let got = wire
                .parse("", body.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}\n{body}"));
            assert_eq!(got.operation, operation, "{name}");
            assert_eq!(got.input, case["params"], "{name}\n{body}");
            parsed += 1;
        }
        let request_id = format!("req-{name}");
        let xml = if let Some(error) = case.get("error") {
            let err = AwsError::service(
                error["code"].as_str().unwrap(),
                error["message"].as_str().unwrap(),
            );
            let rendered = wire.render_error(&err, &request_id);
            assert_eq!(u64::from(rendered.status), error["status"], "{name}");
            rendered.body
        } else if let Some(output) = case.get("output") {
            xml::response(&wire, operation, output, &request_id)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        } else {
            continue;
        };
        roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}\n{xml}"));
        let path = fixtures().join("xml").join(format!("{name}.xml"));
        if bless {
            std::fs::write(&path, &xml).unwrap();
        } else {
            let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run with OPSWORKS_BLESS_XML=1)", path.display())
            });
            assert_eq!(
                xml, committed,
                "{name}: our XML changed; re-bless and re-run check_xml.py"
            );
        }
        written += 1;
    }
    assert!(
        parsed >= 70 && written >= 70,
        "{parsed} parsed, {written} written"
    );
}

fn iam(body: &str) -> Result<QueryRequest, AwsError> {
    parse_request(
        Service::Iam,
        "",
        format!("Version=2010-05-08&{body}").as_bytes(),
    )
}

fn ec2(body: &str) -> Result<QueryRequest, AwsError> {
    parse_request(
        Service::Ec2,
        "",
        format!("Version=2016-11-15&{body}").as_bytes(),
    )
}

fn rds(body: &str) -> Result<QueryRequest, AwsError> {
    parse_request(
        Service::Rds,
        "",
        format!("Version=2014-10-31&{body}").as_bytes(),
    )
}

fn elb(body: &str) -> Result<QueryRequest, AwsError> {
    parse_request(
        Service::Elb,
        "",
        format!("Version=2012-06-01&{body}").as_bytes(),
    )
}

fn fails(result: Result<QueryRequest, AwsError>) -> (String, String) {
    let err = result.unwrap_err();
    (err.code().to_string(), err.message().to_string())
}

#[test]
fn policy_documents_are_percent_encoded_as_iam_sends_them() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap())
            .unwrap();
    let put = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "iam-PutUserPolicy-1")
        .unwrap();
    let get = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "iam-GetUserPolicy-1")
        .unwrap();
    let document = put["params"]["PolicyDocument"].as_str().unwrap();
    assert_eq!(
        percent_encode_document(document),
        get["output"]["PolicyDocument"].as_str().unwrap()
    );
    assert_eq!(
        percent_encode_document("a-b_c.d~e f/é"),
        "a-b_c.d~e%20f%2F%C3%A9"
    );
}

#[test]
fn action_and_version_errors() {
    let none = parse_request(Service::Iam, "", b"Version=2010-05-08").unwrap_err();
    assert_eq!(none.code(), "MissingAction");
    assert_eq!(none.status(Service::Iam), 400);
    assert_eq!(
        fails(iam("Action=Bogus")),
        (
            "InvalidAction".into(),
            "Could not find operation Bogus for version 2010-05-08".into()
        )
    );
    assert_eq!(
        fails(ec2("Action=Bogus")).1,
        "The action Bogus is not valid for this web service."
    );
    assert_eq!(
        fails(parse_request(
            Service::Iam,
            "",
            b"Action=ListUsers&Version=2009-01-01"
        )),
        (
            "InvalidAction".into(),
            "Could not find operation ListUsers for version 2009-01-01".into()
        )
    );
    assert_eq!(
        fails(parse_request(Service::Sts, "", b"Action=GetCallerIdentity")),
        (
            "MissingParameter".into(),
            "The request must contain the parameter Version".into()
        )
    );
    let (code, message) = fails(iam("Action=CreateRole&RoleName=r"));
    assert_eq!(code, "UnsupportedOperation");
    assert_eq!(
        message,
        "The operation CreateRole of IAM is not supported by this server."
    );
    assert_eq!(
        fails(ec2("Action=RunInstances")).1,
        "The operation RunInstances of EC2 is not supported by this server."
    );
    assert_eq!(
        fails(rds("Action=CreateDBCluster")).0,
        "UnsupportedOperation"
    );
    assert_eq!(
        fails(parse_request(Service::OpsWorks, "", b"{}")).0,
        "InternalFailure"
    );
}

#[test]
fn get_query_strings_and_bodies_combine_but_never_repeat_a_key() {
    let got = parse_request(
        Service::Iam,
        "Action=ListUsers&Version=2010-05-08&MaxItems=5",
        b"",
    )
    .unwrap();
    assert_eq!(got.input, json!({"MaxItems": 5}));
    let got = parse_request(Service::Iam, "Action=ListUsers", b"Version=2010-05-08").unwrap();
    assert_eq!(got.operation, "ListUsers");
    let err = parse_request(
        Service::Iam,
        "Action=ListUsers",
        b"Action=ListUsers&Version=2010-05-08",
    )
    .unwrap_err();
    assert_eq!(err.code(), "MalformedQueryString");
    assert_eq!(
        err.message(),
        "The parameter Action appears more than once."
    );
}

#[test]
fn coral_services_list_every_violation_in_lower_camel() {
    assert_eq!(
        fails(iam("Action=CreateUser")),
        (
            "ValidationError".into(),
            "1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null".into()
        )
    );
    let (code, message) = fails(iam("Action=CreateUser&UserName=bad+name&Path=ops"));
    assert_eq!(code, "ValidationError");
    assert_eq!(
        message,
        "2 validation errors detected: Value 'ops' at 'path' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F); Value 'bad name' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
    );
    let long = "a".repeat(65);
    assert!(
        fails(iam(&format!("Action=CreateUser&UserName={long}")))
            .1
            .ends_with(&format!(
                "Value '{long}' at 'userName' failed to satisfy constraint: Member must have length less than or equal to 64"
            ))
    );
    assert!(
        fails(iam("Action=UpdateAccessKey&AccessKeyId=AKIAEXAMPLE123456789&Status=Paused"))
            .1
            .contains("Value 'Paused' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]")
    );
    assert!(
        fails(iam("Action=ListUsers&MaxItems=0"))
            .1
            .contains("Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1")
    );
    assert!(
        fails(iam("Action=ListUsers&MaxItems=1001"))
            .1
            .contains("Member must have value less than or equal to 1000")
    );
    // Nested members and list items are named as Coral names them.
    let (_, message) = fails(iam(
        "Action=CreateUser&UserName=a&Tags.member.1.Key=k&Tags.member.1.Value=&Tags.member.2.Value=v",
    ));
    assert_eq!(
        message,
        "1 validation error detected: Value null at 'tags.2.member.key' failed to satisfy constraint: Member must not be null"
    );
    let (_, message) = fails(elb(
        "Action=ConfigureHealthCheck&LoadBalancerName=web&HealthCheck.Interval=1&HealthCheck.Timeout=5&HealthCheck.UnhealthyThreshold=2&HealthCheck.HealthyThreshold=11",
    ));
    assert!(
        message.starts_with("3 validation errors detected: "),
        "{message}"
    );
    assert!(
        message.contains("Value null at 'healthCheck.target'"),
        "{message}"
    );
    assert!(message.contains("Value '1' at 'healthCheck.interval' failed to satisfy constraint: Member must have value greater than or equal to 5"), "{message}");
    assert!(
        message.contains("Value '11' at 'healthCheck.healthyThreshold'"),
        "{message}"
    );
    let (_, message) = fails(elb(
        "Action=CreateLoadBalancer&LoadBalancerName=web&Listeners=&Tags=",
    ));
    assert!(
        message.contains("Value at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1"),
        "{message}"
    );
}

#[test]
fn sensitive_values_are_never_echoed() {
    let (code, message) = fails(iam("Action=CreateLoginProfile&UserName=a&Password="));
    assert_eq!(code, "ValidationError");
    // Empty also misses the pattern's `+`: Coral lists both, neither with the value.
    assert_eq!(
        message,
        "2 validation errors detected: Value at 'password' failed to satisfy constraint: Member must have length greater than or equal to 1; Value at 'password' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+"
    );
    let secret = "hunter2%E2%82%AC";
    let (_, message) = fails(iam(&format!(
        "Action=CreateLoginProfile&UserName=a&Password={secret}"
    )));
    assert!(message.contains("Value at 'password' failed to satisfy constraint: Member must satisfy regular expression pattern"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn rds_and_ec2_answer_the_first_problem_with_their_own_codes() {
    assert_eq!(
        fails(rds(
            "Action=CreateDBInstance&DBInstanceIdentifier=mydb&Engine=mysql"
        )),
        (
            "MissingParameter".into(),
            "The request must contain the parameter DBInstanceClass".into()
        )
    );
    assert_eq!(
        fails(rds(
            "Action=DescribeDBInstances&Filters.Filter.1.Values.Value.1=mysql"
        ))
        .1,
        "The request must contain the parameter Filters.Filter.1.Name"
    );
    assert_eq!(
        fails(ec2("Action=CreateVolume&Size=8")),
        (
            "MissingParameter".into(),
            "The request must contain the parameter AvailabilityZone".into()
        )
    );
    assert_eq!(
        fails(ec2("Action=CreateVolume&AvailabilityZone=us-east-1a&VolumeType=floppy")),
        (
            "InvalidParameterValue".into(),
            "Value (floppy) for parameter volumeType is invalid. Expected: 'standard', 'io1', 'io2', 'gp2', 'sc1', 'st1', 'gp3'.".into()
        )
    );
    assert_eq!(
        fails(ec2(
            "Action=DescribeVolumes&Filter.1.Name=status&Filter.1.Bogus=1"
        )),
        (
            "UnknownParameter".into(),
            "The parameter Filter.1.Bogus is not recognized".into()
        )
    );
    assert_eq!(
        fails(ec2("Action=DeleteVolume&VolumeId=vol-1&Force=true")).1,
        "The parameter Force is not recognized"
    );
    // Query services ignore what they do not know, as AWS's do.
    assert_eq!(
        iam("Action=GetUser&Bogus=1&UserName.x=2").unwrap().input,
        json!({})
    );
}

#[test]
fn values_of_the_wrong_type_name_the_parameter() {
    assert_eq!(
        fails(iam("Action=ListUsers&MaxItems=ten")),
        (
            "InvalidParameterValue".into(),
            "Value (ten) for parameter MaxItems is invalid. Expected an integer from -2147483648 to 2147483647.".into()
        )
    );
    assert_eq!(
        fails(ec2(
            "Action=CreateVolume&AvailabilityZone=a&Size=2147483648"
        ))
        .0,
        "InvalidParameterValue"
    );
    assert_eq!(
        fails(ec2("Action=DescribeVolumes&DryRun=maybe")).1,
        "Value (maybe) for parameter DryRun is invalid. Expected 'true' or 'false'."
    );
    assert_eq!(
        ec2("Action=DescribeVolumes&DryRun=TRUE").unwrap().input,
        json!({"DryRun": true})
    );
    assert_eq!(
        fails(rds(
            "Action=RebootDBInstance&DBInstanceIdentifier=d&ForceFailover=1"
        ))
        .0,
        "InvalidParameterValue"
    );
}

#[test]
fn malformed_forms_and_keys_that_do_not_fit_the_shape() {
    let cases = [
        (
            "Action=ListUsers&Marker=%G1",
            "MalformedQueryString",
            "two hexadecimal digits",
        ),
        (
            "Action=ListUsers&Marker=%FF",
            "MalformedQueryString",
            "UTF-8",
        ),
        (
            "Action=ListUsers&Marker=a&Marker=b",
            "MalformedQueryString",
            "more than once",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member.1.Key=k&Tags.member.1.Value=v&Tags.member.3.Key=k3&Tags.member.3.Value=v",
            "InvalidQueryParameter",
            "The parameter Tags.member.3 is given but Tags.member.2 is not: list items are numbered from 1 without gaps.",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member.2.Key=k&Tags.member.2.Value=v",
            "InvalidQueryParameter",
            "Tags.member.2 is given but Tags.member.1 is not",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member.99999999999999999999.Key=k",
            "InvalidQueryParameter",
            "has index 99999999999999999999: a list holds at most 1000 items.",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member.1001.Key=k",
            "InvalidQueryParameter",
            "has index 1001: a list holds at most 1000 items.",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member.0.Key=k",
            "InvalidQueryParameter",
            "is not a list item",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member.01.Key=k",
            "InvalidQueryParameter",
            "is not a list item",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member.x.Key=k",
            "InvalidQueryParameter",
            "is not a list item",
        ),
        (
            "Action=CreateUser&UserName=a&Tags=t",
            "InvalidQueryParameter",
            "is a list",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member=t",
            "InvalidQueryParameter",
            "needs an index",
        ),
        (
            "Action=ConfigureHealthCheck&LoadBalancerName=w&HealthCheck=HTTP",
            "InvalidQueryParameter",
            "is a structure",
        ),
        (
            "Action=CreateUser&UserName=a&Tags.member.1.Key.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v=1",
            "MalformedQueryString",
            "levels deep",
        ),
        (
            "Action=CreateUser&UserName=a&Tags..1=x",
            "MalformedQueryString",
            "empty part",
        ),
    ];
    for (body, code, text) in cases {
        let service = if body.contains("HealthCheck") {
            Service::Elb
        } else {
            Service::Iam
        };
        let version = service.api_version();
        let err =
            parse_request(service, "", format!("Version={version}&{body}").as_bytes()).unwrap_err();
        assert_eq!(err.code(), code, "{body}: {err}");
        assert!(err.message().contains(text), "{body}: {}", err.message());
        assert_eq!(err.status(service), 400);
    }
    let err = ec2("Action=DescribeVolumes&VolumeId.1=a&VolumeId.3=c").unwrap_err();
    assert_eq!(
        err.message(),
        "The parameter VolumeId.3 is given but VolumeId.2 is not: list items are numbered from 1 without gaps."
    );
    assert_eq!(
        ec2("Action=DescribeVolumes&VolumeId=x").unwrap_err().code(),
        "InvalidQueryParameter"
    );
}

#[test]
fn synthetic_maps_timestamps_and_numbers() {
    let synthetic = [wiretest("query"), wiretest("ec2")];
    let query = wire_for("wiretest-query", &synthetic);
    let parse = |body: &str| {
        query.parse(
            "",
            format!("Action=Everything&Version=2020-01-01&{body}").as_bytes(),
        )
    };
    assert_eq!(
        parse("Ts=2025-01-02T03:04:05Z").unwrap().input,
        json!({"Ts": "2025-01-02T03:04:05Z"})
    );
    assert_eq!(
        parse("Ts=2025-01-02T04:04:05.5%2B01:00").unwrap().input,
        json!({"Ts": "2025-01-02T03:04:05.5Z"})
    );
    assert_eq!(
        parse("Ts=1735787045").unwrap().input,
        json!({"Ts": "2025-01-02T03:04:05Z"})
    );
    assert_eq!(
        parse("Ts=yesterday").unwrap_err().code(),
        "InvalidParameterValue"
    );
    assert_eq!(
        parse("Dbl=NaN").unwrap_err().code(),
        "InvalidParameterValue"
    );
    assert_eq!(
        parse("Long=9223372036854775808").unwrap_err().code(),
        "InvalidParameterValue"
    );
    let err = parse("Map.entry.1.key=a&Map.entry.1.value=1&Map.entry.2.key=a&Map.entry.2.value=2")
        .unwrap_err();
    assert_eq!(err.message(), "The map Map has the key 'a' more than once.");
    assert!(
        parse("Map.entry.1.key=a")
            .unwrap_err()
            .message()
            .contains("has no Map.entry.1.value")
    );
    assert!(
        parse("Map.entry.1.value=a")
            .unwrap_err()
            .message()
            .contains("has no Map.entry.1.key")
    );
    assert!(
        parse("Structs.Entry.1=x")
            .unwrap_err()
            .message()
            .contains("is a structure")
    );
}

#[test]
fn responses_carry_the_namespace_request_id_and_model_names() {
    let body = write_response(
        Service::Iam,
        "GetUser",
        &json!({"User": {"UserName": "a&b", "Path": "/", "UserId": "AIDA1", "Arn": "arn", "CreateDate": 1735787045}}),
        "rid-1",
    )
    .unwrap();
    let doc = roxmltree::Document::parse(&body).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "GetUserResponse");
    assert_eq!(
        root.tag_name().namespace(),
        Some("https://iam.amazonaws.com/doc/2010-05-08/")
    );
    let text = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    assert_eq!(text("UserName").as_deref(), Some("a&b"));
    assert_eq!(text("CreateDate").as_deref(), Some("2025-01-02T03:04:05Z"));
    assert_eq!(text("RequestId").as_deref(), Some("rid-1"));
    assert!(body.contains("<GetUserResult><User>"), "{body}");

    let body = write_response(Service::Iam, "DeleteUser", &Value::Null, "rid-2").unwrap();
    assert_eq!(
        body,
        "<DeleteUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ResponseMetadata><RequestId>rid-2</RequestId></ResponseMetadata></DeleteUserResponse>"
    );
    let body = write_response(Service::Ec2, "DeleteVolume", &json!({}), "rid-3").unwrap();
    assert_eq!(
        body,
        "<DeleteVolumeResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>rid-3</requestId><return>true</return></DeleteVolumeResponse>"
    );
    let body = write_response(
        Service::Ec2,
        "DescribeVolumes",
        &json!({"Volumes": [{"VolumeId": "vol-1", "State": "available", "CreateTime": 1735787045.25, "Attachments": []}]}),
        "rid-4",
    )
    .unwrap();
    assert!(
        body.contains("<volumeSet><item><volumeId>vol-1</volumeId><status>available</status><createTime>2025-01-02T03:04:05.250Z</createTime><attachmentSet/></item></volumeSet>"),
        "{body}"
    );
    let body = write_response(
        Service::Rds,
        "DescribeDBInstances",
        &json!({"DBInstances": [{"DBInstanceIdentifier": "d", "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-1"}]}]}),
        "rid-5",
    )
    .unwrap();
    assert!(
        body.contains("<DBInstances><DBInstance><DBInstanceIdentifier>d</DBInstanceIdentifier><VpcSecurityGroups><VpcSecurityGroupMembership><VpcSecurityGroupId>sg-1</VpcSecurityGroupId></VpcSecurityGroupMembership></VpcSecurityGroups></DBInstance></DBInstances>"),
        "{body}"
    );
}

#[test]
fn outputs_that_do_not_fit_the_shape_are_internal_errors_naming_the_member() {
    let err = write_response(
        Service::Iam,
        "GetUser",
        &json!({"User": {"Secret": "x"}}),
        "r",
    )
    .unwrap_err();
    assert_eq!(err.code(), "InternalFailure");
    assert!(err.to_string().contains("GetUser.User has Secret"), "{err}");
    let err = write_response(Service::Iam, "ListUsers", &json!({"Users": {}}), "r").unwrap_err();
    assert!(err.to_string().contains("should be a list"), "{err}");
    let err = write_response(
        Service::Iam,
        "ListUsers",
        &json!({"IsTruncated": "yes"}),
        "r",
    )
    .unwrap_err();
    assert!(err.to_string().contains("should be a boolean"), "{err}");
    let err = write_response(
        Service::Iam,
        "GetUser",
        &json!({"User": {"CreateDate": "soon"}}),
        "r",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("CreateDate should be an ISO 8601 string"),
        "{err}"
    );
    let err = write_response(Service::Iam, "DeleteUser", &json!({"x": 1}), "r").unwrap_err();
    assert!(err.to_string().contains("has no output"), "{err}");
    let err = write_response(Service::Iam, "CreateRole", &json!({}), "r").unwrap_err();
    assert!(
        err.to_string().contains("does not serve CreateRole"),
        "{err}"
    );
    // respond() renders such a failure as InternalFailure, its detail kept for the log only.
    let r = respond(Service::Iam, "GetUser", &Ok(json!({"User": 1})), "rid");
    assert_eq!(r.status, 500);
    assert!(
        r.body
            .contains("<Code>InternalFailure</Code><Message>The request processing has failed")
    );
    assert!(r.body.contains("<Type>Receiver</Type>"));
    assert!(r.log_detail.unwrap().contains("GetUser.User"));
}

#[test]
fn errors_take_each_protocols_layout_and_the_models_status() {
    let r = respond(
        Service::Iam,
        "CreateUser",
        &Err(AwsError::service(
            "EntityAlreadyExists",
            "User with name a<b> already exists.",
        )),
        "rid",
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.body,
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type><Code>EntityAlreadyExists</Code><Message>User with name a&lt;b&gt; already exists.</Message></Error><RequestId>rid</RequestId></ErrorResponse>"
    );
    let r = write_error(
        Service::Ec2,
        &AwsError::service(
            "InvalidVolume.NotFound",
            "The volume 'vol-9' does not exist.",
        ),
        "rid",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        "<Response><Errors><Error><Code>InvalidVolume.NotFound</Code><Message>The volume &apos;vol-9&apos; does not exist.</Message></Error></Errors><RequestID>rid</RequestID></Response>"
    );
    let r = write_error(
        Service::Rds,
        &AwsError::service("DBInstanceNotFound", "x"),
        "rid",
    );
    assert_eq!(r.status, 404);
    assert!(r.log_detail.is_none());
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("member".to_string()),
        Just("entry".to_string()),
        Just("key".to_string()),
        Just("value".to_string()),
        Just("Tags".to_string()),
        Just("Key".to_string()),
        Just("Filter".to_string()),
        Just("Filters".to_string()),
        Just("Value".to_string()),
        Just("Listeners".to_string()),
        Just("HealthCheck".to_string()),
        Just("TagSpecification".to_string()),
        Just("Tag".to_string()),
        Just("VolumeId".to_string()),
        (0u64..2000).prop_map(|n| n.to_string()),
        "[A-Za-z%+.]{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes as a form body never panic, whatever the service.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        for service in [Service::Iam, Service::Sts, Service::Rds, Service::Elb, Service::Ec2] {
            let _ = parse_request(service, "", &body);
        }
    }

    /// Forms made of plausible keys reach deep into the decoder and validator; they never panic,
    /// and whatever parses can be written back as an error without panicking either.
    #[test]
    fn arbitrary_structured_forms_never_panic(
        action in prop_oneof![
            Just("CreateUser"), Just("CreateLoadBalancer"), Just("DescribeVolumes"),
            Just("CreateVolume"), Just("DescribeDBInstances"), Just("CreateDBInstance"),
            Just("ConfigureHealthCheck"), Just("ListUsers"),
        ],
        pairs in proptest::collection::vec(
            (proptest::collection::vec(segment(), 1..7), "[ -~]{0,8}"), 0..24),
    ) {
        let mut body = format!("Action={action}");
        for (key, value) in &pairs {
            body.push('&');
            body.push_str(&key.join("."));
            body.push('=');
            body.push_str(value);
        }
        for service in [Service::Iam, Service::Rds, Service::Elb, Service::Ec2] {
            let form = format!("{body}&Version={}", service.api_version());
            if let Err(e) = parse_request(service, "", form.as_bytes()) {
                let r = write_error(service, &e, "rid");
                prop_assert!(r.status >= 400);
                prop_assert!(roxmltree::Document::parse(&r.body).is_ok());
            }
        }
    }
}

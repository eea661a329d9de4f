"""The wire: SigV4 authentication errors, unknown and unsupported operations, malformed bodies and
wrong member types — sent as raw signed requests with botocore's own signer."""

import datetime
import json
import time

import pytest

from harness import (
    CONTENT_TYPE,
    FILTERED,
    SECRET_KEY,
    assert_raw_error,
    raw_call,
    stack_params,
)


def test_signed_request_succeeds(endpoint):
    r = raw_call(endpoint, "DescribeStacks", {})
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith(CONTENT_TYPE)
    assert isinstance(r.json()["Stacks"], list)
    # boto3 and awscli report this header as the RequestId of every call and every error.
    assert r.headers.get("x-amzn-RequestId"), r.headers


def test_errors_carry_a_request_id_and_json_content_type(endpoint):
    r = raw_call(endpoint, "DescribeStackSummary", {"StackId": "00000000-0000-4000-8000-000000000000"})
    assert_raw_error(r, "ResourceNotFoundException")
    assert r.headers.get("x-amzn-RequestId"), r.headers
    assert r.headers.get("Content-Type", "").startswith(CONTENT_TYPE)


def test_empty_result_operations_answer_200(endpoint):
    sid = raw_call(endpoint, "CreateStack", stack_params()).json()["StackId"]
    r = raw_call(endpoint, "UpdateStack", {"StackId": sid, "Name": "raw"})
    assert r.status == 200, r
    assert r.body.strip() in (b"", b"{}"), r


def test_other_region_in_scope_is_accepted(endpoint):
    r = raw_call(endpoint, "DescribeStacks", {}, region="eu-west-1")
    assert r.status == 200, r


def test_missing_authentication_token(endpoint):
    r = raw_call(endpoint, "DescribeStacks", {}, sign=False)
    assert_raw_error(r, "MissingAuthenticationTokenException")


def test_unknown_access_key(endpoint):
    r = raw_call(endpoint, "DescribeStacks", {}, access_key="AKIANOTAKNOWNKEY0000")
    assert_raw_error(r, "UnrecognizedClientException")


def test_wrong_secret(endpoint):
    r = raw_call(endpoint, "DescribeStacks", {}, secret_key=SECRET_KEY + "x")
    assert_raw_error(r, "InvalidSignatureException")


def test_tampered_body(endpoint):
    r = raw_call(endpoint, "DescribeStacks", b"{}", send_body=b'{"StackIds":[]}')
    assert_raw_error(r, "InvalidSignatureException")


def test_stale_date_refused_and_skew_within_15_minutes_accepted(endpoint):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    stale = raw_call(endpoint, "DescribeStacks", {}, when=now - datetime.timedelta(minutes=20))
    assert_raw_error(stale, "InvalidSignatureException")
    future = raw_call(endpoint, "DescribeStacks", {}, when=now + datetime.timedelta(minutes=20))
    assert_raw_error(future, "InvalidSignatureException")
    skewed = raw_call(endpoint, "DescribeStacks", {}, when=now - datetime.timedelta(minutes=10))
    assert skewed.status == 200, skewed


def test_wrong_service_in_scope(endpoint):
    r = raw_call(endpoint, "DescribeStacks", {}, service="ec2")
    assert r.status == 400, r
    assert r.code in {"InvalidSignatureException", "IncompleteSignatureException"}, r


@pytest.mark.parametrize(
    "auth",
    [
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 Credential=AKIAOPSWORKSCONFTEST/20240101/us-east-1/opsworks/aws4_request",
        "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=abcd",
    ],
    ids=["no-components", "no-signature", "no-credential"],
)
def test_malformed_authorization(endpoint, auth):
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    r = raw_call(endpoint, "DescribeStacks", {}, sign=False, headers={"Authorization": auth, "X-Amz-Date": amz_date})
    assert_raw_error(r, "IncompleteSignatureException")


def test_unknown_operation(endpoint):
    r = raw_call(endpoint, "DescribeUnicorns", {})
    assert_raw_error(r, "UnknownOperationException")
    r = raw_call(endpoint, None, {}, target="SomethingElse_20990101.DescribeStacks")
    assert_raw_error(r, "UnknownOperationException")


def test_unsupported_operation_names_itself(endpoint):
    # Operations of the model this issue does not implement answer a clear, named error.
    r = raw_call(endpoint, "RegisterEcsCluster", {"StackId": "x", "EcsClusterArn": "arn:aws:ecs:us-east-1:1:cluster/c"})
    assert_raw_error(r, "UnsupportedOperationException", "RegisterEcsCluster")


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b'"a string"', b"\xff\xfe"], ids=["broken", "array", "string", "binary"]
)
def test_malformed_body(endpoint, body):
    r = raw_call(endpoint, "DescribeStacks", body)
    assert_raw_error(r, "SerializationException")


@pytest.mark.parametrize(
    "op,body",
    [
        ("CreateStack", dict(stack_params(), UseCustomCookbooks="yes")),
        ("CreateStack", dict(stack_params(), Name=42)),
        ("DescribeStacks", {"StackIds": "not-a-list"}),
        ("DescribeStacks", {"StackIds": [1, 2]}),
        ("CreateStack", dict(stack_params(), Attributes=["Color"])),
        ("CreateStack", dict(stack_params(), ConfigurationManager="Chef")),
    ],
    ids=[
        "string-for-boolean",
        "number-for-string",
        "string-for-list",
        "numbers-in-list",
        "list-for-map",
        "string-for-structure",
    ],
)
def test_wrong_member_types(endpoint, op, body):
    r = raw_call(endpoint, op, body)
    assert_raw_error(r, "SerializationException")


def test_missing_target_header(endpoint):
    r = raw_call(endpoint, None, {}, target="")
    assert_raw_error(r, "UnknownOperationException")


def test_huge_body_is_refused_not_fatal(endpoint, server):
    body = json.dumps(dict(stack_params(), CustomJson=json.dumps({"x": "y" * (12 * 1024 * 1024)})))
    r = raw_call(endpoint, "CreateStack", body)
    assert 400 <= r.status < 500, r
    assert server.alive()
    assert raw_call(endpoint, "DescribeStacks", {}).status == 200


def test_missing_required_member_raw(endpoint):
    body = stack_params()
    del body["Name"]
    r = raw_call(endpoint, "CreateStack", body)
    assert_raw_error(r, "ValidationException")


def test_bad_enum_raw(endpoint):
    r = raw_call(endpoint, "CreateStack", dict(stack_params(), DefaultRootDeviceType="floppy"))
    assert_raw_error(r, "ValidationException")


def test_unknown_members_are_ignored(endpoint):
    # AWS JSON services ignore members they do not model (newer clients send more).
    r = raw_call(endpoint, "DescribeStacks", {"SomethingNew": True})
    assert r.status == 200, r


def test_secrets_never_reach_the_server_log(endpoint, server, ow):
    secrets = ["log-Cookbook-Pass-77", "log-Ssh-Key-77", "log-Env-Secret-77", "log-Mysql-Pass-77"]
    sid = ow.create_stack(
        **stack_params(
            UseCustomCookbooks=True,
            ConfigurationManager={"Name": "Chef", "Version": "11.10"},
            CustomCookbooksSource={
                "Type": "git",
                "Url": "https://e.com/c.git",
                "Password": secrets[0],
                "SshKey": secrets[1],
            },
        )
    )["StackId"]
    ow.create_app(
        StackId=sid, Name="logapp", Type="other", Environment=[{"Key": "S", "Value": secrets[2], "Secure": True}]
    )
    ow.create_layer(
        StackId=sid, Type="db-master", Name="db", Shortname="db-master", Attributes={"MysqlRootPassword": secrets[3]}
    )
    described = json.dumps(ow.describe_stacks(StackIds=[sid]))
    assert FILTERED in described
    # One more request so the log lines of the ones above are surely written.
    raw_call(endpoint, "DescribeStacks", {})
    log = server.output()
    assert "DescribeStacks" in log or "CreateStack" in log, "the server logs no request lines at all"
    for secret in secrets + [SECRET_KEY]:
        assert secret not in log, f"secret {secret!r} appears in the server's output"


def test_one_log_line_per_request_with_operation_status_latency(endpoint, server):
    marker = "00000000-0000-4000-8000-0000000000aa"
    r = raw_call(endpoint, "DescribeStackSummary", {"StackId": marker})
    assert_raw_error(r, "ResourceNotFoundException")
    # The server's output reaches us through a pipe and a reader thread: give it a moment (bounded).
    lines: list[str] = []
    for _ in range(50):
        lines = [line for line in server.output().splitlines() if "DescribeStackSummary" in line and "400" in line]
        if lines:
            break
        time.sleep(0.1)
    assert lines, "no log line names the operation and its status"
    assert any("latenc" in line.lower() for line in lines), lines

#!/usr/bin/env python3
"""Asserts botocore 1.35.99 reads the XML our writer produced as the fixtures say it must.

    ~/.cache/opsworks-conformance-venv/bin/python crates/opsworks-api/tests/botocore/check_xml.py

For every case of cases.json with an `output` or an `error`, xml/<name>.xml is what our Rust writer
renders (the Rust test `botocore_fixtures` keeps the files equal to its output). Here a real
botocore client for the service makes the call with the case's parameters, and the HTTP exchange
is answered with that XML (a `before-send` handler, so signing, parsing, the IAM policy-document
handler and error-class lookup all run as in production). The result must equal `expected`, the
request ID must come through, and an error must raise the model's exception class with the code,
message and HTTP status. The synthetic wiretest models have no client: their XML goes straight
through botocore's protocol parser. tests/conformance/test_wire_fixtures.py runs the same checks
under pytest. Exit status 1 on any mismatch.
"""

import base64
import datetime
import json
import pathlib
import sys

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.utils import parse_timestamp

HERE = pathlib.Path(__file__).resolve().parent


def cases():
    data = json.loads((HERE / "cases.json").read_text())
    return [c for c in data["cases"] if "output" in c or "error" in c]


class _Raw:
    def __init__(self, body):
        self._body = body

    def stream(self, **_):
        yield self._body


def normalize(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def expected_value(shape, value):
    """`value` (JSON) as botocore returns it, timestamps as epoch seconds, by the output shape."""
    if shape is None or value is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: expected_value(shape.members.get(k), v) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [expected_value(shape.member, v) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: expected_value(shape.value, v) for k, v in value.items()}
    if shape.type_name == "timestamp" and isinstance(value, str):
        return parse_timestamp(value).timestamp()
    return value


def wiretest_model(service):
    return ServiceModel(json.loads((HERE / f"{service}.json").read_text()), service_name="wiretest")


def check(case):
    """Raises AssertionError when botocore does not read the case's XML as expected."""
    name = case["name"]
    body = (HERE / "xml" / f"{name}.xml").read_bytes()
    request_id = f"req-{name}"
    service = case["service"]
    if service.startswith("wiretest"):
        model = wiretest_model(service)
        op = model.operation_model(case["operation"])
        parser = create_parser(model.metadata["protocol"])
        parsed = parser.parse({"body": body, "headers": {}, "status_code": 200}, op.output_shape)
        metadata = parsed.pop("ResponseMetadata", {})
        assert metadata.get("RequestId") == request_id, (name, metadata)
        want = expected_value(op.output_shape, case["expected"])
        assert normalize(parsed) == want, (name, normalize(parsed), want)
        return
    session = botocore.session.get_session()
    client = session.create_client(
        service, region_name="us-east-1", endpoint_url="https://example.invalid",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}))
    error = case.get("error")
    status = error["status"] if error else 200

    def answer(request, **_):
        return AWSResponse(request.url, status,
                           {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, _Raw(body))

    client.meta.events.register("before-send", answer)
    try:
        result = client._make_api_call(case["operation"], case["params"])
    except ClientError as e:
        assert error is not None, (name, "unexpected error", e.response)
        assert type(e).__name__ == error["exception"], (name, type(e).__name__, error["exception"])
        assert e.response["Error"]["Code"] == error["code"], (name, e.response)
        assert e.response["Error"]["Message"] == error["message"], (name, e.response)
        assert e.response["ResponseMetadata"]["RequestId"] == request_id, (name, e.response)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, (name, e.response)
        if service != "ec2":
            fault = "Receiver" if status >= 500 else "Sender"
            assert e.response["Error"].get("Type") == fault, (name, e.response)
        return
    assert error is None, (name, "expected an error", error, result)
    metadata = result.pop("ResponseMetadata")
    assert metadata["RequestId"] == request_id, (name, metadata)
    output_shape = client.meta.service_model.operation_model(case["operation"]).output_shape
    want = expected_value(output_shape, case["expected"])
    assert normalize(result) == want, (name, normalize(result), want)


def main():
    failed = 0
    all_cases = cases()
    for case in all_cases:
        try:
            check(case)
        except Exception as e:  # a parser crash is a failure of the case too
            failed += 1
            print(f"FAIL {case['name']}: {e}")
    print(f"{len(all_cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

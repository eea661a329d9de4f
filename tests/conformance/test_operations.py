"""Every operation of the model answers like an AWS service, and the ones the control-plane issue
lists are implemented; plus concurrent use of the store."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import aws_error, load_model, minimal_input, raw_call

MODEL = load_model()
ALL_OPERATIONS = sorted(MODEL["operations"])

# The operations the control-plane issue and issue 15 ask for; the other 36 may answer UnsupportedOperationException.
LISTED = {
    # stacks
    "CreateStack", "DescribeStacks", "UpdateStack", "DeleteStack", "CloneStack", "DescribeStackSummary",
    "StartStack", "StopStack", "DescribeStackProvisioningParameters",
    # layers
    "CreateLayer", "DescribeLayers", "UpdateLayer", "DeleteLayer", "GetHostnameSuggestion",
    # instances
    "CreateInstance", "DescribeInstances", "UpdateInstance", "DeleteInstance", "StartInstance", "StopInstance",
    "RebootInstance",
    # registered instances (issue 15)
    "RegisterInstance", "AssignInstance", "UnassignInstance", "DeregisterInstance",
    # apps
    "CreateApp", "DescribeApps", "UpdateApp", "DeleteApp",
    # deployments
    "CreateDeployment", "DescribeDeployments", "DescribeCommands",
    # catalog and tags
    "DescribeOperatingSystems", "DescribeAgentVersions", "DescribeServiceErrors", "TagResource", "UntagResource",
    "ListTags",
}  # fmt: skip

CREATES_FROM_NOTHING = {"CreateUserProfile"}

KNOWN_CODES = {
    "ValidationException",
    "ResourceNotFoundException",
    "UnsupportedOperationException",
}


def test_model_has_74_operations():
    assert len(ALL_OPERATIONS) == 74
    assert LISTED <= set(ALL_OPERATIONS)


@pytest.mark.parametrize("op", ALL_OPERATIONS)
def test_every_operation_answers_like_aws(endpoint, op):
    """Minimal valid input: HTTP 200, or HTTP 400 with a JSON AWS error — never a 404, a 5xx or garbage."""
    r = raw_call(endpoint, op, minimal_input(MODEL, op))
    if r.status == 200:
        # The required members are fresh UUIDs that name nothing, so only calls that need no existing
        # resource (listings, and creating a user profile) can succeed.
        assert minimal_input(MODEL, op) == {} or op in CREATES_FROM_NOTHING, f"{op} succeeded on made-up IDs: {r!r}"
        return
    assert r.status == 400, f"{op}: {r!r}"
    assert r.code in KNOWN_CODES, f"{op}: {r!r}"
    assert r.message, f"{op}: error without a message: {r!r}"
    if r.code == "UnsupportedOperationException":
        assert op in r.message, f"{op}: the message does not name the operation: {r.message!r}"


@pytest.mark.parametrize("op", sorted(LISTED))
def test_listed_operation_is_implemented(endpoint, op):
    r = raw_call(endpoint, op, minimal_input(MODEL, op))
    assert r.code != "UnsupportedOperationException", f"{op} is listed by the issue but not implemented: {r!r}"


# ---- concurrency ------------------------------------------------------------------------------------


def test_concurrent_creates_all_land(ow, stack):
    names = [f"par-{i}" for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(
            pool.map(lambda n: ow.create_layer(StackId=stack, Type="custom", Name=n, Shortname=n)["LayerId"], names)
        )
    assert len(set(ids)) == 16
    assert sorted(layer["Name"] for layer in ow.describe_layers(StackId=stack)["Layers"]) == sorted(names)


def test_concurrent_same_name_only_one_wins(ow, stack):
    from botocore.exceptions import ClientError

    def attempt(_):
        try:
            return ow.create_layer(StackId=stack, Type="custom", Name="Contended", Shortname="contended")["LayerId"]
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(8)))
    winners = [r for r in results if r != "ValidationException"]
    assert len(winners) == 1, results
    assert len(ow.describe_layers(StackId=stack)["Layers"]) == 1


def test_concurrent_instances_get_distinct_hostnames(ow, stack, make_layer):
    lid = make_layer(stack, Name="Busy", Shortname="busy")
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(
            pool.map(
                lambda _: ow.create_instance(StackId=stack, LayerIds=[lid], InstanceType="t2.micro")["InstanceId"],
                range(10),
            )
        )
    hostnames = [i["Hostname"] for i in ow.describe_instances(InstanceIds=ids)["Instances"]]
    assert sorted(hostnames) == sorted(f"busy{n}" for n in range(1, 11))


def test_unknown_stack_after_concurrent_delete(ow, make_stack):
    from botocore.exceptions import ClientError

    sid = make_stack()

    def delete(_):
        try:
            ow.delete_stack(StackId=sid)
            return "ok"
        except ClientError as exc:  # the losers must see the AWS error, nothing else
            return exc.response["Error"]["Code"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(delete, range(4)))
    assert results.count("ok") == 1, results
    assert set(results) <= {"ok", "ResourceNotFoundException"}, results
    with aws_error("ResourceNotFoundException"):
        ow.describe_stacks(StackIds=[sid])

"""Deployments and commands: CreateDeployment, DescribeDeployments, DescribeCommands."""

import json

import pytest

from harness import CREATED_AT_RE, UUID_RE, aws_error, missing_id


@pytest.fixture
def fleet(ow, stack, make_layer, make_instance, make_app):
    """A stack with two layers, three started instances and an app."""
    l1, l2 = make_layer(stack), make_layer(stack)
    ids = [make_instance(stack, [l1]), make_instance(stack, [l1]), make_instance(stack, [l2])]
    for iid in ids:
        ow.start_instance(InstanceId=iid)
    return {"stack": stack, "layers": [l1, l2], "instances": ids, "app": make_app(stack)}


def commands_of(ow, did):
    return ow.describe_commands(DeploymentId=did)["Commands"]


def test_deploy_app_to_instances(ow, fleet):
    targets = fleet["instances"][:2]
    did = ow.create_deployment(
        StackId=fleet["stack"],
        AppId=fleet["app"],
        InstanceIds=targets,
        Command={"Name": "deploy", "Args": {"migrate": ["true"]}},
        Comment="release 42",
        CustomJson='{"deploy": {"flag": true}}',
    )["DeploymentId"]
    assert UUID_RE.match(did), did
    deps = ow.describe_deployments(DeploymentIds=[did])["Deployments"]
    assert len(deps) == 1
    d = deps[0]
    assert d["DeploymentId"] == did
    assert d["StackId"] == fleet["stack"]
    assert d["AppId"] == fleet["app"]
    assert d["Command"]["Name"] == "deploy"
    assert d["Command"].get("Args") == {"migrate": ["true"]}
    assert d["Comment"] == "release 42"
    assert json.loads(d["CustomJson"]) == {"deploy": {"flag": True}}
    assert sorted(d["InstanceIds"]) == sorted(targets)
    assert d["Status"] in {"running", "successful", "failed"}
    assert CREATED_AT_RE.match(d["CreatedAt"]), d["CreatedAt"]

    cmds = commands_of(ow, did)
    assert sorted(c["InstanceId"] for c in cmds) == sorted(targets)
    for c in cmds:
        assert UUID_RE.match(c["CommandId"])
        assert c["DeploymentId"] == did
        assert c["Type"] == "deploy"
        assert c["Status"] in {"pending", "successful", "failed", "skipped"}
        assert CREATED_AT_RE.match(c["CreatedAt"]), c["CreatedAt"]


def test_stack_command_to_layers(ow, fleet):
    l1 = fleet["layers"][0]
    did = ow.create_deployment(
        StackId=fleet["stack"], LayerIds=[l1], Command={"Name": "execute_recipes", "Args": {"recipes": ["app::fix"]}}
    )["DeploymentId"]
    cmds = commands_of(ow, did)
    in_l1 = {i["InstanceId"] for i in ow.describe_instances(LayerId=l1)["Instances"]}
    assert {c["InstanceId"] for c in cmds} == in_l1
    assert all(c["Type"] == "execute_recipes" for c in cmds)


def test_describe_deployments_and_commands_by_each_identifier(ow, fleet):
    i0 = fleet["instances"][0]
    d1 = ow.create_deployment(StackId=fleet["stack"], InstanceIds=[i0], Command={"Name": "configure"})["DeploymentId"]
    d2 = ow.create_deployment(StackId=fleet["stack"], AppId=fleet["app"], InstanceIds=[i0], Command={"Name": "deploy"})[
        "DeploymentId"
    ]
    by_stack = {d["DeploymentId"] for d in ow.describe_deployments(StackId=fleet["stack"])["Deployments"]}
    assert {d1, d2} <= by_stack
    by_app = {d["DeploymentId"] for d in ow.describe_deployments(AppId=fleet["app"])["Deployments"]}
    assert d2 in by_app and d1 not in by_app
    by_instance = ow.describe_commands(InstanceId=i0)["Commands"]
    assert {c["DeploymentId"] for c in by_instance} >= {d1, d2}
    cid = by_instance[0]["CommandId"]
    assert [c["CommandId"] for c in ow.describe_commands(CommandIds=[cid])["Commands"]] == [cid]


def test_create_deployment_errors(ow, ow_raw, fleet, make_stack, make_app):
    sid, aid, i0 = fleet["stack"], fleet["app"], fleet["instances"][0]
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.create_deployment(StackId=bad, Command={"Name": "configure"})
    with aws_error("ResourceNotFoundException", bad):
        ow.create_deployment(StackId=sid, AppId=bad, Command={"Name": "deploy"}, InstanceIds=[i0])
    with aws_error("ResourceNotFoundException", bad):
        ow.create_deployment(StackId=sid, Command={"Name": "configure"}, InstanceIds=[bad])
    with aws_error("ResourceNotFoundException", bad):
        ow.create_deployment(StackId=sid, Command={"Name": "configure"}, LayerIds=[bad])
    with aws_error("ValidationException"):  # an app command needs an app
        ow.create_deployment(StackId=sid, Command={"Name": "deploy"}, InstanceIds=[i0])
    with aws_error(("ValidationException", "ResourceNotFoundException")):  # an app of another stack
        ow.create_deployment(StackId=sid, AppId=make_app(make_stack()), Command={"Name": "deploy"}, InstanceIds=[i0])
    other_stack = make_stack()
    foreign = ow.create_instance(
        StackId=other_stack,
        LayerIds=[ow.create_layer(StackId=other_stack, Type="custom", Name="f", Shortname="f")["LayerId"]],
        InstanceType="t2.micro",
    )["InstanceId"]
    with aws_error(("ValidationException", "ResourceNotFoundException")):  # an instance of another stack
        ow.create_deployment(StackId=sid, Command={"Name": "configure"}, InstanceIds=[foreign])
    with aws_error("ValidationException"):
        ow_raw.create_deployment(StackId=sid, Command={"Name": "explode"}, InstanceIds=[i0])
    with aws_error("ValidationException"):
        ow_raw.create_deployment(StackId=sid, InstanceIds=[i0])
    with aws_error("ValidationException"):
        ow_raw.create_deployment(Command={"Name": "configure"})
    with aws_error("ValidationException"):
        ow.create_deployment(StackId=sid, Command={"Name": "configure"}, InstanceIds=[i0], CustomJson="[1, 2]")
    deps_of_app = ow.describe_deployments(AppId=aid)["Deployments"]
    assert deps_of_app == []


def test_describe_deployments_rules(ow, fleet):
    did = ow.create_deployment(StackId=fleet["stack"], InstanceIds=fleet["instances"][:1], Command={"Name": "setup"})[
        "DeploymentId"
    ]
    with aws_error("ValidationException"):
        ow.describe_deployments(StackId=fleet["stack"], DeploymentIds=[did])
    with aws_error("ValidationException"):
        ow.describe_deployments(StackId=fleet["stack"], AppId=fleet["app"])
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find deployment with ID {bad}"):
        ow.describe_deployments(DeploymentIds=[bad])
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.describe_deployments(StackId=bad)
    with aws_error("ResourceNotFoundException", message=f"Unable to find app with ID {bad}"):
        ow.describe_deployments(AppId=bad)


def test_describe_commands_rules(ow, fleet):
    i0 = fleet["instances"][0]
    did = ow.create_deployment(StackId=fleet["stack"], InstanceIds=[i0], Command={"Name": "configure"})["DeploymentId"]
    with aws_error("ValidationException"):
        ow.describe_commands(DeploymentId=did, InstanceId=i0)
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find deployment with ID {bad}"):
        ow.describe_commands(DeploymentId=bad)
    with aws_error("ResourceNotFoundException", message=f"Unable to find instance with ID {bad}"):
        ow.describe_commands(InstanceId=bad)
    with aws_error("ResourceNotFoundException", bad):
        ow.describe_commands(CommandIds=[bad])

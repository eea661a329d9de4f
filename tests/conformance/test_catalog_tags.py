"""Catalog and tags: DescribeOperatingSystems, DescribeAgentVersions, DescribeServiceErrors,
TagResource, UntagResource, ListTags."""

import pytest

from harness import aws_error, missing_id

# ---- catalog --------------------------------------------------------------------------------------


def test_describe_operating_systems(ow):
    oses = ow.describe_operating_systems()["OperatingSystems"]
    assert oses, "the catalog is empty"
    names = {o["Name"] for o in oses}
    assert "Amazon Linux 2" in names
    assert "Ubuntu 18.04 LTS" in names
    for o in oses:
        assert o["Id"] and o["Name"]
        assert o["Type"] in {"Linux", "Windows"}
        assert isinstance(o["ConfigurationManagers"], list) and o["ConfigurationManagers"]
        for cm in o["ConfigurationManagers"]:
            assert cm["Name"] == "Chef" and cm["Version"]
    assert any(o["Type"] == "Windows" for o in oses)


def test_describe_agent_versions_by_stack(ow, stack):
    versions = ow.describe_agent_versions(StackId=stack)["AgentVersions"]
    assert versions
    for v in versions:
        assert v["Version"]
        # A Chef 12 stack gets Chef 12 agents.
        assert v["ConfigurationManager"] == {"Name": "Chef", "Version": "12"}


def test_describe_agent_versions_by_configuration_manager(ow):
    versions = ow.describe_agent_versions(ConfigurationManager={"Name": "Chef", "Version": "11.10"})["AgentVersions"]
    assert versions
    assert all(v["ConfigurationManager"] == {"Name": "Chef", "Version": "11.10"} for v in versions)


def test_pinned_agent_version_from_the_catalog(ow, stack, make_layer, make_instance):
    version = ow.describe_agent_versions(StackId=stack)["AgentVersions"][0]["Version"]
    ow.update_stack(StackId=stack, AgentVersion=version)
    assert ow.describe_stacks(StackIds=[stack])["Stacks"][0]["AgentVersion"] == version
    iid = make_instance(stack, [make_layer(stack)], AgentVersion=version)
    assert ow.describe_instances(InstanceIds=[iid])["Instances"][0]["AgentVersion"] == version
    ow.update_instance(InstanceId=iid, AgentVersion="INHERIT")
    assert ow.describe_instances(InstanceIds=[iid])["Instances"][0]["AgentVersion"] == "INHERIT"


def test_describe_agent_versions_errors(ow):
    # "You must specify a stack ID or a configuration manager."
    with aws_error("ValidationException"):
        ow.describe_agent_versions()
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.describe_agent_versions(StackId=bad)


def test_describe_service_errors(ow, layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid])
    assert ow.describe_service_errors(StackId=stack_id)["ServiceErrors"] == []
    assert ow.describe_service_errors(InstanceId=iid)["ServiceErrors"] == []


def test_describe_service_errors_rules(ow, layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid])
    with aws_error("ValidationException"):
        ow.describe_service_errors(StackId=stack_id, InstanceId=iid)
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.describe_service_errors(StackId=bad)
    with aws_error("ResourceNotFoundException", message=f"Unable to find instance with ID {bad}"):
        ow.describe_service_errors(InstanceId=bad)


# ---- tags -----------------------------------------------------------------------------------------


@pytest.fixture
def stack_arn(ow, stack):
    return ow.describe_stacks(StackIds=[stack])["Stacks"][0]["Arn"]


def test_tag_list_untag_stack(ow, stack_arn):
    assert ow.list_tags(ResourceArn=stack_arn)["Tags"] == {}
    ow.tag_resource(ResourceArn=stack_arn, Tags={"env": "prod", "team": "ops", "cost-center": "42"})
    assert ow.list_tags(ResourceArn=stack_arn)["Tags"] == {"env": "prod", "team": "ops", "cost-center": "42"}
    ow.tag_resource(ResourceArn=stack_arn, Tags={"env": "staging"})  # overwrite one value
    ow.untag_resource(ResourceArn=stack_arn, TagKeys=["team", "not-there"])
    assert ow.list_tags(ResourceArn=stack_arn)["Tags"] == {"env": "staging", "cost-center": "42"}


def test_tag_layer(ow, layer):
    _, lid = layer
    arn = ow.describe_layers(LayerIds=[lid])["Layers"][0]["Arn"]
    ow.tag_resource(ResourceArn=arn, Tags={"role": "web"})
    assert ow.list_tags(ResourceArn=arn)["Tags"].get("role") == "web"
    ow.untag_resource(ResourceArn=arn, TagKeys=["role"])
    assert "role" not in ow.list_tags(ResourceArn=arn)["Tags"]
    ow.delete_layer(LayerId=lid)
    with aws_error("ResourceNotFoundException"):
        ow.list_tags(ResourceArn=arn)


def test_tags_are_trimmed_and_allow_the_documented_characters(ow, stack_arn):
    ow.tag_resource(ResourceArn=stack_arn, Tags={"  padded  ": "  value  ", "a+b-c=d.e_f:g/h": "ünïcödé 1+1=2"})
    tags = ow.list_tags(ResourceArn=stack_arn)["Tags"]
    assert tags == {"padded": "value", "a+b-c=d.e_f:g/h": "ünïcödé 1+1=2"}


def test_tag_limits(ow, stack_arn):
    ow.tag_resource(ResourceArn=stack_arn, Tags={f"k{i}": "v" for i in range(40)})
    assert len(ow.list_tags(ResourceArn=stack_arn)["Tags"]) == 40
    with aws_error("ValidationException"):
        ow.tag_resource(ResourceArn=stack_arn, Tags={"one-too-many": "v"})
    # Re-tagging existing keys stays within the limit.
    ow.tag_resource(ResourceArn=stack_arn, Tags={"k0": "changed"})
    assert ow.list_tags(ResourceArn=stack_arn)["Tags"]["k0"] == "changed"


def test_tag_limit_in_one_call(ow, stack_arn):
    with aws_error("ValidationException"):
        ow.tag_resource(ResourceArn=stack_arn, Tags={f"k{i}": "v" for i in range(41)})
    assert ow.list_tags(ResourceArn=stack_arn)["Tags"] == {}


@pytest.mark.parametrize(
    "tags",
    [
        {"k" * 128: "v"},
        {"key": "v" * 256},
        {"": "empty key"},
        {"bad*key": "v"},
        {"key": "bad#value"},
        {"aws:reserved": "v"},
        {"opsworks:reserved": "v"},
    ],
    ids=["key-128", "value-256", "empty-key", "key-charset", "value-charset", "aws-prefix", "opsworks-prefix"],
)
def test_tag_rules(ow, stack_arn, tags):
    with aws_error("ValidationException"):
        ow.tag_resource(ResourceArn=stack_arn, Tags=tags)
    assert ow.list_tags(ResourceArn=stack_arn)["Tags"] == {}


def test_tag_edge_lengths_are_fine(ow, stack_arn):
    ow.tag_resource(ResourceArn=stack_arn, Tags={"k" * 127: "v" * 255})
    assert ow.list_tags(ResourceArn=stack_arn)["Tags"] == {"k" * 127: "v" * 255}


def test_list_tags_pagination_members_refused(ow, stack_arn):
    # The model says of MaxResults/NextToken: "Do not use. A validation exception occurs".
    with aws_error("ValidationException"):
        ow.list_tags(ResourceArn=stack_arn, MaxResults=10)
    with aws_error("ValidationException"):
        ow.list_tags(ResourceArn=stack_arn, NextToken="abc")


def test_tags_unknown_resource(ow, stack_arn):
    bad_arn = stack_arn.replace(stack_arn.split("/")[1], missing_id())
    with aws_error("ResourceNotFoundException"):
        ow.tag_resource(ResourceArn=bad_arn, Tags={"a": "b"})
    with aws_error("ResourceNotFoundException"):
        ow.list_tags(ResourceArn=bad_arn)
    with aws_error("ResourceNotFoundException"):
        ow.untag_resource(ResourceArn=bad_arn, TagKeys=["a"])


def test_only_stacks_and_layers_take_tags(ow, layer, make_instance):
    stack_id, lid = layer
    iid = make_instance(stack_id, [lid])
    arn = ow.describe_instances(InstanceIds=[iid])["Instances"][0]["Arn"]
    with aws_error(("ValidationException", "ResourceNotFoundException")):
        ow.tag_resource(ResourceArn=arn, Tags={"a": "b"})
    with aws_error(("ValidationException", "ResourceNotFoundException")):
        ow.tag_resource(ResourceArn="not-an-arn", Tags={"a": "b"})


def test_tags_required_members(ow_raw, stack_arn):
    with aws_error("ValidationException"):
        ow_raw.tag_resource(ResourceArn=stack_arn)
    with aws_error("ValidationException"):
        ow_raw.tag_resource(Tags={"a": "b"})
    with aws_error("ValidationException"):
        ow_raw.untag_resource(ResourceArn=stack_arn)
    with aws_error("ValidationException"):
        ow_raw.list_tags()


def test_tags_go_with_a_deleted_stack(ow, make_stack):
    sid = make_stack()
    arn = ow.describe_stacks(StackIds=[sid])["Stacks"][0]["Arn"]
    ow.tag_resource(ResourceArn=arn, Tags={"a": "b"})
    ow.delete_stack(StackId=sid)
    with aws_error("ResourceNotFoundException"):
        ow.list_tags(ResourceArn=arn)

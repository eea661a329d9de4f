"""Stacks: CreateStack, DescribeStacks, UpdateStack, DeleteStack, CloneStack, DescribeStackSummary,
StartStack, StopStack, DescribeStackProvisioningParameters — as boto3 sees them."""

import json
import re
import urllib.parse

import pytest

from harness import (
    CREATED_AT_RE,
    FILTERED,
    INSTANCE_PROFILE,
    REGION,
    SERVICE_ROLE,
    UUID_RE,
    aws_error,
    missing_id,
    stack_params,
    status_counter_key,
    unique,
)

START_PATH = {"requested", "pending", "booting", "running_setup", "online"}
STOP_PATH = {"stopping", "shutting_down", "terminating", "terminated", "stopped"}


def describe_stack(ow, sid):
    stacks = ow.describe_stacks(StackIds=[sid])["Stacks"]
    assert len(stacks) == 1
    return stacks[0]


# ---- CreateStack / DescribeStacks -----------------------------------------------------------------


def test_create_stack_returns_uuid_and_describe_shows_it(ow):
    params = stack_params()
    sid = ow.create_stack(**params)["StackId"]
    assert UUID_RE.match(sid), sid
    s = describe_stack(ow, sid)
    assert s["StackId"] == sid
    assert s["Name"] == params["Name"]
    assert s["Region"] == REGION
    assert s["ServiceRoleArn"] == SERVICE_ROLE
    assert s["DefaultInstanceProfileArn"] == INSTANCE_PROFILE
    assert re.match(rf"^arn:aws:opsworks:{REGION}:\d{{12}}:stack/{sid}/$", s["Arn"]), s["Arn"]
    assert CREATED_AT_RE.match(s["CreatedAt"]), s["CreatedAt"]


def test_create_stack_defaults(ow, stack):
    s = describe_stack(ow, stack)
    assert s["HostnameTheme"] == "Layer_Dependent"
    assert s["ConfigurationManager"] == {"Name": "Chef", "Version": "12"}
    assert s["UseOpsworksSecurityGroups"] is True
    assert s["UseCustomCookbooks"] is False
    assert s["AgentVersion"] == "LATEST"
    assert s["DefaultOs"].startswith("Amazon Linux"), s["DefaultOs"]


def test_create_stack_keeps_every_given_field(ow):
    params = stack_params(
        Attributes={"Color": "rgb(45, 114, 184)"},
        DefaultOs="Ubuntu 14.04 LTS",
        HostnameTheme="Wild_Cats",
        DefaultAvailabilityZone="us-east-1a",
        CustomJson='{"app": {"debug": true}}',
        ConfigurationManager={"Name": "Chef", "Version": "11.10"},
        ChefConfiguration={"ManageBerkshelf": True, "BerkshelfVersion": "3.2.0"},
        UseCustomCookbooks=True,
        UseOpsworksSecurityGroups=False,
        CustomCookbooksSource={"Type": "git", "Url": "https://example.com/cookbooks.git", "Revision": "main"},
        DefaultSshKeyName="ops-key",
        DefaultRootDeviceType="ebs",
    )
    sid = ow.create_stack(**params)["StackId"]
    s = describe_stack(ow, sid)
    assert s["Attributes"]["Color"] == "rgb(45, 114, 184)"
    assert s["DefaultOs"] == "Ubuntu 14.04 LTS"
    assert s["HostnameTheme"] == "Wild_Cats"
    assert s["DefaultAvailabilityZone"] == "us-east-1a"
    assert json.loads(s["CustomJson"]) == {"app": {"debug": True}}
    assert s["ConfigurationManager"] == {"Name": "Chef", "Version": "11.10"}
    assert s["ChefConfiguration"] == {"ManageBerkshelf": True, "BerkshelfVersion": "3.2.0"}
    assert s["UseCustomCookbooks"] is True
    assert s["UseOpsworksSecurityGroups"] is False
    src = s["CustomCookbooksSource"]
    assert src["Type"] == "git" and src["Url"] == "https://example.com/cookbooks.git" and src["Revision"] == "main"
    assert s["DefaultSshKeyName"] == "ops-key"
    assert s["DefaultRootDeviceType"] == "ebs"


def test_describe_stacks_without_ids_lists_all(ow, make_stack):
    a, b = make_stack(), make_stack()
    ids = {s["StackId"] for s in ow.describe_stacks()["Stacks"]}
    assert {a, b} <= ids


def test_describe_stacks_several_ids(ow, make_stack):
    a, b = make_stack(), make_stack()
    got = {s["StackId"] for s in ow.describe_stacks(StackIds=[a, b])["Stacks"]}
    assert got == {a, b}


def test_describe_stacks_unknown_id(ow, stack):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.describe_stacks(StackIds=[bad])
    with aws_error("ResourceNotFoundException", bad):
        ow.describe_stacks(StackIds=[stack, bad])


def test_describe_stacks_empty_id_list(ow):
    # AWS answers an empty StackIds list with this message (github.com/aws/aws-sdk-java/issues/77).
    with aws_error("ValidationException", message="Please provide no arguments or, one or more stack IDs"):
        ow.describe_stacks(StackIds=[])


@pytest.mark.parametrize("missing", ["Name", "Region", "ServiceRoleArn", "DefaultInstanceProfileArn"])
def test_create_stack_required_members(ow_raw, missing):
    params = stack_params()
    del params[missing]
    with aws_error("ValidationException", names=(missing,)):
        ow_raw.create_stack(**params)


def test_create_stack_bad_enum(ow_raw):
    with aws_error("ValidationException", names=("DefaultRootDeviceType", "floppy")):
        ow_raw.create_stack(**stack_params(DefaultRootDeviceType="floppy"))


def test_stack_arn_carries_the_stack_region(ow):
    # A stack of another region served by this endpoint (AWS's "classic" stacks do the same).
    sid = ow.create_stack(**stack_params(Region="us-west-2"))["StackId"]
    s = describe_stack(ow, sid)
    assert s["Region"] == "us-west-2"
    assert s["Arn"].startswith("arn:aws:opsworks:us-west-2:"), s["Arn"]


def test_create_stack_unknown_region(ow):
    with aws_error("ValidationException", names=("mars-1",)):
        ow.create_stack(**stack_params(Region="mars-1"))


def test_ids_that_are_not_uuids_are_simply_not_found(ow):
    with aws_error("ResourceNotFoundException", message="Unable to find stack with ID nothere"):
        ow.describe_stacks(StackIds=["nothere"])
    with aws_error("ResourceNotFoundException", "nothere"):
        ow.describe_layers(LayerIds=["nothere"])
    with aws_error("ResourceNotFoundException", "nothere"):
        ow.describe_instances(InstanceIds=["nothere"])


def test_create_stack_bad_attribute_key(ow_raw):
    with aws_error("ValidationException"):
        ow_raw.create_stack(**stack_params(Attributes={"Colour": "red"}))


def test_create_stack_bad_hostname_theme(ow):
    with aws_error("ValidationException"):
        ow.create_stack(**stack_params(HostnameTheme="Dinosaurs"))


def test_create_stack_name_too_long(ow):
    with aws_error("ValidationException"):
        ow.create_stack(**stack_params(Name="s" * 65))


def test_create_stack_name_of_64_is_fine(ow):
    sid = ow.create_stack(**stack_params(Name="s" * 64))["StackId"]
    assert describe_stack(ow, sid)["Name"] == "s" * 64


@pytest.mark.parametrize("bad", ["not json", "[1, 2, 3]", '"a string"', "42", '{"unterminated": '])
def test_create_stack_custom_json_must_be_an_object(ow, bad):
    with aws_error("ValidationException"):
        ow.create_stack(**stack_params(CustomJson=bad))


def test_create_stack_custom_json_size_limit(ow):
    big = json.dumps({"blob": "x" * (200 * 1024)})
    with aws_error("ValidationException"):
        ow.create_stack(**stack_params(CustomJson=big))
    ok = json.dumps({"blob": "x" * (10 * 1024)})
    sid = ow.create_stack(**stack_params(CustomJson=ok))["StackId"]
    assert json.loads(describe_stack(ow, sid)["CustomJson"]) == json.loads(ok)


def test_custom_cookbooks_secrets_are_filtered(ow):
    src = {
        "Type": "git",
        "Url": "git@example.com:ops/cookbooks.git",
        "Username": "deployer",
        "Password": "cookbook-Password-123",
        "SshKey": "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----",
        "Revision": "v1",
    }
    sid = ow.create_stack(**stack_params(UseCustomCookbooks=True, CustomCookbooksSource=src))["StackId"]
    got = describe_stack(ow, sid)["CustomCookbooksSource"]
    assert got["Password"] == FILTERED
    assert got["SshKey"] == FILTERED
    assert got["Username"] == "deployer"
    assert got["Url"] == src["Url"]
    # Every listing filters too, not only the by-ID one.
    listed = next(s for s in ow.describe_stacks()["Stacks"] if s["StackId"] == sid)
    assert listed["CustomCookbooksSource"]["Password"] == FILTERED


# ---- UpdateStack ----------------------------------------------------------------------------------


def test_update_stack_changes_fields(ow, stack):
    ow.update_stack(
        StackId=stack,
        Name="renamed-stack",
        Attributes={"Color": "rgb(135, 61, 98)"},
        HostnameTheme="Planets_and_Moons",
        CustomJson='{"tier": "web"}',
        DefaultSshKeyName="new-key",
        UseCustomCookbooks=True,
        CustomCookbooksSource={"Type": "s3", "Url": "https://s3.amazonaws.com/b/c.tgz", "Password": "s3-secret-key"},
        AgentVersion="LATEST",
    )
    s = describe_stack(ow, stack)
    assert s["Name"] == "renamed-stack"
    assert s["Attributes"]["Color"] == "rgb(135, 61, 98)"
    assert s["HostnameTheme"] == "Planets_and_Moons"
    assert json.loads(s["CustomJson"]) == {"tier": "web"}
    assert s["DefaultSshKeyName"] == "new-key"
    assert s["UseCustomCookbooks"] is True
    assert s["CustomCookbooksSource"]["Type"] == "s3"
    assert s["CustomCookbooksSource"]["Password"] == FILTERED


def test_update_stack_leaves_unnamed_fields_alone(ow, make_stack):
    sid = make_stack(DefaultSshKeyName="keep-me", CustomJson='{"a": 1}')
    ow.update_stack(StackId=sid, Name="only-the-name")
    s = describe_stack(ow, sid)
    assert s["Name"] == "only-the-name"
    assert s["DefaultSshKeyName"] == "keep-me"
    assert json.loads(s["CustomJson"]) == {"a": 1}


def test_update_stack_unknown(ow):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.update_stack(StackId=bad, Name="x")


def test_update_stack_validation(ow, ow_raw, stack):
    with aws_error("ValidationException"):
        ow.update_stack(StackId=stack, CustomJson="[]")
    with aws_error("ValidationException"):
        ow.update_stack(StackId=stack, HostnameTheme="Dinosaurs")
    with aws_error("ValidationException"):
        ow.update_stack(StackId=stack, Name="n" * 65)
    with aws_error("ValidationException"):
        ow_raw.update_stack(StackId=stack, DefaultRootDeviceType="floppy")
    with aws_error("ValidationException"):
        ow_raw.update_stack(Name="no id")


# ---- DeleteStack ----------------------------------------------------------------------------------


def test_delete_empty_stack(ow, stack):
    ow.delete_stack(StackId=stack)
    with aws_error("ResourceNotFoundException", stack):
        ow.describe_stacks(StackIds=[stack])
    assert stack not in {s["StackId"] for s in ow.describe_stacks()["Stacks"]}


def test_delete_stack_unknown(ow):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.delete_stack(StackId=bad)


def test_delete_stack_refused_while_it_has_layers_instances_or_apps(ow, stack, make_layer, make_instance, make_app):
    lid = make_layer(stack)
    iid = make_instance(stack, [lid])
    aid = make_app(stack)
    with aws_error("ValidationException"):
        ow.delete_stack(StackId=stack)
    ow.delete_instance(InstanceId=iid)
    with aws_error("ValidationException"):  # still a layer and an app
        ow.delete_stack(StackId=stack)
    ow.delete_layer(LayerId=lid)
    with aws_error("ValidationException"):  # still an app
        ow.delete_stack(StackId=stack)
    ow.delete_app(AppId=aid)
    ow.delete_stack(StackId=stack)
    with aws_error("ResourceNotFoundException"):
        ow.describe_stacks(StackIds=[stack])


def test_delete_stack_refused_with_only_a_layer(ow, stack, make_layer):
    make_layer(stack)
    with aws_error("ValidationException"):
        ow.delete_stack(StackId=stack)
    assert describe_stack(ow, stack)["StackId"] == stack


# ---- CloneStack -----------------------------------------------------------------------------------


def test_clone_stack_copies_layers_and_chosen_apps_never_instances(ow, make_stack, make_layer, make_instance, make_app):
    src = make_stack(CustomJson='{"from": "source"}', HostnameTheme="Fruits", DefaultSshKeyName="src-key")
    l1 = make_layer(src, Name="Web", Shortname="web-tier", Packages=["nginx"], CustomJson='{"layer": 1}')
    l2 = make_layer(src, Name="Workers", Shortname="workers")
    make_instance(src, [l1])
    make_instance(src, [l2])
    a1 = make_app(src, Name="shop")
    make_app(src, Name="blog")

    clone = ow.clone_stack(SourceStackId=src, ServiceRoleArn=SERVICE_ROLE, Name="the-clone", CloneAppIds=[a1])[
        "StackId"
    ]
    assert UUID_RE.match(clone) and clone != src
    c = describe_stack(ow, clone)
    assert c["Name"] == "the-clone"
    assert json.loads(c["CustomJson"]) == {"from": "source"}
    assert c["HostnameTheme"] == "Fruits"
    assert c["DefaultSshKeyName"] == "src-key"

    layers = ow.describe_layers(StackId=clone)["Layers"]
    by_short = {layer["Shortname"]: layer for layer in layers}
    assert set(by_short) == {"web-tier", "workers"}
    assert by_short["web-tier"]["Name"] == "Web"
    assert by_short["web-tier"]["Packages"] == ["nginx"]
    assert json.loads(by_short["web-tier"]["CustomJson"]) == {"layer": 1}
    assert {layer["LayerId"] for layer in layers}.isdisjoint({l1, l2})
    assert all(layer["StackId"] == clone for layer in layers)

    apps = ow.describe_apps(StackId=clone)["Apps"]
    assert [a["Name"] for a in apps] == ["shop"]
    assert apps[0]["AppId"] != a1

    assert ow.describe_instances(StackId=clone)["Instances"] == []
    # The source is untouched.
    assert len(ow.describe_instances(StackId=src)["Instances"]) == 2
    assert len(ow.describe_apps(StackId=src)["Apps"]) == 2


def test_clone_stack_without_app_ids_copies_no_apps(ow, make_stack, make_layer, make_app):
    src = make_stack()
    make_layer(src)
    make_app(src)
    clone = ow.clone_stack(SourceStackId=src, ServiceRoleArn=SERVICE_ROLE)["StackId"]
    assert ow.describe_apps(StackId=clone)["Apps"] == []
    assert len(ow.describe_layers(StackId=clone)["Layers"]) == 1


def test_clone_stack_keeps_secrets_filtered(ow, make_stack):
    src = make_stack(
        UseCustomCookbooks=True,
        CustomCookbooksSource={"Type": "git", "Url": "https://example.com/c.git", "Password": "clone-pass-1"},
    )
    clone = ow.clone_stack(SourceStackId=src, ServiceRoleArn=SERVICE_ROLE)["StackId"]
    assert describe_stack(ow, clone)["CustomCookbooksSource"]["Password"] == FILTERED


def test_clone_stack_errors(ow, ow_raw, stack):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", bad):
        ow.clone_stack(SourceStackId=bad, ServiceRoleArn=SERVICE_ROLE)
    with aws_error("ValidationException"):
        ow_raw.clone_stack(SourceStackId=stack)
    with aws_error("ValidationException"):
        ow.clone_stack(SourceStackId=stack, ServiceRoleArn=SERVICE_ROLE, CustomJson="[]")


def test_clone_stack_app_ids_of_another_stack(ow, make_stack, make_app):
    src, other = make_stack(), make_stack()
    foreign_app = make_app(other)
    with aws_error(("ValidationException", "ResourceNotFoundException")):
        ow.clone_stack(SourceStackId=src, ServiceRoleArn=SERVICE_ROLE, CloneAppIds=[foreign_app])


def test_clone_stack_cannot_move_chef11_to_chef12(ow, make_stack):
    # UG workingstacks-cloning / workingcookbook-chef11-migrate: no Chef 11 -> 12 by cloning.
    src = make_stack(ConfigurationManager={"Name": "Chef", "Version": "11.10"})
    with aws_error("ValidationException"):
        ow.clone_stack(
            SourceStackId=src, ServiceRoleArn=SERVICE_ROLE, ConfigurationManager={"Name": "Chef", "Version": "12"}
        )


# ---- DescribeStackSummary ---------------------------------------------------------------------------


def test_stack_summary_counts(ow, stack, make_layer, make_instance, make_app):
    s0 = ow.describe_stack_summary(StackId=stack)["StackSummary"]
    assert s0["StackId"] == stack
    assert s0["Arn"] == describe_stack(ow, stack)["Arn"]
    assert s0["Name"] == describe_stack(ow, stack)["Name"]
    assert s0.get("LayersCount", 0) == 0
    assert s0.get("AppsCount", 0) == 0
    assert sum(v or 0 for v in (s0.get("InstancesCount") or {}).values()) == 0

    l1, l2 = make_layer(stack), make_layer(stack)
    i1 = make_instance(stack, [l1])
    make_instance(stack, [l1])
    make_instance(stack, [l2])
    make_app(stack)
    s1 = ow.describe_stack_summary(StackId=stack)["StackSummary"]
    assert s1["LayersCount"] == 2
    assert s1["AppsCount"] == 1
    assert (s1.get("InstancesCount") or {}).get("Stopped", 0) == 3

    ow.start_instance(InstanceId=i1)
    s2 = ow.describe_stack_summary(StackId=stack)["StackSummary"]
    counts = {k: v for k, v in (s2.get("InstancesCount") or {}).items() if v}
    expected = {}
    for inst in ow.describe_instances(StackId=stack)["Instances"]:
        key = status_counter_key(inst["Status"])
        expected[key] = expected.get(key, 0) + 1
    assert counts == expected
    assert counts.get("Stopped", 0) == 2


def test_stack_summary_errors(ow, ow_raw):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.describe_stack_summary(StackId=bad)
    with aws_error("ValidationException"):
        ow_raw.describe_stack_summary()


# ---- StartStack / StopStack -------------------------------------------------------------------------


def test_start_and_stop_stack(ow, stack, make_layer, make_instance):
    lid = make_layer(stack)
    ids = [make_instance(stack, [lid]) for _ in range(2)]
    ow.start_stack(StackId=stack)
    statuses = {i["InstanceId"]: i["Status"] for i in ow.describe_instances(StackId=stack)["Instances"]}
    assert set(statuses) == set(ids)
    assert all(s in START_PATH for s in statuses.values()), statuses
    ow.stop_stack(StackId=stack)
    statuses = {i["InstanceId"]: i["Status"] for i in ow.describe_instances(StackId=stack)["Instances"]}
    assert all(s in STOP_PATH for s in statuses.values()), statuses


def test_start_stop_stack_unknown(ow):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", bad):
        ow.start_stack(StackId=bad)
    with aws_error("ResourceNotFoundException", bad):
        ow.stop_stack(StackId=bad)


# ---- DescribeStackProvisioningParameters --------------------------------------------------------------


def test_stack_provisioning_parameters(ow, stack):
    r = ow.describe_stack_provisioning_parameters(StackId=stack)
    # `aws opsworks register` downloads the installer from this URL on the machine it registers.
    url = urllib.parse.urlparse(r["AgentInstallerUrl"])
    assert url.scheme in ("http", "https") and url.netloc, r["AgentInstallerUrl"]
    assert isinstance(r["Parameters"], dict) and r["Parameters"]
    assert all(isinstance(v, str) for v in r["Parameters"].values())


def test_stack_provisioning_parameters_errors(ow, ow_raw):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", bad):
        ow.describe_stack_provisioning_parameters(StackId=bad)
    with aws_error("ValidationException"):
        ow_raw.describe_stack_provisioning_parameters()


def test_stack_names_need_not_be_unique(ow):
    name = unique("same")
    a = ow.create_stack(**stack_params(Name=name))["StackId"]
    b = ow.create_stack(**stack_params(Name=name))["StackId"]
    assert a != b


# ---- operating systems and Chef versions (the model's documented pairs) -----------------------------

WINDOWS = "Microsoft Windows Server 2012 R2 Base"


def test_os_and_chef_version_must_match(ow):
    # "12, 11.10, or 11.4 for Linux stacks, and 12.2 for Windows stacks."
    sid = ow.create_stack(**stack_params(DefaultOs=WINDOWS, ConfigurationManager={"Name": "Chef", "Version": "12.2"}))[
        "StackId"
    ]
    assert describe_stack(ow, sid)["ConfigurationManager"]["Version"] == "12.2"
    with aws_error("ValidationException"):
        ow.create_stack(**stack_params(DefaultOs=WINDOWS, ConfigurationManager={"Name": "Chef", "Version": "12"}))
    with aws_error("ValidationException"):
        ow.create_stack(
            **stack_params(DefaultOs="Amazon Linux 2", ConfigurationManager={"Name": "Chef", "Version": "12.2"})
        )


@pytest.mark.parametrize(
    "params",
    [
        {"DefaultOs": "Solaris 10"},
        {"ConfigurationManager": {"Name": "Chef", "Version": "13"}},
        {"ConfigurationManager": {"Name": "Puppet", "Version": "12"}},
    ],
    ids=["unknown-os", "unknown-chef-version", "not-chef"],
)
def test_create_stack_unknown_os_or_configuration_manager(ow, params):
    with aws_error("ValidationException"):
        ow.create_stack(**stack_params(**params))


def test_vpc_needs_a_default_subnet(ow):
    # The model: DefaultSubnetId "is required if you specify a value for the VpcId parameter".
    with aws_error("ValidationException", names=("DefaultSubnetId",)):
        ow.create_stack(**stack_params(VpcId="vpc-0a1b2c3d"))
    sid = ow.create_stack(**stack_params(VpcId="vpc-0a1b2c3d", DefaultSubnetId="subnet-0a1b2c3d"))["StackId"]
    s = describe_stack(ow, sid)
    assert (s["VpcId"], s["DefaultSubnetId"]) == ("vpc-0a1b2c3d", "subnet-0a1b2c3d")


def test_unicode_round_trips(ow):
    name = "Bücher — 書籍 ✓"
    sid = ow.create_stack(**stack_params(Name=name, CustomJson='{"grüße": "ß"}'))["StackId"]
    s = describe_stack(ow, sid)
    assert s["Name"] == name
    assert json.loads(s["CustomJson"]) == {"grüße": "ß"}

"""Layers: CreateLayer, DescribeLayers, UpdateLayer, DeleteLayer, GetHostnameSuggestion."""

import json
import re

import pytest

from harness import CREATED_AT_RE, FILTERED, REGION, UUID_RE, aws_error, missing_id, unique

# Every LayerType of the model with its conventional short name.
LAYER_TYPES = {
    "aws-flow-ruby": "aws-flow-ruby",
    "ecs-cluster": "ecs-cluster",
    "java-app": "java-app",
    "lb": "lb",
    "web": "web",
    "php-app": "php-app",
    "rails-app": "rails-app",
    "nodejs-app": "nodejs-app",
    "memcached": "memcached",
    "db-master": "db-master",
    "monitoring-master": "monitoring-master",
    "custom": "custom",
}

THEMES = [
    "Baked_Goods",
    "Clouds",
    "Europe_Cities",
    "Fruits",
    "Greek_Deities_and_Titans",
    "Legendary_creatures_from_Japan",
    "Planets_and_Moons",
    "Roman_Deities",
    "Scottish_Islands",
    "US_Cities",
    "Wild_Cats",
]
HOSTNAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def chef11_stack(make_stack):
    # Built-in app/service layers belong to Chef 11 stacks.
    return make_stack(ConfigurationManager={"Name": "Chef", "Version": "11.10"})


def describe_layer(ow, lid):
    layers = ow.describe_layers(LayerIds=[lid])["Layers"]
    assert len(layers) == 1
    return layers[0]


def test_create_layer_and_describe(ow, stack):
    lid = ow.create_layer(StackId=stack, Type="custom", Name="My Layer", Shortname="my-layer")["LayerId"]
    assert UUID_RE.match(lid), lid
    layer = describe_layer(ow, lid)
    assert layer["LayerId"] == lid
    assert layer["StackId"] == stack
    assert layer["Type"] == "custom"
    assert layer["Name"] == "My Layer"
    assert layer["Shortname"] == "my-layer"
    assert re.match(rf"^arn:aws:opsworks:{REGION}:\d{{12}}:layer/{lid}$", layer["Arn"]), layer["Arn"]
    assert CREATED_AT_RE.match(layer["CreatedAt"]), layer["CreatedAt"]
    by_stack = ow.describe_layers(StackId=stack)["Layers"]
    assert [x["LayerId"] for x in by_stack] == [lid]


def test_create_layer_keeps_every_given_field(ow, stack):
    lid = ow.create_layer(
        StackId=stack,
        Type="custom",
        Name="Full",
        Shortname="full",
        CustomInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/custom",
        CustomJson='{"x": {"y": 1}}',
        CustomSecurityGroupIds=["sg-12345678"],
        Packages=["git", "htop"],
        VolumeConfigurations=[{"MountPoint": "/data", "NumberOfDisks": 1, "Size": 20, "VolumeType": "gp2"}],
        EnableAutoHealing=False,
        AutoAssignElasticIps=True,
        AutoAssignPublicIps=True,
        CustomRecipes={"Setup": ["app::setup"], "Deploy": ["app::deploy"]},
        InstallUpdatesOnBoot=False,
        UseEbsOptimizedInstances=True,
        LifecycleEventConfiguration={"Shutdown": {"ExecutionTimeout": 300, "DelayUntilElbConnectionsDrained": True}},
    )["LayerId"]
    layer = describe_layer(ow, lid)
    assert layer["CustomInstanceProfileArn"] == "arn:aws:iam::123456789012:instance-profile/custom"
    assert json.loads(layer["CustomJson"]) == {"x": {"y": 1}}
    assert layer["CustomSecurityGroupIds"] == ["sg-12345678"]
    assert layer["Packages"] == ["git", "htop"]
    vol = layer["VolumeConfigurations"][0]
    assert (vol["MountPoint"], vol["NumberOfDisks"], vol["Size"]) == ("/data", 1, 20)
    assert layer["EnableAutoHealing"] is False
    assert layer["AutoAssignElasticIps"] is True
    assert layer["AutoAssignPublicIps"] is True
    assert layer["CustomRecipes"]["Setup"] == ["app::setup"]
    assert layer["CustomRecipes"]["Deploy"] == ["app::deploy"]
    assert layer["InstallUpdatesOnBoot"] is False
    assert layer["UseEbsOptimizedInstances"] is True
    assert layer["LifecycleEventConfiguration"]["Shutdown"]["ExecutionTimeout"] == 300
    assert layer["LifecycleEventConfiguration"]["Shutdown"]["DelayUntilElbConnectionsDrained"] is True


def test_default_security_group_names(ow, make_stack):
    # As the CLI's describe-layers example shows them.
    sid = chef11_stack(make_stack)
    custom = ow.create_layer(StackId=sid, Type="custom", Name="C", Shortname="c")["LayerId"]
    db = ow.create_layer(StackId=sid, Type="db-master", Name="MySQL", Shortname="db-master")["LayerId"]
    assert describe_layer(ow, custom)["DefaultSecurityGroupNames"] == ["AWS-OpsWorks-Custom-Server"]
    assert describe_layer(ow, db)["DefaultSecurityGroupNames"] == ["AWS-OpsWorks-DB-Master-Server"]


def test_all_twelve_layer_types_accepted(ow, make_stack):
    sid = chef11_stack(make_stack)
    for type_, short in LAYER_TYPES.items():
        extra = {}
        if type_ == "ecs-cluster":
            extra["Attributes"] = {"EcsClusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/conformance"}
        ow.create_layer(StackId=sid, Type=type_, Name=f"{type_} layer", Shortname=short, **extra)
    types = sorted(layer["Type"] for layer in ow.describe_layers(StackId=sid)["Layers"])
    assert types == sorted(LAYER_TYPES)


def test_one_builtin_layer_per_type(ow, make_stack):
    sid = chef11_stack(make_stack)
    ow.create_layer(StackId=sid, Type="php-app", Name="PHP", Shortname="php-app")
    with aws_error("ValidationException"):
        ow.create_layer(StackId=sid, Type="php-app", Name="PHP two", Shortname="php-two")
    # Other stacks are not affected, and custom layers may repeat.
    other = chef11_stack(make_stack)
    ow.create_layer(StackId=other, Type="php-app", Name="PHP", Shortname="php-app")
    ow.create_layer(StackId=sid, Type="custom", Name="c1", Shortname="c1")
    ow.create_layer(StackId=sid, Type="custom", Name="c2", Shortname="c2")
    assert len(ow.describe_layers(StackId=sid)["Layers"]) == 3


def test_builtin_layers_in_chef12_stacks(ow, stack):
    # A deliberate departure from the original, whose model says "Built-in layers are not available
    # in Chef 12 stacks": its built-in layers were Chef 11 cookbooks. Ours are our own cookbooks,
    # built into the agent, and work on every stack (the default stack is Chef 12).
    ow.create_layer(StackId=stack, Type="php-app", Name="PHP", Shortname="php-app")
    ow.create_layer(StackId=stack, Type="custom", Name="Custom", Shortname="custom")
    types = sorted(layer["Type"] for layer in ow.describe_layers(StackId=stack)["Layers"])
    assert types == ["custom", "php-app"]
    # Still one built-in layer of a type per stack.
    with aws_error("ValidationException"):
        ow.create_layer(StackId=stack, Type="php-app", Name="PHP 2", Shortname="php-app")


def test_layer_names_and_shortnames_unique_per_stack(ow, stack, make_stack):
    ow.create_layer(StackId=stack, Type="custom", Name="Dup", Shortname="dup")
    with aws_error("ValidationException", "Dup"):
        ow.create_layer(StackId=stack, Type="custom", Name="Dup", Shortname="other")
    with aws_error("ValidationException", "dup"):
        ow.create_layer(StackId=stack, Type="custom", Name="Other", Shortname="dup")
    # The same names are fine in another stack.
    other = make_stack()
    ow.create_layer(StackId=other, Type="custom", Name="Dup", Shortname="dup")


def test_create_layer_unknown_stack(ow):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.create_layer(StackId=bad, Type="custom", Name="x", Shortname="x")


@pytest.mark.parametrize("missing", ["StackId", "Type", "Name", "Shortname"])
def test_create_layer_required_members(ow_raw, stack, missing):
    params = {"StackId": stack, "Type": "custom", "Name": "req", "Shortname": "req"}
    del params[missing]
    with aws_error("ValidationException", names=(missing,)):
        ow_raw.create_layer(**params)


def test_create_layer_bad_values(ow, ow_raw, stack):
    with aws_error("ValidationException"):
        ow_raw.create_layer(StackId=stack, Type="kubernetes", Name="k", Shortname="k")
    with aws_error("ValidationException"):
        ow_raw.create_layer(StackId=stack, Type="custom", Name="a", Shortname="a", Attributes={"NotAnAttribute": "x"})
    with aws_error("ValidationException"):
        ow.create_layer(StackId=stack, Type="custom", Name="n" * 33, Shortname="long-name")
    with aws_error("ValidationException"):
        ow.create_layer(StackId=stack, Type="custom", Name="long-short", Shortname="s" * 33)
    with aws_error("ValidationException"):
        ow.create_layer(StackId=stack, Type="custom", Name="spaces", Shortname="has spaces!")
    with aws_error("ValidationException"):
        ow.create_layer(StackId=stack, Type="custom", Name="json", Shortname="json", CustomJson="[1]")
    with aws_error("ValidationException"):
        big = json.dumps({"blob": "x" * (200 * 1024)})
        ow.create_layer(StackId=stack, Type="custom", Name="big", Shortname="big", CustomJson=big)
    with aws_error("ValidationException"):
        ow_raw.create_layer(
            StackId=stack,
            Type="custom",
            Name="vol",
            Shortname="vol",
            VolumeConfigurations=[{"MountPoint": "/x", "NumberOfDisks": 1, "Size": 1, "VolumeType": "floppy"}],
        )
    assert ow.describe_layers(StackId=stack)["Layers"] == []


def test_layer_passwords_are_filtered(ow, make_stack):
    sid = chef11_stack(make_stack)
    lb = ow.create_layer(
        StackId=sid,
        Type="lb",
        Name="HAProxy",
        Shortname="lb",
        Attributes={
            "EnableHaproxyStats": "true",
            "HaproxyStatsUser": "opsworks",
            "HaproxyStatsPassword": "haproxy-Secret-9",
        },
    )["LayerId"]
    db = ow.create_layer(
        StackId=sid,
        Type="db-master",
        Name="MySQL",
        Shortname="db-master",
        Attributes={"MysqlRootPassword": "mysql-Secret-9", "MysqlRootPasswordUbiquitous": "true"},
    )["LayerId"]
    mon = ow.create_layer(
        StackId=sid,
        Type="monitoring-master",
        Name="Ganglia",
        Shortname="monitoring-master",
        Attributes={"GangliaUser": "opsworks", "GangliaPassword": "ganglia-Secret-9"},
    )["LayerId"]
    layers = {layer["LayerId"]: layer for layer in ow.describe_layers(StackId=sid)["Layers"]}
    assert layers[lb]["Attributes"]["HaproxyStatsPassword"] == FILTERED
    assert layers[lb]["Attributes"]["HaproxyStatsUser"] == "opsworks"
    assert layers[db]["Attributes"]["MysqlRootPassword"] == FILTERED
    assert layers[db]["Attributes"]["MysqlRootPasswordUbiquitous"] == "true"
    assert layers[mon]["Attributes"]["GangliaPassword"] == FILTERED
    assert describe_layer(ow, lb)["Attributes"]["HaproxyStatsPassword"] == FILTERED


# ---- DescribeLayers identifiers ---------------------------------------------------------------------


def test_describe_layers_needs_exactly_one_identifier(ow, layer):
    stack_id, lid = layer
    with aws_error("ValidationException", message="Please provide one or more layer IDs or a stack ID"):
        ow.describe_layers()
    with aws_error("ValidationException"):
        ow.describe_layers(StackId=stack_id, LayerIds=[lid])


def test_describe_layers_unknown(ow, layer):
    _, lid = layer
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.describe_layers(StackId=bad)
    with aws_error("ResourceNotFoundException", bad):
        ow.describe_layers(LayerIds=[lid, bad])


# ---- UpdateLayer / DeleteLayer ------------------------------------------------------------------------


def test_update_layer(ow, layer):
    _, lid = layer
    ow.update_layer(
        LayerId=lid,
        Name="Renamed",
        Shortname="renamed",
        Packages=["curl"],
        CustomJson='{"k": "v"}',
        EnableAutoHealing=False,
        CustomRecipes={"Configure": ["app::configure"]},
    )
    got = describe_layer(ow, lid)
    assert got["Name"] == "Renamed"
    assert got["Shortname"] == "renamed"
    assert got["Packages"] == ["curl"]
    assert json.loads(got["CustomJson"]) == {"k": "v"}
    assert got["EnableAutoHealing"] is False
    assert got["CustomRecipes"]["Configure"] == ["app::configure"]


def test_update_layer_errors(ow, ow_raw, stack, make_layer):
    a = make_layer(stack, Name="First", Shortname="first")
    make_layer(stack, Name="Second", Shortname="second")
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find layer with ID {bad}"):
        ow.update_layer(LayerId=bad, Name="x")
    with aws_error("ValidationException", "Second"):
        ow.update_layer(LayerId=a, Name="Second")
    with aws_error("ValidationException", "second"):
        ow.update_layer(LayerId=a, Shortname="second")
    with aws_error("ValidationException"):
        ow.update_layer(LayerId=a, CustomJson="nope")
    with aws_error("ValidationException"):
        ow_raw.update_layer(Name="no id")
    # Renaming a layer to its own current name is not a clash.
    ow.update_layer(LayerId=a, Name="First", Shortname="first")


def test_update_layer_password_stays_filtered(ow, make_stack):
    sid = chef11_stack(make_stack)
    lid = ow.create_layer(StackId=sid, Type="lb", Name="LB", Shortname="lb")["LayerId"]
    ow.update_layer(LayerId=lid, Attributes={"HaproxyStatsPassword": "updated-Secret-7"})
    assert describe_layer(ow, lid)["Attributes"]["HaproxyStatsPassword"] == FILTERED


def test_delete_layer(ow, layer):
    stack_id, lid = layer
    ow.delete_layer(LayerId=lid)
    with aws_error("ResourceNotFoundException", lid):
        ow.describe_layers(LayerIds=[lid])
    assert ow.describe_layers(StackId=stack_id)["Layers"] == []
    with aws_error("ResourceNotFoundException", message=f"Unable to find layer with ID {lid}"):
        ow.delete_layer(LayerId=lid)


def test_delete_layer_refused_while_it_has_instances(ow, layer, make_instance):
    _, lid = layer
    iid = make_instance(layer[0], [lid])
    with aws_error("ValidationException"):
        ow.delete_layer(LayerId=lid)
    ow.delete_instance(InstanceId=iid)
    ow.delete_layer(LayerId=lid)


def test_deleted_layer_frees_its_names(ow, stack, make_layer):
    lid = make_layer(stack, Name="Reuse", Shortname="reuse")
    ow.delete_layer(LayerId=lid)
    make_layer(stack, Name="Reuse", Shortname="reuse")


# ---- GetHostnameSuggestion ----------------------------------------------------------------------------


def test_hostname_suggestion_layer_dependent(ow, stack, make_layer, make_instance):
    lid = make_layer(stack, Name="Web Servers", Shortname="webby")
    r = ow.get_hostname_suggestion(LayerId=lid)
    assert r == {"LayerId": lid, "Hostname": "webby1", "ResponseMetadata": r["ResponseMetadata"]}
    iid = make_instance(stack, [lid])
    inst = ow.describe_instances(InstanceIds=[iid])["Instances"][0]
    assert inst["Hostname"] == "webby1"
    assert ow.get_hostname_suggestion(LayerId=lid)["Hostname"] == "webby2"
    make_instance(stack, [lid])
    assert ow.get_hostname_suggestion(LayerId=lid)["Hostname"] == "webby3"


@pytest.mark.parametrize("theme", THEMES)
def test_hostname_suggestion_every_theme(ow, make_stack, make_layer, make_instance, theme):
    sid = make_stack(HostnameTheme=theme)
    lid = make_layer(sid, Name="Themed", Shortname="themed")
    first = ow.get_hostname_suggestion(LayerId=lid)["Hostname"]
    assert HOSTNAME_RE.match(first), first
    assert not re.match(r"^themed\d+$", first), f"{theme} gave a Layer_Dependent name {first}"
    # A name in use is never suggested again.
    iid = make_instance(sid, [lid], Hostname=first)
    assert ow.describe_instances(InstanceIds=[iid])["Instances"][0]["Hostname"] == first
    for _ in range(5):
        nxt = ow.get_hostname_suggestion(LayerId=lid)["Hostname"]
        assert HOSTNAME_RE.match(nxt), nxt
        assert nxt != first


def test_hostname_theme_follows_update_stack(ow, stack, make_layer):
    lid = make_layer(stack, Name="T", Shortname="tee")
    assert ow.get_hostname_suggestion(LayerId=lid)["Hostname"] == "tee1"
    ow.update_stack(StackId=stack, HostnameTheme="Clouds")
    assert not re.match(r"^tee\d+$", ow.get_hostname_suggestion(LayerId=lid)["Hostname"])


def test_hostname_suggestion_errors(ow, ow_raw):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find layer with ID {bad}"):
        ow.get_hostname_suggestion(LayerId=bad)
    with aws_error("ValidationException"):
        ow_raw.get_hostname_suggestion()


def test_layer_in_unique_name_check_is_per_stack_only(ow, make_stack):
    # Two stacks, same layer shortname: each gets its own Layer_Dependent numbering.
    a, b = make_stack(), make_stack()
    la = ow.create_layer(StackId=a, Type="custom", Name="N", Shortname=unique("s")[:20])["LayerId"]
    short = describe_layer(ow, la)["Shortname"]
    lb = ow.create_layer(StackId=b, Type="custom", Name="N", Shortname=short)["LayerId"]
    ow.create_instance(StackId=a, LayerIds=[la], InstanceType="t2.micro")
    assert ow.get_hostname_suggestion(LayerId=la)["Hostname"] == f"{short}2"
    assert ow.get_hostname_suggestion(LayerId=lb)["Hostname"] == f"{short}1"


# ---- volumes and CloudWatch Logs: the documented ranges --------------------------------------------

GOOD_STREAM = {"LogGroupName": "stack/layer/app", "File": "/var/log/app/*.log"}


@pytest.mark.parametrize(
    "volume",
    [
        {"MountPoint": "/data", "NumberOfDisks": 1, "Size": 2000, "VolumeType": "standard"},  # magnetic: 1-1024 GiB
        {"MountPoint": "/data", "NumberOfDisks": 1, "Size": 2, "VolumeType": "io1", "Iops": 100},  # io1: 4-16384 GiB
        {"MountPoint": "/data", "NumberOfDisks": 1, "Size": 20000, "VolumeType": "gp2"},  # gp2: 1-16384 GiB
        {"MountPoint": "/srv/www", "NumberOfDisks": 1, "Size": 10, "VolumeType": "gp2"},  # reserved mount point
    ],
    ids=["standard-too-big", "io1-too-small", "gp2-too-big", "reserved-mount-point"],
)
def test_volume_configuration_rules(ow, stack, volume):
    with aws_error("ValidationException"):
        ow.create_layer(StackId=stack, Type="custom", Name="vol", Shortname="vol", VolumeConfigurations=[volume])


@pytest.mark.parametrize(
    "change",
    [
        {"BufferDuration": 4999},
        {"BatchCount": 10001},
        {"BatchSize": 1048577},
        {"Encoding": "klingon"},
        {"TimeZone": "Mars"},
        {"InitialPosition": "middle_of_file"},
        {"LogGroupName": "bad group name!"},
        {"LogGroupName": "g" * 513},
    ],
    ids=["buffer<5000", "count>10000", "size>1MiB", "encoding", "timezone", "position", "group-chars", "group-513"],
)
def test_cloudwatch_logs_rules(ow_raw, stack, change):
    conf = {"Enabled": True, "LogStreams": [dict(GOOD_STREAM, **change)]}
    with aws_error("ValidationException"):
        ow_raw.create_layer(StackId=stack, Type="custom", Name="cw", Shortname="cw", CloudWatchLogsConfiguration=conf)


def test_cloudwatch_logs_configuration_kept(ow, stack):
    stream = dict(GOOD_STREAM, BufferDuration=5000, BatchCount=10000, BatchSize=1048576, Encoding="utf_8")
    conf = {"Enabled": True, "LogStreams": [stream]}
    lid = ow.create_layer(StackId=stack, Type="custom", Name="cw", Shortname="cw", CloudWatchLogsConfiguration=conf)[
        "LayerId"
    ]
    got = describe_layer(ow, lid)["CloudWatchLogsConfiguration"]
    assert got["Enabled"] is True
    s = got["LogStreams"][0]
    assert (s["LogGroupName"], s["File"], s["BatchCount"], s["Encoding"]) == (
        "stack/layer/app",
        "/var/log/app/*.log",
        10000,
        "utf_8",
    )


def test_hostname_suggestion_skips_names_taken_explicitly(ow, make_stack, make_layer, make_instance):
    sid = make_stack()
    lid = make_layer(sid, Name="Skip", Shortname="skip")
    make_instance(sid, [lid], Hostname="skip1")
    assert ow.get_hostname_suggestion(LayerId=lid)["Hostname"] == "skip2"
    # Host names are unique per stack only: another stack may reuse skip1.
    other = make_stack()
    olid = make_layer(other, Name="Skip", Shortname="skip")
    iid = make_instance(other, [olid], Hostname="skip1")
    assert ow.describe_instances(InstanceIds=[iid])["Instances"][0]["Hostname"] == "skip1"

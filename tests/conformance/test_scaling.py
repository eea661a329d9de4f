"""Scaling: SetTimeBasedAutoScaling, DescribeTimeBasedAutoScaling, SetLoadBasedAutoScaling,
DescribeLoadBasedAutoScaling."""

import pytest

from harness import assert_raw_error, aws_error, missing_id, raw_call

SCHEDULE = {
    "Monday": {"9": "on", "10": "on", "11": "off"},
    "Sunday": {"23": "on"},
}


@pytest.fixture
def timer_instance(layer, make_instance):
    stack_id, layer_id = layer
    return make_instance(stack_id, [layer_id], AutoScalingType="timer")


def describe_time(ow, *ids):
    return ow.describe_time_based_auto_scaling(InstanceIds=list(ids))["TimeBasedAutoScalingConfigurations"]


def describe_load(ow, *ids):
    return ow.describe_load_based_auto_scaling(LayerIds=list(ids))["LoadBasedAutoScalingConfigurations"]


# ---- time-based -------------------------------------------------------------------------------


def test_set_and_describe_time_schedule(ow, timer_instance):
    ow.set_time_based_auto_scaling(InstanceId=timer_instance, AutoScalingSchedule=SCHEDULE)
    [cfg] = describe_time(ow, timer_instance)
    assert cfg["InstanceId"] == timer_instance
    assert cfg["AutoScalingSchedule"] == SCHEDULE


def test_set_time_schedule_replaces_the_previous_one(ow, timer_instance):
    ow.set_time_based_auto_scaling(InstanceId=timer_instance, AutoScalingSchedule=SCHEDULE)
    ow.set_time_based_auto_scaling(InstanceId=timer_instance, AutoScalingSchedule={"Friday": {"0": "on"}})
    [cfg] = describe_time(ow, timer_instance)
    assert cfg["AutoScalingSchedule"] == {"Friday": {"0": "on"}}
    # Without a schedule the instance is cleared: every hour off.
    ow.set_time_based_auto_scaling(InstanceId=timer_instance)
    [cfg] = describe_time(ow, timer_instance)
    assert cfg["AutoScalingSchedule"] == {}


def test_describe_time_in_request_order_and_unset_is_empty(ow, layer, make_instance):
    stack_id, layer_id = layer
    a = make_instance(stack_id, [layer_id], AutoScalingType="timer")
    b = make_instance(stack_id, [layer_id], AutoScalingType="timer")
    ow.set_time_based_auto_scaling(InstanceId=a, AutoScalingSchedule=SCHEDULE)
    cfgs = describe_time(ow, b, a)
    assert [c["InstanceId"] for c in cfgs] == [b, a]
    assert cfgs[0]["AutoScalingSchedule"] == {}
    assert cfgs[1]["AutoScalingSchedule"] == SCHEDULE


def test_schedule_is_not_shown_by_describe_instances(ow, timer_instance):
    ow.set_time_based_auto_scaling(InstanceId=timer_instance, AutoScalingSchedule=SCHEDULE)
    [inst] = ow.describe_instances(InstanceIds=[timer_instance])["Instances"]
    assert inst["AutoScalingType"] == "timer"
    assert not any(k.startswith("_") for k in inst), inst.keys()


@pytest.mark.parametrize("scaling_type", [None, "load"])
def test_set_time_refuses_non_timer_instances(ow, layer, make_instance, scaling_type):
    stack_id, layer_id = layer
    extra = {"AutoScalingType": scaling_type} if scaling_type else {}
    iid = make_instance(stack_id, [layer_id], **extra)
    with aws_error("ValidationException", iid, "not a time-based instance", "timer"):
        ow.set_time_based_auto_scaling(InstanceId=iid, AutoScalingSchedule=SCHEDULE)


def test_set_time_unknown_instance(ow):
    missing = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find instance with ID {missing}"):
        ow.set_time_based_auto_scaling(InstanceId=missing, AutoScalingSchedule=SCHEDULE)


@pytest.mark.parametrize(
    "schedule, fragments",
    [
        ({"Monday": {"24": "on"}}, ("24", "hour")),
        ({"Monday": {"-1": "on"}}, ("-1", "hour")),
        ({"Monday": {"nine": "on"}}, ("nine",)),
        ({"Tuesday": {"9": "ON"}}, ("\"on\" or \"off\"",)),
        ({"Tuesday": {"9": "yes"}}, ("\"on\" or \"off\"",)),
    ],
)
def test_set_time_refuses_bad_hours_and_values(ow, timer_instance, schedule, fragments):
    with aws_error("ValidationException", *fragments):
        ow.set_time_based_auto_scaling(InstanceId=timer_instance, AutoScalingSchedule=schedule)
    # Nothing was stored.
    [cfg] = describe_time(ow, timer_instance)
    assert cfg["AutoScalingSchedule"] == {}


def test_set_time_refuses_unknown_day_sent_raw(endpoint, timer_instance):
    # botocore cannot even serialize an unknown day; a client that sends one gets a clear error.
    body = {"InstanceId": timer_instance, "AutoScalingSchedule": {"Funday": {"9": "on"}}}
    r = raw_call(endpoint, "SetTimeBasedAutoScaling", body)
    assert_raw_error(r, "ValidationException", "Funday")


def test_describe_time_unknown_instance(ow, timer_instance):
    missing = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find instance with ID {missing}"):
        describe_time(ow, timer_instance, missing)


# ---- load-based -------------------------------------------------------------------------------


def test_describe_load_defaults_for_a_layer_never_configured(ow, layer):
    _, layer_id = layer
    [cfg] = describe_load(ow, layer_id)
    assert cfg["LayerId"] == layer_id
    assert cfg["Enable"] is False
    assert cfg["UpScaling"] == {"InstanceCount": 1, "ThresholdsWaitTime": 5, "IgnoreMetricsTime": 5, "CpuThreshold": 80.0}
    assert cfg["DownScaling"] == {
        "InstanceCount": 1,
        "ThresholdsWaitTime": 10,
        "IgnoreMetricsTime": 10,
        "CpuThreshold": 30.0,
    }


def test_set_and_describe_load(ow, layer):
    _, layer_id = layer
    up = {
        "InstanceCount": 2,
        "ThresholdsWaitTime": 3,
        "IgnoreMetricsTime": 7,
        "CpuThreshold": 70.5,
        "MemoryThreshold": -1.0,
        "LoadThreshold": 4.0,
        "Alarms": ["high-latency"],
    }
    down = {
        "InstanceCount": 1,
        "ThresholdsWaitTime": 20,
        "IgnoreMetricsTime": 15,
        "CpuThreshold": 20.0,
        "MemoryThreshold": 30.0,
        "LoadThreshold": -1.0,
    }
    ow.set_load_based_auto_scaling(LayerId=layer_id, Enable=True, UpScaling=up, DownScaling=down)
    [cfg] = describe_load(ow, layer_id)
    assert cfg["Enable"] is True
    assert cfg["UpScaling"] == up
    assert cfg["DownScaling"] == down


def test_set_load_merges_with_the_stored_configuration(ow, layer):
    _, layer_id = layer
    ow.set_load_based_auto_scaling(LayerId=layer_id, Enable=True, UpScaling={"CpuThreshold": 60.0})
    [cfg] = describe_load(ow, layer_id)
    assert cfg["Enable"] is True
    assert cfg["UpScaling"]["CpuThreshold"] == 60.0
    assert cfg["UpScaling"]["ThresholdsWaitTime"] == 5
    assert cfg["DownScaling"]["CpuThreshold"] == 30.0
    # A later call that changes only DownScaling keeps Enable and UpScaling.
    ow.set_load_based_auto_scaling(LayerId=layer_id, DownScaling={"InstanceCount": 3})
    [cfg] = describe_load(ow, layer_id)
    assert cfg["Enable"] is True
    assert cfg["UpScaling"]["CpuThreshold"] == 60.0
    assert cfg["DownScaling"]["InstanceCount"] == 3
    assert cfg["DownScaling"]["CpuThreshold"] == 30.0
    ow.set_load_based_auto_scaling(LayerId=layer_id, Enable=False)
    [cfg] = describe_load(ow, layer_id)
    assert cfg["Enable"] is False
    assert cfg["UpScaling"]["CpuThreshold"] == 60.0


def test_describe_load_in_request_order(ow, stack, make_layer):
    a, b = make_layer(stack), make_layer(stack)
    ow.set_load_based_auto_scaling(LayerId=a, Enable=True)
    cfgs = describe_load(ow, b, a)
    assert [c["LayerId"] for c in cfgs] == [b, a]
    assert [c["Enable"] for c in cfgs] == [False, True]


def test_load_config_is_not_shown_by_describe_layers(ow, layer):
    _, layer_id = layer
    ow.set_load_based_auto_scaling(LayerId=layer_id, Enable=True)
    [shown] = ow.describe_layers(LayerIds=[layer_id])["Layers"]
    assert not any(k.startswith("_") for k in shown), shown.keys()


def test_update_layer_keeps_the_load_config(ow, layer):
    _, layer_id = layer
    ow.set_load_based_auto_scaling(LayerId=layer_id, Enable=True, UpScaling={"CpuThreshold": 55.0})
    ow.update_layer(LayerId=layer_id, Name="renamed")
    [cfg] = describe_load(ow, layer_id)
    assert cfg["Enable"] is True
    assert cfg["UpScaling"]["CpuThreshold"] == 55.0


def test_set_load_unknown_layer(ow):
    missing = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find layer with ID {missing}"):
        ow.set_load_based_auto_scaling(LayerId=missing, Enable=True)


def test_describe_load_unknown_layer(ow, layer):
    missing = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find layer with ID {missing}"):
        describe_load(ow, layer[1], missing)


@pytest.mark.parametrize(
    "direction, thresholds, fragments",
    [
        ("UpScaling", {"CpuThreshold": 150.0}, ("UpScaling.CpuThreshold", "150")),
        ("UpScaling", {"CpuThreshold": -2.0}, ("UpScaling.CpuThreshold", "-1 to disable")),
        ("DownScaling", {"MemoryThreshold": 101.0}, ("DownScaling.MemoryThreshold",)),
        ("DownScaling", {"LoadThreshold": -3.0}, ("DownScaling.LoadThreshold",)),
        ("UpScaling", {"InstanceCount": 0}, ("UpScaling.InstanceCount",)),
        ("UpScaling", {"Alarms": ["a", "b", "c", "d", "e", "f"]}, ("UpScaling.Alarms", "5")),
    ],
)
def test_set_load_refuses_bad_thresholds(ow, layer, direction, thresholds, fragments):
    _, layer_id = layer
    with aws_error("ValidationException", *fragments):
        ow.set_load_based_auto_scaling(LayerId=layer_id, Enable=True, **{direction: thresholds})
    # Nothing was stored.
    [cfg] = describe_load(ow, layer_id)
    assert cfg["Enable"] is False


@pytest.mark.parametrize("member, value", [("ThresholdsWaitTime", 0), ("ThresholdsWaitTime", 101), ("IgnoreMetricsTime", 0)])
def test_set_load_refuses_minutes_out_of_range(ow_raw, layer, member, value):
    _, layer_id = layer
    # The message is the model validator's, which spells members camelCase (`upScaling.thresholdsWaitTime`).
    with aws_error("ValidationException", names=(member,)):
        ow_raw.set_load_based_auto_scaling(LayerId=layer_id, UpScaling={member: value})


def test_scaling_operations_are_supported(ow, timer_instance, layer):
    # None of the four answers UnsupportedOperationException any more.
    ow.describe_time_based_auto_scaling(InstanceIds=[timer_instance])
    ow.describe_load_based_auto_scaling(LayerIds=[layer[1]])


def test_cli_describe_load(cli, layer):
    _, layer_id = layer
    out = cli("describe-load-based-auto-scaling", "--layer-ids", layer_id)
    assert out["LoadBasedAutoScalingConfigurations"][0]["LayerId"] == layer_id

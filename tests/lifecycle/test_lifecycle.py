"""Issue 4 end to end: instances start as local machines, their agents run Setup, Deploy, Configure
and Shutdown from a git repository of cookbooks, and the deployed app is served from the instance.
Driven only through boto3 (with botocore's waiters), HTTP and the command logs' LogUrl."""

import json
import urllib.request

import pytest

from conftest import commit, http_get, make_repo, retry

FAST = {"Delay": 1, "MaxAttempts": 120}

SETUP = '''
directory("/srv/demo", mode = "0755")
file("/srv/demo/setup.txt", content = "setup on " + node["hostname"] + "\\n")
'''

CONFIGURE = '''
members = sorted(node["opsworks"]["layers"]["web"]["instances"].keys())
file("/srv/demo/members.txt", content = ",".join(members) + "\\n")
'''

DEPLOY = '''
for name, app in node["deploy"].items():
    link("/srv/demo/" + name, to = app["current_path"])
service("demo-http",
    command = "python3 -m http.server 8080 --bind 0.0.0.0 --directory /srv/demo",
    action = ["enable", "start"])
'''

SHUTDOWN = '''
file("/srv/demo/shutdown.txt", content = "bye\\n")
'''

FAIL = '''
execute("break on purpose",
    command = "echo this recipe fails; exit 3")
'''


@pytest.fixture(scope="module")
def repos(workdir):
    cookbooks = make_repo(workdir / "cookbooks", {
        "demo/metadata.json": json.dumps({"name": "demo", "version": "1.0.0"}),
        "demo/recipes/setup.star": SETUP,
        "demo/recipes/configure.star": CONFIGURE,
        "demo/recipes/deploy.star": DEPLOY,
        "demo/recipes/shutdown.star": SHUTDOWN,
        "demo/recipes/fail.star": FAIL,
    })
    app = make_repo(workdir / "app", {"index.html": "hello v1\n"})
    return {"cookbooks": cookbooks, "app": app}


@pytest.fixture(scope="module")
def stack(server, repos, git_http):
    from conftest import client_for
    c = client_for(server)
    stack_id = c.create_stack(
        Name="lifecycle", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
        UseCustomCookbooks=True,
        CustomCookbooksSource={"Type": "git", "Url": f"{git_http}/cookbooks/.git", "Revision": "main"},
    )["StackId"]
    layer_id = c.create_layer(
        StackId=stack_id, Type="custom", Name="Web", Shortname="web",
        CustomRecipes={"Setup": ["demo::setup"], "Configure": ["demo::configure"], "Deploy": ["demo::deploy"],
                       "Shutdown": ["demo::shutdown"]},
        LifecycleEventConfiguration={"Shutdown": {"ExecutionTimeout": 30}},
    )["LayerId"]
    app_id = c.create_app(
        StackId=stack_id, Name="Site", Shortname="site", Type="other",
        AppSource={"Type": "git", "Url": f"{git_http}/app/.git", "Revision": "main"},
        Environment=[{"Key": "GREETING", "Value": "hi", "Secure": True}],
    )["AppId"]
    return {"stack": stack_id, "layer": layer_id, "app": app_id}


def start_and_wait(c, instance_ids):
    for i in instance_ids:
        c.start_instance(InstanceId=i)
    c.get_waiter("instance_online").wait(InstanceIds=instance_ids, WaiterConfig=FAST)
    return {i["InstanceId"]: i for i in c.describe_instances(InstanceIds=instance_ids)["Instances"]}


def test_two_instances_come_online_and_serve_the_app(client, stack):
    ids = [client.create_instance(StackId=stack["stack"], LayerIds=[stack["layer"]], InstanceType="t3.micro",
                                  RootDeviceType="ebs")["InstanceId"] for _ in range(2)]
    instances = start_and_wait(client, ids)
    for inst in instances.values():
        assert inst["PrivateIp"].startswith("10.217."), inst
        body = retry(lambda: http_get(f"http://{inst['PrivateIp']}:8080/site/index.html"))
        assert body == "hello v1\n"
        setup = http_get(f"http://{inst['PrivateIp']}:8080/setup.txt")
        assert setup == f"setup on {inst['Hostname']}\n"
    stack["first"] = ids


def test_a_third_instance_triggers_configure_everywhere(client, stack):
    third = client.create_instance(StackId=stack["stack"], LayerIds=[stack["layer"]], InstanceType="t3.micro")["InstanceId"]
    start_and_wait(client, [third])
    all_ids = stack["first"] + [third]
    described = client.describe_instances(InstanceIds=all_ids)["Instances"]
    expected = ",".join(sorted(i["Hostname"] for i in described)) + "\n"
    for inst in described:
        assert retry(lambda: _members(inst)) == expected
    stack["third"] = third


def _members(inst):
    body = http_get(f"http://{inst['PrivateIp']}:8080/members.txt")
    if body.count(",") < 2:
        raise AssertionError(f"not yet: {body!r}")
    return body


def test_deploy_rollback_and_undeploy(client, stack, repos):
    ip = client.describe_instances(InstanceIds=stack["first"][:1])["Instances"][0]["PrivateIp"]
    commit(repos["app"], {"index.html": "hello v2\n"}, "v2")
    waiter = client.get_waiter("deployment_successful")

    d = client.create_deployment(StackId=stack["stack"], AppId=stack["app"], Command={"Name": "deploy"},
                                 InstanceIds=stack["first"])["DeploymentId"]
    waiter.wait(DeploymentIds=[d], WaiterConfig=FAST)
    assert http_get(f"http://{ip}:8080/site/index.html") == "hello v2\n"

    d = client.create_deployment(StackId=stack["stack"], AppId=stack["app"], Command={"Name": "rollback"},
                                 InstanceIds=stack["first"])["DeploymentId"]
    waiter.wait(DeploymentIds=[d], WaiterConfig=FAST)
    assert http_get(f"http://{ip}:8080/site/index.html") == "hello v1\n"

    d = client.create_deployment(StackId=stack["stack"], AppId=stack["app"], Command={"Name": "undeploy"},
                                 InstanceIds=stack["first"])["DeploymentId"]
    waiter.wait(DeploymentIds=[d], WaiterConfig=FAST)
    with pytest.raises(urllib.error.HTTPError):
        http_get(f"http://{ip}:8080/site/index.html")

    commands = client.describe_commands(DeploymentId=d)["Commands"]
    assert {c["Status"] for c in commands} == {"successful"}
    assert all(c["AcknowledgedAt"] and c["CompletedAt"] and c["ExitCode"] == 0 for c in commands)


def test_deleting_an_app_undeploys_it(client, stack, git_http):
    ip = client.describe_instances(InstanceIds=stack["first"][:1])["Instances"][0]["PrivateIp"]
    other = client.create_app(StackId=stack["stack"], Name="Other", Shortname="other", Type="other",
                              AppSource={"Type": "git", "Url": f"{git_http}/app/.git", "Revision": "main"})["AppId"]
    d = client.create_deployment(StackId=stack["stack"], AppId=other, Command={"Name": "deploy"},
                                 InstanceIds=stack["first"])["DeploymentId"]
    client.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=FAST)
    assert http_get(f"http://{ip}:8080/other/index.html") == "hello v2\n"
    client.delete_app(AppId=other)
    undeploys = [x for x in client.describe_deployments(StackId=stack["stack"])["Deployments"]
                 if x["Command"]["Name"] == "undeploy" and x.get("AppId") == other]
    assert len(undeploys) == 1
    client.get_waiter("deployment_successful").wait(DeploymentIds=[undeploys[0]["DeploymentId"]], WaiterConfig=FAST)
    with pytest.raises(urllib.error.HTTPError):
        http_get(f"http://{ip}:8080/other/index.html")


def test_a_reboot_comes_back_online_without_lifecycle_events(client, stack):
    iid = stack["first"][0]
    before = len(client.describe_commands(InstanceId=iid)["Commands"])
    client.reboot_instance(InstanceId=iid)
    assert client.describe_instances(InstanceIds=[iid])["Instances"][0]["Status"] in ("rebooting", "online")
    client.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    inst = client.describe_instances(InstanceIds=[iid])["Instances"][0]
    # The service the recipes enabled comes back under the supervisor; no new command ran.
    assert retry(lambda: http_get(f"http://{inst['PrivateIp']}:8080/setup.txt")).startswith("setup on")
    assert len(client.describe_commands(InstanceId=iid)["Commands"]) == before


def test_a_failing_setup_gives_setup_failed_and_a_log_naming_the_line(client, stack):
    layer = client.create_layer(StackId=stack["stack"], Type="custom", Name="Broken", Shortname="broken",
                                CustomRecipes={"Setup": ["demo::fail"]})["LayerId"]
    iid = client.create_instance(StackId=stack["stack"], LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
    client.start_instance(InstanceId=iid)
    with pytest.raises(Exception) as failed:
        client.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    assert "setup_failed" in str(failed.value) or "failure state" in str(failed.value)
    inst = client.describe_instances(InstanceIds=[iid])["Instances"][0]
    assert inst["Status"] == "setup_failed"
    setup = [c for c in client.describe_commands(InstanceId=iid)["Commands"] if c["Type"] == "setup"][0]
    assert setup["Status"] == "failed" and setup["ExitCode"] != 0
    log = http_get(setup["LogUrl"])
    assert "fail.star:2" in log, log
    errors = client.describe_service_errors(InstanceId=iid)["ServiceErrors"]
    assert errors and errors[0]["Type"] == "setup_failed"
    client.stop_instance(InstanceId=iid)
    client.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=FAST)


def test_a_server_restart_mid_deployment_loses_nothing(client, server, stack):
    d = client.create_deployment(StackId=stack["stack"], Command={"Name": "execute_recipes",
                                 "Args": {"recipes": ["demo::setup"]}}, InstanceIds=stack["first"])["DeploymentId"]
    server.stop()
    server.start()
    client.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=FAST)
    commands = client.describe_commands(DeploymentId=d)["Commands"]
    assert len(commands) == 2 and all(c["Status"] == "successful" for c in commands)


def test_stopping_runs_shutdown_and_the_others_reconfigure(client, stack):
    iid = stack["third"]
    client.stop_instance(InstanceId=iid)
    client.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=FAST)
    shutdown = [c for c in client.describe_commands(InstanceId=iid)["Commands"] if c["Type"] == "shutdown"]
    assert shutdown and shutdown[0]["Status"] == "successful"
    remaining = client.describe_instances(InstanceIds=stack["first"])["Instances"]
    expected = ",".join(sorted(i["Hostname"] for i in remaining)) + "\n"
    for inst in remaining:
        assert retry(lambda: http_get(f"http://{inst['PrivateIp']}:8080/members.txt") == expected or _raise(inst))


def _raise(inst):
    raise AssertionError(f"{inst['Hostname']} still lists the stopped instance")


def test_start_stack_and_stop_stack_run_the_machines(client):
    """StartStack launches every stopped 24/7 instance as StartInstance does; StopStack runs their
    Shutdown and halts them as StopInstance does."""
    sid = client.create_stack(
        Name="whole-stack", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]
    lid = client.create_layer(StackId=sid, Type="custom", Name="All", Shortname="all")["LayerId"]
    ids = [client.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t3.micro")["InstanceId"]
           for _ in range(2)]
    client.start_stack(StackId=sid)
    client.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=FAST)
    client.stop_stack(StackId=sid)
    client.get_waiter("instance_stopped").wait(InstanceIds=ids, WaiterConfig=FAST)
    for iid in ids:
        kinds = [c["Type"] for c in client.describe_commands(InstanceId=iid)["Commands"]]
        assert "setup" in kinds and "shutdown" in kinds, kinds

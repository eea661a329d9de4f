"""The built-in `web` and `php-app` layers end to end: nginx (and PHP-FPM) set up by the built-in
cookbooks on real local instances, serving apps deployed from git at the instance's PrivateIp:80.
Driven only through boto3 and HTTP; the instances are stopped at the end."""

import urllib.request

import pytest

from conftest import commit, http_get, make_repo, retry

FAST = {"Delay": 1, "MaxAttempts": 180}


def new_stack(c, name):
    return c.create_stack(
        Name=name, Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]


def start_one(c, stack_id, layer_id):
    iid = c.create_instance(StackId=stack_id, LayerIds=[layer_id], InstanceType="t3.micro")["InstanceId"]
    c.start_instance(InstanceId=iid)
    try:
        c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    except Exception:
        # Say why: the failed command's log names the recipe and line.
        for cmd in c.describe_commands(InstanceId=iid)["Commands"]:
            if cmd["Status"] == "failed" and cmd.get("LogUrl"):
                print(http_get(cmd["LogUrl"]))
        raise
    return c.describe_instances(InstanceIds=[iid])["Instances"][0]


def stop_and_wait(c, iid):
    c.stop_instance(InstanceId=iid)
    c.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig=FAST)


def test_web_layer_serves_the_document_root_and_a_new_revision(client, workdir, git_http):
    repo = make_repo(workdir / "static-site", {
        "public/index.html": "static v1\n",
        "README.md": "not served: outside the DocumentRoot\n",
    })
    stack_id = new_stack(client, "web-layer")
    layer_id = client.create_layer(StackId=stack_id, Type="web", Name="Static", Shortname="web")["LayerId"]
    app_id = client.create_app(
        StackId=stack_id, Name="Site", Shortname="site", Type="static",
        AppSource={"Type": "git", "Url": f"{git_http}/static-site/.git", "Revision": "main"},
        Attributes={"DocumentRoot": "public"},
    )["AppId"]
    inst = start_one(client, stack_id, layer_id)
    ip = inst["PrivateIp"]
    try:
        assert retry(lambda: http_get(f"http://{ip}/")) == "static v1\n"
        with pytest.raises(urllib.error.HTTPError) as missing:
            http_get(f"http://{ip}/README.md")
        assert missing.value.code == 404

        commit(repo, {"public/index.html": "static v2\n"}, "v2")
        d = client.create_deployment(StackId=stack_id, AppId=app_id, Command={"Name": "deploy"})["DeploymentId"]
        client.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=FAST)
        assert retry(lambda: _expect(f"http://{ip}/", "static v2\n")) == "static v2\n"

        # Undeploy drops the app's server block: nginx no longer serves it (with no site left it
        # listens on nothing, so the connection is refused rather than answered with a 404).
        d = client.create_deployment(StackId=stack_id, AppId=app_id, Command={"Name": "undeploy"})["DeploymentId"]
        client.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=FAST)
        with pytest.raises(urllib.error.URLError):
            http_get(f"http://{ip}/")
    finally:
        stop_and_wait(client, inst["InstanceId"])


def test_php_app_layer_runs_php_with_the_app_environment(client, workdir, git_http):
    make_repo(workdir / "php-site", {
        "index.php": '<?php echo 6*7, " ", getenv("GREETING"), "\\n"; ?>\n',
    })
    stack_id = new_stack(client, "php-layer")
    layer_id = client.create_layer(StackId=stack_id, Type="php-app", Name="PHP", Shortname="php-app")["LayerId"]
    client.create_app(
        StackId=stack_id, Name="Shop", Shortname="shop", Type="php",
        AppSource={"Type": "git", "Url": f"{git_http}/php-site/.git", "Revision": "main"},
        Environment=[{"Key": "GREETING", "Value": "hello from the app", "Secure": True}],
    )
    inst = start_one(client, stack_id, layer_id)
    ip = inst["PrivateIp"]
    try:
        # 42 is computed by PHP: the source text holds "6*7", never "42".
        assert retry(lambda: http_get(f"http://{ip}/")) == "42 hello from the app\n"
        assert retry(lambda: http_get(f"http://{ip}/index.php")) == "42 hello from the app\n"
    finally:
        stop_and_wait(client, inst["InstanceId"])


def _expect(url, want):
    body = http_get(url)
    if body != want:
        raise AssertionError(f"not yet: {body!r}")
    return body

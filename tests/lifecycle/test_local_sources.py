"""Issue 11 item 1 end to end: an app and cookbooks from git repositories at local paths of the
host, which instances see. A commit made on the host after the instance booted is what the next
deploy ships: the release, its `.git` HEAD and REVISION are the new commit, the command log names
it; a revision that does not exist fails the deployment with a clear message."""

import json
import subprocess
import urllib.request

import pytest

from conftest import commit, http_get, make_repo, retry

FAST = {"Delay": 1, "MaxAttempts": 120}

DEPLOY = '''
for name, app in node["deploy"].items():
    link("/srv/local-demo/" + name, to = app["current_path"])
service("local-demo-http",
    command = "python3 -m http.server 8081 --bind 0.0.0.0 --directory /srv/local-demo",
    action = ["enable", "start"])
'''


def head(repo):
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def local(server, workdir):
    from conftest import client_for
    cookbooks = make_repo(workdir / "local-cookbooks", {
        "localdemo/metadata.json": json.dumps({"name": "localdemo", "version": "1.0.0"}),
        "localdemo/recipes/setup.star": 'directory("/srv/local-demo", mode = "0755")\n',
        "localdemo/recipes/deploy.star": DEPLOY,
    })
    app = make_repo(workdir / "local-app", {"server.js": "// v1\n"})
    c = client_for(server)
    stack_id = c.create_stack(
        Name="local-sources", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
        UseCustomCookbooks=True,
        CustomCookbooksSource={"Type": "git", "Url": str(cookbooks), "Revision": "main"},
    )["StackId"]
    layer_id = c.create_layer(
        StackId=stack_id, Type="custom", Name="Local", Shortname="local",
        CustomRecipes={"Setup": ["localdemo::setup"], "Deploy": ["localdemo::deploy"]},
    )["LayerId"]
    app_id = c.create_app(
        StackId=stack_id, Name="Site", Shortname="site", Type="other",
        AppSource={"Type": "git", "Url": str(app), "Revision": "main"},
    )["AppId"]
    iid = c.create_instance(StackId=stack_id, LayerIds=[layer_id], InstanceType="t3.micro")["InstanceId"]
    c.start_instance(InstanceId=iid)
    c.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    ip = c.describe_instances(InstanceIds=[iid])["Instances"][0]["PrivateIp"]
    yield {"stack": stack_id, "app": app_id, "instance": iid, "ip": ip, "repo": app}
    c.stop_instance(InstanceId=iid, Force=True)


def release(ip):
    """What the instance serves of the current release: server.js, REVISION, .git/HEAD."""
    base = f"http://{ip}:8081/site"
    return (http_get(f"{base}/server.js"), http_get(f"{base}/REVISION").strip(),
            http_get(f"{base}/.git/HEAD").strip())


def log_of(client, deployment_id):
    cmd = client.describe_commands(DeploymentId=deployment_id)["Commands"][0]
    return cmd, http_get(cmd["LogUrl"])


def test_a_commit_on_the_host_is_what_the_next_deploy_ships(client, local):
    v1 = head(local["repo"])
    assert retry(lambda: release(local["ip"])) == ("// v1\n", v1, v1)

    commit(local["repo"], {"server.js": "// v2\n"}, "v2")
    v2 = head(local["repo"])
    d = client.create_deployment(StackId=local["stack"], AppId=local["app"], Command={"Name": "deploy"},
                                 InstanceIds=[local["instance"]])["DeploymentId"]
    client.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=FAST)
    assert release(local["ip"]) == ("// v2\n", v2, v2)
    _, log = log_of(client, d)
    assert f"at `main` resolved to commit {v2}" in log, log


def test_a_revision_that_does_not_exist_fails_the_deployment(client, local):
    before = release(local["ip"])
    client.update_app(AppId=local["app"],
                      AppSource={"Type": "git", "Url": str(local["repo"]), "Revision": "no-such-branch"})
    d = client.create_deployment(StackId=local["stack"], AppId=local["app"], Command={"Name": "deploy"},
                                 InstanceIds=[local["instance"]])["DeploymentId"]
    with pytest.raises(Exception):
        client.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=FAST)
    assert client.describe_deployments(DeploymentIds=[d])["Deployments"][0]["Status"] == "failed"
    cmd, log = log_of(client, d)
    assert cmd["Status"] == "failed"
    assert "git revision `no-such-branch` not found in" in log, log
    # What was deployed stays deployed.
    assert release(local["ip"]) == before

"""The real `aws opsworks ...` (awscli v1) against the server: what an operator with only the CLI does."""

import json

from harness import INSTANCE_PROFILE, SERVICE_ROLE, unique


def test_cli_stack_create_describe_update_delete(cli):
    name = unique("cli-stack")
    sid = cli(
        "create-stack",
        "--name",
        name,
        "--stack-region",
        "us-east-1",
        "--service-role-arn",
        SERVICE_ROLE,
        "--default-instance-profile-arn",
        INSTANCE_PROFILE,
        "--custom-json",
        '{"cli": true}',
    )["StackId"]
    stacks = cli("describe-stacks", "--stack-ids", sid)["Stacks"]
    assert stacks[0]["Name"] == name
    assert json.loads(stacks[0]["CustomJson"]) == {"cli": True}
    assert cli("update-stack", "--stack-id", sid, "--name", "cli-renamed") is None
    assert cli("describe-stacks", "--stack-ids", sid)["Stacks"][0]["Name"] == "cli-renamed"
    assert cli("delete-stack", "--stack-id", sid) is None
    gone = cli.run("describe-stacks", "--stack-ids", sid)
    assert gone.returncode != 0
    assert "ResourceNotFoundException" in gone.stderr
    assert f"Unable to find stack with ID {sid}" in gone.stderr


def test_cli_full_flow_layers_instances_apps_deployments(cli):
    sid = cli(
        "create-stack",
        "--name",
        unique("cli-flow"),
        "--stack-region",
        "us-east-1",
        "--service-role-arn",
        SERVICE_ROLE,
        "--default-instance-profile-arn",
        INSTANCE_PROFILE,
    )["StackId"]
    lid = cli("create-layer", "--stack-id", sid, "--type", "custom", "--name", "CLI Layer", "--shortname", "clilayer")[
        "LayerId"
    ]
    assert cli("describe-layers", "--stack-id", sid)["Layers"][0]["Shortname"] == "clilayer"
    assert cli("get-hostname-suggestion", "--layer-id", lid)["Hostname"] == "clilayer1"
    assert cli("update-layer", "--layer-id", lid, "--name", "CLI Layer 2") is None

    iid = cli("create-instance", "--stack-id", sid, "--layer-ids", lid, "--instance-type", "t2.micro")["InstanceId"]
    inst = cli("describe-instances", "--instance-ids", iid)["Instances"][0]
    assert inst["Hostname"] == "clilayer1" and inst["Status"] == "stopped"
    assert cli("update-instance", "--instance-id", iid, "--instance-type", "t2.small") is None
    assert cli("describe-instances", "--stack-id", sid)["Instances"][0]["InstanceType"] == "t2.small"

    aid = cli(
        "create-app",
        "--stack-id",
        sid,
        "--name",
        "CLI App",
        "--type",
        "other",
        "--environment",
        "Key=SECRET,Value=cli-Env-Secret,Secure=true",
    )["AppId"]
    app = cli("describe-apps", "--app-ids", aid)["Apps"][0]
    assert app["Environment"][0]["Value"] == "*****FILTERED*****"
    assert cli("update-app", "--app-id", aid, "--description", "via cli") is None

    cli("start-instance", "--instance-id", iid)
    did = cli(
        "create-deployment",
        "--stack-id",
        sid,
        "--app-id",
        aid,
        "--instance-ids",
        iid,
        "--command",
        '{"Name": "deploy"}',
    )["DeploymentId"]
    assert cli("describe-deployments", "--deployment-ids", did)["Deployments"][0]["Command"]["Name"] == "deploy"
    assert [c["InstanceId"] for c in cli("describe-commands", "--deployment-id", did)["Commands"]] == [iid]

    summary = cli("describe-stack-summary", "--stack-id", sid)["StackSummary"]
    assert summary["LayersCount"] == 1 and summary["AppsCount"] == 1

    # Tear down in the order AWS demands.
    refused = cli.run("delete-instance", "--instance-id", iid)
    assert refused.returncode != 0 and "ValidationException" in refused.stderr
    cli("stop-instance", "--instance-id", iid)
    for _ in range(150):
        if cli("describe-instances", "--instance-ids", iid)["Instances"][0]["Status"] == "stopped":
            break
    cli("delete-instance", "--instance-id", iid)
    cli("delete-app", "--app-id", aid)
    cli("delete-layer", "--layer-id", lid)
    cli("delete-stack", "--stack-id", sid)
    assert sid not in {s["StackId"] for s in cli("describe-stacks")["Stacks"]}


def test_cli_error_path_shows_code_and_exits_nonzero(cli):
    proc = cli.run("describe-layers")
    assert proc.returncode != 0
    assert "ValidationException" in proc.stderr
    assert "Please provide one or more layer IDs or a stack ID" in proc.stderr
    assert proc.stdout.strip() == ""


def test_cli_delete_non_empty_stack_refused(cli):
    sid = cli(
        "create-stack",
        "--name",
        unique("cli-busy"),
        "--stack-region",
        "us-east-1",
        "--service-role-arn",
        SERVICE_ROLE,
        "--default-instance-profile-arn",
        INSTANCE_PROFILE,
    )["StackId"]
    cli("create-layer", "--stack-id", sid, "--type", "custom", "--name", "L", "--shortname", "l")
    proc = cli.run("delete-stack", "--stack-id", sid)
    assert proc.returncode != 0
    assert "ValidationException" in proc.stderr
    assert cli("describe-stacks", "--stack-ids", sid)["Stacks"][0]["StackId"] == sid


def test_cli_tags(cli):
    sid = cli(
        "create-stack",
        "--name",
        unique("cli-tags"),
        "--stack-region",
        "us-east-1",
        "--service-role-arn",
        SERVICE_ROLE,
        "--default-instance-profile-arn",
        INSTANCE_PROFILE,
    )["StackId"]
    arn = cli("describe-stacks", "--stack-ids", sid)["Stacks"][0]["Arn"]
    cli("tag-resource", "--resource-arn", arn, "--tags", "env=dev,team=ops")
    assert cli("list-tags", "--resource-arn", arn)["Tags"] == {"env": "dev", "team": "ops"}
    cli("untag-resource", "--resource-arn", arn, "--tag-keys", "team")
    assert cli("list-tags", "--resource-arn", arn)["Tags"] == {"env": "dev"}


def test_cli_app_exists_waiter(cli):
    sid = cli(
        "create-stack",
        "--name",
        unique("cli-wait"),
        "--stack-region",
        "us-east-1",
        "--service-role-arn",
        SERVICE_ROLE,
        "--default-instance-profile-arn",
        INSTANCE_PROFILE,
    )["StackId"]
    aid = cli("create-app", "--stack-id", sid, "--name", "waited", "--type", "other")["AppId"]
    assert cli("wait", "app-exists", "--app-ids", aid) is None
    missing = cli.run("wait", "app-exists", "--app-ids", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode != 0
    assert "AppExists failed" in missing.stderr


def test_aws_cli_documentation_examples_work_as_written(cli):
    # The AWS CLI reference's own examples: a php-app layer with a short name of its choosing, and
    # an instance of the original's older OS name, "Amazon Linux".
    sid = cli(
        "create-stack",
        "--name",
        unique("cli-docs"),
        "--stack-region",
        "us-east-1",
        "--service-role-arn",
        SERVICE_ROLE,
        "--default-instance-profile-arn",
        INSTANCE_PROFILE,
    )["StackId"]
    lid = cli(
        "create-layer", "--stack-id", sid, "--type", "php-app", "--name", "MyPHPLayer", "--shortname", "myphplayer"
    )["LayerId"]
    layer = cli("describe-layers", "--layer-ids", lid)["Layers"][0]
    assert (layer["Type"], layer["Shortname"]) == ("php-app", "myphplayer")
    iid = cli(
        "create-instance",
        "--stack-id",
        sid,
        "--layer-ids",
        lid,
        "--hostname",
        "myinstance1",
        "--instance-type",
        "m1.large",
        "--os",
        "Amazon Linux",
    )["InstanceId"]
    assert cli("describe-instances", "--instance-ids", iid)["Instances"][0]["Os"] == "Amazon Linux"

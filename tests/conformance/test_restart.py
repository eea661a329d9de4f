"""Durability: a server stopped and started again on the same data dir still has everything."""

import itertools
import json
import re
import stat

from botocore.exceptions import ClientError

from harness import FILTERED, SECRET_KEY, Server, aws_error, boto3_client, engine, stack_params


def test_restart_keeps_all_data(tmp_path):
    data = tmp_path / "data"
    first = Server(data, tmp_path / "first.log")
    endpoint = first.start()
    try:
        ow = boto3_client(endpoint)
        sid = ow.create_stack(
            **stack_params(
                Name="durable",
                CustomJson='{"keep": true}',
                UseCustomCookbooks=True,
                CustomCookbooksSource={"Type": "git", "Url": "https://e.com/c.git", "Password": "restart-Pass-1"},
            )
        )["StackId"]
        lid = ow.create_layer(StackId=sid, Type="custom", Name="Layer", Shortname="lay")["LayerId"]
        iid = ow.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t2.micro")["InstanceId"]
        started = ow.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t2.micro")["InstanceId"]
        ow.start_instance(InstanceId=started)
        aid = ow.create_app(
            StackId=sid, Name="app", Type="other", Environment=[{"Key": "K", "Value": "restart-Env-1", "Secure": True}]
        )["AppId"]
        did = ow.create_deployment(StackId=sid, AppId=aid, InstanceIds=[started], Command={"Name": "deploy"})[
            "DeploymentId"
        ]
        arn = ow.describe_stacks(StackIds=[sid])["Stacks"][0]["Arn"]
        ow.tag_resource(ResourceArn=arn, Tags={"env": "prod"})
        before = {
            "stack": ow.describe_stacks(StackIds=[sid])["Stacks"],
            "layers": ow.describe_layers(StackId=sid)["Layers"],
            "instances": sorted(ow.describe_instances(StackId=sid)["Instances"], key=lambda i: i["InstanceId"]),
            "apps": ow.describe_apps(StackId=sid)["Apps"],
            "deployments": ow.describe_deployments(StackId=sid)["Deployments"],
            "commands": ow.describe_commands(DeploymentId=did)["Commands"],
            "tags": ow.list_tags(ResourceArn=arn)["Tags"],
            "hostname": ow.get_hostname_suggestion(LayerId=lid)["Hostname"],
        }
    finally:
        first.stop()

    second = Server(data, tmp_path / "second.log")
    endpoint = second.start()
    try:
        ow = boto3_client(endpoint)  # the same root credentials still work
        after = {
            "stack": ow.describe_stacks(StackIds=[sid])["Stacks"],
            "layers": ow.describe_layers(StackId=sid)["Layers"],
            "instances": sorted(ow.describe_instances(StackId=sid)["Instances"], key=lambda i: i["InstanceId"]),
            "apps": ow.describe_apps(StackId=sid)["Apps"],
            "deployments": ow.describe_deployments(StackId=sid)["Deployments"],
            "commands": ow.describe_commands(DeploymentId=did)["Commands"],
            "tags": ow.list_tags(ResourceArn=arn)["Tags"],
            "hostname": ow.get_hostname_suggestion(LayerId=lid)["Hostname"],
        }
        # Nothing drives instances here (no agent), so every field, statuses included, is identical.
        assert json.dumps(after, sort_keys=True, default=str) == json.dumps(before, sort_keys=True, default=str)
        assert after["stack"][0]["CustomCookbooksSource"]["Password"] == FILTERED
        assert after["apps"][0]["Environment"][0]["Value"] == FILTERED
        assert iid in {i["InstanceId"] for i in after["instances"]}
        assert after["tags"] == {"env": "prod"}
        # The restarted server goes on working: new IDs, the old rules.
        ow.create_layer(StackId=sid, Type="custom", Name="Second", Shortname="second")
        with aws_error("ValidationException"):
            ow.create_layer(StackId=sid, Type="custom", Name="Layer", Shortname="other")
        with aws_error("ValidationException"):
            ow.delete_stack(StackId=sid)
    finally:
        second.stop()


def test_restart_refuses_nothing_on_an_empty_data_dir(tmp_path):
    srv = Server(tmp_path / "fresh", tmp_path / "fresh.log")
    endpoint = srv.start()
    try:
        assert boto3_client(endpoint).describe_stacks()["Stacks"] == []
    finally:
        srv.stop()
    srv = Server(tmp_path / "fresh", tmp_path / "fresh2.log")
    endpoint = srv.start()
    try:
        assert boto3_client(endpoint).describe_stacks()["Stacks"] == []
    finally:
        srv.stop()


def _files(root):
    return [p for p in root.rglob("*") if p.is_file()]


def test_root_secret_never_stored_in_plaintext(tmp_path):
    data = tmp_path / "data"
    srv = Server(data, tmp_path / "s.log")
    endpoint = srv.start()
    try:
        ow = boto3_client(endpoint)
        ow.create_stack(**stack_params())
    finally:
        srv.stop()
    files = _files(data)
    assert files, "the server wrote nothing to its data dir"
    for f in files:
        assert SECRET_KEY.encode() not in f.read_bytes(), f"the root secret is stored in plaintext in {f}"
    # On PostgreSQL the database is not in the data dir: everything it holds, too.
    assert SECRET_KEY.encode() not in engine.database_dump(data), "the root secret is stored in plaintext in the database"
    # The master key is kept readable by its owner only.
    assert any(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), [
        (f.name, oct(stat.S_IMODE(f.stat().st_mode))) for f in files
    ]


def test_generated_root_credentials(tmp_path):
    """Without OPSWORKS_ROOT_* the root key is generated, printed once and written to root-credentials (0600)."""
    data = tmp_path / "data"
    srv = Server(data, tmp_path / "gen.log", root_from_env=False)
    endpoint = srv.start()
    try:
        creds_file = data / "root-credentials"
        assert creds_file.is_file(), sorted(p.name for p in data.iterdir())
        assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
        tokens = set(re.findall(r"[A-Za-z0-9/+=]{16,}", creds_file.read_text()))
        working = None
        for key_id, secret in itertools.permutations(tokens, 2):
            try:
                boto3_client(endpoint, access_key=key_id, secret_key=secret).describe_stacks()
            except ClientError:
                continue
            working = (key_id, secret)
            break
        assert working, f"no pair of tokens in root-credentials authenticates: {sorted(tokens)}"
        assert srv.wait_for_output(working[1]), "the generated secret was not printed on first start"
        # The key the tests use by default is not known to this server.
        with aws_error("UnrecognizedClientException"):
            boto3_client(endpoint).describe_stacks()
    finally:
        srv.stop()
    again = Server(data, tmp_path / "gen2.log", root_from_env=False)
    endpoint = again.start()
    try:
        assert working[1] not in again.output(), "the secret is printed again on a later start"
        assert boto3_client(endpoint, access_key=working[0], secret_key=working[1]).describe_stacks()["Stacks"] == []
    finally:
        again.stop()

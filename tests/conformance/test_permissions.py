"""OpsWorks permissions over IAM users: stack permission levels combined with IAM policies as
OpsWorks did (either may allow, an explicit Deny wins), Describe calls showing only the stacks a
user may see, the user-profile operations, and the audit log of every mutating call."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from harness import unique
from iam_helpers import User, allow, client, deny, document, signed_get


@pytest.fixture(scope="module")
def iam(endpoint):
    return client("iam", endpoint)


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def message_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Message"]


@pytest.fixture
def stack(ow, make_stack, make_layer):
    sid = make_stack()
    lid = make_layer(sid)
    app = ow.create_app(StackId=sid, Name=unique("app"), Type="other")["AppId"]
    return {"StackId": sid, "LayerId": lid, "AppId": app, "Arn": ow.describe_stacks(StackIds=[sid])["Stacks"][0]["Arn"]}


def profiled_user(ow, iam, endpoint, policy=None, **profile) -> User:
    u = User(endpoint, iam, policy=policy)
    ow.create_user_profile(IamUserArn=u.arn, **profile)
    return u


def test_a_user_without_policy_or_level_may_do_nothing(ow, iam, endpoint, stack):
    u = User(endpoint, iam)
    uow = u.client("opsworks")
    assert uow.describe_stacks()["Stacks"] == []
    with pytest.raises(ClientError) as e:
        uow.describe_layers(StackId=stack["StackId"])
    assert code_of(e) == "AccessDeniedException"
    assert message_of(e) == (
        f"User: {u.arn} is not authorized to perform: opsworks:DescribeLayers on resource: {stack['Arn']} "
        "because no identity-based policy allows the opsworks:DescribeLayers action"
    )


def test_a_deploy_level_user_deploys_but_cannot_delete_the_stack_or_create_a_layer(ow, iam, endpoint, stack):
    u = profiled_user(ow, iam, endpoint)
    ow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, Level="deploy")
    uow = u.client("opsworks")
    assert [s["StackId"] for s in uow.describe_stacks()["Stacks"]] == [stack["StackId"]]
    assert uow.describe_layers(StackId=stack["StackId"])["Layers"]
    dep = uow.create_deployment(StackId=stack["StackId"], AppId=stack["AppId"], Command={"Name": "deploy"})
    assert dep["DeploymentId"]
    deployments = ow.describe_deployments(DeploymentIds=[dep["DeploymentId"]])["Deployments"]
    assert deployments[0]["IamUserArn"] == u.arn
    uow.update_app(AppId=stack["AppId"], Description="by deploy")
    with pytest.raises(ClientError) as e:
        uow.delete_stack(StackId=stack["StackId"])
    assert code_of(e) == "AccessDeniedException" and "opsworks:DeleteStack" in message_of(e)
    with pytest.raises(ClientError) as e:
        uow.create_layer(StackId=stack["StackId"], Type="custom", Name="x", Shortname="x")
    assert code_of(e) == "AccessDeniedException" and "opsworks:CreateLayer" in message_of(e)
    with pytest.raises(ClientError) as e:
        uow.describe_permissions(StackId=stack["StackId"])
    assert code_of(e) == "AccessDeniedException"
    # Nothing changed by the refusals.
    assert ow.describe_stacks(StackIds=[stack["StackId"]])["Stacks"]
    assert len(ow.describe_layers(StackId=stack["StackId"])["Layers"]) == 1


def test_an_explicit_deny_beats_a_permission_level(ow, iam, endpoint, stack):
    u = profiled_user(ow, iam, endpoint, policy=document(deny("opsworks:CreateLayer", stack["Arn"])))
    ow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, Level="manage")
    uow = u.client("opsworks")
    uow.update_layer(LayerId=stack["LayerId"], Name="renamed")
    with pytest.raises(ClientError) as e:
        uow.create_layer(StackId=stack["StackId"], Type="custom", Name="x", Shortname="x")
    assert code_of(e) == "AccessDeniedException"
    assert message_of(e).endswith("with an explicit deny in an identity-based policy")


def test_the_deny_level_beats_an_iam_full_access_policy(ow, iam, endpoint, stack, make_stack):
    u = profiled_user(ow, iam, endpoint, policy=document(allow("opsworks:*")))
    other = make_stack()
    ow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, Level="deny")
    uow = u.client("opsworks")
    seen = [s["StackId"] for s in uow.describe_stacks()["Stacks"]]
    assert other in seen and stack["StackId"] not in seen
    with pytest.raises(ClientError) as e:
        uow.describe_layers(StackId=stack["StackId"])
    assert code_of(e) == "AccessDeniedException" and message_of(e).endswith("with an explicit deny")


def test_an_iam_policy_alone_can_grant_describe(ow, iam, endpoint, stack):
    u = User(endpoint, iam, policy=document(allow("opsworks:Describe*")))
    uow = u.client("opsworks")
    assert stack["StackId"] in [s["StackId"] for s in uow.describe_stacks()["Stacks"]]
    assert uow.describe_apps(StackId=stack["StackId"])["Apps"]
    with pytest.raises(ClientError) as e:
        uow.update_app(AppId=stack["AppId"], Description="no")
    assert code_of(e) == "AccessDeniedException"


def test_describe_stacks_shows_only_the_stacks_a_user_may_see(ow, iam, endpoint, make_stack):
    a, b = make_stack(), make_stack()
    u = profiled_user(ow, iam, endpoint)
    ow.set_permission(StackId=a, IamUserArn=u.arn, Level="show")
    uow = u.client("opsworks")
    assert [s["StackId"] for s in uow.describe_stacks()["Stacks"]] == [a]
    with pytest.raises(ClientError) as e:
        uow.describe_stacks(StackIds=[a, b])
    assert code_of(e) == "AccessDeniedException" and b in message_of(e)


def test_conditions_on_source_ip_and_time(ow, iam, endpoint, stack):
    u = User(endpoint, iam, policy=document(allow("opsworks:Describe*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})))
    with pytest.raises(ClientError):
        u.client("opsworks").describe_layers(StackId=stack["StackId"])
    iam.put_user_policy(UserName=u.name, PolicyName="p", PolicyDocument=document(
        allow("opsworks:Describe*", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}, "DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}})))
    assert u.client("opsworks").describe_layers(StackId=stack["StackId"])["Layers"]


def test_group_policies_apply_to_their_members_at_once(ow, iam, endpoint, stack):
    u = User(endpoint, iam)
    g = unique("readers")
    iam.create_group(GroupName=g)
    iam.put_group_policy(GroupName=g, PolicyName="r", PolicyDocument=document(allow("opsworks:Describe*")))
    uow = u.client("opsworks")
    assert uow.describe_stacks()["Stacks"] == []
    iam.add_user_to_group(GroupName=g, UserName=u.name)
    assert stack["StackId"] in [s["StackId"] for s in uow.describe_stacks()["Stacks"]]
    iam.remove_user_from_group(GroupName=g, UserName=u.name)
    assert uow.describe_stacks()["Stacks"] == []


def test_user_profiles(ow, iam, endpoint, stack):
    u = User(endpoint, iam)
    ow.create_user_profile(IamUserArn=u.arn, SshUsername="My.Name_1", SshPublicKey="ssh-ed25519 AAAAC3Nza test")
    with pytest.raises(ClientError) as e:
        ow.create_user_profile(IamUserArn=u.arn)
    assert code_of(e) == "ValidationException"
    p = ow.describe_user_profiles(IamUserArns=[u.arn])["UserProfiles"][0]
    assert p == {"IamUserArn": u.arn, "Name": u.name, "SshUsername": "myname_1",
                 "SshPublicKey": "ssh-ed25519 AAAAC3Nza test", "AllowSelfManagement": False}
    ow.update_user_profile(IamUserArn=u.arn, SshUsername="other", AllowSelfManagement=True)
    assert ow.describe_user_profiles(IamUserArns=[u.arn])["UserProfiles"][0]["SshUsername"] == "other"
    with pytest.raises(ClientError) as e:
        ow.update_user_profile(IamUserArn=u.arn, SshPublicKey="not a key")
    assert code_of(e) == "ValidationException"
    ow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, AllowSsh=True, AllowSudo=True, Level="show")
    perms = ow.describe_permissions(StackId=stack["StackId"], IamUserArn=u.arn)["Permissions"]
    assert perms == [{"StackId": stack["StackId"], "IamUserArn": u.arn, "AllowSsh": True, "AllowSudo": True, "Level": "show"}]
    with pytest.raises(ClientError) as e:
        ow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, Level="admin")
    assert code_of(e) == "ValidationException"
    ow.delete_user_profile(IamUserArn=u.arn)
    assert ow.describe_permissions(StackId=stack["StackId"])["Permissions"] == []
    with pytest.raises(ClientError) as e:
        ow.describe_user_profiles(IamUserArns=[u.arn])
    assert code_of(e) == "ResourceNotFoundException"


def test_user_profile_administration_is_iam_only(ow, iam, endpoint, stack):
    u = profiled_user(ow, iam, endpoint)
    ow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, Level="manage")
    uow = u.client("opsworks")
    with pytest.raises(ClientError) as e:
        uow.describe_user_profiles()
    assert code_of(e) == "AccessDeniedException"
    assert "opsworks:DescribeUserProfiles because" in message_of(e)
    # Manage grants SetPermission on its stack.
    uow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, AllowSsh=True)


def test_my_user_profile_needs_self_management(ow, iam, endpoint):
    u = profiled_user(ow, iam, endpoint, SshUsername=unique("me").replace("-", "")[:20])
    uow = u.client("opsworks")
    with pytest.raises(ClientError) as e:
        uow.update_my_user_profile(SshPublicKey="ssh-ed25519 AAAAC3Nza mine")
    assert code_of(e) == "AccessDeniedException"
    ow.update_user_profile(IamUserArn=u.arn, AllowSelfManagement=True)
    uow.update_my_user_profile(SshPublicKey="ssh-ed25519 AAAAC3Nza mine")
    me = uow.describe_my_user_profile()["UserProfile"]
    assert me["IamUserArn"] == u.arn and me["SshPublicKey"] == "ssh-ed25519 AAAAC3Nza mine"


def test_events_and_metrics_are_evaluated_for_their_principal(ow, iam, endpoint, stack):
    u = profiled_user(ow, iam, endpoint)
    sid = stack["StackId"]
    r = u.get(f"/api/events?StackId={sid}")
    assert r.status == 403 and b"AccessDeniedException" in r.data
    r = u.get(f"/api/metrics?StackId={sid}")
    assert r.status == 403
    ow.set_permission(StackId=sid, IamUserArn=u.arn, Level="show")
    assert u.get(f"/api/events?StackId={sid}").status == 200
    assert u.get(f"/api/metrics?StackId={sid}&Period=1h").status == 200
    assert u.get("/metrics").status == 403


def test_the_audit_log_records_every_mutating_call(ow, iam, endpoint, stack):
    u = profiled_user(ow, iam, endpoint)
    ow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, Level="deploy")
    uow = u.client("opsworks")
    with pytest.raises(ClientError):
        uow.delete_stack(StackId=stack["StackId"])
    uow.update_app(AppId=stack["AppId"], Description="audited")
    r = signed_get(endpoint, "/api/audit?Principal=" + urllib.parse.quote(u.arn, safe=""))
    assert r.status == 200, r.data
    entries = json.loads(r.data)["Entries"]
    ops = [(e["Operation"], e["Outcome"]) for e in entries]
    assert ("DeleteStack", "AccessDeniedException") in ops and ("UpdateApp", "Success") in ops
    upd = next(e for e in entries if e["Operation"] == "UpdateApp")
    assert upd["Principal"] == u.arn and upd["SourceIp"] == "127.0.0.1"
    assert upd["StackId"] == stack["StackId"] and upd["Target"] == stack["AppId"]
    assert upd["Service"] == "opsworks" and upd["Detail"]["AccessKeyId"] == u.key_id
    by_stack = json.loads(signed_get(endpoint, f"/api/audit?StackId={stack['StackId']}").data)["Entries"]
    assert {"SetPermission", "UpdateApp"} <= {e["Operation"] for e in by_stack}
    # Every entry, page by page (the session's server has more than one page by now).
    iam_calls, after = [], 0
    while True:
        page = json.loads(signed_get(endpoint, f"/api/audit?MaxResults=1000&After={after}").data)
        iam_calls += page["Entries"]
        if len(page["Entries"]) < 1000:
            break
        after = page["LastSeq"]
    assert any(e["Service"] == "iam" and e["Operation"] == "CreateUser" and e["Target"] == u.name for e in iam_calls)
    # Reads are not audited; the log itself is IAM-evaluated.
    assert all(not e["Operation"].startswith("Describe") for e in iam_calls)
    assert u.get("/api/audit").status == 403
    iam.put_user_policy(UserName=u.name, PolicyName="audit", PolicyDocument=document(allow("opsworks:DescribeAuditLog")))
    assert u.get("/api/audit").status == 200
    r = signed_get(endpoint, "/api/audit?StartTime=2099-01-01T00%3A00%3A00Z")
    assert json.loads(r.data)["Entries"] == []
    assert signed_get(endpoint, "/api/audit?StartTime=yesterday").status == 400


def test_clone_stack_copies_permissions_when_asked(ow, iam, endpoint, stack):
    u = profiled_user(ow, iam, endpoint)
    ow.set_permission(StackId=stack["StackId"], IamUserArn=u.arn, Level="deploy", AllowSsh=True)
    role = "arn:aws:iam::123456789012:role/aws-opsworks-service-role"
    with_perms = ow.clone_stack(SourceStackId=stack["StackId"], ServiceRoleArn=role, ClonePermissions=True)["StackId"]
    without = ow.clone_stack(SourceStackId=stack["StackId"], ServiceRoleArn=role)["StackId"]
    assert ow.describe_permissions(StackId=with_perms)["Permissions"] == [
        {"StackId": with_perms, "IamUserArn": u.arn, "AllowSsh": True, "AllowSudo": False, "Level": "deploy"}
    ]
    assert ow.describe_permissions(StackId=without)["Permissions"] == []

"""IAM and STS on the server's own endpoint, driven by boto3 and awscli: every operation the issue
lists, with IAM's error codes, the Query protocol's authentication errors, and keys that stop
working the moment they are made inactive or deleted."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from harness import ACCESS_KEY, REGION, SECRET_KEY, unique, which_aws
from iam_helpers import User, allow, client, deny, document, query_post, signed_get

DESCRIBE = document(allow("opsworks:Describe*"))


@pytest.fixture(scope="module")
def iam(endpoint):
    return client("iam", endpoint)


@pytest.fixture(scope="module")
def sts(endpoint):
    return client("sts", endpoint)


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_users_create_get_list_update_delete(iam):
    name = unique("alice")
    u = iam.create_user(UserName=name, Path="/ops/", Tags=[{"Key": "team", "Value": "a b.c"}])["User"]
    assert u["UserName"] == name and u["Path"] == "/ops/"
    assert u["UserId"].startswith("AIDA") and u["Arn"].endswith(f":user/ops/{name}")
    assert iam.get_user(UserName=name)["User"]["UserId"] == u["UserId"]
    assert name in [x["UserName"] for x in iam.list_users(PathPrefix="/ops/")["Users"]]
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName=name.upper())
    assert code_of(e) == "EntityAlreadyExists" and status_of(e) == 409
    assert e.value.response["Error"]["Message"] == f"User with name {name.upper()} already exists."
    iam.update_user(UserName=name, NewUserName=name + "2", NewPath="/")
    got = iam.get_user(UserName=name + "2")["User"]
    assert got["UserId"] == u["UserId"] and got["Path"] == "/"
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName=name)
    assert code_of(e) == "NoSuchEntity" and status_of(e) == 404
    assert e.value.response["Error"]["Message"] == f"The user with name {name} cannot be found."
    iam.delete_user(UserName=name + "2")
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName=name + "2")
    assert code_of(e) == "NoSuchEntity"


def test_bad_names_are_validation_errors(iam):
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName="bad name")
    assert code_of(e) == "ValidationError" and status_of(e) == 400


def test_list_users_paginates(iam):
    prefix = "/page" + unique("p").replace("-", "") + "/"
    names = sorted(unique("pg") for _ in range(5))
    for n in names:
        iam.create_user(UserName=n, Path=prefix)
    first = iam.list_users(PathPrefix=prefix, MaxItems=2)
    assert first["IsTruncated"] and len(first["Users"]) == 2
    pages = iam.get_paginator("list_users").paginate(PathPrefix=prefix, PaginationConfig={"PageSize": 2})
    assert [u["UserName"] for p in pages for u in p["Users"]] == names
    for n in names:
        iam.delete_user(UserName=n)


def test_access_keys_lifecycle_and_quota(iam, endpoint):
    u = User(endpoint, iam)
    second = iam.create_access_key(UserName=u.name)["AccessKey"]
    with pytest.raises(ClientError) as e:
        iam.create_access_key(UserName=u.name)
    assert code_of(e) == "LimitExceeded" and status_of(e) == 409
    listed = iam.list_access_keys(UserName=u.name)["AccessKeyMetadata"]
    assert {k["AccessKeyId"] for k in listed} == {u.key_id, second["AccessKeyId"]}
    assert all("SecretAccessKey" not in k and k["Status"] == "Active" for k in listed)
    iam.update_access_key(UserName=u.name, AccessKeyId=second["AccessKeyId"], Status="Inactive")
    assert {k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=u.name)["AccessKeyMetadata"]}[
        second["AccessKeyId"]
    ] == "Inactive"
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName=u.name)
    assert code_of(e) == "DeleteConflict"
    iam.delete_access_key(UserName=u.name, AccessKeyId=second["AccessKeyId"])
    with pytest.raises(ClientError) as e:
        iam.delete_access_key(UserName=u.name, AccessKeyId=second["AccessKeyId"])
    assert code_of(e) == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.update_access_key(UserName=u.name, AccessKeyId=u.key_id, Status="Paused")
    assert code_of(e) == "ValidationError"


def test_a_key_signs_and_its_last_use_is_known(iam, endpoint):
    u = User(endpoint, iam, policy=DESCRIBE)
    assert iam.get_access_key_last_used(AccessKeyId=u.key_id)["AccessKeyLastUsed"]["ServiceName"] == "N/A"
    u.client("opsworks").describe_stacks()
    last = iam.get_access_key_last_used(AccessKeyId=u.key_id)
    assert last["UserName"] == u.name
    assert last["AccessKeyLastUsed"]["ServiceName"] == "opsworks"
    assert last["AccessKeyLastUsed"]["Region"] == REGION


def test_inactive_and_deleted_keys_are_refused_at_once_everywhere(iam, endpoint):
    u = User(endpoint, iam, policy=document(allow(["opsworks:*", "iam:GetUser"])))
    ow, uiam, usts = u.client("opsworks"), u.client("iam"), u.client("sts")
    ow.describe_stacks()
    uiam.get_user()
    assert usts.get_caller_identity()["Arn"] == u.arn
    assert signed_get(endpoint, "/api/events", u.key_id, u.secret).status == 200
    iam.update_access_key(UserName=u.name, AccessKeyId=u.key_id, Status="Inactive")
    with pytest.raises(ClientError) as e:
        ow.describe_stacks()
    assert code_of(e) == "UnrecognizedClientException"
    with pytest.raises(ClientError) as e:
        uiam.get_user()
    assert code_of(e) == "InvalidClientTokenId" and status_of(e) == 403
    with pytest.raises(ClientError) as e:
        usts.get_caller_identity()
    assert code_of(e) == "InvalidClientTokenId"
    assert signed_get(endpoint, "/api/events", u.key_id, u.secret).status == 401
    assert signed_get(endpoint, "/api/metrics?StackId=x", u.key_id, u.secret).status == 403
    iam.update_access_key(UserName=u.name, AccessKeyId=u.key_id, Status="Active")
    ow.describe_stacks()
    iam.delete_access_key(UserName=u.name, AccessKeyId=u.key_id)
    with pytest.raises(ClientError) as e:
        ow.describe_stacks()
    assert code_of(e) == "UnrecognizedClientException"


def test_groups_and_membership(iam, endpoint):
    g = unique("devs")
    created = iam.create_group(GroupName=g, Path="/team/")["Group"]
    assert created["GroupId"].startswith("AGPA") and created["Arn"].endswith(f":group/team/{g}")
    with pytest.raises(ClientError) as e:
        iam.create_group(GroupName=g)
    assert code_of(e) == "EntityAlreadyExists"
    assert e.value.response["Error"]["Message"] == f"Group with name {g} already exists."
    u = User(endpoint, iam)
    iam.add_user_to_group(GroupName=g, UserName=u.name)
    iam.add_user_to_group(GroupName=g, UserName=u.name)
    got = iam.get_group(GroupName=g)
    assert [x["UserName"] for x in got["Users"]] == [u.name] and got["Group"]["GroupName"] == g
    assert [x["GroupName"] for x in iam.list_groups_for_user(UserName=u.name)["Groups"]] == [g]
    assert g in [x["GroupName"] for x in iam.list_groups(PathPrefix="/team/")["Groups"]]
    with pytest.raises(ClientError) as e:
        iam.delete_group(GroupName=g)
    assert code_of(e) == "DeleteConflict"
    assert "remove users from group" in e.value.response["Error"]["Message"]
    iam.remove_user_from_group(GroupName=g, UserName=u.name)
    with pytest.raises(ClientError) as e:
        iam.remove_user_from_group(GroupName=g, UserName=u.name)
    assert code_of(e) == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.add_user_to_group(GroupName=unique("nope"), UserName=u.name)
    assert code_of(e) == "NoSuchEntity" and "cannot be found" in e.value.response["Error"]["Message"]
    iam.delete_group(GroupName=g)
    with pytest.raises(ClientError) as e:
        iam.get_group(GroupName=g)
    assert code_of(e) == "NoSuchEntity"


def test_inline_policies_of_users_and_groups(iam, endpoint):
    u = User(endpoint, iam)
    iam.put_user_policy(UserName=u.name, PolicyName="read", PolicyDocument=DESCRIBE)
    got = iam.get_user_policy(UserName=u.name, PolicyName="read")
    # botocore decodes IAM's URL-encoded document back into an object.
    assert got["PolicyDocument"] == json.loads(DESCRIBE)
    assert iam.list_user_policies(UserName=u.name)["PolicyNames"] == ["read"]
    with pytest.raises(ClientError) as e:
        iam.get_user_policy(UserName=u.name, PolicyName="nope")
    assert code_of(e) == "NoSuchEntity"
    assert e.value.response["Error"]["Message"] == "The user policy with name nope cannot be found."
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName=u.name)
    assert code_of(e) == "DeleteConflict"
    iam.delete_user_policy(UserName=u.name, PolicyName="read")
    assert iam.list_user_policies(UserName=u.name)["PolicyNames"] == []
    g = unique("grp")
    iam.create_group(GroupName=g)
    iam.put_group_policy(GroupName=g, PolicyName="gp", PolicyDocument=DESCRIBE)
    assert iam.get_group_policy(GroupName=g, PolicyName="gp")["PolicyDocument"] == json.loads(DESCRIBE)
    assert iam.list_group_policies(GroupName=g)["PolicyNames"] == ["gp"]
    iam.delete_group_policy(GroupName=g, PolicyName="gp")
    iam.delete_group(GroupName=g)


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ("{not json", "This policy contains invalid Json"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]}), "must contain actions"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "DescribeStacks", "Resource": "*"}]}), "prefaced by a vendor"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "opsworks:*", "Resource": "stack"}]}), "must be in ARN format"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "opsworks:*", "Resource": "*"}]}), "Syntax errors in policy"),
    ],
)
def test_malformed_documents_are_refused_saying_what_is_wrong(iam, endpoint, doc, fragment):
    u = User(endpoint, iam)
    with pytest.raises(ClientError) as e:
        iam.put_user_policy(UserName=u.name, PolicyName="bad", PolicyDocument=doc)
    assert code_of(e) == "MalformedPolicyDocument" and status_of(e) == 400
    assert fragment in e.value.response["Error"]["Message"]
    assert iam.list_user_policies(UserName=u.name)["PolicyNames"] == []


def test_inline_policies_have_a_size_quota(iam, endpoint):
    u = User(endpoint, iam)
    big = document(*[allow(f"opsworks:Describe{i:04d}x") for i in range(80)])
    with pytest.raises(ClientError) as e:
        iam.put_user_policy(UserName=u.name, PolicyName="big", PolicyDocument=big)
    assert code_of(e) == "LimitExceeded"
    assert e.value.response["Error"]["Message"] == f"Maximum policy size of 2048 bytes exceeded for user {u.name}"


def test_managed_policies_and_attachments(iam, endpoint):
    name = unique("pol")
    p = iam.create_policy(PolicyName=name, PolicyDocument=DESCRIBE, Description="reads")["Policy"]
    assert p["DefaultVersionId"] == "v1" and p["PolicyId"].startswith("ANPA") and p["AttachmentCount"] == 0
    with pytest.raises(ClientError) as e:
        iam.create_policy(PolicyName=name, PolicyDocument=DESCRIBE)
    assert code_of(e) == "EntityAlreadyExists"
    with pytest.raises(ClientError) as e:
        iam.create_policy(PolicyName=unique("v"), PolicyDocument=json.dumps({"Statement": json.loads(DESCRIBE)["Statement"]}))
    assert code_of(e) == "MalformedPolicyDocument" and "2012-10-17" in e.value.response["Error"]["Message"]
    assert iam.get_policy_version(PolicyArn=p["Arn"], VersionId="v1")["PolicyVersion"]["Document"] == json.loads(DESCRIBE)
    u = User(endpoint, iam)
    iam.attach_user_policy(UserName=u.name, PolicyArn=p["Arn"])
    assert iam.get_policy(PolicyArn=p["Arn"])["Policy"]["AttachmentCount"] == 1
    assert iam.list_attached_user_policies(UserName=u.name)["AttachedPolicies"] == [
        {"PolicyName": name, "PolicyArn": p["Arn"]}
    ]
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=p["Arn"])
    assert code_of(e) == "DeleteConflict"
    g = unique("g")
    iam.create_group(GroupName=g)
    iam.attach_group_policy(GroupName=g, PolicyArn=p["Arn"])
    assert iam.list_attached_group_policies(GroupName=g)["AttachedPolicies"][0]["PolicyArn"] == p["Arn"]
    iam.detach_group_policy(GroupName=g, PolicyArn=p["Arn"])
    with pytest.raises(ClientError) as e:
        iam.detach_group_policy(GroupName=g, PolicyArn=p["Arn"])
    assert code_of(e) == "NoSuchEntity"
    iam.detach_user_policy(UserName=u.name, PolicyArn=p["Arn"])
    iam.delete_policy(PolicyArn=p["Arn"])
    with pytest.raises(ClientError) as e:
        iam.get_policy(PolicyArn=p["Arn"])
    assert code_of(e) == "NoSuchEntity"
    assert e.value.response["Error"]["Message"] == f"Policy {p['Arn']} was not found."
    with pytest.raises(ClientError) as e:
        iam.attach_user_policy(UserName=u.name, PolicyArn=p["Arn"])
    assert code_of(e) == "NoSuchEntity" and "does not exist or is not attachable" in e.value.response["Error"]["Message"]


def test_aws_managed_opsworks_policies_are_predefined(iam, endpoint, make_stack):
    names = {p["PolicyName"] for p in iam.list_policies(Scope="AWS")["Policies"]}
    assert {"AWSOpsWorks_FullAccess", "AWSOpsWorks_ReadOnlyAccess", "AWSOpsWorksInstanceRegistration"} <= names
    arn = "arn:aws:iam::aws:policy/AWSOpsWorks_FullAccess"
    doc = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
    assert "opsworks:*" in doc["Statement"][0]["Action"]
    sid = make_stack()
    u = User(endpoint, iam)
    with pytest.raises(ClientError) as e:
        u.client("opsworks").describe_layers(StackId=sid)
    assert code_of(e) == "AccessDeniedException"
    assert u.client("opsworks").describe_stacks()["Stacks"] == []
    iam.attach_user_policy(UserName=u.name, PolicyArn=arn)
    assert sid in [s["StackId"] for s in u.client("opsworks").describe_stacks()["Stacks"]]
    assert u.client("opsworks").describe_layers(StackId=sid)["Layers"] == []
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=arn)
    assert code_of(e) == "InvalidInput"
    iam.detach_user_policy(UserName=u.name, PolicyArn=arn)


def test_login_profiles_store_only_a_hash(iam, endpoint, server):
    u = User(endpoint, iam)
    with pytest.raises(ClientError) as e:
        iam.get_login_profile(UserName=u.name)
    assert code_of(e) == "NoSuchEntity"
    assert e.value.response["Error"]["Message"] == f"Login Profile for User {u.name} cannot be found."
    lp = iam.create_login_profile(UserName=u.name, Password="Very-secret-1", PasswordResetRequired=True)["LoginProfile"]
    assert lp["UserName"] == u.name and lp["PasswordResetRequired"] is True
    with pytest.raises(ClientError) as e:
        iam.create_login_profile(UserName=u.name, Password="Very-secret-1")
    assert code_of(e) == "EntityAlreadyExists"
    with pytest.raises(ClientError) as e:
        iam.update_login_profile(UserName=u.name, Password="short")
    assert code_of(e) == "PasswordPolicyViolation"
    iam.update_login_profile(UserName=u.name, Password="Another-secret-2", PasswordResetRequired=False)
    assert iam.get_login_profile(UserName=u.name)["LoginProfile"]["PasswordResetRequired"] is False
    db = database_bytes(server)
    assert b"Very-secret-1" not in db and b"Another-secret-2" not in db
    iam.delete_login_profile(UserName=u.name)
    with pytest.raises(ClientError) as e:
        iam.delete_login_profile(UserName=u.name)
    assert code_of(e) == "NoSuchEntity"


def test_secret_keys_are_sealed_at_rest(iam, endpoint, server):
    u = User(endpoint, iam)
    assert u.secret.encode() not in database_bytes(server)


def database_bytes(server) -> bytes:
    """The SQLite database and its WAL as bytes (empty on PostgreSQL, whose rows are checked by the
    store's own tests)."""
    out = b""
    for name in ("opsworks.db", "opsworks.db-wal"):
        path = server.data_dir / name
        if path.exists():
            out += path.read_bytes()
    return out


def test_only_principals_allowed_iam_actions_may_call_iam(iam, endpoint):
    u = User(endpoint, iam, policy=DESCRIBE)
    uiam = u.client("iam")
    with pytest.raises(ClientError) as e:
        uiam.list_users()
    assert code_of(e) == "AccessDenied" and status_of(e) == 403
    assert e.value.response["Error"]["Message"] == (
        f"User: {u.arn} is not authorized to perform: iam:ListUsers because no identity-based policy allows the iam:ListUsers action"
    )
    # A user managing its own keys through ${aws:username}, and nothing else.
    own = document(allow(["iam:*AccessKey*", "iam:GetUser"], "arn:aws:iam::*:user/${aws:username}"))
    iam.put_user_policy(UserName=u.name, PolicyName="own", PolicyDocument=own)
    assert uiam.get_user()["User"]["UserName"] == u.name
    assert len(uiam.list_access_keys()["AccessKeyMetadata"]) == 1
    other = User(endpoint, iam)
    with pytest.raises(ClientError) as e:
        uiam.list_access_keys(UserName=other.name)
    assert code_of(e) == "AccessDenied" and f"on resource: {other.arn}" in e.value.response["Error"]["Message"]
    iam.put_user_policy(UserName=u.name, PolicyName="deny", PolicyDocument=document(deny("iam:GetUser")))
    with pytest.raises(ClientError) as e:
        uiam.get_user()
    assert "explicit deny" in e.value.response["Error"]["Message"]


def test_sts_get_caller_identity(sts, iam, endpoint):
    me = sts.get_caller_identity()
    assert me["Arn"] == f"arn:aws:iam::{me['Account']}:root" and me["UserId"] == me["Account"]
    u = User(endpoint, iam, policy=document(deny("*")))
    # No policy is ever evaluated for it, an explicit deny of everything included.
    got = u.client("sts").get_caller_identity()
    assert got == {"UserId": u.user_id, "Account": me["Account"], "Arn": u.arn, "ResponseMetadata": got["ResponseMetadata"]}


def test_query_authentication_errors_are_the_services_own(endpoint):
    r = query_post(endpoint, "Action=ListUsers&Version=2010-05-08")
    assert r.status == 403 and b"<Code>MissingAuthenticationToken</Code>" in r.data
    assert b"https://iam.amazonaws.com/doc/2010-05-08/" in r.data
    r = query_post(endpoint, "Action=GetCallerIdentity&Version=2011-06-15")
    assert r.status == 403 and b"https://sts.amazonaws.com/doc/2011-06-15/" in r.data
    bad = client("iam", endpoint, ACCESS_KEY, SECRET_KEY + "x")
    with pytest.raises(ClientError) as e:
        bad.list_users()
    assert code_of(e) == "SignatureDoesNotMatch" and status_of(e) == 403
    unknown = client("sts", endpoint, "AKIANOSUCHKEY0000000", SECRET_KEY)
    with pytest.raises(ClientError) as e:
        unknown.get_caller_identity()
    assert code_of(e) == "InvalidClientTokenId"


def test_operations_of_iam_not_served_say_so(iam):
    with pytest.raises(ClientError) as e:
        iam.list_roles()
    assert code_of(e) == "UnsupportedOperation" and "ListRoles" in e.value.response["Error"]["Message"]


def test_the_opsworks_json_api_is_unchanged_beside_query(ow):
    assert "Stacks" in ow.describe_stacks()


def awscli(endpoint, *args, key=ACCESS_KEY, secret=SECRET_KEY):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=REGION, AWS_PAGER="")
    return subprocess.run(
        [which_aws(), *args, "--endpoint-url", endpoint, "--output", "json"],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
    )


def test_awscli_drives_iam_and_sts(endpoint):
    name = unique("cli")
    p = awscli(endpoint, "iam", "create-user", "--user-name", name)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["User"]["UserName"] == name
    p = awscli(endpoint, "iam", "create-user", "--user-name", name)
    assert p.returncode == 255
    assert f"An error occurred (EntityAlreadyExists) when calling the CreateUser operation: User with name {name} already exists." in p.stderr
    p = awscli(endpoint, "iam", "put-user-policy", "--user-name", name, "--policy-name", "r", "--policy-document", DESCRIBE)
    assert p.returncode == 0, p.stderr
    p = awscli(endpoint, "iam", "create-access-key", "--user-name", name)
    key = json.loads(p.stdout)["AccessKey"]
    p = awscli(endpoint, "sts", "get-caller-identity", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert json.loads(p.stdout)["Arn"].endswith(f":user/{name}")
    p = awscli(endpoint, "opsworks", "describe-stacks", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert p.returncode == 0, p.stderr
    p = awscli(endpoint, "opsworks", "create-stack", "--name", "x", "--stack-region", REGION,
               "--service-role-arn", "arn:aws:iam::1:role/r", "--default-instance-profile-arn",
               "arn:aws:iam::1:instance-profile/p", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert p.returncode == 255 and "(AccessDeniedException)" in p.stderr and "opsworks:CreateStack" in p.stderr
    p = awscli(endpoint, "iam", "list-users")
    assert name in [u["UserName"] for u in json.loads(p.stdout)["Users"]]
    assert urllib.parse.quote(name) == name

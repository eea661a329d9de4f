"""Apps: CreateApp, DescribeApps, UpdateApp, DeleteApp, and the AppExists waiter."""

import pytest
from botocore.exceptions import WaiterError

from harness import CREATED_AT_RE, FILTERED, UUID_RE, aws_error, missing_id


def describe_app(ow, aid):
    apps = ow.describe_apps(AppIds=[aid])["Apps"]
    assert len(apps) == 1
    return apps[0]


def test_create_app_and_describe(ow, stack):
    aid = ow.create_app(
        StackId=stack,
        Name="Shop Front",
        Shortname="shopfront",
        Description="the shop",
        Type="nodejs",
        AppSource={"Type": "git", "Url": "https://example.com/shop.git", "Revision": "main"},
        Domains=["shop.example.com", "example.com"],
        EnableSsl=False,
        Attributes={"DocumentRoot": "public"},
        DataSources=[{"Type": "None"}],
        Environment=[{"Key": "NODE_ENV", "Value": "production", "Secure": False}],
    )["AppId"]
    assert UUID_RE.match(aid), aid
    app = describe_app(ow, aid)
    assert app["AppId"] == aid
    assert app["StackId"] == stack
    assert app["Name"] == "Shop Front"
    assert app["Shortname"] == "shopfront"
    assert app["Description"] == "the shop"
    assert app["Type"] == "nodejs"
    assert app["AppSource"]["Url"] == "https://example.com/shop.git"
    assert app["AppSource"]["Revision"] == "main"
    assert app["Domains"] == ["shop.example.com", "example.com"]
    assert app["EnableSsl"] is False
    assert app["Attributes"]["DocumentRoot"] == "public"
    assert app["Environment"] == [{"Key": "NODE_ENV", "Value": "production", "Secure": False}]
    assert CREATED_AT_RE.match(app["CreatedAt"]), app["CreatedAt"]
    assert [a["AppId"] for a in ow.describe_apps(StackId=stack)["Apps"]] == [aid]


def test_create_app_generates_shortname(ow, stack):
    # The CLI's describe-apps example: the app "SimpleJSP" has the short name "simplejsp".
    aid = ow.create_app(StackId=stack, Name="SimpleJSP", Type="java")["AppId"]
    assert describe_app(ow, aid)["Shortname"] == "simplejsp"
    aid = ow.create_app(StackId=stack, Name="My App", Type="php")["AppId"]
    short = describe_app(ow, aid)["Shortname"]
    assert short and " " not in short and short == short.lower(), short


def test_app_secrets_are_filtered(ow, stack):
    aid = ow.create_app(
        StackId=stack,
        Name="secretive",
        Type="other",
        AppSource={
            "Type": "git",
            "Url": "git@example.com:me/app.git",
            "Username": "me",
            "Password": "app-source-Pass-1",
            "SshKey": "-----BEGIN RSA PRIVATE KEY-----\nappsecret\n-----END RSA PRIVATE KEY-----",
        },
        Environment=[
            {"Key": "DB_PASSWORD", "Value": "env-Secret-1", "Secure": True},
            {"Key": "PLAIN", "Value": "visible"},
        ],
    )["AppId"]
    for app in (describe_app(ow, aid), ow.describe_apps(StackId=stack)["Apps"][0]):
        assert app["AppSource"]["Password"] == FILTERED
        assert app["AppSource"]["SshKey"] == FILTERED
        assert app["AppSource"]["Username"] == "me"
        env = {e["Key"]: e for e in app["Environment"]}
        assert env["DB_PASSWORD"]["Value"] == FILTERED
        assert env["DB_PASSWORD"]["Secure"] is True
        assert env["PLAIN"]["Value"] == "visible"
        assert env["PLAIN"].get("Secure", False) is False


def test_create_app_errors(ow, ow_raw, stack):
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.create_app(StackId=bad, Name="x", Type="other")
    for missing in ("StackId", "Name", "Type"):
        params = {"StackId": stack, "Name": "req", "Type": "other"}
        del params[missing]
        with aws_error("ValidationException"):
            ow_raw.create_app(**params)
    with aws_error("ValidationException"):
        ow_raw.create_app(StackId=stack, Name="bad-type", Type="cobol")
    with aws_error("ValidationException"):
        ow_raw.create_app(StackId=stack, Name="bad-attr", Type="other", Attributes={"Nope": "x"})
    with aws_error("ValidationException"):
        ow_raw.create_app(StackId=stack, Name="bad-src", Type="other", AppSource={"Type": "cvs", "Url": "x"})
    with aws_error(
        "ValidationException"
    ):  # AutoSelectOpsworksMysqlInstance, OpsworksMysqlInstance, RdsDbInstance, None
        ow.create_app(StackId=stack, Name="bad-db", Type="other", DataSources=[{"Type": "OracleDb"}])
    assert ow.describe_apps(StackId=stack)["Apps"] == []


@pytest.mark.parametrize(
    "env",
    [
        [{"Key": "1STARTS_WITH_DIGIT", "Value": "x"}],
        [{"Key": "has-dash", "Value": "x"}],
        [{"Key": "K" * 65, "Value": "x"}],
        [{"Key": "LONG_VALUE", "Value": "v" * 257}],
    ],
    ids=["digit-first", "dash", "key-65", "value-257"],
)
def test_app_environment_rules(ow, stack, env):
    with aws_error("ValidationException"):
        ow.create_app(StackId=stack, Name="env", Type="other", Environment=env)


def test_app_environment_size_limit(ow, stack):
    env = [{"Key": f"VAR_{i}", "Value": "v" * 256} for i in range(100)]  # about 27 KB
    # The model quotes the message: "Environment: is too large (maximum is 20KB)."
    with aws_error("ValidationException", "Environment: is too large (maximum is 20KB)"):
        ow.create_app(StackId=stack, Name="env", Type="other", Environment=env)


def test_chef_version_frozen_once_apps_have_environment(ow, make_stack, make_app):
    # The model: "If you have specified one or more environment variables, you cannot modify the
    # stack's Chef version."
    sid = make_stack(ConfigurationManager={"Name": "Chef", "Version": "11.10"})
    make_app(sid, Environment=[{"Key": "A", "Value": "b"}])
    with aws_error("ValidationException"):
        ow.update_stack(StackId=sid, ConfigurationManager={"Name": "Chef", "Version": "11.4"})
    stack = ow.describe_stacks(StackIds=[sid])["Stacks"][0]
    assert stack["ConfigurationManager"] == {"Name": "Chef", "Version": "11.10"}


def test_app_environment_limits_inclusive(ow, stack):
    env = [{"Key": "K" * 64, "Value": "v" * 256}, {"Key": "_under", "Value": ""}]
    aid = ow.create_app(StackId=stack, Name="edge", Type="other", Environment=env)["AppId"]
    got = {e["Key"]: e["Value"] for e in describe_app(ow, aid)["Environment"]}
    assert got == {"K" * 64: "v" * 256, "_under": ""}


def test_describe_apps_identifier_rules(ow, stack, make_app):
    aid = make_app(stack)
    with aws_error("ValidationException"):
        ow.describe_apps(StackId=stack, AppIds=[aid])


def test_describe_apps_unknown(ow, stack, make_app):
    aid = make_app(stack)
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find stack with ID {bad}"):
        ow.describe_apps(StackId=bad)
    with aws_error("ResourceNotFoundException", bad):
        ow.describe_apps(AppIds=[aid, bad])


def test_update_app(ow, stack, make_app):
    aid = make_app(stack, Type="php")
    ow.update_app(
        AppId=aid,
        Name="Renamed App",
        Description="new",
        Type="static",
        AppSource={"Type": "archive", "Url": "https://example.com/site.zip", "Password": "upd-Pass-2"},
        Domains=["new.example.com"],
        Environment=[{"Key": "TOKEN", "Value": "upd-Secret-2", "Secure": True}],
    )
    app = describe_app(ow, aid)
    assert app["Name"] == "Renamed App"
    assert app["Description"] == "new"
    assert app["Type"] == "static"
    assert app["AppSource"]["Type"] == "archive"
    assert app["AppSource"]["Password"] == FILTERED
    assert app["Domains"] == ["new.example.com"]
    assert app["Environment"] == [{"Key": "TOKEN", "Value": FILTERED, "Secure": True}]


def test_update_app_errors(ow, ow_raw, stack, make_app):
    aid = make_app(stack)
    bad = missing_id()
    with aws_error("ResourceNotFoundException", message=f"Unable to find app with ID {bad}"):
        ow.update_app(AppId=bad, Name="x")
    with aws_error("ValidationException"):
        ow_raw.update_app(AppId=aid, Type="cobol")
    with aws_error("ValidationException"):
        ow.update_app(AppId=aid, Environment=[{"Key": "bad key", "Value": "x"}])
    with aws_error("ValidationException"):
        ow_raw.update_app(Name="no id")


def test_delete_app(ow, stack, make_app):
    aid = make_app(stack)
    ow.delete_app(AppId=aid)
    with aws_error("ResourceNotFoundException", aid):
        ow.describe_apps(AppIds=[aid])
    assert ow.describe_apps(StackId=stack)["Apps"] == []
    with aws_error("ResourceNotFoundException", message=f"Unable to find app with ID {aid}"):
        ow.delete_app(AppId=aid)


# ---- AppExists waiter -------------------------------------------------------------------------------


def test_app_exists_waiter(ow, stack, make_app):
    aid = make_app(stack)
    waiter = ow.get_waiter("app_exists")
    waiter.wait(AppIds=[aid], WaiterConfig={"Delay": 1, "MaxAttempts": 3})


def test_app_exists_waiter_fails_fast_on_unknown_app(ow):
    # The waiter's failure acceptor is HTTP 400: an unknown app ends it on the first attempt.
    waiter = ow.get_waiter("app_exists")
    with pytest.raises(WaiterError) as exc:
        waiter.wait(AppIds=[missing_id()], WaiterConfig={"Delay": 1, "MaxAttempts": 3})
    assert "terminal failure state" in str(exc.value)
    assert exc.value.last_response["Error"]["Code"] == "ResourceNotFoundException"

"""RDS on the server's own endpoint and OpsWorks' RDS operations, driven by boto3, awscli and
`opsworks rds import`, on a server that runs no machines (the conformance server): every input
RDS refuses with its own code and wording, the operations not served, and the registration of a
real database that runs elsewhere — this host's PostgreSQL (scripts/postgres-test-setup.sh) —
with real credential checks. The databases this server makes itself are tested by
tests/lifecycle/test_rds.py, which runs machines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.parse

import pytest
from botocore.exceptions import ClientError, WaiterError

from harness import ACCESS_KEY, REGION, SECRET_KEY, aws_error, server_binary, unique, which_aws
from iam_helpers import User, allow, client, document

FILTERED = "*****FILTERED*****"

GOOD = {
    "DBInstanceIdentifier": "conf-db",
    "DBInstanceClass": "db.t3.micro",
    "Engine": "mysql",
    "MasterUsername": "admin",
    "MasterUserPassword": "secret123",
    "AllocatedStorage": 20,
}


@pytest.fixture(scope="module")
def rds(endpoint):
    return client("rds", endpoint)


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def with_(**changes):
    params = dict(GOOD)
    for k, v in changes.items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = v
    return params


@pytest.mark.parametrize(
    "changes, code, fragment",
    [
        ({"DBInstanceIdentifier": "1bad"}, "InvalidParameterValue", "not a valid identifier"),
        ({"DBInstanceIdentifier": "two--hyphens"}, "InvalidParameterValue", "not a valid identifier"),
        ({"Engine": "foo"}, "InvalidParameterValue", "Invalid DB engine: foo"),
        ({"Engine": "aurora-mysql"}, "InvalidParameterCombination", "not served by this server"),
        ({"DBInstanceClass": "t3.micro"}, "InvalidParameterCombination", "DBInstanceClass=t3.micro"),
        ({"AllocatedStorage": None}, "InvalidParameterValue", "AllocatedStorage must be provided"),
        ({"AllocatedStorage": 5}, "InvalidParameterValue",
         "Invalid storage size for engine name mysql and storage type gp2: 5"),
        ({"MasterUsername": None}, "InvalidParameterValue", "MasterUsername must be provided"),
        ({"MasterUsername": "rdsadmin"}, "InvalidParameterValue", "reserved word"),
        ({"MasterUsername": "a" * 17}, "InvalidParameterValue", "1 to 16"),
        ({"MasterUserPassword": "Sh0rt!"}, "InvalidParameterValue", "shorter than 8 characters"),
        ({"MasterUserPassword": "has@sign1"}, "InvalidParameterValue", "printable ASCII"),
        ({"MasterUserPassword": "x" * 42}, "InvalidParameterValue", "longer than 41"),
        ({"DBName": "1shop"}, "InvalidParameterValue", "DBName"),
        ({"Port": 80}, "InvalidParameterValue", "between 1150 and 65535"),
        ({"StorageType": "magnetic"}, "InvalidParameterValue", "Invalid storage type: magnetic"),
        ({"MultiAZ": True}, "InvalidParameterCombination", "MultiAZ=true"),
        ({"KmsKeyId": "k"}, "InvalidParameterCombination", "KmsKeyId"),
        ({"EngineVersion": "5.7"}, "InvalidParameterCombination", "Cannot find version 5.7 for mysql"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
def test_create_db_instance_refuses_bad_input_with_rds_codes(rds, changes, code, fragment):
    with pytest.raises(ClientError) as e:
        rds.create_db_instance(**with_(**changes))
    err = e.value.response["Error"]
    assert (err["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 400), err
    assert fragment in err["Message"], err["Message"]
    # A refused password is never echoed.
    assert changes.get("MasterUserPassword", "\0") not in err["Message"]
    assert rds.describe_db_instances()["DBInstances"] == [], "a refused create made something"


def test_a_server_without_machines_says_it_cannot_run_databases(rds):
    with pytest.raises(ClientError) as e:
        rds.create_db_instance(**GOOD)
    assert code_of(e) == "InvalidParameterCombination"
    assert "runs no machines" in e.value.response["Error"]["Message"]
    assert "opsworks rds import" in e.value.response["Error"]["Message"]
    assert rds.describe_db_instances()["DBInstances"] == []


def test_missing_db_instances_are_db_instance_not_found(rds):
    calls = [
        lambda: rds.describe_db_instances(DBInstanceIdentifier="nope"),
        lambda: rds.modify_db_instance(DBInstanceIdentifier="nope", MasterUserPassword="secret123",
                                       ApplyImmediately=True),
        lambda: rds.reboot_db_instance(DBInstanceIdentifier="nope"),
        lambda: rds.delete_db_instance(DBInstanceIdentifier="nope", SkipFinalSnapshot=True),
    ]
    for call in calls:
        with pytest.raises(rds.exceptions.DBInstanceNotFoundFault) as e:
            call()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert e.value.response["Error"]["Message"] == "DBInstance nope not found."
    # The deleted waiter takes "not found" as deleted, at its first poll.
    rds.get_waiter("db_instance_deleted").wait(DBInstanceIdentifier="nope", WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    with pytest.raises(WaiterError):
        rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="nope",
                                                     WaiterConfig={"Delay": 1, "MaxAttempts": 2})


def test_delete_needs_skip_final_snapshot_and_describe_checks_its_filters(rds):
    with aws_error("InvalidParameterCombination", "FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot"):
        rds.delete_db_instance(DBInstanceIdentifier="nope")
    with aws_error("InvalidParameterCombination", "Final snapshots are not supported"):
        rds.delete_db_instance(DBInstanceIdentifier="nope", FinalDBSnapshotIdentifier="snap")
    with aws_error("InvalidParameterValue", "Unrecognized filter name: color"):
        rds.describe_db_instances(Filters=[{"Name": "color", "Values": ["red"]}])
    with aws_error("InvalidParameterValue", "MaxRecords"):
        rds.describe_db_instances(MaxRecords=5)
    assert rds.describe_db_instances(Filters=[{"Name": "engine", "Values": ["mysql"]}])["DBInstances"] == []
    with aws_error("InvalidParameterCombination", "ForceFailover"):
        rds.reboot_db_instance(DBInstanceIdentifier="nope", ForceFailover=True)
    with aws_error("InvalidParameterCombination", "DBInstanceClass"):
        rds.modify_db_instance(DBInstanceIdentifier="nope", DBInstanceClass="db.t3.large")


def test_other_rds_operations_say_they_are_not_supported(rds):
    for call in (lambda: rds.create_db_snapshot(DBInstanceIdentifier="x", DBSnapshotIdentifier="s"),
                 lambda: rds.describe_db_clusters(),
                 lambda: rds.stop_db_instance(DBInstanceIdentifier="x")):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "UnsupportedOperation"
        assert "not supported by this server" in e.value.response["Error"]["Message"]


def awscli(endpoint, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION=REGION, AWS_PAGER="", AWS_MAX_ATTEMPTS="1")
    return subprocess.run([which_aws(), *args, "--endpoint-url", endpoint, "--output", "json"], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def test_awscli_rds_errors_are_rds_errors(endpoint):
    p = awscli(endpoint, "rds", "create-db-instance", "--db-instance-identifier", "Bad--Id",
               "--db-instance-class", "db.t3.micro", "--engine", "mysql", "--master-username", "admin",
               "--master-user-password", "secret123", "--allocated-storage", "20")
    assert p.returncode == 255
    assert "An error occurred (InvalidParameterValue) when calling the CreateDBInstance operation: " \
           "The parameter DBInstanceIdentifier is not a valid identifier." in p.stderr
    p = awscli(endpoint, "rds", "describe-db-instances", "--db-instance-identifier", "nope")
    assert p.returncode == 255 and "(DBInstanceNotFound)" in p.stderr and "DBInstance nope not found." in p.stderr
    p = awscli(endpoint, "rds", "describe-db-instances")
    assert p.returncode == 0, p.stderr
    assert "DBInstances" in json.loads(p.stdout)
    p = awscli(endpoint, "opsworks", "register-rds-db-instance", "--stack-id", "x",
               "--rds-db-instance-arn", "not-an-arn", "--db-user", "u", "--db-password", "p")
    assert p.returncode == 255 and "(ResourceNotFoundException)" in p.stderr


def test_registration_refuses_unknown_and_malformed_databases(ow, make_stack):
    stack = make_stack()
    account = "123456789012"
    with aws_error("ValidationException", "is not an RDS DB instance ARN"):
        ow.register_rds_db_instance(StackId=stack, RdsDbInstanceArn="arn:aws:rds:us-east-1:1:cluster:x",
                                    DbUser="u", DbPassword="p")
    unknown = f"arn:aws:rds:{REGION}:{account}:db:nosuchdb"
    with pytest.raises(ClientError) as e:
        ow.register_rds_db_instance(StackId=stack, RdsDbInstanceArn=unknown, DbUser="u", DbPassword="p")
    assert code_of(e) == "ResourceNotFoundException" and unknown in e.value.response["Error"]["Message"]
    for call in (lambda: ow.update_rds_db_instance(RdsDbInstanceArn=unknown, DbPassword="x"),
                 lambda: ow.deregister_rds_db_instance(RdsDbInstanceArn=unknown)):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "ResourceNotFoundException"
    assert ow.describe_rds_db_instances(StackId=stack)["RdsDbInstances"] == []
    with aws_error("ValidationException", "not registered with this stack"):
        ow.create_app(StackId=stack, Name="x", Type="other",
                      DataSources=[{"Type": "RdsDbInstance", "Arn": unknown, "DatabaseName": "d"}])


def run_import(endpoint, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    return subprocess.run([str(server_binary()), "rds", "import", *args, "--endpoint", endpoint],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_import_refuses_an_address_where_nothing_answers(endpoint, rds):
    p = run_import(endpoint, "ghost", "--engine", "mysql", "--address", "127.0.0.1", "--port", str(free_port()))
    assert p.returncode == 1
    assert "(InvalidParameterCombination)" in p.stderr and "Nothing answers at 127.0.0.1:" in p.stderr
    with pytest.raises(rds.exceptions.DBInstanceNotFoundFault):
        rds.describe_db_instances(DBInstanceIdentifier="ghost")
    p = run_import(endpoint, "Bad--Id", "--engine", "mysql", "--address", "127.0.0.1", "--port", "5432")
    assert p.returncode == 1 and "(InvalidParameterValue)" in p.stderr
    bad_key = subprocess.run([str(server_binary()), "rds", "import", "x", "--engine", "mysql", "--address",
                              "127.0.0.1", "--port", "1", "--endpoint", endpoint],
                             env=dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY="wrong"),
                             capture_output=True, text=True, timeout=60, check=False)
    assert bad_key.returncode == 1 and "(SignatureDoesNotMatch)" in bad_key.stderr


def host_postgres():
    """The host's PostgreSQL as scripts/postgres-test-setup.sh made it: (host, port, user, password)."""
    url = os.environ.get("OPSWORKS_TEST_DATABASE_URL")
    if not url:
        pytest.fail("OPSWORKS_TEST_DATABASE_URL is not set: run scripts/postgres-test-setup.sh (scripts/test.sh does) "
                    "so this test has a database that runs elsewhere to import")
    u = urllib.parse.urlparse(url)
    return u.hostname, u.port or 5432, urllib.parse.unquote(u.username), urllib.parse.unquote(u.password)


def test_an_imported_database_registers_with_real_credential_checks(endpoint, rds, ow, make_stack, server):
    host, port, user, password = host_postgres()
    name = unique("hostpg")
    p = run_import(endpoint, name, "--engine", "postgres", "--address", host, "--port", str(port))
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)["DBInstance"]
    assert shown["DBInstanceStatus"] == "available" and shown["Endpoint"]["Address"] == host
    db = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
    arn = db["DBInstanceArn"]
    assert arn == f"arn:aws:rds:{REGION}:{arn.split(':')[4]}:db:{name}" and db["Engine"] == "postgres"
    # Twice is a duplicate.
    p = run_import(endpoint, name, "--engine", "postgres", "--address", host, "--port", str(port))
    assert p.returncode == 1 and "(DBInstanceAlreadyExists)" in p.stderr
    # An imported database is changed where it runs, not here.
    with aws_error("InvalidParameterCombination", "imported"):
        rds.modify_db_instance(DBInstanceIdentifier=name, MasterUserPassword="another123", ApplyImmediately=True)
    with aws_error("InvalidParameterCombination", "imported"):
        rds.reboot_db_instance(DBInstanceIdentifier=name)

    stack, other = make_stack(), make_stack()
    with aws_error("ValidationException", "wrong user name or password", names=(user,)):
        ow.register_rds_db_instance(StackId=stack, RdsDbInstanceArn=arn, DbUser=user, DbPassword=password + "x")
    with aws_error("ValidationException", "wrong user name or password"):
        ow.register_rds_db_instance(StackId=stack, RdsDbInstanceArn=arn, DbUser="nobody_here", DbPassword=password)
    assert ow.describe_rds_db_instances(StackId=stack)["RdsDbInstances"] == []
    ow.register_rds_db_instance(StackId=stack, RdsDbInstanceArn=arn, DbUser=user, DbPassword=password)
    [registered] = ow.describe_rds_db_instances(StackId=stack)["RdsDbInstances"]
    assert registered == {
        "RdsDbInstanceArn": arn, "DbInstanceIdentifier": name, "DbUser": user, "DbPassword": FILTERED,
        "Region": REGION, "Address": host, "Engine": "postgres", "StackId": stack, "MissingOnRds": False,
    }
    # Signing in taught the catalog the real version.
    assert rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["EngineVersion"][:2].isdigit()
    assert ow.describe_rds_db_instances(StackId=stack, RdsDbInstanceArns=[arn])["RdsDbInstances"][0]["RdsDbInstanceArn"] == arn
    # One stack per database.
    with aws_error("ValidationException", "already registered with this stack"):
        ow.register_rds_db_instance(StackId=stack, RdsDbInstanceArn=arn, DbUser=user, DbPassword=password)
    with aws_error("ValidationException", f"registered with stack {stack}"):
        ow.register_rds_db_instance(StackId=other, RdsDbInstanceArn=arn, DbUser=user, DbPassword=password)

    # Apps: a data source must be a database of the app's own stack.
    source = [{"Type": "RdsDbInstance", "Arn": arn, "DatabaseName": "opsworks_test"}]
    app = ow.create_app(StackId=stack, Name="uses-db", Type="other", DataSources=source)["AppId"]
    with aws_error("ValidationException", "registered with another stack"):
        ow.create_app(StackId=other, Name="steals-db", Type="other", DataSources=source)
    with aws_error("ValidationException", "data source of app(s) uses-db"):
        ow.deregister_rds_db_instance(RdsDbInstanceArn=arn)

    # Updates sign in with what they change; an echoed FILTERED keeps the stored password.
    with aws_error("ValidationException", "wrong user name or password"):
        ow.update_rds_db_instance(RdsDbInstanceArn=arn, DbPassword="not-" + password)
    ow.update_rds_db_instance(RdsDbInstanceArn=arn, DbPassword=FILTERED)
    ow.update_rds_db_instance(RdsDbInstanceArn=arn, DbUser=user, DbPassword=password)

    # Deleting the catalog entry leaves the database (it runs elsewhere); the stack sees it missing.
    rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)
    [missing] = ow.describe_rds_db_instances(StackId=stack)["RdsDbInstances"]
    assert missing["MissingOnRds"] is True and missing["Address"] == host
    with socket.create_connection((host, port), timeout=5):
        pass
    ow.delete_app(AppId=app)
    ow.deregister_rds_db_instance(RdsDbInstanceArn=arn)
    assert ow.describe_rds_db_instances(StackId=stack)["RdsDbInstances"] == []
    # No password given reached the server's log (the host's real one is a common word).
    for given in (password + "x", "not-" + password):
        assert given not in server.output()


def test_rds_calls_are_authorized_for_iam_users(endpoint):
    iam = client("iam", endpoint)
    reader = User(endpoint, iam, policy=document(allow("rds:DescribeDBInstances")))
    assert "DBInstances" in reader.client("rds").describe_db_instances()
    with pytest.raises(ClientError) as e:
        reader.client("rds").create_db_instance(**GOOD)
    assert code_of(e) == "AccessDenied" and "rds:CreateDBInstance" in e.value.response["Error"]["Message"]
    nobody = User(endpoint, iam)
    with pytest.raises(ClientError) as e:
        nobody.client("rds").describe_db_instances()
    assert code_of(e) == "AccessDenied"


def test_deleting_a_stack_deregisters_its_databases(endpoint, rds, ow, make_stack):
    host, port, user, password = host_postgres()
    name = unique("stackpg")
    p = run_import(endpoint, name, "--engine", "postgres", "--address", host, "--port", str(port))
    assert p.returncode == 0, p.stderr
    arn = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceArn"]
    first, second = make_stack(), make_stack()
    ow.register_rds_db_instance(StackId=first, RdsDbInstanceArn=arn, DbUser=user, DbPassword=password)
    with aws_error("ValidationException", f"registered with stack {first}"):
        ow.register_rds_db_instance(StackId=second, RdsDbInstanceArn=arn, DbUser=user, DbPassword=password)
    ow.delete_stack(StackId=first)
    # The database stays in the catalog and is free for another stack.
    assert rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"] == "available"
    ow.register_rds_db_instance(StackId=second, RdsDbInstanceArn=arn, DbUser=user, DbPassword=password)
    assert [r["StackId"] for r in ow.describe_rds_db_instances(StackId=second)["RdsDbInstances"]] == [second]
    ow.deregister_rds_db_instance(RdsDbInstanceArn=arn)
    rds.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)

#!/usr/bin/env python3
"""Golden fixtures from botocore 1.35.99 itself, for the Query/EC2 protocol layer's tests.

    ~/.cache/opsworks-conformance-venv/bin/python crates/opsworks-api/tests/botocore/gen_fixtures.py

Writes cases.json beside this file. Each case names a service (iam, sts, rds, elb, ec2, or the
synthetic wiretest-query / wiretest-ec2 models beside this file, which exercise what the served
operations never use: maps, flattened lists, timestamps, doubles, blobs, queryName) and an
operation, with
  - `params`: the caller's parameters, JSON-normalized (timestamps as our parser renders them,
    blobs as base64);
  - `body`: the exact form body botocore's own serializer and request preparation send for them;
  - `output` (optional): a handler's output value, which our XML writer renders into
    xml/<name>.xml, and `expected`: what a botocore client must then return (check_xml.py);
  - `error` (optional): {code, message}; our writer renders xml/<name>.xml and check_xml.py
    asserts botocore's client raises it with the model's exception class and status.
The Rust test (src/query/tests.rs, `botocore_fixtures`) parses each body and compares with
`params`, and compares its XML with the committed xml/ files (OPSWORKS_BLESS_XML=1 rewrites them).
"""

import base64
import datetime
import json
import pathlib
import urllib.parse

import botocore
import botocore.session
from botocore.awsrequest import create_request_object, prepare_request_dict
from botocore.model import ServiceModel
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator

HERE = pathlib.Path(__file__).resolve().parent
UTC = datetime.timezone.utc
T0 = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime.datetime(2025, 6, 7, 8, 9, 10, 120000, tzinfo=UTC)
SERVICE_NAMES = {"elb": "elb", "iam": "iam", "sts": "sts", "rds": "rds", "ec2": "ec2"}

POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["opsworks:Describe*"], "Resource": "*",
     "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]}
POLICY_TEXT = json.dumps(POLICY)


def user(name, path="/"):
    return {"Path": path, "UserName": name, "UserId": "AIDA" + name.upper().ljust(17, "X")[:17],
            "Arn": f"arn:aws:iam::123456789012:user{path}{name}", "CreateDate": "2025-01-02T03:04:05Z"}


def group(name):
    return {"Path": "/", "GroupName": name, "GroupId": "AGPA" + name.upper().ljust(17, "X")[:17],
            "Arn": f"arn:aws:iam::123456789012:group/{name}", "CreateDate": "2025-01-02T03:04:05Z"}


def policy(name):
    return {"PolicyName": name, "PolicyId": "ANPAEXAMPLE1234567890", "Path": "/",
            "Arn": f"arn:aws:iam::123456789012:policy/{name}", "DefaultVersionId": "v1",
            "AttachmentCount": 2, "PermissionsBoundaryUsageCount": 0, "IsAttachable": True,
            "Description": "lets <ops> & \"friends\" in", "CreateDate": "2025-01-02T03:04:05Z",
            "UpdateDate": "2025-06-07T08:09:10.120Z",
            "Tags": [{"Key": "team", "Value": "ops"}]}


DB = {
    "DBInstanceIdentifier": "mydb", "DBInstanceClass": "db.t3.micro", "Engine": "mysql",
    "DBInstanceStatus": "available", "MasterUsername": "admin", "DBName": "app",
    "Endpoint": {"Address": "10.217.0.9", "Port": 3306, "HostedZoneId": "Z2R2ITUGPM61AM"},
    "AllocatedStorage": 20, "InstanceCreateTime": "2025-01-02T03:04:05.000Z",
    "PreferredBackupWindow": "12:55-13:25", "BackupRetentionPeriod": 1,
    "DBSecurityGroups": [],
    "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-1", "Status": "active"},
                          {"VpcSecurityGroupId": "sg-2", "Status": "active"}],
    "DBParameterGroups": [{"DBParameterGroupName": "default.mysql8.0",
                           "ParameterApplyStatus": "in-sync"}],
    "PendingModifiedValues": {"MasterUserPassword": "****", "AllocatedStorage": 30},
    "MultiAZ": False, "EngineVersion": "10.11.6", "AutoMinorVersionUpgrade": True,
    "PubliclyAccessible": False, "StorageType": "gp2", "DbInstancePort": 0,
    "StorageEncrypted": False, "DbiResourceId": "db-ABCDEFGHIJKLMNOP",
    "DBInstanceArn": "arn:aws:rds:us-east-1:123456789012:db:mydb",
    "IAMDatabaseAuthenticationEnabled": False, "PerformanceInsightsEnabled": False,
    "DeletionProtection": False, "AssociatedRoles": [],
    "TagList": [{"Key": "k", "Value": "v"}],
}

LB = {
    "LoadBalancerName": "web", "DNSName": "web-1.us-east-1.elb.amazonaws.com",
    "CanonicalHostedZoneNameID": "Z35SXDOTRQ7X7K",
    "ListenerDescriptions": [{"Listener": {"Protocol": "HTTP", "LoadBalancerPort": 80,
                                           "InstanceProtocol": "HTTP", "InstancePort": 8080},
                              "PolicyNames": []}],
    "Policies": {"AppCookieStickinessPolicies": [], "LBCookieStickinessPolicies": [],
                 "OtherPolicies": []},
    "BackendServerDescriptions": [], "AvailabilityZones": ["us-east-1a", "us-east-1b"],
    "Subnets": [], "Instances": [{"InstanceId": "i-1"}, {"InstanceId": "i-2"}],
    "HealthCheck": {"Target": "HTTP:8080/ping", "Interval": 30, "Timeout": 5,
                    "UnhealthyThreshold": 2, "HealthyThreshold": 10},
    "SourceSecurityGroup": {"OwnerAlias": "amazon-elb", "GroupName": "amazon-elb-sg"},
    "SecurityGroups": [], "CreatedTime": "2025-01-02T03:04:05.000Z", "Scheme": "internet-facing",
}

VOLUME = {
    "VolumeId": "vol-0123456789abcdef0", "Size": 8, "AvailabilityZone": "us-east-1a",
    "State": "in-use", "CreateTime": "2025-01-02T03:04:05.000Z",
    "Attachments": [{"AttachTime": "2025-01-02T03:05:00.000Z", "Device": "/dev/sdf",
                     "InstanceId": "i-1", "State": "attached", "VolumeId": "vol-0123456789abcdef0",
                     "DeleteOnTermination": False}],
    "Tags": [{"Key": "Name", "Value": "data <1>"}], "VolumeType": "gp3", "Iops": 3000,
    "Encrypted": False, "MultiAttachEnabled": False, "Throughput": 125, "SnapshotId": "",
}

EVERYTHING_IN = {
    "Str": "a b&c=d/é+%", "Int": -7, "Long": 9007199254740993, "Bool": False, "Dbl": 2.5,
    "Ts": T1, "Blob": b"\x00\xffbin", "Nested": {"Inner": {"Leaf": "deep", "Flag": True}, "Count": 3},
    "Plain": ["p1", "p2"], "Named": ["n1"], "Flat": ["f1", "f2", "f3"], "FlatNamed": ["t1"],
    "Structs": [{"Leaf": "s1"}, {"Leaf": "s2", "Flag": False}], "Lists": [["a", "b"], ["c"]],
    "Map": {"k1": "v1", "k 2": "v&2"}, "NamedMap": {"x": {"Leaf": "lx"}},
    "FlatMap": {"one": 1, "two": 2}, "Renamed": "r", "Queried": "q",
}
EVERYTHING_OUT = {
    "Str": "a <b> & \"c\" 'd'\r\nnext", "Int": -7, "Long": 9007199254740993, "Bool": True,
    "Dbl": 2.5, "Ts": "2025-06-07T08:09:10.120Z", "Blob": base64.b64encode(b"\x00\xffbin").decode(),
    "Nested": {"Inner": {"Leaf": "deep", "Flag": False}, "Count": 0},
    "Plain": ["p1", "p2"], "Named": [], "Flat": ["f1", "f2"], "FlatNamed": ["t1"],
    "Structs": [{"Leaf": "s1"}, {"Leaf": "s2", "Flag": True}], "Lists": [["a"], ["b", "c"]],
    "Map": {"k1": "v1", "k2": ""}, "NamedMap": {"x": {"Leaf": "lx"}}, "FlatMap": {"one": 1},
    "Renamed": "r", "Queried": "q",
}

CASES = [
    # IAM
    ("iam", "CreateUser", {"UserName": "alice", "Path": "/ops/",
                           "PermissionsBoundary": "arn:aws:iam::123456789012:policy/boundary",
                           "Tags": [{"Key": "team", "Value": "a b/c:d=e+f@g"}, {"Key": "empty", "Value": ""}]},
     {"User": {**user("alice", "/ops/"), "Tags": [{"Key": "team", "Value": "a b<c>&d"},
                                                 {"Key": "empty", "Value": ""}]}}),
    ("iam", "GetUser", {}, {"User": {**user("root"), "PasswordLastUsed": "2025-06-07T08:09:10Z"}}),
    ("iam", "ListUsers", {"PathPrefix": "/ops/", "Marker": "m1", "MaxItems": 10},
     {"Users": [user("alice", "/ops/"), user("bob", "/ops/")], "IsTruncated": True, "Marker": "m2"}),
    ("iam", "ListUsers", {}, {"Users": [], "IsTruncated": False}),
    ("iam", "UpdateUser", {"UserName": "alice", "NewUserName": "alice2", "NewPath": "/x/"}, {}),
    ("iam", "DeleteUser", {"UserName": "OpsWorks-stack-host+1"}, None),
    ("iam", "CreateAccessKey", {"UserName": "alice"},
     {"AccessKey": {"UserName": "alice", "AccessKeyId": "AKIAEXAMPLE123456789", "Status": "Active",
                    "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "CreateDate": "2025-01-02T03:04:05.411Z"}}),
    ("iam", "ListAccessKeys", {"UserName": "alice", "MaxItems": 2},
     {"AccessKeyMetadata": [{"UserName": "alice", "AccessKeyId": "AKIAEXAMPLE123456789",
                             "Status": "Inactive", "CreateDate": "2025-01-02T03:04:05Z"}],
      "IsTruncated": False}),
    ("iam", "UpdateAccessKey", {"UserName": "alice", "AccessKeyId": "AKIAEXAMPLE123456789",
                                "Status": "Inactive"}, None),
    ("iam", "DeleteAccessKey", {"AccessKeyId": "AKIAEXAMPLE123456789"}, None),
    ("iam", "GetAccessKeyLastUsed", {"AccessKeyId": "AKIAEXAMPLE123456789"},
     {"UserName": "alice", "AccessKeyLastUsed": {"LastUsedDate": "2025-01-02T03:04:05Z",
                                                 "ServiceName": "opsworks", "Region": "us-east-1"}}),
    ("iam", "CreateGroup", {"GroupName": "OpsWorks-1234", "Path": "/AWS/OpsWorks/"},
     {"Group": group("OpsWorks-1234")}),
    ("iam", "GetGroup", {"GroupName": "devs", "MaxItems": 100},
     {"Group": group("devs"), "Users": [user("alice")], "IsTruncated": False}),
    ("iam", "ListGroups", {"PathPrefix": "/"}, {"Groups": [group("a"), group("b")], "IsTruncated": False}),
    ("iam", "DeleteGroup", {"GroupName": "devs"}, None),
    ("iam", "AddUserToGroup", {"GroupName": "devs", "UserName": "alice"}, None),
    ("iam", "RemoveUserFromGroup", {"GroupName": "devs", "UserName": "alice"}, None),
    ("iam", "ListGroupsForUser", {"UserName": "alice"}, {"Groups": [group("devs")], "IsTruncated": False}),
    ("iam", "PutUserPolicy", {"UserName": "alice", "PolicyName": "p", "PolicyDocument": POLICY_TEXT}, None),
    ("iam", "GetUserPolicy", {"UserName": "alice", "PolicyName": "p"},
     {"UserName": "alice", "PolicyName": "p",
      "PolicyDocument": urllib.parse.quote(POLICY_TEXT, safe="")}),
    ("iam", "ListUserPolicies", {"UserName": "alice"}, {"PolicyNames": ["p", "q"], "IsTruncated": False}),
    ("iam", "DeleteUserPolicy", {"UserName": "alice", "PolicyName": "p"}, None),
    ("iam", "PutGroupPolicy", {"GroupName": "devs", "PolicyName": "p", "PolicyDocument": POLICY_TEXT}, None),
    ("iam", "GetGroupPolicy", {"GroupName": "devs", "PolicyName": "p"},
     {"GroupName": "devs", "PolicyName": "p", "PolicyDocument": urllib.parse.quote(POLICY_TEXT, safe="")}),
    ("iam", "ListGroupPolicies", {"GroupName": "devs"}, {"PolicyNames": [], "IsTruncated": False}),
    ("iam", "DeleteGroupPolicy", {"GroupName": "devs", "PolicyName": "p"}, None),
    ("iam", "CreatePolicy", {"PolicyName": "ops", "PolicyDocument": POLICY_TEXT, "Path": "/",
                             "Description": "lets <ops> & \"friends\" in",
                             "Tags": [{"Key": "team", "Value": "ops"}]},
     {"Policy": policy("ops")}),
    ("iam", "GetPolicy", {"PolicyArn": "arn:aws:iam::aws:policy/AWSOpsWorks_FullAccess"},
     {"Policy": policy("AWSOpsWorks_FullAccess")}),
    ("iam", "GetPolicyVersion", {"PolicyArn": "arn:aws:iam::123456789012:policy/ops", "VersionId": "v1"},
     {"PolicyVersion": {"Document": urllib.parse.quote(POLICY_TEXT, safe=""), "VersionId": "v1",
                        "IsDefaultVersion": True, "CreateDate": "2025-01-02T03:04:05Z"}}),
    ("iam", "ListPolicies", {"Scope": "Local", "OnlyAttached": True, "PathPrefix": "/",
                             "PolicyUsageFilter": "PermissionsPolicy", "MaxItems": 100},
     {"Policies": [policy("ops")], "IsTruncated": False}),
    ("iam", "DeletePolicy", {"PolicyArn": "arn:aws:iam::123456789012:policy/ops"}, None),
    ("iam", "AttachUserPolicy", {"UserName": "alice",
                                 "PolicyArn": "arn:aws:iam::aws:policy/AWSOpsWorksInstanceRegistration"}, None),
    ("iam", "DetachUserPolicy", {"UserName": "alice", "PolicyArn": "arn:aws:iam::123456789012:policy/ops"}, None),
    ("iam", "ListAttachedUserPolicies", {"UserName": "alice", "PathPrefix": "/"},
     {"AttachedPolicies": [{"PolicyName": "ops", "PolicyArn": "arn:aws:iam::123456789012:policy/ops"}],
      "IsTruncated": False}),
    ("iam", "AttachGroupPolicy", {"GroupName": "devs", "PolicyArn": "arn:aws:iam::123456789012:policy/ops"}, None),
    ("iam", "DetachGroupPolicy", {"GroupName": "devs", "PolicyArn": "arn:aws:iam::123456789012:policy/ops"}, None),
    ("iam", "ListAttachedGroupPolicies", {"GroupName": "devs"},
     {"AttachedPolicies": [], "IsTruncated": False}),
    ("iam", "CreateLoginProfile", {"UserName": "alice", "Password": "p@ss w0rd&=+",
                                   "PasswordResetRequired": True},
     {"LoginProfile": {"UserName": "alice", "CreateDate": "2025-01-02T03:04:05Z",
                       "PasswordResetRequired": True}}),
    ("iam", "GetLoginProfile", {"UserName": "alice"},
     {"LoginProfile": {"UserName": "alice", "CreateDate": "2025-01-02T03:04:05Z",
                       "PasswordResetRequired": False}}),
    ("iam", "UpdateLoginProfile", {"UserName": "alice", "Password": "n3w", "PasswordResetRequired": False}, None),
    ("iam", "DeleteLoginProfile", {"UserName": "alice"}, None),
    # STS
    ("sts", "GetCallerIdentity", {}, {"UserId": "AIDAEXAMPLE", "Account": "123456789012",
                                      "Arn": "arn:aws:iam::123456789012:user/alice"}),
    # RDS
    ("rds", "CreateDBInstance", {"DBInstanceIdentifier": "mydb", "DBInstanceClass": "db.t3.micro",
                                 "Engine": "mysql", "MasterUsername": "admin",
                                 "MasterUserPassword": "secret123&x", "AllocatedStorage": 20,
                                 "DBName": "app", "Port": 3306, "MultiAZ": False,
                                 "VpcSecurityGroupIds": ["sg-1", "sg-2"],
                                 "DBSecurityGroups": [],
                                 "Tags": [{"Key": "k", "Value": "v"}]},
     {"DBInstance": {**DB, "DBInstanceStatus": "creating"}}),
    ("rds", "DescribeDBInstances", {"DBInstanceIdentifier": "mydb",
                                    "Filters": [{"Name": "engine", "Values": ["mysql", "mariadb"]}],
                                    "MaxRecords": 20, "Marker": "m"},
     {"DBInstances": [DB], "Marker": "next"}),
    ("rds", "DescribeDBInstances", {}, {"DBInstances": []}),
    ("rds", "ModifyDBInstance", {"DBInstanceIdentifier": "mydb", "MasterUserPassword": "n3w",
                                 "ApplyImmediately": True, "AllocatedStorage": 30,
                                 "VpcSecurityGroupIds": ["sg-3"]},
     {"DBInstance": {**DB, "DBInstanceStatus": "modifying"}}),
    ("rds", "RebootDBInstance", {"DBInstanceIdentifier": "mydb", "ForceFailover": False},
     {"DBInstance": {**DB, "DBInstanceStatus": "rebooting"}}),
    ("rds", "DeleteDBInstance", {"DBInstanceIdentifier": "mydb", "SkipFinalSnapshot": True,
                                 "DeleteAutomatedBackups": True},
     {"DBInstance": {**DB, "DBInstanceStatus": "deleting"}}),
    # ELB
    ("elb", "CreateLoadBalancer", {"LoadBalancerName": "web",
                                   "Listeners": [{"Protocol": "HTTP", "LoadBalancerPort": 80,
                                                  "InstanceProtocol": "HTTP", "InstancePort": 8080},
                                                 {"Protocol": "TCP", "LoadBalancerPort": 5000,
                                                  "InstancePort": 5000}],
                                   "AvailabilityZones": ["us-east-1a"], "Scheme": "internal",
                                   "Tags": [{"Key": "k", "Value": "v"}, {"Key": "only-key"}]},
     {"DNSName": "web-1.us-east-1.elb.amazonaws.com"}),
    ("elb", "DescribeLoadBalancers", {"LoadBalancerNames": []}, {"LoadBalancerDescriptions": []}),
    ("elb", "DescribeLoadBalancers", {"LoadBalancerNames": ["web", "api"], "PageSize": 10, "Marker": "m"},
     {"LoadBalancerDescriptions": [LB], "NextMarker": "n"}),
    ("elb", "DeleteLoadBalancer", {"LoadBalancerName": "web"}, {}),
    ("elb", "ConfigureHealthCheck", {"LoadBalancerName": "web",
                                     "HealthCheck": {"Target": "HTTP:8080/ping", "Interval": 30,
                                                     "Timeout": 5, "UnhealthyThreshold": 2,
                                                     "HealthyThreshold": 10}},
     {"HealthCheck": LB["HealthCheck"]}),
    ("elb", "DescribeInstanceHealth", {"LoadBalancerName": "web", "Instances": [{"InstanceId": "i-1"}]},
     {"InstanceStates": [{"InstanceId": "i-1", "State": "OutOfService", "ReasonCode": "Instance",
                          "Description": "Instance has failed at least the UnhealthyThreshold number of health checks consecutively."}]}),
    ("elb", "RegisterInstancesWithLoadBalancer",
     {"LoadBalancerName": "web", "Instances": [{"InstanceId": "i-1"}, {"InstanceId": "i-2"}]},
     {"Instances": [{"InstanceId": "i-1"}, {"InstanceId": "i-2"}]}),
    ("elb", "DeregisterInstancesFromLoadBalancer",
     {"LoadBalancerName": "web", "Instances": [{"InstanceId": "i-2"}]},
     {"Instances": [{"InstanceId": "i-1"}]}),
    # EC2
    ("ec2", "AllocateAddress", {"Domain": "vpc", "DryRun": False,
                                "TagSpecifications": [{"ResourceType": "elastic-ip",
                                                       "Tags": [{"Key": "Name", "Value": "eip"}]}]},
     {"PublicIp": "198.51.100.7", "AllocationId": "eipalloc-1", "Domain": "vpc",
      "PublicIpv4Pool": "amazon", "NetworkBorderGroup": "us-east-1"}),
    ("ec2", "DescribeAddresses", {"PublicIps": ["198.51.100.7"], "AllocationIds": ["eipalloc-1", "eipalloc-2"],
                                  "Filters": [{"Name": "domain", "Values": ["vpc"]},
                                              {"Name": "tag:Name", "Values": ["a", "b"]}]},
     {"Addresses": [{"PublicIp": "198.51.100.7", "AllocationId": "eipalloc-1", "Domain": "vpc",
                     "AssociationId": "eipassoc-1", "InstanceId": "i-1",
                     "PrivateIpAddress": "10.217.0.5", "Tags": [{"Key": "Name", "Value": "eip"}],
                     "PublicIpv4Pool": "amazon", "NetworkBorderGroup": "us-east-1"}]}),
    ("ec2", "DescribeAddresses", {}, {"Addresses": []}),
    ("ec2", "ReleaseAddress", {"AllocationId": "eipalloc-1"}, None),
    ("ec2", "AssociateAddress", {"AllocationId": "eipalloc-1", "InstanceId": "i-1",
                                 "AllowReassociation": True}, {"AssociationId": "eipassoc-1"}),
    ("ec2", "DisassociateAddress", {"AssociationId": "eipassoc-1"}, None),
    ("ec2", "CreateVolume", {"AvailabilityZone": "us-east-1a", "Size": 8, "VolumeType": "gp3",
                             "Iops": 3000, "Throughput": 125, "Encrypted": False,
                             "MultiAttachEnabled": False,
                             "ClientToken": "0695e190-bb2b-4f15-b919-f2907256981e",
                             "TagSpecifications": [{"ResourceType": "volume",
                                                    "Tags": [{"Key": "Name", "Value": "x"},
                                                             {"Key": "env", "Value": "a b"}]}]},
     {**VOLUME, "State": "creating", "Attachments": []}),
    ("ec2", "DescribeVolumes", {"VolumeIds": ["vol-1", "vol-2"], "MaxResults": 5, "NextToken": "t",
                                "Filters": [{"Name": "status", "Values": ["available", "in-use"]}],
                                "DryRun": False},
     {"Volumes": [VOLUME], "NextToken": "t2"}),
    ("ec2", "DeleteVolume", {"VolumeId": "vol-1"}, None),
    ("ec2", "AttachVolume", {"Device": "/dev/sdf", "InstanceId": "i-1", "VolumeId": "vol-1"},
     {"AttachTime": "2025-01-02T03:04:05.000Z", "Device": "/dev/sdf", "InstanceId": "i-1",
      "State": "attaching", "VolumeId": "vol-1"}),
    ("ec2", "DetachVolume", {"VolumeId": "vol-1", "Force": True, "InstanceId": "i-1"},
     {"Device": "/dev/sdf", "InstanceId": "i-1", "State": "detaching", "VolumeId": "vol-1",
      "DeleteOnTermination": False}),
    ("ec2", "DescribeInstances", {"InstanceIds": ["i-1"], "Filters": [{"Name": "instance-state-name",
                                                                      "Values": ["running"]}]},
     {"Reservations": [{"ReservationId": "r-1", "OwnerId": "123456789012", "Groups": [],
                        "Instances": [{"InstanceId": "i-1", "ImageId": "ami-1",
                                       "State": {"Code": 16, "Name": "running"},
                                       "PrivateIpAddress": "10.217.0.5", "InstanceType": "t3.micro",
                                       "LaunchTime": "2025-01-02T03:04:05.000Z",
                                       "Placement": {"AvailabilityZone": "us-east-1a"},
                                       "Tags": [{"Key": "Name", "Value": "web1"}],
                                       "BlockDeviceMappings": [{"DeviceName": "/dev/sdf",
                                                                "Ebs": {"VolumeId": "vol-1",
                                                                        "Status": "attached",
                                                                        "DeleteOnTermination": False,
                                                                        "AttachTime": "2025-01-02T03:04:05.000Z"}}]}]}]}),
    # The synthetic models: everything the served operations never send.
    ("wiretest-query", "Everything", EVERYTHING_IN, EVERYTHING_OUT),
    # Query sends an empty list as `Name=`, even inside a list; an empty map or structure not at all.
    ("wiretest-query", "Everything", {"Plain": [], "Named": [], "Structs": [], "Map": {}, "Nested": {},
                                      "Lists": [["a"], [], ["b"]]},
     {"Plain": [], "Structs": [], "Map": {}}),
    # EC2 leaves empty lists out.
    ("wiretest-ec2", "Everything", {"Plain": [], "Flat": [], "Nested": {"Inner": {}}, "Str": ""},
     {"Plain": [], "Str": ""}),
    ("wiretest-ec2", "Everything", EVERYTHING_IN, EVERYTHING_OUT),
]

ERRORS = [
    ("iam", "CreateUser", {"UserName": "alice"}, "EntityAlreadyExists", "User with name alice already exists."),
    ("iam", "GetUser", {"UserName": "bob"}, "NoSuchEntity", "The user with name bob cannot be found."),
    ("iam", "AttachUserPolicy", {"UserName": "a", "PolicyArn": "arn:aws:iam::aws:policy/AWSOpsWorksInstanceRegistration"},
     "AccessDenied", "User: arn:aws:iam::123456789012:user/a is not authorized to perform: iam:AttachUserPolicy"),
    ("iam", "ListUsers", {}, "ServiceFailure", "We are <sorry> & \"sad\"."),
    ("iam", "PutUserPolicy", {"UserName": "a", "PolicyName": "p", "PolicyDocument": "{"},
     "MalformedPolicyDocument", "This policy contains invalid Json"),
    ("sts", "GetCallerIdentity", {}, "InvalidClientTokenId", "The security token included in the request is invalid."),
    ("rds", "DescribeDBInstances", {"DBInstanceIdentifier": "nope"}, "DBInstanceNotFound", "DBInstance nope not found."),
    ("rds", "CreateDBInstance", {"DBInstanceIdentifier": "mydb", "DBInstanceClass": "db.t3.micro", "Engine": "mysql"},
     "DBInstanceAlreadyExists", "DB instance already exists"),
    ("elb", "DescribeLoadBalancers", {"LoadBalancerNames": ["nope"]}, "LoadBalancerNotFound",
     "There is no ACTIVE Load Balancer named 'nope'"),
    ("elb", "CreateLoadBalancer", {"LoadBalancerName": "web", "Listeners": []}, "DuplicateLoadBalancerName",
     "The specified load balancer name already exists for this account: web"),
    ("ec2", "DescribeVolumes", {"VolumeIds": ["vol-9"]}, "InvalidVolume.NotFound", "The volume 'vol-9' does not exist."),
    ("ec2", "CreateVolume", {"AvailabilityZone": "us-east-1a"}, "MissingParameter",
     "The request must contain the parameter size/snapshot"),
]


def load_model(service):
    if service.startswith("wiretest"):
        return ServiceModel(json.loads((HERE / f"{service}.json").read_text()), service_name="wiretest")
    session = botocore.session.get_session()
    return session.get_service_model(SERVICE_NAMES[service])


def form_body(service_model, operation, params):
    op = service_model.operation_model(operation)
    report = ParamValidator().validate(params, op.input_shape)
    if report.has_errors():
        raise SystemExit(f"{service_model.service_name} {operation}: {report.generate_report()}")
    request = create_serializer(service_model.metadata["protocol"]).serialize_to_request(params, op)
    prepare_request_dict(request, endpoint_url="https://example.invalid")
    body = create_request_object(request).prepare().body
    return body.decode() if isinstance(body, bytes) else body


def normalize(value):
    """JSON form of a parameter value, as our parser renders it."""
    if isinstance(value, datetime.datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if value.microsecond:
            text += "." + f"{value.microsecond:06d}".rstrip("0")
        return text + "Z"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def sent(value, ec2):
    """What survives serialization: botocore sends no empty map or structure, and EC2 no empty list."""
    if isinstance(value, dict):
        kept = {k: sent(v, ec2) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v != {} and not (ec2 and v == [])}
    if isinstance(value, list):
        return [sent(v, ec2) for v in value]
    return value


def expected_client_result(service, operation, output):
    """What a botocore client returns for our rendering of `output`."""
    if output is None:
        return {}
    out = json.loads(json.dumps(output))
    # botocore's after-call.iam handler URL-decodes and parses policy documents.
    if service == "iam":
        for holder in (out, out.get("PolicyVersion", {})):
            for key in ("PolicyDocument", "Document"):
                if key in holder:
                    holder[key] = json.loads(urllib.parse.unquote(holder[key]))
    return out


# Statuses of the errors common to Query APIs (no model carries them).
COMMON_STATUS = {"AccessDenied": 403, "InvalidClientTokenId": 403}


def error_status(model, code):
    for shape in model.error_shapes:
        if shape.error_code == code:
            return shape.metadata.get("error", {}).get("httpStatusCode", 400)
    return COMMON_STATUS.get(code, 400)


def error_class(model, code):
    """The name of the exception class botocore raises for `code` (ClientError if unmodelled)."""
    for shape in model.error_shapes:
        if shape.error_code == code:
            return shape.name
    return "ClientError"


def main():
    cases = []
    counts = {}
    for service, operation, params, output in CASES:
        model = load_model(service)
        counts[(service, operation)] = counts.get((service, operation), 0) + 1
        name = f"{service}-{operation}-{counts[(service, operation)]}"
        case = {"name": name, "service": service, "operation": operation,
                "params": sent(normalize(params), model.metadata["protocol"] == "ec2"),
                "body": form_body(model, operation, params)}
        if output is not None or model.operation_model(operation).output_shape is None:
            case["output"] = output
            case["expected"] = expected_client_result(service, operation, output)
        cases.append(case)
    for service, operation, params, code, message in ERRORS:
        model = load_model(service)
        cases.append({"name": f"{service}-{operation}-error-{code}", "service": service,
                      "operation": operation, "params": normalize(params),
                      "error": {"code": code, "message": message,
                                "status": error_status(model, code),
                                "exception": error_class(model, code)}})
    path = HERE / "cases.json"
    path.write_text(json.dumps({"botocore": botocore.__version__, "cases": cases},
                               indent=1, ensure_ascii=False) + "\n")
    print(f"{path}: {len(cases)} cases from botocore {botocore.__version__}")


if __name__ == "__main__":
    main()

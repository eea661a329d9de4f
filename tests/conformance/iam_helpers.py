"""Helpers of the identity tests: IAM and STS clients, IAM users with keys and policies, signed GETs."""

from __future__ import annotations

import json
import time

import boto3
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from harness import ACCESS_KEY, REGION, SECRET_KEY, unique

_HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=10, read=60))


def client(service: str, endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
    """A real boto3 client of `service` pointed at the server, retries off."""
    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=REGION)
    return session.client(service, endpoint_url=endpoint, config=Config(retries={"max_attempts": 1}))


def document(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


class User:
    """An IAM user made through the server's IAM, with an access key and clients signing as it."""

    def __init__(self, endpoint: str, iam, name: str | None = None, policy: str | None = None):
        self.endpoint = endpoint
        self.name = name or unique("user")
        created = iam.create_user(UserName=self.name)["User"]
        self.arn = created["Arn"]
        self.user_id = created["UserId"]
        key = iam.create_access_key(UserName=self.name)["AccessKey"]
        self.key_id = key["AccessKeyId"]
        self.secret = key["SecretAccessKey"]
        if policy:
            iam.put_user_policy(UserName=self.name, PolicyName="p", PolicyDocument=policy)

    def client(self, service: str):
        return client(service, self.endpoint, self.key_id, self.secret)

    def get(self, path: str) -> urllib3.BaseHTTPResponse:
        return signed_get(self.endpoint, path, self.key_id, self.secret)


def signed_get(endpoint: str, path: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
    """A GET signed as `awscurl --service opsworks` signs it."""
    req = AWSRequest(method="GET", url=endpoint.rstrip("/") + path)
    SigV4Auth(Credentials(access_key, secret_key), "opsworks", REGION).add_auth(req)
    prepared = req.prepare()
    return _HTTP.request("GET", prepared.url, headers=dict(prepared.headers.items()))


def query_post(endpoint: str, body: str, headers: dict | None = None):
    """An unsigned Query POST (form body)."""
    hdrs = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **(headers or {})}
    return _HTTP.request("POST", endpoint.rstrip("/") + "/", body=body.encode(), headers=hdrs)


def eventually(check, timeout: float = 10.0, step: float = 0.2):
    """Calls `check` until it returns a true value or the time runs out; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)

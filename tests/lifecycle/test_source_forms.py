"""Every source URL form the README lists, deployed to a real instance (issue 11 item 12): git from
a local path of the host, a file:// URL, git's dumb HTTP, HTTPS with a user name and password, and
a git daemon; archives (tar.gz, zip) over HTTP and HTTPS, from a local path and a file:// URL. The
HTTPS server's certificate comes from a CA of the test's own, which a Setup recipe adds to the
instance's trust store, as a user would add a company CA. Each app's release is read inside the
instance with `opsworks exec`. S3 and Subversion sources fail the deployment, saying so."""

import base64
import http.server
import io
import json
import os
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import zipfile
from functools import partial

import pytest

from conftest import client_for, free_port, http_get, make_repo

FAST = {"Delay": 1, "MaxAttempts": 180}
GATEWAY = "10.217.0.1"  # the host on the machines' bridge
USER, PASSWORD = "deployer", "pw with spaces & @"

TRUST = '''
# The test's HTTPS server has a certificate of its own making: the instance trusts it as a user's
# instances would trust a company CA (its own copy of the host's files: the host's store is untouched).
file("/usr/local/share/ca-certificates/forms-ca.crt", content = node["forms"]["ca"], mode = "0644")
execute("update-ca-certificates")
'''


def wait_port(port, host=GATEWAY):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {host}:{port}")


class AuthHandler(http.server.SimpleHTTPRequestHandler):
    """Static files behind HTTP basic authentication, as a git host serves private repositories."""

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.endswith(".tgz"):
            # Archives are public here: an archive source's user name and password are not sent.
            return super().do_GET()
        want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def https_git(workdir):
    """An HTTPS server on the gateway with a certificate from a CA of the test's own, behind basic
    auth (archives excepted)."""
    ca_key, ca, key, csr, cert, ext = (workdir / f"forms-{n}" for n in
                                       ("ca-key.pem", "ca.pem", "key.pem", "csr.pem", "cert.pem", "ext.cnf"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ext.write_text(f"subjectAltName=IP:{GATEWAY}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    for argv in (["req", "-x509", *ec, "-days", "1", "-subj", "/CN=forms test CA", "-keyout", ca_key, "-out", ca],
                 ["req", *ec, "-subj", f"/CN={GATEWAY}", "-keyout", key, "-out", csr],
                 ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1",
                  "-extfile", ext, "-out", cert]):
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True)
    port = free_port()
    httpd = http.server.ThreadingHTTPServer((GATEWAY, port), partial(AuthHandler, directory=str(workdir)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    wait_port(port)
    yield {"url": f"https://{GATEWAY}:{port}", "ca": ca.read_text()}
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def git_daemon(workdir):
    port = free_port()
    proc = subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", f"--listen={GATEWAY}", f"--port={port}",
                             f"--base-path={workdir}", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    yield f"git://{GATEWAY}:{port}"
    proc.terminate()
    proc.wait()


def archives(workdir, files):
    """The same files as forms-app.tgz and forms-app.zip (under a top directory, as forges make them)."""
    tgz, zp = workdir / "forms-app.tgz", workdir / "forms-app.zip"
    with tarfile.open(tgz, "w:gz") as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"forms-app-1/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    with zipfile.ZipFile(zp, "w") as z:
        for name, text in files.items():
            z.writestr(f"forms-app-1/{name}", text)
    return tgz, zp


@pytest.fixture(scope="module")
def forms(server, workdir, git_http, https_git, git_daemon):
    client = client_for(server)
    repo = make_repo(workdir / "forms-app", {"VERSION": "from git\n"})
    tgz, zp = archives(workdir, {"VERSION": "from an archive\n"})
    cookbooks = make_repo(workdir / "forms-cookbooks", {
        "forms/metadata.json": json.dumps({"name": "forms", "version": "1.0.0"}),
        "forms/recipes/trust.star": TRUST,
    })
    sources = {
        "gitpath": ({"Type": "git", "Url": str(repo)}, "from git"),
        "gitfile": ({"Type": "git", "Url": f"file://{repo}"}, "from git"),
        "githttp": ({"Type": "git", "Url": f"{git_http}/forms-app/.git"}, "from git"),
        "githttps": ({"Type": "git", "Url": f"{https_git['url']}/forms-app/.git", "Username": USER,
                      "Password": PASSWORD}, "from git"),
        "gitdaemon": ({"Type": "git", "Url": f"{git_daemon}/forms-app"}, "from git"),
        "tarhttp": ({"Type": "archive", "Url": f"{git_http}/forms-app.tgz"}, "from an archive"),
        "tarhttps": ({"Type": "archive", "Url": f"{https_git['url']}/forms-app.tgz"}, "from an archive"),
        "tarpath": ({"Type": "archive", "Url": str(tgz)}, "from an archive"),
        "zipfile": ({"Type": "archive", "Url": f"file://{zp}"}, "from an archive"),
    }
    stack = client.create_stack(
        Name="source-forms", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
        UseCustomCookbooks=True, CustomCookbooksSource={"Type": "git", "Url": str(cookbooks)},
        CustomJson=json.dumps({"forms": {"ca": https_git["ca"]}}),
    )["StackId"]
    layer = client.create_layer(StackId=stack, Type="custom", Name="Forms", Shortname="forms",
                                CustomRecipes={"Setup": ["forms::trust"]})["LayerId"]
    for short, (source, _) in sources.items():
        client.create_app(StackId=stack, Name=short, Shortname=short, Type="other", AppSource=source)
    iid = client.create_instance(StackId=stack, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
    client.start_instance(InstanceId=iid)
    try:
        client.get_waiter("instance_online").wait(InstanceIds=[iid], WaiterConfig=FAST)
    except Exception:
        failed = [c for c in client.describe_commands(InstanceId=iid)["Commands"] if c["Status"] == "failed"]
        raise AssertionError("\n".join(f"{c['Type']} failed:\n{http_get(c['LogUrl'])}" for c in failed))
    yield {"stack": stack, "instance": iid, "sources": sources}
    client.stop_instance(InstanceId=iid, Force=True)
    # Its Shutdown may wait behind the last deployment and then for the layer's shutdown timeout
    # (120 s): once in CI the stop took longer than FAST's three minutes. Wait out both.
    try:
        client.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 2, "MaxAttempts": 240})
    except Exception:
        commands = client.describe_commands(InstanceId=iid)["Commands"]
        raise AssertionError(f"not stopped: {[(c['Type'], c['Status']) for c in commands]}")
    client.delete_instance(InstanceId=iid)


def inside(server, iid, *argv):
    """What a command prints inside the instance, through `opsworks exec`."""
    run = subprocess.run([os.environ["OPSWORKS_BIN"], "exec", "--data-dir", str(server.data_dir), iid, "--", *argv],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_every_listed_source_form_deploys(server, forms):
    got = {short: inside(server, forms["instance"], "cat", f"/srv/www/{short}/current/VERSION").strip()
           for short in forms["sources"]}
    assert got == {short: want for short, (_, want) in forms["sources"].items()}


def test_the_https_password_stays_out_of_the_release(server, forms):
    origin = inside(server, forms["instance"], "git", "-C", "/srv/www/githttps/current", "remote", "get-url", "origin")
    assert PASSWORD.split()[0] not in origin and USER not in origin, origin


@pytest.mark.parametrize("kind", ["s3", "svn"])
def test_s3_and_subversion_sources_fail_the_deployment_saying_so(client, forms, kind):
    url = "https://s3.amazonaws.com/bucket/app.zip" if kind == "s3" else "svn://svn.example.test/app/trunk"
    app = client.create_app(StackId=forms["stack"], Name=kind, Shortname=kind, Type="other",
                            AppSource={"Type": kind, "Url": url})["AppId"]
    try:
        d = client.create_deployment(StackId=forms["stack"], AppId=app, Command={"Name": "deploy"},
                                     InstanceIds=[forms["instance"]])["DeploymentId"]
        with pytest.raises(Exception):
            client.get_waiter("deployment_successful").wait(DeploymentIds=[d], WaiterConfig=FAST)
        cmd = client.describe_commands(DeploymentId=d)["Commands"][0]
        assert cmd["Status"] == "failed"
        assert f"`{kind}` is not supported" in http_get(cmd["LogUrl"])
    finally:
        client.delete_app(AppId=app)

"""The built-in layers end to end: lb (HAProxy), nodejs-app, db-master (MariaDB) and memcached, on
real local instances, driven only through boto3 and HTTP. The app is a dependency-free Node.js
server fetched from git: it answers with its hostname, queries its database with the mariadb CLI
and its cache over memcached's text protocol, all found through the environment the layer gives it.
Traffic goes through the lb instance's address only."""

import hashlib
import time
import urllib.error
import urllib.request
from base64 import b64encode

import pytest
from botocore.exceptions import ClientError

from conftest import client_for, make_repo, retry

WAIT = {"Delay": 1, "MaxAttempts": 400}
ROOT_PW = "root-Pw-0f-the-db-layer"
STATS_PW = "stats-Pw-0f-the-lb-layer"

SERVER_JS = r'''// Test app of tests/lifecycle/test_layers.py: hostname, database and cache through the environment.
const http = require("http");
const net = require("net");
const os = require("os");
const fs = require("fs");
const { execFile } = require("child_process");

const version = fs.readFileSync(__dirname + "/VERSION", "utf8").trim();

function query(sql, cb) {
  const e = process.env;
  if (!e.DATABASE_HOST) return cb(new Error("no DATABASE_HOST"));
  // The password goes through the environment, not the command line (ps would show it).
  execFile("mariadb", ["-h", e.DATABASE_HOST, "-P", e.DATABASE_PORT, "-u", e.DATABASE_USERNAME,
      "-N", "-B", "-e", sql, e.DATABASE_NAME],
    { env: Object.assign({}, process.env, { MYSQL_PWD: e.DATABASE_PASSWORD }), timeout: 5000 },
    (err, out, errout) => cb(err ? new Error(errout || err.message) : null, out && out.trim()));
}

function cache(cb) {
  const e = process.env;
  if (!e.MEMCACHED_HOST) return cb(new Error("no MEMCACHED_HOST"));
  const s = net.connect(Number(e.MEMCACHED_PORT), e.MEMCACHED_HOST);
  let data = "";
  const value = os.hostname();
  s.setTimeout(3000, () => { s.destroy(); cb(new Error("memcached timeout")); });
  s.on("connect", () => s.write(`set k 0 60 ${value.length}\r\n${value}\r\nget k\r\n`));
  s.on("data", (d) => {
    data += d;
    if (data.endsWith("END\r\n")) { s.end(); cb(null, data.split("\r\n")[2]); }
  });
  s.on("error", cb);
}

const server = http.createServer((req, res) => {
  const reply = (code, body) => { res.writeHead(code, { "Content-Type": "text/plain" }); res.end(body + "\n"); };
  if (req.url === "/db") {
    return query("CREATE TABLE IF NOT EXISTS hits (host VARCHAR(64)); INSERT INTO hits VALUES ('" +
        os.hostname() + "'); SELECT COUNT(*) > 0 FROM hits", (err, out) => err ? reply(500, String(err)) : reply(200, "db " + out));
  }
  if (req.url === "/cache") {
    return cache((err, out) => err ? reply(500, String(err)) : reply(200, "cache " + out));
  }
  reply(200, os.hostname() + " " + version);
});
server.listen(Number(process.env.PORT));
// Finish the requests in flight before exiting on a restart.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
'''


def get(url, auth=None, timeout=5):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode().strip()


def hosts_behind(lb_ip, n=12):
    """The hostnames answering through the load balancer over n requests."""
    return {get(f"http://{lb_ip}/")[1].split()[0] for _ in range(n)}


@pytest.fixture(scope="module")
def stack(server, workdir, git_http):
    c = client_for(server)
    make_repo(workdir / "nodeapp", {"server.js": SERVER_JS, "VERSION": "v1\n",
                                    "package.json": '{"name": "nodeapp", "version": "1.0.0"}\n'})
    sid = c.create_stack(
        Name="layers", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]
    layer = lambda t, **kw: c.create_layer(StackId=sid, Type=t, Name=t, Shortname=t, **kw)["LayerId"]  # noqa: E731
    ids = {
        "lb": layer("lb", Attributes={"HaproxyStatsPassword": STATS_PW}),
        "nodejs-app": layer("nodejs-app"),
        "db-master": layer("db-master", Attributes={"MysqlRootPassword": ROOT_PW}),
        "memcached": layer("memcached", Attributes={"MemcachedMemory": "64"}),
    }
    db_arn = c.describe_layers(LayerIds=[ids["db-master"]])["Layers"][0]["Arn"]
    app_id = c.create_app(
        StackId=sid, Name="Shop", Shortname="shop", Type="nodejs",
        AppSource={"Type": "git", "Url": f"{git_http}/nodeapp/.git", "Revision": "main"},
        DataSources=[{"Type": "OpsworksMysqlInstance", "Arn": db_arn, "DatabaseName": "shop"}],
        Environment=[{"Key": "GREETING", "Value": "hi"}],
    )["AppId"]
    return {"stack": sid, "layers": ids, "app": app_id, "instances": {}}


def new_instance(c, stack, layer):
    return c.create_instance(StackId=stack["stack"], LayerIds=[stack["layers"][layer]],
                             InstanceType="t3.micro")["InstanceId"]


def test_secrets_are_filtered_in_the_api(client, stack):
    layers = client.describe_layers(LayerIds=[stack["layers"]["lb"], stack["layers"]["db-master"]])["Layers"]
    attrs = {l["Type"]: l["Attributes"] for l in layers}
    assert attrs["lb"]["HaproxyStatsPassword"] == "*****FILTERED*****"
    assert attrs["db-master"]["MysqlRootPassword"] == "*****FILTERED*****"
    assert attrs["lb"]["HaproxyHealthCheckMethod"] == "OPTIONS"


def test_layers_not_built_yet_refuse_to_start(client, stack):
    lid = client.create_layer(StackId=stack["stack"], Type="aws-flow-ruby", Name="Flow", Shortname="aws-flow-ruby")["LayerId"]
    iid = client.create_instance(StackId=stack["stack"], LayerIds=[lid], InstanceType="t3.micro")["InstanceId"]
    with pytest.raises(ClientError) as e:
        client.start_instance(InstanceId=iid)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "cannot start yet" in e.value.response["Error"]["Message"]
    client.delete_instance(InstanceId=iid)
    client.delete_layer(LayerId=lid)


def test_the_stack_serves_the_app_through_the_load_balancer(client, stack):
    names = {"lb": 1, "db-master": 1, "memcached": 1, "nodejs-app": 2}
    ids = {layer: [new_instance(client, stack, layer) for _ in range(n)] for layer, n in names.items()}
    started = time.time()
    every = [i for group in ids.values() for i in group]
    for i in every:
        client.start_instance(InstanceId=i)
    client.get_waiter("instance_online").wait(InstanceIds=every, WaiterConfig=WAIT)
    stack["online_seconds"] = time.time() - started
    described = {i["InstanceId"]: i for i in client.describe_instances(InstanceIds=every)["Instances"]}
    stack["instances"] = ids
    lb_ip = described[ids["lb"][0]]["PrivateIp"]
    stack["lb_ip"] = lb_ip
    apps = {described[i]["Hostname"] for i in ids["nodejs-app"]}

    # Round robin over both app instances.
    assert retry(lambda: _exactly(hosts_behind(lb_ip), apps), 90) == apps
    # The app reaches its database (a user and database of its own) and the cache.
    for _ in range(4):
        assert retry(lambda: get(f"http://{lb_ip}/db")) == (200, "db 1")
        status, body = retry(lambda: get(f"http://{lb_ip}/cache"))
        assert status == 200 and body.split()[1] in apps
    # Stats behind the layer's user and password.
    with pytest.raises(urllib.error.HTTPError) as e:
        get(f"http://{lb_ip}/haproxy?stats")
    assert e.value.code == 401
    status, body = get(f"http://{lb_ip}/haproxy?stats", auth=f"opsworks:{STATS_PW}")
    assert status == 200 and "app_servers" in body


def _exactly(got, want):
    if got != want:
        raise AssertionError(f"behind the lb: {got}, want {want}")
    return got


def test_an_instance_started_is_served_and_a_stopped_one_is_not(client, stack):
    lb_ip = stack["lb_ip"]
    third = new_instance(client, stack, "nodejs-app")
    client.start_instance(InstanceId=third)
    client.get_waiter("instance_online").wait(InstanceIds=[third], WaiterConfig=WAIT)
    ids = stack["instances"]["nodejs-app"] + [third]
    hostname = {i["InstanceId"]: i["Hostname"] for i in client.describe_instances(InstanceIds=ids)["Instances"]}
    # One Configure: served within the seconds it takes.
    retry(lambda: _exactly(hosts_behind(lb_ip), set(hostname.values())), 30)

    gone = ids[0]
    client.stop_instance(InstanceId=gone)
    client.get_waiter("instance_stopped").wait(InstanceIds=[gone], WaiterConfig=WAIT)
    left = {hostname[i] for i in ids[1:]}
    retry(lambda: _exactly(hosts_behind(lb_ip, 20), left), 30)
    stack["instances"]["nodejs-app"] = ids[1:]


def test_no_secret_reaches_the_command_logs(server, stack, client):
    app_pw = hashlib.sha256(f"opsworks-app-database\0{ROOT_PW}\0{stack['app']}".encode()).hexdigest()[:32]
    # Every command log, as its LogUrl serves it (from the data dir or the database alike).
    logs = {}
    for inst in client.describe_instances(StackId=stack["stack"])["Instances"]:
        for cmd in client.describe_commands(InstanceId=inst["InstanceId"])["Commands"]:
            if cmd.get("LogUrl"):
                logs[cmd["CommandId"]] = urllib.request.urlopen(cmd["LogUrl"], timeout=30).read()
    assert logs, "no command logs were kept"
    for command_id, text in logs.items():
        for secret in (ROOT_PW, STATS_PW, app_pw):
            assert secret.encode() not in text, f"the log of {command_id} holds a secret"
    server_log = server.log_path.read_bytes()
    for secret in (ROOT_PW, STATS_PW, app_pw):
        assert secret.encode() not in server_log

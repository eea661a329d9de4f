"""RDS end to end with real databases: `aws rds` makes MariaDB and PostgreSQL DB instances in
machines of the server's own, they reboot, change their master password and outlive a server
restart with their data; `aws opsworks` registers one with a stack whose app uses it, a recipe on
the app instance writes rows through node["deploy"][app]["database"], and a Node.js app behind the
lb layer queries it — before, during and after a password rotation (ModifyDBInstance then
UpdateRdsDbInstance, no redeploy), with every request through the lb counted."""

import itertools
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config

from conftest import AKID, SECRET, client_for, eventually, make_repo, retry, running_server

WAIT = {"Delay": 1, "MaxAttempts": 300}
MASTER_PW = "first-Pw-0f-shopdb"
ROTATED_PW = "second-Pw-0f-shopdb"
PG_PW = "pg'Pw-with-quote"

# Each Setup, Configure and Deploy on the app instance writes a row through the app's database
# attributes (Chef 11), with what the run saw of the stack's RDS databases in both shapes.
WRITE_RECIPE = r'''
for name, app in node["deploy"].items():
    db = app.get("database")
    if not db or db.get("data_source_provider") != "rds":
        continue
    seen = len(node["opsworks"]["stack"]["rds_instances"])
    bag = len(data_bag("aws_opsworks_rds_db_instance"))
    fingerprint = hash_of(db["password"])
    execute("write a row for " + name,
        command = "mariadb -h %s -P %d -u %s %s" % (db["host"], db["port"], db["username"], db["database"]),
        environment = {"MYSQL_PWD": db["password"]},
        input = ("CREATE TABLE IF NOT EXISTS writes (activity VARCHAR(32), host VARCHAR(64), " +
                 "rds_instances INT, bag_items INT, fingerprint VARCHAR(64));\n" +
                 "INSERT INTO writes VALUES ('%s', '%s', %d, %d, '%s');\n") %
                (node["opsworks"]["activity"], node["hostname"], seen, bag, fingerprint),
        sensitive = True)
'''

# The recipe language has no hash function; a stable, non-reversible stand-in for the test.
HASH_LIB = r'''
def hash_of(text):
    h = 5381
    for c in text.elems():
        h = (h * 33 + ord(c)) % 4294967296
    return str(h)
'''

SERVER_JS = r'''// Test app of tests/lifecycle/test_rds.py: one persistent database session (the mariadb CLI in
// batch mode over a pipe), opened with the connection data the nodejs-app layer put in the
// environment when the app started; /db answers a count through it, with the process id.
const http = require("http");
const os = require("os");
const { spawn } = require("child_process");
const e = process.env;
const END = "--end-of-answer--";
let cli = null, buffer = "", waiting = [], errors = "";

function session() {
  if (cli) return cli;
  // Its own process group, like a driver's socket inside the process: the SIGTERM a restart sends
  // to the app's group must not end the session under the requests still in flight.
  cli = spawn("mariadb", ["-h", e.DATABASE_HOST, "-P", e.DATABASE_PORT, "-u", e.DATABASE_USERNAME,
      "-N", "-B", "-n", "--force", e.DATABASE_NAME],
    { env: Object.assign({}, e, { MYSQL_PWD: e.DATABASE_PASSWORD }), detached: true });
  cli.stdout.setEncoding("utf8");
  cli.stdout.on("data", (d) => {
    buffer += d;
    let i;
    while ((i = buffer.indexOf(END + "\n")) >= 0) {
      const answer = buffer.slice(0, i).trim();
      buffer = buffer.slice(i + END.length + 1);
      const cb = waiting.shift();
      if (cb) cb(null, answer);
    }
  });
  cli.stderr.on("data", (d) => { errors += d; });
  cli.on("exit", () => {
    cli = null; buffer = "";
    const w = waiting; waiting = [];
    w.forEach((cb) => cb(new Error("the session ended: " + errors)));
  });
  return cli;
}

function query(sql, cb) {
  waiting.push(cb);
  session().stdin.write(sql + ";\nSELECT '" + END + "';\n");
}

const server = http.createServer((req, res) => {
  const reply = (code, body) => { res.writeHead(code, { "Content-Type": "text/plain" }); res.end(body + "\n"); };
  if (req.url === "/db") {
    return query("SELECT COUNT(*) FROM writes", (err, out) =>
      err || !/^[0-9]+$/.test(out) ? reply(500, String(err || out)) : reply(200, "db " + out + " " + process.pid));
  }
  reply(200, os.hostname());
});
server.listen(Number(e.PORT), () => session());
// Finish the requests in flight before exiting on a restart, then end the session (its stdin
// closing ends it too, should this process be killed).
process.on("SIGTERM", () => server.close(() => { if (cli) cli.stdin.end(); process.exit(0); }));
'''


def hash_of(text: str) -> str:
    h = 5381
    for c in text:
        h = (h * 33 + ord(c)) % 4294967296
    return str(h)


@pytest.fixture(scope="module")
def rds_server(workdir):
    yield from running_server(workdir, "rds")


def rds_client(srv):
    return boto3.client("rds", endpoint_url=srv.endpoint, region_name="us-east-1", aws_access_key_id=AKID,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}))


def aws(srv, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AKID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_PAGER="",
               AWS_MAX_ATTEMPTS="1")
    venv = os.environ.get("OPSWORKS_VENV", os.path.expanduser("~/.cache/opsworks-conformance-venv"))
    p = subprocess.run([f"{venv}/bin/aws", *args, "--endpoint-url", srv.endpoint, "--output", "json"], env=env,
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    return p


@pytest.fixture(scope="module")
def dbs(rds_server):
    """The DB instances of the module: made by the tests, deleted (and waited for) at the end."""
    made = {}
    yield made
    c = rds_client(rds_server)
    for name in made:
        for call in (lambda: c.modify_db_instance(DBInstanceIdentifier=name, DeletionProtection=False),
                     lambda: c.delete_db_instance(DBInstanceIdentifier=name, SkipFinalSnapshot=True)):
            try:
                call()
            except c.exceptions.ClientError as e:
                print(f"cleaning up {name}: {e}")
    for name in made:
        c.get_waiter("db_instance_deleted").wait(DBInstanceIdentifier=name, WaiterConfig=WAIT)
    leftovers = list((rds_server.data_dir / "machines" / "machines").glob("rds-*"))
    assert leftovers == [], f"RDS machines left behind: {leftovers}"


def mysql(address, port, user, password, database, sql):
    p = subprocess.run(["mariadb", "-h", address, "-P", str(port), "-u", user, "--connect-timeout=5", "-N", "-B",
                        "-e", sql, database],
                       env=dict(os.environ, MYSQL_PWD=password), capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    return p.stdout.strip()


def psql(address, port, user, password, database, sql):
    p = subprocess.run(["psql", "-h", address, "-p", str(port), "-U", user, "-d", database, "-X", "-At", "-c", sql],
                       env=dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5"), capture_output=True, text=True, timeout=30,
                       cwd="/")
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    return p.stdout.strip()


def host_version(binary, marker):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    word = out.split(marker, 1)[1].split()[0]
    return "".join(itertools.takewhile(lambda ch: ch.isdigit() or ch == ".", word)).rstrip(".")


def kill_database_server(name, address):
    """SIGKILLs the database server process `name` of the machine at `address` (found by the
    addresses of its network namespace); answers its pid."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv0 = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0]
            if os.path.basename(argv0).decode(errors="replace") != name:
                continue
            if f"|-- {address}\n" not in open(f"/proc/{pid}/net/fib_trie").read():
                continue
        except OSError:
            continue
        os.kill(int(pid), signal.SIGKILL)
        return int(pid)
    raise AssertionError(f"no {name} process in the machine at {address}")


def assert_no_plaintext(root, secrets):
    """No file under `root` holds one of `secrets`, and no first-boot secret file is left."""
    found, leftovers = [], []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if name in ("init.sql", "admin.pw") and "opsworks-rds" in dirpath:
                leftovers.append(path)
            try:
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                data = open(path, "rb").read()
            except OSError:
                continue
            found += [f"{path}: {secret[:3]}..." for secret in secrets if secret.encode() in data]
    assert leftovers == [], f"first-boot secret files left: {leftovers}"
    assert found == [], f"plaintext passwords in {found}"


def endpoint_of(c, name):
    db = c.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
    return db["Endpoint"]["Address"], db["Endpoint"]["Port"]


def record_figure(workdir, key, value):
    path = workdir / "rds-figures.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[key] = value
    path.write_text(json.dumps(figures, indent=2))
    print(f"\nFIGURE {key}: {value}")


def test_aws_rds_makes_real_databases_that_keep_their_data(rds_server, dbs, workdir):
    c = rds_client(rds_server)
    started = time.monotonic()
    p = aws(rds_server, "rds", "create-db-instance", "--db-instance-identifier", "shopdb",
            "--db-instance-class", "db.t3.micro", "--engine", "mariadb", "--master-username", "shop",
            "--master-user-password", MASTER_PW, "--allocated-storage", "20", "--db-name", "shop",
            "--tags", "Key=team,Value=web")
    assert p.returncode == 0, p.stderr
    dbs["shopdb"] = True
    created = json.loads(p.stdout)["DBInstance"]
    assert created["DBInstanceStatus"] == "creating" and "Endpoint" not in created
    c.create_db_instance(DBInstanceIdentifier="OrdersDB", DBInstanceClass="db.t3.micro", Engine="postgres",
                         MasterUsername="orders", MasterUserPassword=PG_PW, AllocatedStorage=20,
                         DBName="orders")
    dbs["ordersdb"] = True
    c.get_waiter("db_instance_available").wait(DBInstanceIdentifier="shopdb", WaiterConfig=WAIT)
    record_figure(workdir, "create_to_available_seconds (mariadb, with a postgres one created beside it)",
                  round(time.monotonic() - started, 1))
    c.get_waiter("db_instance_available").wait(DBInstanceIdentifier="ordersdb", WaiterConfig=WAIT)
    # Twice is a duplicate, whatever the case.
    with pytest.raises(c.exceptions.DBInstanceAlreadyExistsFault):
        c.create_db_instance(DBInstanceIdentifier="ShopDB", DBInstanceClass="db.t3.micro", Engine="mariadb",
                             MasterUsername="shop", MasterUserPassword=MASTER_PW, AllocatedStorage=20)

    shop = c.describe_db_instances(DBInstanceIdentifier="shopdb")["DBInstances"][0]
    assert shop["EngineVersion"] == host_version("/usr/sbin/mariadbd", "Ver ")
    assert shop["DBInstanceArn"].endswith(":db:shopdb") and shop["DBName"] == "shop"
    assert shop["TagList"] == [{"Key": "team", "Value": "web"}]
    orders = c.describe_db_instances(Filters=[{"Name": "engine", "Values": ["postgres"]}])["DBInstances"]
    assert [o["DBInstanceIdentifier"] for o in orders] == ["ordersdb"]
    pg_bin = sorted(os.listdir("/usr/lib/postgresql"), key=int)[-1]
    assert orders[0]["EngineVersion"] == host_version(f"/usr/lib/postgresql/{pg_bin}/bin/postgres", "(PostgreSQL) ")

    shop_at, orders_at = endpoint_of(c, "shopdb"), endpoint_of(c, "ordersdb")
    assert shop_at[1] == 3306 and orders_at[1] == 5432
    mysql(*shop_at, "shop", MASTER_PW, "shop", "CREATE TABLE kept (v INT); INSERT INTO kept VALUES (1)")
    psql(*orders_at, "orders", PG_PW, "orders", "CREATE TABLE kept (v INT); INSERT INTO kept VALUES (1)")
    with pytest.raises(RuntimeError, match="Access denied"):
        mysql(*shop_at, "shop", "wrong-password", "shop", "SELECT 1")

    # A reboot keeps the data (the disk survives), through the waiter's statuses.
    for name in ("shopdb", "ordersdb"):
        assert c.reboot_db_instance(DBInstanceIdentifier=name)["DBInstance"]["DBInstanceStatus"] == "rebooting"
    for name in ("shopdb", "ordersdb"):
        c.get_waiter("db_instance_available").wait(DBInstanceIdentifier=name, WaiterConfig=WAIT)
    assert retry(lambda: mysql(*endpoint_of(c, "shopdb"), "shop", MASTER_PW, "shop", "SELECT v FROM kept")) == "1"
    assert retry(lambda: psql(*endpoint_of(c, "ordersdb"), "orders", PG_PW, "orders", "SELECT v FROM kept")) == "1"

    # A new master password works as soon as the call answers; the old one no longer does.
    new_pg = "pg-rotated-Pw1"
    c.modify_db_instance(DBInstanceIdentifier="ordersdb", MasterUserPassword=new_pg, ApplyImmediately=True)
    assert psql(*endpoint_of(c, "ordersdb"), "orders", new_pg, "orders", "SELECT v FROM kept") == "1"
    with pytest.raises(RuntimeError, match="password authentication failed"):
        psql(*endpoint_of(c, "ordersdb"), "orders", PG_PW, "orders", "SELECT 1")

    # A server restart leaves the databases running (and answering meanwhile), adopted as they were.
    rds_server.stop()
    assert mysql(*shop_at, "shop", MASTER_PW, "shop", "SELECT v FROM kept") == "1"
    rds_server.start()
    c = rds_client(rds_server)
    assert {d["DBInstanceStatus"] for d in c.describe_db_instances()["DBInstances"]} == {"available"}
    assert endpoint_of(c, "shopdb") == shop_at
    assert mysql(*shop_at, "shop", MASTER_PW, "shop", "SELECT v FROM kept") == "1"

    # The restarted server supervises what it adopted: a database server that dies (killed from
    # the host, as a crash would) is started again on its disk, with its data.
    killed = kill_database_server("mariadbd", shop_at[0])
    eventually(lambda: not os.path.exists(f"/proc/{killed}"), 10, what=f"mariadbd {killed} gone")
    assert retry(lambda: mysql(*shop_at, "shop", MASTER_PW, "shop", "SELECT v FROM kept"), 120) == "1"
    c.get_waiter("db_instance_available").wait(DBInstanceIdentifier="shopdb", WaiterConfig=WAIT)

    # No master password lies in plaintext anywhere under the data dir, the databases' disks
    # included: the first boot's secret files were removed once read.
    assert_no_plaintext(rds_server.data_dir, (MASTER_PW, PG_PW, new_pg))

    # Deletion protection holds; a deleted instance's data goes with it.
    c.modify_db_instance(DBInstanceIdentifier="ordersdb", DeletionProtection=True)
    with pytest.raises(c.exceptions.ClientError, match="deletion protection"):
        c.delete_db_instance(DBInstanceIdentifier="ordersdb", SkipFinalSnapshot=True)
    c.modify_db_instance(DBInstanceIdentifier="ordersdb", DeletionProtection=False)
    p = aws(rds_server, "rds", "delete-db-instance", "--db-instance-identifier", "ordersdb", "--skip-final-snapshot")
    assert p.returncode == 0 and json.loads(p.stdout)["DBInstance"]["DBInstanceStatus"] == "deleting", p.stderr
    p = aws(rds_server, "rds", "wait", "db-instance-deleted", "--db-instance-identifier", "ordersdb")
    assert p.returncode == 0, p.stderr
    with pytest.raises(RuntimeError):
        psql(*orders_at, "orders", new_pg, "orders", "SELECT 1")
    # No password reached the server's log.
    log = rds_server.log_path.read_text()
    for secret in (MASTER_PW, PG_PW, new_pg):
        assert secret not in log


@pytest.fixture(scope="module")
def stack(rds_server, dbs, workdir, git_http):
    """A stack with the lb and nodejs-app layers; the app layer also runs the row-writing recipe."""
    c = client_for(rds_server)
    make_repo(workdir / "rds-cookbooks", {
        "rdsapp/metadata.json": json.dumps({"name": "rdsapp", "version": "1.0.0"}),
        "rdsapp/recipes/write.star": 'load("hash.star", "hash_of")\n' + WRITE_RECIPE,
        "rdsapp/libraries/hash.star": HASH_LIB,
    })
    make_repo(workdir / "rds-nodeapp", {"server.js": SERVER_JS, "package.json": '{"name": "rdsapp"}\n'})
    sid = c.create_stack(
        Name="rds", Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
        UseCustomCookbooks=True,
        CustomCookbooksSource={"Type": "git", "Url": f"{git_http}/rds-cookbooks/.git", "Revision": "main"},
    )["StackId"]
    lb = c.create_layer(StackId=sid, Type="lb", Name="lb", Shortname="lb")["LayerId"]
    app_layer = c.create_layer(StackId=sid, Type="nodejs-app", Name="app", Shortname="nodejs-app",
                               CustomRecipes={"Setup": ["rdsapp::write"], "Configure": ["rdsapp::write"],
                                              "Deploy": ["rdsapp::write"]})["LayerId"]
    return {"id": sid, "lb": lb, "app": app_layer, "repo": f"{git_http}/rds-nodeapp/.git"}


def start(c, stack_id, layer):
    iid = c.create_instance(StackId=stack_id, LayerIds=[layer], InstanceType="t3.micro")["InstanceId"]
    c.start_instance(InstanceId=iid)
    return iid


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode().strip()


def test_a_registered_database_reaches_recipes_and_apps_through_a_rotation(rds_server, dbs, stack, workdir):
    c, rds = client_for(rds_server), rds_client(rds_server)
    arn = rds.describe_db_instances(DBInstanceIdentifier="shopdb")["DBInstances"][0]["DBInstanceArn"]
    shop_at = endpoint_of(rds, "shopdb")
    with pytest.raises(c.exceptions.ValidationException, match="wrong user name or password"):
        c.register_rds_db_instance(StackId=stack["id"], RdsDbInstanceArn=arn, DbUser="shop", DbPassword="nope-nope")
    c.register_rds_db_instance(StackId=stack["id"], RdsDbInstanceArn=arn, DbUser="shop", DbPassword=MASTER_PW)
    c.create_app(StackId=stack["id"], Name="Shop", Shortname="shop", Type="nodejs",
                 AppSource={"Type": "git", "Url": stack["repo"], "Revision": "main"},
                 DataSources=[{"Type": "RdsDbInstance", "Arn": arn, "DatabaseName": "shop"}])
    app_iid = start(c, stack["id"], stack["app"])
    lb_iid = start(c, stack["id"], stack["lb"])
    c.get_waiter("instance_online").wait(InstanceIds=[app_iid, lb_iid], WaiterConfig=WAIT)
    lb_ip = c.describe_instances(InstanceIds=[lb_iid])["Instances"][0]["PrivateIp"]
    app_host = c.describe_instances(InstanceIds=[app_iid])["Instances"][0]["Hostname"]

    def rows():
        out = mysql(*shop_at, "shop", MASTER_PW if not rotated.is_set() else ROTATED_PW, "shop",
                    "SELECT activity, host, rds_instances, bag_items, fingerprint FROM writes")
        return [line.split("\t") for line in out.splitlines()]

    rotated = threading.Event()
    # Setup and Deploy on the app instance wrote through node["deploy"]["shop"]["database"], and saw
    # the database in rds_instances and in the aws_opsworks_rds_db_instance data bag.
    written = rows()
    assert {r[0] for r in written} >= {"setup", "deploy"}, written
    assert all(r[1] == app_host and r[2:4] == ["1", "1"] and r[4] == hash_of(MASTER_PW) for r in written)
    status, body = retry(lambda: get(f"http://{lb_ip}/db"), 60)
    assert status == 200 and body.startswith("db "), body
    first_pid = body.split()[2]
    deploys_before = [d for d in c.describe_deployments(StackId=stack["id"])["Deployments"]
                      if d["Command"]["Name"] == "deploy"]

    # Traffic through the lb all along the rotation; every answer counted.
    outcomes, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            try:
                outcomes.append(get(f"http://{lb_ip}/db"))
            except urllib.error.HTTPError as e:
                outcomes.append((e.code, e.read().decode(errors="replace").strip()))
            except (urllib.error.URLError, OSError) as e:
                outcomes.append((0, str(e)))
            time.sleep(0.02)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(1)
        rotation_started = time.monotonic()
        rds.modify_db_instance(DBInstanceIdentifier="shopdb", MasterUserPassword=ROTATED_PW, ApplyImmediately=True)
        rotated.set()
        c.update_rds_db_instance(RdsDbInstanceArn=arn, DbPassword=ROTATED_PW)
        # The update reaches the instances as a Configure: the recipe writes with the new password
        # and the app restarts onto it, without a deployment.
        eventually(lambda: any(r[0] == "configure" and r[4] == hash_of(ROTATED_PW) for r in rows()), 180,
                   what="a Configure row written with the rotated password")

        def restarted():
            status, body = get(f"http://{lb_ip}/db")
            return status == 200 and body.split()[2] != first_pid

        eventually(lambda: retry(restarted, 5), 120, what="the app restarted with the new password")
        rotation_seconds = time.monotonic() - rotation_started
        time.sleep(3)
    finally:
        stop.set()
        loader.join()
    failed = [o for o in outcomes if o[0] != 200]
    record_figure(workdir, "requests through the lb during the rotation",
                  {"total": len(outcomes), "failed": len(failed),
                   "rotation_to_app_restarted_seconds": round(rotation_seconds, 1)})
    assert len(outcomes) > 50
    assert failed == [], f"{len(failed)} of {len(outcomes)} requests failed: {failed[:5]}"
    deploys_after = [d for d in c.describe_deployments(StackId=stack["id"])["Deployments"]
                     if d["Command"]["Name"] == "deploy"]
    assert len(deploys_after) == len(deploys_before), "the rotation made a deployment"
    [shown] = c.describe_rds_db_instances(StackId=stack["id"])["RdsDbInstances"]
    assert shown["DbPassword"] == "*****FILTERED*****" and shown["Address"] == shop_at[0]

    # Register -> attributes on every instance: a second database registered reaches every online
    # instance's rds_instances through the Configure it triggers.
    rds.create_db_instance(DBInstanceIdentifier="seconddb", DBInstanceClass="db.t3.micro", Engine="mysql",
                           MasterUsername="second", MasterUserPassword=MASTER_PW, AllocatedStorage=20)
    dbs["seconddb"] = True
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier="seconddb", WaiterConfig=WAIT)
    second_arn = rds.describe_db_instances(DBInstanceIdentifier="seconddb")["DBInstances"][0]["DBInstanceArn"]
    before = len(rows())
    registered_at = time.monotonic()
    c.register_rds_db_instance(StackId=stack["id"], RdsDbInstanceArn=second_arn, DbUser="second",
                               DbPassword=MASTER_PW)
    eventually(lambda: any(r[0] == "configure" and r[2:4] == ["2", "2"] for r in rows()[before:]), 180,
               what="a Configure that saw both databases")
    configures = [d for d in c.describe_deployments(StackId=stack["id"])["Deployments"]
                  if d["Command"]["Name"] == "configure"]
    newest = max(configures, key=lambda d: d["CreatedAt"])
    c.get_waiter("deployment_successful").wait(DeploymentIds=[newest["DeploymentId"]], WaiterConfig=WAIT)
    record_figure(workdir, "register_to_attributes_on_every_instance_seconds (2 online instances)",
                  round(time.monotonic() - registered_at, 1))
    # A database used by an app stays registered; one no app uses is deregistered (it keeps running).
    with pytest.raises(c.exceptions.ValidationException, match="data source of app"):
        c.deregister_rds_db_instance(RdsDbInstanceArn=arn)
    c.deregister_rds_db_instance(RdsDbInstanceArn=second_arn)
    assert rds.describe_db_instances(DBInstanceIdentifier="seconddb")["DBInstances"][0]["DBInstanceStatus"] == "available"
    log = rds_server.log_path.read_text()
    for secret in (MASTER_PW, ROTATED_PW):
        assert secret not in log
    for f in (rds_server.data_dir / "logs").rglob("*"):
        if f.is_file():
            for secret in (MASTER_PW, ROTATED_PW):
                assert secret.encode() not in f.read_bytes(), f"{f} holds a password"

"""The rails-app, java-app and monitoring-master layers end to end, and app deploy hooks, on real
local instances of a server of their own (with --metrics-public, so the monitoring layer can scrape
the control plane), driven only through boto3 and HTTP.

Rails: a real Rails 6.1 app (Debian's ruby-rails and ruby-mysql2, installed by the layer's
Packages and bundled with `bundle install --local`) whose migration creates a table in db-master,
and a plain Rack app with deploy hooks, both under Puma behind nginx, behind the lb layer.
Java: a JSP app under Tomcat 10 whose JNDI DataSource reaches db-master, behind the lb layer.
Monitoring: Prometheus on the java stack, scraping every instance, behind basic auth.
Each layer gets a deploy while clients send requests through the lb: none may fail."""

import hashlib
import io
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zipfile
from base64 import b64encode

import pytest

from conftest import client_for, commit, eventually, http_get, make_repo, retry, running_server

WAIT = {"Delay": 1, "MaxAttempts": 600}
ROOT_PW = "root-Pw-0f-the-app-stacks"
MON_PW = "mon-Pw-0f-the-java-stack"
SECRET_KEY_BASE = "k" * 64

RAILS_FILES = {
    "Gemfile": 'source "https://rubygems.org"\ngem "rails", "~> 6.1.0"\ngem "mysql2"\n',
    "config.ru": 'require_relative "config/environment"\nrun Rails.application\n',
    "Rakefile": 'require_relative "config/application"\nRails.application.load_tasks\n',
    "VERSION": "v1\n",
    "config/boot.rb": 'ENV["BUNDLE_GEMFILE"] ||= File.expand_path("../Gemfile", __dir__)\nrequire "bundler/setup"\n',
    "config/application.rb": '''require_relative "boot"
require "rails"
require "active_record/railtie"
require "action_controller/railtie"

module Shop
  class Application < Rails::Application
    config.load_defaults 6.1
    config.eager_load = true
    config.api_only = true
    config.logger = Logger.new($stdout)
  end
end
''',
    "config/environment.rb": 'require_relative "application"\nRails.application.initialize!\n',
    "config/routes.rb": '''Rails.application.routes.draw do
  root to: "home#index"
  get "/widgets" => "home#widgets"
  get "/cache" => "home#cache"
end
''',
    "app/models/application_record.rb": "class ApplicationRecord < ActiveRecord::Base\n  self.abstract_class = true\nend\n",
    "app/models/widget.rb": "class Widget < ApplicationRecord\nend\n",
    "app/controllers/home_controller.rb": '''class HomeController < ActionController::API
  def index
    render plain: "rails #{Rails.env} #{File.read(Rails.root.join("VERSION")).strip} #{ENV["GREETING"]}\\n"
  end

  def widgets
    Widget.create!(name: "w") if Widget.count.zero?
    render plain: "widgets #{Widget.count} in #{ActiveRecord::Base.connection.current_database}\\n"
  end

  def cache
    mc = YAML.load_file(Rails.root.join("config/memcached.yml"))[Rails.env]
    render plain: "memcached #{mc["host"]}:#{mc["port"]}\\n"
  end
end
''',
    "db/migrate/20240101000000_create_widgets.rb": '''class CreateWidgets < ActiveRecord::Migration[6.1]
  def change
    create_table :widgets do |t|
      t.string :name
    end
  end
end
''',
}

RACK_FILES = {
    "config.ru": '''version = File.read(File.join(__dir__, "VERSION")).strip
hooked = File.join(__dir__, "hooked.txt")
note = File.exist?(hooked) ? File.read(hooked).strip : "no hook"
run lambda { |env| [200, {"content-type" => "text/plain"}, ["rack #{ENV["RACK_ENV"]} #{version} #{note}\\n"]] }
''',
    "VERSION": "v1\n",
    # Runs with the release path and the node before the migration: what it writes is served.
    "deploy/before_migrate.star": '''h = node["deploy_hook"]
file(h["release_path"] + "/hooked.txt",
    content = "%s of %s in %s" % (h["hook"], h["app"], node["opsworks"]["stack"]["name"]))
''',
}

JSP_FILES = {
    "index.jsp": '<%@ page session="false" contentType="text/plain" %>java <%= 6*7 %> v1\n',
    "db.jsp": '''<%@ page session="false" contentType="text/plain" import="javax.naming.InitialContext,javax.sql.DataSource,java.sql.*" %><%
DataSource ds = (DataSource) new InitialContext().lookup("java:comp/env/jdbc/jsp");
try (Connection c = ds.getConnection(); Statement s = c.createStatement();
     ResultSet r = s.executeQuery("SELECT 6*7, DATABASE()")) {
    r.next();
    out.print("db " + r.getInt(1) + " in " + r.getString(2) + "\\n");
}
%>''',
}


def get(url, host=None, auth=None, timeout=10):
    req = urllib.request.Request(url)
    if host:
        req.add_header("Host", host)
    if auth:
        req.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode().strip()


def expect(fn, want, seconds=120):
    """`fn()` once it returns `want` (it may fail meanwhile)."""
    def check():
        got = fn()
        if got != want:
            raise AssertionError(f"got {got!r}, want {want!r}")
        return got
    return retry(check, seconds, 0.5)


@pytest.fixture(scope="module")
def apps_server(workdir):
    yield from running_server(workdir, "apps", ["--metrics-public", "--metrics-interval", "2"])


def new_stack(c, name):
    return c.create_stack(
        Name=name, Region="us-east-1",
        ServiceRoleArn="arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        DefaultInstanceProfileArn="arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    )["StackId"]


def start_all(c, ids):
    """Starts the instances and waits for them online; on a failure, prints the failed logs."""
    started = time.time()
    for i in ids:
        c.start_instance(InstanceId=i)
    try:
        c.get_waiter("instance_online").wait(InstanceIds=ids, WaiterConfig=WAIT)
    except Exception:
        print_failed_logs(c, ids)
        raise
    return time.time() - started


def print_failed_logs(c, ids):
    for i in ids:
        for cmd in c.describe_commands(InstanceId=i)["Commands"]:
            if cmd["Status"] == "failed" and cmd.get("LogUrl"):
                print(http_get(cmd["LogUrl"]))


def deploy(c, stack_id, app_id, args=None, ok=True):
    command = {"Name": "deploy"}
    if args:
        command["Args"] = args
    d = c.create_deployment(StackId=stack_id, AppId=app_id, Command=command)["DeploymentId"]
    status = eventually(lambda: {"successful", "failed"} & {
        x["Status"] for x in c.describe_deployments(DeploymentIds=[d])["Deployments"]}, 600, 0.5,
        "the deployment to end")
    if status != {"successful" if ok else "failed"}:
        for cmd in c.describe_commands(DeploymentId=d)["Commands"]:
            if cmd.get("LogUrl"):
                print(http_get(cmd["LogUrl"]))
        raise AssertionError(f"deployment {d} ended {status}, expected {'successful' if ok else 'failed'}")
    return d


def deployment_logs(c, deployment_id):
    return [http_get(cmd["LogUrl"]) for cmd in c.describe_commands(DeploymentId=deployment_id)["Commands"]
            if cmd.get("LogUrl")]


class Load:
    """Clients sending GETs through the load balancer without pause until stopped: every
    request's outcome is kept."""

    def __init__(self, url, clients=4, host=None):
        self.url, self.host, self.results = url, host, []
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.worker) for _ in range(clients)]

    def worker(self):
        while not self.stop_event.is_set():
            try:
                body, ok = get(self.url, host=self.host, timeout=30), True
            except Exception as e:  # noqa: BLE001 - every failure counts, kept by kind
                body, ok = f"{type(e).__name__}: {getattr(e, 'code', '') or getattr(e, 'reason', '') or e}", False
            with self.lock:
                self.results.append((ok, body))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join()

    def failures(self):
        return [b for ok, b in self.results if not ok]


def deploy_under_load(c, stack_id, app_id, url, want_last, host=None):
    """Deploys while clients send requests through the lb; returns (requests, failures)."""
    with Load(url, host=host) as load:
        time.sleep(2)
        deploy(c, stack_id, app_id)
        time.sleep(3)
    last = {b for ok, b in load.results[-8:]}
    assert last == {want_last}, last
    print(f"\ndeploy under load through the lb: {len(load.results)} requests, {len(load.failures())} failed")
    return len(load.results), load.failures()


def app_db_password(app_id):
    return hashlib.sha256(f"opsworks-app-database\0{ROOT_PW}\0{app_id}".encode()).hexdigest()[:32]


def mariadb(host, user, password, database, sql):
    out = subprocess.run(["mariadb", "-h", host, "-u", user, "-D", database, "-N", "-B", "-e", sql],
                         env={"MYSQL_PWD": password, "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def rails_stack(apps_server, workdir, git_http):
    c = client_for(apps_server)
    rails_repo = make_repo(workdir / "rails-shop", RAILS_FILES)
    rack_repo = make_repo(workdir / "rack-site", RACK_FILES)
    sid = new_stack(c, "rails-stack")
    layer = lambda t, **kw: c.create_layer(StackId=sid, Type=t, Name=t, Shortname=t, **kw)["LayerId"]  # noqa: E731
    layers = {
        "lb": layer("lb"),
        "db-master": layer("db-master", Attributes={"MysqlRootPassword": ROOT_PW}),
        "memcached": layer("memcached", Attributes={"MemcachedMemory": "32"}),
        # The Rails app's gems, from Debian: `bundle install --local` finds them.
        "rails-app": layer("rails-app", Packages=["ruby-rails", "ruby-mysql2"],
                           Attributes={"RailsStack": "nginx_unicorn", "ManageBundler": "true"}),
    }
    db_arn = c.describe_layers(LayerIds=[layers["db-master"]])["Layers"][0]["Arn"]
    rails_app = c.create_app(
        StackId=sid, Name="Shop", Shortname="shop", Type="rails",
        AppSource={"Type": "git", "Url": f"{git_http}/rails-shop/.git", "Revision": "main"},
        DataSources=[{"Type": "OpsworksMysqlInstance", "Arn": db_arn, "DatabaseName": "shop"}],
        Attributes={"RailsEnv": "production"},
        Environment=[{"Key": "SECRET_KEY_BASE", "Value": SECRET_KEY_BASE, "Secure": True},
                     {"Key": "GREETING", "Value": "hello"}],
    )["AppId"]
    rack_app = c.create_app(
        StackId=sid, Name="Site", Shortname="site", Type="rails", Domains=["rack.test"],
        AppSource={"Type": "git", "Url": f"{git_http}/rack-site/.git", "Revision": "main"},
    )["AppId"]
    ids = {t: [c.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t3.micro")["InstanceId"]
               for _ in range(2 if t == "rails-app" else 1)]
           for t, lid in layers.items()}
    every = [i for group in ids.values() for i in group]
    online = start_all(c, every)
    described = {i["InstanceId"]: i for i in c.describe_instances(InstanceIds=every)["Instances"]}
    yield {"client": c, "stack": sid, "layers": layers, "ids": ids, "rails": rails_app, "rack": rack_app,
           "rails_repo": rails_repo, "rack_repo": rack_repo, "online_seconds": online,
           "ip": {t: [described[i]["PrivateIp"] for i in group] for t, group in ids.items()}}
    for i in every:
        c.stop_instance(InstanceId=i, Force=True)
    c.get_waiter("instance_stopped").wait(InstanceIds=every, WaiterConfig=WAIT)


def test_a_rack_app_answers_through_rails_app_and_its_hook_ran(rails_stack):
    lb = rails_stack["ip"]["lb"][0]
    # The before_migrate hook wrote hooked.txt into the release, from the node it was given.
    want = "rack production v1 before_migrate of site in rails-stack"
    for ip in rails_stack["ip"]["rails-app"]:
        assert expect(lambda: get(f"http://{ip}/", host="rack.test"), want) == want
    assert expect(lambda: get(f"http://{lb}/", host="rack.test"), want) == want


def test_a_rails_app_migrates_its_database_in_db_master(rails_stack):
    c, lb = rails_stack["client"], rails_stack["ip"]["lb"][0]
    want = "rails production v1 hello"
    assert expect(lambda: get(f"http://{lb}/"), want) == want
    # memcached.yml from the memcached layer (a Configure may bring it after the first deploy).
    mc = f"memcached {rails_stack['ip']['memcached'][0]}:11211"
    assert expect(lambda: get(f"http://{lb}/cache"), mc) == mc
    db = rails_stack["ip"]["db-master"][0]
    pw = app_db_password(rails_stack["rails"])
    assert "widgets" not in mariadb(db, "shop", pw, "shop", "SHOW TABLES").split()

    d = deploy(c, rails_stack["stack"], rails_stack["rails"], args={"migrate": ["true"]})
    assert {"widgets", "schema_migrations"} <= set(mariadb(db, "shop", pw, "shop", "SHOW TABLES").split())
    assert expect(lambda: get(f"http://{lb}/widgets"), "widgets 1 in shop") == "widgets 1 in shop"
    logs = "\n".join(deployment_logs(c, d))
    # Bundler said where the gems came from; the migration ran (once: the first instance's
    # migration applied it, the second found it applied).
    assert "bundle: the gems installed on this host satisfy the Gemfile: bundle install --local" in logs, logs
    assert "rake db:migrate" in logs
    for secret in (ROOT_PW, pw, SECRET_KEY_BASE):
        assert secret not in logs


def test_a_failing_before_symlink_hook_keeps_the_old_release_live(rails_stack):
    c, lb = rails_stack["client"], rails_stack["ip"]["lb"][0]
    old = "rack production v1 before_migrate of site in rails-stack"
    commit(rails_stack["rack_repo"], {"VERSION": "v2\n",
                                      "deploy/before_symlink.star": 'fail("this release is refused")\n'}, "v2")
    d = deploy(c, rails_stack["stack"], rails_stack["rack"], ok=False)
    logs = "\n".join(deployment_logs(c, d))
    assert "this release is refused" in logs, logs
    assert "deploy hook before_symlink of app site failed" in logs, logs
    assert "went live: removed; current stays on" in logs, logs
    # The hooks of a rails app run where the rails-app layer deploys it; on the other instances
    # (lb, db-master, memcached) the release only becomes current, so their Deploy succeeds.
    status = {cmd["InstanceId"]: cmd["Status"] for cmd in c.describe_commands(DeploymentId=d)["Commands"]}
    rails_ids = set(rails_stack["ids"]["rails-app"])
    assert {s for i, s in status.items() if i in rails_ids} == {"failed"}, status
    others = {s for i, s in status.items() if i not in rails_ids}
    assert others == {"successful"}, status
    for ip in rails_stack["ip"]["rails-app"]:
        assert get(f"http://{ip}/", host="rack.test") == old
    assert get(f"http://{lb}/", host="rack.test") == old


def test_a_rails_deploy_through_the_lb_drops_no_request(rails_stack):
    c, lb = rails_stack["client"], rails_stack["ip"]["lb"][0]
    commit(rails_stack["rails_repo"], {"VERSION": "v2\n"}, "v2")
    n, failures = deploy_under_load(c, rails_stack["stack"], rails_stack["rails"], f"http://{lb}/",
                                    "rails production v2 hello")
    assert n > 0 and failures == [], failures


@pytest.fixture(scope="module")
def java_stack(apps_server, workdir, git_http, rails_stack):
    # After the rails stack (its instances are stopped first, to spare the 2 cores).
    c = client_for(apps_server)
    jsp_repo = make_repo(workdir / "jsp-site", JSP_FILES)
    sid = new_stack(c, "java-stack")
    layer = lambda t, **kw: c.create_layer(StackId=sid, Type=t, Name=t, Shortname=t, **kw)["LayerId"]  # noqa: E731
    layers = {
        "lb": layer("lb"),
        "db-master": layer("db-master", Attributes={"MysqlRootPassword": ROOT_PW}),
        "java-app": layer("java-app", Attributes={"Jvm": "openjdk", "JvmVersion": "17",
                                                  "JavaAppServer": "tomcat", "JavaAppServerVersion": "10",
                                                  "JvmOptions": "-Xmx256m -Xss512k"}),
        "monitoring-master": layer("monitoring-master", Attributes={"GangliaPassword": MON_PW}),
    }
    db_arn = c.describe_layers(LayerIds=[layers["db-master"]])["Layers"][0]["Arn"]
    app_id = c.create_app(
        StackId=sid, Name="JSP", Shortname="jsp", Type="java",
        AppSource={"Type": "git", "Url": f"{git_http}/jsp-site/.git", "Revision": "main"},
        DataSources=[{"Type": "OpsworksMysqlInstance", "Arn": db_arn, "DatabaseName": "jsp"}],
    )["AppId"]
    ids = {t: [c.create_instance(StackId=sid, LayerIds=[lid], InstanceType="t3.micro")["InstanceId"]
               for _ in range(2 if t == "java-app" else 1)]
           for t, lid in layers.items()}
    every = [i for group in ids.values() for i in group]
    online = start_all(c, every)
    described = {i["InstanceId"]: i for i in c.describe_instances(InstanceIds=every)["Instances"]}
    yield {"client": c, "stack": sid, "layers": layers, "ids": ids, "app": app_id, "repo": jsp_repo,
           "online_seconds": online, "hostnames": {described[i]["Hostname"] for i in every},
           "ip": {t: [described[i]["PrivateIp"] for i in group] for t, group in ids.items()}}
    for i in every:
        c.stop_instance(InstanceId=i, Force=True)
    c.get_waiter("instance_stopped").wait(InstanceIds=every, WaiterConfig=WAIT)


def test_a_jsp_answers_through_java_app_with_its_datasource(java_stack):
    lb = java_stack["ip"]["lb"][0]
    # 42 is computed by the JSP: the source holds "6*7".
    for ip in java_stack["ip"]["java-app"]:
        assert expect(lambda: get(f"http://{ip}/"), "java 42 v1") == "java 42 v1"
    assert expect(lambda: get(f"http://{lb}/"), "java 42 v1") == "java 42 v1"
    # The JNDI DataSource of the context descriptor reaches the app's database on db-master (a
    # Configure deploys it as a new version when db-master came online after the first deploy).
    assert expect(lambda: get(f"http://{lb}/db.jsp"), "db 42 in jsp", 180) == "db 42 in jsp"


def test_a_java_deploy_through_the_lb_drops_no_request(java_stack):
    c, lb = java_stack["client"], java_stack["ip"]["lb"][0]
    commit(java_stack["repo"], {"index.jsp": JSP_FILES["index.jsp"].replace("v1", "v2")}, "v2")
    n, failures = deploy_under_load(c, java_stack["stack"], java_stack["app"], f"http://{lb}/", "java 42 v2")
    assert n > 0 and failures == [], failures


def test_a_war_deploys_as_the_root_context(java_stack):
    """A release with one WAR at its top (and no WEB-INF/) is deployed as that WAR."""
    c = java_stack["client"]
    war = io.BytesIO()
    with zipfile.ZipFile(war, "w") as z:
        z.writestr("index.jsp", '<%@ page session="false" contentType="text/plain" %>war <%= 6*7 %>\n')
    repo = java_stack["repo"]
    (repo / "shop.war").write_bytes(war.getvalue())
    for f in JSP_FILES:
        (repo / f).unlink()
    commit(repo, {}, "a WAR instead of the JSPs")
    deploy(c, java_stack["stack"], java_stack["app"])
    for ip in java_stack["ip"]["java-app"]:
        assert expect(lambda: get(f"http://{ip}/"), "war 42", 60) == "war 42"


def test_prometheus_scrapes_every_instance_behind_the_password(java_stack):
    mon = java_stack["ip"]["monitoring-master"][0]
    auth = f"opsworks:{MON_PW}"
    # Without the password, or with a wrong one: refused.
    for bad in (None, "opsworks:wrong"):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(f"http://{mon}/api/v1/query?query=up", auth=bad)
        assert e.value.code == 401
    def up_hosts():
        body = json.loads(get(f"http://{mon}/api/v1/query?query=up%7Bjob%3D%22node%22%7D", auth=auth))
        got = {r["metric"]["hostname"] for r in body["data"]["result"] if r["value"][1] == "1"}
        return got if got == java_stack["hostnames"] else None
    assert eventually(up_hosts, 90, 1, "up{job=node} to list every instance") == java_stack["hostnames"]
    # The control plane's /metrics of this stack, through the same API under GangliaUrl.
    def control_plane():
        body = json.loads(get(f"http://{mon}/ganglia/api/v1/query?query=up%7Bjob%3D%22opsworks%22%7D", auth=auth))
        return [r["value"][1] for r in body["data"]["result"]] == ["1"]
    assert eventually(control_plane, 60, 1, "the control plane's /metrics to be scraped")
    # The web UI answers under GangliaUrl (/ leads there).
    for path in ("/ganglia/", "/"):
        assert "<title>Prometheus" in get(f"http://{mon}{path}", auth=auth)

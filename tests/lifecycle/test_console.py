"""The web console in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
sign in, build a stack, start an instance and watch it come online live, deploy an app and read its
log, with no script or style refused by the content security policy. Screenshots of the main pages
go to $OPSWORKS_SCREENSHOTS (default /var/tmp/opsworks-console-screenshots) for a person to look at.

Then sign-in over plain HTTP against servers of their own (no browser, no local instances): the
cookies' flags, the double-submit form token, redirects that stay in the console, the security
headers, HTTP 429 after failed sign-ins, and the server's memory under a storm of them."""

import http.client
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import AKID, SECRET, client_for, engine, free_port, make_repo, running_server

PASSWORD = "console-test-password"
SHOTS = Path(os.environ.get("OPSWORKS_SCREENSHOTS", "/var/tmp/opsworks-console-screenshots"))


@pytest.fixture(scope="module")
def console_server(workdir):
    yield from running_server(workdir, "console", ["--metrics-interval", "1"],
                              env={"OPSWORKS_CONSOLE_PASSWORD": PASSWORD})


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(driver_path)):
        pytest.fail("the console tests need Debian's chromium and chromium-driver packages")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900"]:
        opts.add_argument(flag)
    # The browser's console log: what the content security policy refused shows up there.
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.implicitly_wait(0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name):
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def wait_for(driver, condition, timeout=30, message=""):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message)
    except Exception:
        # What the page showed when the wait gave up, for whoever reads the failure.
        shot(driver, "failure")
        raise


def text_of(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css).text


def fill(driver, name, value):
    el = driver.find_element(By.NAME, name)
    el.clear()
    el.send_keys(value)


def test_console_from_sign_in_to_a_deployed_app(console_server, browser, workdir, git_http):
    b = browser
    base = console_server.endpoint

    # A browser's GET / leads to the console, which asks for the password; a wrong one is refused.
    b.get(base + "/")
    wait_for(b, lambda d: "/console/sign-in" in d.current_url, message="no redirect to sign-in")
    fill(b, "password", "not-the-password")
    b.find_element(By.ID, "sign-in").click()
    assert "not right" in wait_for(b, lambda d: d.find_elements(By.ID, "sign-in-error"))[0].text
    shot(b, "01-sign-in-failed")
    fill(b, "password", PASSWORD)
    b.find_element(By.ID, "sign-in").click()
    wait_for(b, lambda d: d.find_elements(By.ID, "new-stack"), message="stacks page not shown")
    shot(b, "02-stacks-empty")
    # The stylesheet applies under the content security policy (the script is shown to work by the
    # live updates below).
    header_bg = b.execute_script("return getComputedStyle(document.querySelector('header.top')).backgroundColor")
    assert header_bg == "rgb(29, 36, 48)", header_bg

    # A stack form with a bad value shows the error next to the field and keeps what was typed.
    b.find_element(By.ID, "new-stack").click()
    fill(b, "Name", "Console demo")
    fill(b, "CustomJson", "{not json")
    b.find_element(By.ID, "save-stack").click()
    err = wait_for(b, lambda d: d.find_elements(By.CSS_SELECTOR, "label .field-error"))[0]
    assert "CustomJson" in err.text and "JSON" in err.text
    assert b.find_element(By.NAME, "CustomJson").get_attribute("value") == "{not json"
    shot(b, "03-stack-form-error")
    fill(b, "CustomJson", '{"demo": {"greeting": "hello"}}')
    b.find_element(By.ID, "save-stack").click()
    wait_for(b, lambda d: d.find_elements(By.ID, "add-layer"), message="stack dashboard not shown")
    stack_url = b.current_url

    # A custom layer.
    b.find_element(By.ID, "add-layer").click()
    fill(b, "Name", "Workers")
    fill(b, "Shortname", "workers")
    b.find_element(By.ID, "save-layer").click()
    wait_for(b, lambda d: "Workers" in d.page_source and d.current_url == stack_url)

    # An error of the API itself (a second layer with the same short name) shows next to its field.
    b.find_element(By.ID, "add-layer").click()
    fill(b, "Name", "Workers too")
    fill(b, "Shortname", "workers")
    b.find_element(By.ID, "save-layer").click()
    err = wait_for(b, lambda d: d.find_elements(By.CSS_SELECTOR, "label .field-error"))[0]
    assert "short name" in err.text
    assert err.find_element(By.XPATH, "..").find_element(By.NAME, "Shortname")
    b.get(stack_url)

    # An instance started from the console reaches online while the page stays loaded.
    b.find_element(By.ID, "add-instance").click()
    hostname = b.find_element(By.NAME, "Hostname").get_attribute("value")
    assert hostname, "the form suggests a hostname"
    b.find_element(By.NAME, "StartNow").click()
    b.find_element(By.ID, "save-instance").click()
    wait_for(b, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-instance] [data-field=Status]"))
    b.execute_script("window.__sameDocument = true;")
    status = lambda d: d.find_element(By.CSS_SELECTOR, "[data-instance] [data-field=Status]").text
    seen = set()

    def online(d):
        now = status(d)
        seen.add(now)
        return now == "online"

    wait_for(b, online, timeout=180, message="the instance never showed online")
    assert b.execute_script("return window.__sameDocument === true"), "the page was reloaded"
    assert len(seen) > 1, f"the status never changed live: {seen}"
    shot(b, "04-stack-instance-online")

    # An app from a git repository, deployed from the console; its log streams on the deployment page.
    repo = make_repo(workdir / "console-app", {"index.html": "<h1>from the console</h1>\n"})
    b.find_element(By.ID, "add-app").click()
    fill(b, "Name", "Site")
    Select(b.find_element(By.NAME, "Type")).select_by_visible_text("other")
    fill(b, "SourceUrl", f"{git_http}/{repo.name}/.git")
    fill(b, "SourceRevision", "main")
    fill(b, "env_key", "GREETING")
    fill(b, "env_value", "hello")
    b.find_element(By.ID, "save-app").click()
    wait_for(b, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-deploy]"))
    b.find_element(By.CSS_SELECTOR, "[data-deploy]").click()
    b.find_element(By.ID, "run-deploy").click()
    wait_for(b, lambda d: d.find_elements(By.ID, "deployment-status"))
    b.execute_script("window.__sameDocument = true;")
    wait_for(b, lambda d: text_of(d, "#deployment-status") == "successful", timeout=120,
             message="the deployment never showed successful")
    log = text_of(b, "[data-command] [data-field=Log]")
    assert log and log != "(no log yet)", "the deployment's log is shown"
    assert b.execute_script("return window.__sameDocument === true"), "the page was reloaded"
    shot(b, "05-deployment-log")

    # The instance page lists the command history with its log.
    b.get(stack_url)
    b.find_element(By.LINK_TEXT, hostname).click()
    wait_for(b, lambda d: d.find_elements(By.ID, "instance-status"))
    assert "deploy" in b.page_source and "setup" in b.page_source

    # Charts drawn by the server from the agent's metrics, for the instance and on the stack's
    # monitoring page, over a chosen period.
    def charts_loaded(d):
        imgs = d.find_elements(By.CSS_SELECTOR, "img.chart")
        for i in imgs:
            if not d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i):
                # A layer's charts load lazily, as a reader scrolls to them (how far below the
                # window Chrome starts loading depends on what it thinks of the network).
                d.execute_script("arguments[0].scrollIntoView()", i)
                return False
        return bool(imgs)

    wait_for(b, charts_loaded, message="the instance's charts did not load")
    shot(b, "06-instance")
    b.get(stack_url)
    b.find_element(By.ID, "monitoring").click()
    b.find_element(By.LINK_TEXT, "8h").click()
    wait_for(b, lambda d: "Period=8h" in d.current_url)
    wait_for(b, charts_loaded, message="the monitoring charts did not load")
    assert len(b.find_elements(By.CSS_SELECTOR, "img.chart")) >= 10  # the stack's and the layer's
    shot(b, "07-monitoring")

    # The stack's events, followed live: a deployment started elsewhere shows up without a reload.
    b.get(stack_url)
    b.find_element(By.ID, "events").click()
    wait_for(b, lambda d: "instance_status" in d.find_element(By.ID, "event-rows").text)
    b.execute_script("window.__sameDocument = true;")
    rows = lambda d: d.find_elements(By.CSS_SELECTOR, "#event-rows tr")
    before = len(rows(b))
    c = client_for(console_server)
    stack_id = stack_url.rstrip("/").rsplit("/", 1)[1]
    c.create_deployment(StackId=stack_id, Command={"Name": "configure"}, Comment="from the events test")
    wait_for(b, lambda d: len(rows(d)) >= before + 2 and "deployment_status" in rows(d)[0].text, timeout=60,
             message="the configure's events never appeared")
    assert b.execute_script("return window.__sameDocument === true"), "the page was reloaded"
    shot(b, "08-events")
    # Events read as sentences, linked by hostname and command; no raw JSON, no "instance" links.
    configure_id = c.describe_deployments(StackId=stack_id)["Deployments"]
    configure_id = [d for d in configure_id if d.get("Comment") == "from the events test"][0]["DeploymentId"]
    wait_for(b, lambda d: f"configure on {hostname}: successful" in d.find_element(By.ID, "event-rows").text,
             timeout=60, message="the configure command's event never read as a sentence")
    newest = rows(b)[0]
    assert "configure deployment: running → " in newest.text, newest.text
    assert [a.text for a in newest.find_elements(By.TAG_NAME, "a")] == ["configure"]
    assert newest.find_element(By.TAG_NAME, "a").get_attribute("href").endswith(f"/console/deployments/{configure_id}")
    b.refresh()
    wait_for(b, lambda d: d.find_elements(By.CSS_SELECTOR, "#event-rows tr"))
    text = b.find_element(By.ID, "event-rows").text
    assert f"{hostname}: running_setup → online" in text, text
    assert f"deploy on {hostname}: successful" in text, text
    assert "{" not in text, "an event shows raw JSON"
    links = {a.text for a in b.find_elements(By.CSS_SELECTOR, "#event-rows a")}
    assert hostname in links and "deploy" in links and "configure" in links, links
    assert not links & {"instance", "deployment"}, links

    # The stack's latest deployments are the newest, newest first.
    b.get(stack_url)
    latest = b.find_elements(By.CSS_SELECTOR, "#latest-deployments tbody tr")
    assert 1 <= len(latest) <= 5
    first_link = latest[0].find_element(By.TAG_NAME, "a")
    assert first_link.get_attribute("href").endswith(f"/console/deployments/{configure_id}"), first_link.text
    created = [r.find_elements(By.TAG_NAME, "td")[2].text for r in latest]
    assert created == sorted(created, reverse=True), created

    # Memory reads in binary units on the chart's axis (the agent reports KiB), not "4.0M".
    instance_id = c.describe_instances(StackId=stack_id)["Instances"][0]["InstanceId"]
    chart = f"{base}/console/charts/chart.svg?InstanceId={instance_id}&Metric=memory_used&Period=1h"

    def memory_axis(d):
        d.get(chart)
        return "No data" not in d.page_source and d.page_source

    svg = wait_for(b, memory_axis, timeout=60, message="the memory chart never had data")
    assert re.search(r">\d+(\.\d+)? [MG]iB<", svg), svg
    assert not re.search(r">\d+(\.\d)?M<", svg), svg

    # A form posted without the session's CSRF token changes nothing.
    session = b.get_cookie("opsworks_session")["value"]
    req = urllib.request.Request(
        f"{base}/console/stacks/{stack_id}/do/delete", data=b"", method="POST",
        headers={"Cookie": f"opsworks_session={session}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req)
    assert refused.value.code == 403
    assert [s["Name"] for s in c.describe_stacks()["Stacks"]] == ["Console demo"]

    # Nothing the pages use was refused by the content security policy, and the icon was found.
    log = b.get_log("browser")
    refused = [e["message"] for e in log if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
    assert not refused, refused
    assert not [e["message"] for e in log if "favicon" in e["message"]], log


# ---------------------------------------------------------------------------------------------
# Sign-in over real HTTP against the real binary (no browser, no local instances): cookie flags,
# the double-submit token, safe redirects, security headers, the limits on failed sign-ins and
# the memory a storm of them may take.

# The console's limits (crates/opsworks-console/src/limits.rs).
PER_ADDRESS = 10
PER_ACCOUNT = 100


class PlainServer:
    """`opsworks server` with the console and nothing else (no local instances, no root needed)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="opsworks-console-http-", dir="/var/tmp"))
        self.port = free_port()
        self.log = open(self.dir / "server.log", "ab")
        env = dict(os.environ, OPSWORKS_ROOT_ACCESS_KEY_ID=AKID, OPSWORKS_ROOT_SECRET_ACCESS_KEY=SECRET,
                   OPSWORKS_CONSOLE_PASSWORD=PASSWORD)
        env.pop("OPSWORKS_DATABASE_URL", None)
        env.update(engine.server_env(self.dir / "data"))
        self.proc = subprocess.Popen(
            [os.environ["OPSWORKS_BIN"], "server", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(self.dir / "data")],
            stdout=subprocess.PIPE, stderr=self.log, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"server exited: see {self.dir / 'server.log'}")
            if line.startswith("listening on "):
                break
        # Keep reading stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def status(self, field):
        """A `/proc/<pid>/status` field of the server process, in KiB."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture()
def plain():
    srv = PlainServer()
    yield srv
    srv.stop()


def request(srv, method, path, body=None, cookie=None, source="127.0.0.1", timeout=120):
    """One request without following redirects: (status, headers as (name, value) pairs, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout, source_address=(source, 0))
    headers = {}
    if cookie:
        headers["Cookie"] = cookie
    if body is not None:
        body = urllib.parse.urlencode(body)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.getheaders(), r.read().decode(errors="replace")
    finally:
        conn.close()


def header(headers, name):
    values = [v for k, v in headers if k.lower() == name.lower()]
    return values[0] if values else None


def set_cookies(headers):
    """The Set-Cookie headers by cookie name: {name: (value, {attribute: value})}."""
    out = {}
    for k, v in headers:
        if k.lower() != "set-cookie":
            continue
        first, *attrs = [p.strip() for p in v.split(";")]
        name, value = first.split("=", 1)
        out[name] = (value, {a.split("=", 1)[0].lower(): (a.split("=", 1)[1] if "=" in a else True) for a in attrs})
    return out


def sign_in(srv, password, next_="/console/", source="127.0.0.1", token="t0ken-of-the-form"):
    """The sign-in form as a browser posts it: the token in the form and in its cookie."""
    return request(srv, "POST", "/console/sign-in",
                   {"_pre": token, "next": next_, "user": "root", "password": password},
                   cookie=f"opsworks_pre={token}", source=source)


def test_console_cookies_are_httponly_strict_and_scoped_to_the_console(plain):
    status, headers, _ = request(plain, "GET", "/console/sign-in")
    assert status == 200
    pre, flags = set_cookies(headers)["opsworks_pre"]
    assert len(pre) >= 32
    assert flags.get("httponly") is True and flags.get("samesite") == "Strict" and flags.get("path") == "/console", flags

    status, headers, _ = sign_in(plain, PASSWORD)
    assert status == 303 and header(headers, "Location") == "/console/"
    cookies = set_cookies(headers)
    session, flags = cookies["opsworks_session"]
    assert len(session) == 64, session
    assert flags.get("httponly") is True, flags
    assert flags.get("samesite") == "Strict", flags
    assert flags.get("path") == "/console", flags
    assert flags.get("max-age") == "43200", flags
    assert cookies["opsworks_pre"][1].get("max-age") == "0", "the form's cookie is dropped once used"

    # The session opens the console; signing out ends it on the server, not only in the browser.
    status, _, page = request(plain, "GET", "/console/", cookie=f"opsworks_session={session}")
    assert status == 200 and "Stacks" in page
    csrf = re.search(r'name="_csrf" value="([0-9a-f]+)"', page).group(1)
    status, headers, _ = request(plain, "POST", "/console/sign-out", {"_csrf": csrf},
                                 cookie=f"opsworks_session={session}")
    assert status == 303
    assert set_cookies(headers)["opsworks_session"] == ("", {"path": "/console", "httponly": True,
                                                             "samesite": "Strict", "max-age": "0"})
    status, headers, _ = request(plain, "GET", "/console/", cookie=f"opsworks_session={session}")
    assert status == 303 and header(headers, "Location").startswith("/console/sign-in")


def test_sign_in_needs_the_form_token_and_its_cookie_to_match(plain):
    form = {"_pre": "abc123", "next": "/console/", "user": "root", "password": PASSWORD}
    for cookie, body, why in [
        (None, form, "no cookie"),
        ("opsworks_pre=zzz999", form, "a cookie of another form"),
        ("opsworks_pre=abc123", dict(form, _pre=""), "no token in the form"),
        ("opsworks_pre=", dict(form, _pre=""), "both empty"),
    ]:
        status, headers, page = request(plain, "POST", "/console/sign-in", body, cookie=cookie)
        assert status == 403, why
        assert "expired" in page, why
        assert "opsworks_session" not in set_cookies(headers), why
    status, headers, _ = request(plain, "POST", "/console/sign-in", form, cookie="opsworks_pre=abc123")
    assert status == 303 and "opsworks_session" in set_cookies(headers)


def test_every_console_response_is_protected_and_next_stays_in_the_console(plain):
    for path in ["/console/sign-in", "/console/", "/console/static/console.js", "/console/static/console.css",
                 "/console/stacks/x", "/console/nothing/here", "/favicon.ico"]:
        status, headers, _ = request(plain, "GET", path)
        assert status in (200, 303, 404), path
        assert header(headers, "X-Frame-Options") == "DENY", path
        assert header(headers, "X-Content-Type-Options") == "nosniff", path
        csp = header(headers, "Content-Security-Policy")
        assert csp and "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, csp)
    with urllib.request.urlopen(f"http://127.0.0.1:{plain.port}/favicon.ico") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/x-icon"
        assert r.read()[:4] == b"\x00\x00\x01\x00"

    # CR/LF (a header injection), another host, a scheme, a climb out of /console/: all go home.
    for next_ in ["/console/\r\nSet-Cookie: evil=1", "/console/%0d%0aX: y", "//evil.example/", "https://evil.example/",
                  "/console/../api/events", "/\\evil.example", "javascript:alert(1)"]:
        status, headers, _ = sign_in(plain, PASSWORD, next_)
        assert status == 303, next_
        assert header(headers, "Location") == "/console/", next_
        assert "evil" not in str(headers), next_
    status, headers, _ = sign_in(plain, PASSWORD, "/console/stacks/new")
    assert header(headers, "Location") == "/console/stacks/new"


def test_failed_sign_ins_get_429_with_retry_after_and_other_addresses_still_sign_in(plain):
    for i in range(PER_ADDRESS):
        status, _, _ = sign_in(plain, f"guess-{i}", source="127.0.0.2")
        assert status == 401, i
    status, headers, page = sign_in(plain, "guess-again", source="127.0.0.2")
    assert status == 429
    wait = int(header(headers, "Retry-After"))
    assert 1 <= wait <= 300
    assert f"Try again in {wait} s." in page
    # Even the right password waits from there (the limit comes before any hashing)...
    assert sign_in(plain, PASSWORD, source="127.0.0.2")[0] == 429
    # ...while the real user, from their own address, signs in.
    assert sign_in(plain, PASSWORD, source="127.0.0.3")[0] == 303
    # A successful sign-in clears its address's count.
    for i in range(PER_ADDRESS - 1):
        assert sign_in(plain, "oops", source="127.0.0.4")[0] == 401
    assert sign_in(plain, PASSWORD, source="127.0.0.4")[0] == 303
    for i in range(PER_ADDRESS):
        assert sign_in(plain, "oops", source="127.0.0.4")[0] == 401, i


STORM = 300
RSS_BOUND_MIB = 120


def sign_in_storm(server, attempt, label):
    """Runs `attempt(n)` (one sign-in, returning its status) for every n below STORM at once,
    sampling the server's RSS meanwhile; returns the statuses counted and by how many MiB the
    server grew at its peak."""
    time.sleep(0.5)
    before = server.status("VmRSS")
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], server.status("VmRSS"))
            time.sleep(0.02)

    results = [None] * STORM
    start = threading.Barrier(STORM)

    def run(n):
        start.wait()
        try:
            results[n] = attempt(n)
        except Exception as e:  # noqa: BLE001 - recorded, asserted by the caller
            results[n] = repr(e)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(STORM)]
    began = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    took = time.time() - began
    stop.set()
    sampler.join()
    hwm = server.status("VmHWM")
    counts = {r: results.count(r) for r in set(results)}
    print(f"{label} of {STORM}: {counts} in {took:.1f} s; RSS {before // 1024} MiB before, "
          f"peak sampled {peak[0] // 1024} MiB, VmHWM {hwm // 1024} MiB")
    return counts, (max(peak[0], hwm) - before) // 1024


def test_a_storm_of_wrong_passwords_keeps_the_server_memory_bounded(plain):
    """Wrong passwords from STORM addresses at once: at most PER_ACCOUNT of them are hashed (the
    rest get 429 at once), two at a time, so the server's peak RSS stays within RSS_BOUND_MIB of
    where it was. Before the bound, each concurrent check held its own 19 MiB."""
    sources = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(STORM)]
    # One right sign-in first: the hashing pool's buffers exist, as on any server in use.
    assert sign_in(plain, PASSWORD, source="127.0.9.9")[0] == 303
    counts, grown = sign_in_storm(plain, lambda i: sign_in(plain, f"wrong-{i}", source=sources[i])[0], "storm")
    assert counts.get(401) == PER_ACCOUNT and counts.get(429) == STORM - PER_ACCOUNT, counts
    assert grown < RSS_BOUND_MIB, f"the server grew by {grown} MiB during the storm"
    # Still answering, and the account stays limited (a real user waits for the window).
    status, headers, _ = sign_in(plain, PASSWORD, source="127.0.9.10")
    assert status == 429 and int(header(headers, "Retry-After")) <= 300

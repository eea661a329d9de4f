"""The web console in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
sign in, build a stack, start an instance and watch it come online live, deploy an app and read its
log. Screenshots of the main pages go to $OPSWORKS_SCREENSHOTS (default
/var/tmp/opsworks-console-screenshots) for a person to look at."""

import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import client_for, make_repo, running_server

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
        return imgs and all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                            for i in imgs)

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

"""IAM users in the web console, in a real headless Chromium (as test_console.py drives it), against
`opsworks server` without local instances (no root, no namespaces): the root creates a user with a
login profile, imports them into OpsWorks and gives them the show level on one stack, all on the
Users page; the user signs in, sees only that stack and no button that would change it, a forged
POST is refused by the server, and they set their own SSH key; the root's audit view lists what the
user did and what was refused, from the browser's address. Screenshots go where test_console.py
puts them."""

import re
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import AKID, SECRET
from test_console import (PASSWORD, PER_ACCOUNT, PER_ADDRESS, RSS_BOUND_MIB, STORM, PlainServer,  # noqa: F401
                          browser, fill, header, request, shot, sign_in_storm, wait_for)

ALICE_PASSWORD = "alice's console password"
ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1bXBzIGFuZCBidW1wcyBvbiB0aGUgcm9hZA alice@laptop"


@pytest.fixture()
def iam_server():
    srv = PlainServer()
    srv.endpoint = f"http://127.0.0.1:{srv.port}"
    yield srv
    srv.stop()


def iam(srv):
    return boto3.client("iam", endpoint_url=srv.endpoint, region_name="us-east-1",
                        aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                        config=Config(retries={"max_attempts": 1}))


def opsworks(srv):
    return boto3.client("opsworks", endpoint_url=srv.endpoint, region_name="us-east-1",
                        aws_access_key_id=AKID, aws_secret_access_key=SECRET,
                        config=Config(retries={"max_attempts": 1}))


def make_stack(c, name):
    account = "arn:aws:iam::123456789012"
    return c.create_stack(Name=name, Region="us-east-1",
                          ServiceRoleArn=f"{account}:role/aws-opsworks-service-role",
                          DefaultInstanceProfileArn=f"{account}:instance-profile/aws-opsworks-ec2-role")["StackId"]


def post(b, button):
    """Clicks a form's button and waits for the page it posts to (never reads the old one)."""
    page = b.find_element(By.TAG_NAME, "html")
    button.click()

    def replaced(d):
        # The old document is gone: chromedriver says so either as a stale element or, while the
        # new page commits, as "Node ... does not belong to the document".
        try:
            page.is_enabled()
            return False
        except WebDriverException:
            return d.execute_script("return document.readyState") == "complete"

    wait_for(b, replaced, message="the form did not post")


def sign_in(b, base, user, password):
    b.get(base + "/console/sign-in")
    fill(b, "user", user)
    fill(b, "password", password)
    b.find_element(By.ID, "sign-in").click()
    wait_for(b, lambda d: d.find_elements(By.ID, "whoami"), message=f"{user or 'root'} not signed in")
    assert b.find_element(By.ID, "whoami").text == (user or "root")


def sign_out(b):
    b.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for(b, lambda d: "/console/sign-in" in d.current_url)


def test_a_show_level_user_in_the_console(iam_server, browser):
    b = browser
    base = iam_server.endpoint
    c = opsworks(iam_server)
    shown = make_stack(c, "Shown")
    make_stack(c, "Hidden")

    # The root makes the user on the Users page: a console password, an OpsWorks profile that may
    # manage its own SSH key, and the show level on one stack.
    sign_in(b, base, "", PASSWORD)
    b.find_element(By.ID, "nav-users").click()
    wait_for(b, lambda d: d.find_elements(By.ID, "create-user"))
    fill(b, "UserName", "alice")
    fill(b, "Password", ALICE_PASSWORD)
    b.find_element(By.ID, "save-user").click()
    wait_for(b, lambda d: d.current_url.endswith("/console/users/alice"), message="no user page")
    assert "A login profile since" in b.find_element(By.ID, "login-profile").text
    b.find_element(By.NAME, "AllowSelfManagement").click()
    post(b, b.find_element(By.ID, "save-profile"))
    row = wait_for(b, lambda d: d.find_elements(By.CSS_SELECTOR, '#permissions tr[data-stack="Shown"]'))[0]
    Select(row.find_element(By.NAME, "Level")).select_by_visible_text("show")
    post(b, row.find_element(By.TAG_NAME, "button"))
    row = wait_for(b, lambda d: d.find_elements(By.CSS_SELECTOR, '#permissions tr[data-stack="Shown"]'))[0]
    assert Select(row.find_element(By.NAME, "Level")).first_selected_option.text == "show"
    perms = c.describe_permissions(StackId=shown)["Permissions"]
    assert [(p["IamUserArn"].rsplit("/", 1)[1], p["Level"]) for p in perms] == [("alice", "show")]
    shot(b, "iam-01-user-page")
    sign_out(b)

    # The user sees their stack only, and nothing that would change it.
    sign_in(b, base, "alice", ALICE_PASSWORD)
    names = [a.text for a in b.find_elements(By.CSS_SELECTOR, "table.grid td:first-child a")]
    assert names == ["Shown"], names
    assert not b.find_elements(By.ID, "new-stack")
    assert not b.find_elements(By.ID, "nav-users") and not b.find_elements(By.ID, "nav-audit")
    shot(b, "iam-02-user-stacks")
    b.find_element(By.LINK_TEXT, "Shown").click()
    wait_for(b, lambda d: d.find_elements(By.ID, "events"))
    for absent in ["delete-stack", "add-layer", "add-instance", "add-app"]:
        assert not b.find_elements(By.ID, absent), absent
    assert not [e for e in b.find_elements(By.TAG_NAME, "button") if e.text in ("Delete", "Start all", "Clone")]
    shot(b, "iam-03-user-stack")

    # A forged POST (with her own valid session and CSRF token) is refused by the server.
    session = b.get_cookie("opsworks_session")["value"]
    csrf = re.search(r'name="_csrf" value="([0-9a-f]+)"', b.page_source).group(1)
    req = urllib.request.Request(
        f"{base}/console/stacks/{shown}/do/delete", data=f"_csrf={csrf}".encode(), method="POST",
        headers={"Cookie": f"opsworks_session={session}", "Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req)
    assert refused.value.code == 403
    page = refused.value.read().decode().replace("&#x2f;", "/")
    assert "user/alice is not authorized to perform: opsworks:DeleteStack on resource: arn:aws:opsworks:" in page, page
    assert sorted(s["Name"] for s in c.describe_stacks()["Stacks"]) == ["Hidden", "Shown"]

    # Her own SSH key, in My settings.
    b.find_element(By.ID, "nav-settings").click()
    fill(b, "SshPublicKey", ALICE_KEY)
    post(b, b.find_element(By.ID, "save-key"))
    wait_for(b, lambda d: d.find_elements(By.ID, "saved"))
    profile = c.describe_user_profiles()["UserProfiles"][0]
    assert profile["SshPublicKey"] == ALICE_KEY
    shot(b, "iam-04-my-settings")
    sign_out(b)

    # The root's audit view lists her change and her refused delete, from this browser.
    sign_in(b, base, "root", PASSWORD)
    b.find_element(By.ID, "nav-audit").click()
    fill(b, "Principal", "alice")
    post(b, b.find_element(By.CSS_SELECTOR, "#audit-filter button"))
    wait_for(b, lambda d: d.find_elements(By.ID, "audit-rows"), message="no audit rows for alice")
    rows = [r.text for r in b.find_elements(By.CSS_SELECTOR, "#audit-rows tbody tr")]
    assert any("opsworks:UpdateMyUserProfile" in r and "Success" in r and "127.0.0.1" in r for r in rows), rows
    assert any("opsworks:DeleteStack" in r and "AccessDeniedException" in r for r in rows), rows
    assert any("signin:ConsoleLogin" in r for r in rows), rows
    assert all("alice" in r for r in rows), rows
    shot(b, "iam-05-audit")

    log = b.get_log("browser")
    refused = [e["message"] for e in log if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
    assert not refused, refused


def sign_in_as(srv, user, password, source):
    """The sign-in form as a browser posts it, for `user` (plain HTTP, from `source`)."""
    token = "t0ken-of-the-form"
    return request(srv, "POST", "/console/sign-in",
                   {"_pre": token, "next": "/console/", "user": user, "password": password},
                   cookie=f"opsworks_pre={token}", source=source)



def test_an_iam_users_sign_ins_are_limited_and_a_storm_keeps_memory_bounded(iam_server):
    """An IAM user's failed sign-ins are limited as the root's are: per address, then, from STORM
    addresses at once, per account (PER_ACCOUNT hashed, two at a time, the rest 429 at once) with
    the server's peak RSS within RSS_BOUND_MIB; the root and other users are not held back, and
    names no user can have (however long) share one limit."""
    srv = iam_server
    i = iam(srv)
    i.create_user(UserName="alice")
    i.create_login_profile(UserName="alice", Password=ALICE_PASSWORD)
    assert sign_in_as(srv, "alice", ALICE_PASSWORD, "127.0.3.1")[0] == 303

    # Per address: the eleventh try waits, even with the right password.
    for n in range(PER_ADDRESS):
        assert sign_in_as(srv, "alice", f"guess-{n}", "127.0.3.2")[0] == 401, n
    status, headers, _ = sign_in_as(srv, "ALICE", ALICE_PASSWORD, "127.0.3.2")
    assert status == 429 and 1 <= int(header(headers, "Retry-After")) <= 300

    # Names no IAM user can have, however long, are refused and counted under one key.
    long_name = "x" * 200_000
    status, _, page = sign_in_as(srv, long_name, "pw", "127.0.3.3")
    assert status == 401 and "not right" in page

    # The storm, from STORM addresses at once against alice.
    sources = [f"127.0.{4 + n // 250}.{1 + n % 250}" for n in range(STORM)]
    counts, grown = sign_in_storm(srv, lambda n: sign_in_as(srv, "alice", f"wrong-{n}", sources[n])[0], "IAM storm")
    # alice already used PER_ADDRESS failures of her account's window above.
    hashed = PER_ACCOUNT - PER_ADDRESS
    assert counts.get(401) == hashed and counts.get(429) == STORM - hashed, counts
    assert grown < RSS_BOUND_MIB, f"the server grew by {grown} MiB during the storm"

    # alice's account waits, from anywhere; the root and another user do not.
    status, headers, _ = sign_in_as(srv, "alice", ALICE_PASSWORD, "127.0.9.1")
    assert status == 429 and int(header(headers, "Retry-After")) <= 300
    assert sign_in_as(srv, "", PASSWORD, "127.0.9.2")[0] == 303
    i.create_user(UserName="bob")
    i.create_login_profile(UserName="bob", Password="bob's console password")
    assert sign_in_as(srv, "bob", "bob's console password", "127.0.9.3")[0] == 303

//! IAM users in the console over real HTTP, against the real control plane: signing in as a user,
//! what a user sees and may do (and what the server refuses when a form is forged), sessions that
//! end with the user's login profile, a forced new password, My settings, the Users page as the
//! root, and the audit view listing what a user did.

mod common;

use common::{Browser, Console, client, sign_in_as};
use reqwest::StatusCode;

const ALICE_PASSWORD: &str = "alice's long password";

/// Root's browser, from 127.0.0.1.
async fn root(console: &Console) -> Browser {
    Browser::sign_in(console, "127.0.0.1", "root", &console.password)
        .await
        .0
}

/// A stack made on the console's form; its ID.
async fn stack(root: &Browser, name: &str) -> String {
    let to = root.post_ok("/console/stacks/new", &[("Name", name)]).await;
    to.strip_prefix("/console/stacks/")
        .expect("the stack's page")
        .to_string()
}

/// Alice, with a console password, imported into OpsWorks, with `level` on `stack_id`.
async fn alice(root: &Browser, stack_id: &str, level: &str) {
    root.post_ok(
        "/console/users",
        &[("UserName", "alice"), ("Password", ALICE_PASSWORD)],
    )
    .await;
    root.post_ok("/console/users/alice/do/profile-create", &[])
        .await;
    root.post_ok(
        "/console/users/alice/do/permission",
        &[("StackId", stack_id), ("Level", level)],
    )
    .await;
}

/// A policy document of one statement.
fn policy(effect: &str, action: &str, resource: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": effect, "Action": action, "Resource": resource }],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_show_level_user_sees_only_their_stack_and_may_not_change_it() {
    let console = Console::start().await;
    let root = root(&console).await;
    let shown = stack(&root, "Shown stack").await;
    let hidden = stack(&root, "Hidden stack").await;
    alice(&root, &shown, "show").await;

    let (alice, to) = Browser::sign_in(&console, "127.0.0.5", "alice", ALICE_PASSWORD).await;
    assert_eq!(to, "/console/");
    let home = alice.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Shown stack"), "{}", home.body);
    assert!(!home.body.contains("Hidden stack"), "{}", home.body);
    assert!(
        !home.body.contains("id=\"new-stack\""),
        "no Add stack for a show-level user"
    );
    assert!(home.body.contains("id=\"whoami\""), "{}", home.body);
    for link in ["nav-users", "nav-audit", "nav-settings"] {
        assert!(!home.body.contains(link), "{link} shown to alice");
    }

    let page = alice.get(&format!("/console/stacks/{shown}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for absent in [
        "id=\"delete-stack\"",
        "id=\"add-layer\"",
        "id=\"add-instance\"",
        "id=\"add-app\"",
        "/do/start",
        "/do/clone",
        "/edit\"",
        "Run command",
    ] {
        assert!(!page.body.contains(absent), "{absent} offered to alice");
    }
    let root_page = root.get(&format!("/console/stacks/{shown}")).await;
    assert!(root_page.body.contains("id=\"delete-stack\""));
    assert!(root_page.body.contains("id=\"add-layer\""));

    // Another stack is refused as the API refuses it.
    let other = alice.get(&format!("/console/stacks/{hidden}")).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(
        other.text().contains(":user/alice is not authorized to perform: opsworks:DescribeStacks on resource: arn:aws:opsworks:"),
        "{}",
        other.body
    );

    // A forged form (with a valid CSRF token) is refused by the server and changes nothing.
    let forged = alice
        .post(&format!("/console/stacks/{shown}/do/delete"), &[])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert!(
        forged.body.contains(
            "is not authorized to perform: opsworks:DeleteStack on resource: arn:aws:opsworks:"
        ),
        "{}",
        forged.body
    );
    let layer = alice
        .post(
            &format!("/console/stacks/{shown}/layers/new"),
            &[("Type", "custom"), ("Name", "x"), ("Shortname", "x")],
        )
        .await;
    assert!(
        layer
            .body
            .contains("is not authorized to perform: opsworks:CreateLayer"),
        "{}",
        layer.body
    );
    assert_eq!(
        root.get(&format!("/console/stacks/{shown}")).await.status,
        StatusCode::OK
    );
    let users = alice.get("/console/users").await;
    assert_eq!(users.status, StatusCode::FORBIDDEN);
    assert!(users.body.contains("iam:ListUsers"), "{}", users.body);
    let audit = alice.get("/console/audit").await;
    assert!(
        audit.body.contains("opsworks:DescribeAuditLog"),
        "{}",
        audit.body
    );

    // A policy change applies at the next request, without signing in again: an Allow adds the
    // Delete button, an explicit Deny hides the stack.
    let arn_of_shown = format!("arn:aws:opsworks:*:*:stack/{shown}/");
    root.post_ok(
        "/console/users/alice/do/put-policy",
        &[
            ("PolicyName", "may-delete"),
            (
                "PolicyDocument",
                &policy("Allow", "opsworks:DeleteStack", &arn_of_shown),
            ),
        ],
    )
    .await;
    let page = alice.get(&format!("/console/stacks/{shown}")).await;
    assert!(page.body.contains("id=\"delete-stack\""), "{}", page.body);
    root.post_ok(
        "/console/users/alice/do/put-policy",
        &[
            ("PolicyName", "no-stacks"),
            ("PolicyDocument", &policy("Deny", "opsworks:*", "*")),
        ],
    )
    .await;
    let home = alice.get("/console/").await;
    assert!(!home.body.contains("Shown stack"), "{}", home.body);
    let page = alice.get(&format!("/console/stacks/{shown}")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("with an explicit deny"), "{}", page.body);

    // The audit view lists alice's refused delete, from her address, under her ARN.
    let audit = root.get("/console/audit?Principal=alice").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    for expected in [
        "opsworks:DeleteStack",
        "AccessDeniedException",
        "127.0.0.5",
        "signin:ConsoleLogin",
        "arn:aws:iam::",
    ] {
        assert!(audit.body.contains(expected), "{expected}: {}", audit.body);
    }
    assert!(
        !audit.body.contains("iam:PutUserPolicy"),
        "root's calls are not alice's"
    );
    let root_calls = root.get("/console/audit?Principal=root").await;
    assert!(
        root_calls.body.contains("iam:PutUserPolicy"),
        "{}",
        root_calls.body
    );
    assert!(root_calls.body.contains("opsworks:SetPermission"));
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_the_login_profile_goes_or_its_password_is_replaced() {
    let console = Console::start().await;
    let root = root(&console).await;
    let id = stack(&root, "Only").await;
    alice(&root, &id, "show").await;

    let (alice, _) = Browser::sign_in(&console, "127.0.0.6", "alice", ALICE_PASSWORD).await;
    assert_eq!(alice.get("/console/").await.status, StatusCode::OK);
    // A live stream of hers ends with her session.
    let mut live = alice
        .c
        .get(console.url(&format!("/console/stacks/{id}/live")))
        .header(reqwest::header::COOKIE, &alice.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), live.chunk())
        .await
        .expect("the stream's first message")
        .unwrap();
    assert!(first.is_some(), "the stream sends the stack's instances");

    root.post_ok("/console/users/alice/do/login-delete", &[])
        .await;
    let after = alice.get("/console/").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.location.unwrap().starts_with("/console/sign-in"));
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Ok(Some(_)) = live.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the live stream ended with the session");
    let r = sign_in_as(&client("127.0.0.6"), &console, "alice", ALICE_PASSWORD, "/").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "no login profile, no sign-in"
    );

    // A new profile: she signs in again; the root replacing her password ends that session.
    root.post_ok(
        "/console/users/alice/do/login-create",
        &[("Password", ALICE_PASSWORD)],
    )
    .await;
    let (alice, _) = Browser::sign_in(&console, "127.0.0.6", "alice", ALICE_PASSWORD).await;
    assert_eq!(alice.get("/console/").await.status, StatusCode::OK);
    root.post_ok(
        "/console/users/alice/do/login-update",
        &[("Password", "a brand new password")],
    )
    .await;
    assert_eq!(alice.get("/console/").await.status, StatusCode::SEE_OTHER);
    let (again, _) = Browser::sign_in(&console, "127.0.0.6", "alice", "a brand new password").await;
    assert_eq!(again.get("/console/").await.status, StatusCode::OK);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_comes_first_and_goes_through_update_login_profile() {
    let console = Console::start().await;
    let root = root(&console).await;
    root.post_ok(
        "/console/users",
        &[
            ("UserName", "bob"),
            ("Password", "bob's first password"),
            ("PasswordResetRequired", "on"),
            ("AllowChangePassword", "on"),
        ],
    )
    .await;
    let (bob, to) = Browser::sign_in(&console, "127.0.0.7", "bob", "bob's first password").await;
    assert!(to.starts_with("/console/password?next="), "{to}");
    let home = bob.get("/console/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert!(home.location.unwrap().starts_with("/console/password"));
    let page = bob.get("/console/password").await;
    assert!(page.body.contains("id=\"must-reset\""), "{}", page.body);

    let wrong = bob
        .post(
            "/console/password",
            &[
                ("CurrentPassword", "not it"),
                ("Password", "bob's second password"),
                ("Confirm", "bob's second password"),
            ],
        )
        .await;
    assert!(
        wrong.body.contains("current password is not right"),
        "{}",
        wrong.body
    );
    let differ = bob
        .post(
            "/console/password",
            &[
                ("CurrentPassword", "bob's first password"),
                ("Password", "bob's second password"),
                ("Confirm", "something else"),
            ],
        )
        .await;
    assert!(differ.body.contains("differ"), "{}", differ.body);
    let short = bob
        .post(
            "/console/password",
            &[
                ("CurrentPassword", "bob's first password"),
                ("Password", "short"),
                ("Confirm", "short"),
            ],
        )
        .await;
    assert!(
        short.body.contains("minimum length"),
        "IAM's rule: {}",
        short.body
    );
    let to = bob
        .post_ok(
            "/console/password",
            &[
                ("CurrentPassword", "bob's first password"),
                ("Password", "bob's second password"),
                ("Confirm", "bob's second password"),
                ("next", "/console/"),
            ],
        )
        .await;
    assert_eq!(to, "/console/");
    assert_eq!(
        bob.get("/console/").await.status,
        StatusCode::OK,
        "the session carries on"
    );
    let old = sign_in_as(
        &client("127.0.0.7"),
        &console,
        "bob",
        "bob's first password",
        "/",
    )
    .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let (_, to) = Browser::sign_in(&console, "127.0.0.7", "bob", "bob's second password").await;
    assert_eq!(to, "/console/", "no reset pending any more");
    let audit = root.get("/console/audit?Principal=bob").await;
    assert!(
        audit.body.contains("iam:UpdateLoginProfile"),
        "{}",
        audit.body
    );
    assert!(
        !audit.body.contains("bob&#x27;s second password")
            && !audit.body.contains("second password")
    );

    // Without the policy that lets him, a user cannot set the password the reset asks for.
    root.post_ok(
        "/console/users",
        &[
            ("UserName", "carol"),
            ("Password", "carol's first password"),
            ("PasswordResetRequired", "on"),
        ],
    )
    .await;
    let (carol, _) =
        Browser::sign_in(&console, "127.0.0.7", "carol", "carol's first password").await;
    let refused = carol
        .post(
            "/console/password",
            &[
                ("CurrentPassword", "carol's first password"),
                ("Password", "carol's second password"),
                ("Confirm", "carol's second password"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("iam:UpdateLoginProfile"),
        "{}",
        refused.body
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_sign_ins_are_checked_limited_and_audited() {
    let console = Console::start().await;
    let root = root(&console).await;
    let id = stack(&root, "S").await;
    alice(&root, &id, "show").await;
    let c = client("127.0.0.8");
    for (user, password) in [
        ("alice", "wrong"),
        ("nobody", ALICE_PASSWORD),
        ("ALICE", ""),
    ] {
        let r = sign_in_as(&c, &console, user, password, "/console/").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains("user name or password is not right"),
            "{page}"
        );
        assert!(
            page.contains(&format!("value=\"{user}\"")),
            "the name is kept: {page}"
        );
    }
    // Names are matched whatever their case, as IAM's are.
    let r = sign_in_as(&c, &console, "Alice", ALICE_PASSWORD, "/console/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The limits apply to IAM users as to the root: per address...
    let noisy = client("127.0.0.9");
    for _ in 0..opsworks_console::limits::PER_ADDRESS.max {
        let r = sign_in_as(&noisy, &console, "alice", "guess", "/").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = sign_in_as(&noisy, &console, "alice", ALICE_PASSWORD, "/").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // ...and the root from elsewhere is not held back by alice's failures.
    let r = sign_in_as(&client("127.0.0.10"), &console, "", &console.password, "/").await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "an empty user name is the root"
    );
    let audit = root.get("/console/audit?Principal=alice").await;
    let failures = audit.body.matches("Failure").count();
    assert!(
        failures >= 2,
        "alice's failed sign-ins are audited: {}",
        audit.body
    );
    let all = root.get("/console/audit").await;
    assert!(all.body.contains("signin:ConsoleLogin"), "{}", all.body);
    assert!(
        !all.body.contains("nobody"),
        "unknown names are not: {}",
        all.body
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_settings_set_ones_own_key_only_with_self_management() {
    let console = Console::start().await;
    let root = root(&console).await;
    let id = stack(&root, "S").await;
    alice(&root, &id, "deploy").await;
    let (alice, _) = Browser::sign_in(&console, "127.0.0.11", "alice", ALICE_PASSWORD).await;
    assert!(!alice.get("/console/").await.body.contains("nav-settings"));
    let page = alice.get("/console/settings").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("opsworks:DescribeMyUserProfile"),
        "{}",
        page.body
    );

    root.post_ok(
        "/console/users/alice/do/profile-update",
        &[("AllowSelfManagement", "on")],
    )
    .await;
    assert!(alice.get("/console/").await.body.contains("nav-settings"));
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1bXBzIGFuZCBidW1wcyBvbiB0aGUgcm9hZA alice@laptop";
    let to = alice
        .post_ok("/console/settings", &[("SshPublicKey", key)])
        .await;
    assert_eq!(to, "/console/settings?saved=1");
    let page = alice.get("/console/settings?saved=1").await;
    assert!(page.body.contains("alice@laptop"), "{}", page.body);
    assert!(
        root.get("/console/users/alice")
            .await
            .body
            .contains("alice@laptop")
    );
    let bad = alice
        .post("/console/settings", &[("SshPublicKey", "not a key")])
        .await;
    assert!(
        bad.body
            .contains("SshPublicKey must be one OpenSSH public key line"),
        "{}",
        bad.body
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_page_manages_keys_groups_and_policies_through_iam() {
    let console = Console::start().await;
    let root = root(&console).await;
    let users = root.get("/console/users").await;
    assert_eq!(users.status, StatusCode::OK);
    assert!(users.body.contains("id=\"create-user\""));
    root.post_ok("/console/users", &[("UserName", "dave")])
        .await;

    // A new key's secret is shown once, on the answer to the form, and never again.
    let made = root.post("/console/users/dave/do/create-key", &[]).await;
    assert_eq!(made.status, StatusCode::OK);
    let secret = between(&made.body, "id=\"secret-access-key\">", "<").expect("the secret");
    let key_id = between(&made.body, "id=\"access-key-id\">", "<").expect("the key id");
    assert!(secret.len() >= 40, "{secret}");
    let page = root.get("/console/users/dave").await;
    assert!(page.body.contains(&key_id));
    assert!(
        !page.body.contains(&secret),
        "the secret is shown once only"
    );
    root.post_ok(
        "/console/users/dave/do/key-status",
        &[("AccessKeyId", &key_id), ("Status", "Inactive")],
    )
    .await;
    assert!(
        root.get("/console/users/dave")
            .await
            .body
            .contains("Inactive")
    );

    // The server validates a policy document, and says what is wrong.
    let bad = root
        .post(
            "/console/users/dave/do/put-policy",
            &[
                ("PolicyName", "p"),
                ("PolicyDocument", "{\"Statement\": 3}"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("data-code=\"MalformedPolicyDocument\""),
        "{}",
        bad.body
    );

    // Groups, membership and a managed policy.
    root.post_ok("/console/groups", &[("GroupName", "ops")])
        .await;
    root.post_ok("/console/groups/ops/do/add-member", &[("UserName", "dave")])
        .await;
    root.post_ok(
        "/console/groups/ops/do/attach",
        &[(
            "PolicyArn",
            "arn:aws:iam::aws:policy/AWSOpsWorks_ReadOnlyAccess",
        )],
    )
    .await;
    let group = root.get("/console/groups/ops").await;
    assert!(group.body.contains("/console/users/dave"), "{}", group.body);
    assert!(group.body.contains("AWSOpsWorks_ReadOnlyAccess"));
    let user = root.get("/console/users/dave").await;
    assert!(user.body.contains("/console/groups/ops"));
    // Deleting a user that still has a key is IAM's DeleteConflict, shown on the users page.
    let conflict = root.post("/console/users/dave/do/delete", &[]).await;
    assert!(
        conflict.body.contains("data-code=\"DeleteConflict\""),
        "{}",
        conflict.body
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_logs_and_event_streams_evaluate_the_user() {
    let console = Console::start().await;
    let root = root(&console).await;
    let mine = stack(&root, "Mine").await;
    let theirs = stack(&root, "Theirs").await;
    alice(&root, &mine, "show").await;
    let (alice, _) = Browser::sign_in(&console, "127.0.0.12", "alice", ALICE_PASSWORD).await;
    for path in [
        format!("/console/charts/chart.svg?StackId={theirs}&Metric=cpu_user"),
        format!("/console/stacks/{theirs}/events/live"),
        format!("/console/stacks/{theirs}/live"),
        format!("/console/stacks/{theirs}/events"),
        format!("/console/stacks/{theirs}/monitoring"),
        format!("/console/stacks/{theirs}/deployments"),
    ] {
        let p = alice.get(&path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}: {}", p.body);
        assert!(p.body.contains("not authorized"), "{path}: {}", p.body);
    }
    let p = alice
        .get(&format!(
            "/console/charts/chart.svg?StackId={mine}&Metric=cpu_user"
        ))
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(
        root.get(&format!(
            "/console/charts/chart.svg?StackId={theirs}&Metric=cpu_user"
        ))
        .await
        .status,
        StatusCode::OK
    );
    console.stop().await;
}

/// The text between `start` and the next `end`.
fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)?;
    Some(text[from..from + to].to_string())
}

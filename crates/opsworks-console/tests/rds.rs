//! The stack page's RDS section over real HTTP: a real database that runs elsewhere (this host's
//! PostgreSQL, as `scripts/postgres-test-setup.sh` makes it) imported into the catalog, offered
//! for registration, refused with a wrong password, registered and deregistered through the
//! console's forms — and its password never shown.

use opsworks_console::{Password, PasswordSource};
use opsworks_model::rds::Engine;
use opsworks_server::core::rds::{self, Import};
use opsworks_server::ops::{self, Ctx, Principal};
use opsworks_server::{Core, Server, ServerConfig};
use reqwest::header;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// The host's PostgreSQL: (address, port, user, password).
fn host_postgres() -> (String, u16, String, String) {
    let url = std::env::var("OPSWORKS_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "OPSWORKS_TEST_DATABASE_URL is not set: run scripts/postgres-test-setup.sh (scripts/test.sh does) so this test has a database to register"
        )
    });
    let u = reqwest::Url::parse(&url).expect("OPSWORKS_TEST_DATABASE_URL is a URL");
    (
        u.host_str().expect("a host").to_string(),
        u.port().unwrap_or(5432),
        u.username().to_string(),
        u.password().expect("a password").to_string(),
    )
}

async fn call(core: &Core, operation: &str, input: Value) -> Value {
    let principal = Principal::root(core.region());
    let cx = Ctx {
        core,
        principal: &principal,
    };
    ops::dispatch(cx, operation, input)
        .await
        .and_then(|r| r.into_value())
        .unwrap_or_else(|e| panic!("{operation}: {e}"))
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A form body.
fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A signed-in client.
struct Browser {
    c: Client,
    base: String,
    session: String,
}

impl Browser {
    /// A page that must answer 200.
    async fn page(&self, path: &str) -> String {
        let r = self
            .c
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.text().await.unwrap()
    }

    /// Posts a form.
    async fn post(&self, path: &str, form: Vec<(&str, String)>) -> reqwest::Response {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.c
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.session)
            .header(header::CONTENT_TYPE, FORM)
            .body(encode(&pairs))
            .send()
            .await
            .unwrap()
    }
}

/// The value of the first `name="_csrf" value="..."` of a page.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"_csrf\" value=\"").expect("a form") + 20;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_database_is_registered_and_deregistered_from_the_stack_page() {
    let (address, port, user, password) = host_postgres();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let (console_password, source) = Password::open(&data).expect("console password");
    let PasswordSource::Generated(plain) = source else {
        panic!("a fresh data dir gets a generated console password");
    };
    let mut config = ServerConfig::new(data);
    config.root_key = Some(("AKIDCONSOLE".into(), "console-secret".into()));
    config
        .mounts
        .push(opsworks_console::mount(console_password));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Server::start(config, listener, async {
        let _ = stopped.await;
    })
    .await
    .expect("server starts");
    let base = server.endpoint().to_string();
    let core = server.core().clone();
    let done = tokio::spawn(async move { server.wait().await.expect("server stops cleanly") });

    let stack = call(
        &core,
        "CreateStack",
        json!({"Name": "rds-console", "Region": "us-east-1",
               "ServiceRoleArn": "arn:aws:iam::123456789012:role/aws-opsworks-service-role",
               "DefaultInstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role"}),
    )
    .await["StackId"]
        .as_str()
        .unwrap()
        .to_string();
    let db = rds::import(
        &core,
        Import {
            identifier: "consolepg".into(),
            engine: Engine::Postgres,
            address: address.clone(),
            port,
        },
    )
    .await
    .expect("the host's PostgreSQL is imported");

    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = c
        .get(format!("{base}/console/sign-in"))
        .send()
        .await
        .unwrap();
    let pre = page
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("opsworks_pre="))
        .and_then(|v| v.split(';').next())
        .expect("form cookie")
        .to_string();
    let signed = c
        .post(format!("{base}/console/sign-in"))
        .header(header::COOKIE, format!("opsworks_pre={pre}"))
        .header(header::CONTENT_TYPE, FORM)
        .body(encode(&[
            ("_pre", pre.as_str()),
            ("next", "/console/"),
            ("user", "root"),
            ("password", plain.as_str()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let session = signed
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("opsworks_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string();
    let b = Browser { c, base, session };
    let stack_path = format!("/console/stacks/{stack}");
    let register = format!("{stack_path}/rds/register");
    let deregister = format!("{stack_path}/rds/deregister");
    let page = b.page(&stack_path).await;
    assert!(
        page.contains("No database registered with this stack."),
        "{page}"
    );
    let offered = format!(
        "<option value=\"{}\">consolepg (postgres, {address}:{port})</option>",
        db.db_instance_arn
    );
    assert!(page.contains(&offered), "{page}");

    // A wrong password is refused with the server's reason, and not shown back.
    let wrong = format!("{password}-not");
    let r = b
        .post(
            &register,
            vec![
                ("_csrf", csrf(&page)),
                ("Arn", db.db_instance_arn.clone()),
                ("DbUser", user.clone()),
                ("DbPassword", wrong.clone()),
            ],
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(body.contains("wrong user name or password"), "{body}");
    assert!(!body.contains(&wrong));
    // A form without the session's token changes nothing.
    let r = b
        .post(
            &register,
            vec![
                ("_csrf", "forged".into()),
                ("Arn", db.db_instance_arn.clone()),
                ("DbUser", user.clone()),
                ("DbPassword", password.clone()),
            ],
        )
        .await;
    assert_ne!(r.status(), StatusCode::SEE_OTHER);
    assert!(b.page(&stack_path).await.contains(&offered));

    let r = b
        .post(
            &register,
            vec![
                ("_csrf", csrf(&page)),
                ("Arn", db.db_instance_arn.clone()),
                ("DbUser", user.clone()),
                ("DbPassword", password.clone()),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = b.page(&stack_path).await;
    assert!(page.contains("data-rds=\"consolepg\""), "{page}");
    assert!(
        !page.contains(&offered),
        "a registered database is not offered again"
    );
    assert!(!page.contains(&format!("value=\"{password}\"")));

    let r = b
        .post(
            &deregister,
            vec![("_csrf", csrf(&page)), ("Arn", db.db_instance_arn.clone())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = b.page(&stack_path).await;
    assert!(page.contains("No database registered with this stack."));
    assert!(page.contains(&offered));

    let _ = stop.send(());
    done.await.expect("server task");
}

//! The console over real HTTP on loopback: the whole control plane started in process by
//! `Server::start` with the console mounted, exactly as `opsworks up` assembles it, and a real
//! HTTP client (from chosen loopback source addresses, for the per-address limits).

use std::net::IpAddr;

use opsworks_console::{Password, PasswordSource};
use opsworks_server::{Server, ServerConfig};
use reqwest::header::{self, HeaderMap};
use reqwest::{Client, Response, StatusCode};

/// A control plane with the console on a free loopback port, stopped when dropped.
struct Console {
    base: String,
    password: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Console {
    async fn start() -> Console {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let (password, source) = Password::open(&data).expect("console password");
        let plain = match source {
            PasswordSource::Generated(plain) => plain,
            PasswordSource::Environment => {
                std::env::var(opsworks_console::auth::PASSWORD_ENV).expect("set")
            }
            PasswordSource::Existing => panic!("a fresh data dir has no password yet"),
        };
        let mut config = ServerConfig::new(data);
        config.root_key = Some(("AKIDCONSOLE".into(), "console-secret".into()));
        config.mounts.push(opsworks_console::mount(password));
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
        let done = tokio::spawn(async move {
            server.wait().await.expect("server stops cleanly");
        });
        Console {
            base,
            password: plain,
            stop: Some(stop),
            done: Some(done),
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.expect("server task");
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A client that sends from `from` (any 127.0.0.0/8 address reaches the server) and follows no
/// redirects.
fn client(from: &str) -> Client {
    Client::builder()
        .local_address(from.parse::<IpAddr>().expect("address"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` set by a response.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(String::from)
}

/// Posts the sign-in form as a browser would: the form's token from the page, its cookie beside.
async fn sign_in(c: &Client, console: &Console, password: &str, next: &str) -> Response {
    let page = c
        .get(console.url("/console/sign-in"))
        .send()
        .await
        .expect("sign-in page");
    let pre = set_cookie(page.headers(), "opsworks_pre").expect("form cookie");
    let token = pre["opsworks_pre=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("_pre", &token)
        .append_pair("next", next)
        .append_pair("user", "root")
        .append_pair("password", password)
        .finish();
    c.post(console.url("/console/sign-in"))
        .header(header::COOKIE, format!("opsworks_pre={token}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("sign in")
}

fn assert_protected(r: &Response, what: &str) {
    let h = r.headers();
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{what}: {csp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_console_response_carries_the_security_headers() {
    let console = Console::start().await;
    let c = client("127.0.0.1");
    let signed = sign_in(&c, &console, &console.password, "/console/").await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_protected(&signed, "the sign-in redirect");
    let session = set_cookie(signed.headers(), "opsworks_session").expect("session cookie");
    let session = session.split(';').next().unwrap().to_string();
    for (path, signed_in, status) in [
        ("/console/sign-in", false, StatusCode::OK),
        ("/console/static/console.css", false, StatusCode::OK),
        ("/console/static/console.js", false, StatusCode::OK),
        ("/console/static/nothing.js", false, StatusCode::NOT_FOUND),
        ("/console/no/such/page", false, StatusCode::NOT_FOUND),
        ("/console/", false, StatusCode::SEE_OTHER),
        ("/console", false, StatusCode::SEE_OTHER),
        ("/console/", true, StatusCode::OK),
        ("/console/stacks/new", true, StatusCode::OK),
        ("/console/stacks/nope", true, StatusCode::NOT_FOUND),
        ("/favicon.ico", false, StatusCode::OK),
    ] {
        let mut req = c.get(console.url(path));
        if signed_in {
            req = req.header(header::COOKIE, &session);
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), status, "{path}");
        assert_protected(&r, path);
        if path == "/favicon.ico" {
            assert_eq!(r.headers()[header::CONTENT_TYPE], "image/x-icon");
            let body = r.bytes().await.unwrap();
            assert_eq!(&body[..4], &[0, 0, 1, 0], "an ICO file");
        }
    }
    let wrong = sign_in(&c, &console, "wrong", "/console/").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_protected(&wrong, "a refused sign-in");
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_follows_only_paths_inside_the_console() {
    let console = Console::start().await;
    let c = client("127.0.0.1");
    for (next, to) in [
        ("/console/stacks/new", "/console/stacks/new"),
        ("/console/\r\nSet-Cookie: evil=1", "/console/"),
        ("/console/x\nLocation: //evil.example", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("https://evil.example/console/", "/console/"),
        ("/console/../logs/x", "/console/"),
        ("javascript:alert(1)", "/console/"),
        ("", "/console/"),
    ] {
        let r = sign_in(&c, &console, &console.password, next).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "next={next:?}");
        assert_eq!(r.headers()[header::LOCATION], to, "next={next:?}");
        assert!(r.headers().get("set-cookie").is_some());
    }
    // The page's own link back keeps only a safe `next` too.
    let page = c
        .get(console.url("/console/sign-in?next=https%3A%2F%2Fevil.example%2F"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // (minijinja writes `/` as `&#x2f;` in attributes.)
    assert!(
        page.contains("name=\"next\" value=\"&#x2f;console&#x2f;\""),
        "{page}"
    );
    assert!(!page.contains("evil"), "{page}");
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_from_one_address_get_429_and_others_still_sign_in() {
    let console = Console::start().await;
    let noisy = client("127.0.0.2");
    for i in 0..opsworks_console::limits::PER_ADDRESS.max {
        let r = sign_in(&noisy, &console, "guess", "/console/").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = sign_in(&noisy, &console, "guess", "/console/").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=300).contains(&wait), "{wait}");
    let page = r.text().await.unwrap();
    assert!(page.contains(&format!("Try again in {wait} s.")), "{page}");
    // Even the right password waits: the limit is checked before any hashing.
    let r = sign_in(&noisy, &console, &console.password, "/console/").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address is not held back, and signs in.
    let quiet = client("127.0.0.3");
    let r = sign_in(&quiet, &console, &console.password, "/console/").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    console.stop().await;
}

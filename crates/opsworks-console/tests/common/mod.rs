//! What the console's HTTP tests share: the whole control plane started in process by
//! `Server::start` with the console mounted (as `opsworks up` assembles it), real HTTP clients
//! from chosen loopback addresses, and a signed-in browser's session.

#![allow(dead_code)]

use std::net::IpAddr;

use opsworks_console::{Password, PasswordSource};
use opsworks_server::{Server, ServerConfig};
use reqwest::header::{self, HeaderMap};
use reqwest::{Client, Response, StatusCode};

/// A control plane with the console on a free loopback port, stopped when dropped.
pub struct Console {
    pub base: String,
    pub password: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Console {
    pub async fn start() -> Console {
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

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.expect("server task");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A client that sends from `from` (any 127.0.0.0/8 address reaches the server) and follows no
/// redirects.
pub fn client(from: &str) -> Client {
    Client::builder()
        .local_address(from.parse::<IpAddr>().expect("address"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` set by a response.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(String::from)
}

/// Posts the sign-in form as a browser would: the form's token from the page, its cookie beside.
pub async fn sign_in(c: &Client, console: &Console, password: &str, next: &str) -> Response {
    sign_in_as(c, console, "root", password, next).await
}

/// Posts the sign-in form for `user` (`root` or an IAM user's name).
pub async fn sign_in_as(
    c: &Client,
    console: &Console,
    user: &str,
    password: &str,
    next: &str,
) -> Response {
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
        .append_pair("user", user)
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

/// The CSRF token a signed-in page carries in its forms.
pub fn csrf_of(page: &str) -> Option<String> {
    let start = page.find("name=\"_csrf\" value=\"")? + "name=\"_csrf\" value=\"".len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_string())
}

/// What a request answered: status, `Location` (when redirected) and body.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The body with minijinja's HTML escapes turned back (`&#x2f;` → `/`, ...), for reading
    /// messages as written.
    pub fn text(&self) -> String {
        self.body
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    async fn of(r: Response) -> Page {
        let status = r.status();
        let location = r
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = r.text().await.expect("body");
        Page {
            status,
            location,
            body,
        }
    }
}

/// A signed-in browser: its client (from one loopback address), session cookie and CSRF token.
pub struct Browser {
    pub c: Client,
    pub cookie: String,
    pub csrf: String,
    base: String,
}

impl Browser {
    /// Signs `user` in from `from`; panics unless the sign-in is accepted. Returns the browser
    /// and where the sign-in sent it.
    pub async fn sign_in(
        console: &Console,
        from: &str,
        user: &str,
        password: &str,
    ) -> (Browser, String) {
        let c = client(from);
        let r = sign_in_as(&c, console, user, password, "/console/").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{user} signs in");
        let cookie = set_cookie(r.headers(), "opsworks_session").expect("session cookie");
        let cookie = cookie.split(';').next().unwrap().to_string();
        let to = r.headers()[header::LOCATION].to_str().unwrap().to_string();
        let mut b = Browser {
            c,
            cookie,
            csrf: String::new(),
            base: console.base.clone(),
        };
        let page = b.get(&to).await;
        b.csrf = csrf_of(&page.body).unwrap_or_else(|| panic!("no CSRF token on {to}: {page:?}"));
        (b, to)
    }

    /// `GET path` with the session, not following redirects.
    pub async fn get(&self, path: &str) -> Page {
        let r = self
            .c
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .send()
            .await
            .expect("request");
        Page::of(r).await
    }

    /// Posts a form with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.append_pair("_csrf", &self.csrf);
        for (k, v) in fields {
            body.append_pair(k, v);
        }
        let body = body.finish();
        let r = self
            .c
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request");
        Page::of(r).await
    }

    /// Posts a form that must succeed (a redirect); returns where it leads.
    pub async fn post_ok(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let p = self.post(path, fields).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "POST {path}: {}", p.body);
        p.location.expect("a redirect")
    }
}

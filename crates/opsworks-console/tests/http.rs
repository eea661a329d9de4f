//! The console over real HTTP on loopback: the whole control plane started in process by
//! `Server::start` with the console mounted, exactly as `opsworks up` assembles it, and a real
//! HTTP client (from chosen loopback source addresses, for the per-address limits).

mod common;

use common::{Console, client, set_cookie, sign_in};
use reqwest::header;
use reqwest::{Response, StatusCode};

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

//! Keys stop working at once: on the server that changed them, and on another server sharing
//! its PostgreSQL database (whose key ring and users' access were cached before the change).
//! Real cores, real stores, requests signed with SigV4 and verified by [`authenticate_for`].

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_api::sigv4::{self, RequestParts};

use super::{Caller, Peer, authenticate_for};
use crate::ServerConfig;
use crate::core::Core;
use crate::core::machines::instance_principal;
use crate::ops::{self, Ctx, Principal};

const ROOT: (&str, &str) = ("AKIDROOTTEST", "root-secret");

async fn core_on(dir: &std::path::Path, database: Option<opsworks_store::Engine>) -> Core {
    let mut config = ServerConfig::new(dir.to_path_buf());
    config.root_key = Some((ROOT.0.into(), ROOT.1.into()));
    config.database = database;
    Core::open(&config).await.expect("open core").0
}

/// A signed `POST /` of the OpsWorks API, as boto3 sends it.
fn signed(akid: &str, secret: &str, operation: &str) -> (HeaderMap, Vec<u8>) {
    let body = b"{}".to_vec();
    let target = format!("OpsWorks_20130218.{operation}");
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("host", "127.0.0.1:9730"),
        ("x-amz-target", target.as_str()),
    ];
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: &body,
    };
    let (date, auth) = sigv4::sign(
        &parts,
        akid,
        secret,
        "us-east-1",
        jiff::Timestamp::now().as_second(),
    );
    let mut map = HeaderMap::new();
    for (n, v) in headers.iter().chain(
        [
            ("x-amz-date", date.as_str()),
            ("authorization", auth.as_str()),
        ]
        .iter(),
    ) {
        map.insert(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    (map, body)
}

async fn who(core: &Core, akid: &str, secret: &str) -> Result<Caller, ApiError> {
    let (headers, body) = signed(akid, secret, "DescribeStacks");
    authenticate_for(
        core,
        &Method::POST,
        &Uri::from_static("/"),
        &headers,
        &body,
        Peer::default(),
        "opsworks",
    )
    .await
}

async fn iam(core: &Core, op: &str, input: Value) -> Value {
    let root = Principal::root("us-east-1");
    ops::iam::dispatch(
        Ctx {
            core,
            principal: &root,
        },
        op,
        input,
    )
    .await
    .unwrap_or_else(|e| panic!("{op}: {e}"))
}

fn refused(r: Result<Caller, ApiError>) -> bool {
    matches!(r, Err(ApiError::UnrecognizedClient(_)))
}

/// The flows, with `a` changing keys and `b` verifying (the same core on SQLite).
async fn keys_stop_at_once(a: &Core, b: &Core) {
    iam(a, "CreateUser", json!({"UserName": "alice"})).await;
    let key = iam(a, "CreateAccessKey", json!({"UserName": "alice"})).await;
    let (id, secret) = (
        key["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string(),
        key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    // `b` learns the key and caches it with the user's access.
    let Ok(Caller::User(p)) = who(b, &id, &secret).await else {
        panic!("alice's key is refused on the other server");
    };
    assert_eq!(p.user.as_ref().unwrap().user_name, "alice");
    assert!(p.name.ends_with(":user/alice"));
    assert!(matches!(who(b, &id, &secret).await, Ok(Caller::User(_))));

    // A policy added on `a` decides on `b` at once.
    let describe = Ctx {
        core: b,
        principal: &p,
    };
    assert!(
        ops::dispatch(describe, "DescribeLayers", json!({"StackId": "nope"}))
            .await
            .is_err()
    );
    iam(
        a,
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "p", "PolicyDocument":
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"opsworks:Describe*","Resource":"*"}]}"#}),
    )
    .await;
    let Ok(Caller::User(p)) = who(b, &id, &secret).await else {
        panic!("refused");
    };
    let err = ops::dispatch(
        Ctx {
            core: b,
            principal: &p,
        },
        "DescribeLayers",
        json!({"StackId": "nope"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "ResourceNotFoundException", "{err:?}");

    iam(
        a,
        "UpdateAccessKey",
        json!({"UserName": "alice", "AccessKeyId": id, "Status": "Inactive"}),
    )
    .await;
    assert!(
        refused(who(b, &id, &secret).await),
        "an inactive key still works"
    );
    assert!(refused(who(a, &id, &secret).await));
    iam(
        a,
        "UpdateAccessKey",
        json!({"UserName": "alice", "AccessKeyId": id, "Status": "Active"}),
    )
    .await;
    assert!(matches!(who(b, &id, &secret).await, Ok(Caller::User(_))));
    iam(
        a,
        "DeleteAccessKey",
        json!({"UserName": "alice", "AccessKeyId": id}),
    )
    .await;
    assert!(
        refused(who(b, &id, &secret).await),
        "a deleted key still works"
    );

    // An instance's key revoked on `a` stops working on `b` (the key ring's generation).
    let mut w = a.write().await.unwrap();
    let (iid, isecret) = a
        .keys()
        .issue(&mut w, &instance_principal("i-1"))
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(
        who(b, &iid, &isecret).await.unwrap(),
        Caller::Instance("i-1".into())
    );
    let mut w = a.write().await.unwrap();
    a.keys()
        .revoke(&mut w, &instance_principal("i-1"))
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert!(
        refused(who(b, &iid, &isecret).await),
        "a revoked instance key still works"
    );

    // Wrong secret, unknown key: refused as before.
    assert!(matches!(
        who(b, ROOT.0, "wrong").await,
        Err(ApiError::InvalidSignature(_))
    ));
    assert!(refused(who(b, "AKIANOSUCHKEY", "x").await));
    assert!(matches!(who(b, ROOT.0, ROOT.1).await, Ok(Caller::User(p)) if p.is_root()));
}

#[tokio::test]
async fn keys_stop_at_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let core = core_on(&dir.path().join("data"), None).await;
    keys_stop_at_once(&core, &core).await;
}

/// Needs PostgreSQL: `export OPSWORKS_TEST_DATABASE_URL=$(scripts/postgres-test-setup.sh)`.
#[tokio::test]
async fn keys_stop_at_once_on_another_server_sharing_postgresql() {
    let db = opsworks_store::testing::TestDatabase::create().await;
    let (da, db_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = core_on(&da.path().join("data"), Some(db.engine())).await;
    // The servers of one database share the master key that seals the secrets.
    std::fs::create_dir_all(db_dir.path().join("data")).unwrap();
    std::fs::copy(
        da.path().join("data/master.key"),
        db_dir.path().join("data/master.key"),
    )
    .unwrap();
    let b = core_on(&db_dir.path().join("data"), Some(db.engine())).await;
    keys_stop_at_once(&a, &b).await;
}

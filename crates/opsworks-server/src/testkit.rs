//! Test helpers shared by the server's unit tests: a real core on a temporary data dir, and
//! operations run as root the way the edge runs them (model validation, then dispatch).

use serde_json::{Value, json};

use opsworks_api::{ApiError, model};

use crate::ServerConfig;
use crate::core::Core;
use crate::ops::{Ctx, Principal, dispatch};

/// A real core on a temporary data dir (SQLite file, master key).
pub async fn open() -> (tempfile::TempDir, Core) {
    open_with(|_| {}).await
}

/// [`open`] with the configuration adjusted first.
pub async fn open_with(adjust: impl FnOnce(&mut ServerConfig)) -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::new(dir.path().join("data"));
    config.root_key = Some(("AKIDTEST".into(), "secret".into()));
    adjust(&mut config);
    let (core, _) = Core::open(&config).await.expect("open core");
    (dir, core)
}

/// Runs an operation as root, as the edge does after authentication.
pub async fn call(core: &Core, op: &str, body: Value) -> Result<Value, ApiError> {
    model().validate_input(op, &body)?;
    let principal = Principal::root("us-east-1");
    dispatch(
        Ctx {
            core,
            principal: &principal,
        },
        op,
        body,
    )
    .await?
    .into_value()
}

/// A stack with one custom layer: (stack ID, layer ID).
pub async fn stack_and_layer(core: &Core) -> (String, String) {
    let stack = call(
        core,
        "CreateStack",
        json!({"Name": "s", "Region": "us-east-1", "ServiceRoleArn": "arn:aws:iam::1:role/r",
               "DefaultInstanceProfileArn": "arn:aws:iam::1:instance-profile/p"}),
    )
    .await
    .expect("stack");
    let sid = stack["StackId"].as_str().expect("stack id").to_string();
    let layer = call(
        core,
        "CreateLayer",
        json!({"StackId": sid, "Type": "custom", "Name": "web", "Shortname": "web"}),
    )
    .await
    .expect("layer");
    (
        sid,
        layer["LayerId"].as_str().expect("layer id").to_string(),
    )
}

/// A stack with one custom layer and one (stopped) instance: (stack ID, instance ID).
pub async fn stack_with_instance(core: &Core) -> (String, String) {
    let (sid, lid) = stack_and_layer(core).await;
    let inst = call(
        core,
        "CreateInstance",
        json!({"StackId": sid, "LayerIds": [lid], "InstanceType": "t2.micro"}),
    )
    .await
    .expect("instance");
    (
        sid,
        inst["InstanceId"]
            .as_str()
            .expect("instance id")
            .to_string(),
    )
}

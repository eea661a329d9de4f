//! Typed resources from short JSON fixtures, for this crate's tests: each fixture names only what
//! the test is about and the rest takes plain defaults.

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use opsworks_model::resource::{App, Instance, Layer, Stack};

fn merged<T: DeserializeOwned>(mut base: Value, over: Value) -> T {
    crate::config::deep_merge(&mut base, &over);
    serde_json::from_value(base).expect("fixture reads as its type")
}

/// A stack.
pub fn stack(over: Value) -> Stack {
    merged(
        json!({"StackId": "s1", "Name": "s", "Arn": "arn:s", "Region": "us-east-1",
            "DefaultOs": "Amazon Linux 2", "HostnameTheme": "Layer_Dependent",
            "ConfigurationManager": {"Name": "Chef", "Version": "12"},
            "CreatedAt": "2026-01-01T00:00:00+00:00", "AgentVersion": "LATEST"}),
        over,
    )
}

/// A layer.
pub fn layer(over: Value) -> Layer {
    merged(
        json!({"LayerId": "l", "StackId": "s1", "Arn": "arn:l", "Type": "custom", "Name": "L",
            "Shortname": "l", "CreatedAt": "2026-01-01T00:00:00+00:00"}),
        over,
    )
}

/// An instance.
pub fn instance(over: Value) -> Instance {
    merged(
        json!({"InstanceId": "i", "Arn": "arn:i", "StackId": "s1", "Hostname": "h",
            "Os": "Amazon Linux 2", "Status": "stopped", "CreatedAt": "2026-01-01T00:00:00+00:00"}),
        over,
    )
}

/// An app.
pub fn app(over: Value) -> App {
    merged(
        json!({"AppId": "a", "StackId": "s1", "Name": "A", "Shortname": "a", "Type": "other",
            "CreatedAt": "2026-01-01T00:00:00+00:00"}),
        over,
    )
}

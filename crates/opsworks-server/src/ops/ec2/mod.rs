//! EC2 on the server's own endpoint (EC2's dialect of the Query protocol, driven by botocore's
//! `ec2` model): Elastic IPs (`AllocateAddress`, `DescribeAddresses`, `ReleaseAddress`) from the
//! server's pool on the machines' bridge, and volumes (`CreateVolume`, `DescribeVolumes`,
//! `DeleteVolume`) that are XFS disk images on this host. The OpsWorks operations register them
//! with stacks and give them to instances (`ops::elastic_ips`, `ops::volumes`). Other EC2
//! operations answer EC2's `UnsupportedOperation`.
//!
//! Each call is authorized for its caller (`ec2:<Operation>` on the resource's ARN, or `*`; the
//! root may do anything), answers `DryRunOperation` when `DryRun` is set and it would have been
//! allowed, and, when it may change something, is written to the audit log. Addresses and
//! volumes are regional, as EC2's: a call sees those of its signature's region.

mod addresses;
mod volumes;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use opsworks_api::query::AwsError;
use opsworks_model::resource::Ec2Tag;

use super::Ctx;
use super::query_calls::{self, Call};
use crate::core::CoreError;

/// What an EC2 handler returns.
pub type Ec2Result = Result<Value, AwsError>;

/// Runs an EC2 operation for the caller: the handler table of the Query endpoint's `ec2`
/// service.
pub fn dispatch<'a>(cx: Ctx<'a>, operation: &'a str, input: Value) -> BoxFuture<'a, Ec2Result> {
    Box::pin(async move {
        let target = target_of(cx, operation, &input).await;
        let call = Call {
            service: "ec2",
            operation,
            target: &target,
            denied: unauthorized,
        };
        let work = async {
            if input.get("DryRun").and_then(Value::as_bool) == Some(true) {
                return Err(AwsError::service(
                    "DryRunOperation",
                    "Request would have succeeded, but DryRun flag is set.",
                ));
            }
            run(cx, operation, &input).await
        };
        // A creation is recorded as what it made.
        let made = |result: &Ec2Result| {
            result.as_ref().ok().and_then(|v| {
                ["VolumeId", "AllocationId"]
                    .iter()
                    .find_map(|k| s(v, k).map(str::to_string))
            })
        };
        query_calls::run(cx, call, work, |r| made(r).filter(|_| target == "*")).await
    })
}

async fn run(cx: Ctx<'_>, operation: &str, input: &Value) -> Ec2Result {
    match operation {
        "AllocateAddress" => addresses::allocate_address(cx, input).await,
        "DescribeAddresses" => addresses::describe_addresses(cx, input).await,
        "ReleaseAddress" => addresses::release_address(cx, input).await,
        "CreateVolume" => volumes::create_volume(cx, input).await,
        "DescribeVolumes" => volumes::describe_volumes(cx, input).await,
        "DeleteVolume" => volumes::delete_volume(cx, input).await,
        other => Err(AwsError::service(
            "UnsupportedOperation",
            format!(
                "The operation {other} is not supported by this server: it serves AllocateAddress, DescribeAddresses, ReleaseAddress, CreateVolume, DescribeVolumes and DeleteVolume."
            ),
        )),
    }
}

/// EC2's refusal: `UnauthorizedOperation`.
fn unauthorized(reason: String) -> AwsError {
    AwsError::service(
        "UnauthorizedOperation",
        format!("You are not authorized to perform this operation. {reason}"),
    )
}

/// The ARN a call acts on: the volume's or the address's, `*` for creations and listings.
async fn target_of(cx: Ctx<'_>, operation: &str, input: &Value) -> String {
    let (region, account) = (&cx.principal.region, cx.core.account_id());
    if let Some(id) = s(input, "VolumeId") {
        return format!("arn:aws:ec2:{region}:{account}:volume/{id}");
    }
    if operation == "ReleaseAddress" {
        let alloc = match (s(input, "AllocationId"), s(input, "PublicIp")) {
            (Some(a), _) => Some(a.to_string()),
            (None, Some(ip)) => cx
                .core
                .find::<opsworks_model::resource::ElasticIp>(ip)
                .await
                .ok()
                .flatten()
                .map(|e| e.allocation_id.clone()),
            _ => None,
        };
        if let Some(a) = alloc {
            return format!("arn:aws:ec2:{region}:{account}:elastic-ip/{a}");
        }
    }
    "*".to_string()
}

// Helpers shared by the handlers.

/// A string member of the input.
fn s<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// The strings of a list member.
fn strings(input: &Value, key: &str) -> Vec<String> {
    input
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The core's refusal of something this server cannot do, or a fault of the server as the Query
/// services report it (`ServiceUnavailable` for a full disk or a busy store, else `InternalError`).
fn internal(e: impl Into<CoreError>) -> AwsError {
    match e.into() {
        CoreError::Invalid(m) => AwsError::service("Unsupported", m),
        other => query_calls::core_error(other),
    }
}

fn invalid_value(message: impl Into<String>) -> AwsError {
    AwsError::service("InvalidParameterValue", message)
}

fn unsupported(what: &str) -> AwsError {
    AwsError::service(
        "UnsupportedOperation",
        format!("{what} is not supported by this server."),
    )
}

/// The tags of `TagSpecifications` for `resource_type` (another type is refused, as EC2 does).
fn tags_of(input: &Value, resource_type: &str) -> Result<Vec<Ec2Tag>, AwsError> {
    let mut tags: Vec<Ec2Tag> = Vec::new();
    for spec in input
        .get("TagSpecifications")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let given = s(spec, "ResourceType").unwrap_or("");
        if given != resource_type {
            return Err(invalid_value(format!(
                "'{given}' is not a valid taggable resource type for this operation."
            )));
        }
        for tag in spec
            .get("Tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = s(tag, "Key").unwrap_or("").to_string();
            if key.is_empty() || key.len() > 128 || key.starts_with("aws:") {
                return Err(invalid_value(format!("Tag key '{key}' is not valid.")));
            }
            let value = s(tag, "Value").unwrap_or("").to_string();
            if value.len() > 256 {
                return Err(invalid_value(format!(
                    "Tag value for key '{key}' is too long."
                )));
            }
            tags.retain(|t| t.key != key);
            tags.push(Ec2Tag { key, value });
        }
    }
    Ok(tags)
}

fn tag_list(tags: &[Ec2Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

/// The filters of a Describe call as (name, values), each a name of `known` or a tag filter.
fn filters(input: &Value, known: &[&str]) -> Result<Vec<(String, Vec<String>)>, AwsError> {
    let given: Vec<(String, Vec<String>)> = input
        .get("Filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|f| (s(f, "Name").unwrap_or("").to_string(), strings(f, "Values")))
        .collect();
    for (name, _) in &given {
        if !known.contains(&name.as_str()) && !name.starts_with("tag:") && name != "tag-key" {
            return Err(unknown_filter(name));
        }
    }
    Ok(given)
}

/// Whether `value` matches one of a filter's values (`*` and `?` as EC2's wildcards).
fn matches_any(values: &[String], value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    values.iter().any(|pattern| wildcard(pattern, value))
}

fn wildcard(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // Classic two-pointer glob match with backtracking over the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Whether tags pass a `tag:<key>` or `tag-key` filter.
fn tag_filter(name: &str, values: &[String], tags: &[Ec2Tag]) -> Option<bool> {
    if let Some(key) = name.strip_prefix("tag:") {
        return Some(
            tags.iter()
                .any(|t| t.key == key && matches_any(values, Some(&t.value))),
        );
    }
    (name == "tag-key").then(|| tags.iter().any(|t| matches_any(values, Some(&t.key))))
}

fn unknown_filter(name: &str) -> AwsError {
    invalid_value(format!("The filter '{name}' is invalid"))
}

#[cfg(test)]
mod tests;

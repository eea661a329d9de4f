//! Classic Elastic Load Balancing on the server's own endpoint (the Query protocol, driven by
//! botocore's `elb` model): CreateLoadBalancer (HTTP and TCP listeners), DescribeLoadBalancers,
//! DeleteLoadBalancer, ConfigureHealthCheck, DescribeInstanceHealth,
//! RegisterInstancesWithLoadBalancer and DeregisterInstancesFromLoadBalancer, served by HAProxy
//! on this host (`core::elb`). Each call is authorized for its caller
//! (`elasticloadbalancing:<Operation>` on the load balancer's ARN; the root may do anything) and,
//! when it may change something, written to the audit log. Other ELB operations answer
//! `UnsupportedOperation`; errors carry ELB's codes (`LoadBalancerNotFound`,
//! `DuplicateLoadBalancerName`, `InvalidInstance`, `UnsupportedProtocol`,
//! `InvalidConfigurationRequest`, `ValidationError`).

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use opsworks_api::query::AwsError;
use opsworks_model::resource::{ElbHealthCheck, ElbListener, LoadBalancer};
use opsworks_store::Filter;

use super::Ctx;
use super::query_calls::{self, Call, access_denied};
use crate::core::Core;
use crate::core::elb::{self, ElbError, NewLoadBalancer};

/// What an ELB handler returns.
pub type ElbCall = Result<Value, AwsError>;

/// Runs an ELB operation for the caller: the handler table of the Query endpoint's
/// `elasticloadbalancing` service.
pub fn dispatch<'a>(cx: Ctx<'a>, operation: &'a str, input: Value) -> BoxFuture<'a, ElbCall> {
    Box::pin(async move {
        let target = arn(
            cx.core,
            input
                .get("LoadBalancerName")
                .and_then(Value::as_str)
                .unwrap_or("*"),
        );
        let call = Call {
            service: "elasticloadbalancing",
            operation,
            target: &target,
            denied: access_denied,
        };
        query_calls::run(cx, call, run(cx, operation, &input), |_| None).await
    })
}

async fn run(cx: Ctx<'_>, operation: &str, input: &Value) -> ElbCall {
    let core = cx.core;
    match operation {
        "CreateLoadBalancer" => create_load_balancer(core, input).await,
        "DescribeLoadBalancers" => describe_load_balancers(core, input).await,
        "DeleteLoadBalancer" => {
            elb::delete(core, name(input)?).await.map_err(elb_error)?;
            Ok(json!({}))
        }
        "ConfigureHealthCheck" => configure_health_check(core, input).await,
        "DescribeInstanceHealth" => describe_instance_health(core, input).await,
        "RegisterInstancesWithLoadBalancer" => register(core, input, true).await,
        "DeregisterInstancesFromLoadBalancer" => register(core, input, false).await,
        other => Err(AwsError::UnsupportedOperation {
            message: format!(
                "The operation {other} of Elastic Load Balancing is not supported by this server."
            ),
        }),
    }
}

/// The load balancer's ARN (`*` for every one).
fn arn(core: &Core, name: &str) -> String {
    format!(
        "arn:aws:elasticloadbalancing:{}:{}:loadbalancer/{name}",
        core.region(),
        core.account_id()
    )
}

/// The core's refusal in ELB's terms.
pub fn elb_error(e: ElbError) -> AwsError {
    let code = match &e {
        ElbError::NotFound(_) => "LoadBalancerNotFound",
        ElbError::Duplicate(_) => "DuplicateLoadBalancerName",
        ElbError::TooMany => "TooManyLoadBalancers",
        ElbError::InvalidInstance(_) => "InvalidInstance",
        ElbError::UnsupportedProtocol(_) => "UnsupportedProtocol",
        ElbError::Validation(_) => "ValidationError",
        ElbError::Configuration(_) => "InvalidConfigurationRequest",
        ElbError::Core(_) => {
            let ElbError::Core(inner) = e else {
                unreachable!()
            };
            return query_calls::core_error(inner);
        }
    };
    AwsError::service(code, e.to_string())
}

fn name(input: &Value) -> Result<&str, AwsError> {
    input
        .get("LoadBalancerName")
        .and_then(Value::as_str)
        .ok_or_else(|| AwsError::Invalid {
            code: "ValidationError",
            message: "LoadBalancerName is required".into(),
        })
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn port(v: &Value, key: &str) -> Result<u16, AwsError> {
    let n = int(v, key);
    u16::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| {
        elb_error(ElbError::Validation(format!(
            "Listener {key} must be between 1 and 65535; it is {n}"
        )))
    })
}

async fn create_load_balancer(core: &Core, input: &Value) -> ElbCall {
    let name = name(input)?.to_string();
    let strings = |key: &str| -> Vec<String> {
        input
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    if input
        .get("Tags")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty())
    {
        return Err(elb_error(ElbError::Configuration(
            "Tags are not supported by this server's load balancers".into(),
        )));
    }
    if !strings("Subnets").is_empty() || !strings("SecurityGroups").is_empty() {
        return Err(elb_error(ElbError::Configuration(
            "Subnets and SecurityGroups are not supported by this server: its load balancers answer on the machines' bridge".into(),
        )));
    }
    let mut listeners = Vec::new();
    for l in input
        .get("Listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if l.get("SSLCertificateId").is_some() {
            return Err(elb_error(ElbError::UnsupportedProtocol(
                "SSLCertificateId: HTTPS and SSL listeners are not supported by this server".into(),
            )));
        }
        listeners.push(ElbListener {
            protocol: l
                .get("Protocol")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            load_balancer_port: port(l, "LoadBalancerPort")?,
            instance_protocol: l
                .get("InstanceProtocol")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            instance_port: port(l, "InstancePort")?,
        });
    }
    let scheme = input
        .get("Scheme")
        .and_then(Value::as_str)
        .unwrap_or("internet-facing")
        .to_string();
    if scheme != "internet-facing" && scheme != "internal" {
        return Err(AwsError::service(
            "InvalidScheme",
            format!("Scheme '{scheme}' is not valid: use internet-facing or internal"),
        ));
    }
    let lb = elb::create(
        core,
        NewLoadBalancer {
            name,
            listeners,
            availability_zones: strings("AvailabilityZones"),
            scheme,
        },
    )
    .await
    .map_err(elb_error)?;
    Ok(json!({"DNSName": lb.dns_name}))
}

fn health_check_shape(hc: &ElbHealthCheck) -> Value {
    json!({
        "Target": hc.target,
        "Interval": hc.interval,
        "Timeout": hc.timeout,
        "UnhealthyThreshold": hc.unhealthy_threshold,
        "HealthyThreshold": hc.healthy_threshold,
    })
}

/// A load balancer as DescribeLoadBalancers shows it.
pub fn description(core: &Core, lb: &LoadBalancer) -> Value {
    json!({
        "LoadBalancerName": lb.load_balancer_name,
        "DNSName": lb.dns_name,
        "CanonicalHostedZoneName": lb.dns_name,
        "ListenerDescriptions": lb.listeners.iter().map(|l| json!({
            "Listener": {
                "Protocol": l.protocol,
                "LoadBalancerPort": l.load_balancer_port,
                "InstanceProtocol": l.instance_protocol,
                "InstancePort": l.instance_port,
            },
            "PolicyNames": [],
        })).collect::<Vec<_>>(),
        "Policies": {"AppCookieStickinessPolicies": [], "LBCookieStickinessPolicies": [], "OtherPolicies": []},
        "BackendServerDescriptions": [],
        "AvailabilityZones": lb.availability_zones,
        "Subnets": [],
        "Instances": lb.instances.iter().map(|i| json!({"InstanceId": i})).collect::<Vec<_>>(),
        "HealthCheck": health_check_shape(&lb.health_check),
        "SourceSecurityGroup": {"OwnerAlias": core.account_id(), "GroupName": "default"},
        "SecurityGroups": [],
        "CreatedTime": lb.created_time,
        "Scheme": lb.scheme,
    })
}

async fn describe_load_balancers(core: &Core, input: &Value) -> ElbCall {
    let all = core
        .list::<LoadBalancer>(Filter::All)
        .await
        .map_err(|e| elb_error(e.into()))?;
    let names: Option<Vec<&str>> = input
        .get("LoadBalancerNames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    let chosen: Vec<Value> = match names.filter(|n| !n.is_empty()) {
        None => {
            let mut sorted: Vec<&LoadBalancer> = all.iter().map(|l| &**l).collect();
            sorted.sort_by(|a, b| a.load_balancer_name.cmp(&b.load_balancer_name));
            sorted.into_iter().map(|l| description(core, l)).collect()
        }
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                let lb = all
                    .iter()
                    .find(|l| l.load_balancer_name == n)
                    .ok_or_else(|| elb_error(ElbError::NotFound(n.to_string())))?;
                out.push(description(core, lb));
            }
            out
        }
    };
    Ok(json!({"LoadBalancerDescriptions": chosen}))
}

async fn configure_health_check(core: &Core, input: &Value) -> ElbCall {
    let name = name(input)?;
    let hc = input.get("HealthCheck").cloned().unwrap_or(Value::Null);
    let hc = ElbHealthCheck {
        target: hc
            .get("Target")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        interval: int(&hc, "Interval"),
        timeout: int(&hc, "Timeout"),
        unhealthy_threshold: int(&hc, "UnhealthyThreshold"),
        healthy_threshold: int(&hc, "HealthyThreshold"),
    };
    // Checked once the load balancer is found: an unknown one is reported before a bad check.
    let lb = elb::change(core, name, |lb| {
        elb::check_health_check(&hc)?;
        lb.health_check = hc;
        Ok(())
    })
    .await
    .map_err(elb_error)?;
    Ok(json!({"HealthCheck": health_check_shape(&lb.health_check)}))
}

fn instance_ids(input: &Value) -> Vec<String> {
    input
        .get("Instances")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("InstanceId").and_then(Value::as_str))
        .map(String::from)
        .collect()
}

async fn register(core: &Core, input: &Value, add: bool) -> ElbCall {
    let name = name(input)?;
    elb::find(core, name).await.map_err(elb_error)?;
    let ids = instance_ids(input);
    for id in &ids {
        if elb::instance_by_ec2_id(core, id)
            .await
            .map_err(elb_error)?
            .is_none()
        {
            return Err(elb_error(ElbError::InvalidInstance(format!(
                "The following instance is not valid: {id}. Instances are named by their Ec2InstanceId in DescribeInstances."
            ))));
        }
    }
    if !add {
        let lb = elb::deregister(core, name, ids).await.map_err(elb_error)?;
        return Ok(instances_shape(&lb));
    }
    let lb = elb::change(core, name, |lb| {
        for id in &ids {
            if !lb.instances.contains(id) {
                lb.instances.push(id.clone());
            }
        }
        Ok(())
    })
    .await
    .map_err(elb_error)?;
    Ok(instances_shape(&lb))
}

fn instances_shape(lb: &LoadBalancer) -> Value {
    json!({"Instances": lb.instances.iter().map(|i| json!({"InstanceId": i})).collect::<Vec<_>>()})
}

async fn describe_instance_health(core: &Core, input: &Value) -> ElbCall {
    let name = name(input)?;
    let lb = elb::find(core, name).await.map_err(elb_error)?;
    let asked = instance_ids(input);
    for id in &asked {
        if elb::instance_by_ec2_id(core, id)
            .await
            .map_err(elb_error)?
            .is_none()
        {
            return Err(elb_error(ElbError::InvalidInstance(format!(
                "Could not find EC2 instance {id}."
            ))));
        }
    }
    let ids = if asked.is_empty() {
        lb.instances.clone()
    } else {
        asked
    };
    let stats = if ids.is_empty() {
        Some(Vec::new())
    } else {
        elb::server_stats(core, &lb).await.map_err(elb_error)?
    };
    let states: Vec<Value> = ids
        .iter()
        .map(|id| {
            let (state, reason, description) = health_of(&lb, stats.as_deref(), id);
            json!({"InstanceId": id, "State": state, "ReasonCode": reason, "Description": description})
        })
        .collect();
    Ok(json!({"InstanceStates": states}))
}

/// ELB's state of one instance from HAProxy's view of it.
fn health_of(
    lb: &LoadBalancer,
    stats: Option<&[elb::haproxy::ServerStat]>,
    id: &str,
) -> (&'static str, &'static str, &'static str) {
    if !lb.instances.iter().any(|i| i == id) {
        return (
            "OutOfService",
            "Instance",
            "Instance is not currently registered with the LoadBalancer.",
        );
    }
    let Some(stats) = stats else {
        return (
            "Unknown",
            "ELB",
            "A transient error occurred. Please try again later.",
        );
    };
    let mine: Vec<&elb::haproxy::ServerStat> = stats.iter().filter(|s| s.server == id).collect();
    if mine.is_empty() {
        return (
            "OutOfService",
            "ELB",
            "Instance registration is still in progress.",
        );
    }
    if mine.iter().all(|s| s.status.starts_with("UP")) {
        ("InService", "N/A", "N/A")
    } else {
        (
            "OutOfService",
            "Instance",
            "Instance has failed at least the UnhealthyThreshold number of health checks consecutively.",
        )
    }
}

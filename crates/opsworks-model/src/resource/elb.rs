//! Classic load balancers (`aws elb`): each one HAProxy in a service machine of this host, its
//! listeners, health check and registered instances kept here; and its attachment to an OpsWorks
//! layer (AttachElasticLoadBalancer), which makes the layer's online instances its backends.

use serde::{Deserialize, Serialize};

use super::{Kind, Resource};

/// One listener: a port of the load balancer and the instance port it forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ElbListener {
    /// `HTTP` or `TCP` (upper-case).
    pub protocol: String,
    /// The port the load balancer answers on.
    pub load_balancer_port: u16,
    /// `HTTP` or `TCP`: how the instances are spoken to.
    pub instance_protocol: String,
    /// The instances' port.
    pub instance_port: u16,
}

/// The health check of the instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ElbHealthCheck {
    /// `TCP:PORT` or `HTTP:PORT/PATH`.
    pub target: String,
    /// Seconds between checks.
    pub interval: i64,
    /// Seconds a check may take.
    pub timeout: i64,
    /// Failed checks in a row that take an instance out.
    pub unhealthy_threshold: i64,
    /// Passed checks in a row that bring it back.
    pub healthy_threshold: i64,
}

/// A classic load balancer (ID: its name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoadBalancer {
    /// Its name: 1 to 32 letters, digits and hyphens, unique in the account.
    pub load_balancer_name: String,
    /// Where it answers: its machine's address on the bridge.
    #[serde(rename = "DNSName")]
    pub dns_name: String,
    /// Its listeners, one per load balancer port.
    pub listeners: Vec<ElbListener>,
    /// Its health check.
    pub health_check: ElbHealthCheck,
    /// The registered instances (their `Ec2InstanceId`s), in registration order.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Availability zones, recorded.
    #[serde(default)]
    pub availability_zones: Vec<String>,
    /// `internet-facing` or `internal`, recorded.
    pub scheme: String,
    /// When it was created.
    pub created_time: String,
    /// The machine HAProxy runs in.
    #[serde(rename = "_MachineId")]
    pub machine_id: String,
    /// The server whose machines run it (host name and data dir).
    #[serde(rename = "_Owner", default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The OpsWorks layer it is attached to, if any.
    #[serde(rename = "_LayerId", default, skip_serializing_if = "Option::is_none")]
    pub layer_id: Option<String>,
    /// That layer's stack.
    #[serde(rename = "_StackId", default, skip_serializing_if = "Option::is_none")]
    pub stack_id: Option<String>,
}

impl Resource for LoadBalancer {
    const KIND: Kind = Kind::LoadBalancer;
    fn id(&self) -> &str {
        &self.load_balancer_name
    }
    fn stack_id(&self) -> Option<&str> {
        self.stack_id.as_deref()
    }
    fn parent_id(&self) -> Option<&str> {
        self.layer_id.as_deref()
    }
}

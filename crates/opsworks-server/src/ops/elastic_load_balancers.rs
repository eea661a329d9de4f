//! OpsWorks' load-balancer operations: AttachElasticLoadBalancer, DetachElasticLoadBalancer,
//! DescribeElasticLoadBalancers, over the classic load balancers this server runs
//! (`core::elb`). One load balancer per layer and one layer per load balancer; attaching and
//! detaching run Configure on the stack; the layer's instances are registered when they come
//! online and drained before their Shutdown.

use opsworks_api::{ApiError, shapes};
use opsworks_model::resource::{Layer, LoadBalancer, Stack};
use opsworks_store::Filter;
use serde_json::json;

use super::{Ctx, OpResult, Reply, at_most_one, required};
use crate::core::elb::layers;

/// AttachElasticLoadBalancer.
pub async fn attach_elastic_load_balancer(
    cx: Ctx<'_>,
    req: shapes::AttachElasticLoadBalancerRequest,
) -> OpResult {
    let name = Some(req.elastic_load_balancer_name.clone());
    let name = required(&name, "ElasticLoadBalancerName")?;
    layers::attach(cx.core, name, &req.layer_id).await?;
    Ok(Reply::empty())
}

/// DetachElasticLoadBalancer.
pub async fn detach_elastic_load_balancer(
    cx: Ctx<'_>,
    req: shapes::DetachElasticLoadBalancerRequest,
) -> OpResult {
    let name = Some(req.elastic_load_balancer_name.clone());
    let name = required(&name, "ElasticLoadBalancerName")?;
    layers::detach(cx.core, name, &req.layer_id).await?;
    Ok(Reply::empty())
}

/// DescribeElasticLoadBalancers: the load balancers attached to the stack's layers, or to the
/// layers named.
pub async fn describe_elastic_load_balancers(
    cx: Ctx<'_>,
    req: shapes::DescribeElasticLoadBalancersRequest,
) -> OpResult {
    let layer_ids = req.layer_ids.clone().unwrap_or_default();
    let given = at_most_one(&[
        ("StackId", req.stack_id.is_some()),
        ("LayerIds", !layer_ids.is_empty()),
    ])?;
    let attached: Vec<LoadBalancer> = match given {
        Some("StackId") => {
            let stack = req.stack_id.as_deref().unwrap_or_default();
            cx.core.get::<Stack>(stack).await?;
            cx.core
                .list::<LoadBalancer>(Filter::Stack(stack))
                .await?
                .iter()
                .map(|l| l.to_owned_value())
                .collect()
        }
        Some(_) => {
            let mut out = Vec::new();
            for id in &layer_ids {
                cx.core.get::<Layer>(id).await?;
                out.extend(
                    cx.core
                        .list::<LoadBalancer>(Filter::Parent(id))
                        .await?
                        .iter()
                        .map(|l| l.to_owned_value()),
                );
            }
            out
        }
        None => {
            return Err(ApiError::Validation(
                "Please provide either one or more layer IDs or a stack ID".into(),
            ));
        }
    };
    let region = cx.core.region().to_string();
    let items: Vec<serde_json::Value> = attached
        .iter()
        .map(|lb| {
            json!({
                "ElasticLoadBalancerName": lb.load_balancer_name,
                "Region": region,
                "DnsName": lb.dns_name,
                "StackId": lb.stack_id,
                "LayerId": lb.layer_id,
                "AvailabilityZones": lb.availability_zones,
                "SubnetIds": [],
                "Ec2InstanceIds": lb.instances,
            })
        })
        .collect();
    Reply::json(&json!({"ElasticLoadBalancers": items}))
}

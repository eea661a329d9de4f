//! The stack's load balancers in the configuration every run receives, as the original gave
//! them: `node["opsworks"]["stack"]["elb-load-balancers"]` and each layer's
//! `elb-load-balancers` (`{dns_name, name, layer_id}`), and Chef 12's
//! `aws_opsworks_elastic_load_balancer` data bag.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use opsworks_model::resource::LoadBalancer;

fn entry(lb: &LoadBalancer) -> Value {
    json!({"dns_name": lb.dns_name, "name": lb.load_balancer_name, "layer_id": lb.layer_id})
}

/// The stack's attached load balancers.
pub fn stack_entries(lbs: &[&LoadBalancer]) -> Value {
    Value::Array(lbs.iter().map(|lb| entry(lb)).collect())
}

/// The load balancers attached to one layer (at most one).
pub fn layer_entries(lbs: &[&LoadBalancer], layer_id: &str) -> Value {
    Value::Array(
        lbs.iter()
            .filter(|lb| lb.layer_id.as_deref() == Some(layer_id))
            .map(|lb| entry(lb))
            .collect(),
    )
}

/// Chef 12's data bag: one item per load balancer, by name.
pub fn data_bag(lbs: &[&LoadBalancer]) -> BTreeMap<String, Value> {
    lbs.iter()
        .map(|lb| {
            (
                lb.load_balancer_name.clone(),
                json!({
                    "elastic_load_balancer_name": lb.load_balancer_name,
                    "dns_name": lb.dns_name,
                    "layer_id": lb.layer_id,
                }),
            )
        })
        .collect()
}

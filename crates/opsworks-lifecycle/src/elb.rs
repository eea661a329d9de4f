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

#[cfg(test)]
mod tests {
    use super::*;
    use opsworks_model::resource::{ElbHealthCheck, ElbListener};

    fn lb(name: &str, layer: Option<&str>) -> LoadBalancer {
        LoadBalancer {
            load_balancer_name: name.into(),
            dns_name: "10.217.0.7".into(),
            listeners: vec![ElbListener {
                protocol: "HTTP".into(),
                load_balancer_port: 80,
                instance_protocol: "HTTP".into(),
                instance_port: 80,
            }],
            health_check: ElbHealthCheck {
                target: "TCP:80".into(),
                interval: 30,
                timeout: 5,
                unhealthy_threshold: 2,
                healthy_threshold: 10,
            },
            instances: vec!["local-1".into()],
            availability_zones: vec![],
            scheme: "internet-facing".into(),
            created_time: "2026-12-07T00:00:00Z".into(),
            machine_id: "elb-web-1".into(),
            owner: None,
            layer_id: layer.map(String::from),
            stack_id: layer.map(|_| "s1".to_string()),
        }
    }

    #[test]
    fn entries_name_the_load_balancer_its_address_and_its_layer() {
        let (a, b) = (lb("web", Some("l1")), lb("api", Some("l2")));
        let lbs = vec![&a, &b];
        assert_eq!(
            stack_entries(&lbs),
            json!([
                {"dns_name": "10.217.0.7", "name": "web", "layer_id": "l1"},
                {"dns_name": "10.217.0.7", "name": "api", "layer_id": "l2"},
            ])
        );
        assert_eq!(
            layer_entries(&lbs, "l2"),
            json!([{"dns_name": "10.217.0.7", "name": "api", "layer_id": "l2"}])
        );
        assert_eq!(layer_entries(&lbs, "l3"), json!([]));
        let bag = data_bag(&lbs);
        assert_eq!(bag["web"]["elastic_load_balancer_name"], json!("web"));
        assert_eq!(bag["api"]["layer_id"], json!("l2"));
    }

    #[test]
    fn every_run_carries_the_stacks_load_balancers_as_the_original_did() {
        let stack =
            crate::fixtures::stack(json!({"StackId": "s1", "Name": "shop", "Region": "us-east-1"}));
        let layer = crate::fixtures::layer(
            json!({"LayerId": "l1", "Name": "App", "Shortname": "app", "Type": "custom"}),
        );
        let inst = crate::fixtures::instance(
            json!({"InstanceId": "i1", "Hostname": "app1", "LayerIds": ["l1"], "Status": "online"}),
        );
        let web = lb("web", Some("l1"));
        let snap = crate::StackSnapshot {
            stack: &stack,
            layers: vec![&layer],
            instances: vec![&inst],
            apps: vec![],
            rds: vec![],
            load_balancers: vec![&web],
        };
        let ctx = crate::config::RunContext {
            instance_id: "i1",
            command_id: "c1",
            command: opsworks_model::CommandName::Configure,
            args: None,
            deployment_id: None,
            deployment_json: None,
            deploy_app_ids: &[],
            sent_at: "",
            iam_user_arn: None,
        };
        let a = crate::config::attributes(&snap, &ctx);
        let entry = json!([{"dns_name": "10.217.0.7", "name": "web", "layer_id": "l1"}]);
        assert_eq!(a["opsworks"]["stack"]["elb-load-balancers"], entry);
        assert_eq!(a["opsworks"]["layers"]["app"]["elb-load-balancers"], entry);
        let bags = crate::config::data_bags(&snap, &ctx);
        assert_eq!(
            bags["aws_opsworks_elastic_load_balancer"]["web"]["dns_name"],
            json!("10.217.0.7")
        );
    }
}

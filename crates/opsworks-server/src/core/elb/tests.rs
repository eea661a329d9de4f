//! ELB's input rules, and the store side of load balancers on a server without machines.

use opsworks_model::resource::{ElbHealthCheck, ElbListener, LoadBalancer};

use super::*;
use crate::testkit;

fn listener(proto: &str, lb: u16, instance_proto: &str, instance: u16) -> ElbListener {
    ElbListener {
        protocol: proto.into(),
        load_balancer_port: lb,
        instance_protocol: instance_proto.into(),
        instance_port: instance,
    }
}

#[test]
fn names_follow_elbs_rule() {
    for ok in ["web", "a", "my-lb-2", &"x".repeat(32)] {
        assert!(check_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", "-web", "web-", "web_1", "wéb", &"x".repeat(33)] {
        let e = check_name(bad).unwrap_err();
        assert!(matches!(e, ElbError::Validation(_)), "{bad}: {e}");
    }
}

#[test]
fn listeners_are_http_or_tcp_on_both_sides_each_port_once() {
    let out = check_listeners(vec![listener("http", 80, "", 8080)]).unwrap();
    assert_eq!(out, vec![listener("HTTP", 80, "HTTP", 8080)]);
    assert!(matches!(
        check_listeners(vec![listener("HTTPS", 443, "HTTP", 80)]),
        Err(ElbError::UnsupportedProtocol(_))
    ));
    assert!(matches!(
        check_listeners(vec![listener("UDP", 53, "", 53)]),
        Err(ElbError::Validation(_))
    ));
    assert!(matches!(
        check_listeners(vec![listener("HTTP", 80, "TCP", 80)]),
        Err(ElbError::Configuration(_))
    ));
    assert!(matches!(
        check_listeners(vec![
            listener("TCP", 81, "", 80),
            listener("TCP", 81, "", 82)
        ]),
        Err(ElbError::Configuration(_))
    ));
    assert!(matches!(
        check_listeners(vec![listener("TCP", haproxy::ADMIN_PORT, "", 80)]),
        Err(ElbError::Configuration(_))
    ));
    assert!(check_listeners(vec![]).is_err());
}

#[test]
fn health_checks_follow_elbs_ranges() {
    let hc = ElbHealthCheck {
        target: "HTTP:80/ping".into(),
        interval: 10,
        timeout: 5,
        unhealthy_threshold: 2,
        healthy_threshold: 10,
    };
    assert!(check_health_check(&hc).is_ok());
    let bad = [
        ElbHealthCheck {
            target: "HTTP:80".into(),
            ..hc.clone()
        },
        ElbHealthCheck {
            target: "HTTPS:443/".into(),
            ..hc.clone()
        },
        ElbHealthCheck {
            timeout: 10,
            ..hc.clone()
        },
        ElbHealthCheck {
            interval: 4,
            ..hc.clone()
        },
        ElbHealthCheck {
            healthy_threshold: 11,
            ..hc.clone()
        },
    ];
    for b in bad {
        assert!(check_health_check(&b).is_err(), "{b:?}");
    }
    assert_eq!(
        default_health_check(&[listener("TCP", 80, "TCP", 8080)]).target,
        "TCP:8080"
    );
}

#[tokio::test]
async fn without_machines_nothing_is_made_and_absent_ones_delete_cleanly() {
    let (_dir, core) = testkit::open().await;
    let e = create(
        &core,
        NewLoadBalancer {
            name: "web".into(),
            listeners: vec![listener("HTTP", 80, "", 80)],
            availability_zones: vec![],
            scheme: "internet-facing".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ElbError::Configuration(_)), "{e}");
    assert!(
        core.list::<LoadBalancer>(opsworks_store::Filter::All)
            .await
            .unwrap()
            .is_empty()
    );
    delete(&core, "web").await.unwrap();
    assert!(matches!(
        find(&core, "web").await,
        Err(ElbError::NotFound(n)) if n == "web"
    ));
}

/// A load balancer as the store keeps it (no machine: these tests exercise the records only).
async fn stored(core: &Core, name: &str) {
    let listeners = vec![listener("HTTP", 80, "HTTP", 80)];
    let lb = LoadBalancer {
        load_balancer_name: name.into(),
        dns_name: "10.217.0.99".into(),
        health_check: default_health_check(&listeners),
        listeners,
        instances: vec!["local-gone".into()],
        availability_zones: vec![],
        scheme: "internet-facing".into(),
        created_time: now(),
        machine_id: format!("elb-{name}-test"),
        owner: None,
        layer_id: None,
        stack_id: None,
    };
    let mut w = core.write().await.unwrap();
    w.put(&lb).await.unwrap();
    w.commit().await.unwrap();
}

#[tokio::test]
async fn opsworks_attaches_one_per_layer_and_one_layer_per_load_balancer() {
    let (_dir, core) = testkit::open().await;
    let (sid, lid) = testkit::stack_and_layer(&core).await;
    stored(&core, "web").await;
    stored(&core, "api").await;
    let attach = |name: &'static str, layer: String| {
        let core = core.clone();
        async move {
            testkit::call(
                &core,
                "AttachElasticLoadBalancer",
                serde_json::json!({"ElasticLoadBalancerName": name, "LayerId": layer}),
            )
            .await
        }
    };
    attach("web", lid.clone()).await.unwrap();
    let lb = find(&core, "web").await.unwrap();
    assert_eq!(lb.layer_id.as_deref(), Some(lid.as_str()));
    assert_eq!(lb.stack_id.as_deref(), Some(sid.as_str()));
    // Attaching deregistered what it had; the layer has no online instance yet.
    assert!(lb.instances.is_empty());
    let e = attach("api", lid.clone()).await.unwrap_err();
    assert_eq!(e.code(), "ValidationException");
    assert!(e.message().contains("at most one"), "{}", e.message());
    let e = attach("nope", lid.clone()).await.unwrap_err();
    assert_eq!(e.code(), "ResourceNotFoundException");
    let described = testkit::call(
        &core,
        "DescribeElasticLoadBalancers",
        serde_json::json!({"StackId": sid}),
    )
    .await
    .unwrap();
    assert_eq!(
        described["ElasticLoadBalancers"][0]["DnsName"],
        "10.217.0.99"
    );
    assert_eq!(
        described["ElasticLoadBalancers"][0]["LayerId"],
        lid.as_str()
    );
    testkit::call(
        &core,
        "DetachElasticLoadBalancer",
        serde_json::json!({"ElasticLoadBalancerName": "web", "LayerId": lid}),
    )
    .await
    .unwrap();
    assert!(find(&core, "web").await.unwrap().layer_id.is_none());
    // A load balancer whose layer was deleted is detached by the upkeep's follow pass.
    attach("api", lid.clone()).await.unwrap();
    testkit::call(&core, "DeleteLayer", serde_json::json!({"LayerId": lid}))
        .await
        .unwrap();
    assert!(layers::follow_layer(&core, "api").await.unwrap());
    assert!(find(&core, "api").await.unwrap().layer_id.is_none());
}

#[test]
fn service_machines_are_left_to_their_families_at_start() {
    // `machines::readopt` skips what `appliances::is_appliance` names; a family missing from
    // `FAMILIES` would have its machines destroyed as instance-less at every restart.
    for prefix in [super::MACHINE_PREFIX, crate::core::rds::MACHINE_PREFIX] {
        assert!(crate::core::appliances::is_appliance(&format!(
            "{prefix}web-0123abcd"
        )));
    }
    assert!(!crate::core::appliances::is_appliance(
        "3c1c2f4e-0d6a-4b8e-9a57-0f2f3a1b5c6d"
    ));
}

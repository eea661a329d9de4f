//! The stack configuration every run receives, in both shapes cookbooks expect: Chef 11's node
//! attributes (`node["opsworks"]`, `node["deploy"][app]`) and Chef 12's `aws_opsworks_*` data bags.
//!
//! Inputs are the stored API documents (secrets unfiltered: the instance needs them). Custom JSON
//! merges stack < layer < deployment, over the built-in attributes.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::services;

/// The documents of one stack at the moment a command is created.
#[derive(Debug, Clone, Default)]
pub struct StackSnapshot {
    /// The stack.
    pub stack: Value,
    /// Its layers.
    pub layers: Vec<Value>,
    /// Its instances (all statuses; only online ones are listed as members).
    pub instances: Vec<Value>,
    /// Its apps.
    pub apps: Vec<Value>,
}

/// What the run is for.
#[derive(Debug, Clone, Default)]
pub struct RunContext<'a> {
    /// The instance the run is on.
    pub instance_id: &'a str,
    /// The command's ID.
    pub command_id: &'a str,
    /// The command's type (`setup`, `deploy`, ...).
    pub command: &'a str,
    /// The command's arguments.
    pub args: Option<&'a Value>,
    /// The deployment's ID.
    pub deployment_id: Option<&'a str>,
    /// The deployment's custom JSON, parsed.
    pub deployment_json: Option<&'a Value>,
    /// The apps this run deploys (Setup deploys every app of the instance's layers' stack).
    pub deploy_app_ids: &'a [String],
    /// When the command was sent.
    pub sent_at: &'a str,
    /// The IAM user ARN that created the deployment.
    pub iam_user_arn: Option<&'a str>,
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Merges `over` into `base`: objects recursively, anything else replaced (arrays too, as Chef does
/// across precedence levels).
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn parsed_custom_json(doc: &Value) -> Option<Value> {
    doc.get("CustomJson")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .filter(Value::is_object)
}

fn is_online(i: &Value) -> bool {
    s(i, "Status") == "online"
}

fn layer_ids(i: &Value) -> Vec<&str> {
    i.get("LayerIds")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn instance_attrs(i: &Value, region: &str) -> Value {
    json!({
        "id": s(i, "InstanceId"),
        "hostname": s(i, "Hostname"),
        "ip": i.get("PublicIp").or(i.get("PrivateIp")),
        "private_ip": i.get("PrivateIp"),
        "public_dns_name": i.get("PublicDns"),
        "private_dns_name": i.get("PrivateDns"),
        "aws_instance_id": i.get("Ec2InstanceId"),
        "instance_type": i.get("InstanceType"),
        "architecture": i.get("Architecture"),
        "availability_zone": i.get("AvailabilityZone"),
        "region": region,
        "status": s(i, "Status"),
        "created_at": i.get("CreatedAt"),
    })
}

fn source_attrs(src: Option<&Value>) -> Value {
    match src {
        Some(src) => json!({
            "scm_type": src.get("Type"),
            "repository": src.get("Url"),
            "revision": src.get("Revision"),
            "user": src.get("Username"),
            "password": src.get("Password"),
            "ssh_key": src.get("SshKey"),
        }),
        None => json!({}),
    }
}

fn environment(app: &Value) -> Map<String, Value> {
    app.get("Environment")
        .and_then(Value::as_array)
        .map(|vars| {
            vars.iter()
                .filter_map(|v| {
                    Some((
                        v.get("Key")?.as_str()?.to_string(),
                        v.get("Value").cloned().unwrap_or(Value::Null),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The Chef 11 node attributes of a run.
pub fn attributes(snap: &StackSnapshot, ctx: &RunContext<'_>) -> Value {
    let stack = &snap.stack;
    let region = s(stack, "Region");
    let me = snap
        .instances
        .iter()
        .find(|i| s(i, "InstanceId") == ctx.instance_id);
    let my_layers: Vec<&str> = me.map(layer_ids).unwrap_or_default();

    let mut layers = Map::new();
    for layer in &snap.layers {
        let lid = s(layer, "LayerId");
        let members: Map<String, Value> = snap
            .instances
            .iter()
            .filter(|i| is_online(i) && layer_ids(i).contains(&lid))
            .map(|i| (s(i, "Hostname").to_string(), instance_attrs(i, region)))
            .collect();
        layers.insert(
            s(layer, "Shortname").to_string(),
            json!({"id": lid, "name": s(layer, "Name"), "type": s(layer, "Type"), "instances": members}),
        );
    }
    let mut instance = me
        .map(|i| instance_attrs(i, region))
        .unwrap_or_else(|| json!({}));
    let mut packages: Vec<Value> = Vec::new();
    for l in snap
        .layers
        .iter()
        .filter(|l| my_layers.contains(&s(l, "LayerId")))
    {
        for p in l
            .get("Packages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !packages.contains(p) {
                packages.push(p.clone());
            }
        }
    }
    instance["packages"] = Value::Array(packages);
    instance["layers"] = json!(
        snap.layers
            .iter()
            .filter(|l| my_layers.contains(&s(l, "LayerId")))
            .map(|l| s(l, "Shortname"))
            .collect::<Vec<_>>()
    );

    let cache = services::memcached(&snap.layers, &snap.instances);
    // `deploy` with `{"migrate": ["true"]}` (the console's "Migrate database" for Rails apps).
    let migrate = ctx
        .args
        .and_then(|a| a.get("migrate"))
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|x| x.as_str() == Some("true")));
    let mut deploy = Map::new();
    for app in &snap.apps {
        let short = s(app, "Shortname");
        let env = environment(app);
        let database = services::app_connection(&snap.layers, &snap.instances, app);
        deploy.insert(
            short.to_string(),
            json!({
                "database": database,
                "memcached": cache,
                "application": short,
                "application_type": s(app, "Type"),
                "name": s(app, "Name"),
                "app_id": s(app, "AppId"),
                "deploy_to": format!("/srv/www/{short}"),
                "current_path": format!("/srv/www/{short}/current"),
                "document_root": app.pointer("/Attributes/DocumentRoot"),
                "domains": app.get("Domains").cloned().unwrap_or(json!([])),
                "environment": env.clone(),
                "environment_variables": env,
                "scm": source_attrs(app.get("AppSource")),
                "ssl_support": app.get("EnableSsl").cloned().unwrap_or(json!(false)),
                "ssl_certificate": app.pointer("/SslConfiguration/Certificate"),
                "ssl_certificate_key": app.pointer("/SslConfiguration/PrivateKey"),
                "ssl_certificate_ca": app.pointer("/SslConfiguration/Chain"),
                "keep_releases": 5,
                "rails_env": app
                    .pointer("/Attributes/RailsEnv")
                    .and_then(Value::as_str)
                    .filter(|e| !e.is_empty())
                    .unwrap_or("production"),
                "auto_bundle_on_deploy": app
                    .pointer("/Attributes/AutoBundleOnDeploy")
                    .and_then(Value::as_str)
                    != Some("false"),
                "migrate": migrate,
                "user": "deploy",
                "group": "www-data",
                "deploying": ctx.deploy_app_ids.iter().any(|id| id == s(app, "AppId")),
            }),
        );
    }

    let mut attrs = json!({
        "opsworks": {
            "activity": ctx.command,
            "sent_at": ctx.sent_at,
            "deployment": ctx.deployment_id,
            "agent_version": stack.get("AgentVersion"),
            "stack": {
                "id": s(stack, "StackId"),
                "name": s(stack, "Name"),
                "region": region,
                "vpc_id": stack.get("VpcId"),
                "rds_instances": [],
                "elb-load-balancers": [],
            },
            "layers": layers,
            "instance": instance,
            "applications": snap.apps.iter().map(|a| json!({
                "name": s(a, "Name"),
                "slug_name": s(a, "Shortname"),
                "application_type": s(a, "Type"),
            })).collect::<Vec<_>>(),
        },
        "deploy": deploy,
        "opsworks_custom_cookbooks": {
            "enabled": stack.get("UseCustomCookbooks").cloned().unwrap_or(json!(false)),
            "scm": source_attrs(stack.get("CustomCookbooksSource")),
        },
    });
    if let Some(args) = ctx.args {
        attrs["opsworks"]["command_args"] = args.clone();
    }
    for (k, v) in services::layer_settings(&snap.layers, &snap.apps, &my_layers) {
        attrs[k] = v;
    }
    // Custom JSON: stack < layer(s) < deployment.
    if let Some(j) = parsed_custom_json(stack) {
        deep_merge(&mut attrs, &j);
    }
    for layer in snap
        .layers
        .iter()
        .filter(|l| my_layers.contains(&s(l, "LayerId")))
    {
        if let Some(j) = parsed_custom_json(layer) {
            deep_merge(&mut attrs, &j);
        }
    }
    if let Some(j) = ctx.deployment_json {
        deep_merge(&mut attrs, j);
    }
    attrs
}

fn lower_source(src: Option<&Value>) -> Value {
    match src {
        Some(src) => json!({
            "type": src.get("Type"),
            "url": src.get("Url"),
            "username": src.get("Username"),
            "password": src.get("Password"),
            "ssh_key": src.get("SshKey"),
            "revision": src.get("Revision"),
        }),
        None => Value::Null,
    }
}

/// The Chef 12 data bags of a run: `aws_opsworks_stack`, `_layer`, `_instance` (with `self`),
/// `_app` (with `deploy`) and `_command`, items keyed by ID.
pub fn data_bags(
    snap: &StackSnapshot,
    ctx: &RunContext<'_>,
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let stack = &snap.stack;
    let mut bags: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let sid = s(stack, "StackId");
    bags.entry("aws_opsworks_stack".into()).or_default().insert(
        sid.to_string(),
        json!({
            "id": sid,
            "stack_id": sid,
            "arn": stack.get("Arn"),
            "name": s(stack, "Name"),
            "region": s(stack, "Region"),
            "vpc_id": stack.get("VpcId"),
            "use_custom_cookbooks": stack.get("UseCustomCookbooks").cloned().unwrap_or(json!(false)),
            "custom_cookbooks_source": lower_source(stack.get("CustomCookbooksSource")),
        }),
    );
    let layer_bag = bags.entry("aws_opsworks_layer".into()).or_default();
    for l in &snap.layers {
        let lid = s(l, "LayerId");
        layer_bag.insert(
            lid.to_string(),
            json!({
                "id": lid,
                "layer_id": lid,
                "name": s(l, "Name"),
                "shortname": s(l, "Shortname"),
                "type": s(l, "Type"),
                "packages": l.get("Packages").cloned().unwrap_or(json!([])),
                "volume_configurations": l.get("VolumeConfigurations").cloned().unwrap_or(json!([])),
            }),
        );
    }
    let inst_bag = bags.entry("aws_opsworks_instance".into()).or_default();
    for i in snap
        .instances
        .iter()
        .filter(|i| is_online(i) || s(i, "InstanceId") == ctx.instance_id)
    {
        let iid = s(i, "InstanceId");
        inst_bag.insert(
            iid.to_string(),
            json!({
                "id": iid,
                "instance_id": iid,
                "hostname": s(i, "Hostname"),
                "layer_ids": i.get("LayerIds"),
                "status": s(i, "Status"),
                "private_ip": i.get("PrivateIp"),
                "public_ip": i.get("PublicIp"),
                "private_dns": i.get("PrivateDns"),
                "public_dns": i.get("PublicDns"),
                "instance_type": i.get("InstanceType"),
                "os": i.get("Os"),
                "architecture": i.get("Architecture"),
                "availability_zone": i.get("AvailabilityZone"),
                "root_device_type": i.get("RootDeviceType"),
                "auto_scaling_type": i.get("AutoScalingType"),
                "infrastructure_class": i.get("InfrastructureClass"),
                "created_at": i.get("CreatedAt"),
                "self": iid == ctx.instance_id,
            }),
        );
    }
    let app_bag = bags.entry("aws_opsworks_app".into()).or_default();
    for a in &snap.apps {
        let aid = s(a, "AppId");
        app_bag.insert(
            aid.to_string(),
            json!({
                "id": aid,
                "app_id": aid,
                "name": s(a, "Name"),
                "shortname": s(a, "Shortname"),
                "type": s(a, "Type"),
                "app_source": lower_source(a.get("AppSource")),
                "attributes": a.get("Attributes").cloned().unwrap_or(json!({})),
                "data_sources": a.get("DataSources").cloned().unwrap_or(json!([])),
                "domains": a.get("Domains").cloned().unwrap_or(json!([])),
                "enable_ssl": a.get("EnableSsl").cloned().unwrap_or(json!(false)),
                "environment": Value::Object(environment(a)),
                "ssl_configuration": a.get("SslConfiguration").cloned().unwrap_or(Value::Null),
                "deploy": ctx.deploy_app_ids.iter().any(|id| id == aid),
                // Not in the original's bag (it had RDS bags instead): the connection data of
                // the app's db-master database, as node["deploy"][app]["database"] has it.
                "database": services::app_connection(&snap.layers, &snap.instances, a),
                "memcached": services::memcached(&snap.layers, &snap.instances),
            }),
        );
    }
    bags.entry("aws_opsworks_command".into())
        .or_default()
        .insert(
            ctx.command_id.to_string(),
            json!({
                "id": ctx.command_id,
                "command_id": ctx.command_id,
                "type": ctx.command,
                "args": ctx.args,
                "instance_id": ctx.instance_id,
                "iam_user_arn": ctx.iam_user_arn,
                "sent_at": ctx.sent_at,
            }),
        );
    bags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> StackSnapshot {
        StackSnapshot {
            stack: json!({"StackId": "s1", "Name": "shop", "Region": "us-east-1",
                "CustomJson": "{\"color\": \"red\", \"deep\": {\"a\": 1, \"b\": 1}}"}),
            layers: vec![
                json!({"LayerId": "l1", "Name": "App", "Shortname": "app", "Type": "custom",
                    "CustomJson": "{\"deep\": {\"b\": 2}}"}),
                json!({"LayerId": "l2", "Name": "DB", "Shortname": "db", "Type": "custom"}),
            ],
            instances: vec![
                json!({"InstanceId": "i1", "Hostname": "app1", "LayerIds": ["l1"], "Status": "online", "PrivateIp": "10.0.0.2"}),
                json!({"InstanceId": "i2", "Hostname": "app2", "LayerIds": ["l1"], "Status": "booting"}),
                json!({"InstanceId": "i3", "Hostname": "db1", "LayerIds": ["l2"], "Status": "online"}),
            ],
            apps: vec![
                json!({"AppId": "a1", "Name": "Shop", "Shortname": "shop", "Type": "nodejs",
                "AppSource": {"Type": "git", "Url": "/repo", "Password": "pw"},
                "Environment": [{"Key": "K", "Value": "v", "Secure": true}]}),
            ],
        }
    }

    fn ctx<'a>(instance: &'a str, deploy: &'a [String], dj: Option<&'a Value>) -> RunContext<'a> {
        RunContext {
            instance_id: instance,
            command_id: "c1",
            command: "configure",
            deploy_app_ids: deploy,
            deployment_json: dj,
            ..Default::default()
        }
    }

    #[test]
    fn layers_list_online_instances_and_this_instance_is_described() {
        let snap = snapshot();
        let a = attributes(&snap, &ctx("i2", &[], None));
        let app_members = a["opsworks"]["layers"]["app"]["instances"]
            .as_object()
            .unwrap();
        assert_eq!(app_members.keys().collect::<Vec<_>>(), vec!["app1"]);
        assert_eq!(
            a["opsworks"]["layers"]["app"]["instances"]["app1"]["private_ip"],
            "10.0.0.2"
        );
        assert_eq!(a["opsworks"]["instance"]["hostname"], "app2");
        assert_eq!(a["opsworks"]["instance"]["layers"], json!(["app"]));
        assert_eq!(a["deploy"]["shop"]["deploy_to"], "/srv/www/shop");
        assert_eq!(a["deploy"]["shop"]["environment_variables"]["K"], "v");
        assert_eq!(a["deploy"]["shop"]["scm"]["password"], "pw");
    }

    #[test]
    fn rails_settings_come_from_the_app_and_the_deployment() {
        let mut snap = snapshot();
        let a = attributes(&snap, &ctx("i1", &[], None));
        assert_eq!(a["deploy"]["shop"]["rails_env"], "production");
        assert_eq!(a["deploy"]["shop"]["auto_bundle_on_deploy"], true);
        assert_eq!(a["deploy"]["shop"]["migrate"], false);
        snap.apps[0]["Attributes"] = json!({"RailsEnv": "staging", "AutoBundleOnDeploy": "false"});
        let args = json!({"migrate": ["true"]});
        let mut c = ctx("i1", &[], None);
        c.args = Some(&args);
        let a = attributes(&snap, &c);
        assert_eq!(a["deploy"]["shop"]["rails_env"], "staging");
        assert_eq!(a["deploy"]["shop"]["auto_bundle_on_deploy"], false);
        assert_eq!(a["deploy"]["shop"]["migrate"], true);
    }

    #[test]
    fn custom_json_merges_stack_then_layer_then_deployment() {
        let snap = snapshot();
        let dj = json!({"color": "blue"});
        let a = attributes(&snap, &ctx("i1", &[], Some(&dj)));
        assert_eq!(a["color"], "blue");
        assert_eq!(a["deep"], json!({"a": 1, "b": 2}));
        // An instance outside the layer does not get the layer's JSON.
        let b = attributes(&snap, &ctx("i3", &[], None));
        assert_eq!(b["deep"], json!({"a": 1, "b": 1}));
        assert_eq!(b["color"], "red");
    }

    #[test]
    fn data_bags_mark_self_and_the_apps_to_deploy() {
        let snap = snapshot();
        let deploy = vec!["a1".to_string()];
        let bags = data_bags(&snap, &ctx("i2", &deploy, None));
        let instances = &bags["aws_opsworks_instance"];
        assert_eq!(instances.len(), 3, "online ones plus self");
        assert_eq!(instances["i2"]["self"], true);
        assert_eq!(instances["i1"]["self"], false);
        assert_eq!(bags["aws_opsworks_app"]["a1"]["deploy"], true);
        assert_eq!(bags["aws_opsworks_stack"]["s1"]["name"], "shop");
        assert_eq!(bags["aws_opsworks_command"]["c1"]["type"], "configure");
        assert_eq!(bags["aws_opsworks_layer"].len(), 2);
    }

    #[test]
    fn arrays_are_replaced_not_concatenated() {
        let mut base = json!({"a": [1, 2], "o": {"x": 1}});
        deep_merge(&mut base, &json!({"a": [3], "o": {"y": 2}}));
        assert_eq!(base, json!({"a": [3], "o": {"x": 1, "y": 2}}));
    }
}

//! The stack configuration every run receives, in both shapes cookbooks expect: Chef 11's node
//! attributes (`node["opsworks"]`, `node["deploy"][app]`) and Chef 12's `aws_opsworks_*` data bags.
//!
//! Inputs are the stored resources (secrets unfiltered: the instance needs them). Custom JSON
//! merges stack < layer < deployment, over the built-in attributes.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use opsworks_model::resource::{App, Instance, Layer, Source, Stack};
use opsworks_model::{CommandName, InstanceStatus};

use crate::rds::{self, RdsDatabase};
use crate::services;

/// The resources of one stack at the moment a command is delivered.
#[derive(Debug, Clone)]
pub struct StackSnapshot<'a> {
    /// The stack.
    pub stack: &'a Stack,
    /// Its layers.
    pub layers: Vec<&'a Layer>,
    /// Its instances (all statuses; only online ones are listed as members).
    pub instances: Vec<&'a Instance>,
    /// Its apps.
    pub apps: Vec<&'a App>,
    /// The RDS databases registered with it.
    pub rds: Vec<RdsDatabase<'a>>,
}

/// What the run is for.
#[derive(Debug, Clone)]
pub struct RunContext<'a> {
    /// The instance the run is on.
    pub instance_id: &'a str,
    /// The command's ID.
    pub command_id: &'a str,
    /// The command.
    pub command: CommandName,
    /// The command's arguments.
    pub args: Option<&'a BTreeMap<String, Vec<String>>>,
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

fn parsed_custom_json(text: Option<&str>) -> Option<Value> {
    text.and_then(|s| serde_json::from_str(s).ok())
        .filter(Value::is_object)
}

fn is_online(i: &Instance) -> bool {
    i.status == InstanceStatus::Online
}

fn instance_attrs(i: &Instance, region: &str) -> Value {
    json!({
        "id": i.instance_id,
        "hostname": i.hostname,
        "ip": i.public_ip.as_ref().or(i.private_ip.as_ref()),
        "private_ip": i.private_ip,
        "elastic_ip": i.elastic_ip,
        "public_dns_name": i.public_dns,
        "private_dns_name": i.private_dns,
        "aws_instance_id": i.ec2_instance_id,
        "instance_type": i.instance_type,
        "architecture": i.architecture,
        "availability_zone": i.availability_zone,
        "region": region,
        "status": i.status.as_str(),
        "created_at": i.created_at,
    })
}

fn source_attrs(src: Option<&Source>) -> Value {
    match src {
        Some(src) => json!({
            "scm_type": src.r#type,
            "repository": src.url,
            "revision": src.revision,
            "user": src.username,
            "password": src.password,
            "ssh_key": src.ssh_key,
        }),
        None => json!({}),
    }
}

fn environment(app: &App) -> Map<String, Value> {
    app.environment
        .iter()
        .map(|v| (v.key.clone(), json!(v.value)))
        .collect()
}

impl StackSnapshot<'_> {
    /// The database an app's code uses: its registered RDS database, else its db-master one.
    fn app_database(&self, app: &App) -> Option<Value> {
        rds::app_database(&self.rds, app)
            .or_else(|| services::app_connection(&self.layers, &self.instances, app))
    }

    fn my_layers(&self, instance_id: &str) -> Vec<String> {
        self.instances
            .iter()
            .find(|i| i.instance_id == instance_id)
            .map(|i| i.layer_ids.clone())
            .unwrap_or_default()
    }
}

/// The Chef 11 node attributes of a run.
pub fn attributes(snap: &StackSnapshot<'_>, ctx: &RunContext<'_>) -> Value {
    let stack = snap.stack;
    let region = stack.region.as_str();
    let me = snap
        .instances
        .iter()
        .find(|i| i.instance_id == ctx.instance_id);
    let my_layers = snap.my_layers(ctx.instance_id);

    let mut layers = Map::new();
    for layer in &snap.layers {
        let members: Map<String, Value> = snap
            .instances
            .iter()
            .filter(|i| is_online(i) && i.in_layer(&layer.layer_id))
            .map(|i| (i.hostname.clone(), instance_attrs(i, region)))
            .collect();
        layers.insert(
            layer.shortname.clone(),
            json!({"id": layer.layer_id, "name": layer.name, "type": layer.r#type.as_str(), "instances": members}),
        );
    }
    let mut instance = me
        .map(|i| instance_attrs(i, region))
        .unwrap_or_else(|| json!({}));
    let mine: Vec<&&Layer> = snap
        .layers
        .iter()
        .filter(|l| my_layers.contains(&l.layer_id))
        .collect();
    let mut packages: Vec<&String> = Vec::new();
    for p in mine.iter().flat_map(|l| &l.packages) {
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    instance["packages"] = json!(packages);
    instance["layers"] = json!(mine.iter().map(|l| &l.shortname).collect::<Vec<_>>());

    let cache = services::memcached(&snap.layers, &snap.instances);
    let mut deploy = Map::new();
    for app in &snap.apps {
        let short = app.shortname.as_str();
        let env = environment(app);
        let database = snap.app_database(app);
        let ssl = app.ssl_configuration.as_ref();
        deploy.insert(
            short.to_string(),
            json!({
                "database": database,
                "memcached": cache,
                "application": short,
                "application_type": app.r#type,
                "name": app.name,
                "app_id": app.app_id,
                "deploy_to": format!("/srv/www/{short}"),
                "current_path": format!("/srv/www/{short}/current"),
                "document_root": app.attributes.get("DocumentRoot").cloned().flatten(),
                "domains": app.domains,
                "environment": env.clone(),
                "environment_variables": env,
                "scm": source_attrs(app.app_source.as_ref()),
                "ssl_support": app.enable_ssl,
                "ssl_certificate": ssl.map(|s| &s.certificate),
                "ssl_certificate_key": ssl.map(|s| &s.private_key),
                "ssl_certificate_ca": ssl.and_then(|s| s.chain.as_ref()),
                "keep_releases": 5,
                "user": "deploy",
                "group": "www-data",
                "deploying": ctx.deploy_app_ids.iter().any(|id| *id == app.app_id),
            }),
        );
    }

    let mut attrs = json!({
        "opsworks": {
            "activity": ctx.command.as_str(),
            "sent_at": ctx.sent_at,
            "deployment": ctx.deployment_id,
            "agent_version": stack.agent_version,
            "stack": {
                "id": stack.stack_id,
                "name": stack.name,
                "region": region,
                "vpc_id": stack.vpc_id,
                "rds_instances": rds::rds_instances(&snap.rds),
                "elb-load-balancers": [],
            },
            "layers": layers,
            "instance": instance,
            "applications": snap.apps.iter().map(|a| json!({
                "name": a.name,
                "slug_name": a.shortname,
                "application_type": a.r#type,
            })).collect::<Vec<_>>(),
        },
        "deploy": deploy,
        "opsworks_custom_cookbooks": {
            "enabled": stack.use_custom_cookbooks,
            "scm": source_attrs(stack.custom_cookbooks_source.as_ref()),
        },
    });
    if let Some(args) = ctx.args {
        attrs["opsworks"]["command_args"] = json!(args);
    }
    for (k, v) in services::layer_settings(&snap.layers, &snap.apps, &my_layers) {
        attrs[k] = v;
    }
    // Custom JSON: stack < layer(s) < deployment.
    if let Some(j) = parsed_custom_json(stack.custom_json.as_deref()) {
        deep_merge(&mut attrs, &j);
    }
    for layer in &mine {
        if let Some(j) = parsed_custom_json(layer.custom_json.as_deref()) {
            deep_merge(&mut attrs, &j);
        }
    }
    if let Some(j) = ctx.deployment_json {
        deep_merge(&mut attrs, j);
    }
    attrs
}

fn lower_source(src: Option<&Source>) -> Value {
    match src {
        Some(src) => json!({
            "type": src.r#type,
            "url": src.url,
            "username": src.username,
            "password": src.password,
            "ssh_key": src.ssh_key,
            "revision": src.revision,
        }),
        None => Value::Null,
    }
}

/// The Chef 12 data bags of a run: `aws_opsworks_stack`, `_layer`, `_instance` (with `self`),
/// `_app` (with `deploy`) and `_command`, items keyed by ID.
pub fn data_bags(
    snap: &StackSnapshot<'_>,
    ctx: &RunContext<'_>,
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let stack = snap.stack;
    let mut bags: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let sid = stack.stack_id.as_str();
    bags.entry("aws_opsworks_stack".into()).or_default().insert(
        sid.to_string(),
        json!({
            "id": sid,
            "stack_id": sid,
            "arn": stack.arn,
            "name": stack.name,
            "region": stack.region,
            "vpc_id": stack.vpc_id,
            "use_custom_cookbooks": stack.use_custom_cookbooks,
            "custom_cookbooks_source": lower_source(stack.custom_cookbooks_source.as_ref()),
        }),
    );
    let layer_bag = bags.entry("aws_opsworks_layer".into()).or_default();
    for l in &snap.layers {
        layer_bag.insert(
            l.layer_id.clone(),
            json!({
                "id": l.layer_id,
                "layer_id": l.layer_id,
                "name": l.name,
                "shortname": l.shortname,
                "type": l.r#type.as_str(),
                "packages": l.packages,
                "volume_configurations": l.volume_configurations,
            }),
        );
    }
    let inst_bag = bags.entry("aws_opsworks_instance".into()).or_default();
    for i in snap
        .instances
        .iter()
        .filter(|i| is_online(i) || i.instance_id == ctx.instance_id)
    {
        let iid = i.instance_id.as_str();
        inst_bag.insert(
            iid.to_string(),
            json!({
                "id": iid,
                "instance_id": iid,
                "hostname": i.hostname,
                "layer_ids": i.layer_ids,
                "status": i.status.as_str(),
                "private_ip": i.private_ip,
                "public_ip": i.public_ip,
                "elastic_ip": i.elastic_ip,
                "private_dns": i.private_dns,
                "public_dns": i.public_dns,
                "instance_type": i.instance_type,
                "os": i.os,
                "architecture": i.architecture,
                "availability_zone": i.availability_zone,
                "root_device_type": i.root_device_type.as_str(),
                "auto_scaling_type": i.auto_scaling_type.map(|t| t.as_str()),
                "infrastructure_class": i.infrastructure_class,
                "created_at": i.created_at,
                "self": iid == ctx.instance_id,
            }),
        );
    }
    let app_bag = bags.entry("aws_opsworks_app".into()).or_default();
    for a in &snap.apps {
        let aid = a.app_id.as_str();
        app_bag.insert(
            aid.to_string(),
            json!({
                "id": aid,
                "app_id": aid,
                "name": a.name,
                "shortname": a.shortname,
                "type": a.r#type,
                "app_source": lower_source(a.app_source.as_ref()),
                "attributes": a.attributes,
                "data_sources": rds::data_sources(a),
                "domains": a.domains,
                "enable_ssl": a.enable_ssl,
                "environment": Value::Object(environment(a)),
                "ssl_configuration": a.ssl_configuration,
                "deploy": ctx.deploy_app_ids.iter().any(|id| id == aid),
                // Not in the original's bag (it had the RDS bag and data_sources instead): the
                // connection data of the app's database, as node["deploy"][app]["database"] has it.
                "database": snap.app_database(a),
                "memcached": services::memcached(&snap.layers, &snap.instances),
            }),
        );
    }
    bags.insert(
        "aws_opsworks_rds_db_instance".into(),
        rds::data_bag(&snap.rds),
    );
    bags.entry("aws_opsworks_command".into())
        .or_default()
        .insert(
            ctx.command_id.to_string(),
            json!({
                "id": ctx.command_id,
                "command_id": ctx.command_id,
                "type": ctx.command.as_str(),
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
    use crate::fixtures;

    struct Owned {
        stack: Stack,
        layers: Vec<Layer>,
        instances: Vec<Instance>,
        apps: Vec<App>,
    }

    impl Owned {
        fn snap(&self) -> StackSnapshot<'_> {
            StackSnapshot {
                stack: &self.stack,
                layers: self.layers.iter().collect(),
                instances: self.instances.iter().collect(),
                apps: self.apps.iter().collect(),
                rds: Vec::new(),
            }
        }
    }

    fn owned() -> Owned {
        Owned {
            stack: fixtures::stack(
                json!({"StackId": "s1", "Name": "shop", "Region": "us-east-1",
                "CustomJson": "{\"color\": \"red\", \"deep\": {\"a\": 1, \"b\": 1}}"}),
            ),
            layers: vec![
                fixtures::layer(
                    json!({"LayerId": "l1", "Name": "App", "Shortname": "app", "Type": "custom",
                    "CustomJson": "{\"deep\": {\"b\": 2}}"}),
                ),
                fixtures::layer(
                    json!({"LayerId": "l2", "Name": "DB", "Shortname": "db", "Type": "custom"}),
                ),
            ],
            instances: vec![
                fixtures::instance(
                    json!({"InstanceId": "i1", "Hostname": "app1", "LayerIds": ["l1"], "Status": "online", "PrivateIp": "10.0.0.2"}),
                ),
                fixtures::instance(
                    json!({"InstanceId": "i2", "Hostname": "app2", "LayerIds": ["l1"], "Status": "booting"}),
                ),
                fixtures::instance(
                    json!({"InstanceId": "i3", "Hostname": "db1", "LayerIds": ["l2"], "Status": "online"}),
                ),
            ],
            apps: vec![fixtures::app(
                json!({"AppId": "a1", "Name": "Shop", "Shortname": "shop", "Type": "nodejs",
                "AppSource": {"Type": "git", "Url": "/repo", "Password": "pw"},
                "Environment": [{"Key": "K", "Value": "v", "Secure": true}]}),
            )],
        }
    }

    fn ctx<'a>(instance: &'a str, deploy: &'a [String], dj: Option<&'a Value>) -> RunContext<'a> {
        RunContext {
            instance_id: instance,
            command_id: "c1",
            command: CommandName::Configure,
            args: None,
            deployment_id: None,
            deployment_json: dj,
            deploy_app_ids: deploy,
            sent_at: "",
            iam_user_arn: None,
        }
    }

    #[test]
    fn layers_list_online_instances_and_this_instance_is_described() {
        let o = owned();
        let snap = o.snap();
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
    fn custom_json_merges_stack_then_layer_then_deployment() {
        let o = owned();
        let snap = o.snap();
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
        let o = owned();
        let snap = o.snap();
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

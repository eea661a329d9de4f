//! What the API shows of each resource: one function per resource from the typed resource to the
//! service model's shape, secrets as `*****FILTERED*****`, private members left out. Nothing else
//! in the server decides what a resource looks like on the wire.
//!
//! Nested value objects whose stored form is the wire's by construction (recipe lists, volume
//! configurations, log streams, block devices) are carried over member by member through serde
//! ([`same_shape`]); everything a resource adds, hides or filters is spelled out here.

use serde::Serialize;
use serde::de::DeserializeOwned;

use opsworks_api::{FILTERED, shapes};
use opsworks_model::layer::full_attributes;
use opsworks_model::resource::{
    App, Command, DbInstance, Deployment, Ec2Volume, ElasticIp, Instance, Layer, RdsDbInstance,
    ServiceError, Source, Stack, Volume,
};

/// A stored value object as its wire shape, the two having the same members by construction.
fn same_shape<T: Serialize, U: DeserializeOwned + Default>(value: &T) -> U {
    // Both sides are this crate's types with matching member names: a mismatch is a bug caught by
    // the tests, and the default keeps an answer going rather than failing the request.
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .unwrap_or_default()
}

/// A secret as shown: the marker when set and not empty.
fn filtered(secret: &Option<String>) -> Option<String> {
    match secret.as_deref() {
        Some(s) if !s.is_empty() => Some(FILTERED.to_string()),
        other => other.map(String::from),
    }
}

/// A source (cookbooks, an app's code) with its password and SSH key filtered.
pub fn source(s: &Source) -> shapes::Source {
    shapes::Source {
        r#type: s.r#type.clone(),
        url: s.url.clone(),
        username: s.username.clone(),
        password: filtered(&s.password),
        ssh_key: filtered(&s.ssh_key),
        revision: s.revision.clone(),
    }
}

/// A stack.
pub fn stack(s: &Stack) -> shapes::Stack {
    shapes::Stack {
        agent_version: Some(s.agent_version.clone()),
        arn: Some(s.arn.clone()),
        attributes: Some(s.attributes.clone()),
        chef_configuration: Some(shapes::ChefConfiguration {
            manage_berkshelf: s.chef_configuration.manage_berkshelf,
            berkshelf_version: s.chef_configuration.berkshelf_version.clone(),
        }),
        configuration_manager: Some(shapes::StackConfigurationManager {
            name: Some(s.configuration_manager.name.clone()),
            version: Some(s.configuration_manager.version.clone()),
        }),
        created_at: Some(s.created_at.clone()),
        custom_cookbooks_source: s.custom_cookbooks_source.as_ref().map(source),
        custom_json: s.custom_json.clone(),
        default_availability_zone: s.default_availability_zone.clone(),
        default_instance_profile_arn: Some(s.default_instance_profile_arn.clone()),
        default_os: Some(s.default_os.clone()),
        default_root_device_type: Some(s.default_root_device_type.as_str().into()),
        default_ssh_key_name: s.default_ssh_key_name.clone(),
        default_subnet_id: s.default_subnet_id.clone(),
        hostname_theme: Some(s.hostname_theme.clone()),
        name: Some(s.name.clone()),
        region: Some(s.region.clone()),
        service_role_arn: Some(s.service_role_arn.clone()),
        stack_id: Some(s.stack_id.clone()),
        use_custom_cookbooks: Some(s.use_custom_cookbooks),
        use_opsworks_security_groups: Some(s.use_opsworks_security_groups),
        vpc_id: s.vpc_id.clone(),
    }
}

/// A layer: every attribute key shown (null where unset), secret attributes filtered.
pub fn layer(l: &Layer) -> shapes::Layer {
    let mut attributes = full_attributes(&l.attributes);
    for secret in opsworks_model::layer::SECRET_ATTRIBUTES {
        if let Some(v) = attributes.get_mut(secret) {
            *v = filtered(v);
        }
    }
    shapes::Layer {
        arn: Some(l.arn.clone()),
        attributes: Some(attributes),
        auto_assign_elastic_ips: Some(l.auto_assign_elastic_ips),
        auto_assign_public_ips: Some(l.auto_assign_public_ips),
        cloud_watch_logs_configuration: l.cloud_watch_logs_configuration.as_ref().map(same_shape),
        created_at: Some(l.created_at.clone()),
        custom_instance_profile_arn: l.custom_instance_profile_arn.clone(),
        custom_json: l.custom_json.clone(),
        custom_recipes: Some(same_shape(&l.custom_recipes)),
        custom_security_group_ids: Some(l.custom_security_group_ids.clone()),
        default_recipes: Some(same_shape(&l.default_recipes)),
        default_security_group_names: Some(l.default_security_group_names.clone()),
        enable_auto_healing: Some(l.enable_auto_healing),
        install_updates_on_boot: Some(l.install_updates_on_boot),
        layer_id: Some(l.layer_id.clone()),
        lifecycle_event_configuration: Some(same_shape(&l.lifecycle_event_configuration)),
        name: Some(l.name.clone()),
        packages: Some(l.packages.clone()),
        shortname: Some(l.shortname.clone()),
        stack_id: Some(l.stack_id.clone()),
        r#type: Some(l.r#type.as_str().into()),
        use_ebs_optimized_instances: Some(l.use_ebs_optimized_instances),
        volume_configurations: Some(l.volume_configurations.iter().map(same_shape).collect()),
    }
}

/// An instance.
pub fn instance(i: &Instance) -> shapes::Instance {
    shapes::Instance {
        agent_version: Some(i.agent_version.clone()),
        ami_id: i.ami_id.clone(),
        architecture: Some(i.architecture.clone()),
        arn: Some(i.arn.clone()),
        auto_scaling_type: i.auto_scaling_type.map(|t| t.as_str().into()),
        availability_zone: i.availability_zone.clone(),
        block_device_mappings: i
            .block_device_mappings
            .as_ref()
            .map(|b| b.iter().map(same_shape).collect()),
        created_at: Some(i.created_at.clone()),
        ebs_optimized: Some(i.ebs_optimized),
        ec2_instance_id: i.ec2_instance_id.clone(),
        ecs_cluster_arn: i.ecs_cluster_arn.clone(),
        ecs_container_instance_arn: i.ecs_container_instance_arn.clone(),
        elastic_ip: i.elastic_ip.clone(),
        hostname: Some(i.hostname.clone()),
        infrastructure_class: Some(i.infrastructure_class.clone()),
        install_updates_on_boot: Some(i.install_updates_on_boot),
        instance_id: Some(i.instance_id.clone()),
        instance_profile_arn: i.instance_profile_arn.clone(),
        // Registered machines have no instance type.
        instance_type: Some(i.instance_type.clone()).filter(|t| !t.is_empty()),
        last_service_error_id: i.last_service_error_id.clone(),
        layer_ids: Some(i.layer_ids.clone()),
        os: Some(i.os.clone()),
        platform: i.platform.clone(),
        private_dns: i.private_dns.clone(),
        private_ip: i.private_ip.clone(),
        public_dns: i.public_dns.clone(),
        public_ip: i.public_ip.clone(),
        registered_by: i.registered_by.clone(),
        reported_agent_version: i.reported_agent_version.clone(),
        reported_os: i.reported_os.as_ref().map(|o| shapes::ReportedOs {
            family: o.family.clone(),
            name: o.name.clone(),
            version: o.version.clone(),
        }),
        root_device_type: Some(i.root_device_type.as_str().into()),
        root_device_volume_id: i.root_device_volume_id.clone(),
        security_group_ids: i.security_group_ids.clone(),
        ssh_host_dsa_key_fingerprint: i.ssh_host_dsa_key_fingerprint.clone(),
        ssh_host_rsa_key_fingerprint: i.ssh_host_rsa_key_fingerprint.clone(),
        ssh_key_name: i.ssh_key_name.clone(),
        stack_id: Some(i.stack_id.clone()),
        status: Some(i.status.as_str().into()),
        subnet_id: i.subnet_id.clone(),
        tenancy: Some(i.tenancy.clone()),
        virtualization_type: Some(i.virtualization_type.clone()),
    }
}

/// A DB instance registered with a stack, with what the RDS catalog says of it (`None`: it is
/// gone, `MissingOnRds`); its password filtered.
pub fn rds_db_instance(r: &RdsDbInstance, db: Option<&DbInstance>) -> shapes::RdsDbInstance {
    shapes::RdsDbInstance {
        rds_db_instance_arn: Some(r.rds_db_instance_arn.clone()),
        db_instance_identifier: Some(r.db_instance_identifier.clone()),
        db_user: Some(r.db_user.clone()),
        db_password: Some(FILTERED.to_string()),
        region: Some(r.region.clone()),
        address: db
            .and_then(|d| d.address.clone())
            .or_else(|| r.address.clone()),
        engine: db.map(|d| d.engine.clone()).or_else(|| r.engine.clone()),
        stack_id: Some(r.stack_id.clone()),
        missing_on_rds: Some(db.is_none()),
    }
}

/// An app: its source's secrets, its SSL private key and its secure environment values filtered.
/// An app without a source or SSL shows them as `{}`, as the original did.
pub fn app(a: &App) -> shapes::App {
    shapes::App {
        app_id: Some(a.app_id.clone()),
        app_source: Some(a.app_source.as_ref().map(source).unwrap_or_default()),
        attributes: Some(a.attributes.clone()),
        created_at: Some(a.created_at.clone()),
        data_sources: Some(
            a.data_sources
                .iter()
                .map(|d| shapes::DataSource {
                    r#type: d.r#type.clone(),
                    arn: d.arn.clone(),
                    database_name: d.database_name.clone(),
                })
                .collect(),
        ),
        description: a.description.clone(),
        domains: Some(a.domains.clone()),
        enable_ssl: Some(a.enable_ssl),
        environment: Some(
            a.environment
                .iter()
                .map(|v| shapes::EnvironmentVariable {
                    key: Some(v.key.clone()),
                    value: Some(if v.secure {
                        FILTERED.to_string()
                    } else {
                        v.value.clone()
                    }),
                    secure: Some(v.secure),
                })
                .collect(),
        ),
        name: Some(a.name.clone()),
        shortname: Some(a.shortname.clone()),
        ssl_configuration: Some(
            a.ssl_configuration
                .as_ref()
                .map(|s| shapes::SslConfiguration {
                    certificate: Some(s.certificate.clone()).filter(|c| !c.is_empty()),
                    private_key: filtered(&Some(s.private_key.clone())).filter(|k| !k.is_empty()),
                    chain: s.chain.clone(),
                })
                .unwrap_or_default(),
        ),
        stack_id: Some(a.stack_id.clone()),
        r#type: Some(a.r#type.clone()),
    }
}

/// A deployment as shown: the model's shape, and the commits its apps resolved to (a member
/// botocore does not know and ignores; the console and scripts reading the JSON see it).
#[derive(Debug, serde::Serialize)]
pub struct DeploymentOut {
    /// The model's members.
    #[serde(flatten)]
    pub base: shapes::Deployment,
    /// App ID → commit.
    #[serde(
        rename = "Revisions",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub revisions: std::collections::BTreeMap<String, String>,
}

/// A deployment.
pub fn deployment(d: &Deployment) -> DeploymentOut {
    DeploymentOut {
        base: deployment_shape(d),
        revisions: d.revisions.clone(),
    }
}

fn deployment_shape(d: &Deployment) -> shapes::Deployment {
    shapes::Deployment {
        app_id: d.app_id.clone(),
        command: Some(shapes::DeploymentCommand {
            name: Some(d.command.name.as_str().into()),
            args: Some(d.command.args.clone()),
        }),
        comment: d.comment.clone(),
        completed_at: d.completed_at.clone(),
        created_at: Some(d.created_at.clone()),
        custom_json: d.custom_json.clone(),
        deployment_id: Some(d.deployment_id.clone()),
        duration: d.duration,
        iam_user_arn: d.iam_user_arn.clone(),
        instance_ids: Some(d.instance_ids.clone()),
        stack_id: Some(d.stack_id.clone()),
        status: Some(d.status.as_str().into()),
    }
}

/// A command, with the signed link to its log when it has one.
pub fn command(c: &Command, log_url: Option<String>) -> shapes::Command {
    shapes::Command {
        acknowledged_at: c.acknowledged_at.clone(),
        command_id: Some(c.command_id.clone()),
        completed_at: c.completed_at.clone(),
        created_at: Some(c.created_at.clone()),
        deployment_id: Some(c.deployment_id.clone()),
        exit_code: c.exit_code,
        instance_id: Some(c.instance_id.clone()),
        log_url,
        status: Some(c.status.as_str().into()),
        r#type: Some(c.r#type.as_str().into()),
    }
}

/// A service error.
pub fn service_error(e: &ServiceError) -> shapes::ServiceError {
    shapes::ServiceError {
        created_at: Some(e.created_at.clone()),
        instance_id: e.instance_id.clone(),
        message: Some(e.message.clone()),
        service_error_id: Some(e.service_error_id.clone()),
        stack_id: Some(e.stack_id.clone()),
        r#type: Some(e.r#type.clone()),
    }
}

/// A registered Elastic IP.
pub fn elastic_ip(e: &ElasticIp) -> shapes::ElasticIp {
    shapes::ElasticIp {
        domain: Some(e.domain.clone()),
        instance_id: e.instance_id.clone(),
        ip: Some(e.ip.clone()),
        name: e.name.clone(),
        region: Some(e.region.clone()),
    }
}

/// A registered volume, with what its EC2 volume says of it (`Status` is EC2's: `in-use` while
/// assigned, else `available`).
pub fn volume(v: &Volume, ec2: Option<&Ec2Volume>, region: &str) -> shapes::Volume {
    shapes::Volume {
        availability_zone: ec2.map(|e| e.availability_zone.clone()),
        device: v.device.clone(),
        ec2_volume_id: Some(v.ec2_volume_id.clone()),
        encrypted: Some(false),
        instance_id: v.instance_id.clone(),
        iops: ec2.and_then(|e| e.iops),
        mount_point: v.mount_point.clone(),
        name: v.name.clone(),
        raid_array_id: v.raid_array_id.clone(),
        region: Some(region.to_string()),
        size: ec2.map(|e| e.size),
        status: Some(
            if v.instance_id.is_some() {
                "in-use"
            } else {
                "available"
            }
            .into(),
        ),
        volume_id: Some(v.volume_id.clone()),
        volume_type: ec2.map(|e| e.volume_type.clone()),
    }
}

/// The serialized form of a resource's wire shape (for answers listing many resources, cached
/// per resource by the store).
pub fn bytes<T: Serialize>(shape: &T) -> Vec<u8> {
    // The shapes are plain data with string keys: serialization cannot fail.
    serde_json::to_vec(shape).unwrap_or_else(|_| b"{}".to_vec())
}

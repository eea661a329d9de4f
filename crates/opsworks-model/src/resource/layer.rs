//! A layer: a role instances take, with its recipes, packages, volumes and scaling settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Kind, Resource};
use crate::layer::{self as rules, LayerType};
use crate::scaling::Direction;

/// A layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Layer {
    /// Its ID.
    pub layer_id: String,
    /// Its stack.
    pub stack_id: String,
    /// Its ARN.
    pub arn: String,
    /// Its type.
    pub r#type: LayerType,
    /// Its name.
    pub name: String,
    /// Its short name (the instances' hostnames and the recipes' `layers` key).
    pub shortname: String,
    /// The type's attributes as given (secrets inside); unset ones absent.
    #[serde(default)]
    pub attributes: BTreeMap<String, Option<String>>,
    /// Where instances ship logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_logs_configuration: Option<CloudWatchLogsConfiguration>,
    /// The instance profile its instances get, over the stack's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_instance_profile_arn: Option<String>,
    /// Custom JSON merged into its instances' runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_json: Option<String>,
    /// Extra security groups.
    #[serde(default)]
    pub custom_security_group_ids: Vec<String>,
    /// Packages its instances install.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Volumes each of its instances gets.
    #[serde(default)]
    pub volume_configurations: Vec<VolumeConfiguration>,
    /// Whether silent instances are healed.
    #[serde(default)]
    pub enable_auto_healing: bool,
    /// Whether instances get Elastic IPs automatically.
    #[serde(default)]
    pub auto_assign_elastic_ips: bool,
    /// Whether instances get public IPs automatically.
    #[serde(default)]
    pub auto_assign_public_ips: bool,
    /// The built-in recipes of its type, per event.
    #[serde(default)]
    pub default_recipes: RecipeLists,
    /// The user's recipes, per event, run after the built-in ones.
    #[serde(default)]
    pub custom_recipes: RecipeLists,
    /// The type's security group.
    #[serde(default)]
    pub default_security_group_names: Vec<String>,
    /// When it was created.
    pub created_at: String,
    /// Whether instances install OS updates at boot.
    #[serde(default)]
    pub install_updates_on_boot: bool,
    /// Whether instances are EBS-optimized.
    #[serde(default)]
    pub use_ebs_optimized_instances: bool,
    /// The Shutdown event's settings.
    #[serde(default)]
    pub lifecycle_event_configuration: LifecycleEventConfiguration,
    /// Load-based scaling settings (SetLoadBasedAutoScaling), when ever set.
    #[serde(
        rename = "_LoadBasedAutoScaling",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub load_based_auto_scaling: Option<LoadBasedScaling>,
    /// The last load-based scaling event, so a restart remembers it.
    #[serde(
        rename = "_LastScaling",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_scaling: Option<LastScalingRecord>,
}

impl Layer {
    /// A layer of `layer_type` with the type's defaults (recipes, security group, auto healing on,
    /// a 120 s Shutdown), before the request's own members.
    pub fn with_defaults(
        layer_type: LayerType,
        layer_id: String,
        stack_id: String,
        arn: String,
        created_at: String,
    ) -> Self {
        Self {
            layer_id,
            stack_id,
            arn,
            r#type: layer_type,
            name: String::new(),
            shortname: String::new(),
            attributes: BTreeMap::new(),
            cloud_watch_logs_configuration: None,
            custom_instance_profile_arn: None,
            custom_json: None,
            custom_security_group_ids: Vec::new(),
            packages: Vec::new(),
            volume_configurations: Vec::new(),
            enable_auto_healing: true,
            auto_assign_elastic_ips: false,
            auto_assign_public_ips: false,
            default_recipes: RecipeLists::from(&layer_type.default_recipes()),
            custom_recipes: RecipeLists::default(),
            default_security_group_names: vec![layer_type.security_group_name().to_string()],
            created_at,
            install_updates_on_boot: true,
            use_ebs_optimized_instances: false,
            lifecycle_event_configuration: LifecycleEventConfiguration::default(),
            load_based_auto_scaling: None,
            last_scaling: None,
        }
    }

    /// An attribute's value, when set and not empty.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .get(key)
            .and_then(|v| v.as_deref())
            .filter(|v| !v.is_empty())
    }

    /// The Shutdown event's timeout, in seconds.
    pub fn shutdown_timeout(&self) -> u64 {
        self.lifecycle_event_configuration
            .shutdown
            .execution_timeout
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(u64::from(rules::DEFAULT_SHUTDOWN_TIMEOUT_SECS))
    }
}

impl Resource for Layer {
    const KIND: Kind = Kind::Layer;
    fn id(&self) -> &str {
        &self.layer_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        self.attributes
            .iter_mut()
            .filter(|(k, _)| rules::SECRET_ATTRIBUTES.contains(&k.as_str()))
            .filter_map(|(_, v)| v.as_mut())
            .collect()
    }
}

/// Recipe lists of the five lifecycle events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecipeLists {
    /// Setup.
    #[serde(default)]
    pub setup: Vec<String>,
    /// Configure.
    #[serde(default)]
    pub configure: Vec<String>,
    /// Deploy.
    #[serde(default)]
    pub deploy: Vec<String>,
    /// Undeploy.
    #[serde(default)]
    pub undeploy: Vec<String>,
    /// Shutdown.
    #[serde(default)]
    pub shutdown: Vec<String>,
}

impl RecipeLists {
    /// Every recipe named, all events.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.setup
            .iter()
            .chain(&self.configure)
            .chain(&self.deploy)
            .chain(&self.undeploy)
            .chain(&self.shutdown)
    }
}

impl From<&rules::Recipes> for RecipeLists {
    fn from(r: &rules::Recipes) -> Self {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self {
            setup: own(&r.setup),
            configure: own(&r.configure),
            deploy: own(&r.deploy),
            undeploy: own(&r.undeploy),
            shutdown: own(&r.shutdown),
        }
    }
}

/// A volume each instance of the layer gets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeConfiguration {
    /// Where it is mounted.
    pub mount_point: String,
    /// RAID level of an array of disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raid_level: Option<i64>,
    /// How many disks.
    pub number_of_disks: i64,
    /// Size in GiB.
    pub size: i64,
    /// `standard`, `io1`, `gp2`, `st1`, `sc1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    /// Provisioned IOPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    /// Whether encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
}

/// The Shutdown event's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleEventConfiguration {
    /// Shutdown.
    #[serde(default)]
    pub shutdown: ShutdownEventConfiguration,
}

impl Default for LifecycleEventConfiguration {
    fn default() -> Self {
        Self {
            shutdown: ShutdownEventConfiguration {
                execution_timeout: Some(i64::from(rules::DEFAULT_SHUTDOWN_TIMEOUT_SECS)),
                delay_until_elb_connections_drained: Some(false),
            },
        }
    }
}

/// How long Shutdown may run, and whether it waits for load balancers to drain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShutdownEventConfiguration {
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_timeout: Option<i64>,
    /// Whether to wait for connection draining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_until_elb_connections_drained: Option<bool>,
}

/// CloudWatch Logs settings (stored and shown; there is no CloudWatch here).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CloudWatchLogsConfiguration {
    /// Whether enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The log streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_streams: Option<Vec<CloudWatchLogsLogStream>>,
}

/// One CloudWatch Logs stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CloudWatchLogsLogStream {
    /// Log group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group_name: Option<String>,
    /// Timestamp format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime_format: Option<String>,
    /// `LOCAL` or `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Lines identifying the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_fingerprint_lines: Option<String>,
    /// Where a multi-line message starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_line_start_pattern: Option<String>,
    /// `start_of_file` or `end_of_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_position: Option<String>,
    /// The file's encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Milliseconds to buffer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_duration: Option<i64>,
    /// Events per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_count: Option<i64>,
    /// Bytes per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<i64>,
}

/// A layer's load-based scaling settings, as SetLoadBasedAutoScaling stored them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoadBasedScaling {
    /// Whether it acts.
    #[serde(default)]
    pub enable: bool,
    /// When to start instances.
    #[serde(default)]
    pub up_scaling: ScalingThresholds,
    /// When to stop instances.
    #[serde(default)]
    pub down_scaling: ScalingThresholds,
}

/// One direction's thresholds (the API's `AutoScalingThresholds`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingThresholds {
    /// Instances started or stopped per event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<i64>,
    /// Minutes past the threshold before acting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds_wait_time: Option<i64>,
    /// Minutes metrics are ignored after an event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_metrics_time: Option<i64>,
    /// CPU percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_threshold: Option<f64>,
    /// Memory percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_threshold: Option<f64>,
    /// 1-minute load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_threshold: Option<f64>,
    /// CloudWatch alarms (stored, not evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Vec<String>>,
}

/// The last load-based scaling event of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LastScalingRecord {
    /// When (AWS timestamp).
    pub at: String,
    /// Which way.
    pub direction: Direction,
}

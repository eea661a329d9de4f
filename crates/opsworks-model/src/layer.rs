//! Layer types and what each one brings: built-in recipes per lifecycle event, security group
//! names, the defaults of a new layer, and the rules on names, short names, attributes and volumes.
//!
//! The recipe names are those of this project's own built-in cookbooks. They follow the original's
//! Chef 11 run lists (`shared/reference/opsworks.md` §1.2) minus what only made sense there: the
//! Ganglia client on every instance, the MySQL client everywhere and the agent self-update recipe.

use std::fmt;
use std::str::FromStr;

use crate::resource::{CloudWatchLogsConfiguration, VolumeConfiguration};

/// A layer's attributes: name → value, unset ones absent or `None`.
pub type Attributes = std::collections::BTreeMap<String, Option<String>>;

/// A layer type, as the API spells it in `Layer.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerType {
    /// `aws-flow-ruby`: SWF activity and workflow workers.
    AwsFlowRuby,
    /// `ecs-cluster`: Docker plus the ECS agent.
    EcsCluster,
    /// `java-app`: Tomcat and a JDK.
    JavaApp,
    /// `lb`: HAProxy in front of the app layers.
    Lb,
    /// `web`: static web server (nginx).
    Web,
    /// `php-app`: PHP (the original's Apache with mod_php; ours nginx with PHP-FPM).
    PhpApp,
    /// `rails-app`: Apache with Passenger, or nginx with Unicorn.
    RailsApp,
    /// `nodejs-app`: Node.js apps under monit.
    NodejsApp,
    /// `memcached`: a memcached server.
    Memcached,
    /// `db-master`: a MySQL server.
    DbMaster,
    /// `monitoring-master`: a Ganglia server.
    MonitoringMaster,
    /// `custom`: only the common recipes; the user brings the rest.
    Custom,
}

/// Why a layer request was refused. Messages name the member at fault, as AWS's do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// Not one of the twelve types.
    #[error("unknown layer type {0}")]
    UnknownType(String),
    /// `Name` empty or longer than [`MAX_NAME_LEN`].
    #[error("Name must be 1 to 32 characters long; '{0}' is not")]
    BadName(String),
    /// `Shortname` empty, too long or with characters outside `[a-z0-9-_.]`.
    #[error(
        "Shortname '{0}' is invalid: it must be 1 to 32 characters of lower-case letters, digits, '-', '_' and '.'"
    )]
    BadShortname(String),
    /// A key of `Attributes` that `LayerAttributesKeys` does not have.
    #[error("unknown layer attribute {0}")]
    UnknownAttribute(String),
    /// An attribute value of the wrong form.
    #[error("invalid value '{value}' for layer attribute {key}: {expected}")]
    BadAttribute {
        /// The attribute.
        key: String,
        /// The value given.
        value: String,
        /// What it should look like.
        expected: &'static str,
    },
    /// An ecs-cluster layer without its cluster.
    #[error("an ecs-cluster layer needs the EcsClusterArn attribute")]
    MissingEcsClusterArn,
    /// A CloudWatch Logs stream outside the documented ranges.
    #[error("invalid CloudWatchLogsConfiguration log stream {index}: {reason}")]
    BadLogStream {
        /// Its position in `LogStreams`, from 1.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A volume configuration that cannot work.
    #[error("invalid volume configuration for mount point '{mount_point}': {reason}")]
    BadVolume {
        /// The volume's mount point.
        mount_point: String,
        /// What is wrong.
        reason: String,
    },
}

impl LayerType {
    /// Every type, in the order of the model's `LayerType` enum.
    pub const ALL: [LayerType; 12] = [
        Self::AwsFlowRuby,
        Self::EcsCluster,
        Self::JavaApp,
        Self::Lb,
        Self::Web,
        Self::PhpApp,
        Self::RailsApp,
        Self::NodejsApp,
        Self::Memcached,
        Self::DbMaster,
        Self::MonitoringMaster,
        Self::Custom,
    ];

    /// The type as the API spells it (`db-master`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwsFlowRuby => "aws-flow-ruby",
            Self::EcsCluster => "ecs-cluster",
            Self::JavaApp => "java-app",
            Self::Lb => "lb",
            Self::Web => "web",
            Self::PhpApp => "php-app",
            Self::RailsApp => "rails-app",
            Self::NodejsApp => "nodejs-app",
            Self::Memcached => "memcached",
            Self::DbMaster => "db-master",
            Self::MonitoringMaster => "monitoring-master",
            Self::Custom => "custom",
        }
    }

    /// Whether the type is built in: a stack holds at most one layer of each built-in type, and
    /// any number of `custom` layers.
    pub fn is_builtin(self) -> bool {
        self != Self::Custom
    }

    /// The name of the layer's built-in security group (`AWS-OpsWorks-LB-Server`).
    pub fn security_group_name(self) -> &'static str {
        match self {
            Self::AwsFlowRuby => "AWS-OpsWorks-AWS-Flow-Ruby-Server",
            Self::EcsCluster => "AWS-OpsWorks-ECS-Cluster",
            Self::JavaApp => "AWS-OpsWorks-Java-App-Server",
            Self::Lb => "AWS-OpsWorks-LB-Server",
            Self::Web => "AWS-OpsWorks-Web-Server",
            Self::PhpApp => "AWS-OpsWorks-PHP-App-Server",
            Self::RailsApp => "AWS-OpsWorks-Rails-App-Server",
            Self::NodejsApp => "AWS-OpsWorks-nodejs-App-Server",
            Self::Memcached => "AWS-OpsWorks-Memcached-Server",
            Self::DbMaster => "AWS-OpsWorks-DB-Master-Server",
            Self::MonitoringMaster => "AWS-OpsWorks-Monitoring-Master-Server",
            Self::Custom => "AWS-OpsWorks-Custom-Server",
        }
    }

    /// The built-in recipes of the type: the common ones, then the type's own, per event.
    pub fn default_recipes(self) -> Recipes {
        let own = self.own_recipes();
        let join = |common: &[&'static str], own: &[&'static str]| [common, own].concat();
        Recipes {
            setup: join(COMMON_RECIPES.setup, own.setup),
            configure: join(COMMON_RECIPES.configure, own.configure),
            deploy: join(COMMON_RECIPES.deploy, own.deploy),
            undeploy: join(COMMON_RECIPES.undeploy, own.undeploy),
            shutdown: join(COMMON_RECIPES.shutdown, own.shutdown),
        }
    }

    /// The recipes the type adds to the common ones.
    fn own_recipes(self) -> RecipeTable {
        match self {
            Self::Lb => RecipeTable {
                setup: &["haproxy"],
                configure: &["haproxy::configure"],
                deploy: &["haproxy::configure"],
                undeploy: &[],
                shutdown: &["haproxy::stop"],
            },
            Self::RailsApp => RecipeTable {
                setup: &["apache2", "passenger_apache2::rails"],
                configure: &["rails::configure"],
                deploy: &["deploy::rails"],
                undeploy: &["deploy::rails-undeploy"],
                shutdown: &["apache2::stop"],
            },
            // The original ran Apache with mod_php; ours is nginx with PHP-FPM, named honestly.
            Self::PhpApp => RecipeTable {
                setup: &["nginx", "php_fpm"],
                configure: &[],
                deploy: &["deploy::php"],
                undeploy: &["deploy::php-undeploy"],
                shutdown: &["nginx::stop", "php_fpm::stop"],
            },
            Self::NodejsApp => RecipeTable {
                setup: &["opsworks_nodejs", "opsworks_nodejs::npm"],
                configure: &["opsworks_nodejs::configure"],
                deploy: &["deploy::nodejs"],
                undeploy: &["deploy::nodejs-undeploy"],
                shutdown: &["deploy::nodejs-stop"],
            },
            Self::JavaApp => RecipeTable {
                setup: &["opsworks_java::setup"],
                configure: &["opsworks_java::configure"],
                deploy: &["deploy::java"],
                undeploy: &["deploy::java-undeploy"],
                shutdown: &["deploy::java-stop"],
            },
            Self::Web => RecipeTable {
                setup: &["nginx"],
                configure: &[],
                deploy: &["deploy::web"],
                undeploy: &["deploy::web-undeploy"],
                shutdown: &["nginx::stop"],
            },
            Self::AwsFlowRuby => RecipeTable {
                setup: &["opsworks_aws_flow_ruby::setup"],
                configure: &["opsworks_aws_flow_ruby::configure"],
                deploy: &["deploy::aws-flow-ruby"],
                undeploy: &["deploy::aws-flow-ruby-undeploy"],
                shutdown: &[],
            },
            Self::DbMaster => RecipeTable {
                setup: &["mysql::server", "deploy::mysql"],
                configure: &["deploy::mysql"],
                deploy: &["deploy::mysql"],
                undeploy: &[],
                shutdown: &["mysql::stop"],
            },
            Self::Memcached => RecipeTable {
                setup: &["memcached"],
                configure: &[],
                deploy: &[],
                undeploy: &[],
                shutdown: &["memcached::stop"],
            },
            Self::MonitoringMaster => RecipeTable {
                setup: &["opsworks_ganglia::server"],
                configure: &["opsworks_ganglia::configure-server"],
                deploy: &[
                    "opsworks_ganglia::configure-server",
                    "opsworks_ganglia::deploy",
                ],
                undeploy: &[],
                shutdown: &["apache2::stop"],
            },
            Self::EcsCluster => RecipeTable {
                setup: &["opsworks_ecs::setup"],
                configure: &["opsworks_ecs::configure"],
                deploy: &["opsworks_ecs::deploy"],
                undeploy: &["opsworks_ecs::undeploy"],
                shutdown: &["opsworks_ecs::shutdown"],
            },
            Self::Custom => RecipeTable {
                setup: &[],
                configure: &[],
                deploy: &[],
                undeploy: &[],
                shutdown: &[],
            },
        }
    }

    /// The attributes a new layer of this type starts with when the request leaves them out: the
    /// original's built-in settings (HAProxy stats at `/haproxy?stats` for user `opsworks`, the
    /// health check `OPTIONS /`, 512 MB of memcached, ...). Passwords are not here: the server
    /// generates them (see [`generated_secret`](Self::generated_secret)).
    pub fn default_attributes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Lb => &[
                ("EnableHaproxyStats", "true"),
                ("HaproxyStatsUrl", "/haproxy?stats"),
                ("HaproxyStatsUser", "opsworks"),
                ("HaproxyHealthCheckUrl", "/"),
                ("HaproxyHealthCheckMethod", "OPTIONS"),
            ],
            Self::DbMaster => &[("MysqlRootPasswordUbiquitous", "true")],
            Self::Memcached => &[("MemcachedMemory", "512")],
            Self::MonitoringMaster => &[("GangliaUrl", "/ganglia"), ("GangliaUser", "opsworks")],
            _ => &[],
        }
    }

    /// The secret attribute the server must generate for a layer of this type with `attributes`
    /// when it is absent: the MySQL root password of db-master, the stats password of an lb with
    /// stats on, the Ganglia password of monitoring-master.
    pub fn generated_secret(self, attributes: &Attributes) -> Option<&'static str> {
        let missing = |k: &str| {
            attributes
                .get(k)
                .and_then(|v| v.as_deref())
                .is_none_or(str::is_empty)
        };
        let key = match self {
            Self::DbMaster => "MysqlRootPassword",
            Self::Lb
                if attributes
                    .get("EnableHaproxyStats")
                    .and_then(|v| v.as_deref())
                    == Some("true") =>
            {
                "HaproxyStatsPassword"
            }
            Self::MonitoringMaster => "GangliaPassword",
            _ => return None,
        };
        missing(key).then_some(key)
    }
}

impl fmt::Display for LayerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LayerType {
    type Err = LayerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| LayerError::UnknownType(s.to_string()))
    }
}

/// The recipe lists of the five lifecycle events, as in the API's `Recipes` shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipes {
    /// Setup: after the instance boots.
    pub setup: Vec<&'static str>,
    /// Configure: on every instance when any instance enters or leaves online.
    pub configure: Vec<&'static str>,
    /// Deploy: on a deploy command, and after Setup.
    pub deploy: Vec<&'static str>,
    /// Undeploy: on an undeploy command or when an app is deleted.
    pub undeploy: Vec<&'static str>,
    /// Shutdown: when the instance stops.
    pub shutdown: Vec<&'static str>,
}

struct RecipeTable {
    setup: &'static [&'static str],
    configure: &'static [&'static str],
    deploy: &'static [&'static str],
    undeploy: &'static [&'static str],
    shutdown: &'static [&'static str],
}

/// What every layer runs before its own recipes. `opsworks_stack_state_sync` rewrites `/etc/hosts`
/// and the motd from the stack's state, so it runs on Setup and on every Configure; `dependencies`
/// installs the layer's `Packages`.
const COMMON_RECIPES: RecipeTable = RecipeTable {
    // As the original: sshd with the instance's own host keys, then the OpsWorks users'
    // accounts. The original also ran ebs here; EBS volumes are not managed by this server yet.
    setup: &[
        "opsworks_initial_setup",
        "ssh_host_keys",
        "ssh_users",
        "opsworks_stack_state_sync",
        "dependencies",
    ],
    configure: &["opsworks_stack_state_sync"],
    deploy: &["deploy::default"],
    undeploy: &[],
    shutdown: &[],
};

/// The default `ExecutionTimeout` of the Shutdown event, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u32 = 120;

/// The longest layer `Name`.
pub const MAX_NAME_LEN: usize = 32;

/// The longest layer `Shortname`.
pub const MAX_SHORTNAME_LEN: usize = 32;

/// Mount points the built-in recipes use for themselves; a layer volume may not sit on them.
pub const RESERVED_MOUNT_POINTS: [&str; 5] = [
    "/srv/www",
    "/var/www",
    "/var/log/mysql",
    "/var/log/apache2",
    "/var/log/httpd",
];

/// Every key of the API's `LayerAttributesKeys` enum.
pub const ATTRIBUTE_KEYS: [&str; 25] = [
    "EcsClusterArn",
    "EnableHaproxyStats",
    "HaproxyStatsUrl",
    "HaproxyStatsUser",
    "HaproxyStatsPassword",
    "HaproxyHealthCheckUrl",
    "HaproxyHealthCheckMethod",
    "MysqlRootPassword",
    "MysqlRootPasswordUbiquitous",
    "GangliaUrl",
    "GangliaUser",
    "GangliaPassword",
    "MemcachedMemory",
    "NodejsVersion",
    "RubyVersion",
    "RubygemsVersion",
    "ManageBundler",
    "BundlerVersion",
    "RailsStack",
    "PassengerVersion",
    "Jvm",
    "JvmVersion",
    "JvmOptions",
    "JavaAppServer",
    "JavaAppServerVersion",
];

/// The attributes that hold secrets: stored as given, shown as `*****FILTERED*****`.
pub const SECRET_ATTRIBUTES: [&str; 3] = [
    "HaproxyStatsPassword",
    "MysqlRootPassword",
    "GangliaPassword",
];

/// The methods HAProxy's health check may use.
pub const HEALTH_CHECK_METHODS: [&str; 3] = ["OPTIONS", "GET", "HEAD"];

const BOOLEAN_ATTRIBUTES: [&str; 3] = [
    "EnableHaproxyStats",
    "MysqlRootPasswordUbiquitous",
    "ManageBundler",
];

/// Checks a layer `Name`: 1 to 32 characters, not blank.
pub fn check_name(name: &str) -> Result<(), LayerError> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > MAX_NAME_LEN {
        return Err(LayerError::BadName(name.to_string()));
    }
    Ok(())
}

/// Checks a `Shortname` for a layer of `layer_type`: 1 to 32 characters of `[a-z0-9-_.]` (the
/// form AWS documents on UpdateLayer; upper case is refused because the short name becomes part
/// of hostnames and directory names). A built-in layer's short name is the caller's to choose, as
/// in the original (AWS's own CLI example names a php-app layer `myphplayer`); the built-in
/// recipes find layers by type.
pub fn check_shortname(_layer_type: LayerType, shortname: &str) -> Result<(), LayerError> {
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');
    if shortname.is_empty()
        || shortname.len() > MAX_SHORTNAME_LEN
        || !shortname.chars().all(ok_char)
    {
        return Err(LayerError::BadShortname(shortname.to_string()));
    }
    Ok(())
}

/// Checks the `Attributes` of a layer of `layer_type`: known keys, and values of the right form
/// (numbers, booleans as `"true"`/`"false"`, the health check method, an ECS cluster ARN).
/// Null values are allowed: they clear an attribute, as in AWS's own output.
pub fn check_attributes(layer_type: LayerType, attributes: &Attributes) -> Result<(), LayerError> {
    for (key, value) in attributes {
        if !ATTRIBUTE_KEYS.contains(&key.as_str()) {
            return Err(LayerError::UnknownAttribute(key.clone()));
        }
        // Empty (like null) leaves the attribute unset.
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        let is_ecs_arn =
            |v: &str| v.starts_with("arn:") && v.contains(":ecs:") && v.contains(":cluster/");
        let expected = match key.as_str() {
            k if BOOLEAN_ATTRIBUTES.contains(&k) && v != "true" && v != "false" => {
                Some("expected \"true\" or \"false\"")
            }
            "MemcachedMemory" if !v.parse::<u32>().is_ok_and(|n| n > 0) => {
                Some("expected a positive whole number of megabytes")
            }
            "HaproxyHealthCheckMethod" if !HEALTH_CHECK_METHODS.contains(&v) => {
                Some("expected OPTIONS, GET or HEAD")
            }
            "EcsClusterArn" if !is_ecs_arn(v) => {
                Some("expected an ECS cluster ARN (arn:aws:ecs:<region>:<account>:cluster/<name>)")
            }
            _ => None,
        };
        if let Some(expected) = expected {
            return Err(LayerError::BadAttribute {
                key: key.clone(),
                value: v.to_string(),
                expected,
            });
        }
    }
    if layer_type == LayerType::EcsCluster
        && attributes
            .get("EcsClusterArn")
            .and_then(|v| v.as_deref())
            .is_none_or(str::is_empty)
    {
        return Err(LayerError::MissingEcsClusterArn);
    }
    Ok(())
}

/// Checks one entry of `VolumeConfigurations`: an absolute mount point off the reserved ones, at
/// least one disk of at least 1 GiB, a RAID level only with several disks.
pub fn check_volume(volume: &VolumeConfiguration) -> Result<(), LayerError> {
    let mount_point = volume.mount_point.as_str();
    let bad = |reason: String| LayerError::BadVolume {
        mount_point: mount_point.to_string(),
        reason,
    };
    if !mount_point.starts_with('/') || mount_point.len() < 2 {
        return Err(bad("the mount point must be an absolute path".into()));
    }
    let trimmed = mount_point.trim_end_matches('/');
    // A volume on (or under) a directory the built-in recipes manage would hide their files.
    if let Some(r) = RESERVED_MOUNT_POINTS.iter().find(|r| {
        trimmed == **r
            || trimmed
                .strip_prefix(**r)
                .is_some_and(|rest| rest.starts_with('/'))
    }) {
        return Err(bad(format!(
            "{r} is reserved; reserved mount points are {}",
            RESERVED_MOUNT_POINTS.join(", ")
        )));
    }
    if volume.number_of_disks < 1 {
        return Err(bad("NumberOfDisks must be at least 1".into()));
    }
    if volume.size < 1 {
        return Err(bad("Size must be at least 1 (GiB)".into()));
    }
    if let Some(level) = volume.raid_level {
        if !matches!(level, 0 | 1 | 5 | 6 | 10) {
            return Err(bad(format!(
                "RaidLevel {level} is not one of 0, 1, 5, 6, 10"
            )));
        }
        if volume.number_of_disks < 2 {
            return Err(bad("a RAID array needs at least 2 disks".into()));
        }
    }
    let volume_type = volume.volume_type.as_deref().unwrap_or("standard");
    let Some(&(_, min, max)) = VOLUME_SIZES.iter().find(|(t, _, _)| *t == volume_type) else {
        let known: Vec<&str> = VOLUME_SIZES.iter().map(|(t, _, _)| *t).collect();
        return Err(bad(format!(
            "VolumeType {volume_type} is not one of {}",
            known.join(", ")
        )));
    };
    // Size is the whole array's for RAID; each disk must fit the type's range.
    let size = volume.size;
    let disks = volume.number_of_disks.max(1);
    let per_disk = size / disks;
    if per_disk < min || per_disk > max {
        return Err(bad(format!(
            "{volume_type} volumes must be {min} to {max} GiB per disk; this one is {per_disk} GiB"
        )));
    }
    if let Some(iops) = volume.iops
        && (volume_type != "io1" || iops < 1)
    {
        return Err(bad(format!(
            "Iops ({iops}) applies to io1 volumes only and must be positive"
        )));
    }
    Ok(())
}

/// Checks that no two volumes share a mount point.
pub fn check_volumes(volumes: &[VolumeConfiguration]) -> Result<(), LayerError> {
    let mut seen: Vec<&str> = Vec::new();
    for v in volumes {
        check_volume(v)?;
        let mp = v.mount_point.as_str();
        if seen.contains(&mp) {
            return Err(LayerError::BadVolume {
                mount_point: mp.to_string(),
                reason: "two volumes share it".into(),
            });
        }
        seen.push(mp);
    }
    Ok(())
}

/// The EBS volume types with their size range per disk in GiB, as the API documents them.
pub const VOLUME_SIZES: [(&str, i64, i64); 5] = [
    ("standard", 1, 1024),
    ("io1", 4, 16384),
    ("gp2", 1, 16384),
    ("st1", 125, 16384),
    ("sc1", 125, 16384),
];

/// Checks a `CloudWatchLogsConfiguration`: each log stream names a log group (1 to 512 characters
/// of letters, digits, `_`, `-`, `/`, `.`) and files, and stays in the documented ranges
/// (BufferDuration at least 5000 ms, BatchCount up to 10000, BatchSize up to 1 MiB,
/// FileFingerprintLines `n` or `n-m`). The enums (TimeZone, InitialPosition, Encoding) are the
/// service model's to check.
pub fn check_cloudwatch_logs(config: &CloudWatchLogsConfiguration) -> Result<(), LayerError> {
    let streams = config.log_streams.as_deref().unwrap_or_default();
    for (i, stream) in streams.iter().enumerate() {
        let bad = |reason: String| LayerError::BadLogStream {
            index: i + 1,
            reason,
        };
        let group = stream.log_group_name.as_deref().unwrap_or_default();
        let group_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.');
        if group.is_empty() || group.len() > 512 || !group.chars().all(group_char) {
            return Err(bad(format!(
                "LogGroupName '{group}' must be 1 to 512 characters of letters, digits, '_', '-', '/' and '.'"
            )));
        }
        if stream.file.as_deref().is_none_or(|f| f.trim().is_empty()) {
            return Err(bad("File must name the log files to push".into()));
        }
        if let Some(n) = stream.buffer_duration
            && n < 5000
        {
            return Err(bad(format!(
                "BufferDuration must be at least 5000 ms; it is {n}"
            )));
        }
        if let Some(n) = stream.batch_count
            && !(1..=10_000).contains(&n)
        {
            return Err(bad(format!("BatchCount must be 1 to 10000; it is {n}")));
        }
        if let Some(n) = stream.batch_size
            && !(1..=1_048_576).contains(&n)
        {
            return Err(bad(format!(
                "BatchSize must be 1 to 1048576 bytes; it is {n}"
            )));
        }
        if let Some(lines) = stream.file_fingerprint_lines.as_deref() {
            let num = |p: &str| p.parse::<u32>().is_ok_and(|n| n >= 1);
            let ok = match lines.split_once('-') {
                Some((a, b)) => num(a) && num(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
                None => num(lines),
            };
            if !ok {
                return Err(bad(format!(
                    "FileFingerprintLines '{lines}' must be a line number or a range such as 2-5"
                )));
            }
        }
    }
    Ok(())
}

/// The `Attributes` map as AWS shows it: every key of [`ATTRIBUTE_KEYS`], null where unset.
pub fn full_attributes(attributes: &Attributes) -> Attributes {
    ATTRIBUTE_KEYS
        .iter()
        .map(|k| (k.to_string(), attributes.get(*k).cloned().flatten()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    // The rules take typed values; the tables below are easier to read as JSON.
    fn check_volume(v: &Value) -> Result<(), LayerError> {
        super::check_volume(&serde_json::from_value(v.clone()).expect("a volume"))
    }

    fn check_cloudwatch_logs(v: &Value) -> Result<(), LayerError> {
        super::check_cloudwatch_logs(&serde_json::from_value(v.clone()).expect("a configuration"))
    }

    #[test]
    fn twelve_types_one_of_them_custom() {
        assert_eq!(LayerType::ALL.len(), 12);
        for t in LayerType::ALL {
            assert_eq!(t.as_str().parse::<LayerType>(), Ok(t));
        }
        assert_eq!(LayerType::ALL.iter().filter(|t| !t.is_builtin()).count(), 1);
        assert!(!LayerType::Custom.is_builtin());
        assert!(LayerType::Lb.is_builtin());
        assert_eq!(
            "kubernetes".parse::<LayerType>(),
            Err(LayerError::UnknownType("kubernetes".into()))
        );
    }

    #[test]
    fn default_recipes_are_common_then_own() {
        let lb = LayerType::Lb.default_recipes();
        assert_eq!(lb.setup.first(), Some(&"opsworks_initial_setup"));
        assert_eq!(lb.setup.last(), Some(&"haproxy"));
        assert_eq!(
            lb.configure,
            vec!["opsworks_stack_state_sync", "haproxy::configure"]
        );
        assert_eq!(lb.shutdown, vec!["haproxy::stop"]);
        let web = LayerType::Web.default_recipes();
        assert!(web.setup.contains(&"nginx"));
        assert_eq!(web.deploy, vec!["deploy::default", "deploy::web"]);
        assert_eq!(web.undeploy, vec!["deploy::web-undeploy"]);
        assert_eq!(web.shutdown.last(), Some(&"nginx::stop"));
        let custom = LayerType::Custom.default_recipes();
        assert_eq!(custom.deploy, vec!["deploy::default"]);
        assert!(custom.undeploy.is_empty());
        // Every built-in type adds something of its own to Setup.
        for t in LayerType::ALL.into_iter().filter(|t| t.is_builtin()) {
            assert!(t.default_recipes().setup.len() > custom.setup.len(), "{t}");
        }
    }

    #[test]
    fn defaults_match_the_original() {
        let d = crate::resource::Layer::with_defaults(
            LayerType::Memcached,
            "l".into(),
            "s".into(),
            "arn".into(),
            "now".into(),
        );
        assert!(d.enable_auto_healing);
        assert!(!d.auto_assign_elastic_ips);
        assert!(!d.auto_assign_public_ips);
        assert!(d.install_updates_on_boot);
        assert!(!d.use_ebs_optimized_instances);
        assert_eq!(d.shutdown_timeout(), 120);
        assert_eq!(
            d.lifecycle_event_configuration
                .shutdown
                .delay_until_elb_connections_drained,
            Some(false)
        );
        assert_eq!(
            d.default_security_group_names,
            ["AWS-OpsWorks-Memcached-Server"]
        );
        assert_eq!(d.custom_recipes.all().count(), 0);
    }

    #[test]
    fn names_and_shortnames() {
        assert!(check_name("My Layer").is_ok());
        assert!(check_name(&"n".repeat(32)).is_ok());
        assert!(check_name(&"n".repeat(33)).is_err());
        assert!(check_name("  ").is_err());
        assert!(check_shortname(LayerType::Custom, "my-layer_1.x").is_ok());
        assert!(check_shortname(LayerType::Custom, &"s".repeat(32)).is_ok());
        assert!(check_shortname(LayerType::Custom, &"s".repeat(33)).is_err());
        assert!(check_shortname(LayerType::Custom, "has spaces!").is_err());
        assert!(check_shortname(LayerType::Custom, "Upper").is_err());
        assert!(check_shortname(LayerType::Custom, "").is_err());
        assert!(check_shortname(LayerType::PhpApp, "php-app").is_ok());
        // A built-in layer's short name is the caller's choice, as AWS's own CLI example shows.
        assert!(check_shortname(LayerType::PhpApp, "myphplayer").is_ok());
    }

    #[test]
    fn attributes_are_checked() {
        let attrs = |v: Value| -> Attributes { serde_json::from_value(v).unwrap() };
        assert!(
            check_attributes(
                LayerType::Lb,
                &attrs(json!({"EnableHaproxyStats": "true", "HaproxyHealthCheckMethod": "HEAD"}))
            )
            .is_ok()
        );
        assert!(
            check_attributes(LayerType::Lb, &attrs(json!({"EnableHaproxyStats": "yes"}))).is_err()
        );
        assert!(
            check_attributes(
                LayerType::Lb,
                &attrs(json!({"HaproxyHealthCheckMethod": "POST"}))
            )
            .is_err()
        );
        assert!(
            check_attributes(
                LayerType::Memcached,
                &attrs(json!({"MemcachedMemory": "512"}))
            )
            .is_ok()
        );
        assert!(
            check_attributes(
                LayerType::Memcached,
                &attrs(json!({"MemcachedMemory": "lots"}))
            )
            .is_err()
        );
        assert!(
            check_attributes(
                LayerType::Memcached,
                &attrs(json!({"MemcachedMemory": "0"}))
            )
            .is_err()
        );
        assert_eq!(
            check_attributes(LayerType::Custom, &attrs(json!({"NotAnAttribute": "x"}))),
            Err(LayerError::UnknownAttribute("NotAnAttribute".into()))
        );
        assert!(check_attributes(LayerType::Custom, &attrs(json!({"RubyVersion": null}))).is_ok());
        assert_eq!(
            check_attributes(LayerType::EcsCluster, &Attributes::new()),
            Err(LayerError::MissingEcsClusterArn)
        );
        let ecs = attrs(json!({"EcsClusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/c"}));
        assert!(check_attributes(LayerType::EcsCluster, &ecs).is_ok());
        assert!(
            check_attributes(
                LayerType::EcsCluster,
                &attrs(json!({"EcsClusterArn": "cluster"}))
            )
            .is_err()
        );
    }

    #[test]
    fn volumes_are_sane() {
        let ok =
            json!({"MountPoint": "/data", "NumberOfDisks": 1, "Size": 20, "VolumeType": "gp2"});
        assert!(check_volume(&ok).is_ok());
        for reserved in RESERVED_MOUNT_POINTS {
            assert!(
                check_volume(&json!({"MountPoint": reserved, "NumberOfDisks": 1, "Size": 1}))
                    .is_err(),
                "{reserved}"
            );
        }
        assert!(
            check_volume(&json!({"MountPoint": "/srv/www/app", "NumberOfDisks": 1, "Size": 1}))
                .is_err()
        );
        assert!(
            check_volume(&json!({"MountPoint": "/srv/wwwdata", "NumberOfDisks": 1, "Size": 1}))
                .is_ok()
        );
        assert!(
            check_volume(&json!({"MountPoint": "data", "NumberOfDisks": 1, "Size": 1})).is_err()
        );
        assert!(check_volume(&json!({"MountPoint": "/d", "NumberOfDisks": 0, "Size": 1})).is_err());
        assert!(check_volume(&json!({"MountPoint": "/d", "NumberOfDisks": 1, "Size": 0})).is_err());
        assert!(
            check_volume(
                &json!({"MountPoint": "/d", "NumberOfDisks": 1, "Size": 1, "VolumeType": "floppy"})
            )
            .is_err()
        );
        assert!(
            check_volume(
                &json!({"MountPoint": "/d", "NumberOfDisks": 1, "Size": 1, "RaidLevel": 1})
            )
            .is_err()
        );
        assert!(
            check_volume(
                &json!({"MountPoint": "/d", "NumberOfDisks": 2, "Size": 2, "RaidLevel": 1})
            )
            .is_ok()
        );
        let ok: crate::resource::VolumeConfiguration = serde_json::from_value(ok).unwrap();
        assert!(check_volumes(&[ok.clone(), ok]).is_err());
    }

    #[test]
    fn secrets_to_generate() {
        let attrs = |v: Value| -> Attributes { serde_json::from_value(v).unwrap() };
        assert_eq!(
            LayerType::DbMaster.generated_secret(&Attributes::new()),
            Some("MysqlRootPassword")
        );
        assert_eq!(
            LayerType::DbMaster.generated_secret(&attrs(json!({"MysqlRootPassword": "pw"}))),
            None
        );
        assert_eq!(
            LayerType::Lb.generated_secret(&attrs(json!({"EnableHaproxyStats": "true"}))),
            Some("HaproxyStatsPassword")
        );
        assert_eq!(
            LayerType::Lb.generated_secret(&attrs(json!({"EnableHaproxyStats": "false"}))),
            None
        );
        assert_eq!(LayerType::Custom.generated_secret(&Attributes::new()), None);
        // The defaults themselves pass the attribute checks.
        for t in LayerType::ALL {
            let defaults: Attributes = t
                .default_attributes()
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect();
            if t != LayerType::EcsCluster {
                assert_eq!(check_attributes(t, &defaults), Ok(()), "{t}");
            }
        }
    }

    #[test]
    fn volume_sizes_follow_the_type() {
        let vol = |t: &str, size: i64, disks: i64| json!({"MountPoint": "/d", "NumberOfDisks": disks, "Size": size, "VolumeType": t});
        assert!(check_volume(&vol("standard", 1024, 1)).is_ok());
        assert!(check_volume(&vol("standard", 2000, 1)).is_err());
        assert!(check_volume(&vol("io1", 2, 1)).is_err());
        assert!(check_volume(&vol("io1", 4, 1)).is_ok());
        assert!(check_volume(&vol("gp2", 20000, 1)).is_err());
        assert!(check_volume(&vol("st1", 100, 1)).is_err());
        // A RAID array's size is the whole array's.
        let raid = json!({"MountPoint": "/d", "NumberOfDisks": 2, "Size": 2000, "VolumeType": "standard", "RaidLevel": 0});
        assert!(check_volume(&raid).is_ok());
        let iops = json!({"MountPoint": "/d", "NumberOfDisks": 1, "Size": 10, "VolumeType": "gp2", "Iops": 100});
        assert!(check_volume(&iops).is_err());
    }

    #[test]
    fn cloudwatch_log_streams() {
        let conf = |extra: Value| {
            let mut s = json!({"LogGroupName": "stack/layer/app", "File": "/var/log/app/*.log"});
            for (k, v) in extra.as_object().unwrap() {
                s[k] = v.clone();
            }
            json!({"Enabled": true, "LogStreams": [s]})
        };
        assert!(
            check_cloudwatch_logs(&conf(
                json!({"BufferDuration": 5000, "BatchCount": 10000, "BatchSize": 1048576})
            ))
            .is_ok()
        );
        assert!(check_cloudwatch_logs(&conf(json!({"BufferDuration": 4999}))).is_err());
        assert!(check_cloudwatch_logs(&conf(json!({"BatchCount": 10001}))).is_err());
        assert!(check_cloudwatch_logs(&conf(json!({"BatchSize": 1048577}))).is_err());
        assert!(check_cloudwatch_logs(&conf(json!({"LogGroupName": "bad group name!"}))).is_err());
        assert!(check_cloudwatch_logs(&conf(json!({"LogGroupName": "g".repeat(513)}))).is_err());
        assert!(check_cloudwatch_logs(&conf(json!({"LogGroupName": "g".repeat(512)}))).is_ok());
        assert!(check_cloudwatch_logs(&conf(json!({"File": " "}))).is_err());
        assert!(check_cloudwatch_logs(&conf(json!({"FileFingerprintLines": "2-5"}))).is_ok());
        assert!(check_cloudwatch_logs(&conf(json!({"FileFingerprintLines": "5-2"}))).is_err());
        assert!(check_cloudwatch_logs(&json!({"Enabled": false})).is_ok());
    }

    #[test]
    fn full_attributes_lists_every_key() {
        let given: Attributes = [("MemcachedMemory".to_string(), Some("256".to_string()))].into();
        let full = full_attributes(&given);
        assert_eq!(full.len(), ATTRIBUTE_KEYS.len());
        assert_eq!(full["MemcachedMemory"].as_deref(), Some("256"));
        assert_eq!(full["RubyVersion"], None);
        for s in SECRET_ATTRIBUTES {
            assert!(ATTRIBUTE_KEYS.contains(&s));
        }
    }
}

crate::serde_str::serde_as_str!(LayerType);

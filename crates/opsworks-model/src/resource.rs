//! The control plane's resources as Rust types: what the store keeps and the server reasons
//! about. Private members (the scaling settings, the lifecycle step of a deployment) are typed
//! fields like the rest.
//!
//! The serde derives define the *storage* form (members named as in the API, so data dirs of
//! earlier versions read unchanged; private members prefixed `_`). What the API shows is made from
//! these types in one place per resource on the server side (secrets filtered, private members
//! left out); this crate knows no wire shape.

mod agent;
mod app;
mod deployment;
mod ec2;
mod identity;
mod instance;
mod layer;
mod misc;
mod rds;
mod stack;

pub use agent::AgentRelease;
pub use app::{App, AppSource, AppType, DataSource, EnvironmentVariable, SslConfiguration};
pub use deployment::{Command, Deployment, DeploymentCommand, LifecycleStep};
pub use ec2::{Ec2Tag, Ec2Volume, ElasticIp, Volume};
pub use identity::{
    AccessKey, IamGroup, IamPolicy, IamTag, IamUser, KeyLastUsed, LoginProfile, Permission,
    PolicyVersion, TemporaryAccess, UserProfile,
};
pub use instance::{AutoScalingType, BlockDeviceMapping, EbsBlockDevice, Instance, ReportedOs};
pub use layer::{
    CloudWatchLogsConfiguration, CloudWatchLogsLogStream, LastScalingRecord, Layer,
    LifecycleEventConfiguration, LoadBasedScaling, RecipeLists, ScalingThresholds,
    ShutdownEventConfiguration, VolumeConfiguration,
};
pub use misc::{ServiceError, TagSet, Transition};
pub use rds::{DbInstance, DbOrigin, DbTag, RdsDbInstance};
pub use stack::{ChefConfiguration, ConfigurationManager, RootDeviceType, Source, Stack};

/// The kinds of resource the store keeps, each in its own namespace of IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A stack.
    Stack,
    /// A layer.
    Layer,
    /// An instance.
    Instance,
    /// An app.
    App,
    /// A deployment.
    Deployment,
    /// A command (parent: its deployment).
    Command,
    /// A service error.
    ServiceError,
    /// The tags of one resource (ID: its ARN).
    Tags,
    /// A recorded instance status change (parent: the instance).
    Transition,
    /// An IAM user.
    IamUser,
    /// An IAM group.
    IamGroup,
    /// A customer managed IAM policy (ID: its ARN).
    IamPolicy,
    /// What IAM shows of a user's access key (parent: the user). Its generation is also raised
    /// by every change of the store's key table, so key caches of several servers stay correct.
    AccessKey,
    /// An OpsWorks user profile (ID: the IAM user ARN).
    UserProfile,
    /// A user's permissions on a stack (parent: the IAM user ARN).
    Permission,
    /// A temporary login GrantAccess made on an instance.
    TemporaryAccess,
    /// A DB instance of the RDS catalog (ID: its identifier).
    DbInstance,
    /// A DB instance registered with a stack (ID: its ARN).
    RdsDbInstance,
    /// An Elastic IP (ID: the address).
    ElasticIp,
    /// An EC2 volume (ID: `vol-...`).
    Ec2Volume,
    /// An EC2 volume's registration with a stack (parent: the EC2 volume).
    Volume,
    /// An agent release an operator added (ID: its version).
    AgentRelease,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 22] = [
        Self::Stack,
        Self::Layer,
        Self::Instance,
        Self::App,
        Self::Deployment,
        Self::Command,
        Self::ServiceError,
        Self::Tags,
        Self::Transition,
        Self::IamUser,
        Self::IamGroup,
        Self::IamPolicy,
        Self::AccessKey,
        Self::UserProfile,
        Self::Permission,
        Self::TemporaryAccess,
        Self::DbInstance,
        Self::RdsDbInstance,
        Self::ElasticIp,
        Self::Ec2Volume,
        Self::Volume,
        Self::AgentRelease,
    ];

    /// The name the store keeps it under.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stack => "stack",
            Self::Layer => "layer",
            Self::Instance => "instance",
            Self::App => "app",
            Self::Deployment => "deployment",
            Self::Command => "command",
            Self::ServiceError => "service_error",
            Self::Tags => "tags",
            Self::Transition => "transition",
            Self::IamUser => "iam_user",
            Self::IamGroup => "iam_group",
            Self::IamPolicy => "iam_policy",
            Self::AccessKey => "access_key",
            Self::UserProfile => "user_profile",
            Self::Permission => "permission",
            Self::TemporaryAccess => "temporary_access",
            Self::DbInstance => "db_instance",
            Self::RdsDbInstance => "rds_db_instance",
            Self::ElasticIp => "elastic_ip",
            Self::Ec2Volume => "ec2_volume",
            Self::Volume => "volume",
            Self::AgentRelease => "agent_release",
        }
    }

    /// How AWS names it in "Unable to find <what> with ID <id>".
    pub fn noun(self) -> &'static str {
        match self {
            Self::ServiceError => "service error",
            Self::UserProfile => "user profile",
            Self::TemporaryAccess => "temporary access",
            Self::DbInstance => "DB instance",
            Self::RdsDbInstance => "RDS DB instance",
            Self::ElasticIp => "Elastic IP",
            Self::Ec2Volume => "EC2 volume",
            Self::AgentRelease => "agent version",
            other => other.as_str(),
        }
    }
}

/// A resource the store keeps: its kind, its ID, the stack it belongs to and its parent, from
/// which the store builds its indexes.
pub trait Resource:
    serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
{
    /// Its kind.
    const KIND: Kind;
    /// Its ID.
    fn id(&self) -> &str;
    /// The stack it belongs to, if any.
    fn stack_id(&self) -> Option<&str>;
    /// Its parent (a command's deployment, a transition's instance), if any.
    fn parent_id(&self) -> Option<&str> {
        None
    }
    /// The instance it concerns, for the store's instance index (commands), if any.
    fn instance_id(&self) -> Option<&str> {
        None
    }
    /// Its secrets (passwords, keys, secure values), which the store keeps sealed at rest.
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        Vec::new()
    }
}

/// The secrets of a source (cookbooks, an app's code): its password and SSH key.
pub(crate) fn source_secrets(source: Option<&mut Source>) -> Vec<&mut String> {
    match source {
        Some(s) => s.password.iter_mut().chain(s.ssh_key.iter_mut()).collect(),
        None => Vec::new(),
    }
}

//! The small resources: service errors, tags and recorded status changes.

use serde::{Deserialize, Serialize};

use super::{Kind, Resource};

/// A service error: something that went wrong outside any command (a failed Setup, a silent
/// agent, a heal, a failed start or stop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceError {
    /// Its ID.
    pub service_error_id: String,
    /// Its stack.
    pub stack_id: String,
    /// The instance concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Its type (`setup_failed`, `connection_lost`, ...).
    pub r#type: String,
    /// What happened.
    pub message: String,
    /// When.
    pub created_at: String,
}

impl Resource for ServiceError {
    const KIND: Kind = Kind::ServiceError;
    fn id(&self) -> &str {
        &self.service_error_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn parent_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }
    fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }
}

/// The tags of one resource (stored under its ARN).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagSet {
    /// The tagged resource's ARN (the ID).
    pub resource_arn: String,
    /// The stack it belongs to.
    #[serde(default)]
    pub stack_id: String,
    /// Key → value.
    #[serde(default)]
    pub tags: crate::tags::Tags,
}

impl Resource for TagSet {
    const KIND: Kind = Kind::Tags;
    fn id(&self) -> &str {
        &self.resource_arn
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
}

/// A recorded instance status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Transition {
    /// Its ID.
    pub transition_id: String,
    /// The instance.
    pub instance_id: String,
    /// Its stack.
    #[serde(default)]
    pub stack_id: String,
    /// The status before.
    pub from: String,
    /// The status after.
    pub to: String,
    /// What caused it.
    pub event: String,
    /// When.
    pub at: String,
}

impl Resource for Transition {
    const KIND: Kind = Kind::Transition;
    fn id(&self) -> &str {
        &self.transition_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn parent_id(&self) -> Option<&str> {
        Some(&self.instance_id)
    }
}

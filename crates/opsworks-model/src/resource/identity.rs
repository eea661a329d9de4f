//! Identity: the IAM entities the server keeps (users, their access keys' metadata, groups,
//! customer managed policies) and OpsWorks' own users and permissions (user profiles, per-stack
//! permissions, GrantAccess's temporary logins).
//!
//! Memberships and policies live on the entity that has them (a user lists its groups, inline
//! policies and attached policy ARNs), so deciding one request reads the user, its groups and
//! the managed policies they attach, nothing more. Access-key secrets are not here: they are
//! sealed in the store's key table; [`AccessKey`] holds what IAM shows of a key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Kind, Resource};

/// A tag of an IAM entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IamTag {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// A user's console password (IAM's login profile).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoginProfile {
    /// When it was created.
    pub create_date: String,
    /// Whether the user must choose a new password at the next sign-in.
    #[serde(default)]
    pub password_reset_required: bool,
    /// The password's argon2 hash (PHC string); the password itself is never kept.
    #[serde(rename = "_PasswordHash")]
    pub password_hash: String,
}

/// An IAM user (ID: its `AIDA...` user ID, which survives a rename).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IamUser {
    /// The user ID (`AIDA...`).
    pub user_id: String,
    /// The name, unique in the account whatever its case.
    pub user_name: String,
    /// The path (`/` or `/a/b/`).
    pub path: String,
    /// `arn:aws:iam::ACCOUNT:user` + path + name.
    pub arn: String,
    /// When it was created.
    pub create_date: String,
    /// Its tags, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<IamTag>,
    /// The IDs of the groups it belongs to, in the order it joined them.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Its inline policies: name → document as given.
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    /// The ARNs of the managed policies attached to it, in the order attached.
    #[serde(default)]
    pub attached_policies: Vec<String>,
    /// Its console password, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_profile: Option<LoginProfile>,
}

impl Resource for IamUser {
    const KIND: Kind = Kind::IamUser;
    fn id(&self) -> &str {
        &self.user_id
    }
    fn stack_id(&self) -> Option<&str> {
        None
    }
}

/// An IAM group (ID: its `AGPA...` group ID). Its members are the users that list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IamGroup {
    /// The group ID (`AGPA...`).
    pub group_id: String,
    /// The name, unique in the account whatever its case.
    pub group_name: String,
    /// The path.
    pub path: String,
    /// `arn:aws:iam::ACCOUNT:group` + path + name.
    pub arn: String,
    /// When it was created.
    pub create_date: String,
    /// Its inline policies: name → document as given.
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    /// The ARNs of the managed policies attached to it, in the order attached.
    #[serde(default)]
    pub attached_policies: Vec<String>,
}

impl Resource for IamGroup {
    const KIND: Kind = Kind::IamGroup;
    fn id(&self) -> &str {
        &self.group_id
    }
    fn stack_id(&self) -> Option<&str> {
        None
    }
}

/// One version of a managed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersion {
    /// `v1`, `v2`, ...
    pub version_id: String,
    /// The document as given.
    pub document: String,
    /// When it was created.
    pub create_date: String,
}

/// A customer managed policy (ID: its ARN). AWS's own managed policies are not stored: they are
/// the same on every server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IamPolicy {
    /// `arn:aws:iam::ACCOUNT:policy` + path + name.
    pub arn: String,
    /// The policy ID (`ANPA...`).
    pub policy_id: String,
    /// The name, unique in the account.
    pub policy_name: String,
    /// The path.
    pub path: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    pub create_date: String,
    /// When its default version last changed.
    pub update_date: String,
    /// The version in force.
    pub default_version_id: String,
    /// Its versions, oldest first.
    pub versions: Vec<PolicyVersion>,
    /// Its tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<IamTag>,
}

impl IamPolicy {
    /// The document of the version in force.
    pub fn default_document(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.version_id == self.default_version_id)
            .map(|v| v.document.as_str())
    }
}

impl Resource for IamPolicy {
    const KIND: Kind = Kind::IamPolicy;
    fn id(&self) -> &str {
        &self.arn
    }
    fn stack_id(&self) -> Option<&str> {
        None
    }
}

/// What an access key was last used for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyLastUsed {
    /// When (an AWS timestamp).
    pub last_used_date: String,
    /// The service's signing name (`opsworks`, `iam`, `sts`).
    pub service_name: String,
    /// The region of the request's signature.
    pub region: String,
}

/// What IAM shows of a user's access key (ID: the access key ID; parent: the user ID). The
/// secret is sealed in the store's key table, never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKey {
    /// The access key ID (`AKIA...`).
    pub access_key_id: String,
    /// The user it belongs to.
    pub user_id: String,
    /// `Active` or `Inactive`: only an active key signs requests.
    pub status: String,
    /// When it was created.
    pub create_date: String,
    /// Its last use, as last written down (the server keeps fresher news in memory).
    #[serde(rename = "_LastUsed", default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<KeyLastUsed>,
}

impl AccessKey {
    /// Whether the key signs requests.
    pub fn is_active(&self) -> bool {
        self.status == "Active"
    }
}

impl Resource for AccessKey {
    const KIND: Kind = Kind::AccessKey;
    fn id(&self) -> &str {
        &self.access_key_id
    }
    fn stack_id(&self) -> Option<&str> {
        None
    }
    fn parent_id(&self) -> Option<&str> {
        Some(&self.user_id)
    }
}

/// An OpsWorks user profile (ID: the IAM user's ARN, as OpsWorks keys them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserProfile {
    /// The IAM user's ARN.
    pub iam_user_arn: String,
    /// The IAM user's name.
    pub name: String,
    /// The Linux account name on the instances.
    pub ssh_username: String,
    /// The public key put in the account's `authorized_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key: Option<String>,
    /// Whether the user may change their own SSH key (`*MyUserProfile`).
    #[serde(default)]
    pub allow_self_management: bool,
    /// The Linux UID the account gets on every instance (stable across renames).
    #[serde(rename = "_UnixUid")]
    pub unix_uid: u32,
}

impl Resource for UserProfile {
    const KIND: Kind = Kind::UserProfile;
    fn id(&self) -> &str {
        &self.iam_user_arn
    }
    fn stack_id(&self) -> Option<&str> {
        None
    }
}

/// A user's permissions on one stack (stack: the stack; parent: the IAM user's ARN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Permission {
    /// `STACK_ID USER_ARN`, the ID.
    #[serde(rename = "_Id")]
    pub permission_id: String,
    /// The stack.
    pub stack_id: String,
    /// The IAM user's ARN.
    pub iam_user_arn: String,
    /// Whether the user has an SSH login on the stack's instances.
    #[serde(default)]
    pub allow_ssh: bool,
    /// Whether that login may `sudo`.
    #[serde(default)]
    pub allow_sudo: bool,
    /// `deny`, `show`, `deploy`, `manage` or `iam_only`.
    pub level: String,
}

impl Permission {
    /// The ID of the permission of `user_arn` on `stack_id`.
    pub fn id_of(stack_id: &str, user_arn: &str) -> String {
        format!("{stack_id} {user_arn}")
    }
}

impl Resource for Permission {
    const KIND: Kind = Kind::Permission;
    fn id(&self) -> &str {
        &self.permission_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn parent_id(&self) -> Option<&str> {
        Some(&self.iam_user_arn)
    }
}

/// A temporary login GrantAccess made on one instance, removed when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemporaryAccess {
    /// Its ID.
    pub access_id: String,
    /// The stack.
    pub stack_id: String,
    /// The instance the login is on.
    pub instance_id: String,
    /// Who asked for it (an IAM ARN).
    pub iam_user_arn: String,
    /// The Linux account name.
    pub username: String,
    /// The password's SHA-512 crypt hash, as `/etc/shadow` holds it (the password is shown once).
    #[serde(rename = "_PasswordHash")]
    pub password_hash: String,
    /// When it was made.
    pub created_at: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
}

impl Resource for TemporaryAccess {
    const KIND: Kind = Kind::TemporaryAccess;
    fn id(&self) -> &str {
        &self.access_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    fn instance_id(&self) -> Option<&str> {
        Some(&self.instance_id)
    }
}

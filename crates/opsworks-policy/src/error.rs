//! Why a policy document is refused, worded as IAM's `MalformedPolicyDocument` and `LimitExceeded`
//! errors word it.
//!
//! The messages are shown to API clients verbatim, so they keep IAM's capitals and full stops
//! rather than this project's lowercase convention. [`PolicyError`]'s `Display` is IAM's message
//! followed by what exactly is wrong and where (IAM itself often says only "Syntax errors in
//! policy."); [`PolicyError::aws_message`] is IAM's bare message for strict conformance.

/// A policy document IAM would refuse with `MalformedPolicyDocument` (HTTP 400).
///
/// `path` fields name the place in the document, like `Statement[1].Condition.DateLessThan`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not one JSON document.
    #[error("This policy contains invalid Json: {detail}")]
    InvalidJson {
        /// serde_json's account, with line and column.
        detail: String,
    },
    /// The document's structure is wrong: unknown or duplicate fields, wrong types, a missing or
    /// invalid `Effect`, both `Action` and `NotAction`, and the like.
    #[error("Syntax errors in policy. {detail} (at {path}).")]
    Syntax {
        /// What is wrong.
        detail: String,
        /// Where.
        path: String,
    },
    /// A condition operator IAM does not know (or a qualifier it does not allow on it).
    #[error("Syntax errors in policy. Unsupported condition operator {operator} (at {path}).")]
    UnsupportedOperator {
        /// The operator as written.
        operator: String,
        /// Where.
        path: String,
    },
    /// The document must be `2012-10-17` (managed policies): it is absent or `2008-10-17`.
    #[error("Policy document must be version 2012-10-17 or greater. This one is {found}.")]
    VersionTooOld {
        /// `version 2008-10-17` or `without a Version`.
        found: String,
    },
    /// `Principal` or `NotPrincipal` in an identity-based policy.
    #[error("Policy document should not specify a principal. {field} found (at {path}).")]
    PrincipalNotAllowed {
        /// `Principal` or `NotPrincipal`.
        field: String,
        /// Where.
        path: String,
    },
    /// A value IAM's parser cannot read: an `Effect` in the wrong case, a date, number, address
    /// or boolean that is not one, a resource with too few parts.
    #[error("The policy failed legacy parsing: {detail} (at {path}).")]
    LegacyParsing {
        /// What is wrong.
        detail: String,
        /// Where.
        path: String,
    },
    /// Two statements share a `Sid`.
    #[error("Statement IDs (SID) in a single policy must be unique. {sid:?} is used twice.")]
    DuplicateSid {
        /// The repeated Sid.
        sid: String,
    },
    /// A statement with neither `Action` nor `NotAction`, or an empty list.
    #[error(
        "Policy statement must contain actions. {path} has neither Action nor NotAction, or an empty list."
    )]
    MissingActions {
        /// The statement.
        path: String,
    },
    /// A statement with neither `Resource` nor `NotResource`, or an empty list.
    #[error(
        "Policy statement must contain resources. {path} has neither Resource nor NotResource, or an empty list."
    )]
    MissingResources {
        /// The statement.
        path: String,
    },
    /// An action that is not `service:name` (nor `*`).
    #[error(
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. {action:?} at {path} is not of the form service:action."
    )]
    ActionWithoutVendor {
        /// The action as written.
        action: String,
        /// Where.
        path: String,
    },
    /// An action with more than one colon.
    #[error("Actions/Condition can contain only one colon. {action:?} at {path} has more.")]
    ActionTooManyColons {
        /// The action as written.
        action: String,
        /// Where.
        path: String,
    },
    /// An action whose service prefix has characters other than letters, digits, `-` and `.`.
    #[error("Vendor {vendor} is not valid (at {path}).")]
    InvalidVendor {
        /// The service prefix.
        vendor: String,
        /// Where.
        path: String,
    },
    /// A resource that is neither `*` nor ARN-shaped.
    #[error("Resource {resource} must be in ARN format or \"*\". (at {path})")]
    ResourceNotArn {
        /// The resource as written.
        resource: String,
        /// Where.
        path: String,
    },
    /// An ARN whose partition is not one AWS has.
    #[error("Partition \"{partition}\" is not valid for resource \"{normalized}\". (at {path})")]
    InvalidPartition {
        /// The partition part.
        partition: String,
        /// The resource as IAM echoes it, padded to six parts with `*`.
        normalized: String,
        /// Where.
        path: String,
    },
    /// An ARN whose service part is missing or has wildcards.
    #[error(
        "Resource vendor must be fully qualified and cannot contain regexes. {resource:?} at {path}."
    )]
    ResourceVendorNotQualified {
        /// The resource as written.
        resource: String,
        /// Where.
        path: String,
    },
    /// An IAM or S3 bucket ARN with a region.
    #[error("{} (at {path})", region_message(service, resource))]
    ResourceWithRegion {
        /// `iam` or `s3`.
        service: String,
        /// The resource as written.
        resource: String,
        /// Where.
        path: String,
    },
    /// An IAM ARN whose resource part is not one of IAM's resource types.
    #[error("{IAM_RESOURCE_PATH_MESSAGE} {resource:?} at {path}.")]
    IamResourcePath {
        /// The resource as written.
        resource: String,
        /// Where.
        path: String,
    },
}

const IAM_RESOURCE_PATH_MESSAGE: &str = "IAM resource path must either be \"*\" or start with user/, federated-user/, role/, group/, instance-profile/, mfa/, server-certificate/, policy/, sms-mfa/, saml-provider/, oidc-provider/, report/, access-report/.";

fn region_message(service: &str, resource: &str) -> String {
    if service == "iam" {
        format!("IAM resource {resource} cannot contain region information.")
    } else {
        format!("Resource {resource} can not contain region information.")
    }
}

impl PolicyError {
    /// The AWS error code: always `MalformedPolicyDocument` (HTTP 400).
    pub fn code(&self) -> &'static str {
        "MalformedPolicyDocument"
    }

    /// IAM's own message, without the detail this crate adds.
    pub fn aws_message(&self) -> String {
        match self {
            PolicyError::InvalidJson { .. } => "This policy contains invalid Json".into(),
            PolicyError::Syntax { .. } | PolicyError::UnsupportedOperator { .. } => {
                "Syntax errors in policy.".into()
            }
            PolicyError::VersionTooOld { .. } => {
                "Policy document must be version 2012-10-17 or greater.".into()
            }
            PolicyError::PrincipalNotAllowed { .. } => {
                "Policy document should not specify a principal.".into()
            }
            PolicyError::LegacyParsing { .. } => "The policy failed legacy parsing".into(),
            PolicyError::DuplicateSid { .. } => {
                "Statement IDs (SID) in a single policy must be unique.".into()
            }
            PolicyError::MissingActions { .. } => "Policy statement must contain actions.".into(),
            PolicyError::MissingResources { .. } => {
                "Policy statement must contain resources.".into()
            }
            PolicyError::ActionWithoutVendor { .. } => {
                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.".into()
            }
            PolicyError::ActionTooManyColons { .. } => {
                "Actions/Condition can contain only one colon.".into()
            }
            PolicyError::InvalidVendor { vendor, .. } => format!("Vendor {vendor} is not valid"),
            PolicyError::ResourceNotArn { resource, .. } => {
                format!("Resource {resource} must be in ARN format or \"*\".")
            }
            PolicyError::InvalidPartition {
                partition,
                normalized,
                ..
            } => format!("Partition \"{partition}\" is not valid for resource \"{normalized}\"."),
            PolicyError::ResourceVendorNotQualified { .. } => {
                "Resource vendor must be fully qualified and cannot contain regexes.".into()
            }
            PolicyError::ResourceWithRegion {
                service, resource, ..
            } => region_message(service, resource),
            PolicyError::IamResourcePath { .. } => IAM_RESOURCE_PATH_MESSAGE.into(),
        }
    }
}

/// The kinds of policy IAM sizes differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// An inline policy of a user (`PutUserPolicy`): all of a user's inline policies together may
    /// hold 2,048 characters.
    InlineUser,
    /// An inline policy of a group (`PutGroupPolicy`): 5,120 characters per group.
    InlineGroup,
    /// A managed policy (`CreatePolicy`, `CreatePolicyVersion`): 6,144 characters each; it must
    /// be `Version` `2012-10-17`.
    Managed,
}

impl PolicyKind {
    /// IAM's quota in characters, white space not counted (see [`counted_size`]).
    pub fn max_size(self) -> usize {
        match self {
            PolicyKind::InlineUser => 2048,
            PolicyKind::InlineGroup => 5120,
            PolicyKind::Managed => 6144,
        }
    }

    /// Whether IAM refuses a document without `"Version": "2012-10-17"` for this kind. Inline
    /// policies may omit it (meaning 2008-10-17, where `${...}` is plain text).
    pub fn requires_current_version(self) -> bool {
        matches!(self, PolicyKind::Managed)
    }
}

/// The characters IAM counts against its size quotas: every character but white space ("IAM does
/// not count white space"; white space inside JSON strings is not counted either, a reading the
/// quota page leaves open).
pub fn counted_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

/// A policy, or an entity's inline policies together, over IAM's size quota: AWS answers
/// `LimitExceeded` (HTTP 409) with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeLimitExceeded {
    /// A user's inline policies together are too large.
    #[error("Maximum policy size of {limit} bytes exceeded for user {name}")]
    User {
        /// The quota, 2,048.
        limit: usize,
        /// The user's name.
        name: String,
    },
    /// A group's inline policies together are too large.
    #[error("Maximum policy size of {limit} bytes exceeded for group {name}")]
    Group {
        /// The quota, 5,120.
        limit: usize,
        /// The group's name.
        name: String,
    },
    /// A managed policy document is too large.
    #[error("Cannot exceed quota for PolicySize: {limit}")]
    Managed {
        /// The quota, 6,144.
        limit: usize,
    },
}

impl SizeLimitExceeded {
    /// The AWS error code: `LimitExceeded` (HTTP 409).
    pub fn code(&self) -> &'static str {
        "LimitExceeded"
    }
}

/// Checks a size against IAM's quota for `kind`. For inline policies pass the [`counted_size`]
/// of all of the entity's inline policies together (the new one replacing any of the same
/// name) and the entity's name; for a managed policy, the size of the one document.
pub fn check_size(kind: PolicyKind, counted: usize, entity: &str) -> Result<(), SizeLimitExceeded> {
    let limit = kind.max_size();
    if counted <= limit {
        return Ok(());
    }
    Err(match kind {
        PolicyKind::InlineUser => SizeLimitExceeded::User {
            limit,
            name: entity.to_owned(),
        },
        PolicyKind::InlineGroup => SizeLimitExceeded::Group {
            limit,
            name: entity.to_owned(),
        },
        PolicyKind::Managed => SizeLimitExceeded::Managed { limit },
    })
}

//! Identifiers, ARNs and timestamps as AWS formats them.

use std::fmt;

/// A new resource ID: a random UUID, as OpsWorks uses for stacks, layers, instances, apps, ...
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new EC2 ID: `prefix-` and 17 hex digits, as EC2 writes them (`vol-0123456789abcdef0`,
/// `eipalloc-...`, `eipassoc-...`).
pub fn ec2_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &hex[..17])
}

/// Whether `s` is shaped like the IDs this server hands out.
pub fn looks_like_id(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// A timestamp in the form OpsWorks returns in `CreatedAt`, `CompletedAt`, ...:
/// `2026-11-25T18:10:03+00:00`.
pub fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// The kinds of resource that carry an ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `arn:aws:opsworks:<region>:<account>:stack/<id>/`
    Stack,
    /// `arn:aws:opsworks:<region>:<account>:layer/<id>`
    Layer,
    /// `arn:aws:opsworks:<region>:<account>:instance/<id>`
    Instance,
}

/// An OpsWorks ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    /// The region part.
    pub region: String,
    /// The 12-digit account part.
    pub account: String,
    /// What it names.
    pub kind: ResourceKind,
    /// The resource ID.
    pub id: String,
}

impl Arn {
    /// Builds an ARN.
    pub fn new(region: &str, account: &str, kind: ResourceKind, id: &str) -> Self {
        Self {
            region: region.into(),
            account: account.into(),
            kind,
            id: id.into(),
        }
    }

    /// Parses an OpsWorks stack, layer or instance ARN; `None` when it is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("arn:aws:opsworks:")?;
        let mut parts = rest.splitn(3, ':');
        let region = parts.next()?;
        let account = parts.next()?;
        let resource = parts.next()?;
        let (kind, id) = if let Some(id) = resource.strip_prefix("stack/") {
            (ResourceKind::Stack, id.strip_suffix('/').unwrap_or(id))
        } else if let Some(id) = resource.strip_prefix("layer/") {
            (ResourceKind::Layer, id)
        } else if let Some(id) = resource.strip_prefix("instance/") {
            (ResourceKind::Instance, id)
        } else {
            return None;
        };
        if region.is_empty() || account.is_empty() || id.is_empty() || id.contains('/') {
            return None;
        }
        Some(Self::new(region, account, kind, id))
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            region,
            account,
            id,
            ..
        } = self;
        match self.kind {
            ResourceKind::Stack => write!(f, "arn:aws:opsworks:{region}:{account}:stack/{id}/"),
            ResourceKind::Layer => write!(f, "arn:aws:opsworks:{region}:{account}:layer/{id}"),
            ResourceKind::Instance => {
                write!(f, "arn:aws:opsworks:{region}:{account}:instance/{id}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_ids_look_like_ec2s() {
        let id = ec2_id("vol");
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("vol-") && id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(ec2_id("vol"), id);
    }

    #[test]
    fn arns_round_trip() {
        for kind in [
            ResourceKind::Stack,
            ResourceKind::Layer,
            ResourceKind::Instance,
        ] {
            let arn = Arn::new("us-east-1", "123456789012", kind, &new_id());
            assert_eq!(Arn::parse(&arn.to_string()), Some(arn));
        }
        assert_eq!(Arn::parse("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn timestamps_look_like_aws() {
        let t: jiff::Timestamp = "2026-11-25T18:10:03.5Z".parse().unwrap();
        assert_eq!(timestamp(t), "2026-11-25T18:10:03+00:00");
    }
}

//! Who a user is and what they may do, as the authorizer needs it on every request: the user's
//! policies parsed (inline and attached, its own and its groups'), its permission level on each
//! stack, its profile's self-management flag and its active keys, gathered once into a
//! [`UserAccess`] and kept until a change of any identity kind (here or on another server
//! sharing the database) makes it stale. Also IAM's identifiers and console passwords.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use rand::Rng;

use opsworks_model::Kind;
use opsworks_model::resource::{AccessKey, IamGroup, IamPolicy, IamUser, Permission, UserProfile};
use opsworks_policy::{PermissionLevel, Policy, PolicyKind, aws_managed_policy};
use opsworks_store::Filter;

use crate::core::{Core, CoreError, CoreResult};

/// The prefix of the principal of an IAM user's access keys: `iam-user:<user id>`.
pub const USER_PRINCIPAL: &str = "iam-user:";

/// The principal of an IAM user's keys.
pub fn user_principal(user_id: &str) -> String {
    format!("{USER_PRINCIPAL}{user_id}")
}

/// The kinds a [`UserAccess`] is made of, in the order of the stamps it keeps; the first is the
/// access keys' (which the key ring checks too).
pub const IDENTITY_KINDS: [Kind; 6] = [
    Kind::AccessKey,
    Kind::IamUser,
    Kind::IamGroup,
    Kind::IamPolicy,
    Kind::Permission,
    Kind::UserProfile,
];

/// Stamps of [`IDENTITY_KINDS`], as [`opsworks_store::Store::stamps`] gives them.
pub type Stamps = Vec<u64>;

/// An IAM user as the authorizer sees it at one moment.
#[derive(Debug)]
pub struct UserAccess {
    /// The user ID (`AIDA...`).
    pub user_id: String,
    /// The user name.
    pub user_name: String,
    /// The user's ARN.
    pub arn: String,
    /// Every identity policy that applies: the user's inline and attached ones, and its groups'.
    pub policies: Vec<Policy>,
    /// The level on each stack with a permission record.
    levels: HashMap<String, PermissionLevel>,
    /// The profile's `AllowSelfManagement`.
    pub self_management: bool,
    /// The access keys that sign requests.
    active_keys: HashSet<String>,
    /// Whether any policy reads the time (`aws:CurrentTime`, `aws:EpochTime`): decisions then
    /// hold for the second they were made in only.
    pub time_dependent: bool,
    /// Decisions already made for this state of the user (see [`Decisions`]).
    pub decisions: Decisions,
}

/// What a decision depends on besides the user's policies and levels (which a [`UserAccess`]
/// fixes): the action, the resource, the permission grants, the request's condition keys that
/// vary (address, transport, region) and, for time-reading policies, the second.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecisionKey<'a> {
    /// `service:Action`.
    pub action: &'a str,
    /// The ARN, or `*`.
    pub resource: &'a str,
    /// The stack's level, as granted.
    pub level: Option<PermissionLevel>,
    /// `aws:SourceIp`.
    pub source_ip: Option<std::net::IpAddr>,
    /// `aws:SecureTransport`.
    pub secure: bool,
    /// `aws:RequestedRegion`.
    pub region: &'a str,
    /// The second of the request for time-reading policies, else 0.
    pub second: i64,
}

impl DecisionKey<'_> {
    fn hash64(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        // A hash picks the slot; the whole key is compared in it.
        let mut h = std::hash::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

#[derive(Debug)]
struct Decided {
    action: Box<str>,
    resource: Box<str>,
    level: Option<PermissionLevel>,
    source_ip: Option<std::net::IpAddr>,
    secure: bool,
    region: Box<str>,
    second: i64,
    outcome: Result<(), String>,
}

impl Decided {
    fn is(&self, k: &DecisionKey<'_>) -> bool {
        *self.action == *k.action
            && *self.resource == *k.resource
            && self.level == k.level
            && self.source_ip == k.source_ip
            && self.secure == k.secure
            && *self.region == *k.region
            && self.second == k.second
    }
}

/// The decisions made for one state of a user: evaluating the same request against the same
/// policies gives the same answer, so a user's repeated calls (DescribeStacks over the same
/// stacks) evaluate once. Bounded; dropped with the [`UserAccess`] when anything of the user's
/// identity changes.
#[derive(Debug, Default)]
pub struct Decisions {
    map: Mutex<HashMap<u64, Vec<Decided>>>,
}

/// At most this many decisions are kept per user state.
const MAX_DECISIONS: usize = 4096;

impl Decisions {
    /// The decision made for `key`, if one was.
    pub fn get(&self, key: &DecisionKey<'_>) -> Option<Result<(), String>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key.hash64())?
            .iter()
            .find(|d| d.is(key))
            .map(|d| d.outcome.clone())
    }

    /// Keeps the decision made for `key`.
    pub fn put(&self, key: &DecisionKey<'_>, outcome: Result<(), String>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_DECISIONS {
            map.clear();
        }
        let slot = map.entry(key.hash64()).or_default();
        // Decisions of past seconds are of no more use.
        slot.retain(|d| d.second == key.second || key.second == 0);
        slot.push(Decided {
            action: key.action.into(),
            resource: key.resource.into(),
            level: key.level,
            source_ip: key.source_ip,
            secure: key.secure,
            region: key.region.into(),
            second: key.second,
            outcome,
        });
    }
}

impl PartialEq for UserAccess {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other) || self.user_id == other.user_id
    }
}

impl Eq for UserAccess {}

impl UserAccess {
    /// The user's level on a stack: `None` without a permission record (which is `iam_only`).
    pub fn level(&self, stack_id: &str) -> Option<PermissionLevel> {
        self.levels.get(stack_id).copied()
    }

    /// The highest granting level the user has on any stack (for account-wide reads such as
    /// DescribeOperatingSystems that any stack's Show level grants).
    pub fn best_level(&self) -> Option<PermissionLevel> {
        let rank = |l: &PermissionLevel| match l {
            PermissionLevel::Manage => 3,
            PermissionLevel::Deploy => 2,
            PermissionLevel::Show => 1,
            _ => 0,
        };
        self.levels.values().copied().max_by_key(rank)
    }

    /// Whether `access_key_id` is one of the user's active keys.
    pub fn key_active(&self, access_key_id: &str) -> bool {
        self.active_keys.contains(access_key_id)
    }
}

/// The users' [`UserAccess`] kept between requests, each with the stamps it was made under.
#[derive(Default)]
pub struct AccessCache {
    entries: Mutex<HashMap<String, (Stamps, Arc<UserAccess>)>>,
}

/// At most this many users are kept; past it the cache starts over.
const MAX_CACHED_USERS: usize = 10_000;

impl AccessCache {
    fn get(&self, user_id: &str, stamps: &Stamps) -> Option<Arc<UserAccess>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(user_id)
            .filter(|(s, _)| s == stamps)
            .map(|(_, a)| a.clone())
    }

    fn put(&self, stamps: Stamps, access: Arc<UserAccess>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_CACHED_USERS {
            entries.clear();
        }
        entries.insert(access.user_id.clone(), (stamps, access));
    }
}

/// The stamps of [`IDENTITY_KINDS`] now.
pub async fn stamps(core: &Core) -> CoreResult<Stamps> {
    Ok(core.store().stamps(&IDENTITY_KINDS).await?)
}

/// What the user with ID `user_id` may do, as of `stamps` (from [`stamps`]); `None` when the user
/// does not exist (any more).
pub async fn user_access(
    core: &Core,
    user_id: &str,
    stamps: &Stamps,
) -> CoreResult<Option<Arc<UserAccess>>> {
    if let Some(hit) = core.access_cache().get(user_id, stamps) {
        return Ok(Some(hit));
    }
    let Some(user) = core.find::<IamUser>(user_id).await? else {
        return Ok(None);
    };
    let access = Arc::new(build(core, &user).await?);
    core.access_cache().put(stamps.clone(), access.clone());
    Ok(Some(access))
}

async fn build(core: &Core, user: &IamUser) -> CoreResult<UserAccess> {
    let mut policies = Vec::new();
    let mut time_dependent = false;
    let mut reads_time = |doc: &str| {
        let lower = doc.to_ascii_lowercase();
        time_dependent |= lower.contains("aws:currenttime") || lower.contains("aws:epochtime");
    };
    let parse = |doc: &str, kind: PolicyKind, what: &str| match Policy::parse(doc, kind) {
        Ok(p) => Some(p),
        Err(e) => {
            // Documents are checked when written, so this is a database edited by hand.
            tracing::error!("the stored policy {what} does not parse ({e}); it is ignored");
            None
        }
    };
    for (name, doc) in &user.inline_policies {
        reads_time(doc);
        policies.extend(parse(doc, PolicyKind::InlineUser, name));
    }
    let mut attached: Vec<String> = user.attached_policies.clone();
    for group_id in &user.groups {
        let Some(group) = core.find::<IamGroup>(group_id).await? else {
            continue;
        };
        for (name, doc) in &group.inline_policies {
            reads_time(doc);
            policies.extend(parse(doc, PolicyKind::InlineGroup, name));
        }
        attached.extend(group.attached_policies.iter().cloned());
    }
    attached.sort();
    attached.dedup();
    for arn in &attached {
        if let Some(doc) = managed_document(core, arn).await? {
            reads_time(&doc);
            policies.extend(parse(&doc, PolicyKind::Managed, arn));
        }
    }
    let levels = core
        .list::<Permission>(Filter::Parent(&user.arn))
        .await?
        .iter()
        .filter_map(|p| PermissionLevel::parse(&p.level).map(|l| (p.stack_id.clone(), l)))
        .collect();
    let self_management = core
        .find::<UserProfile>(&user.arn)
        .await?
        .is_some_and(|p| p.allow_self_management);
    let active_keys = core
        .list::<AccessKey>(Filter::Parent(&user.user_id))
        .await?
        .iter()
        .filter(|k| k.is_active())
        .map(|k| k.access_key_id.clone())
        .collect();
    Ok(UserAccess {
        user_id: user.user_id.clone(),
        user_name: user.user_name.clone(),
        arn: user.arn.clone(),
        policies,
        levels,
        self_management,
        active_keys,
        time_dependent,
        decisions: Decisions::default(),
    })
}

/// The default version's document of a managed policy: AWS's own, or one of the account's.
pub async fn managed_document(core: &Core, arn: &str) -> CoreResult<Option<String>> {
    if let Some(p) = aws_managed_policy(arn) {
        return Ok(Some(p.document.to_string()));
    }
    Ok(core
        .find::<IamPolicy>(arn)
        .await?
        .and_then(|p| p.default_document().map(str::to_string)))
}

/// A new IAM identifier: `prefix` (`AIDA`, `AGPA`, `ANPA`, `AKIA`) and random upper-case base32,
/// `len` characters in all.
pub fn iam_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let mut id = prefix.to_string();
    while id.len() < len {
        id.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    id
}

/// IAM's timestamp form, `2026-12-07T08:44:21Z`.
pub fn iam_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The argon2 hash (PHC string) of a console password.
pub fn hash_password(plain: &str) -> CoreResult<String> {
    Argon2::default()
        .hash_password(plain.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Invalid(format!("the password cannot be hashed: {e}")))
}

/// The IAM user named `name` (names are unique whatever their case), if any.
pub async fn user_by_name(core: &Core, name: &str) -> CoreResult<Option<IamUser>> {
    Ok(core
        .list::<IamUser>(Filter::All)
        .await?
        .iter()
        .find(|u| u.user_name.eq_ignore_ascii_case(name))
        .map(|u| u.to_owned_value()))
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;

    use super::*;

    /// Whether `attempt` is the password hashed in `hash` (the console checks sign-ins with its
    /// own bounded hashing pool; this checks what `hash_password` stores).
    fn verify_password(hash: &str, attempt: &str) -> bool {
        PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(attempt.as_bytes(), &h)
                .is_ok()
        })
    }

    #[test]
    fn ids_have_their_prefix_length_and_alphabet() {
        let id = iam_id("AIDA", 21);
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("AIDA"));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_ne!(iam_id("AIDA", 21), id);
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(!h.contains("correct horse"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "Correct horse"));
        assert!(!verify_password("not a hash", "correct horse"));
    }
}

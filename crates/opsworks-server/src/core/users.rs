//! The users that log in to instances: OpsWorks user profiles with `AllowSsh` on a stack, and
//! GrantAccess's temporary logins. What every run's configuration carries for the built-in
//! `ssh_users` recipe (`node["ssh_users"]`), the command that brings a stack's online instances
//! up to date after a change (the original's `sync_remote_users`: an `execute_recipes` of
//! `ssh_users`), and the expiry of temporary logins.

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::{Map, Value, json};
use sha_crypt::{PasswordHasher, ShaCrypt};

use opsworks_model::instance::InstanceStatus;
use opsworks_model::resource::{Instance, Permission, TemporaryAccess, UserProfile};
use opsworks_model::{CommandName, Kind, new_id};
use opsworks_store::Filter;

use crate::core::commands::{self, NewDeployment};
use crate::core::{Core, CoreError, CoreResult, Write, now};

/// The recipe that creates, updates and removes the login accounts.
pub const RECIPE: &str = "ssh_users";

/// Who asked for the command, as its deployment's comment says.
const COMMENT: &str = "sync_remote_users";

/// Runs `ssh_users` on every online instance of each stack, once `w` commits.
pub async fn sync_stacks(w: &mut Write<'_>, stack_ids: &[String]) -> CoreResult<()> {
    let mut seen = Vec::new();
    for stack in stack_ids {
        if seen.contains(stack) {
            continue;
        }
        seen.push(stack.clone());
        let online: Vec<String> = w
            .list::<Instance>(Filter::Stack(stack))
            .await?
            .into_iter()
            .filter(|i| i.status == InstanceStatus::Online)
            .map(|i| i.instance_id)
            .collect();
        sync_instances(w, stack, &online).await?;
    }
    Ok(())
}

/// Runs `ssh_users` on the instances given (of one stack), once `w` commits.
pub async fn sync_instances(
    w: &mut Write<'_>,
    stack_id: &str,
    instances: &[String],
) -> CoreResult<()> {
    if instances.is_empty() {
        return Ok(());
    }
    let new = NewDeployment {
        stack_id: stack_id.to_string(),
        command: CommandName::ExecuteRecipes,
        args: BTreeMap::from([("recipes".to_string(), vec![RECIPE.to_string()])]),
        app_id: None,
        iam_user_arn: None,
        comment: Some(COMMENT.into()),
        custom_json: None,
        lifecycle: None,
        carried_app: None,
    };
    commands::create(w, new, instances).await?;
    Ok(())
}

/// A temporary login GrantAccess made: its account name and password (shown once).
#[derive(Debug, Clone)]
pub struct Granted {
    /// The Linux account.
    pub username: String,
    /// The password, in the clear, for the caller only.
    pub password: String,
}

fn random(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// The SHA-512 crypt hash `/etc/shadow` takes (`$6$...`).
pub fn shadow_hash(password: &str) -> CoreResult<String> {
    let mut salt = [0u8; 12];
    rand::rng().fill(&mut salt);
    ShaCrypt::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Invalid(format!("the password cannot be hashed: {e}")))
}

/// Makes a temporary login on `inst` for `minutes`, and the command that creates it there.
pub async fn grant(
    w: &mut Write<'_>,
    inst: &Instance,
    asked_by: &str,
    minutes: i64,
) -> CoreResult<Granted> {
    let username = format!("tmp-{}", random(b"abcdefghijklmnopqrstuvwxyz0123456789", 8));
    let password = random(
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
        20,
    );
    let access = TemporaryAccess {
        access_id: new_id(),
        stack_id: inst.stack_id.clone(),
        instance_id: inst.instance_id.clone(),
        iam_user_arn: asked_by.to_string(),
        username: username.clone(),
        password_hash: shadow_hash(&password)?,
        created_at: now(),
        expires_at: jiff::Timestamp::now().as_second()
            + (minutes * i64::try_from(w.core().access_minute().as_millis()).unwrap_or(60_000)
                / 1000)
                .max(1),
    };
    w.put(&access).await?;
    sync_instances(w, &inst.stack_id, std::slice::from_ref(&inst.instance_id)).await?;
    Ok(Granted { username, password })
}

/// Removes the temporary logins whose time ran out, and has their instances remove the accounts.
pub async fn expire(core: &Core, now: i64) -> CoreResult<u64> {
    let due: Vec<TemporaryAccess> = core
        .list::<TemporaryAccess>(Filter::All)
        .await?
        .iter()
        .filter(|a| a.expires_at <= now)
        .map(|a| a.to_owned_value())
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let mut w = core.write().await?;
    for a in &due {
        w.delete(Kind::TemporaryAccess, &a.access_id).await?;
        let online = w
            .find::<Instance>(&a.instance_id)
            .await?
            .is_some_and(|i| i.status == InstanceStatus::Online);
        if online {
            sync_instances(&mut w, &a.stack_id, std::slice::from_ref(&a.instance_id)).await?;
        }
    }
    w.commit().await?;
    tracing::info!(expired = due.len(), "temporary logins removed");
    Ok(due.len() as u64)
}

/// `node["ssh_users"]` for a run on `instance_id` of `stack_id`: by UID (as Chef 11's
/// `ssh_users` keyed them), each `{name, public_key, sudoer}`; temporary logins of the instance
/// carry `password_hash` and `temporary` instead of a key and no UID.
pub async fn ssh_users(core: &Core, stack_id: &str, instance_id: &str) -> CoreResult<Value> {
    let mut users = Map::new();
    let perms = core.list::<Permission>(Filter::Stack(stack_id)).await?;
    for p in perms.iter().filter(|p| p.allow_ssh) {
        let Some(profile) = core.find::<UserProfile>(&p.iam_user_arn).await? else {
            continue;
        };
        users.insert(
            profile.unix_uid.to_string(),
            json!({
                "name": profile.ssh_username,
                "uid": profile.unix_uid,
                "public_key": profile.ssh_public_key,
                "sudoer": p.allow_sudo,
            }),
        );
    }
    let now = jiff::Timestamp::now().as_second();
    for a in core
        .list::<TemporaryAccess>(Filter::Instance(instance_id))
        .await?
        .iter()
        .filter(|a| a.expires_at > now)
    {
        users.insert(
            a.username.clone(),
            json!({
                "name": a.username,
                "password_hash": a.password_hash,
                "sudoer": false,
                "temporary": true,
                "expires_at": a.expires_at,
            }),
        );
    }
    Ok(Value::Object(users))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha_crypt::PasswordVerifier;

    #[test]
    fn shadow_hashes_are_sha512_crypt_and_verify() {
        let h = shadow_hash("s3cret-Pass").unwrap();
        assert!(h.starts_with("$6$"), "{h}");
        assert!(!h.contains("s3cret"));
        assert!(
            ShaCrypt::default()
                .verify_password(b"s3cret-Pass", h.as_str())
                .is_ok()
        );
        assert!(
            ShaCrypt::default()
                .verify_password(b"other", h.as_str())
                .is_err()
        );
    }
}

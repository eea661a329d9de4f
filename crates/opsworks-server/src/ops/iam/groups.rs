//! IAM groups and their members.

use serde_json::{Value, json};

use opsworks_api::query::AwsError;
use opsworks_model::Kind;
use opsworks_model::resource::{IamGroup, IamUser};
use opsworks_store::Filter;

use super::users::user_shape;
use super::{
    Ctx, IamResult, already_exists, check_path, delete_conflict, internal, limit_exceeded,
    no_such_group, no_such_user, page, req, s,
};
use crate::core::identity::{iam_id, iam_now};

/// AWS's quota of groups per user.
const GROUPS_PER_USER: usize = 10;

/// The `Group` shape.
pub(super) fn group_shape(g: &IamGroup) -> Value {
    json!({
        "Path": g.path,
        "GroupName": g.group_name,
        "GroupId": g.group_id,
        "Arn": g.arn,
        "CreateDate": g.create_date,
    })
}

/// CreateGroup.
pub async fn create_group(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "GroupName")?;
    let path = s(input, "Path").unwrap_or("/");
    check_path(path)?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let groups: Vec<IamGroup> = w.list(Filter::All).await.map_err(internal)?;
    if groups
        .iter()
        .any(|g| g.group_name.eq_ignore_ascii_case(name))
    {
        return Err(already_exists(format!(
            "Group with name {name} already exists."
        )));
    }
    let group = IamGroup {
        group_id: iam_id("AGPA", 21),
        group_name: name.to_string(),
        path: path.to_string(),
        arn: format!("arn:aws:iam::{}:group{path}{name}", cx.core.account_id()),
        create_date: iam_now(),
        inline_policies: Default::default(),
        attached_policies: Vec::new(),
    };
    w.put(&group).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({ "Group": group_shape(&group) }))
}

fn find_group(groups: &[IamGroup], name: &str) -> Result<IamGroup, AwsError> {
    groups
        .iter()
        .find(|g| g.group_name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| no_such_group(name))
}

fn find_user(users: &[IamUser], name: &str) -> Result<IamUser, AwsError> {
    users
        .iter()
        .find(|u| u.user_name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| no_such_user(name))
}

/// GetGroup: the group and its members.
pub async fn get_group(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "GroupName")?;
    let group = super::group_by_name(cx, name)
        .await?
        .ok_or_else(|| no_such_group(name))?;
    let members: Vec<Value> = cx
        .core
        .list::<IamUser>(Filter::All)
        .await
        .map_err(internal)?
        .iter()
        .filter(|u| u.groups.contains(&group.group_id))
        .map(|u| user_shape(u))
        .collect();
    let mut out = page(members, input, "Users")?;
    out["Group"] = group_shape(&group);
    Ok(out)
}

/// ListGroups: by name, under `PathPrefix`.
pub async fn list_groups(cx: Ctx<'_>, input: &Value) -> IamResult {
    let prefix = s(input, "PathPrefix").unwrap_or("/");
    let mut groups: Vec<IamGroup> = cx
        .core
        .list::<IamGroup>(Filter::All)
        .await
        .map_err(internal)?
        .iter()
        .filter(|g| g.path.starts_with(prefix))
        .map(|g| g.to_owned_value())
        .collect();
    groups.sort_by_key(|g| g.group_name.to_lowercase());
    page(groups.iter().map(group_shape).collect(), input, "Groups")
}

/// DeleteGroup: only an empty group without policies.
pub async fn delete_group(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "GroupName")?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let groups: Vec<IamGroup> = w.list(Filter::All).await.map_err(internal)?;
    let group = find_group(&groups, name)?;
    let users: Vec<IamUser> = w.list(Filter::All).await.map_err(internal)?;
    if users.iter().any(|u| u.groups.contains(&group.group_id)) {
        return Err(delete_conflict(
            "Cannot delete entity, must remove users from group first.",
        ));
    }
    if !group.inline_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !group.attached_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    w.delete(Kind::IamGroup, &group.group_id)
        .await
        .map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// AddUserToGroup (adding a member twice changes nothing, as in IAM).
pub async fn add_user_to_group(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (group_name, user_name) = (req(input, "GroupName")?, req(input, "UserName")?);
    let mut w = cx.core.write().await.map_err(internal)?;
    let groups: Vec<IamGroup> = w.list(Filter::All).await.map_err(internal)?;
    let group = find_group(&groups, group_name)?;
    let users: Vec<IamUser> = w.list(Filter::All).await.map_err(internal)?;
    let mut user = find_user(&users, user_name)?;
    if !user.groups.contains(&group.group_id) {
        if user.groups.len() >= GROUPS_PER_USER {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for GroupsPerUser: {GROUPS_PER_USER}"
            )));
        }
        user.groups.push(group.group_id.clone());
        w.put(&user).await.map_err(internal)?;
    }
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// RemoveUserFromGroup.
pub async fn remove_user_from_group(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (group_name, user_name) = (req(input, "GroupName")?, req(input, "UserName")?);
    let mut w = cx.core.write().await.map_err(internal)?;
    let groups: Vec<IamGroup> = w.list(Filter::All).await.map_err(internal)?;
    let group = find_group(&groups, group_name)?;
    let users: Vec<IamUser> = w.list(Filter::All).await.map_err(internal)?;
    let mut user = find_user(&users, user_name)?;
    let before = user.groups.len();
    user.groups.retain(|g| *g != group.group_id);
    if user.groups.len() == before {
        return Err(super::no_such(format!(
            "The user with name {} cannot be found in group {}.",
            user.user_name, group.group_name
        )));
    }
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// ListGroupsForUser.
pub async fn list_groups_for_user(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "UserName")?;
    let user = super::users::by_name(cx, name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    let groups = cx
        .core
        .list::<IamGroup>(Filter::Ids(&user.groups))
        .await
        .map_err(internal)?;
    // In the order joined.
    let shapes: Vec<Value> = user
        .groups
        .iter()
        .filter_map(|id| groups.iter().find(|g| g.group_id == *id))
        .map(|g| group_shape(g))
        .collect();
    page(shapes, input, "Groups")
}

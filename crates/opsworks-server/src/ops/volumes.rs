//! Volume operations: RegisterVolume, UpdateVolume, AssignVolume, UnassignVolume,
//! DescribeVolumes, DeregisterVolume, and DescribeRaidArrays. The volumes are those `ec2
//! CreateVolume` made (disk images on this host, `core::volumes`); an assigned volume is mounted
//! at its mount point whenever its instance boots, so assigning and unassigning need the
//! instance offline, as the original required.

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::Kind;
use opsworks_model::layer::RESERVED_MOUNT_POINTS;
use opsworks_model::new_id;
use opsworks_model::resource::{Ec2Volume, Instance, Stack, Volume};
use opsworks_store::Filter;

use super::elastic_ips::has_own_machine;
use super::{Ctx, OpResult, Reply, at_most_one, check_len, required, wire};
use crate::core::{CoreError, Write, now, volumes};

/// The longest `Name` of a volume.
const MAX_NAME: usize = 128;

/// A registered volume, as OpsWorks refuses an unknown one.
async fn registered(w: &mut Write<'_>, id: &str) -> Result<Volume, ApiError> {
    Ok(w.get::<Volume>(id).await?)
}

/// Refuses an assignment change unless the instance is offline (stopped).
fn offline(inst: &Instance, action: &str) -> Result<(), ApiError> {
    if inst.status.is_stopped() {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "Instance {} is {}; a volume can be {action} only while its instance is stopped",
            inst.instance_id, inst.status
        )))
    }
}

/// Checks a volume's `MountPoint`: an absolute path a machine can mount on, off the directories
/// the built-in recipes manage.
pub fn check_mount_point(mp: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::Validation(format!(
            "Invalid MountPoint {mp}: {why}"
        )))
    };
    let trimmed = mp.trim_end_matches('/');
    if !mp.starts_with('/') || trimmed.is_empty() {
        return bad("it must be an absolute path other than /");
    }
    if mp.split('/').any(|part| part == ".." || part == ".") || mp.contains('\0') {
        return bad("it must not contain . or .. components");
    }
    if ["/proc", "/sys", "/dev"]
        .iter()
        .any(|p| trimmed == *p || trimmed.starts_with(&format!("{p}/")))
    {
        return bad("a volume cannot be mounted on a system file system");
    }
    if let Some(r) = RESERVED_MOUNT_POINTS
        .iter()
        .find(|r| trimmed == **r || trimmed.starts_with(&format!("{r}/")))
    {
        return bad(&format!(
            "{r} is reserved; reserved mount points are {}",
            RESERVED_MOUNT_POINTS.join(", ")
        ));
    }
    Ok(())
}

/// RegisterVolume: registers an EC2 volume with a stack (one stack at a time); returns the
/// registration's own ID.
pub async fn register_volume(cx: Ctx<'_>, req: shapes::RegisterVolumeRequest) -> OpResult {
    let ec2_id = required(&req.ec2_volume_id, "Ec2VolumeId")?;
    let mut w = cx.core.write().await?;
    let stack: Stack = w.get(&req.stack_id).await?;
    if w.find::<Ec2Volume>(ec2_id).await?.is_none() {
        return Err(ApiError::ResourceNotFound(format!(
            "Unable to find EC2 volume {ec2_id}: create it first with `ec2 create-volume`"
        )));
    }
    if let Some(existing) = w
        .list::<Volume>(Filter::Parent(ec2_id))
        .await?
        .into_iter()
        .next()
    {
        return Err(ApiError::Validation(
            if existing.stack_id == stack.stack_id {
                format!(
                    "EC2 volume {ec2_id} is already registered with this stack as volume {}",
                    existing.volume_id
                )
            } else {
                format!(
                    "EC2 volume {ec2_id} is already registered with stack {}; deregister it first",
                    existing.stack_id
                )
            },
        ));
    }
    let id = new_id();
    w.put(&Volume {
        volume_id: id.clone(),
        ec2_volume_id: ec2_id.to_string(),
        stack_id: stack.stack_id.clone(),
        name: None,
        mount_point: None,
        instance_id: None,
        device: None,
        attached_at: None,
        raid_array_id: None,
    })
    .await?;
    w.commit().await?;
    Reply::json(&json!({ "VolumeId": id }))
}

/// UpdateVolume: its name and mount point (the mount point only while its instance, if any, is
/// offline: it is where the next boot mounts it).
pub async fn update_volume(cx: Ctx<'_>, req: shapes::UpdateVolumeRequest) -> OpResult {
    check_len(req.name.as_deref(), "Name", MAX_NAME)?;
    if let Some(mp) = req.mount_point.as_deref() {
        check_mount_point(mp)?;
    }
    let mut w = cx.core.write().await?;
    let mut vol = registered(&mut w, &req.volume_id).await?;
    if let Some(mp) = req.mount_point
        && Some(&mp) != vol.mount_point.as_ref()
    {
        if let Some(iid) = vol.instance_id.clone() {
            let inst: Instance = w.get(&iid).await?;
            offline(&inst, "moved to another mount point")?;
            clash(&mut w, &iid, &mp, &vol.volume_id).await?;
        }
        vol.mount_point = Some(mp);
    }
    if let Some(name) = req.name {
        vol.name = Some(name).filter(|n| !n.is_empty());
    }
    w.put(&vol).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// Refuses a mount point another volume of the instance has.
async fn clash(
    w: &mut Write<'_>,
    instance_id: &str,
    mp: &str,
    except: &str,
) -> Result<(), ApiError> {
    let taken = w
        .list::<Volume>(Filter::Instance(instance_id))
        .await?
        .into_iter()
        .find(|v| v.volume_id != except && v.mount_point.as_deref() == Some(mp));
    match taken {
        Some(v) => Err(ApiError::Validation(format!(
            "Instance {instance_id} already has volume {} at {mp}",
            v.volume_id
        ))),
        None => Ok(()),
    }
}

/// AssignVolume: gives a registered volume with a mount point to an offline instance of its
/// stack; the instance mounts it when it boots.
pub async fn assign_volume(cx: Ctx<'_>, req: shapes::AssignVolumeRequest) -> OpResult {
    let instance_id = required(&req.instance_id, "InstanceId")?;
    let mut w = cx.core.write().await?;
    let mut vol = registered(&mut w, &req.volume_id).await?;
    let inst: Instance = w.get(instance_id).await?;
    if inst.stack_id != vol.stack_id {
        return Err(ApiError::Validation(format!(
            "Volume {} is registered with stack {}, not with the stack of instance {instance_id}",
            vol.volume_id, vol.stack_id
        )));
    }
    has_own_machine(&inst, "a volume")?;
    let Some(mp) = vol.mount_point.clone() else {
        return Err(ApiError::Validation(format!(
            "Volume {} has no mount point; set one with UpdateVolume before assigning it",
            vol.volume_id
        )));
    };
    if vol.instance_id.as_deref() == Some(instance_id) {
        return Ok(Reply::empty());
    }
    if let Some(other) = &vol.instance_id {
        return Err(ApiError::Validation(format!(
            "Volume {} is assigned to instance {other}; unassign it first",
            vol.volume_id
        )));
    }
    offline(&inst, "assigned")?;
    clash(&mut w, instance_id, &mp, &vol.volume_id).await?;
    let taken: Vec<Option<String>> = w
        .list::<Volume>(Filter::Instance(instance_id))
        .await?
        .into_iter()
        .map(|v| v.device)
        .collect();
    let device = volumes::next_device(&taken).ok_or_else(|| {
        ApiError::Validation(format!(
            "Instance {instance_id} has no device name left for another volume"
        ))
    })?;
    vol.instance_id = Some(instance_id.to_string());
    vol.device = Some(device);
    vol.attached_at = Some(now());
    w.put(&vol).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// UnassignVolume: takes a volume off its (offline) instance; it stays registered.
pub async fn unassign_volume(cx: Ctx<'_>, req: shapes::UnassignVolumeRequest) -> OpResult {
    let mut w = cx.core.write().await?;
    let mut vol = registered(&mut w, &req.volume_id).await?;
    let Some(iid) = vol.instance_id.clone() else {
        return Err(ApiError::Validation(format!(
            "Volume {} is not assigned to an instance",
            vol.volume_id
        )));
    };
    if let Some(inst) = w.find::<Instance>(&iid).await? {
        offline(&inst, "unassigned")?;
    }
    unassign(&mut vol);
    w.put(&vol).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

fn unassign(vol: &mut Volume) {
    vol.instance_id = None;
    vol.device = None;
    vol.attached_at = None;
}

/// DescribeVolumes: the registered volumes of a stack, of an instance, or those named (a RAID
/// array's: none, as this server builds no arrays).
pub async fn describe_volumes(cx: Ctx<'_>, req: shapes::DescribeVolumesRequest) -> OpResult {
    at_most_one(&[
        ("InstanceId", req.instance_id.is_some()),
        ("StackId", req.stack_id.is_some()),
        ("RaidArrayId", req.raid_array_id.is_some()),
        ("VolumeIds", req.volume_ids.is_some()),
    ])?;
    let vols: Vec<Volume> = if let Some(id) = &req.instance_id {
        cx.core.get::<Instance>(id).await?;
        owned(cx.core.list::<Volume>(Filter::Instance(id)).await?)
    } else if let Some(id) = &req.stack_id {
        cx.core.get::<Stack>(id).await?;
        owned(cx.core.list::<Volume>(Filter::Stack(id)).await?)
    } else if let Some(ids) = &req.volume_ids {
        owned(cx.core.get_all::<Volume>(ids).await?)
    } else if let Some(id) = &req.raid_array_id {
        return Err(no_raid_array(id));
    } else {
        return Err(ApiError::Validation(
            "Please provide an instance ID, a stack ID, a RAID array ID or one or more volume IDs"
                .into(),
        ));
    };
    let ec2_ids: Vec<String> = vols.iter().map(|v| v.ec2_volume_id.clone()).collect();
    let ec2 = cx.core.list::<Ec2Volume>(Filter::Ids(&ec2_ids)).await?;
    let region = cx.core.region();
    let shown: Vec<shapes::Volume> = vols
        .iter()
        .map(|v| {
            let e = ec2.iter().find(|e| e.volume_id == v.ec2_volume_id);
            wire::volume(v, e.map(|e| &**e), region)
        })
        .collect();
    Reply::json(&json!({ "Volumes": shown }))
}

fn owned<R: Clone>(cached: Vec<opsworks_store::Cached<R>>) -> Vec<R> {
    cached.iter().map(|c| c.to_owned_value()).collect()
}

fn no_raid_array(id: &str) -> ApiError {
    ApiError::ResourceNotFound(format!("Unable to find RAID array with ID {id}"))
}

/// DeregisterVolume: takes a volume out of its stack (off its instance first, which must then
/// be offline); the EC2 volume and its data stay.
pub async fn deregister_volume(cx: Ctx<'_>, req: shapes::DeregisterVolumeRequest) -> OpResult {
    let mut w = cx.core.write().await?;
    let vol = registered(&mut w, &req.volume_id).await?;
    if let Some(iid) = &vol.instance_id
        && let Some(inst) = w.find::<Instance>(iid).await?
    {
        offline(&inst, "deregistered")?;
    }
    w.delete(Kind::Volume, &vol.volume_id).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DescribeRaidArrays: the RAID arrays of a stack or an instance, or those named. This server
/// builds none (layers refuse a `RaidLevel` on hosts without md), so the lists are empty and a
/// named array is unknown.
pub async fn describe_raid_arrays(cx: Ctx<'_>, req: shapes::DescribeRaidArraysRequest) -> OpResult {
    at_most_one(&[
        ("InstanceId", req.instance_id.is_some()),
        ("StackId", req.stack_id.is_some()),
        ("RaidArrayIds", req.raid_array_ids.is_some()),
    ])?;
    if let Some(id) = &req.instance_id {
        cx.core.get::<Instance>(id).await?;
    } else if let Some(id) = &req.stack_id {
        cx.core.get::<Stack>(id).await?;
    } else if let Some(first) = req.raid_array_ids.as_ref().and_then(|ids| ids.first()) {
        return Err(no_raid_array(first));
    } else if req.raid_array_ids.is_none() {
        return Err(ApiError::Validation(
            "Please provide an instance ID, a stack ID or one or more RAID array IDs".into(),
        ));
    }
    Reply::json(&json!({ "RaidArrays": [] }))
}

/// What DeleteInstance does with the instance's volumes in `w`: deleted with their EC2 volumes
/// with `delete` (their images go once committed, [`remove_after_delete`]), else unassigned and
/// left registered.
pub async fn on_instance_deleted(
    w: &mut Write<'_>,
    instance_id: &str,
    delete: bool,
) -> Result<Vec<String>, ApiError> {
    let mut deleted = Vec::new();
    for mut vol in w.list::<Volume>(Filter::Instance(instance_id)).await? {
        if delete {
            w.delete(Kind::Volume, &vol.volume_id).await?;
            w.delete(Kind::Ec2Volume, &vol.ec2_volume_id).await?;
            deleted.push(vol.ec2_volume_id.clone());
        } else {
            unassign(&mut vol);
            w.put(&vol).await?;
        }
    }
    Ok(deleted)
}

/// Removes the images of the volumes [`on_instance_deleted`] deleted.
pub fn remove_after_delete(cx: Ctx<'_>, deleted: &[String]) {
    for id in deleted {
        volumes::remove_image(cx.core, id);
    }
}

/// What DeleteStack does with the stack's volumes and Elastic IPs in `w`: deregistered (they
/// stay allocated and created, as their EC2 resources outlive the stack).
pub async fn on_stack_deleted(w: &mut Write<'_>, stack_id: &str) -> Result<(), CoreError> {
    for vol in w.list::<Volume>(Filter::Stack(stack_id)).await? {
        w.delete(Kind::Volume, &vol.volume_id).await?;
    }
    for mut eip in w
        .list::<opsworks_model::resource::ElasticIp>(Filter::Stack(stack_id))
        .await?
    {
        eip.stack_id = None;
        eip.name = None;
        eip.instance_id = None;
        eip.association_id = None;
        w.put(&eip).await?;
    }
    Ok(())
}

//! Volumes: an EC2 volume is an XFS file system in a sparse disk image under `DIR/volumes/`
//! (hidden from machines with the rest of the data dir). A volume registered with a stack and
//! assigned to an instance is mounted at its mount point when the instance's machine boots
//! (`opsworks_sandbox::Disk`), so its data survives stop and start and moves with it; a layer's
//! `VolumeConfigurations` give each new instance volumes of its own at its first boot.
//!
//! Images are made whole before their record is written and removed after their record is gone;
//! [`sweep`] removes at start what a crash between the two left, and detaches loop devices no
//! running machine should hold.

use std::path::PathBuf;

use opsworks_model::layer::LayerType;
use opsworks_model::resource::{Ec2Tag, Ec2Volume, Instance, Layer, Volume, VolumeConfiguration};
use opsworks_model::{ec2_id, new_id};
use opsworks_sandbox::{Disk, MachineState, disk};
use opsworks_store::Filter;

use crate::core::{Core, CoreError, CoreResult, now};

/// One GiB, the unit of EC2's `Size`.
const GIB: u64 = 1 << 30;

/// The device names volumes get on an instance, EC2's recommended range.
const DEVICES: &[&str] = &[
    "/dev/sdf", "/dev/sdg", "/dev/sdh", "/dev/sdi", "/dev/sdj", "/dev/sdk", "/dev/sdl", "/dev/sdm",
    "/dev/sdn", "/dev/sdo", "/dev/sdp",
];

/// The file system every volume is made with, as the original required.
pub const FSTYPE: &str = "xfs";

/// Where the disk image of an EC2 volume lives.
pub fn image_path(core: &Core, ec2_volume_id: &str) -> PathBuf {
    core.data_dir()
        .join("volumes")
        .join(format!("{ec2_volume_id}.img"))
}

/// What a new EC2 volume is to be.
#[derive(Debug, Clone, Default)]
pub struct NewVolume {
    /// GiB.
    pub size: i64,
    /// The EBS type.
    pub volume_type: String,
    /// IOPS (io1, io2, gp3).
    pub iops: Option<i64>,
    /// MiB/s (gp3).
    pub throughput: Option<i64>,
    /// The availability zone.
    pub availability_zone: String,
    /// CreateVolume's idempotency token.
    pub client_token: Option<String>,
    /// Its tags.
    pub tags: Vec<Ec2Tag>,
}

fn io(e: impl std::fmt::Display) -> CoreError {
    CoreError::Io(e.to_string())
}

/// Creates an EC2 volume: its image (made whole first), then its record. A failure leaves
/// neither. A volume with the same client token made meanwhile is returned instead.
pub async fn create(core: &Core, new: NewVolume) -> CoreResult<Ec2Volume> {
    let id = ec2_id("vol");
    let path = image_path(core, &id);
    let dir = core.data_dir().join("volumes");
    std::fs::create_dir_all(&dir).map_err(|e| io(format!("creating {}: {e}", dir.display())))?;
    let bytes = u64::try_from(new.size).unwrap_or(0).saturating_mul(GIB);
    let target = path.clone();
    tokio::task::spawn_blocking(move || disk::create_image(&target, bytes))
        .await
        .map_err(|e| CoreError::Machine(format!("making a volume: {e}")))?
        .map_err(|e| match e {
            opsworks_sandbox::Error::Unavailable { missing } => {
                CoreError::Invalid(format!("This server cannot make volumes: {missing}"))
            }
            other => CoreError::Machine(format!("making the volume's file system: {other}")),
        })?;
    let volume = Ec2Volume {
        volume_id: id,
        size: new.size,
        volume_type: new.volume_type,
        iops: new.iops,
        throughput: new.throughput,
        availability_zone: new.availability_zone,
        created_at: ec2_now(),
        client_token: new.client_token,
        tags: new.tags,
    };
    let recorded = async {
        let mut w = core.write().await?;
        if let Some(token) = &volume.client_token
            && let Some(earlier) = w
                .list::<Ec2Volume>(Filter::All)
                .await?
                .into_iter()
                .find(|v| v.client_token.as_ref() == Some(token))
        {
            return Ok(earlier);
        }
        w.put(&volume).await?;
        w.commit().await?;
        Ok::<_, CoreError>(volume.clone())
    }
    .await;
    match recorded {
        Ok(v) if v.volume_id == volume.volume_id => Ok(v),
        other => {
            let _ = std::fs::remove_file(&path);
            other
        }
    }
}

/// The time as EC2 writes it (`2026-12-07T10:00:00.000Z`).
pub fn ec2_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string()
}

/// Whether a machine has the volume's image attached.
pub fn in_use(core: &Core, ec2_volume_id: &str) -> bool {
    disk::image_in_use(&image_path(core, ec2_volume_id)).unwrap_or(false)
}

/// Removes a volume's image once its record is gone; a failure is logged and [`sweep`] removes
/// it at the next start.
pub fn remove_image(core: &Core, ec2_volume_id: &str) {
    let path = image_path(core, ec2_volume_id);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), "removing a deleted volume's image failed: {e}");
    }
}

/// The disks an instance's machine boots with: its assigned volumes, each at its mount point.
pub async fn disks_for(core: &Core, instance_id: &str) -> CoreResult<Vec<Disk>> {
    let mut volumes = core.list::<Volume>(Filter::Instance(instance_id)).await?;
    volumes.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    let mut disks = Vec::new();
    for v in volumes {
        let Some(mount_point) = v.mount_point.clone() else {
            continue;
        };
        let image = image_path(core, &v.ec2_volume_id);
        if !image.exists() {
            return Err(CoreError::Invalid(format!(
                "Volume {} ({}) has lost its disk image {}; unassign it to start the instance without it",
                v.volume_id,
                v.ec2_volume_id,
                image.display()
            )));
        }
        disks.push(Disk {
            image,
            mount_point: mount_point.into(),
            fstype: FSTYPE.to_string(),
        });
    }
    Ok(disks)
}

/// The first of EC2's device names none of `taken` uses.
pub fn next_device(taken: &[Option<String>]) -> Option<String> {
    DEVICES
        .iter()
        .find(|d| !taken.iter().any(|t| t.as_deref() == Some(**d)))
        .map(|d| d.to_string())
}

/// Refuses what this host cannot build for a layer's volume configurations: RAID arrays (a
/// `RaidLevel`, or several disks) where the kernel has no md support, and encrypted volumes.
pub fn check_buildable(volumes: &[VolumeConfiguration]) -> Result<(), String> {
    for v in volumes {
        let mp = &v.mount_point;
        if v.encrypted == Some(true) {
            return Err(format!(
                "Encrypted volumes (mount point {mp}) are not supported by this server"
            ));
        }
        if let Some(level) = v.raid_level {
            let why = match disk::raid_support() {
                Err(why) => why,
                Ok(()) => "this server does not build RAID arrays yet".to_string(),
            };
            return Err(format!(
                "RaidLevel {level} (mount point {mp}) cannot be built: {why}; use one disk without a RaidLevel"
            ));
        }
        if v.number_of_disks > 1 {
            return Err(format!(
                "NumberOfDisks {} (mount point {mp}) needs a RaidLevel, and this server builds no RAID arrays; use 1",
                v.number_of_disks
            ));
        }
    }
    Ok(())
}

/// At an instance's first boot, a volume of each of its layers' volume configurations that no
/// volume assigned to it serves yet: made, registered with the stack and assigned, named after the
/// instance and the mount point. Later boots find them assigned.
pub async fn for_layers(core: &Core, inst: &Instance) -> CoreResult<()> {
    if inst.ec2_instance_id.is_some() {
        // Not a first boot: the layers' settings apply to new instances only.
        return Ok(());
    }
    let layers = core.list::<Layer>(Filter::Ids(&inst.layer_ids)).await?;
    let mut wanted: Vec<VolumeConfiguration> = Vec::new();
    for layer in layers.iter().filter(|l| l.r#type != LayerType::EcsCluster) {
        for v in &layer.volume_configurations {
            if !wanted.iter().any(|w| w.mount_point == v.mount_point) {
                wanted.push(v.clone());
            }
        }
    }
    check_buildable(&wanted).map_err(CoreError::Invalid)?;
    for config in wanted {
        let assigned = core
            .list::<Volume>(Filter::Instance(&inst.instance_id))
            .await?;
        if assigned
            .iter()
            .any(|v| v.mount_point.as_deref() == Some(config.mount_point.as_str()))
        {
            continue;
        }
        let ec2 = create(
            core,
            NewVolume {
                size: config.size,
                volume_type: config
                    .volume_type
                    .clone()
                    .unwrap_or_else(|| "standard".into()),
                iops: config.iops,
                availability_zone: inst
                    .availability_zone
                    .clone()
                    .unwrap_or_else(|| format!("{}a", core.region())),
                ..NewVolume::default()
            },
        )
        .await?;
        let assigned_now = async {
            let mut w = core.write().await?;
            let mine: Vec<Volume> = w.list(Filter::Instance(&inst.instance_id)).await?;
            let taken: Vec<Option<String>> = mine.iter().map(|v| v.device.clone()).collect();
            w.put(&Volume {
                volume_id: new_id(),
                ec2_volume_id: ec2.volume_id.clone(),
                stack_id: inst.stack_id.clone(),
                name: Some(format!("{} {}", inst.hostname, config.mount_point)),
                mount_point: Some(config.mount_point.clone()),
                instance_id: Some(inst.instance_id.clone()),
                device: next_device(&taken),
                attached_at: Some(now()),
                raid_array_id: None,
            })
            .await?;
            w.commit().await
        }
        .await;
        if let Err(e) = assigned_now {
            // Nothing half-made: the volume goes if it cannot be registered.
            if let Ok(mut w) = core.write().await {
                let _ = w
                    .delete(opsworks_model::Kind::Ec2Volume, &ec2.volume_id)
                    .await;
                let _ = w.commit().await;
            }
            remove_image(core, &ec2.volume_id);
            return Err(e);
        }
    }
    Ok(())
}

/// At start: images no volume record names (deleted, or left half-made by a crash) are removed,
/// and loop devices of this data dir's images that no running machine should hold are detached.
pub async fn sweep(core: &Core) -> CoreResult<()> {
    let dir = core.data_dir().join("volumes");
    let volumes = core.list::<Ec2Volume>(Filter::All).await?;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let known = name
                .strip_suffix(".img")
                .is_some_and(|id| volumes.iter().any(|v| v.volume_id == id));
            if !known && !disk::image_in_use(&entry.path()).unwrap_or(true) {
                tracing::warn!(path = %entry.path().display(), "removing a disk image no volume owns");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let Ok(dir) = dir.canonicalize() else {
        return Ok(());
    };
    for device in disk::loop_devices() {
        if !device.backing_file.starts_with(&dir) {
            continue;
        }
        let id = device
            .backing_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !held_by_running_machine(core, &id).await? {
            tracing::warn!(device = %device.device.display(), image = %device.backing_file.display(), "detaching a loop device no running machine should hold");
            if let Err(e) = disk::detach_loop(&device.device) {
                tracing::warn!("{e}");
            }
        }
    }
    Ok(())
}

async fn held_by_running_machine(core: &Core, ec2_volume_id: &str) -> CoreResult<bool> {
    let Some(m) = core.machines() else {
        return Ok(false);
    };
    for v in core.list::<Volume>(Filter::Parent(ec2_volume_id)).await? {
        if let Some(iid) = &v.instance_id
            && matches!(
                m.provider().status(iid).await,
                Ok(MachineState::Running { .. })
            )
        {
            return Ok(true);
        }
    }
    Ok(false)
}

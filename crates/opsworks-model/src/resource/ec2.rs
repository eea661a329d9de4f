//! The stack's EC2 resources: Elastic IPs (an address of the server's pool, with its OpsWorks
//! registration and association) and volumes (the EC2 volume, a disk image on the server's host,
//! and its OpsWorks registration, which has an ID of its own).

use serde::{Deserialize, Serialize};

use super::{Kind, Resource};

/// An EC2 tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ec2Tag {
    /// Its key.
    pub key: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// An Elastic IP: allocated with `ec2 AllocateAddress` (stored under the address itself, which is
/// how OpsWorks names it), registered with at most one stack and associated with at most one of
/// its instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ElasticIp {
    /// The address (the ID).
    pub ip: String,
    /// EC2's allocation ID (`eipalloc-...`).
    pub allocation_id: String,
    /// `vpc` or `standard`.
    pub domain: String,
    /// The region it was allocated in.
    pub region: String,
    /// When it was allocated.
    pub created_at: String,
    /// Its EC2 tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Ec2Tag>,
    /// The stack it is registered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_id: Option<String>,
    /// Its OpsWorks name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The OpsWorks instance it is associated with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// EC2's association ID (`eipassoc-...`) while associated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association_id: Option<String>,
}

impl Resource for ElasticIp {
    const KIND: Kind = Kind::ElasticIp;
    fn id(&self) -> &str {
        &self.ip
    }
    fn stack_id(&self) -> Option<&str> {
        self.stack_id.as_deref()
    }
    fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }
}

/// An EC2 volume (`ec2 CreateVolume`): an XFS file system in a disk image on the server's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ec2Volume {
    /// Its ID (`vol-...`).
    pub volume_id: String,
    /// Its size in GiB.
    pub size: i64,
    /// `standard`, `gp2`, `gp3`, `io1`, `io2`, `st1` or `sc1`.
    pub volume_type: String,
    /// Provisioned IOPS (recorded; the disk image has no such limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    /// Throughput in MiB/s (gp3; recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i64>,
    /// Its availability zone.
    pub availability_zone: String,
    /// When it was created.
    pub created_at: String,
    /// The idempotency token of the CreateVolume that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    /// Its EC2 tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Ec2Tag>,
}

impl Resource for Ec2Volume {
    const KIND: Kind = Kind::Ec2Volume;
    fn id(&self) -> &str {
        &self.volume_id
    }
    fn stack_id(&self) -> Option<&str> {
        None
    }
}

/// An EC2 volume registered with a stack (`RegisterVolume`, or made for a layer's volume
/// configuration), with the mount point it gets on the instance it is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    /// Its OpsWorks ID.
    pub volume_id: String,
    /// The EC2 volume.
    pub ec2_volume_id: String,
    /// The stack it is registered with.
    pub stack_id: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it is mounted on its instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_point: Option<String>,
    /// The instance it is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The device name it has on that instance (`/dev/sdf`, EC2's style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// When it was assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_at: Option<String>,
    /// The RAID array it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raid_array_id: Option<String>,
}

impl Resource for Volume {
    const KIND: Kind = Kind::Volume;
    fn id(&self) -> &str {
        &self.volume_id
    }
    fn stack_id(&self) -> Option<&str> {
        Some(&self.stack_id)
    }
    /// Its EC2 volume, so the registration of a volume is found by the volume's ID.
    fn parent_id(&self) -> Option<&str> {
        Some(&self.ec2_volume_id)
    }
    fn instance_id(&self) -> Option<&str> {
        self.instance_id.as_deref()
    }
}

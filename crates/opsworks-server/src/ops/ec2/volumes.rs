//! EBS volumes of EC2: CreateVolume, DescribeVolumes, DeleteVolume. A volume is an XFS file
//! system in a sparse disk image on this host (`core::volumes`), made before CreateVolume
//! answers (so it is `available` at once); it is `in-use` while OpsWorks has it assigned to an
//! instance.

use serde_json::{Value, json};

use opsworks_api::query::AwsError;
use opsworks_model::Kind;
use opsworks_model::resource::{Ec2Volume, Instance, Volume};
use opsworks_store::Filter;

use super::{
    Ctx, Ec2Result, filters, internal, invalid_value, matches_any, s, strings, tag_filter,
    tag_list, tags_of, unknown_filter, unsupported,
};
use crate::core::volumes::{self, NewVolume};

/// Size ranges in GiB per volume type, as EC2 documents them.
const SIZES: &[(&str, i64, i64)] = &[
    ("standard", 1, 1024),
    ("gp2", 1, 16384),
    ("gp3", 1, 16384),
    ("io1", 4, 16384),
    ("io2", 4, 65536),
    ("st1", 125, 16384),
    ("sc1", 125, 16384),
];

fn int(input: &Value, key: &str) -> Option<i64> {
    input.get(key).and_then(Value::as_i64)
}

fn combination(message: String) -> AwsError {
    AwsError::service("InvalidParameterCombination", message)
}

/// CreateVolume: a new volume of `Size` GiB in the caller's region (no snapshots here), made
/// before this answers; a repeated `ClientToken` returns the volume it made.
pub async fn create_volume(cx: Ctx<'_>, input: &Value) -> Ec2Result {
    if let Some(snap) = s(input, "SnapshotId") {
        return Err(AwsError::service(
            "InvalidSnapshot.NotFound",
            format!("The snapshot '{snap}' does not exist."),
        ));
    }
    if input.get("Encrypted").and_then(Value::as_bool) == Some(true)
        || input.get("KmsKeyId").is_some()
    {
        return Err(unsupported("Encrypted volumes"));
    }
    if input.get("MultiAttachEnabled").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported("Multi-Attach"));
    }
    if input.get("OutpostArn").is_some() || input.get("Operator").is_some() {
        return Err(unsupported(
            "Volumes on Outposts or managed by another service",
        ));
    }
    let Some(size) = int(input, "Size") else {
        return Err(AwsError::service(
            "MissingParameter",
            "The request must contain the parameter size/snapshot",
        ));
    };
    let zone = s(input, "AvailabilityZone").unwrap_or("");
    let region = &cx.principal.region;
    let letter_ok = zone
        .strip_prefix(region.as_str())
        .is_some_and(|l| l.len() == 1 && ('a'..='f').contains(&l.chars().next().unwrap_or(' ')));
    if !letter_ok {
        return Err(invalid_value(format!(
            "Invalid availability zone: [{zone}]"
        )));
    }
    let volume_type = s(input, "VolumeType").unwrap_or("gp2");
    let Some(&(_, min, max)) = SIZES.iter().find(|(t, _, _)| *t == volume_type) else {
        return Err(invalid_value(format!(
            "Value ({volume_type}) for parameter volumeType is invalid."
        )));
    };
    if size < min {
        return Err(invalid_value(format!(
            "Volume of {size}GiB is too small; minimum is {min}GiB."
        )));
    }
    if size > max {
        return Err(invalid_value(format!(
            "Volume of {size}GiB is too large; maximum is {max}GiB."
        )));
    }
    let iops = int(input, "Iops");
    match (volume_type, iops) {
        ("io1" | "io2", None) => {
            return Err(AwsError::service(
                "MissingParameter",
                format!("The parameter iops must be specified for {volume_type} volumes."),
            ));
        }
        ("io1" | "io2" | "gp3", Some(i)) if !(100..=256_000).contains(&i) => {
            return Err(invalid_value(format!(
                "Value ({i}) for parameter iops is invalid."
            )));
        }
        ("io1" | "io2" | "gp3", _) | (_, None) => {}
        (t, Some(_)) => {
            return Err(combination(format!(
                "The parameter iops is not supported for {t} volumes."
            )));
        }
    }
    let throughput = int(input, "Throughput");
    if let Some(t) = throughput {
        if volume_type != "gp3" {
            return Err(combination(format!(
                "The parameter throughput is not supported for {volume_type} volumes."
            )));
        }
        if !(125..=1000).contains(&t) {
            return Err(invalid_value(format!(
                "Value ({t}) for parameter throughput is invalid."
            )));
        }
    }
    let tags = tags_of(input, "volume")?;
    let token = s(input, "ClientToken").map(str::to_string);
    if let Some(token) = &token
        && let Some(earlier) = cx
            .core
            .list::<Ec2Volume>(Filter::All)
            .await
            .map_err(internal)?
            .iter()
            .find(|v| v.client_token.as_ref() == Some(token))
    {
        if earlier.size != size
            || earlier.volume_type != volume_type
            || earlier.availability_zone != zone
        {
            return Err(AwsError::service(
                "IdempotentParameterMismatch",
                "The client token you have provided is associated with a resource that is already deleted or has different parameters. Please use a different client token.",
            ));
        }
        return shown(cx, earlier).await;
    }
    let volume = volumes::create(
        cx.core,
        NewVolume {
            size,
            volume_type: volume_type.to_string(),
            iops,
            throughput,
            availability_zone: zone.to_string(),
            client_token: token,
            tags,
        },
    )
    .await
    .map_err(internal)?;
    shown(cx, &volume).await
}

async fn shown(cx: Ctx<'_>, v: &Ec2Volume) -> Ec2Result {
    let registrations = cx
        .core
        .list::<Volume>(Filter::Parent(&v.volume_id))
        .await
        .map_err(internal)?;
    let instances = cx
        .core
        .list::<Instance>(Filter::All)
        .await
        .map_err(internal)?;
    Ok(volume_shape(
        v,
        registrations.first().map(|r| &**r),
        &instances,
    ))
}

/// A volume as EC2 shows it, attached to the instance OpsWorks assigned it to.
fn volume_shape(
    v: &Ec2Volume,
    reg: Option<&Volume>,
    instances: &[opsworks_store::Cached<Instance>],
) -> Value {
    let attached = reg.and_then(|r| Some((r, r.instance_id.as_deref()?)));
    let mut out = json!({
        "VolumeId": v.volume_id,
        "Size": v.size,
        "AvailabilityZone": v.availability_zone,
        "State": if attached.is_some() { "in-use" } else { "available" },
        "CreateTime": v.created_at,
        "VolumeType": v.volume_type,
        "Encrypted": false,
        "MultiAttachEnabled": false,
        "SnapshotId": "",
        "Tags": tag_list(&v.tags),
        "Attachments": [],
    });
    if let Some(i) = v.iops.or((v.volume_type == "gp3").then_some(3000)) {
        out["Iops"] = json!(i);
    }
    if let Some(t) = v.throughput.or((v.volume_type == "gp3").then_some(125)) {
        out["Throughput"] = json!(t);
    }
    if let Some((reg, iid)) = attached {
        let ec2_instance = instances
            .iter()
            .find(|i| i.instance_id == iid)
            .and_then(|i| i.ec2_instance_id.clone())
            .unwrap_or_else(|| iid.to_string());
        let mut a = json!({
            "VolumeId": v.volume_id,
            "InstanceId": ec2_instance,
            "State": "attached",
            "DeleteOnTermination": false,
        });
        if let Some(d) = &reg.device {
            a["Device"] = json!(d);
        }
        if let Some(t) = &reg.attached_at {
            a["AttachTime"] = json!(t.replace("+00:00", "Z"));
        }
        out["Attachments"] = json!([a]);
    }
    out
}

/// DescribeVolumes: the volumes of the caller's region, those named, filtered, in pages.
pub async fn describe_volumes(cx: Ctx<'_>, input: &Value) -> Ec2Result {
    let ids = strings(input, "VolumeIds");
    let max = int(input, "MaxResults");
    if max.is_some() && !ids.is_empty() {
        return Err(combination(
            "The parameter volumeSet cannot be used with the parameter maxResults".into(),
        ));
    }
    if let Some(m) = max
        && !(5..=500).contains(&m)
    {
        return Err(invalid_value(format!(
            "Value ({m}) for parameter maxResults is invalid. Expecting a value between 5 and 500."
        )));
    }
    let region = cx.principal.region.as_str();
    let all: Vec<Ec2Volume> = cx
        .core
        .list::<Ec2Volume>(Filter::All)
        .await
        .map_err(internal)?
        .iter()
        .filter(|v| v.availability_zone.starts_with(region))
        .map(|v| v.to_owned_value())
        .collect();
    for id in &ids {
        if !all.iter().any(|v| v.volume_id == *id) {
            return Err(not_found(id));
        }
    }
    let registrations = cx
        .core
        .list::<Volume>(Filter::All)
        .await
        .map_err(internal)?;
    let instances = cx
        .core
        .list::<Instance>(Filter::All)
        .await
        .map_err(internal)?;
    let filters = filters(
        input,
        &[
            "volume-id",
            "status",
            "size",
            "availability-zone",
            "volume-type",
            "encrypted",
            "create-time",
            "attachment.instance-id",
            "attachment.status",
            "attachment.device",
        ],
    )?;
    let mut shown = Vec::new();
    for v in all
        .iter()
        .filter(|v| ids.is_empty() || ids.contains(&v.volume_id))
    {
        let reg = registrations
            .iter()
            .find(|r| r.ec2_volume_id == v.volume_id)
            .map(|r| &**r);
        let shape = volume_shape(v, reg, &instances);
        let attachment = &shape["Attachments"][0];
        let mut keep = true;
        for (name, values) in &filters {
            let field = match name.as_str() {
                "volume-id" => shape["VolumeId"].as_str().map(str::to_string),
                "status" => shape["State"].as_str().map(str::to_string),
                "size" => Some(v.size.to_string()),
                "availability-zone" => Some(v.availability_zone.clone()),
                "volume-type" => Some(v.volume_type.clone()),
                "encrypted" => Some("false".into()),
                "create-time" => Some(v.created_at.clone()),
                "attachment.instance-id" => attachment["InstanceId"].as_str().map(str::to_string),
                "attachment.status" => attachment["State"].as_str().map(str::to_string),
                "attachment.device" => attachment["Device"].as_str().map(str::to_string),
                other => match tag_filter(other, values, &v.tags) {
                    Some(ok) => {
                        keep &= ok;
                        continue;
                    }
                    None => return Err(unknown_filter(other)),
                },
            };
            keep &= matches_any(values, field.as_deref());
        }
        if keep {
            shown.push(shape);
        }
    }
    let start = match s(input, "NextToken") {
        Some(t) => t
            .strip_prefix("vt-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= shown.len())
            .ok_or_else(|| invalid_value(format!("The token '{t}' is invalid.")))?,
        None => 0,
    };
    let end = max.map_or(shown.len(), |m| (start + m as usize).min(shown.len()));
    let mut out = json!({ "Volumes": shown[start..end].to_vec() });
    if end < shown.len() {
        out["NextToken"] = json!(format!("vt-{end}"));
    }
    Ok(out)
}

fn not_found(id: &str) -> AwsError {
    AwsError::service(
        "InvalidVolume.NotFound",
        format!("The volume '{id}' does not exist."),
    )
}

/// DeleteVolume: a volume no instance has and no stack registers goes, with its data.
pub async fn delete_volume(cx: Ctx<'_>, input: &Value) -> Ec2Result {
    let id = s(input, "VolumeId").unwrap_or("");
    let region = cx.principal.region.as_str();
    let mut w = cx.core.write().await.map_err(internal)?;
    let volume = w
        .find::<Ec2Volume>(id)
        .await
        .map_err(internal)?
        .filter(|v| v.availability_zone.starts_with(region))
        .ok_or_else(|| not_found(id))?;
    let in_use = |m: String| AwsError::service("VolumeInUse", m);
    if let Some(reg) = w
        .list::<Volume>(Filter::Parent(id))
        .await
        .map_err(internal)?
        .into_iter()
        .next()
    {
        return Err(in_use(match &reg.instance_id {
            Some(iid) => format!("Volume {id} is currently attached to {iid}"),
            None => format!(
                "Volume {id} is registered with OpsWorks stack {} as volume {}; deregister it first",
                reg.stack_id, reg.volume_id
            ),
        }));
    }
    if volumes::in_use(cx.core, id) {
        return Err(in_use(format!(
            "Volume {id} is still attached to a machine of this host"
        )));
    }
    w.delete(Kind::Ec2Volume, &volume.volume_id)
        .await
        .map_err(internal)?;
    w.commit().await.map_err(internal)?;
    volumes::remove_image(cx.core, id);
    Ok(json!({}))
}

//! Elastic IP addresses of EC2: AllocateAddress, DescribeAddresses, ReleaseAddress. An address
//! comes from the server's pool, is reserved on the host while allocated (another server on the
//! host cannot take it) and goes back to the pool on release.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use opsworks_api::query::AwsError;
use opsworks_model::resource::{ElasticIp, Instance};
use opsworks_model::{Kind, ec2_id};
use opsworks_store::Filter;

use super::{
    Ctx, Ec2Result, filters, internal, invalid_value, matches_any, s, strings, tag_filter,
    tag_list, tags_of, unknown_filter, unsupported,
};
use crate::core::elastic_ips::{self, Reservation};
use crate::core::volumes::ec2_now;

/// AllocateAddress: the given address of the pool, or the lowest free one.
pub async fn allocate_address(cx: Ctx<'_>, input: &Value) -> Ec2Result {
    if s(input, "PublicIpv4Pool").is_some_and(|p| p != "amazon") {
        return Err(AwsError::service(
            "InvalidPublicIpv4PoolID.NotFound",
            format!(
                "The pool ID '{}' does not exist; this server allocates from its own pool only.",
                s(input, "PublicIpv4Pool").unwrap_or("")
            ),
        ));
    }
    for (member, what) in [
        ("CustomerOwnedIpv4Pool", "Customer-owned address pools"),
        ("IpamPoolId", "IPAM pools"),
    ] {
        if input.get(member).is_some() {
            return Err(unsupported(what));
        }
    }
    let region = cx.principal.region.clone();
    if let Some(group) = s(input, "NetworkBorderGroup")
        && group != region
    {
        return Err(invalid_value(format!(
            "The network border group '{group}' is not valid in region {region}."
        )));
    }
    let tags = tags_of(input, "elastic-ip")?;
    let domain = s(input, "Domain").unwrap_or("vpc").to_string();
    let pool = cx.core.elastic_ip_pool();
    let wanted = match s(input, "Address") {
        Some(a) => {
            let ip: Ipv4Addr = a
                .parse()
                .map_err(|_| invalid_value(format!("Invalid IPv4 address: {a}")))?;
            if !pool.contains(ip) {
                return Err(invalid_value(format!(
                    "The address {ip} is outside this server's Elastic IP pool ({pool})."
                )));
            }
            Some(ip)
        }
        None => None,
    };
    let mut w = cx.core.write().await.map_err(internal)?;
    let allocated: Vec<String> = w
        .list::<ElasticIp>(Filter::All)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|e| e.ip)
        .collect();
    let candidates: Vec<Ipv4Addr> = match wanted {
        Some(ip) if allocated.contains(&ip.to_string()) => {
            return Err(in_use(format!("The address {ip} is already allocated.")));
        }
        Some(ip) => vec![ip],
        None => pool
            .iter()
            .filter(|ip| !allocated.contains(&ip.to_string()))
            .collect(),
    };
    let mut chosen = None;
    for ip in candidates {
        match elastic_ips::reserve(cx.core, ip).await.map_err(internal)? {
            Reservation::Reserved => {
                chosen = Some(ip);
                break;
            }
            Reservation::Taken(holder) if wanted.is_some() => {
                return Err(in_use(format!(
                    "The address {ip} is in use on this server's host ({holder})."
                )));
            }
            Reservation::Taken(_) => {}
        }
    }
    let Some(ip) = chosen else {
        return Err(AwsError::service(
            "AddressLimitExceeded",
            format!(
                "The maximum number of addresses has been reached: every address of the pool {pool} is allocated."
            ),
        ));
    };
    let eip = ElasticIp {
        ip: ip.to_string(),
        allocation_id: ec2_id("eipalloc"),
        domain,
        region,
        created_at: ec2_now(),
        tags,
        stack_id: None,
        name: None,
        instance_id: None,
        association_id: None,
    };
    let committed = async {
        w.put(&eip).await?;
        w.commit().await
    }
    .await;
    if let Err(e) = committed {
        elastic_ips::release(cx.core, ip).await;
        return Err(internal(e));
    }
    Ok(json!({
        "PublicIp": eip.ip,
        "AllocationId": eip.allocation_id,
        "Domain": eip.domain,
        "PublicIpv4Pool": "amazon",
        "NetworkBorderGroup": eip.region,
    }))
}

fn in_use(message: String) -> AwsError {
    AwsError::service("InvalidIPAddress.InUse", message)
}

/// DescribeAddresses: the addresses of the caller's region, those named, filtered.
pub async fn describe_addresses(cx: Ctx<'_>, input: &Value) -> Ec2Result {
    let all = regional(cx).await?;
    let ips = strings(input, "PublicIps");
    let allocs = strings(input, "AllocationIds");
    for ip in &ips {
        if !all.iter().any(|e| e.ip == *ip) {
            return Err(AwsError::service(
                "InvalidAddress.NotFound",
                format!("Address '{ip}' not found."),
            ));
        }
    }
    for a in &allocs {
        if !all.iter().any(|e| e.allocation_id == *a) {
            return Err(AwsError::service(
                "InvalidAllocationID.NotFound",
                format!("Allocation ID '{a}' not found."),
            ));
        }
    }
    let instances = cx
        .core
        .list::<Instance>(Filter::All)
        .await
        .map_err(internal)?;
    let filters = filters(
        input,
        &[
            "public-ip",
            "allocation-id",
            "association-id",
            "domain",
            "instance-id",
            "private-ip-address",
            "network-border-group",
        ],
    )?;
    let mut out = Vec::new();
    for eip in &all {
        if (!ips.is_empty() || !allocs.is_empty())
            && !ips.contains(&eip.ip)
            && !allocs.contains(&eip.allocation_id)
        {
            continue;
        }
        let holder = eip
            .instance_id
            .as_deref()
            .and_then(|id| instances.iter().find(|i| i.instance_id == id));
        let instance_id = holder.map(|i| ec2_instance_of(i));
        let private_ip = holder.and_then(|i| i.private_ip.clone());
        let mut keep = true;
        for (name, values) in &filters {
            let field = match name.as_str() {
                "public-ip" => Some(eip.ip.clone()),
                "allocation-id" => Some(eip.allocation_id.clone()),
                "association-id" => eip.association_id.clone(),
                "domain" => Some(eip.domain.clone()),
                "instance-id" => instance_id.clone(),
                "private-ip-address" => private_ip.clone(),
                "network-border-group" => Some(eip.region.clone()),
                other => match tag_filter(other, values, &eip.tags) {
                    Some(ok) => {
                        keep &= ok;
                        continue;
                    }
                    None => return Err(unknown_filter(other)),
                },
            };
            keep &= matches_any(values, field.as_deref());
        }
        if !keep {
            continue;
        }
        let mut item = json!({
            "PublicIp": eip.ip,
            "AllocationId": eip.allocation_id,
            "Domain": eip.domain,
            "PublicIpv4Pool": "amazon",
            "NetworkBorderGroup": eip.region,
            "Tags": tag_list(&eip.tags),
        });
        if let (Some(assoc), Some(iid)) = (&eip.association_id, &instance_id) {
            item["AssociationId"] = json!(assoc);
            item["InstanceId"] = json!(iid);
            if let Some(p) = &private_ip {
                item["PrivateIpAddress"] = json!(p);
            }
        }
        out.push(item);
    }
    Ok(json!({ "Addresses": out }))
}

/// The EC2 instance ID an OpsWorks instance shows (its own ID before it first booted).
fn ec2_instance_of(inst: &Instance) -> String {
    inst.ec2_instance_id
        .clone()
        .unwrap_or_else(|| inst.instance_id.clone())
}

async fn regional(cx: Ctx<'_>) -> Result<Vec<ElasticIp>, AwsError> {
    Ok(cx
        .core
        .list::<ElasticIp>(Filter::All)
        .await
        .map_err(internal)?
        .iter()
        .filter(|e| e.region == cx.principal.region)
        .map(|e| e.to_owned_value())
        .collect())
}

/// ReleaseAddress: an address neither associated nor registered with a stack goes back to the
/// pool.
pub async fn release_address(cx: Ctx<'_>, input: &Value) -> Ec2Result {
    let (alloc, ip) = (s(input, "AllocationId"), s(input, "PublicIp"));
    let all = regional(cx).await?;
    let eip = match (alloc, ip) {
        (Some(a), _) => all.iter().find(|e| e.allocation_id == a).ok_or_else(|| {
            AwsError::service(
                "InvalidAllocationID.NotFound",
                format!("Allocation ID '{a}' not found."),
            )
        })?,
        (None, Some(ip)) => all.iter().find(|e| e.ip == ip).ok_or_else(|| {
            AwsError::service(
                "InvalidAddress.NotFound",
                format!("Address '{ip}' not found."),
            )
        })?,
        (None, None) => {
            return Err(AwsError::service(
                "MissingParameter",
                "Either public IP or allocation id must be specified",
            ));
        }
    };
    let mut w = cx.core.write().await.map_err(internal)?;
    let Some(current) = w.find::<ElasticIp>(&eip.ip).await.map_err(internal)? else {
        return Err(AwsError::service(
            "InvalidAllocationID.NotFound",
            format!("Allocation ID '{}' not found.", eip.allocation_id),
        ));
    };
    if let Some(iid) = &current.instance_id {
        return Err(in_use(format!(
            "The address {} is associated with instance {iid}; disassociate it first.",
            current.ip
        )));
    }
    if let Some(stack) = &current.stack_id {
        return Err(in_use(format!(
            "The address {} is registered with OpsWorks stack {stack}; deregister it first.",
            current.ip
        )));
    }
    w.delete(Kind::ElasticIp, &current.ip)
        .await
        .map_err(internal)?;
    w.commit().await.map_err(internal)?;
    if let Ok(addr) = current.ip.parse() {
        elastic_ips::release(cx.core, addr).await;
    }
    Ok(json!({}))
}

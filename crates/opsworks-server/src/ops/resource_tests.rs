//! Tests of the stack's EC2 resources through the operations, on a real core and store without
//! local machines (records and disk images only; the host side is the sandbox's and the
//! lifecycle suite's): Elastic IPs and volumes from `ec2` to `opsworks` and back, with the
//! refusals the original made.

use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_api::query::AwsError;
use opsworks_model::InstanceStatus;
use opsworks_model::resource::Instance;

use crate::core::{Core, volumes};
use crate::ops::{Ctx, Principal};
use crate::testkit::{call, open, stack_and_layer, stack_with_instance};

/// Runs an EC2 operation as root, as the Query endpoint does after parsing.
async fn ec2(core: &Core, op: &str, input: Value) -> Result<Value, AwsError> {
    let root = Principal::root("us-east-1");
    crate::ops::ec2::dispatch(
        Ctx {
            core,
            principal: &root,
        },
        op,
        input,
    )
    .await
}

fn code(e: &ApiError) -> &'static str {
    e.code()
}

async fn instance(core: &Core, id: &str) -> Instance {
    core.get::<Instance>(id)
        .await
        .expect("instance")
        .to_owned_value()
}

async fn set_status(core: &Core, id: &str, status: InstanceStatus) {
    let mut w = core.write().await.unwrap();
    let mut inst: Instance = w.get(id).await.unwrap();
    inst.status = status;
    w.put(&inst).await.unwrap();
    w.commit().await.unwrap();
}

async fn second_instance(core: &Core, sid: &str) -> String {
    let layers = call(core, "DescribeLayers", json!({"StackId": sid}))
        .await
        .unwrap();
    let lid = layers["Layers"][0]["LayerId"].as_str().unwrap().to_string();
    call(
        core,
        "CreateInstance",
        json!({"StackId": sid, "LayerIds": [lid], "InstanceType": "t2.micro"}),
    )
    .await
    .unwrap()["InstanceId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn an_elastic_ip_is_allocated_registered_moved_and_released() {
    let (_dir, core) = open().await;
    let (sid, a) = stack_with_instance(&core).await;
    let b = second_instance(&core, &sid).await;
    let made = ec2(&core, "AllocateAddress", json!({"Domain": "vpc"}))
        .await
        .unwrap();
    let ip = made["PublicIp"].as_str().unwrap().to_string();
    assert_eq!(ip, "10.217.255.1", "the lowest address of the pool");
    assert!(
        made["AllocationId"]
            .as_str()
            .unwrap()
            .starts_with("eipalloc-")
    );

    // Bad input, as the original refused it.
    let err = call(
        &core,
        "RegisterElasticIp",
        json!({"ElasticIp": "10.217.255.77", "StackId": sid}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException", "{err}");
    let err = call(
        &core,
        "AssociateElasticIp",
        json!({"ElasticIp": ip, "InstanceId": a}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not registered"), "{err}");

    call(
        &core,
        "RegisterElasticIp",
        json!({"ElasticIp": ip, "StackId": sid}),
    )
    .await
    .unwrap();
    let (other, _) = stack_and_layer(&core).await;
    let err = call(
        &core,
        "RegisterElasticIp",
        json!({"ElasticIp": ip, "StackId": other}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert!(
        err.to_string().contains("already registered with stack"),
        "{err}"
    );

    call(
        &core,
        "AssociateElasticIp",
        json!({"ElasticIp": ip, "InstanceId": a}),
    )
    .await
    .unwrap();
    let ia = instance(&core, &a).await;
    assert_eq!(ia.elastic_ip.as_deref(), Some(ip.as_str()));
    assert_eq!(ia.public_ip.as_deref(), Some(ip.as_str()));
    // A move takes it from A.
    call(
        &core,
        "AssociateElasticIp",
        json!({"ElasticIp": ip, "InstanceId": b}),
    )
    .await
    .unwrap();
    assert_eq!(instance(&core, &a).await.elastic_ip, None);
    assert_eq!(
        instance(&core, &b).await.elastic_ip.as_deref(),
        Some(ip.as_str())
    );
    let shown = call(&core, "DescribeElasticIps", json!({"InstanceId": b}))
        .await
        .unwrap();
    assert_eq!(shown["ElasticIps"][0]["Ip"], json!(ip));
    assert_eq!(shown["ElasticIps"][0]["Domain"], json!("vpc"));
    assert_eq!(shown["ElasticIps"][0]["Region"], json!("us-east-1"));
    let addresses = ec2(&core, "DescribeAddresses", json!({"PublicIps": [ip]}))
        .await
        .unwrap();
    assert_eq!(
        addresses["Addresses"][0]["InstanceId"],
        json!(b),
        "not booted: its own ID"
    );
    assert!(
        addresses["Addresses"][0]["AssociationId"]
            .as_str()
            .unwrap()
            .starts_with("eipassoc-")
    );

    let long = "n".repeat(33);
    let err = call(
        &core,
        "UpdateElasticIp",
        json!({"ElasticIp": ip, "Name": long}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    call(
        &core,
        "UpdateElasticIp",
        json!({"ElasticIp": ip, "Name": "front"}),
    )
    .await
    .unwrap();
    let shown = call(&core, "DescribeElasticIps", json!({"StackId": sid}))
        .await
        .unwrap();
    assert_eq!(shown["ElasticIps"][0]["Name"], json!("front"));
    let err = call(&core, "DescribeElasticIps", json!({}))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    let err = call(
        &core,
        "DescribeElasticIps",
        json!({"StackId": sid, "InstanceId": a}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "ValidationException");

    // Released only once neither associated nor registered.
    let err = ec2(&core, "ReleaseAddress", json!({"PublicIp": ip}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidIPAddress.InUse");
    call(&core, "DisassociateElasticIp", json!({"ElasticIp": ip}))
        .await
        .unwrap();
    let ib = instance(&core, &b).await;
    assert_eq!((ib.elastic_ip, ib.public_ip), (None, None));
    let err = call(&core, "DisassociateElasticIp", json!({"ElasticIp": ip}))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    let err = ec2(&core, "ReleaseAddress", json!({"PublicIp": ip}))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("registered with OpsWorks stack"),
        "{err}"
    );
    call(&core, "DeregisterElasticIp", json!({"ElasticIp": ip}))
        .await
        .unwrap();
    assert_eq!(
        call(&core, "DescribeElasticIps", json!({"StackId": sid}))
            .await
            .unwrap()["ElasticIps"],
        json!([])
    );
    ec2(
        &core,
        "ReleaseAddress",
        json!({"AllocationId": made["AllocationId"]}),
    )
    .await
    .unwrap();
    let err = ec2(&core, "DescribeAddresses", json!({"PublicIps": [ip]}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidAddress.NotFound");
    let err = ec2(
        &core,
        "ReleaseAddress",
        json!({"AllocationId": "eipalloc-0123"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "InvalidAllocationID.NotFound");
}

#[tokio::test]
async fn addresses_come_from_the_pool_only() {
    let (_dir, core) = open().await;
    let err = ec2(&core, "AllocateAddress", json!({"Address": "10.1.2.3"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidParameterValue");
    assert!(
        err.message()
            .contains("outside this server's Elastic IP pool"),
        "{err}"
    );
    ec2(&core, "AllocateAddress", json!({"Address": "10.217.255.9"}))
        .await
        .unwrap();
    let err = ec2(&core, "AllocateAddress", json!({"Address": "10.217.255.9"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidIPAddress.InUse");
    let err = ec2(
        &core,
        "AllocateAddress",
        json!({"PublicIpv4Pool": "ipv4pool-ec2-1"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "InvalidPublicIpv4PoolID.NotFound");
    let err = ec2(&core, "AllocateAddress", json!({"DryRun": true}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DryRunOperation");
    let err = ec2(&core, "AttachVolume", json!({})).await.unwrap_err();
    assert_eq!(err.code(), "UnsupportedOperation");
    let listed = ec2(
        &core,
        "DescribeAddresses",
        json!({"Filters": [{"Name": "public-ip", "Values": ["10.217.255.*"]}]}),
    )
    .await
    .unwrap();
    assert_eq!(listed["Addresses"].as_array().unwrap().len(), 1);
    let err = ec2(
        &core,
        "DescribeAddresses",
        json!({"Filters": [{"Name": "colour", "Values": ["x"]}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "InvalidParameterValue");
}

#[tokio::test]
async fn a_volume_is_created_registered_assigned_only_offline_and_deleted() {
    let (_dir, core) = open().await;
    let (sid, a) = stack_with_instance(&core).await;
    let vol = ec2(
        &core,
        "CreateVolume",
        json!({"AvailabilityZone": "us-east-1a", "Size": 1, "VolumeType": "gp2",
               "TagSpecifications": [{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "data"}]}]}),
    )
    .await
    .expect("a volume (mkfs.xfs, Debian's xfsprogs, must be installed)");
    let vid = vol["VolumeId"].as_str().unwrap().to_string();
    assert_eq!(vol["State"], json!("available"));
    let image = volumes::image_path(&core, &vid);
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 1 << 30);

    let reg = call(
        &core,
        "RegisterVolume",
        json!({"StackId": sid, "Ec2VolumeId": vid}),
    )
    .await
    .unwrap();
    let id = reg["VolumeId"].as_str().unwrap().to_string();
    let err = call(
        &core,
        "RegisterVolume",
        json!({"StackId": sid, "Ec2VolumeId": vid}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    let err = call(
        &core,
        "RegisterVolume",
        json!({"StackId": sid, "Ec2VolumeId": "vol-0000"}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    let err = call(
        &core,
        "AssignVolume",
        json!({"VolumeId": id, "InstanceId": a}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no mount point"), "{err}");
    for bad in ["data", "/", "/proc/x", "/srv/www/app", "/a/../b"] {
        let err = call(
            &core,
            "UpdateVolume",
            json!({"VolumeId": id, "MountPoint": bad}),
        )
        .await
        .unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{bad}: {err}");
    }
    call(
        &core,
        "UpdateVolume",
        json!({"VolumeId": id, "MountPoint": "/srv/data", "Name": "data"}),
    )
    .await
    .unwrap();

    // Only offline instances take or give volumes.
    set_status(&core, &a, InstanceStatus::Online).await;
    let err = call(
        &core,
        "AssignVolume",
        json!({"VolumeId": id, "InstanceId": a}),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("only while its instance is stopped"),
        "{err}"
    );
    set_status(&core, &a, InstanceStatus::Stopped).await;
    call(
        &core,
        "AssignVolume",
        json!({"VolumeId": id, "InstanceId": a}),
    )
    .await
    .unwrap();
    let shown = call(&core, "DescribeVolumes", json!({"InstanceId": a}))
        .await
        .unwrap()["Volumes"][0]
        .clone();
    assert_eq!(shown["Status"], json!("in-use"));
    assert_eq!(shown["Device"], json!("/dev/sdf"));
    assert_eq!(shown["MountPoint"], json!("/srv/data"));
    assert_eq!(shown["Size"], json!(1));
    assert_eq!(shown["Ec2VolumeId"], json!(vid));
    let disks = volumes::disks_for(&core, &a).await.unwrap();
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0].image, image);
    let seen = ec2(&core, "DescribeVolumes", json!({"VolumeIds": [vid]}))
        .await
        .unwrap()["Volumes"][0]
        .clone();
    assert_eq!(seen["State"], json!("in-use"));
    assert_eq!(seen["Attachments"][0]["Device"], json!("/dev/sdf"));
    let err = ec2(&core, "DeleteVolume", json!({"VolumeId": vid}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VolumeInUse");

    // Another stack's instance cannot have it; a second assignment needs an unassignment first.
    let (other, _) = stack_with_instance(&core).await;
    let foreign = call(&core, "DescribeInstances", json!({"StackId": other}))
        .await
        .unwrap()["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    let err = call(
        &core,
        "AssignVolume",
        json!({"VolumeId": id, "InstanceId": foreign}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("registered with stack"), "{err}");
    let b = second_instance(&core, &sid).await;
    let err = call(
        &core,
        "AssignVolume",
        json!({"VolumeId": id, "InstanceId": b}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("unassign it first"), "{err}");
    call(&core, "UnassignVolume", json!({"VolumeId": id}))
        .await
        .unwrap();
    call(
        &core,
        "AssignVolume",
        json!({"VolumeId": id, "InstanceId": b}),
    )
    .await
    .unwrap();
    assert!(volumes::disks_for(&core, &a).await.unwrap().is_empty());
    call(&core, "UnassignVolume", json!({"VolumeId": id}))
        .await
        .unwrap();

    let err = ec2(&core, "DeleteVolume", json!({"VolumeId": vid}))
        .await
        .unwrap_err();
    assert!(err.message().contains("deregister it first"), "{err}");
    call(&core, "DeregisterVolume", json!({"VolumeId": id}))
        .await
        .unwrap();
    let err = call(&core, "DescribeVolumes", json!({"VolumeIds": [id]}))
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
    ec2(&core, "DeleteVolume", json!({"VolumeId": vid}))
        .await
        .unwrap();
    assert!(!image.exists(), "the image goes with the volume");
    let err = ec2(&core, "DescribeVolumes", json!({"VolumeIds": [vid]}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidVolume.NotFound");
}

#[tokio::test]
async fn create_volume_refuses_what_ec2_refuses_and_keeps_its_client_token() {
    let (_dir, core) = open().await;
    for (input, want) in [
        (
            json!({"AvailabilityZone": "us-east-1a"}),
            "MissingParameter",
        ),
        (
            json!({"AvailabilityZone": "us-east-1a", "SnapshotId": "snap-1"}),
            "InvalidSnapshot.NotFound",
        ),
        (
            json!({"AvailabilityZone": "eu-west-1a", "Size": 1}),
            "InvalidParameterValue",
        ),
        (
            json!({"AvailabilityZone": "us-east-1a", "Size": 2000, "VolumeType": "standard"}),
            "InvalidParameterValue",
        ),
        (
            json!({"AvailabilityZone": "us-east-1a", "Size": 10, "VolumeType": "io1"}),
            "MissingParameter",
        ),
        (
            json!({"AvailabilityZone": "us-east-1a", "Size": 10, "Iops": 300}),
            "InvalidParameterCombination",
        ),
        (
            json!({"AvailabilityZone": "us-east-1a", "Size": 10, "Encrypted": true}),
            "UnsupportedOperation",
        ),
    ] {
        let err = ec2(&core, "CreateVolume", input.clone()).await.unwrap_err();
        assert_eq!(err.code(), want, "{input}: {err}");
    }
    let first = ec2(
        &core,
        "CreateVolume",
        json!({"AvailabilityZone": "us-east-1b", "Size": 1, "ClientToken": "t-1"}),
    )
    .await
    .unwrap();
    let again = ec2(
        &core,
        "CreateVolume",
        json!({"AvailabilityZone": "us-east-1b", "Size": 1, "ClientToken": "t-1"}),
    )
    .await
    .unwrap();
    assert_eq!(first["VolumeId"], again["VolumeId"]);
    let err = ec2(
        &core,
        "CreateVolume",
        json!({"AvailabilityZone": "us-east-1b", "Size": 2, "ClientToken": "t-1"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "IdempotentParameterMismatch");
    let page = ec2(&core, "DescribeVolumes", json!({"MaxResults": 5}))
        .await
        .unwrap();
    assert_eq!(page["Volumes"].as_array().unwrap().len(), 1);
    assert!(page.get("NextToken").is_none());
}

#[tokio::test]
async fn delete_instance_releases_or_keeps_its_resources_as_its_flags_say() {
    let (_dir, core) = open().await;
    let (sid, a) = stack_with_instance(&core).await;
    let b = second_instance(&core, &sid).await;
    let mut images = Vec::new();
    for (inst, n) in [(&a, 1), (&b, 2)] {
        let ip = ec2(&core, "AllocateAddress", json!({})).await.unwrap()["PublicIp"].clone();
        call(
            &core,
            "RegisterElasticIp",
            json!({"ElasticIp": ip, "StackId": sid}),
        )
        .await
        .unwrap();
        call(
            &core,
            "AssociateElasticIp",
            json!({"ElasticIp": ip, "InstanceId": inst}),
        )
        .await
        .unwrap();
        let vid = ec2(
            &core,
            "CreateVolume",
            json!({"AvailabilityZone": "us-east-1a", "Size": 1}),
        )
        .await
        .unwrap()["VolumeId"]
            .clone();
        let id = call(
            &core,
            "RegisterVolume",
            json!({"StackId": sid, "Ec2VolumeId": vid}),
        )
        .await
        .unwrap()["VolumeId"]
            .clone();
        call(
            &core,
            "UpdateVolume",
            json!({"VolumeId": id, "MountPoint": format!("/data{n}")}),
        )
        .await
        .unwrap();
        call(
            &core,
            "AssignVolume",
            json!({"VolumeId": id, "InstanceId": inst}),
        )
        .await
        .unwrap();
        images.push(volumes::image_path(&core, vid.as_str().unwrap()));
    }
    call(&core, "DeleteInstance", json!({"InstanceId": a}))
        .await
        .unwrap();
    let left = call(&core, "DescribeElasticIps", json!({"StackId": sid}))
        .await
        .unwrap()["ElasticIps"]
        .clone();
    assert_eq!(left.as_array().unwrap().len(), 2, "kept, registered");
    assert!(
        left.as_array()
            .unwrap()
            .iter()
            .any(|e| e.get("InstanceId").is_none())
    );
    let vols = call(&core, "DescribeVolumes", json!({"StackId": sid}))
        .await
        .unwrap()["Volumes"]
        .clone();
    assert_eq!(vols.as_array().unwrap().len(), 2);
    assert!(images[0].exists());

    call(
        &core,
        "DeleteInstance",
        json!({"InstanceId": b, "DeleteElasticIp": true, "DeleteVolumes": true}),
    )
    .await
    .unwrap();
    let left = call(&core, "DescribeElasticIps", json!({"StackId": sid}))
        .await
        .unwrap()["ElasticIps"]
        .clone();
    assert_eq!(left.as_array().unwrap().len(), 1, "b's address released");
    assert_eq!(
        ec2(&core, "DescribeAddresses", json!({})).await.unwrap()["Addresses"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let vols = call(&core, "DescribeVolumes", json!({"StackId": sid}))
        .await
        .unwrap()["Volumes"]
        .clone();
    assert_eq!(vols.as_array().unwrap().len(), 1);
    assert!(!images[1].exists(), "b's volume deleted with its data");
    assert!(images[0].exists());
}

#[tokio::test]
async fn raid_and_several_disks_are_refused_where_the_host_has_no_md() {
    let (_dir, core) = open().await;
    let (sid, lid) = stack_and_layer(&core).await;
    let no_md = opsworks_sandbox::disk::raid_support().is_err();
    let raid = json!([{"MountPoint": "/data", "NumberOfDisks": 2, "Size": 20, "RaidLevel": 1, "VolumeType": "gp2"}]);
    let err = call(
        &core,
        "UpdateLayer",
        json!({"LayerId": lid, "VolumeConfigurations": raid}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    if no_md {
        assert!(
            err.to_string().contains("no md (software RAID) support"),
            "{err}"
        );
    }
    let err = call(
        &core,
        "CreateLayer",
        json!({"StackId": sid, "Type": "custom", "Name": "db", "Shortname": "db", "VolumeConfigurations": raid}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("RaidLevel 1"), "{err}");
    let two = json!([{"MountPoint": "/data", "NumberOfDisks": 2, "Size": 20, "VolumeType": "gp2"}]);
    let err = call(
        &core,
        "UpdateLayer",
        json!({"LayerId": lid, "VolumeConfigurations": two}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("needs a RaidLevel"), "{err}");
    let one = json!([{"MountPoint": "/data", "NumberOfDisks": 1, "Size": 1, "VolumeType": "gp2"}]);
    call(
        &core,
        "UpdateLayer",
        json!({"LayerId": lid, "VolumeConfigurations": one}),
    )
    .await
    .unwrap();
    assert_eq!(
        call(&core, "DescribeRaidArrays", json!({"StackId": sid}))
            .await
            .unwrap()["RaidArrays"],
        json!([])
    );
    let err = call(
        &core,
        "DescribeRaidArrays",
        json!({"RaidArrayIds": ["r-1"]}),
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
}

#[tokio::test]
async fn registered_instances_take_neither_addresses_nor_volumes() {
    let (_dir, core) = open().await;
    let (sid, a) = stack_with_instance(&core).await;
    {
        let mut w = core.write().await.unwrap();
        let mut inst: Instance = w.get(&a).await.unwrap();
        inst.registered = true;
        w.put(&inst).await.unwrap();
        w.commit().await.unwrap();
    }
    let ip = ec2(&core, "AllocateAddress", json!({})).await.unwrap()["PublicIp"].clone();
    call(
        &core,
        "RegisterElasticIp",
        json!({"ElasticIp": ip, "StackId": sid}),
    )
    .await
    .unwrap();
    let err = call(
        &core,
        "AssociateElasticIp",
        json!({"ElasticIp": ip, "InstanceId": a}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("registered instance"), "{err}");
}

//! Load balancers attached to OpsWorks layers (AttachElasticLoadBalancer): one load balancer per
//! layer and one layer per load balancer. Attaching deregisters what the load balancer had and
//! registers the layer's online instances, as the original did; from then on the upkeep pass
//! registers each instance of the layer that comes online and removes one that went away without
//! a stop (a stop drains it before its Shutdown). Attach and detach run Configure on the stack.

use opsworks_model::InstanceStatus;
use opsworks_model::resource::{Instance, Layer, LoadBalancer};
use opsworks_store::Filter;

use crate::core::{Core, CoreError, CoreResult, Write, lifecycle};

/// What the OpsWorks API calls a load balancer in "Unable to find ... with ID ...".
const NOUN: &str = "Elastic Load Balancer";

/// The `Ec2InstanceId`s of the layer's online instances.
pub async fn online_members(w: &mut Write<'_>, layer: &Layer) -> CoreResult<Vec<String>> {
    Ok(w.list::<Instance>(Filter::Stack(&layer.stack_id))
        .await?
        .into_iter()
        .filter(|i| i.status == InstanceStatus::Online && i.layer_ids.contains(&layer.layer_id))
        .filter_map(|i| i.ec2_instance_id)
        .collect())
}

/// AttachElasticLoadBalancer.
pub async fn attach(core: &Core, name: &str, layer_id: &str) -> CoreResult<()> {
    let mut w = core.write().await?;
    let layer: Layer = w.get(layer_id).await?;
    let mut lb: LoadBalancer = w.find(name).await?.ok_or_else(|| CoreError::NotFound {
        kind: NOUN,
        id: name.to_string(),
    })?;
    match lb.layer_id.as_deref() {
        Some(l) if l == layer_id => {
            return Err(CoreError::Invalid(format!(
                "Elastic Load Balancer {name} is already attached to layer {layer_id}"
            )));
        }
        Some(other) => {
            return Err(CoreError::Invalid(format!(
                "Elastic Load Balancer {name} is already attached to layer {other}: a load balancer serves one layer; detach it there first"
            )));
        }
        None => {}
    }
    let attached: Vec<LoadBalancer> = w.list(Filter::Parent(layer_id)).await?;
    if let Some(other) = attached.first() {
        return Err(CoreError::Invalid(format!(
            "Layer {layer_id} already has Elastic Load Balancer {} attached: a layer has at most one",
            other.load_balancer_name
        )));
    }
    lb.layer_id = Some(layer.layer_id.clone());
    lb.stack_id = Some(layer.stack_id.clone());
    lb.instances = online_members(&mut w, &layer).await?;
    w.put(&lb).await?;
    lifecycle::configure_stack(&mut w, &layer.stack_id).await?;
    w.commit().await?;
    apply_now(core, name).await;
    Ok(())
}

/// DetachElasticLoadBalancer: the load balancer keeps its registered instances and runs on; the
/// layer no longer drives it.
pub async fn detach(core: &Core, name: &str, layer_id: &str) -> CoreResult<()> {
    let mut w = core.write().await?;
    let layer: Layer = w.get(layer_id).await?;
    let mut lb: LoadBalancer = w.find(name).await?.ok_or_else(|| CoreError::NotFound {
        kind: NOUN,
        id: name.to_string(),
    })?;
    if lb.layer_id.as_deref() != Some(layer_id) {
        return Err(CoreError::Invalid(format!(
            "Elastic Load Balancer {name} is not attached to layer {layer_id}"
        )));
    }
    lb.layer_id = None;
    lb.stack_id = None;
    w.put(&lb).await?;
    lifecycle::configure_stack(&mut w, &layer.stack_id).await?;
    w.commit().await
}

async fn apply_now(core: &Core, name: &str) {
    if core.appliances().is_some()
        && let Err(e) = super::apply(core, name).await
    {
        tracing::warn!(load_balancer = name, "applying the layer's instances: {e}");
    }
}

/// The registrations a load balancer attached to `layer` should have, from `current` and the
/// stack's instances: the layer's online members, and those registered now that are on their way
/// down (a stop drains them itself).
fn registrations(current: &[String], layer: &Layer, instances: &[&Instance]) -> Vec<String> {
    let members = instances
        .iter()
        .filter(|i| i.status == InstanceStatus::Online && i.layer_ids.contains(&layer.layer_id))
        .filter_map(|i| i.ec2_instance_id.clone());
    let leaving = |ec2: &String| {
        instances.iter().any(|i| {
            i.ec2_instance_id.as_ref() == Some(ec2)
                && matches!(
                    i.status,
                    InstanceStatus::Stopping
                        | InstanceStatus::ShuttingDown
                        | InstanceStatus::Terminating
                        | InstanceStatus::Rebooting
                )
        })
    };
    let members: Vec<String> = members.collect();
    let mut wanted: Vec<String> = current
        .iter()
        .filter(|ec2| members.contains(ec2) || leaving(ec2))
        .cloned()
        .collect();
    for m in members {
        if !wanted.contains(&m) {
            wanted.push(m);
        }
    }
    wanted
}

/// Makes an attached load balancer's registrations follow its layer: registers the online
/// members, removes instances that are neither online members nor on their way down (those a
/// stop drains itself). A load balancer whose layer is gone is detached. Returns whether
/// anything changed.
pub async fn follow_layer(core: &Core, name: &str) -> CoreResult<bool> {
    // Read first: the upkeep asks every few seconds and nearly always nothing changed, while a
    // write would queue behind every writer of the server.
    let Some(lb) = core.find::<LoadBalancer>(name).await? else {
        return Ok(false);
    };
    let Some(layer_id) = &lb.layer_id else {
        return Ok(false);
    };
    if let Some(layer) = core.find::<Layer>(layer_id).await? {
        let instances = core
            .list::<Instance>(Filter::Stack(&layer.stack_id))
            .await?;
        let instances: Vec<&Instance> = instances.iter().map(|i| &**i).collect();
        if registrations(&lb.instances, &layer, &instances) == lb.instances {
            return Ok(false);
        }
    }
    let mut w = core.write().await?;
    let Some(mut lb) = w.find::<LoadBalancer>(name).await? else {
        return Ok(false);
    };
    let Some(layer_id) = lb.layer_id.clone() else {
        return Ok(false);
    };
    let Some(layer) = w.find::<Layer>(&layer_id).await? else {
        let stack = lb.stack_id.take();
        lb.layer_id = None;
        w.put(&lb).await?;
        if let Some(stack) = stack
            && w.find::<opsworks_model::resource::Stack>(&stack)
                .await?
                .is_some()
        {
            lifecycle::configure_stack(&mut w, &stack).await?;
        }
        w.commit().await?;
        return Ok(true);
    };
    let instances: Vec<Instance> = w.list(Filter::Stack(&layer.stack_id)).await?;
    let wanted = registrations(&lb.instances, &layer, &instances.iter().collect::<Vec<_>>());
    if wanted == lb.instances {
        return Ok(false);
    }
    tracing::info!(
        load_balancer = name,
        before = ?lb.instances,
        after = ?wanted,
        "the layer's online instances changed"
    );
    lb.instances = wanted;
    w.put(&lb).await?;
    w.commit().await?;
    Ok(true)
}

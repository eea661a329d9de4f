//! The upkeep pass of load balancers, every [`PERIOD`]: removes load-balancer machines no load
//! balancer owns, keeps each one's HAProxy running (a machine whose HAProxy died is started
//! again with the configuration of the moment; one that ran on while the control plane restarted
//! is adopted), makes attached load balancers follow their layers' online instances, and applies
//! what changed (an instance that came back with a new address, too).

use std::collections::HashSet;
use std::time::Duration;

use opsworks_model::resource::LoadBalancer;
use opsworks_store::Filter;

use super::{MACHINE_PREFIX, apply_unless_busy, layers, spec};
use crate::core::appliances::Upkeep;
use crate::core::{Core, CoreResult};

/// How often the pass runs: the longest an instance that came online waits for traffic.
pub const PERIOD: Duration = Duration::from_secs(1);

/// One pass (see the module).
pub async fn pass(core: &Core) -> CoreResult<()> {
    let Some(appliances) = core.appliances() else {
        return Ok(());
    };
    let lbs: Vec<LoadBalancer> = core
        .list::<LoadBalancer>(Filter::All)
        .await?
        .iter()
        .map(|l| l.to_owned_value())
        .collect();
    let keep: HashSet<String> = lbs.iter().map(|l| l.machine_id.clone()).collect();
    if let Err(e) = appliances.reap(MACHINE_PREFIX, &keep).await {
        tracing::warn!("removing load-balancer machines nothing owns: {e}");
    }
    let me = crate::core::rds::owner_token(core);
    for lb in lbs {
        if lb.owner.as_deref() != Some(me.as_str()) || appliances.is_claimed(&lb.machine_id) {
            continue;
        }
        let name = lb.load_balancer_name.clone();
        if lb.layer_id.is_some()
            && let Err(e) = layers::follow_layer(core, &name).await
        {
            tracing::warn!(load_balancer = name, "following the layer: {e}");
        }
        let spec = match spec(core, &lb).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(load_balancer = name, "{e}");
                continue;
            }
        };
        match appliances.keep_running(&spec).await {
            Ok(Upkeep::Running(_)) => {}
            Ok(Upkeep::Restarted(ip)) => {
                tracing::warn!(load_balancer = name, %ip, "HAProxy was started again");
                super::forget_applied(&lb.machine_id);
            }
            Ok(Upkeep::Gone) => {
                tracing::warn!(load_balancer = name, "the load balancer's machine is gone");
                continue;
            }
            Err(e) => {
                tracing::warn!(load_balancer = name, "keeping HAProxy running: {e}");
                continue;
            }
        }
        if let Err(e) = apply_unless_busy(core, &name).await {
            tracing::warn!(load_balancer = name, "{e}");
        }
    }
    Ok(())
}

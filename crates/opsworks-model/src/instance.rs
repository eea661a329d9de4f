//! The instance state machine: every status an instance can have and every change between them.
//!
//! The control plane changes an instance's status only through [`transition`], so the rules live
//! in one place and every change can be recorded. The statuses and paths are the original's
//! (`shared/reference/opsworks.md` §1.3).

use std::fmt;
use std::str::FromStr;

/// An instance status, as the API spells it in `Instance.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceStatus {
    /// Being assigned to a layer (registered instances).
    Assigning,
    /// The machine is booting and its agent starting.
    Booting,
    /// The agent has been silent past the healing timeout.
    ConnectionLost,
    /// Being deregistered.
    Deregistering,
    /// Setup succeeded; the instance serves.
    Online,
    /// The provider is creating the machine.
    Pending,
    /// A soft reboot is under way.
    Rebooting,
    /// Registered, not assigned to a layer.
    Registered,
    /// Registration is under way.
    Registering,
    /// Start was asked for; no machine yet.
    Requested,
    /// The agent runs Setup (and the Deploy that follows it).
    RunningSetup,
    /// Setup failed.
    SetupFailed,
    /// The Shutdown event is running.
    ShuttingDown,
    /// The provider could not create the machine.
    StartFailed,
    /// Stopping failed.
    StopFailed,
    /// Not running; the initial status.
    Stopped,
    /// Stop was asked for.
    Stopping,
    /// The machine is gone (a transient status on the way to stopped).
    Terminated,
    /// The machine is being removed.
    Terminating,
    /// Being unassigned from its layers.
    Unassigning,
}

impl InstanceStatus {
    /// Every status, in the order of the API's `InstancesCount` members.
    pub const ALL: [InstanceStatus; 20] = [
        Self::Assigning,
        Self::Booting,
        Self::ConnectionLost,
        Self::Deregistering,
        Self::Online,
        Self::Pending,
        Self::Rebooting,
        Self::Registered,
        Self::Registering,
        Self::Requested,
        Self::RunningSetup,
        Self::SetupFailed,
        Self::ShuttingDown,
        Self::StartFailed,
        Self::StopFailed,
        Self::Stopped,
        Self::Stopping,
        Self::Terminated,
        Self::Terminating,
        Self::Unassigning,
    ];

    /// The status as the API spells it (`running_setup`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigning => "assigning",
            Self::Booting => "booting",
            Self::ConnectionLost => "connection_lost",
            Self::Deregistering => "deregistering",
            Self::Online => "online",
            Self::Pending => "pending",
            Self::Rebooting => "rebooting",
            Self::Registered => "registered",
            Self::Registering => "registering",
            Self::Requested => "requested",
            Self::RunningSetup => "running_setup",
            Self::SetupFailed => "setup_failed",
            Self::ShuttingDown => "shutting_down",
            Self::StartFailed => "start_failed",
            Self::StopFailed => "stop_failed",
            Self::Stopped => "stopped",
            Self::Stopping => "stopping",
            Self::Terminated => "terminated",
            Self::Terminating => "terminating",
            Self::Unassigning => "unassigning",
        }
    }

    /// The member of `InstancesCount` that counts this status (`RunningSetup`).
    pub fn counter_name(self) -> String {
        self.as_str()
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Whether the instance may be edited or deleted (only while it is stopped, as in the original).
    pub fn is_stopped(self) -> bool {
        matches!(self, Self::Stopped)
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown instance status {s}"))
    }
}

/// Something that happens to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceEvent {
    /// `StartInstance`, a schedule, a load rule or a heal asks for the instance to run.
    Start,
    /// The provider began creating the machine.
    Provisioning,
    /// The machine exists and its agent is starting.
    Booted,
    /// The agent took the Setup command.
    SetupStarted,
    /// Setup (and the Deploy after it) succeeded.
    SetupSucceeded,
    /// Setup failed.
    SetupFailed,
    /// The provider could not create or boot the machine.
    ProvisionFailed,
    /// `StopInstance` (or a schedule, a load rule, a heal) asks for the instance to stop.
    Stop,
    /// The Shutdown event started on the instance.
    ShutdownStarted,
    /// The machine is gone; the instance is stopped.
    Halted,
    /// Stopping the machine failed.
    StopFailed,
    /// `RebootInstance`.
    Reboot,
    /// The reboot completed and the agent is back.
    Rebooted,
    /// The agent has been silent past the healing timeout.
    AgentLost,
    /// A silent agent spoke again (an instance in layers: back online).
    AgentBack,
    /// A silent agent of a registered instance in no layer spoke again: back to registered.
    AgentBackUnassigned,
    /// The agent of a machine being registered said hello: the machine is registered.
    AgentRegistered,
    /// `AssignInstance`: a registered machine joins layers; Setup follows.
    Assign,
    /// `UnassignInstance`: a registered machine leaves its layers (Shutdown runs, the machine
    /// keeps running).
    Unassign,
    /// The unassigned machine's Shutdown ended (or timed out): it is registered, in no layer.
    Unassigned,
    /// `DeregisterInstance`: the agent uninstalls itself and the record goes.
    Deregister,
}

/// A change the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an instance that is {from} cannot {event}")]
pub struct TransitionError {
    /// Where the instance was.
    pub from: InstanceStatus,
    /// What was asked, in words.
    pub event: &'static str,
}

impl InstanceEvent {
    fn describe(self) -> &'static str {
        match self {
            Self::Start => "be started",
            Self::Provisioning => "be provisioned",
            Self::Booted => "boot",
            Self::SetupStarted => "run setup",
            Self::SetupSucceeded => "complete setup",
            Self::SetupFailed => "fail setup",
            Self::ProvisionFailed => "fail to start",
            Self::Stop => "be stopped",
            Self::ShutdownStarted => "shut down",
            Self::Halted => "halt",
            Self::StopFailed => "fail to stop",
            Self::Reboot => "be rebooted",
            Self::Rebooted => "finish rebooting",
            Self::AgentLost => "lose its agent",
            Self::AgentBack => "regain its agent",
            Self::AgentBackUnassigned => "regain its agent",
            Self::AgentRegistered => "finish registering",
            Self::Assign => "be assigned to layers (only a registered instance in no layer can)",
            Self::Unassign => {
                "be unassigned (only an online, setup_failed or connection_lost registered instance can)"
            }
            Self::Unassigned => "finish unassigning",
            Self::Deregister => "be deregistered",
        }
    }
}

/// The status an event leads to from `from`, or why it cannot happen.
pub fn transition(
    from: InstanceStatus,
    event: InstanceEvent,
) -> Result<InstanceStatus, TransitionError> {
    use InstanceEvent as E;
    use InstanceStatus as S;
    let to = match (event, from) {
        (E::Start, S::Stopped | S::StartFailed) => S::Requested,
        (E::Provisioning, S::Requested) => S::Pending,
        (E::Booted, S::Pending | S::Requested) => S::Booting,
        (
            E::SetupStarted,
            S::Booting | S::Assigning | S::Online | S::SetupFailed | S::ConnectionLost,
        ) => S::RunningSetup,
        (E::SetupSucceeded, S::RunningSetup) => S::Online,
        (E::SetupFailed, S::RunningSetup) => S::SetupFailed,
        (E::ProvisionFailed, S::Requested | S::Pending | S::Booting) => S::StartFailed,
        // Nothing runs yet for a merely requested instance, so stopping it is immediate.
        (E::Stop, S::Requested) => S::Stopped,
        (
            E::Stop,
            S::Pending
            | S::Booting
            | S::RunningSetup
            | S::Online
            | S::SetupFailed
            | S::StartFailed
            | S::StopFailed
            | S::Rebooting
            | S::ConnectionLost,
        ) => S::Stopping,
        (E::ShutdownStarted, S::Stopping) => S::ShuttingDown,
        (E::Halted, S::Stopping | S::ShuttingDown | S::Terminating | S::Terminated) => S::Stopped,
        (E::StopFailed, S::Stopping | S::ShuttingDown | S::Terminating) => S::StopFailed,
        (E::Reboot, S::Online | S::SetupFailed | S::ConnectionLost) => S::Rebooting,
        (E::Rebooted, S::Rebooting) => S::Online,
        (E::AgentLost, S::Online | S::Rebooting | S::RunningSetup | S::Booting | S::Registered) => {
            S::ConnectionLost
        }
        (E::AgentBack, S::ConnectionLost) => S::Online,
        // Registered instances (`opsworks register`, RegisterInstance): the server never starts,
        // stops or heals their machines; they join and leave layers, and go.
        (E::AgentBackUnassigned, S::ConnectionLost) => S::Registered,
        (E::AgentRegistered, S::Registering) => S::Registered,
        (E::Assign, S::Registered) => S::Assigning,
        (E::Unassign, S::Online | S::SetupFailed | S::ConnectionLost) => S::Unassigning,
        (E::Unassigned, S::Unassigning) => S::Registered,
        (
            E::Deregister,
            S::Registering
            | S::Registered
            | S::Assigning
            | S::RunningSetup
            | S::Online
            | S::SetupFailed
            | S::ConnectionLost
            | S::Unassigning,
        ) => S::Deregistering,
        _ => {
            return Err(TransitionError {
                from,
                event: event.describe(),
            });
        }
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceEvent as E;
    use InstanceStatus as S;

    fn run(from: S, events: &[E]) -> Result<S, TransitionError> {
        events.iter().try_fold(from, |s, e| transition(s, *e))
    }

    #[test]
    fn the_start_path_reaches_online_and_the_stop_path_stopped() {
        let online = run(
            S::Stopped,
            &[
                E::Start,
                E::Provisioning,
                E::Booted,
                E::SetupStarted,
                E::SetupSucceeded,
            ],
        );
        assert_eq!(online, Ok(S::Online));
        assert_eq!(
            run(S::Online, &[E::Stop, E::ShutdownStarted, E::Halted]),
            Ok(S::Stopped)
        );
        assert_eq!(run(S::Online, &[E::Reboot, E::Rebooted]), Ok(S::Online));
        assert_eq!(run(S::Online, &[E::AgentLost, E::AgentBack]), Ok(S::Online));
    }

    #[test]
    fn failures_have_their_statuses() {
        assert_eq!(
            run(S::Stopped, &[E::Start, E::Provisioning, E::ProvisionFailed]),
            Ok(S::StartFailed)
        );
        assert_eq!(
            run(
                S::Stopped,
                &[E::Start, E::Booted, E::SetupStarted, E::SetupFailed]
            ),
            Ok(S::SetupFailed)
        );
        assert_eq!(run(S::Online, &[E::Stop, E::StopFailed]), Ok(S::StopFailed));
    }

    #[test]
    fn impossible_changes_are_refused() {
        let err = transition(S::Online, E::Start).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an instance that is online cannot be started"
        );
        assert!(transition(S::Stopped, E::Stop).is_err());
        assert!(transition(S::Stopped, E::Reboot).is_err());
        // Every status refuses at least one event: no status is a wildcard.
        for s in S::ALL {
            assert!(transition(s, E::Rebooted).is_err() || s == S::Rebooting);
        }
    }

    #[test]
    fn a_registered_machine_joins_leaves_and_goes() {
        assert_eq!(
            run(
                S::Registering,
                &[
                    E::AgentRegistered,
                    E::Assign,
                    E::SetupStarted,
                    E::SetupSucceeded
                ]
            ),
            Ok(S::Online)
        );
        assert_eq!(
            run(S::Online, &[E::Unassign, E::Unassigned]),
            Ok(S::Registered)
        );
        assert_eq!(
            run(
                S::Registered,
                &[E::Assign, E::SetupStarted, E::SetupFailed, E::Unassign]
            ),
            Ok(S::Unassigning)
        );
        for from in [
            S::Registering,
            S::Registered,
            S::Online,
            S::ConnectionLost,
            S::Unassigning,
        ] {
            assert_eq!(
                transition(from, E::Deregister),
                Ok(S::Deregistering),
                "{from}"
            );
        }
        // A silent registered machine is connection_lost; back, it returns where it was.
        assert_eq!(
            run(S::Registered, &[E::AgentLost, E::AgentBackUnassigned]),
            Ok(S::Registered)
        );
        assert_eq!(
            run(S::Online, &[E::AgentLost, E::Unassign]),
            Ok(S::Unassigning)
        );
    }

    #[test]
    fn registered_statuses_refuse_what_does_not_apply() {
        // Only a registered machine in no layer is assigned; twice is refused.
        for from in [
            S::Stopped,
            S::Registering,
            S::Assigning,
            S::Online,
            S::Deregistering,
        ] {
            assert!(transition(from, E::Assign).is_err(), "{from}");
        }
        let err = transition(S::Registered, E::Unassign).unwrap_err();
        assert!(err.to_string().contains("cannot be unassigned"), "{err}");
        // Deregistering is final: nothing but the record's removal follows.
        for e in [
            E::Deregister,
            E::Assign,
            E::Unassign,
            E::AgentBack,
            E::AgentLost,
            E::Start,
            E::Stop,
        ] {
            assert!(transition(S::Deregistering, e).is_err(), "{e:?}");
        }
        // The EC2 statuses are not registration statuses.
        for from in [S::Stopped, S::Requested, S::Booting, S::Stopping] {
            assert!(transition(from, E::Deregister).is_err(), "{from}");
            assert!(transition(from, E::AgentRegistered).is_err(), "{from}");
        }
    }

    #[test]
    fn names_and_counters() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
        }
        assert_eq!(S::RunningSetup.counter_name(), "RunningSetup");
        assert_eq!(S::ConnectionLost.counter_name(), "ConnectionLost");
    }
}

crate::serde_str::serde_as_str!(InstanceStatus);

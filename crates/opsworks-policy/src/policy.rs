//! A parsed identity policy, its statements, and evaluation over a request as IAM does it for an
//! IAM user: an explicit Deny anywhere wins, otherwise any Allow, otherwise an implicit deny.

use crate::condition::Condition;
use crate::context::RequestContext;
use crate::pattern::Pattern;
use crate::wildcard::Wildcard;

/// The policy language version a document declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `2008-10-17`, also what an absent `Version` means: `${...}` is plain text.
    V2008_10_17,
    /// `2012-10-17`: policy variables such as `${aws:username}` are replaced.
    V2012_10_17,
}

impl Version {
    /// The version as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2008_10_17 => "2008-10-17",
            Version::V2012_10_17 => "2012-10-17",
        }
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement refuses, over any grant.
    Deny,
}

/// `Action` (the listed actions) or `NotAction` (every other action).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Actions {
    Listed(Vec<Wildcard>),
    AllBut(Vec<Wildcard>),
}

/// `Resource` (the listed resources) or `NotResource` (every other resource).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resources {
    Listed(Vec<Pattern>),
    AllBut(Vec<Pattern>),
}

/// One statement, its patterns compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) actions: Actions,
    pub(crate) resources: Resources,
    pub(crate) conditions: Vec<Condition>,
}

impl Statement {
    /// The `Sid`, when the statement has one.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// The `Effect`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// Whether the statement applies to the request: its action and resource match (or, for
    /// `NotAction`/`NotResource`, do not) and every condition holds.
    pub fn applies(&self, ctx: &RequestContext) -> bool {
        let action = ctx.action_lower();
        let action_hit = match &self.actions {
            Actions::Listed(list) => list.iter().any(|w| w.matches(action)),
            Actions::AllBut(list) => !list.iter().any(|w| w.matches(action)),
        };
        if !action_hit {
            return false;
        }
        let resource = ctx.resource();
        let resource_hit = match &self.resources {
            Resources::Listed(list) => list.iter().any(|p| p.matches(resource, ctx)),
            Resources::AllBut(list) => !list.iter().any(|p| p.matches(resource, ctx)),
        };
        resource_hit && self.conditions.iter().all(|c| c.holds(ctx))
    }
}

/// A parsed, validated identity policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) version: Option<Version>,
    pub(crate) id: Option<String>,
    pub(crate) statements: Vec<Statement>,
}

impl Policy {
    /// The `Version` as written; `None` when absent (which means 2008-10-17).
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The `Id`, when the document has one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

/// Where a statement sits: the index of its policy in the slice given to [`evaluate`], and its
/// index in that policy's [`Policy::statements`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatementRef {
    /// Index into the policies passed to [`evaluate`].
    pub policy: usize,
    /// Index into that policy's statements.
    pub statement: usize,
}

/// The outcome of evaluating identity policies for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// An Allow statement applies and no Deny does.
    Allow,
    /// A Deny statement applies: refused whatever else allows.
    ExplicitDeny {
        /// The first Deny statement found that applies.
        statement: StatementRef,
    },
    /// No statement allows: refused.
    ImplicitDeny,
}

impl Decision {
    /// Whether the request may go ahead.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Evaluates an IAM user's identity policies (its inline and attached policies and those of its
/// groups, in any order) for a request, as AWS documents it: "an explicit deny in any policy
/// overrides any allows"; otherwise any applicable Allow allows; otherwise the request is
/// implicitly denied. The root user is not evaluated at all: it may do anything.
pub fn evaluate(request: &RequestContext, policies: &[&Policy]) -> Decision {
    let mut allowed = false;
    for (p, policy) in policies.iter().enumerate() {
        for (s, statement) in policy.statements.iter().enumerate() {
            match statement.effect {
                Effect::Deny => {
                    if statement.applies(request) {
                        return Decision::ExplicitDeny {
                            statement: StatementRef {
                                policy: p,
                                statement: s,
                            },
                        };
                    }
                }
                // Once allowed, further Allows cannot change anything: only Denies are checked.
                Effect::Allow => {
                    if !allowed && statement.applies(request) {
                        allowed = true;
                    }
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

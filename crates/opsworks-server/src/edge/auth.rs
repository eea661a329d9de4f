//! Authentication, for every endpoint: a SigV4-signed request is verified once here and answers
//! who signed it, a [`Caller`]. The rule "signed, but not by an instance" is [`Caller::user`].
//!
//! Keys are looked up through the key ring under the store's current stamp of the access keys,
//! and an IAM user's key must be one of the user's active keys as of now: an Inactive or deleted
//! key is refused at once, on every endpoint and every server sharing the database.

use std::net::SocketAddr;

use axum::extract::FromRequestParts;
use axum::extract::connect_info::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri};

use opsworks_api::ApiError;
use opsworks_api::sigv4::{self, RequestParts};

use crate::core::Core;
use crate::core::identity::{self, USER_PRINCIPAL};
use crate::core::machines::INSTANCE_PRINCIPAL;
use crate::ops::Principal;

/// Who signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A user of the API.
    User(Principal),
    /// An instance's agent, with its own key, for the instance with this ID.
    Instance(String),
}

impl Caller {
    /// The user, or AccessDenied for an instance's credential: an instance speaks the agent
    /// protocol only, never the public API, the event log or monitoring.
    pub fn user(self, what: &str) -> Result<Principal, ApiError> {
        match self {
            Caller::User(p) => Ok(p),
            Caller::Instance(id) => Err(ApiError::AccessDenied(format!(
                "User: {INSTANCE_PRINCIPAL}{id} is not authorized to perform: {what}"
            ))),
        }
    }
}

/// The address a request came from (the TCP peer), for `aws:SourceIp` and the audit log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// The access key ID of a request's `Authorization` header, when it has one.
fn access_key_id(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let rest = &auth[auth.find("Credential=")? + "Credential=".len()..];
    rest.split('/').next()
}

/// Verifies the SigV4 signature of a request to the OpsWorks service and says who signed it.
pub async fn authenticate(
    core: &Core,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Caller, ApiError> {
    authenticate_for(
        core,
        method,
        uri,
        headers,
        body,
        Peer::default(),
        opsworks_api::SIGNING_NAME,
    )
    .await
}

/// [`authenticate`], knowing where the request came from.
pub async fn authenticate_from(
    core: &Core,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    peer: Peer,
) -> Result<Caller, ApiError> {
    authenticate_for(
        core,
        method,
        uri,
        headers,
        body,
        peer,
        opsworks_api::SIGNING_NAME,
    )
    .await
}

/// Verifies the SigV4 signature of a request whose credential scope names `service` (`opsworks`,
/// `iam`, `sts`, ...) and says who signed it.
pub async fn authenticate_for(
    core: &Core,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    peer: Peer,
    service: &str,
) -> Result<Caller, ApiError> {
    // One look at the store's generations for the whole request: the key ring and the user's
    // access are checked against the same moment.
    let stamps = identity::stamps(core).await?;
    // The credential is looked up first (memory, then the store: another server may have issued
    // it), then the signature is checked against it.
    let claimed = access_key_id(headers);
    let credential = match claimed {
        Some(akid) => core.keys().resolve(core.store(), akid, stamps[0]).await,
        None => None,
    };
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let parts = RequestParts {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &pairs,
        body,
    };
    let now = jiff::Timestamp::now().as_second();
    let principal = credential.as_ref().map(|c| c.principal.clone());
    // The key the verifier parses must be the one looked up, or it is unknown.
    let verified = sigv4::verify_for(&parts, now, &[service], |akid| {
        credential
            .filter(|_| claimed == Some(akid))
            .map(|c| c.secret)
    })?;
    let principal = principal.unwrap_or_default();
    let ip = peer.0.map(|a| a.ip());
    if let Some(instance) = principal.strip_prefix(INSTANCE_PRINCIPAL) {
        return Ok(Caller::Instance(instance.to_string()));
    }
    if let Some(user_id) = principal.strip_prefix(USER_PRINCIPAL) {
        let access = identity::user_access(core, user_id, &stamps).await?;
        let Some(access) = access.filter(|a| a.key_active(&verified.access_key_id)) else {
            // Inactive, or its user is gone: AWS answers as for a key it does not know.
            return Err(ApiError::UnrecognizedClient(
                "The security token included in the request is invalid.".into(),
            ));
        };
        core.keys()
            .note_use(&verified.access_key_id, &verified.service, &verified.region);
        return Ok(Caller::User(
            Principal::iam_user(access, &verified.access_key_id, &verified.region).from_ip(ip),
        ));
    }
    Ok(Caller::User(
        Principal {
            access_key_id: verified.access_key_id,
            name: principal,
            region: verified.region,
            ..Principal::root("")
        }
        .from_ip(ip),
    ))
}

#[cfg(test)]
mod tests;

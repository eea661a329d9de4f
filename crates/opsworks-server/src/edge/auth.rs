//! Authentication, for every endpoint: a SigV4-signed request is verified once here and answers
//! who signed it, a [`Caller`]. The rule "signed, but not by an instance" is [`Caller::user`].

use axum::http::{HeaderMap, Method, Uri};

use opsworks_api::ApiError;
use opsworks_api::sigv4::{self, RequestParts};

use crate::core::Core;
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

/// The access key ID of a request's `Authorization` header, when it has one.
fn access_key_id(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let rest = &auth[auth.find("Credential=")? + "Credential=".len()..];
    rest.split('/').next()
}

/// Verifies the SigV4 signature of a request and says who signed it.
pub async fn authenticate(
    core: &Core,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Caller, ApiError> {
    // The credential is looked up first (memory, then the store: another server may have issued
    // it), then the signature is checked against it.
    let claimed = access_key_id(headers);
    let credential = match claimed {
        Some(akid) => core.keys().resolve(core.store(), akid).await,
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
    let verified = sigv4::verify(&parts, now, |akid| {
        credential
            .filter(|_| claimed == Some(akid))
            .map(|c| c.secret)
    })?;
    let principal = principal.unwrap_or_default();
    Ok(match principal.strip_prefix(INSTANCE_PRINCIPAL) {
        Some(instance) => Caller::Instance(instance.to_string()),
        None => Caller::User(Principal {
            access_key_id: verified.access_key_id,
            name: principal,
            region: verified.region,
        }),
    })
}

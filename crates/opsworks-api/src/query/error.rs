//! The errors of the Query and EC2 services, each with the code its client sees.
//!
//! The HTTP status is not stored: [`AwsError::status`] takes it from the service model's error
//! shapes (`NoSuchEntity` 404, `EntityAlreadyExists` 409, `DBInstanceNotFound` 404, ...), then from
//! the errors common to every Query API, else 400.

use crate::ApiError;
use crate::model::ServiceModel;
use crate::service::{Protocol, Service};

/// An error of a Query or EC2 service, rendered by [`super::write_error`].
///
/// Messages follow AWS's wording where AWS has one, because scripts match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// The form cannot be read: bad percent-encoding, not UTF-8, a repeated key, past a limit.
    #[error("MalformedQueryString: {message}")]
    MalformedQueryString {
        /// What is wrong, naming the parameter.
        message: String,
    },
    /// The request has no `Action`.
    #[error("MissingAction: {message}")]
    MissingAction {
        /// AWS's wording.
        message: String,
    },
    /// `Action` names no operation of the service, or `Version` is not the service's.
    #[error("InvalidAction: {message}")]
    InvalidAction {
        /// AWS's wording, naming the action.
        message: String,
    },
    /// An operation of the service that this server does not serve.
    #[error("UnsupportedOperation: {message}")]
    UnsupportedOperation {
        /// Names the operation.
        message: String,
    },
    /// The keys do not fit the input shape: a list index that is not 1, 2, ... without gaps, too
    /// large, a list or structure given as a plain value.
    #[error("InvalidQueryParameter: {message}")]
    InvalidQueryParameter {
        /// Names the parameter.
        message: String,
    },
    /// The input breaks the model: a value of the wrong type, a missing member, an enum, length,
    /// range or pattern violation, an unknown EC2 parameter. `code` is the service's own
    /// (`ValidationError`, `InvalidParameterValue`, `MissingParameter`, `UnknownParameter`).
    #[error("{code}: {message}")]
    Invalid {
        /// The service's code for this kind of problem.
        code: &'static str,
        /// AWS's wording, never echoing a sensitive value.
        message: String,
    },
    /// An error a handler answers with: a code of the service's model (`NoSuchEntity`,
    /// `DBInstanceNotFound`, ...) or of the errors common to Query APIs (`AccessDenied`, ...).
    #[error("{code}: {message}")]
    Service {
        /// The error code on the wire.
        code: String,
        /// The message on the wire.
        message: String,
    },
    /// A fault of the server. The detail is for the log; the client sees a generic message.
    #[error("internal failure: {detail}")]
    Internal {
        /// What went wrong, for the log only.
        detail: String,
    },
}

/// Statuses of the errors common to every Query API (and EC2's), for codes no model carries.
const COMMON_STATUS: &[(&str, u16)] = &[
    ("AccessDenied", 403),
    ("AuthFailure", 401),
    ("Blocked", 403),
    ("DryRunOperation", 412),
    ("InternalFailure", 500),
    ("InvalidClientTokenId", 403),
    ("MissingAuthenticationToken", 403),
    ("OptInRequired", 403),
    ("RequestLimitExceeded", 503),
    ("ServiceUnavailable", 503),
    ("SignatureDoesNotMatch", 403),
    ("UnauthorizedOperation", 403),
];

impl AwsError {
    /// An error a handler answers with, by its wire code.
    pub fn service(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Service {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A fault of the server; `detail` goes to the log only.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal {
            detail: detail.into(),
        }
    }

    /// The error code on the wire.
    pub fn code(&self) -> &str {
        match self {
            Self::MalformedQueryString { .. } => "MalformedQueryString",
            Self::MissingAction { .. } => "MissingAction",
            Self::InvalidAction { .. } => "InvalidAction",
            Self::UnsupportedOperation { .. } => "UnsupportedOperation",
            Self::InvalidQueryParameter { .. } => "InvalidQueryParameter",
            Self::Invalid { code, .. } => code,
            Self::Service { code, .. } => code,
            Self::Internal { .. } => "InternalFailure",
        }
    }

    /// The message on the wire.
    pub fn message(&self) -> &str {
        match self {
            Self::MalformedQueryString { message }
            | Self::MissingAction { message }
            | Self::InvalidAction { message }
            | Self::UnsupportedOperation { message }
            | Self::InvalidQueryParameter { message }
            | Self::Invalid { message, .. }
            | Self::Service { message, .. } => message,
            Self::Internal { .. } => {
                "The request processing has failed because of an unknown error, exception or failure."
            }
        }
    }

    /// The HTTP status: the model's for its code, else the common errors', else 400.
    pub fn status(&self, service: Service) -> u16 {
        self.status_in(service.model())
    }

    pub(crate) fn status_in(&self, model: &ServiceModel) -> u16 {
        if matches!(self, Self::Internal { .. }) {
            return 500;
        }
        let code = self.code();
        model
            .error_trait(code)
            .map(|(status, _)| status)
            .or_else(|| {
                COMMON_STATUS
                    .iter()
                    .find(|(c, _)| *c == code)
                    .map(|(_, s)| *s)
            })
            .unwrap_or(400)
    }

    /// `Sender` for a client's fault, `Receiver` for the server's (the `<Type>` of Query errors).
    pub fn fault_type(&self, service: Service) -> &'static str {
        self.fault_type_in(service.model())
    }

    pub(crate) fn fault_type_in(&self, model: &ServiceModel) -> &'static str {
        let sender = match model.error_trait(self.code()) {
            Some((_, sender)) => sender && !matches!(self, Self::Internal { .. }),
            None => self.status_in(model) < 500,
        };
        if sender { "Sender" } else { "Receiver" }
    }

    /// The Query or EC2 form of an authentication failure from [`crate::sigv4::verify_for`],
    /// with the codes those services use (`SignatureDoesNotMatch`, `InvalidClientTokenId`, EC2's
    /// `AuthFailure`, ...). Other errors keep their message under `InternalFailure`.
    pub fn from_auth(service: Service, error: &ApiError) -> Self {
        let ec2 = service.protocol() == Protocol::Ec2;
        let message = error.message().to_string();
        let code = match error {
            ApiError::MissingAuthenticationToken(_) => "MissingAuthenticationToken",
            ApiError::IncompleteSignature(_) => "IncompleteSignature",
            ApiError::UnrecognizedClient(_) if ec2 => "AuthFailure",
            ApiError::UnrecognizedClient(_) => "InvalidClientTokenId",
            ApiError::InvalidSignature(m) if ec2 && m.starts_with("Signature expired") => {
                "RequestExpired"
            }
            ApiError::InvalidSignature(_) if ec2 => "AuthFailure",
            ApiError::InvalidSignature(_) => "SignatureDoesNotMatch",
            ApiError::AccessDenied(_) if ec2 => "UnauthorizedOperation",
            ApiError::AccessDenied(_) => "AccessDenied",
            other => return Self::internal(other.to_string()),
        };
        Self::service(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_model_then_the_common_errors_then_400() {
        let e = AwsError::service("NoSuchEntity", "x");
        assert_eq!(e.status(Service::Iam), 404);
        assert_eq!(e.fault_type(Service::Iam), "Sender");
        let e = AwsError::service("ServiceFailure", "x");
        assert_eq!(e.status(Service::Iam), 500);
        assert_eq!(e.fault_type(Service::Iam), "Receiver");
        assert_eq!(
            AwsError::service("AccessDenied", "x").status(Service::Iam),
            403
        );
        assert_eq!(
            AwsError::service("InvalidVolume.NotFound", "x").status(Service::Ec2),
            400
        );
        let e = AwsError::internal("disk on fire");
        assert_eq!((e.status(Service::Rds), e.code()), (500, "InternalFailure"));
        assert!(!e.message().contains("disk"));
        assert_eq!(e.fault_type(Service::Rds), "Receiver");
    }

    #[test]
    fn authentication_failures_take_each_protocols_codes() {
        let bad = ApiError::InvalidSignature("The request signature we calculated...".into());
        assert_eq!(
            AwsError::from_auth(Service::Iam, &bad).code(),
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            AwsError::from_auth(Service::Iam, &bad).status(Service::Iam),
            403
        );
        assert_eq!(
            AwsError::from_auth(Service::Ec2, &bad).code(),
            "AuthFailure"
        );
        assert_eq!(
            AwsError::from_auth(Service::Ec2, &bad).status(Service::Ec2),
            401
        );
        let expired = ApiError::InvalidSignature("Signature expired: 2025...".into());
        assert_eq!(
            AwsError::from_auth(Service::Ec2, &expired).code(),
            "RequestExpired"
        );
        let unknown = ApiError::UnrecognizedClient("The security token...".into());
        assert_eq!(
            AwsError::from_auth(Service::Sts, &unknown).code(),
            "InvalidClientTokenId"
        );
        let denied = ApiError::AccessDenied("User: arn:... is not authorized".into());
        assert_eq!(
            AwsError::from_auth(Service::Ec2, &denied).code(),
            "UnauthorizedOperation"
        );
        assert_eq!(
            AwsError::from_auth(Service::Rds, &denied).status(Service::Rds),
            403
        );
    }
}

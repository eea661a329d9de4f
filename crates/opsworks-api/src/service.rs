//! The services one endpoint speaks, and how a request is routed to one: by the service of its
//! SigV4 credential scope (`Credential=AKID/20261207/us-east-1/<service>/aws4_request`).
//!
//! Each service has its botocore model embedded (OpsWorks in full; IAM, STS, RDS, ELB and EC2
//! trimmed by `scripts/vendor-aws-models.py` to the operations we serve) and one protocol: AWS
//! JSON 1.1 (OpsWorks, handled by [`crate::model`]), Query or EC2 (handled by [`crate::query`]).

use std::sync::LazyLock;

use crate::model::ServiceModel;

/// The wire protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.1: `X-Amz-Target`, JSON bodies (OpsWorks).
    Json,
    /// AWS Query: form-encoded `Action=...&Version=...`, XML responses (IAM, STS, RDS, ELB).
    Query,
    /// EC2's dialect of Query: other key names, flat lists, its own XML response and error layout.
    Ec2,
}

/// A service this endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// AWS OpsWorks Stacks (`opsworks`).
    OpsWorks,
    /// AWS Identity and Access Management (`iam`).
    Iam,
    /// AWS Security Token Service (`sts`).
    Sts,
    /// Amazon RDS (`rds`).
    Rds,
    /// Classic Elastic Load Balancing (`elb` in botocore, signed as `elasticloadbalancing`).
    Elb,
    /// Amazon EC2 (`ec2`).
    Ec2,
}

macro_rules! embedded_model {
    ($name:ident, $file:literal) => {
        static $name: LazyLock<ServiceModel> = LazyLock::new(|| {
            // Vendored and loaded by this crate's tests; failing here is a build defect.
            ServiceModel::from_json(include_str!(concat!("../model/", $file)))
                .expect("vendored service model parses")
        });
    };
}

embedded_model!(IAM, "iam.json");
embedded_model!(STS, "sts.json");
embedded_model!(RDS, "rds.json");
embedded_model!(ELB, "elb.json");
embedded_model!(EC2, "ec2.json");

impl Service {
    /// Every service, OpsWorks first.
    pub const ALL: [Service; 6] = [
        Service::OpsWorks,
        Service::Iam,
        Service::Sts,
        Service::Rds,
        Service::Elb,
        Service::Ec2,
    ];

    /// The service a SigV4 credential scope names, if we answer it.
    pub fn from_signing_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.signing_name() == name)
    }

    /// The service's name in SigV4 credential scopes.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::OpsWorks => crate::SIGNING_NAME,
            Service::Iam => "iam",
            Service::Sts => "sts",
            Service::Rds => "rds",
            Service::Elb => "elasticloadbalancing",
            Service::Ec2 => "ec2",
        }
    }

    /// The wire protocol.
    pub fn protocol(self) -> Protocol {
        match self {
            Service::OpsWorks => Protocol::Json,
            Service::Iam | Service::Sts | Service::Rds | Service::Elb => Protocol::Query,
            Service::Ec2 => Protocol::Ec2,
        }
    }

    /// The embedded service model.
    pub fn model(self) -> &'static ServiceModel {
        match self {
            Service::OpsWorks => crate::model(),
            Service::Iam => &IAM,
            Service::Sts => &STS,
            Service::Rds => &RDS,
            Service::Elb => &ELB,
            Service::Ec2 => &EC2,
        }
    }

    /// The API version: the `Version` every Query and EC2 request carries.
    pub fn api_version(self) -> &'static str {
        &self.model().metadata.api_version
    }

    /// The XML namespace of responses, with the trailing `/` AWS sends (the EC2 model lacks it).
    pub fn xml_namespace(self) -> String {
        let ns = self.model().metadata.xml_namespace.as_deref().unwrap_or("");
        if ns.is_empty() || ns.ends_with('/') {
            ns.to_string()
        } else {
            format!("{ns}/")
        }
    }

    /// How the validator words and codes its errors for this service.
    pub(crate) fn dialect(self) -> Dialect {
        match self {
            Service::OpsWorks | Service::Iam | Service::Sts | Service::Elb => Dialect::Coral,
            Service::Rds => Dialect::Rds,
            Service::Ec2 => Dialect::Ec2,
        }
    }
}

/// How a service reports invalid input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// AWS's Coral validator (IAM, STS, ELB): one `ValidationError` listing every violation.
    Coral,
    /// RDS: `MissingParameter` / `InvalidParameterValue`, the first problem only.
    Rds,
    /// EC2: `MissingParameter` / `InvalidParameterValue` / `UnknownParameter`, the first only.
    Ec2,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_loads_and_knows_its_signing_name_version_and_namespace() {
        let expected = [
            (Service::Iam, "iam", "2010-05-08", 40, 164),
            (Service::Sts, "sts", "2011-06-15", 1, 9),
            (Service::Rds, "rds", "2014-10-31", 5, 162),
            (Service::Elb, "elasticloadbalancing", "2012-06-01", 7, 29),
            (Service::Ec2, "ec2", "2016-11-15", 11, 658),
        ];
        for (service, signing, version, served, all) in expected {
            assert_eq!(Service::from_signing_name(signing), Some(service));
            assert_eq!(service.signing_name(), signing);
            assert_eq!(service.api_version(), version);
            let model = service.model();
            assert_eq!(model.operations.len(), served, "{service:?}");
            assert_eq!(model.all_operations.len(), all, "{service:?}");
            assert!(
                model
                    .operations
                    .keys()
                    .all(|op| model.all_operations.contains(op))
            );
            assert!(service.xml_namespace().ends_with(&format!("{version}/")));
        }
        assert_eq!(
            Service::Ec2.xml_namespace(),
            "http://ec2.amazonaws.com/doc/2016-11-15/"
        );
        assert_eq!(
            Service::from_signing_name("opsworks"),
            Some(Service::OpsWorks)
        );
        assert_eq!(Service::OpsWorks.protocol(), Protocol::Json);
        assert_eq!(Service::from_signing_name("s3"), None);
        assert_eq!(Service::from_signing_name("elb"), None);
    }

    #[test]
    fn every_pattern_of_the_served_models_compiles() {
        for service in Service::ALL {
            let model = service.model();
            for (name, shape) in &model.shapes {
                if shape.pattern.is_some() {
                    assert!(
                        model.pattern(name).is_some(),
                        "{service:?} {name}: {:?}",
                        shape.pattern
                    );
                }
            }
        }
    }

    #[test]
    fn every_shape_reference_resolves() {
        for service in Service::ALL {
            let model = service.model();
            let refs = model.shapes.values().flat_map(|s| {
                s.members
                    .values()
                    .chain(s.member.iter())
                    .chain(s.key.iter())
                    .chain(s.value.iter())
            });
            let op_refs = model
                .operations
                .values()
                .flat_map(|o| o.input.iter().chain(o.output.iter()).chain(o.errors.iter()));
            for r in refs.chain(op_refs) {
                assert!(
                    model.shapes.contains_key(&r.shape),
                    "{service:?}: {}",
                    r.shape
                );
            }
        }
    }

    #[test]
    fn error_codes_carry_the_models_status() {
        assert_eq!(
            Service::Iam.model().error_trait("EntityAlreadyExists"),
            Some((409, true))
        );
        assert_eq!(
            Service::Iam.model().error_trait("ServiceFailure"),
            Some((500, false))
        );
        assert_eq!(
            Service::Rds.model().error_trait("DBInstanceNotFound"),
            Some((404, true))
        );
        assert_eq!(
            Service::Elb.model().error_trait("LoadBalancerNotFound"),
            Some((400, true))
        );
        assert_eq!(
            Service::Ec2.model().error_trait("InvalidVolume.NotFound"),
            None
        );
    }
}

//! The AWS managed policies an OpsWorks account has from the start, as documents with their ARNs
//! (`arn:aws:iam::aws:policy/NAME`).
//!
//! Documents and dates as AWS publishes them (moto's import of AWS's list, which does not carry
//! the descriptions: those are AWS's as far as known, not checked against a source). AWS publishes no
//! read-only OpsWorks Stacks policy; `AWSOpsWorks_ReadOnlyAccess` is this project's, named in
//! AWS's style, and says so in its description.

use crate::error::{PolicyError, PolicyKind};
use crate::policy::Policy;

/// One predefined managed policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedPolicy {
    /// The policy name, e.g. `AWSOpsWorks_FullAccess`.
    pub name: &'static str,
    /// `arn:aws:iam::aws:policy/` + name.
    pub arn: &'static str,
    /// The path, `/`.
    pub path: &'static str,
    /// What it grants.
    pub description: &'static str,
    /// The default (and only) version, `v1`.
    pub version_id: &'static str,
    /// When AWS created it (ISO 8601).
    pub create_date: &'static str,
    /// When AWS last changed it (ISO 8601).
    pub update_date: &'static str,
    /// The policy document, JSON.
    pub document: &'static str,
}

impl ManagedPolicy {
    /// The document parsed. The documents are constants this crate's tests parse, so this
    /// fails only if one is edited wrongly.
    pub fn policy(&self) -> Result<Policy, PolicyError> {
        Policy::parse(self.document, PolicyKind::Managed)
    }
}

const FULL_ACCESS: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "cloudwatch:GetMetricStatistics",
                "ec2:DescribeAccountAttributes",
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeInstances",
                "ec2:DescribeKeyPairs",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
                "elasticloadbalancing:DescribeInstanceHealth",
                "elasticloadbalancing:DescribeLoadBalancers",
                "iam:GetRolePolicy",
                "iam:ListInstanceProfiles",
                "iam:ListRoles",
                "iam:ListUsers",
                "opsworks:*"
            ],
            "Resource": [
                "*"
            ]
        },
        {
            "Effect": "Allow",
            "Action": [
                "iam:PassRole"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "iam:PassedToService": "opsworks.amazonaws.com"
                }
            }
        }
    ]
}"#;

const READ_ONLY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "opsworks:Describe*",
                "opsworks:ListTags"
            ],
            "Resource": "*"
        }
    ]
}"#;

const INSTANCE_REGISTRATION: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "opsworks:DescribeStackProvisioningParameters",
                "opsworks:DescribeStacks",
                "opsworks:RegisterInstance"
            ],
            "Resource": [
                "*"
            ]
        }
    ]
}"#;

const REGISTER_CLI_EC2: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "opsworks:AssignInstance",
                "opsworks:CreateLayer",
                "opsworks:DeregisterInstance",
                "opsworks:DescribeInstances",
                "opsworks:DescribeStackProvisioningParameters",
                "opsworks:DescribeStacks",
                "opsworks:UnassignInstance"
            ],
            "Resource": [
                "*"
            ]
        },
        {
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeInstances"
            ],
            "Resource": [
                "*"
            ]
        }
    ]
}"#;

const REGISTER_CLI_ON_PREMISES: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "opsworks:AssignInstance",
                "opsworks:CreateLayer",
                "opsworks:DeregisterInstance",
                "opsworks:DescribeInstances",
                "opsworks:DescribeStackProvisioningParameters",
                "opsworks:DescribeStacks",
                "opsworks:UnassignInstance"
            ],
            "Resource": [
                "*"
            ]
        },
        {
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeInstances"
            ],
            "Resource": [
                "*"
            ]
        },
        {
            "Effect": "Allow",
            "Action": [
                "iam:CreateGroup",
                "iam:AddUserToGroup"
            ],
            "Resource": [
                "arn:aws:iam::*:group/AWS/OpsWorks/OpsWorks-*"
            ]
        },
        {
            "Effect": "Allow",
            "Action": [
                "iam:CreateUser",
                "iam:CreateAccessKey"
            ],
            "Resource": [
                "arn:aws:iam::*:user/AWS/OpsWorks/OpsWorks-*"
            ]
        },
        {
            "Effect": "Allow",
            "Action": [
                "iam:AttachUserPolicy"
            ],
            "Resource": [
                "arn:aws:iam::*:user/AWS/OpsWorks/OpsWorks-*"
            ],
            "Condition": {
                "ArnEquals": {
                    "iam:PolicyARN": "arn:aws:iam::aws:policy/AWSOpsWorksInstanceRegistration"
                }
            }
        }
    ]
}"#;

/// The predefined managed policies.
pub static AWS_MANAGED_POLICIES: &[ManagedPolicy] = &[
    ManagedPolicy {
        name: "AWSOpsWorks_FullAccess",
        arn: "arn:aws:iam::aws:policy/AWSOpsWorks_FullAccess",
        path: "/",
        description: "Provides full access to AWS OpsWorks",
        version_id: "v1",
        create_date: "2021-01-22T16:29:08+00:00",
        update_date: "2021-01-22T16:29:08+00:00",
        document: FULL_ACCESS,
    },
    ManagedPolicy {
        name: "AWSOpsWorks_ReadOnlyAccess",
        arn: "arn:aws:iam::aws:policy/AWSOpsWorks_ReadOnlyAccess",
        path: "/",
        description: "Provides read-only access to AWS OpsWorks Stacks (this server's own policy: AWS publishes none)",
        version_id: "v1",
        create_date: "2021-01-22T16:29:08+00:00",
        update_date: "2021-01-22T16:29:08+00:00",
        document: READ_ONLY,
    },
    ManagedPolicy {
        name: "AWSOpsWorksInstanceRegistration",
        arn: "arn:aws:iam::aws:policy/AWSOpsWorksInstanceRegistration",
        path: "/",
        description: "Provides access to Amazon EC2 instances to register with AWS OpsWorks.",
        version_id: "v1",
        create_date: "2016-06-03T14:23:15+00:00",
        update_date: "2016-06-03T14:23:15+00:00",
        document: INSTANCE_REGISTRATION,
    },
    ManagedPolicy {
        name: "AWSOpsWorksRegisterCLI_EC2",
        arn: "arn:aws:iam::aws:policy/AWSOpsWorksRegisterCLI_EC2",
        path: "/",
        description: "Policy to enable registration of EC2 instances via the OpsWorks CLI",
        version_id: "v1",
        create_date: "2019-06-18T15:56:17+00:00",
        update_date: "2019-06-18T15:56:17+00:00",
        document: REGISTER_CLI_EC2,
    },
    ManagedPolicy {
        name: "AWSOpsWorksRegisterCLI_OnPremises",
        arn: "arn:aws:iam::aws:policy/AWSOpsWorksRegisterCLI_OnPremises",
        path: "/",
        description: "Policy to enable registration of on-premises instances via the OpsWorks CLI",
        version_id: "v1",
        create_date: "2019-06-18T15:33:16+00:00",
        update_date: "2019-06-18T15:33:16+00:00",
        document: REGISTER_CLI_ON_PREMISES,
    },
];

/// The predefined managed policy with this ARN.
pub fn aws_managed_policy(arn: &str) -> Option<&'static ManagedPolicy> {
    AWS_MANAGED_POLICIES.iter().find(|p| p.arn == arn)
}

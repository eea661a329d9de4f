//! The catalog: operating systems and agent versions the server offers.

/// An operating system of `DescribeOperatingSystems`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatingSystem {
    /// The name used in `DefaultOs` / `Os`.
    pub name: &'static str,
    /// `Linux` or `Windows`.
    pub family: &'static str,
    /// The Chef versions it supports.
    pub chef_versions: &'static [&'static str],
    /// The name the agent reports.
    pub reported_name: &'static str,
    /// The version the agent reports.
    pub reported_version: &'static str,
}

/// Every operating system the API accepts, the original's list plus what local instances run.
pub const OPERATING_SYSTEMS: &[OperatingSystem] = &[
    OperatingSystem { name: "Amazon Linux 2", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "amazon", reported_version: "2" },
    OperatingSystem { name: "Amazon Linux 2018.03", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "amazon", reported_version: "2018.03" },
    OperatingSystem { name: "Amazon Linux 2017.09", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "amazon", reported_version: "2017.09" },
    OperatingSystem { name: "Amazon Linux 2017.03", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "amazon", reported_version: "2017.03" },
    OperatingSystem { name: "Amazon Linux 2016.09", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "amazon", reported_version: "2016.09" },
    OperatingSystem { name: "Amazon Linux 2016.03", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "amazon", reported_version: "2016.03" },
    OperatingSystem { name: "Amazon Linux 2015.09", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "amazon", reported_version: "2015.09" },
    OperatingSystem { name: "Amazon Linux 2015.03", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "amazon", reported_version: "2015.03" },
    OperatingSystem { name: "Ubuntu 18.04 LTS", family: "Linux", chef_versions: &["12"], reported_name: "ubuntu", reported_version: "18.04" },
    OperatingSystem { name: "Ubuntu 16.04 LTS", family: "Linux", chef_versions: &["12", "11.10"], reported_name: "ubuntu", reported_version: "16.04" },
    OperatingSystem { name: "Ubuntu 14.04 LTS", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "ubuntu", reported_version: "14.04" },
    OperatingSystem { name: "Ubuntu 12.04 LTS", family: "Linux", chef_versions: &["11.10", "11.4"], reported_name: "ubuntu", reported_version: "12.04" },
    OperatingSystem { name: "CentOS Linux 7", family: "Linux", chef_versions: &["12"], reported_name: "centos", reported_version: "7" },
    OperatingSystem { name: "Red Hat Enterprise Linux 7", family: "Linux", chef_versions: &["12", "11.10"], reported_name: "redhat", reported_version: "7" },
    OperatingSystem { name: "Debian 12", family: "Linux", chef_versions: &["12"], reported_name: "debian", reported_version: "12" },
    OperatingSystem { name: "Microsoft Windows Server 2012 R2 Base", family: "Windows", chef_versions: &["12.2"], reported_name: "windows", reported_version: "2012 R2" },
    OperatingSystem { name: "Microsoft Windows Server 2012 R2 with SQL Server Express", family: "Windows", chef_versions: &["12.2"], reported_name: "windows", reported_version: "2012 R2" },
    OperatingSystem { name: "Microsoft Windows Server 2012 R2 with SQL Server Standard", family: "Windows", chef_versions: &["12.2"], reported_name: "windows", reported_version: "2012 R2" },
    OperatingSystem { name: "Microsoft Windows Server 2012 R2 with SQL Server Web", family: "Windows", chef_versions: &["12.2"], reported_name: "windows", reported_version: "2012 R2" },
    OperatingSystem { name: "Custom", family: "Linux", chef_versions: &["12", "11.10", "11.4"], reported_name: "custom", reported_version: "" },
];

/// The operating system named `name`.
pub fn operating_system(name: &str) -> Option<&'static OperatingSystem> {
    OPERATING_SYSTEMS.iter().find(|os| os.name == name)
}

/// The default `DefaultOs` of a new stack.
pub const DEFAULT_OS: &str = "Amazon Linux 2";

/// The Chef versions a stack's `ConfigurationManager` may name.
pub const CHEF_VERSIONS: &[&str] = &["12", "11.10", "11.4", "12.2", "0.9"];

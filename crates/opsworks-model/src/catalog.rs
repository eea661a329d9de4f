//! The catalog: the operating systems and agent versions the server offers.
//!
//! `DescribeOperatingSystems` and `DescribeAgentVersions` answer from here, and the stack and
//! instance operations check `DefaultOs`, `Os`, `ConfigurationManager` and `AgentVersion` against it.

/// An operating system of `DescribeOperatingSystems`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatingSystem {
    /// The name used in `DefaultOs` / `Os` (also its `Id`).
    pub name: &'static str,
    /// `Linux` or `Windows`.
    pub family: &'static str,
    /// The Chef versions it supports.
    pub chef_versions: &'static [&'static str],
    /// The name the agent reports.
    pub reported_name: &'static str,
    /// The version the agent reports.
    pub reported_version: &'static str,
    /// Whether new instances may run it (`Supported`); end-of-life systems stay listed, marked
    /// unsupported, so stacks that name them still describe.
    pub supported: bool,
}

const fn os(
    name: &'static str,
    family: &'static str,
    chef_versions: &'static [&'static str],
    reported_name: &'static str,
    reported_version: &'static str,
    supported: bool,
) -> OperatingSystem {
    OperatingSystem {
        name,
        family,
        chef_versions,
        reported_name,
        reported_version,
        supported,
    }
}

/// Every operating system the API accepts, the original's list plus what local instances run.
#[rustfmt::skip]
pub const OPERATING_SYSTEMS: &[OperatingSystem] = &[
    os("Amazon Linux 2", "Linux", &["12", "11.10", "11.4"], "amazon", "2", true),
    // The original's older name (AWS's own CLI examples use it).
    os("Amazon Linux", "Linux", &["12", "11.10", "11.4"], "amazon", "2018.03", true),
    os("Amazon Linux 2018.03", "Linux", &["12", "11.10", "11.4"], "amazon", "2018.03", true),
    os("Amazon Linux 2017.09", "Linux", &["12", "11.10", "11.4"], "amazon", "2017.09", true),
    os("Amazon Linux 2017.03", "Linux", &["12", "11.10", "11.4"], "amazon", "2017.03", true),
    os("Amazon Linux 2016.09", "Linux", &["12", "11.10", "11.4"], "amazon", "2016.09", true),
    os("Amazon Linux 2016.03", "Linux", &["12", "11.10", "11.4"], "amazon", "2016.03", true),
    os("Amazon Linux 2015.09", "Linux", &["12", "11.10", "11.4"], "amazon", "2015.09", true),
    os("Amazon Linux 2015.03", "Linux", &["12", "11.10", "11.4"], "amazon", "2015.03", true),
    os("Ubuntu 18.04 LTS", "Linux", &["12"], "ubuntu", "18.04", true),
    os("Ubuntu 16.04 LTS", "Linux", &["12", "11.10"], "ubuntu", "16.04", true),
    os("Ubuntu 14.04 LTS", "Linux", &["12", "11.10", "11.4"], "ubuntu", "14.04", true),
    os("Ubuntu 12.04 LTS", "Linux", &["11.10", "11.4"], "ubuntu", "12.04", true),
    os("CentOS Linux 7", "Linux", &["12"], "centos", "7", true),
    os("Red Hat Enterprise Linux 7", "Linux", &["12", "11.10"], "redhat", "7", true),
    os("Debian 12", "Linux", &["12"], "debian", "12", true),
    os("Microsoft Windows Server 2012 R2 Base", "Windows", &["12.2"], "windows", "2012 R2", true),
    os("Microsoft Windows Server 2012 R2 with SQL Server Express", "Windows", &["12.2"], "windows", "2012 R2", true),
    os("Microsoft Windows Server 2012 R2 with SQL Server Standard", "Windows", &["12.2"], "windows", "2012 R2", true),
    os("Microsoft Windows Server 2012 R2 with SQL Server Web", "Windows", &["12.2"], "windows", "2012 R2", true),
    os("Custom", "Linux", &["12", "11.10", "11.4"], "custom", "", true),
];

/// What a machine's `/etc/os-release` says it runs: the catalog's name for it (`Debian 12`),
/// the agent's reported name (`debian`) and version (`12`). `None` when the text has no `ID`.
pub fn from_os_release(text: &str) -> Option<(String, String, String)> {
    let field = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
    };
    let id = field("ID")?;
    let version = field("VERSION_ID").unwrap_or_default();
    let pretty = match id.as_str() {
        "debian" => "Debian",
        "ubuntu" => "Ubuntu",
        "amzn" => "Amazon Linux",
        "centos" => "CentOS Linux",
        "rhel" => "Red Hat Enterprise Linux",
        other => other,
    };
    let name = if id == "ubuntu" {
        format!("{pretty} {version} LTS")
    } else {
        format!("{pretty} {version}").trim().to_string()
    };
    Some((name, id, version))
}

/// The operating system this host's local instances run (they run the host's own), once the
/// server has read it: named as the catalog names it, accepted wherever the API takes an OS.
static LOCAL: std::sync::OnceLock<OperatingSystem> = std::sync::OnceLock::new();

/// Records the OS local instances run (`from_os_release` of the host). The first call wins: one
/// host, one OS.
pub fn set_local(name: &str, reported_name: &str, reported_version: &str) {
    let known = OPERATING_SYSTEMS.iter().find(|os| os.name == name).copied();
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let _ = LOCAL.get_or_init(|| {
        known.unwrap_or(OperatingSystem {
            name: leak(name),
            family: "Linux",
            chef_versions: &["12", "11.10"],
            reported_name: leak(reported_name),
            reported_version: leak(reported_version),
            supported: true,
        })
    });
}

/// The OS local instances run, when the server runs them.
pub fn local() -> Option<&'static OperatingSystem> {
    LOCAL.get()
}

/// The operating system named `name`: one of the catalog's, or the one local instances run.
pub fn operating_system(name: &str) -> Option<&'static OperatingSystem> {
    OPERATING_SYSTEMS
        .iter()
        .find(|os| os.name == name)
        .or_else(|| local().filter(|os| os.name == name))
}

/// The default `DefaultOs` of a new stack.
pub const DEFAULT_OS: &str = "Amazon Linux 2";

/// The Chef versions a stack's `ConfigurationManager` may name.
pub const CHEF_VERSIONS: &[&str] = &["12", "11.10", "11.4", "12.2", "0.9"];

/// The version of this server's agent: the workspace version, which server and agent share.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The agent versions offered to stacks on Chef `chef_version`: this server ships one agent,
/// which serves every Chef version the API accepts; an unknown version has none.
pub fn agent_versions(chef_version: &str) -> Vec<&'static str> {
    if CHEF_VERSIONS.contains(&chef_version) {
        vec![AGENT_VERSION]
    } else {
        Vec::new()
    }
}

/// Whether `v` may be given as a stack's `AgentVersion` (`LATEST` or a version of
/// [`agent_versions`]); instances may also say `INHERIT`. The server also offers the releases an
/// operator added; it checks those against its store.
pub fn is_agent_version(v: &str) -> bool {
    v == "LATEST" || v == AGENT_VERSION
}

/// Orders agent versions as people read them: dot- and dash-separated parts compared as numbers
/// where both are numbers, as text otherwise (`0.10.0` > `0.9.1`, `4042-2023` > `4041-2024`);
/// a version that is a prefix of another comes first.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let mut left = a.split(['.', '-', '+']);
    let mut right = b.split(['.', '-', '+']);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if order != std::cmp::Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// The newest of `versions` by [`compare_versions`] (what `LATEST` means).
pub fn newest<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions.into_iter().max_by(|a, b| compare_versions(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_names_what_the_machine_runs() {
        let debian =
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(
            from_os_release(debian),
            Some(("Debian 12".into(), "debian".into(), "12".into()))
        );
        let ubuntu = "ID=ubuntu\nVERSION_ID=\"22.04\"\n";
        assert_eq!(from_os_release(ubuntu).unwrap().0, "Ubuntu 22.04 LTS");
        assert_eq!(from_os_release("NAME=x\n"), None);
        assert!(operating_system("Amazon Linux").is_some_and(|o| o.supported));
    }

    #[test]
    fn names_are_unique_and_chef_versions_known() {
        for (i, a) in OPERATING_SYSTEMS.iter().enumerate() {
            assert!(
                OPERATING_SYSTEMS[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
            assert!(matches!(a.family, "Linux" | "Windows"), "{}", a.name);
            assert!(!a.chef_versions.is_empty(), "{}", a.name);
            assert!(
                a.chef_versions.iter().all(|v| CHEF_VERSIONS.contains(v)),
                "{}",
                a.name
            );
        }
        let default = operating_system(DEFAULT_OS).map(|o| o.supported);
        assert_eq!(default, Some(true));
        assert!(OPERATING_SYSTEMS.iter().any(|o| o.family == "Windows"));
    }

    #[test]
    fn one_agent_for_every_chef_version() {
        for v in CHEF_VERSIONS {
            assert_eq!(agent_versions(v), vec![AGENT_VERSION]);
        }
        assert!(agent_versions("13").is_empty());
        assert!(is_agent_version("LATEST") && is_agent_version(AGENT_VERSION));
        assert!(!is_agent_version("4042-20230222112402"));
    }

    #[test]
    fn versions_order_by_their_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("0.10.0", "0.9.1"), Greater);
        assert_eq!(compare_versions("0.1.0", "0.1.0"), Equal);
        assert_eq!(compare_versions("0.1.0", "0.1.0-test.2"), Less);
        assert_eq!(compare_versions("4042-20230222", "4041-20240101"), Greater);
        assert_eq!(compare_versions("1.a", "1.b"), Less);
        assert_eq!(newest(["0.1.0", "0.2.0", "0.1.9"]), Some("0.2.0"));
        assert_eq!(newest(Vec::<&str>::new()), None);
    }
}

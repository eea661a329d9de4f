//! What an EC2 instance type means in CPUs and memory, for the limits of a local instance.
//!
//! [`TABLE`] holds the common types with the vCPUs and memory AWS documents for them. A type not
//! in the table is sized by [`size_of`]'s rule from its size suffix, at the general-purpose
//! ratio of 4 GiB per vCPU from `large` up:
//!
//! | size | vCPUs | memory |
//! | --- | --- | --- |
//! | `nano` | 1 | 512 MiB |
//! | `micro` | 1 | 1 GiB |
//! | `small` | 1 | 2 GiB |
//! | `medium` | 2 | 4 GiB |
//! | `large` | 2 | 8 GiB |
//! | `xlarge` | 4 | 16 GiB |
//! | `Nxlarge` (N ≤ 64) | 4 × N | 16 GiB × N |
//! | anything else (`metal`, no `.`, N > 64) | 2 | 4 GiB |
//!
//! A local instance gets at most what its host has: a type larger than the host is limited by
//! the host, not by this table.

/// vCPUs and memory of an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceSize {
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
}

impl InstanceSize {
    /// Memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib * 1024 * 1024
    }
}

const fn size(vcpus: u32, memory_mib: u64) -> InstanceSize {
    InstanceSize { vcpus, memory_mib }
}

const GIB: u64 = 1024;

/// The common EC2 types: `(type, vCPUs and memory)` as AWS documents them.
pub const TABLE: &[(&str, InstanceSize)] = &[
    ("t2.nano", size(1, GIB / 2)),
    ("t2.micro", size(1, GIB)),
    ("t2.small", size(1, 2 * GIB)),
    ("t2.medium", size(2, 4 * GIB)),
    ("t2.large", size(2, 8 * GIB)),
    ("t2.xlarge", size(4, 16 * GIB)),
    ("t2.2xlarge", size(8, 32 * GIB)),
    ("t3.nano", size(2, GIB / 2)),
    ("t3.micro", size(2, GIB)),
    ("t3.small", size(2, 2 * GIB)),
    ("t3.medium", size(2, 4 * GIB)),
    ("t3.large", size(2, 8 * GIB)),
    ("t3.xlarge", size(4, 16 * GIB)),
    ("t3.2xlarge", size(8, 32 * GIB)),
    ("t3a.nano", size(2, GIB / 2)),
    ("t3a.micro", size(2, GIB)),
    ("t3a.small", size(2, 2 * GIB)),
    ("t3a.medium", size(2, 4 * GIB)),
    ("t3a.large", size(2, 8 * GIB)),
    ("t3a.xlarge", size(4, 16 * GIB)),
    ("t3a.2xlarge", size(8, 32 * GIB)),
    ("m4.large", size(2, 8 * GIB)),
    ("m4.xlarge", size(4, 16 * GIB)),
    ("m4.2xlarge", size(8, 32 * GIB)),
    ("m4.4xlarge", size(16, 64 * GIB)),
    ("m5.large", size(2, 8 * GIB)),
    ("m5.xlarge", size(4, 16 * GIB)),
    ("m5.2xlarge", size(8, 32 * GIB)),
    ("m5.4xlarge", size(16, 64 * GIB)),
    ("c4.large", size(2, 3840)),
    ("c4.xlarge", size(4, 7680)),
    ("c4.2xlarge", size(8, 15 * GIB)),
    ("c4.4xlarge", size(16, 30 * GIB)),
    ("c5.large", size(2, 4 * GIB)),
    ("c5.xlarge", size(4, 8 * GIB)),
    ("c5.2xlarge", size(8, 16 * GIB)),
    ("c5.4xlarge", size(16, 32 * GIB)),
    ("r5.large", size(2, 16 * GIB)),
    ("r5.xlarge", size(4, 32 * GIB)),
    ("r5.2xlarge", size(8, 64 * GIB)),
    ("r5.4xlarge", size(16, 128 * GIB)),
];

/// The size of a fallback type: what a type whose size cannot be read gets (a `t3.medium`).
pub const FALLBACK: InstanceSize = size(2, 4 * GIB);

/// The table's entry for `instance_type`, if it has one.
pub fn known(instance_type: &str) -> Option<InstanceSize> {
    TABLE
        .iter()
        .find(|(name, _)| *name == instance_type)
        .map(|(_, size)| *size)
}

/// The size of any instance type: the table's entry, else the rule of the module docs.
pub fn size_of(instance_type: &str) -> InstanceSize {
    if let Some(size) = known(instance_type) {
        return size;
    }
    let Some((_, suffix)) = instance_type.rsplit_once('.') else {
        return FALLBACK;
    };
    match suffix {
        "nano" => size(1, GIB / 2),
        "micro" => size(1, GIB),
        "small" => size(1, 2 * GIB),
        "medium" => size(2, 4 * GIB),
        "large" => size(2, 8 * GIB),
        "xlarge" => size(4, 16 * GIB),
        other => match other
            .strip_suffix("xlarge")
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(n @ 1..=64) => size(4 * n, 16 * GIB * u64::from(n)),
            _ => FALLBACK,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_common_types() {
        assert_eq!(size_of("t3.micro"), size(2, 1024));
        assert_eq!(size_of("t2.nano"), size(1, 512));
        assert_eq!(size_of("r5.4xlarge"), size(16, 128 * 1024));
        assert_eq!(size_of("c5.large").memory_bytes(), 4 << 30);
        // Every entry is unique and sane.
        let mut names: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLE.len());
        assert!(
            TABLE
                .iter()
                .all(|(_, s)| s.vcpus >= 1 && s.memory_mib >= 512)
        );
    }

    #[test]
    fn unknown_types_follow_the_size_rule() {
        assert_eq!(known("m6i.large"), None);
        assert_eq!(size_of("m6i.large"), size(2, 8 * 1024));
        assert_eq!(size_of("c7g.micro"), size(1, 1024));
        assert_eq!(size_of("x9.8xlarge"), size(32, 128 * 1024));
        for odd in [
            "m5.metal",
            "weird",
            "",
            "m5.0xlarge",
            "m5.65xlarge",
            "m5.-1xlarge",
        ] {
            assert_eq!(size_of(odd), FALLBACK, "{odd:?}");
        }
    }
}

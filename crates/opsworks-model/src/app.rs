//! App rules the service model does not carry: short names, environment variables, data sources.
//!
//! The limits are the original's (`shared/reference/opsworks.md` §1.4): an app's short name is
//! derived from its name and never changes; its environment is at most 20 KB with keys of at most
//! 64 characters (`[A-Za-z_][A-Za-z0-9_]*`) and values of at most 256; it has at most one database.

/// The longest environment variable key.
pub const MAX_ENV_KEY_CHARS: usize = 64;
/// The longest environment variable value.
pub const MAX_ENV_VALUE_CHARS: usize = 256;
/// The largest environment, counted over keys, values and the `Secure` flags.
pub const MAX_ENVIRONMENT_BYTES: usize = 20 * 1024;
/// The data source types an app may name.
pub const DATA_SOURCE_TYPES: [&str; 4] = [
    "AutoSelectOpsworksMysqlInstance",
    "OpsworksMysqlInstance",
    "RdsDbInstance",
    "None",
];

/// Why an app member was refused. Messages name the member, as AWS's do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The environment as a whole is over [`MAX_ENVIRONMENT_BYTES`] (AWS's own wording).
    #[error("Environment: is too large (maximum is 20KB)")]
    EnvironmentTooLarge,
    /// A key is empty, too long or has a character outside `[A-Za-z0-9_]` (or starts with a digit).
    #[error(
        "Environment: invalid key '{0}'; a key has 1 to 64 characters, letters, digits and underscores, and does not start with a digit"
    )]
    BadEnvKey(String),
    /// A value is too long or holds a control character.
    #[error("Environment: the value of {0} must be at most 256 printable characters")]
    BadEnvValue(String),
    /// The same key twice.
    #[error("Environment: the key {0} is given more than once")]
    DuplicateEnvKey(String),
    /// More than one data source.
    #[error("DataSources: an app can have at most one data source; {0} were given")]
    TooManyDataSources(usize),
    /// A data source type outside [`DATA_SOURCE_TYPES`].
    #[error(
        "DataSources: invalid type '{0}'; valid types are AutoSelectOpsworksMysqlInstance, OpsworksMysqlInstance, RdsDbInstance, None"
    )]
    BadDataSourceType(String),
    /// An RDS data source without the ARN of the database instance.
    #[error(
        "DataSources: a data source of type RdsDbInstance needs the Arn of the RDS DB instance"
    )]
    RdsWithoutArn,
    /// A short name with characters outside `[a-z0-9_-]`, or empty.
    #[error("Shortname: invalid short name '{0}'; use lower-case letters, digits, '-' and '_'")]
    BadShortname(String),
}

/// One environment variable of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar<'a> {
    /// Its name.
    pub key: &'a str,
    /// Its value (the real one, never the FILTERED marker).
    pub value: &'a str,
    /// Whether the API hides the value.
    pub secure: bool,
}

/// The short name derived from an app's name: lower-case, runs of characters outside
/// `[a-z0-9_-]` turned into one `_`, without leading or trailing `_` (`"Shop Front"` → `shop_front`,
/// `"SimpleJSP"` → `simplejsp`, the original's examples). A name with nothing usable gives `app`.
pub fn shortname_from_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "app".to_string()
    } else {
        trimmed.to_string()
    }
}

/// `base`, or `base_2`, `base_3`, ... : the first that no app of the stack uses yet.
pub fn unique_shortname(base: &str, taken: &[&str]) -> String {
    if !taken.contains(&base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}_{n}"))
        .find(|candidate| !taken.contains(&candidate.as_str()))
        .unwrap_or_else(|| base.to_string())
}

/// Checks a short name given by the caller: non-empty, `[a-z0-9_-]` only.
pub fn check_shortname(s: &str) -> Result<(), AppError> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(AppError::BadShortname(s.to_string()))
    }
}

fn valid_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && key.chars().count() <= MAX_ENV_KEY_CHARS
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The size the environment limit counts: every key and value, and each `Secure` flag as the
/// word it is written as (`true`/`false`).
pub fn environment_size(vars: &[EnvVar<'_>]) -> usize {
    vars.iter()
        .map(|v| v.key.len() + v.value.len() + if v.secure { 4 } else { 5 })
        .sum()
}

/// Checks an app's environment: each key and value, unique keys, and the 20 KB total.
pub fn check_environment(vars: &[EnvVar<'_>]) -> Result<(), AppError> {
    for (i, v) in vars.iter().enumerate() {
        if !valid_env_key(v.key) {
            return Err(AppError::BadEnvKey(v.key.to_string()));
        }
        if v.value.chars().count() > MAX_ENV_VALUE_CHARS || v.value.chars().any(char::is_control) {
            return Err(AppError::BadEnvValue(v.key.to_string()));
        }
        if vars[..i].iter().any(|earlier| earlier.key == v.key) {
            return Err(AppError::DuplicateEnvKey(v.key.to_string()));
        }
    }
    if environment_size(vars) > MAX_ENVIRONMENT_BYTES {
        return Err(AppError::EnvironmentTooLarge);
    }
    Ok(())
}

/// Checks an app's data sources, given as `(Type, Arn)` pairs: at most one, of a known type, and
/// an RDS one names its database instance.
pub fn check_data_sources(sources: &[(Option<&str>, Option<&str>)]) -> Result<(), AppError> {
    if sources.len() > 1 {
        return Err(AppError::TooManyDataSources(sources.len()));
    }
    for (kind, arn) in sources {
        let kind = kind.unwrap_or("None");
        if !DATA_SOURCE_TYPES.contains(&kind) {
            return Err(AppError::BadDataSourceType(kind.to_string()));
        }
        if kind == "RdsDbInstance" && arn.is_none_or(|a| a.trim().is_empty()) {
            return Err(AppError::RdsWithoutArn);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var<'a>(key: &'a str, value: &'a str) -> EnvVar<'a> {
        EnvVar {
            key,
            value,
            secure: false,
        }
    }

    #[test]
    fn shortnames_come_from_names() {
        assert_eq!(shortname_from_name("SimpleJSP"), "simplejsp");
        assert_eq!(shortname_from_name("Shop Front"), "shop_front");
        assert_eq!(shortname_from_name("  My -- App!! v2 "), "my_--_app_v2");
        assert_eq!(shortname_from_name("Ünïcode Café"), "n_code_caf");
        assert_eq!(shortname_from_name("!!!"), "app");
        for name in ["x y", "A.B", "tab\there", "😀 smile"] {
            assert!(
                check_shortname(&shortname_from_name(name)).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn shortnames_are_made_unique() {
        assert_eq!(unique_shortname("shop", &[]), "shop");
        assert_eq!(unique_shortname("shop", &["shop"]), "shop_2");
        assert_eq!(
            unique_shortname("shop", &["shop", "shop_2", "shop_3"]),
            "shop_4"
        );
    }

    #[test]
    fn given_shortnames_are_checked() {
        assert!(check_shortname("my_app-2").is_ok());
        assert_eq!(
            check_shortname("My App"),
            Err(AppError::BadShortname("My App".into()))
        );
        assert!(check_shortname("").is_err());
    }

    #[test]
    fn environment_keys_values_and_uniqueness() {
        assert!(
            check_environment(&[var("_under", ""), var(&"K".repeat(64), &"v".repeat(256))]).is_ok()
        );
        for bad in ["1ABC", "has-dash", "has space", ""] {
            assert_eq!(
                check_environment(&[var(bad, "x")]),
                Err(AppError::BadEnvKey(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            check_environment(&[var(&"K".repeat(65), "x")]),
            Err(AppError::BadEnvKey(_))
        ));
        assert_eq!(
            check_environment(&[var("V", &"v".repeat(257))]),
            Err(AppError::BadEnvValue("V".into()))
        );
        assert_eq!(
            check_environment(&[var("V", "line\nbreak")]),
            Err(AppError::BadEnvValue("V".into()))
        );
        assert_eq!(
            check_environment(&[var("A", "1"), var("A", "2")]),
            Err(AppError::DuplicateEnvKey("A".into()))
        );
    }

    #[test]
    fn environment_total_is_limited_to_20_kb() {
        let keys: Vec<String> = (0..100).map(|i| format!("VAR_{i}")).collect();
        let value = "v".repeat(256);
        let vars: Vec<EnvVar<'_>> = keys.iter().map(|k| var(k, &value)).collect();
        assert_eq!(check_environment(&vars), Err(AppError::EnvironmentTooLarge));
        assert_eq!(
            AppError::EnvironmentTooLarge.to_string(),
            "Environment: is too large (maximum is 20KB)"
        );
        // 70 variables of 256 bytes stay under the limit.
        assert!(
            check_environment(&vars[..70]).is_ok(),
            "{}",
            environment_size(&vars[..70])
        );
    }

    #[test]
    fn data_sources() {
        assert!(check_data_sources(&[]).is_ok());
        assert!(check_data_sources(&[(Some("None"), None)]).is_ok());
        assert!(
            check_data_sources(&[(Some("RdsDbInstance"), Some("arn:aws:rds:us-east-1:1:db:x"))])
                .is_ok()
        );
        assert_eq!(
            check_data_sources(&[(Some("RdsDbInstance"), None)]),
            Err(AppError::RdsWithoutArn)
        );
        assert_eq!(
            check_data_sources(&[(Some("Postgres"), None)]),
            Err(AppError::BadDataSourceType("Postgres".into()))
        );
        assert_eq!(
            check_data_sources(&[(Some("None"), None), (Some("None"), None)]),
            Err(AppError::TooManyDataSources(2))
        );
    }
}

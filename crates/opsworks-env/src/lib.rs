//! Every environment variable OpsWorks reads or sets, declared once: the binary's flags name them
//! in `env = ...`, the agent, the host and the console read them through these constants, and
//! the README's list is this file's.

/// Where `server` and `up` listen (`127.0.0.1:9730`).
pub const OPSWORKS_LISTEN: &str = "OPSWORKS_LISTEN";
/// The server's data dir.
pub const OPSWORKS_DATA_DIR: &str = "OPSWORKS_DATA_DIR";
/// The database URL (`postgres://...`, or a SQLite path); the data dir's SQLite file by default.
pub const OPSWORKS_DATABASE_URL: &str = "OPSWORKS_DATABASE_URL";
/// The URL clients reach a server at (log links, the registry of servers on a shared database).
pub const OPSWORKS_ADVERTISE_URL: &str = "OPSWORKS_ADVERTISE_URL";
/// The region in ARNs.
pub const OPSWORKS_REGION: &str = "OPSWORKS_REGION";
/// Whether `server` runs local instances.
pub const OPSWORKS_LOCAL_INSTANCES: &str = "OPSWORKS_LOCAL_INSTANCES";
/// Seconds of agent silence before an instance is `connection_lost`.
pub const OPSWORKS_HEALING_TIMEOUT: &str = "OPSWORKS_HEALING_TIMEOUT";
/// Networks the machines' package proxy may reach besides public addresses (comma-separated CIDRs).
pub const OPSWORKS_PACKAGE_PROXY_ALLOW: &str = "OPSWORKS_PACKAGE_PROXY_ALLOW";
/// The addresses `ec2 AllocateAddress` hands out as Elastic IPs (`10.217.255.0/24` or `A-B`).
pub const OPSWORKS_ELASTIC_IP_POOL: &str = "OPSWORKS_ELASTIC_IP_POOL";
/// How often scaling is applied.
pub const OPSWORKS_SCHEDULER_INTERVAL: &str = "OPSWORKS_SCHEDULER_INTERVAL";
/// How long one minute of the load-based thresholds lasts.
pub const OPSWORKS_SCALING_MINUTE: &str = "OPSWORKS_SCALING_MINUTE";
/// How long a registered machine's updated agent has to report in before the old one is put
/// back (default `60s`).
pub const OPSWORKS_AGENT_UPDATE_DEADLINE: &str = "OPSWORKS_AGENT_UPDATE_DEADLINE";
/// How long one minute of GrantAccess's `ValidForInMinutes` lasts.
pub const OPSWORKS_ACCESS_MINUTE: &str = "OPSWORKS_ACCESS_MINUTE";
/// How long events are kept.
pub const OPSWORKS_EVENT_RETENTION: &str = "OPSWORKS_EVENT_RETENTION";
/// How many events are kept.
pub const OPSWORKS_EVENT_MAX_ROWS: &str = "OPSWORKS_EVENT_MAX_ROWS";
/// Seconds between an agent's metric samples.
pub const OPSWORKS_METRICS_INTERVAL: &str = "OPSWORKS_METRICS_INTERVAL";
/// How long raw metric samples are kept.
pub const OPSWORKS_METRICS_RAW_RETENTION: &str = "OPSWORKS_METRICS_RAW_RETENTION";
/// How long 5-minute metric averages are kept.
pub const OPSWORKS_METRICS_ROLLUP_RETENTION: &str = "OPSWORKS_METRICS_ROLLUP_RETENTION";
/// A bearer token that may read the metrics endpoints.
pub const OPSWORKS_METRICS_TOKEN: &str = "OPSWORKS_METRICS_TOKEN";
/// Whether `/metrics` is open to anyone.
pub const OPSWORKS_METRICS_PUBLIC: &str = "OPSWORKS_METRICS_PUBLIC";
/// The root access key ID to install on first start.
pub const OPSWORKS_ROOT_ACCESS_KEY_ID: &str = "OPSWORKS_ROOT_ACCESS_KEY_ID";
/// The root secret access key to install on first start.
pub const OPSWORKS_ROOT_SECRET_ACCESS_KEY: &str = "OPSWORKS_ROOT_SECRET_ACCESS_KEY";
/// A new console password for root, set at start.
pub const OPSWORKS_CONSOLE_PASSWORD: &str = "OPSWORKS_CONSOLE_PASSWORD";
/// The log filter (tracing's syntax; `info` by default).
pub const OPSWORKS_LOG: &str = "OPSWORKS_LOG";
/// The log format: `text` or `json`.
pub const OPSWORKS_LOG_FORMAT: &str = "OPSWORKS_LOG_FORMAT";
/// The server's endpoint, for commands that call a running server (`opsworks rds import`).
pub const OPSWORKS_ENDPOINT: &str = "OPSWORKS_ENDPOINT";
/// The agent's server URL (several, comma-separated: the servers of one database).
pub const OPSWORKS_SERVER: &str = "OPSWORKS_SERVER";
/// The agent's instance ID.
pub const OPSWORKS_INSTANCE_ID: &str = "OPSWORKS_INSTANCE_ID";
/// The agent's credentials file.
pub const OPSWORKS_AGENT_CREDENTIALS: &str = "OPSWORKS_AGENT_CREDENTIALS";
/// The agent's state dir.
pub const OPSWORKS_AGENT_STATE_DIR: &str = "OPSWORKS_AGENT_STATE_DIR";
/// Where the agent puts app releases (`/srv/www`).
pub const OPSWORKS_WWW_ROOT: &str = "OPSWORKS_WWW_ROOT";
/// The program the agent runs converges with.
pub const OPSWORKS_CONVERGE_EXE: &str = "OPSWORKS_CONVERGE_EXE";
/// Where the agent extracts the built-in cookbooks.
pub const OPSWORKS_BUILTIN_COOKBOOKS: &str = "OPSWORKS_BUILTIN_COOKBOOKS";
/// Set by the agent for a converge: the command's type.
pub const OPSWORKS_COMMAND_TYPE: &str = "OPSWORKS_COMMAND_TYPE";
/// Set by the agent for a converge: the command's ID.
pub const OPSWORKS_COMMAND_ID: &str = "OPSWORKS_COMMAND_ID";
/// Set by the agent for a converge: the command's history directory (`agent-cli deploy-hook`
/// reads the command's node and apps there).
pub const OPSWORKS_COMMAND_DIR: &str = "OPSWORKS_COMMAND_DIR";
/// Set by the agent for a converge: the agent's executable (the deploy recipes call its
/// `agent-cli deploy-hook`).
pub const OPSWORKS_AGENT_EXE: &str = "OPSWORKS_AGENT_EXE";
/// Set by the agent for a deploy hook's converge: the hook's name.
pub const OPSWORKS_DEPLOY_HOOK: &str = "OPSWORKS_DEPLOY_HOOK";
/// Set by the agent for a deploy hook's converge: the release the hook runs in.
pub const OPSWORKS_RELEASE_PATH: &str = "OPSWORKS_RELEASE_PATH";
/// The service supervisor's program (the `opsworks` binary).
pub const OPSWORKS_SUPERVISOR_EXE: &str = "OPSWORKS_SUPERVISOR_EXE";
/// The service supervisor's state dir.
pub const OPSWORKS_SUPERVISOR_DIR: &str = "OPSWORKS_SUPERVISOR_DIR";
/// Forces the service backend (`systemd` or `supervisor`) instead of detecting it.
pub const OPSWORKS_SERVICE_BACKEND: &str = "OPSWORKS_SERVICE_BACKEND";

// What `opsworks register` reads: the caller's AWS credentials as the AWS tools find them, and
// the SSH client's configuration.

/// The caller's access key ID.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// The caller's secret access key.
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// The profile of the shared credentials file (default `default`).
pub const AWS_PROFILE: &str = "AWS_PROFILE";
/// The shared credentials file (default `~/.aws/credentials`).
pub const AWS_SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
/// The region requests are signed for.
pub const AWS_REGION: &str = "AWS_REGION";
/// The region requests are signed for, when `AWS_REGION` is not set.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// An OpenSSH client configuration file `opsworks register` passes to `ssh -F` (known hosts,
/// jump hosts, ports).
pub const OPSWORKS_SSH_CONFIG: &str = "OPSWORKS_SSH_CONFIG";

// What the tests read.

/// The PostgreSQL the store's tests create their databases on
/// (`scripts/postgres-test-setup.sh` prints it).
pub const OPSWORKS_TEST_DATABASE_URL: &str = "OPSWORKS_TEST_DATABASE_URL";
/// `postgres` to run the conformance and lifecycle suites' servers on PostgreSQL (each test
/// session a database of its own on `OPSWORKS_TEST_DATABASE_URL`'s server); SQLite otherwise.
pub const OPSWORKS_TEST_ENGINE: &str = "OPSWORKS_TEST_ENGINE";
/// Rewrites the API crate's committed XML fixtures from what the writer produces now.
pub const OPSWORKS_BLESS_XML: &str = "OPSWORKS_BLESS_XML";

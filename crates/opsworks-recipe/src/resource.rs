//! The resource collection's element: a declared resource with its properties, guards,
//! notifications and the place that declared it. Pure data; no Starlark types leak in here.

use std::fmt;
use std::rc::Rc;

use serde_json::{Map, Value};

/// The resource types the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Directory,
    Template,
    CookbookFile,
    Link,
    Execute,
    Bash,
    Log,
    RemoteFile,
    Package,
    Service,
    User,
    Group,
    Cron,
    Git,
}

impl Kind {
    /// Every kind, in the order the DSL registers them.
    pub const ALL: [Kind; 15] = [
        Kind::File,
        Kind::Directory,
        Kind::Template,
        Kind::CookbookFile,
        Kind::Link,
        Kind::Execute,
        Kind::Bash,
        Kind::Log,
        Kind::RemoteFile,
        Kind::Package,
        Kind::Service,
        Kind::User,
        Kind::Group,
        Kind::Cron,
        Kind::Git,
    ];

    /// The Chef name of the resource type.
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Template => "template",
            Kind::CookbookFile => "cookbook_file",
            Kind::Link => "link",
            Kind::Execute => "execute",
            Kind::Bash => "bash",
            Kind::Log => "log",
            Kind::RemoteFile => "remote_file",
            Kind::Package => "package",
            Kind::Service => "service",
            Kind::User => "user",
            Kind::Group => "group",
            Kind::Cron => "cron",
            Kind::Git => "git",
        }
    }

    /// Parses a Chef resource type name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Chef's default action (`service` does nothing unless told).
    pub fn default_action(self) -> &'static str {
        match self {
            Kind::File | Kind::Directory | Kind::Template | Kind::CookbookFile | Kind::Link => {
                "create"
            }
            Kind::RemoteFile | Kind::User | Kind::Group | Kind::Cron => "create",
            Kind::Execute | Kind::Bash => "run",
            Kind::Log => "write",
            Kind::Package => "install",
            Kind::Service => "nothing",
            Kind::Git => "sync",
        }
    }

    /// The actions this type accepts (`nothing` is accepted by all).
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Kind::File | Kind::Template | Kind::CookbookFile | Kind::RemoteFile => {
                &["create", "create_if_missing", "delete", "touch", "nothing"]
            }
            Kind::Directory | Kind::Link => &["create", "delete", "nothing"],
            Kind::Execute | Kind::Bash => &["run", "nothing"],
            Kind::Log => &["write", "nothing"],
            Kind::Package => &["install", "upgrade", "remove", "purge", "nothing"],
            Kind::Service => &[
                "enable", "disable", "start", "stop", "restart", "reload", "nothing",
            ],
            Kind::User => &["create", "remove", "modify", "manage", "nothing"],
            Kind::Group => &["create", "remove", "modify", "manage", "nothing"],
            Kind::Cron => &["create", "delete", "nothing"],
            Kind::Git => &["sync", "checkout", "nothing"],
        }
    }

    /// The properties this type accepts besides the common ones. `backup`, `atomic_update` and
    /// `supports` are accepted for Chef compatibility and ignored (writes are always atomic;
    /// there are no backups; service support is detected).
    pub fn properties(self) -> &'static [&'static str] {
        match self {
            Kind::File => &[
                "path",
                "content",
                "mode",
                "owner",
                "group",
                "backup",
                "atomic_update",
            ],
            Kind::Template => &[
                "path",
                "source",
                "variables",
                "cookbook",
                "mode",
                "owner",
                "group",
                "backup",
                "atomic_update",
                "local",
            ],
            Kind::CookbookFile => &[
                "path",
                "source",
                "cookbook",
                "mode",
                "owner",
                "group",
                "backup",
                "atomic_update",
            ],
            Kind::RemoteFile => &[
                "path", "source", "checksum", "mode", "owner", "group", "backup",
            ],
            Kind::Directory => &["path", "mode", "owner", "group", "recursive"],
            Kind::Link => &["target_file", "to", "link_type", "owner", "group"],
            Kind::Execute => &[
                "command",
                "cwd",
                "environment",
                "user",
                "group",
                "returns",
                "timeout",
                "creates",
                "input",
                "live_stream",
            ],
            Kind::Bash => &[
                "code",
                "cwd",
                "environment",
                "user",
                "group",
                "returns",
                "timeout",
                "creates",
                "flags",
                "live_stream",
            ],
            Kind::Log => &["message", "level"],
            Kind::Package => &["package_name", "version"],
            Kind::Service => &[
                "service_name",
                "command",
                "cwd",
                "user",
                "environment",
                "reload_signal",
                "supports",
            ],
            Kind::User => &[
                "username",
                "uid",
                "gid",
                "home",
                "shell",
                "comment",
                "system",
                "manage_home",
            ],
            Kind::Group => &["group_name", "gid", "members", "append", "system"],
            Kind::Cron => &[
                "minute",
                "hour",
                "day",
                "month",
                "weekday",
                "command",
                "user",
                "environment",
                "mailto",
                "path",
                "home",
                "shell",
            ],
            Kind::Git => &["destination", "repository", "revision", "user"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a resource (or anything else) was declared.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SourceLocation {
    /// `cookbook::recipe`.
    pub recipe: String,
    /// Path of the recipe file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A guard evaluated at converge time.
#[derive(Clone)]
pub enum GuardCheck {
    /// A shell command; exit status 0 means "true".
    Command(String),
    /// A Starlark function (or any callable) returning a truth value.
    Function(Rc<dyn Fn() -> Result<bool, String>>),
}

impl fmt::Debug for GuardCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardCheck::Command(c) => write!(f, "Command({c:?})"),
            GuardCheck::Function(_) => f.write_str("Function"),
        }
    }
}

/// `not_if` or `only_if`.
#[derive(Debug, Clone)]
pub struct Guard {
    /// true for `not_if` (skip when the check is true), false for `only_if`.
    pub negate: bool,
    /// The check.
    pub check: GuardCheck,
}

impl Guard {
    /// How the guard is named in the report.
    pub fn describe(&self) -> String {
        let kind = if self.negate { "not_if" } else { "only_if" };
        match &self.check {
            GuardCheck::Command(c) => format!("{kind} `{c}`"),
            GuardCheck::Function(_) => format!("{kind} (function)"),
        }
    }
}

/// When a notification runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// At the end of the run, de-duplicated.
    Delayed,
    /// Right after the notifying resource.
    Immediately,
    /// Before the notifying resource, if it is about to change something.
    Before,
}

impl Timer {
    /// Parses `delayed`, `immediately`/`immediate` or `before`.
    pub fn from_name(s: &str) -> Option<Timer> {
        match s {
            "delayed" => Some(Timer::Delayed),
            "immediately" | "immediate" => Some(Timer::Immediately),
            "before" => Some(Timer::Before),
            _ => None,
        }
    }
}

/// A notification as declared (`notifies` or `subscribes`), before resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The action to run on the target.
    pub action: String,
    /// `type[name]` of the other resource.
    pub other: String,
    /// When.
    pub timer: Timer,
}

/// One resolved edge: when `source` updates, run `action` on `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Index in the collection of the resource to notify.
    pub target: usize,
    /// The action to run on it.
    pub action: String,
    /// When.
    pub timer: Timer,
}

/// A declared resource.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Type.
    pub kind: Kind,
    /// Name (the first positional argument).
    pub name: String,
    /// Actions, in order.
    pub actions: Vec<String>,
    /// Type-specific properties as JSON values.
    pub props: Map<String, Value>,
    /// Guards, all of which must allow the run.
    pub guards: Vec<Guard>,
    /// `notifies`, as declared.
    pub notifies: Vec<Notification>,
    /// `subscribes`, as declared.
    pub subscribes: Vec<Notification>,
    /// Resolved outgoing notifications (filled at the end of compile).
    pub edges: Vec<Edge>,
    /// A failure is reported but does not fail the run.
    pub ignore_failure: bool,
    /// Extra attempts after a failure.
    pub retries: u32,
    /// Seconds between attempts.
    pub retry_delay: f64,
    /// Hide content and diffs.
    pub sensitive: bool,
    /// The cookbook that declared it (templates and files are looked up there).
    pub cookbook: String,
    /// Where it was declared.
    pub source: SourceLocation,
}

impl Resource {
    /// Chef's identity string `type[name]`.
    pub fn identity(&self) -> String {
        format!("{}[{}]", self.kind, self.name)
    }

    /// A string property, if set.
    pub fn str_prop(&self, key: &str) -> Option<&str> {
        self.props.get(key).and_then(Value::as_str)
    }

    /// A boolean property, with a default.
    pub fn bool_prop(&self, key: &str, default: bool) -> bool {
        self.props
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    }

    /// The property naming the managed object, falling back to the resource name
    /// (Chef's name property: `path`, `command`, `package_name`...).
    pub fn name_prop(&self, key: &str) -> &str {
        self.str_prop(key).unwrap_or(&self.name)
    }
}

/// Splits `type[name]` into its parts.
pub fn parse_identity(s: &str) -> Option<(Kind, &str)> {
    let (kind, rest) = s.split_once('[')?;
    let name = rest.strip_suffix(']')?;
    Some((Kind::from_name(kind.trim())?, name))
}

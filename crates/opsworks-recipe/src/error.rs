//! The crate's error type: everything that stops a run before or outside the converge of one resource.

use std::path::PathBuf;

/// Errors that abort a run. A failing resource is not one of these: it is reported in the
/// [`crate::Report`] so that delayed notifications and the summary still happen.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// A run-list entry is not `cookbook` or `cookbook::recipe`.
    #[error("invalid run-list entry `{entry}`: expected `cookbook` or `cookbook::recipe`")]
    RunList { entry: String },
    /// No cookbook of that name exists in any cookbook path.
    #[error("cookbook `{name}` not found in the cookbook path ({searched})")]
    CookbookNotFound { name: String, searched: String },
    /// A cookbook names a dependency that is not in the cookbook path.
    #[error(
        "cookbook `{cookbook}` depends on `{dependency}`, which is not in the cookbook path ({searched})"
    )]
    MissingDependency {
        cookbook: String,
        dependency: String,
        searched: String,
    },
    /// The recipe file does not exist in its cookbook.
    #[error("recipe `{cookbook}::{recipe}` not found: {path} does not exist")]
    RecipeNotFound {
        cookbook: String,
        recipe: String,
        path: PathBuf,
    },
    /// metadata.json is missing fields or is not JSON.
    #[error("invalid cookbook metadata {path}: {message}")]
    Metadata { path: PathBuf, message: String },
    /// A Starlark recipe, attribute file or library failed to parse or evaluate.
    /// The message carries file:line:column and the offending source line.
    #[error("{message}")]
    Starlark { message: String },
    /// A resource declaration is invalid (unknown property, bad action, bad notification...).
    #[error("{location}: {message}")]
    Declaration { location: String, message: String },
    /// Node JSON or a data bag item could not be read.
    #[error("invalid JSON in {path}: {message}")]
    Json { path: String, message: String },
    /// A file or directory given to the run could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RecipeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RecipeError::Io {
            path: path.into(),
            source,
        }
    }
}

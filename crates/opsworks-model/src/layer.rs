//! Layer types and what each one brings: filled in by the layers work.

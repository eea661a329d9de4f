//! Tests of the IAM handlers.

//! Integration tests of the host operations against the real system: a real supervisor daemon
//! and real processes, real users and groups (the tests run as root), real crontabs, real git
//! repositories, real HTTP on loopback and the real package manager.

mod host {
    pub mod common;
    mod cron;
    mod fetch;
    mod git;
    mod package;
    mod supervisor;
    mod users;
}

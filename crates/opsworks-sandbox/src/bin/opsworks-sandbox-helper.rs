//! The sandbox helper for tests and standalone use: the same entry point the `opsworks` binary
//! exposes as its hidden `sandbox-init` subcommand.

fn main() {
    opsworks_sandbox::init_main(std::env::args_os().skip(1))
}

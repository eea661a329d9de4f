//! Rebuilds the crate whenever anything under `cookbooks/` changes: `include_dir!` embeds the
//! directory but does not tell cargo about files added to it.

fn main() {
    println!("cargo::rerun-if-changed=cookbooks");
}

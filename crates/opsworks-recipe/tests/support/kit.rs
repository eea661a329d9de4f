//! Shared test fixture: a temporary cookbook path plus an output directory for managed files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use opsworks_recipe::{RunConfig, converge};
use serde_json::json;

/// A temporary cookbook directory and a root for the files recipes manage.
pub struct Kit {
    pub dir: tempfile::TempDir,
}

impl Kit {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("cookbooks")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("out")).expect("mkdir");
        Kit { dir }
    }

    /// Where recipes write (`node["t"]["root"]`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn cookbooks(&self) -> PathBuf {
        self.dir.path().join("cookbooks")
    }

    /// Writes cookbook files; adds a metadata.json unless one is given.
    pub fn cookbook(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let cb = self.cookbooks().join(name);
        std::fs::create_dir_all(&cb).expect("mkdir");
        if !files.iter().any(|(p, _)| *p == "metadata.json") {
            std::fs::write(
                cb.join("metadata.json"),
                format!(r#"{{"name": "{name}", "version": "1.0.0"}}"#),
            )
            .expect("write");
        }
        for (path, text) in files {
            let p = cb.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        cb
    }

    /// A run config over this kit: fixed automatic facts, `node["t"]["root"]` set.
    pub fn cfg(&self, run_list: &[&str]) -> RunConfig {
        RunConfig {
            cookbook_paths: vec![self.cookbooks()],
            run_list: run_list.iter().map(|s| s.to_string()).collect(),
            json: json!({"t": {"root": self.root().display().to_string()}}),
            automatic: Some(
                json!({"hostname": "testhost", "platform_family": "debian", "cpu": {"total": 2}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            ..Default::default()
        }
    }

    pub fn run(&self, run_list: &[&str]) -> opsworks_recipe::Report {
        converge(&self.cfg(run_list)).expect("converge")
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap_or_default()
    }
}

/// Content, mode and mtime of every file under `dir`, for before/after comparisons.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).expect("stat");
            if md.is_dir() {
                stack.push(p.clone());
            }
            let content = if md.is_file() {
                std::fs::read(&p).expect("read")
            } else {
                Vec::new()
            };
            out.push((p, content, md.mode(), md.modified().expect("mtime")));
        }
    }
    out.sort();
    out
}

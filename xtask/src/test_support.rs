//! What xtask's own tests share: the debug binaries of the workspace and folders of their own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::unix_seconds;

/// cargo's debug folder: the one this test binary was built into (`target/debug/deps/xtask-…`).
pub fn debug_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// The debug binaries of the workspace (xtask, the servers, loadtest), built as `cargo xtask test` builds
/// them before it runs any test, so that they are current: a no-op there, a build under a plain `cargo test`.
pub fn debug_binaries() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(crate::BUILD_BINARIES)
            .arg("--quiet")
            .status()
            .unwrap();
        assert!(status.success());
    });
    debug_dir()
}

/// A folder of the test's own, removed at the end.
pub struct Folder(pub PathBuf);

impl Folder {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "xtask-test-{name}-{}-{}",
            std::process::id(),
            unix_seconds()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

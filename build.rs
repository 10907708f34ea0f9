//! Embeds the git commit gan-run is built from, and whether the checkout differed from it, for
//! the provenance record each run start writes (`run_dir::provenance`). Without git or a
//! repository (a source tarball), both are "unknown" and the build goes on.

use std::process::Command;

/// `git ARGS` in the package's folder: its trimmed output, or `None` if git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]);
    // Dirty: tracked files changed, or files git does not ignore added, since that commit.
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain"]))
        .map(|s| (!s.is_empty()).to_string());
    println!(
        "cargo:rustc-env=GAN_RUN_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!(
        "cargo:rustc-env=GAN_RUN_GIT_DIRTY={}",
        dirty.as_deref().unwrap_or("unknown")
    );
    // Run again when the sources change (the tree may turn dirty) and when the commit moves
    // (HEAD, the branch it names). Not on the index, which `git status` itself rewrites, and
    // which would rebuild gan-run after every status.
    for path in ["src", "build.rs", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={path}");
    }
    let mut watched = Vec::new();
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watched.push(std::path::Path::new(&git_dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
        let common = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(common);
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(common.join(branch));
        }
        watched.push(common.join("packed-refs"));
    }
    // Only files that exist: cargo reruns the script on every build for a missing one.
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

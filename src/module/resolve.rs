//! Finding a module: a bare name (built-in, embedded in the binary from
//! `examples/modules/`, or from an override directory), a local path (a directory with
//! `module.toml`, or the file itself), or `git+URL#REF` (cloned into a cache with the
//! git CLI and re-fetched on every resolve, so a moved tag is followed).

use super::{Module, ModuleError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The built-in modules, embedded at build time.
pub const BUILTIN: [(&str, &str); 4] = [
    ("cowsay", include_str!("../../examples/modules/cowsay/module.toml")),
    ("nvidia-smi", include_str!("../../examples/modules/nvidia-smi/module.toml")),
    ("sandbox-probe", include_str!("../../examples/modules/sandbox-probe/module.toml")),
    ("write-files", include_str!("../../examples/modules/write-files/module.toml")),
];

/// Resolves module references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    /// Directory searched for `<name>/module.toml` before the built-ins.
    pub override_dir: Option<PathBuf>,
    /// Where git modules are cloned.
    pub cache_dir: PathBuf,
}

impl Resolver {
    /// Resolves `reference` (name, path or `git+URL#REF`) into a module.
    pub fn resolve(&self, reference: &str) -> Result<Module, ModuleError> {
        if let Some(rest) = reference.strip_prefix("git+") {
            return self.resolve_git(rest);
        }
        let as_path = Path::new(reference);
        if reference.contains('/') || reference.starts_with('.') || as_path.exists() {
            let file = if as_path.is_dir() { as_path.join("module.toml") } else { as_path.to_path_buf() };
            return read_module(&file);
        }
        self.resolve_named(reference)
    }

    /// Resolves a bare module name only: `<override_dir>/<name>/module.toml`, else a
    /// built-in; never a path or a repository, so a name from a stranger's job spec reads
    /// nothing else.
    pub fn resolve_named(&self, reference: &str) -> Result<Module, ModuleError> {
        let plain = !reference.is_empty()
            && !reference.starts_with('.')
            && reference.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !plain {
            return Err(ModuleError::Unknown {
                name: reference.escape_debug().to_string(),
                known: BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            });
        }
        if let Some(dir) = &self.override_dir {
            let file = dir.join(reference).join("module.toml");
            if file.exists() {
                return read_module(&file);
            }
        }
        match BUILTIN.iter().find(|(name, _)| *name == reference) {
            Some((name, text)) => Module::parse(text.as_bytes(), &format!("built-in `{name}`")),
            None => Err(ModuleError::Unknown {
                name: reference.to_string(),
                known: BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    fn resolve_git(&self, spec: &str) -> Result<Module, ModuleError> {
        let source_name = format!("git+{spec}");
        let load = |reason: String| ModuleError::Load { source_name: source_name.clone(), reason };
        let (url, reference) = spec
            .rsplit_once('#')
            .filter(|(u, r)| !u.is_empty() && !r.is_empty())
            .ok_or_else(|| load("name a tag or commit: git+URL#REF".into()))?;
        let key = hex::encode(&Sha256::digest(url.as_bytes())[..12]);
        let dir = self.cache_dir.join("git").join(key);
        if dir.join(".git").exists() || dir.join("HEAD").exists() {
            git(&dir, &["fetch", "--quiet", "--force", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"])
                .map_err(|e| load(e.to_string()))?;
        } else {
            std::fs::create_dir_all(&self.cache_dir).map_err(|e| load(e.to_string()))?;
            let status = Command::new("git")
                .args(["clone", "--quiet", "--bare", url])
                .arg(&dir)
                .output()
                .map_err(|e| load(format!("cannot run git: {e}")))?;
            if !status.status.success() {
                return Err(load(format!("git clone failed: {}", String::from_utf8_lossy(&status.stderr).trim())));
            }
        }
        let commit = git(&dir, &["rev-parse", "--verify", "--quiet", &format!("{reference}^{{commit}}")])
            .map_err(|_| load(format!("no tag or commit `{reference}` in {url}")))?;
        let commit = String::from_utf8_lossy(&commit).trim().to_string();
        let text = git(&dir, &["show", &format!("{commit}:module.toml")])
            .map_err(|_| load(format!("no module.toml at the top of {url} at {reference}")))?;
        Module::parse(&text, &format!("{source_name} ({commit})"))
    }
}

fn read_module(file: &Path) -> Result<Module, ModuleError> {
    let source_name = file.display().to_string();
    let bytes = std::fs::read(file)
        .map_err(|e| ModuleError::Load { source_name: source_name.clone(), reason: e.to_string() })?;
    Module::parse(&bytes, &source_name)
}

/// A git command that could not run or failed, with what it said.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GitFailed(String);

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitFailed> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| GitFailed(format!("cannot run git: {e}")))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(GitFailed(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(cache: &Path) -> Resolver {
        Resolver { override_dir: None, cache_dir: cache.to_path_buf() }
    }

    #[test]
    fn every_builtin_parses_and_resolves() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, _) in BUILTIN {
            let m = resolver(tmp.path()).resolve(name).unwrap();
            assert_eq!(m.file.name, name);
            m.job_spec(&Default::default()).unwrap();
        }
        let err = resolver(tmp.path()).resolve("nope").unwrap_err().to_string();
        assert!(err.contains("unknown module `nope`") && err.contains("cowsay"), "{err}");
    }

    #[test]
    fn override_dir_and_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mods/cowsay");
        std::fs::create_dir_all(&dir).unwrap();
        let text = BUILTIN[0].1.replace("version = \"1.0.0\"", "version = \"9.9.9\"");
        std::fs::write(dir.join("module.toml"), &text).unwrap();
        let r = Resolver { override_dir: Some(tmp.path().join("mods")), cache_dir: tmp.path().into() };
        assert_eq!(r.resolve("cowsay").unwrap().file.version, "9.9.9", "override wins");
        assert_eq!(r.resolve(dir.to_str().unwrap()).unwrap().file.version, "9.9.9", "directory path");
        assert_eq!(r.resolve(dir.join("module.toml").to_str().unwrap()).unwrap().file.version, "9.9.9");
    }

    #[test]
    fn git_modules_follow_tags() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let sh = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
                .args(args)
                .output()
                .unwrap();
            assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        };
        sh(&["init", "--quiet"]);
        std::fs::write(repo.join("module.toml"), BUILTIN[0].1).unwrap();
        sh(&["add", "module.toml"]);
        sh(&["commit", "--quiet", "-m", "v1"]);
        sh(&["tag", "v1"]);
        let r = resolver(&tmp.path().join("cache"));
        let url = format!("git+file://{}#v1", repo.display());
        assert_eq!(r.resolve(&url).unwrap().file.version, "1.0.0");

        std::fs::write(repo.join("module.toml"), BUILTIN[0].1.replace("1.0.0", "1.0.1")).unwrap();
        sh(&["commit", "--quiet", "-am", "v1 moved"]);
        sh(&["tag", "-f", "v1"]);
        assert_eq!(r.resolve(&url).unwrap().file.version, "1.0.1", "moved tag followed");

        let err = r.resolve(&format!("git+file://{}#v9", repo.display())).unwrap_err().to_string();
        assert!(err.contains("no tag or commit `v9`"), "{err}");
        assert!(r.resolve("git+file:///x").unwrap_err().to_string().contains("git+URL#REF"));
    }
}

//! The job's `/outputs`: a file system of its own, sized to the job's output limit and
//! mounted `nosuid,nodev` (THREATS X2, X3), then copied out clean.
//!
//! With [`OutputsFs::Loop`] each job gets a sparse ext4 image in its work directory,
//! loop-mounted at `<workdir>/scratch`: a job that fills it gets `ENOSPC` and the host's
//! disk loses at most the job's limit; a setuid bit the job sets has no effect there.
//! Mounting needs root (`CAP_SYS_ADMIN`). With [`OutputsFs::Bind`] (a provider that is
//! not root) `scratch` is a plain directory: the output is still measured before it is
//! copied, but the disk is not limited while the job runs.
//!
//! After the job, [`copy_out`] copies the tree into `<workdir>/outputs` without following
//! a link, with modes reduced to `0755`/`0644` (no setuid, setgid or sticky bit, nothing
//! unreadable), and the scratch file system is unmounted and deleted.

use super::ExecutorError;
pub use crate::types::OutputsFs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The ids a job runs as when it does not run as root: `nobody` when this process is
/// root, else this process's own (so that it can read what the job wrote).
pub fn job_ids() -> (u32, u32) {
    if is_root() {
        (65534, 65534)
    } else {
        // SAFETY: getuid and getgid have no preconditions and cannot fail.
        unsafe { (libc::getuid(), libc::getgid()) }
    }
}

/// Inodes per MiB of a job's limit, and the most: enough for a bundle's worth of entries
/// (each costs at least 1 KiB packed).
const INODES_PER_MIB: u64 = 512;

/// A job's scratch `/outputs`, unmounted and deleted when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    image: Option<PathBuf>,
}

impl Scratch {
    /// Makes `<workdir>/scratch` for a job whose output may hold `limit` bytes, owned by
    /// `owner` (uid, gid), as `fs` says.
    pub async fn create(workdir: &Path, limit: u64, owner: (u32, u32), fs: OutputsFs) -> Result<Self, ExecutorError> {
        let dir = workdir.join("scratch");
        let io_err = |what: String| move |source| ExecutorError::Io { what, source };
        unmount_under(workdir)
            .map_err(io_err(format!("unmounting what an earlier run left in {}", workdir.display())))?;
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let mut scratch = Self { dir: dir.clone(), image: None };
        if fs.resolve_for(is_root()) == OutputsFs::Loop {
            let image = workdir.join("scratch.img");
            let inodes =
                (limit >> 20).saturating_mul(INODES_PER_MIB).clamp(1024, crate::bundle::MAX_ENTRIES as u64 + 64);
            // Data, inode tables and the file system's own records; the image is sparse, so
            // only what the job writes takes space.
            let size = limit.saturating_add(inodes * 256).saturating_add(limit / 16).saturating_add(4 << 20);
            let file = std::fs::File::create(&image).map_err(io_err(format!("creating {}", image.display())))?;
            file.set_len(size).map_err(io_err(format!("sizing {}", image.display())))?;
            drop(file);
            scratch.image = Some(image.clone());
            let root_owner = format!("root_owner={}:{}", owner.0, owner.1);
            let inodes = inodes.to_string();
            let image_arg = image.to_string_lossy().into_owned();
            tool(
                "mkfs.ext4",
                &["-q", "-F", "-m", "0", "-O", "^has_journal", "-N", &inodes, "-E", &root_owner, &image_arg],
            )
            .await?;
            let dir_arg = dir.to_string_lossy().into_owned();
            tool("mount", &["-o", "loop,nosuid,nodev,noatime", &image_arg, &dir_arg]).await?;
            std::fs::remove_dir(dir.join("lost+found")).map_err(io_err(format!("preparing {}", dir.display())))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err(format!("preparing {}", dir.display())))?;
        } else if is_root() {
            std::os::unix::fs::chown(&dir, Some(owner.0), Some(owner.1))
                .map_err(io_err(format!("preparing {}", dir.display())))?;
        }
        Ok(scratch)
    }

    /// The directory the job's `/outputs` is bound to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the job's disk use is limited while it runs.
    pub fn is_limited(&self) -> bool {
        self.image.is_some()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(image) = self.image.take() {
            if let Err(e) = unmount(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot unmount a job's outputs");
            }
            if let Err(e) = std::fs::remove_file(&image) {
                tracing::warn!(image = %image.display(), error = %e, "cannot remove a job's outputs image");
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove a job's scratch outputs");
            }
        }
    }
}

/// Runs a system tool (mkfs.ext4, mount) and turns its failure into advice.
async fn tool(name: &str, args: &[&str]) -> Result<(), ExecutorError> {
    let out = tokio::process::Command::new(name).args(args).output().await.map_err(|source| ExecutorError::Io {
        what: format!("running {name} for a job's size-limited /outputs (install e2fsprogs and mount, or set executor.outputs_fs = \"bind\")"),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ExecutorError::Io {
        what: format!("{name} {} for a job's size-limited /outputs", args.join(" ")),
        source: io::Error::other(format!(
            "{}: {}. Run the provider as root, or set executor.outputs_fs = \"bind\" to run jobs without a disk limit",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    })
}

/// Unmounts `dir`, detaching it if it is busy; the loop device goes with it (autoclear).
fn unmount(dir: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the calls.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let first = io::Error::last_os_error();
    if first.raw_os_error() == Some(libc::EBUSY) {
        // SAFETY: as above.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
        return Err(io::Error::last_os_error());
    }
    Err(first)
}

/// Unmounts every mount at or under `dir` (deepest first): what a run killed before it
/// could clean up left there. Reads `/proc/self/mountinfo`.
pub fn unmount_under(dir: &Path) -> io::Result<()> {
    let Ok(dir) = dir.canonicalize() else { return Ok(()) };
    let info = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(info) => info,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        unmount(&p)?;
    }
    Ok(())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(p: &str) -> PathBuf {
    let b = p.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], octal) {
            out.push(((d[0] - b'0') as u16 * 64 + (d[1] - b'0') as u16 * 8 + (d[2] - b'0') as u16) as u8);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Removes a job's work directory, unmounting first what a killed run left mounted in it.
pub fn remove_work_dir(dir: &Path) -> io::Result<()> {
    unmount_under(dir)?;
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Copies the tree at `src` into `dst` (created): directories, regular files and
/// symlinks, none followed; modes `0755` (directories and executables) or `0644`; other
/// kinds are left out, as a bundle leaves them. Directories the job made unreadable are
/// opened up first where this process owns them.
pub fn copy_out(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dst)?;
    let mut todo = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((from, to)) = todo.pop() {
        let entries = match std::fs::read_dir(&from) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o700))?;
                std::fs::read_dir(&from)?
            }
            other => other?,
        };
        for entry in entries {
            let entry = entry?;
            let (path, target) = (entry.path(), to.join(entry.file_name()));
            let meta = std::fs::symlink_metadata(&path)?;
            let kind = meta.file_type();
            if kind.is_dir() {
                std::fs::create_dir(&target)?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
                todo.push((path, target));
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&path)?, &target)?;
            } else if kind.is_file() {
                let mut input = match open_nofollow(&path) {
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                        open_nofollow(&path)?
                    }
                    other => other?,
                };
                let mut output = std::fs::OpenOptions::new().write(true).create_new(true).open(&target)?;
                io::copy(&mut input, &mut output)?;
                let mode = if meta.mode() & 0o111 != 0 { 0o755 } else { 0o644 };
                output.set_permissions(std::fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

fn open_nofollow(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/tmp/a\040b"), Path::new("/tmp/a b"));
        assert_eq!(unescape_mount_path(r"/x\134y"), Path::new(r"/x\y"));
        assert_eq!(unescape_mount_path(r"/plain\9"), Path::new(r"/plain\9"));
    }

    #[test]
    fn copies_leave_no_special_bit_and_follow_no_link() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("s"), "x").unwrap();
        std::fs::set_permissions(src.join("s"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::write(src.join("d/secret"), "y").unwrap();
        std::fs::set_permissions(src.join("d/secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("l")).unwrap();
        std::fs::set_permissions(src.join("d"), std::fs::Permissions::from_mode(0o000)).unwrap();
        let dst = tmp.path().join("dst");
        copy_out(&src, &dst).unwrap();
        assert_eq!(std::fs::metadata(dst.join("s")).unwrap().mode() & 0o7777, 0o755);
        assert_eq!(std::fs::read_to_string(dst.join("d/secret")).unwrap(), "y");
        assert_eq!(std::fs::metadata(dst.join("d/secret")).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(std::fs::read_link(dst.join("l")).unwrap(), Path::new("/etc/passwd"), "copied as a link");
    }
}

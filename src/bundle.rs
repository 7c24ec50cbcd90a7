//! Result bundles: the exit code, stdout, stderr and `/outputs` tree of a job, packed as
//! a tar with sorted entries and fixed metadata, so that the same results give the same
//! bytes on any machine.
//!
//! Layout, in this order: `exit_code` (decimal and a newline), `stdout`, `outputs/…`
//! (directories, regular files, symlinks; sorted by byte-wise name), then `stderr`. The
//! **result hash** is the sha256 of the tar made of the first three parts alone: stderr is
//! informational (it often carries timings) and is not hashed.
//!
//! [`extract`] refuses absolute paths, `..`, unknown top-level names, hard links,
//! symlinks that leave `outputs/`, devices and FIFOs, and bundles over a size limit.
//! Start at [`write_bundle`] and [`extract`].

use alloy::primitives::B256;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use tar::{EntryType, Header};

/// Default largest bundle accepted by [`extract`]: 1 GiB unpacked.
pub const DEFAULT_MAX_BUNDLE_BYTES: u64 = 1 << 30;
/// Most entries accepted by [`extract`].
pub const MAX_ENTRIES: usize = 100_000;

/// The exit code of an error bundle: the job could not be run or its results cannot be
/// delivered (as `docker run` exits 125 when the daemon fails). Its stdout and outputs are
/// empty, so every error bundle has the same result hash.
pub const ERROR_BUNDLE_EXIT: i64 = 125;

/// The longest path an entry of a job's output may have, bytes. Well under Linux's
/// `PATH_MAX` (4096), so that every party reaches every entry within its own work
/// directory and they agree on the rule.
const MAX_NAME_BYTES: u64 = 1024;

/// An upper bound on what tar adds around one entry's data, besides the bytes of its name
/// and link target: its header, a GNU long-name and a long-link header, and the padding of
/// the data, the name's blocks and the target's blocks.
const ENTRY_OVERHEAD: u64 = 6 * 512;

/// The most of a job's stderr a bundle keeps (its end). Stderr is not hashed and may
/// differ from run to run, so it must not decide whether results fit: [`over_limit`]
/// reserves this much for it whatever its length.
pub const BUNDLE_STDERR_BYTES: usize = 64 << 10;

/// Why a bundle could not be written or was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading or writing files on this machine failed (a local problem: disk full,
    /// permissions), not a fault of the bundle.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The bundle's bytes are not a readable tar (truncated, corrupt).
    #[error("the result bundle is malformed ({what}): {source}")]
    Malformed {
        /// What was being read.
        what: String,
        /// The tar reader's error.
        #[source]
        source: io::Error,
    },
    /// The bundle breaks a rule; it is not extracted further.
    #[error("refusing result bundle: {0}")]
    Refused(String),
}

impl BundleError {
    /// Whether the bundle is at fault (malformed or refused), rather than this machine.
    pub fn is_bundle_fault(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

fn malformed(what: impl Into<String>) -> impl FnOnce(io::Error) -> BundleError {
    let what = what.into();
    move |source| BundleError::Malformed { what, source }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BundleError {
    let what = what.into();
    move |source| BundleError::Io { what, source }
}

/// The parts of a job's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Results {
    /// Exit code of the job.
    pub exit_code: i64,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
    /// The directory holding its `/outputs` tree.
    pub outputs_dir: PathBuf,
}

impl Results {
    /// The results of a job that could not be run or whose output cannot be delivered:
    /// [`ERROR_BUNDLE_EXIT`], `why` on stderr and an empty `outputs_dir` (whatever the job
    /// left there is removed).
    pub fn error(outputs_dir: PathBuf, why: &str) -> io::Result<Self> {
        match std::fs::remove_dir_all(&outputs_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(&outputs_dir)?;
        Ok(Self {
            exit_code: ERROR_BUNDLE_EXIT,
            stdout: vec![],
            stderr: format!("dcn: {why}\n").into_bytes(),
            outputs_dir,
        })
    }
}

/// Why the bundle of `r` would break a limit of `limit` bytes, or `None` when it fits:
/// an upper bound on its size (data by apparent size, which is what tar packs, plus
/// [`ENTRY_OVERHEAD`] and the name and link target of each entry as packed, and
/// [`BUNDLE_STDERR_BYTES`] for stderr whatever it holds) over `limit`, more than [`MAX_ENTRIES`]
/// entries, or a path longer than [`MAX_NAME_BYTES`]. Reads metadata only and stops at the
/// first excess, so a 100 GiB sparse file or a million files cost a moment, not a pack.
/// The same results give the same answer on every machine.
pub fn over_limit(r: &Results, limit: u64) -> io::Result<Option<String>> {
    let over = || {
        format!("the job's output is over its limit of {limit} bytes (resources.disk_mb, or {} MiB when the module declares none)", crate::types::DEFAULT_OUTPUT_MB)
    };
    let entry = |name_len: u64, data: u64| ENTRY_OVERHEAD + name_len + data;
    // The end-of-archive blocks, exit_code, stdout, outputs/ and stderr.
    let mut bound =
        1024 + entry(9, 32) + entry(6, r.stdout.len() as u64) + entry(8, 0) + entry(6, BUNDLE_STDERR_BYTES as u64);
    let mut entries = 4usize;
    if bound > limit {
        return Ok(Some(over()));
    }
    if !r.outputs_dir.exists() {
        return Ok(None);
    }
    // Depth first without recursion: a job may nest directories deeper than a stack.
    let mut todo = vec![r.outputs_dir.clone()];
    while let Some(dir) = todo.pop() {
        for item in std::fs::read_dir(&dir)? {
            let path = item?.path();
            let rel = path.strip_prefix(&r.outputs_dir).map_err(io::Error::other)?;
            // As packed: names go through `to_string_lossy`, which may lengthen them.
            let name_len = 8 + rel.to_string_lossy().len() as u64;
            if name_len > MAX_NAME_BYTES {
                return Ok(Some(format!("the job's output has a path longer than {MAX_NAME_BYTES} bytes")));
            }
            entries += 1;
            if entries > MAX_ENTRIES {
                return Ok(Some(format!("the job's output has more than {MAX_ENTRIES} files and directories")));
            }
            let meta = std::fs::symlink_metadata(&path)?;
            let data = if meta.is_file() {
                meta.len()
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)?;
                target.as_os_str().len().max(target.to_string_lossy().len()) as u64
            } else {
                0
            };
            bound = bound.saturating_add(entry(name_len, data));
            if bound > limit {
                return Ok(Some(over()));
            }
            if meta.is_dir() {
                todo.push(path);
            }
        }
    }
    Ok(None)
}

/// What [`pack`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// The result hash.
    pub hash: B256,
    /// The exit code in the bundle.
    pub exit_code: i64,
    /// Why the job's results were replaced by an error bundle, if they were.
    pub replaced: Option<String>,
}

/// Packs a job's results into `dest` by the one rule every party applies (THREATS S3,
/// X3): results within `limit` (the job's [`crate::types::JobSpec::output_limit_bytes`],
/// checked by [`over_limit`] before anything is read) are bundled as they are; otherwise
/// the bundle is the error bundle saying why. A provider and a mediator re-running the job
/// therefore reach the same result hash, and the job creator never receives more than the
/// job allows.
pub fn pack(mut r: Results, limit: u64, dest: &Path) -> Result<Packed, BundleError> {
    if r.stderr.len() > BUNDLE_STDERR_BYTES {
        r.stderr.drain(..r.stderr.len() - BUNDLE_STDERR_BYTES);
    }
    let why = over_limit(&r, limit).map_err(io_err("measuring the job's output"))?;
    let r = match &why {
        None => r,
        Some(why) => Results::error(r.outputs_dir, why).map_err(io_err("clearing the job's output"))?,
    };
    let hash = write_bundle(&r, dest)?;
    Ok(Packed { hash, exit_code: r.exit_code, replaced: why })
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append_bytes<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = header(EntryType::Regular, 0o644, data.len() as u64);
    b.append_data(&mut h, name, data)
}

/// Every path under `dir`, depth first, children sorted by byte-wise name; directories
/// come before their contents.
fn walk_sorted(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<_>>()?;
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    for name in names {
        let path = dir.join(name);
        out.push(path.clone());
        if std::fs::symlink_metadata(&path)?.is_dir() {
            out.extend(walk_sorted(&path)?);
        }
    }
    Ok(out)
}

fn append_deterministic<W: Write>(b: &mut tar::Builder<W>, r: &Results) -> io::Result<()> {
    append_bytes(b, "exit_code", format!("{}\n", r.exit_code).as_bytes())?;
    append_bytes(b, "stdout", &r.stdout)?;
    let mut h = header(EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, "outputs/", io::empty())?;
    if !r.outputs_dir.exists() {
        return Ok(());
    }
    for path in walk_sorted(&r.outputs_dir)? {
        let rel = path.strip_prefix(&r.outputs_dir).map_err(io::Error::other)?;
        let name = format!("outputs/{}", rel.to_string_lossy());
        let meta = std::fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = header(EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, format!("{name}/"), io::empty())?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let mut h = header(EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, &name, &target)?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
            let mut h = header(EntryType::Regular, mode, meta.len());
            b.append_data(&mut h, &name, File::open(&path)?)?;
        }
        // Sockets, FIFOs and devices a job leaves in /outputs are not results.
    }
    Ok(())
}

/// The result hash of `r`: sha256 of the deterministic part (exit code, stdout, outputs).
pub fn result_hash(r: &Results) -> Result<B256, BundleError> {
    struct HashWriter(Sha256);
    impl Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut b = tar::Builder::new(HashWriter(Sha256::new()));
    append_deterministic(&mut b, r).map_err(io_err("hashing the results"))?;
    let w = b.into_inner().map_err(io_err("hashing the results"))?;
    Ok(B256::from_slice(&w.0.finalize()))
}

/// Writes the bundle of `r` to `dest` and returns its result hash.
pub fn write_bundle(r: &Results, dest: &Path) -> Result<B256, BundleError> {
    let what = format!("writing result bundle {}", dest.display());
    let file = File::create(dest).map_err(io_err(what.clone()))?;
    let mut b = tar::Builder::new(BufWriter::new(file));
    append_deterministic(&mut b, r).map_err(io_err(what.clone()))?;
    append_bytes(&mut b, "stderr", &r.stderr).map_err(io_err(what.clone()))?;
    let mut w = b.into_inner().map_err(io_err(what.clone()))?;
    w.flush().map_err(io_err(what.clone()))?;
    w.get_ref().sync_all().map_err(io_err(what))?;
    result_hash(r)
}

/// Lexically resolves `p` to its components; None if it climbs above its start or is
/// absolute.
fn normalize(p: &Path) -> Option<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a failed write is this machine's problem (disk full, quota, permissions, a
/// read-only or failing disk, no file handles) rather than the bundle's (an entry clashing
/// with another: a file where a directory should be, a name taken by a link).
fn is_local(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOSPC
                | libc::EDQUOT
                | libc::EACCES
                | libc::EPERM
                | libc::EROFS
                | libc::EIO
                | libc::EMFILE
                | libc::ENFILE
                | libc::ENOMEM
        )
    )
}

/// A failed write of the extracted tree: [`BundleError::Io`] when it is this machine's
/// problem, [`BundleError::Refused`] when the bundle's entries caused it.
fn write_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BundleError {
    let what = what.into();
    move |source| {
        if is_local(&source) {
            BundleError::Io { what, source }
        } else {
            BundleError::Refused(format!("{what}: {source}"))
        }
    }
}

/// Copies an entry's bytes into `out`, telling a bad bundle (read) from a bad disk (write).
fn copy_entry(entry: &mut impl Read, out: &mut File, shown: &str) -> Result<(), BundleError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = entry.read(&mut buf).map_err(malformed(format!("reading {shown}")))?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).map_err(write_err(format!("writing {shown}")))?;
    }
}

/// Extracts the bundle at `bundle` into `dest` (which must be empty or absent) and
/// returns its parts. Refuses anything unsafe or over `max_bytes` unpacked.
pub fn extract(bundle: &Path, dest: &Path, max_bytes: u64) -> Result<Results, BundleError> {
    let refuse = |why: String| BundleError::Refused(why);
    let file = File::open(bundle).map_err(io_err(format!("opening result bundle {}", bundle.display())))?;
    let size = file.metadata().map_err(io_err("reading the bundle size"))?.len();
    if size > max_bytes.saturating_add(1 << 20) {
        return Err(refuse(format!("it is {size} bytes, over the {max_bytes}-byte limit")));
    }
    std::fs::create_dir_all(dest.join("outputs")).map_err(io_err(format!("creating {}", dest.display())))?;
    let mut archive = tar::Archive::new(file);
    let (mut exit_code, mut stdout, mut stderr) = (None, None, Vec::new());
    let (mut total, mut count) = (0u64, 0usize);
    for entry in archive.entries().map_err(malformed("reading the bundle"))? {
        let mut entry = entry.map_err(malformed("reading the bundle"))?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(refuse(format!("more than {MAX_ENTRIES} entries")));
        }
        let path = entry.path().map_err(malformed("reading an entry name"))?.into_owned();
        let shown = path.display().to_string();
        if path.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(refuse(format!("entry `{shown}` is absolute or contains `..`")));
        }
        total = total.saturating_add(entry.size());
        if total > max_bytes {
            return Err(refuse(format!("it unpacks to more than the {max_bytes}-byte limit")));
        }
        let kind = entry.header().entry_type();
        let mut read_small = |what: &str| -> Result<Vec<u8>, BundleError> {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(malformed(format!("reading {what}")))?;
            Ok(buf)
        };
        match (path.to_str(), kind) {
            (Some("exit_code"), EntryType::Regular) => {
                let text = String::from_utf8(read_small("exit_code")?).unwrap_or_default();
                exit_code = Some(text.trim().parse::<i64>().map_err(|_| refuse("exit_code is not a number".into()))?);
            }
            (Some("stdout"), EntryType::Regular) => stdout = Some(read_small("stdout")?),
            (Some("stderr"), EntryType::Regular) => stderr = read_small("stderr")?,
            (Some("outputs"), EntryType::Directory) => {}
            _ if path.starts_with("outputs") => {
                let target = dest.join(&path);
                match kind {
                    EntryType::Directory => {
                        std::fs::create_dir_all(&target).map_err(write_err(format!("creating {shown}")))?
                    }
                    EntryType::Regular => {
                        if let Some(parent) = target.parent() {
                            std::fs::create_dir_all(parent).map_err(write_err(format!("creating {shown}")))?;
                        }
                        let mut out = File::create(&target).map_err(write_err(format!("writing {shown}")))?;
                        copy_entry(&mut entry, &mut out, &shown)?;
                        use std::os::unix::fs::PermissionsExt;
                        let mode = if entry.header().mode().unwrap_or(0o644) & 0o111 != 0 { 0o755 } else { 0o644 };
                        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                            .map_err(write_err(format!("writing {shown}")))?;
                    }
                    EntryType::Symlink => {
                        let link = entry
                            .link_name()
                            .map_err(malformed(format!("reading link {shown}")))?
                            .ok_or_else(|| refuse(format!("symlink `{shown}` has no target")))?
                            .into_owned();
                        let parent = path.parent().unwrap_or(Path::new(""));
                        let resolved = normalize(&parent.join(&link));
                        let inside =
                            link.is_relative() && resolved.is_some_and(|r| r.first().is_some_and(|f| f == "outputs"));
                        if !inside {
                            return Err(refuse(format!(
                                "symlink `{shown}` points to `{}`, outside outputs/",
                                link.display()
                            )));
                        }
                        if let Some(p) = target.parent() {
                            std::fs::create_dir_all(p).map_err(write_err(format!("creating {shown}")))?;
                        }
                        std::os::unix::fs::symlink(&link, &target).map_err(write_err(format!("linking {shown}")))?;
                    }
                    EntryType::Link => return Err(refuse(format!("hard link `{shown}`"))),
                    other => {
                        return Err(refuse(format!("entry `{shown}` is a {other:?}, not a file, directory or symlink")))
                    }
                }
            }
            _ => return Err(refuse(format!("unexpected entry `{shown}`"))),
        }
    }
    let exit_code = exit_code.ok_or_else(|| refuse("no exit_code entry".into()))?;
    let stdout = stdout.ok_or_else(|| refuse("no stdout entry".into()))?;
    Ok(Results { exit_code, stdout, stderr, outputs_dir: dest.join("outputs") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(dir: &Path) -> Results {
        let out = dir.join("out");
        std::fs::create_dir_all(out.join("b/c")).unwrap();
        std::fs::write(out.join("b/c/z.txt"), "z").unwrap();
        std::fs::write(out.join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("b/c/z.txt", out.join("link")).unwrap();
        Results { exit_code: 3, stdout: b"hello\n".to_vec(), stderr: b"took 5ms".to_vec(), outputs_dir: out }
    }

    #[test]
    fn round_trip_and_hash_ignore_stderr_and_timestamps() {
        let tmp = tempfile::tempdir().unwrap();
        let r = results(tmp.path());
        let bundle = tmp.path().join("b.tar");
        let hash = write_bundle(&r, &bundle).unwrap();
        let back = extract(&bundle, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES).unwrap();
        assert_eq!((back.exit_code, &back.stdout, &back.stderr), (3, &r.stdout, &r.stderr));
        assert_eq!(std::fs::read_to_string(back.outputs_dir.join("link")).unwrap(), "z");
        assert_eq!(result_hash(&back).unwrap(), hash, "the receiver recomputes the same hash");

        let mut other = r.clone();
        other.stderr = b"took 9ms".to_vec();
        assert_eq!(result_hash(&other).unwrap(), hash, "stderr is not hashed");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(r.outputs_dir.join("a.txt"), "a").unwrap(); // new mtime, same bytes
        assert_eq!(result_hash(&r).unwrap(), hash, "mtime is not hashed");
        std::fs::write(r.outputs_dir.join("a.txt"), "A").unwrap();
        assert_ne!(result_hash(&r).unwrap(), hash, "contents are");
        other = r.clone();
        other.exit_code = 0;
        assert_ne!(result_hash(&other).unwrap(), result_hash(&r).unwrap(), "exit code is");
    }

    /// Writes a tar with raw headers (bypassing the tar crate's own path checks).
    fn evil(dir: &Path, build: impl FnOnce(&mut tar::Builder<File>)) -> PathBuf {
        let p = dir.join("evil.tar");
        let mut b = tar::Builder::new(File::create(&p).unwrap());
        append_bytes(&mut b, "exit_code", b"0\n").unwrap();
        append_bytes(&mut b, "stdout", b"").unwrap();
        build(&mut b);
        b.finish().unwrap();
        p
    }

    fn raw_entry(b: &mut tar::Builder<File>, name: &str, kind: EntryType, link: Option<&str>, data: &[u8]) {
        let mut h = header(kind, 0o644, data.len() as u64);
        let bytes = h.as_old_mut();
        bytes.name = [0; 100];
        bytes.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            bytes.linkname = [0; 100];
            bytes.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    #[test]
    fn malicious_bundles_are_refused() {
        type Build = Box<dyn Fn(&mut tar::Builder<File>)>;
        let cases: Vec<(&str, Build, &str)> = vec![
            ("absolute", Box::new(|b| raw_entry(b, "/etc/passwd", EntryType::Regular, None, b"x")), "absolute"),
            ("dotdot", Box::new(|b| raw_entry(b, "outputs/../../x", EntryType::Regular, None, b"x")), "contains `..`"),
            (
                "escape",
                Box::new(|b| raw_entry(b, "outputs/l", EntryType::Symlink, Some("../../etc"), b"")),
                "outside outputs/",
            ),
            (
                "abs-link",
                Box::new(|b| raw_entry(b, "outputs/l", EntryType::Symlink, Some("/etc"), b"")),
                "outside outputs/",
            ),
            ("hardlink", Box::new(|b| raw_entry(b, "outputs/h", EntryType::Link, Some("stdout"), b"")), "hard link"),
            ("device", Box::new(|b| raw_entry(b, "outputs/d", EntryType::Char, None, b"")), "Char"),
            ("fifo", Box::new(|b| raw_entry(b, "outputs/f", EntryType::Fifo, None, b"")), "Fifo"),
            ("unknown", Box::new(|b| raw_entry(b, "payload", EntryType::Regular, None, b"x")), "unexpected entry"),
        ];
        for (name, build, want) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let p = evil(tmp.path(), build);
            let err = extract(&p, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES).unwrap_err().to_string();
            assert!(err.contains(want), "{name}: {err}");
            assert!(!tmp.path().join("etc").exists() && !Path::new("/x").exists());
        }
    }

    #[test]
    fn entries_that_clash_are_the_bundles_fault_not_the_disks() {
        // A file, then a file "under" it: the second cannot be written, and that is the
        // bundle's doing, so the job creator challenges rather than blaming its own disk.
        let tmp = tempfile::tempdir().unwrap();
        let p = evil(tmp.path(), |b| {
            raw_entry(b, "outputs/a", EntryType::Regular, None, b"x");
            raw_entry(b, "outputs/a/b", EntryType::Regular, None, b"y");
        });
        let err = extract(&p, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES).unwrap_err();
        assert!(matches!(err, BundleError::Refused(_)) && err.is_bundle_fault(), "{err}");
        // A full disk is this machine's: not the bundle's fault.
        let full = write_err("writing x")(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(full, BundleError::Io { .. }) && !full.is_bundle_fault());
    }

    #[test]
    fn oversize_bundles_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = evil(tmp.path(), |b| raw_entry(b, "outputs/big", EntryType::Regular, None, &vec![0u8; 4096]));
        let err = extract(&p, &tmp.path().join("x"), 1000).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
    }

    #[test]
    fn the_size_bound_is_never_under_the_packed_size() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let mut r = results(tmp.path());
        let long = "n".repeat(200);
        std::fs::create_dir_all(r.outputs_dir.join(&long)).unwrap();
        std::fs::write(r.outputs_dir.join(&long).join(&long), vec![7u8; 1000]).unwrap();
        // What costs tar the most per entry: long names with long link targets, and names
        // that are not UTF-8 (packed lossily, each bad byte three bytes long).
        for i in 0..200 {
            // Just over tar's 100 bytes for both, the costliest lengths.
            let name = format!("{i:03}-{}", "l".repeat(89));
            std::os::unix::fs::symlink("t".repeat(101), r.outputs_dir.join(name)).unwrap();
        }
        for i in 0..50 {
            let bad = std::ffi::OsStr::from_bytes(&[&[0xffu8; 60][..], i.to_string().as_bytes()].concat()).to_owned();
            std::fs::write(r.outputs_dir.join(bad), b"x").unwrap();
        }
        // Stderr at the size the bound reserves for it, so that it gives no slack.
        r.stderr = vec![b'e'; BUNDLE_STDERR_BYTES];
        let size = |r: &Results| {
            write_bundle(r, &tmp.path().join("b.tar")).unwrap();
            std::fs::metadata(tmp.path().join("b.tar")).unwrap().len()
        };
        let packed = size(&r);
        assert!(over_limit(&r, packed - 1).unwrap().is_some(), "a bound under {packed} bytes");
        assert_eq!(over_limit(&r, packed + 500_000).unwrap(), None);

        // Stderr, which is not hashed and may differ between runs, never decides: it is
        // kept to its last 64 KiB and reserved at that size.
        let mut noisy = r.clone();
        noisy.stderr = vec![b'e'; 1 << 20];
        assert_eq!(over_limit(&noisy, packed + 500_000).unwrap(), None);
        let limit = packed + 500_000;
        let p = pack(noisy, limit, &tmp.path().join("c.tar")).unwrap();
        assert_eq!((p.replaced, p.hash), (None, result_hash(&r).unwrap()));
        let back = extract(&tmp.path().join("c.tar"), &tmp.path().join("x"), limit).unwrap();
        assert_eq!(back.stderr.len(), BUNDLE_STDERR_BYTES);
    }

    #[test]
    fn output_over_the_limit_is_packed_as_the_error_bundle_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("outputs");
        std::fs::create_dir_all(&out).unwrap();
        // 100 GiB apparent, nothing allocated: measured from metadata, never read.
        std::fs::File::create(out.join("sparse")).unwrap().set_len(100 << 30).unwrap();
        let r = Results { exit_code: 0, stdout: b"done\n".to_vec(), stderr: vec![], outputs_dir: out.clone() };
        let started = std::time::Instant::now();
        let packed = pack(r, 1 << 20, &tmp.path().join("b.tar")).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(packed.exit_code, ERROR_BUNDLE_EXIT);
        assert!(packed.replaced.unwrap().contains("over its limit of 1048576 bytes"));
        assert!(!out.join("sparse").exists(), "the job's output is removed");
        let back = extract(&tmp.path().join("b.tar"), &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES).unwrap();
        assert!(String::from_utf8(back.stderr).unwrap().contains("over its limit"));

        // Every party that packs an error bundle reaches the same hash, whatever it says.
        let other = Results::error(tmp.path().join("o2"), "something else").unwrap();
        assert_eq!(result_hash(&other).unwrap(), packed.hash);

        // Within the limit, results are packed as they are.
        let fine = results(tmp.path());
        let hash = result_hash(&fine).unwrap();
        let packed = pack(fine, 1 << 20, &tmp.path().join("c.tar")).unwrap();
        assert_eq!((packed.hash, packed.exit_code, packed.replaced), (hash, 3, None));
    }

    #[test]
    fn too_many_files_or_too_deep_a_path_is_over_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("many");
        std::fs::create_dir_all(&out).unwrap();
        for i in 0..=MAX_ENTRIES {
            std::fs::File::create(out.join(i.to_string())).unwrap();
        }
        let r = Results { exit_code: 0, stdout: vec![], stderr: vec![], outputs_dir: out };
        assert!(over_limit(&r, u64::MAX).unwrap().unwrap().contains("more than 100000 files"));

        let out = tmp.path().join("deep");
        let mut at = out.clone();
        for _ in 0..10 {
            at = at.join("d".repeat(120));
        }
        std::fs::create_dir_all(&at).unwrap();
        let r = Results { exit_code: 0, stdout: vec![], stderr: vec![], outputs_dir: out };
        assert!(over_limit(&r, u64::MAX).unwrap().unwrap().contains("longer than 1024 bytes"));
    }
}

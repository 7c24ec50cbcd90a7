//! Result bundles: the exit code, stdout, stderr and `/outputs` tree of a job, packed as
//! a tar with sorted entries and fixed metadata, so that the same results give the same
//! bytes on any machine.
//!
//! Layout, in this order: `exit_code` (decimal and a newline), `stdout`, `outputs/…`
//! (directories, regular files, symlinks; sorted by byte-wise name), then `stderr`. The
//! **result hash** is the sha256 of the tar made of the first three parts alone: stderr is
//! informational (it often carries timings) and is not hashed.
//!
//! Names are packed as their bytes (a name need not be UTF-8), each directory's children
//! in byte-wise order, so that every machine packs one tree the same way (THREATS X7).
//! [`extract`] checks a bundle's hash before it writes anything and never follows a link
//! on disk (THREATS X1). Start at [`pack`] and [`extract`].

mod extract;
pub use extract::{extract, Extracted};

use alloy::primitives::B256;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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

/// What a job may occupy on disk beyond the data [`over_limit`] counts, per entry: block
/// rounding and a file system's own records. More than this is space claimed without
/// data (`fallocate --keep-size`), which a bundle would not carry but the disk holds.
const ENTRY_ALLOC_SLACK: u64 = 64 << 10;

/// The most bytes of stdout a job may write. Stdout is hashed whole, so a job that writes
/// more is stopped and delivered as the error bundle ([`pack`]), the same on every machine.
pub const MAX_STDOUT_BYTES: usize = 16 << 20;

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
    /// The bundle's result hash is not the one expected (the chain's); nothing was written.
    #[error("the bundle's result hash {actual} differs from the expected {expected}")]
    HashMismatch {
        /// The hash of the bundle's deterministic part.
        actual: B256,
        /// The hash it should have had.
        expected: B256,
    },
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
        Ok(Self::error_parts(outputs_dir, why))
    }

    /// The error bundle's parts, for an `outputs_dir` that is empty already.
    pub fn error_parts(outputs_dir: PathBuf, why: &str) -> Self {
        Self { exit_code: ERROR_BUNDLE_EXIT, stdout: vec![], stderr: format!("dcn: {why}\n").into_bytes(), outputs_dir }
    }
}

impl Results {
    /// Writes `stdout`, `stderr` and `exit_code` (decimal and a newline) as files in `dir`,
    /// beside `outputs/`, for a person to read.
    pub fn write_streams(&self, dir: &Path) -> io::Result<()> {
        for (name, bytes) in [
            ("stdout", &self.stdout[..]),
            ("stderr", &self.stderr[..]),
            ("exit_code", format!("{}\n", self.exit_code).as_bytes()),
        ] {
            std::fs::write(dir.join(name), bytes)?;
        }
        Ok(())
    }
}

/// Why the bundle of `r` would break a limit of `limit` bytes, or `None` when it fits:
/// stdout over [`MAX_STDOUT_BYTES`]; an upper bound on its size (data by apparent size,
/// which is what tar packs, plus [`ENTRY_OVERHEAD`] and the name and link target of each
/// entry, and [`BUNDLE_STDERR_BYTES`] for stderr whatever it holds) over `limit`; space
/// allocated on disk over `limit` plus [`ENTRY_ALLOC_SLACK`] per entry; more than
/// [`MAX_ENTRIES`] entries, or a path longer than [`MAX_NAME_BYTES`]. Reads metadata only
/// and stops at the first excess, so a 100 GiB sparse file or a million files cost a
/// moment, not a pack. The same results give the same answer on every machine.
pub fn over_limit(r: &Results, limit: u64) -> io::Result<Option<String>> {
    if r.stdout.len() > MAX_STDOUT_BYTES {
        return Ok(Some(format!(
            "the job wrote more than {} MiB to stdout (write large results to /outputs)",
            MAX_STDOUT_BYTES >> 20
        )));
    }
    let over = || {
        format!("the job's output is over its limit of {limit} bytes (resources.disk_mb, or {} MiB when the module declares none)", crate::types::DEFAULT_OUTPUT_MB)
    };
    let entry = |name_len: u64, data: u64| ENTRY_OVERHEAD + name_len + data;
    // The end-of-archive blocks, exit_code, stdout, outputs/ and stderr.
    let mut bound =
        1024 + entry(9, 32) + entry(6, r.stdout.len() as u64) + entry(8, 0) + entry(6, BUNDLE_STDERR_BYTES as u64);
    let mut entries = 4usize;
    let mut allocated = 0u64;
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
            let name_len = 8 + rel.as_os_str().len() as u64;
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
                std::fs::read_link(&path)?.as_os_str().len() as u64
            } else {
                0
            };
            bound = bound.saturating_add(entry(name_len, data));
            if bound > limit {
                return Ok(Some(over()));
            }
            allocated = allocated.saturating_add(meta.blocks().saturating_mul(512));
            if allocated > limit.saturating_add(ENTRY_ALLOC_SLACK.saturating_mul(entries as u64)) {
                return Ok(Some(format!(
                    "the job's output occupies more disk than its limit of {limit} bytes (space allocated beyond its data)"
                )));
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

/// The name an entry of the job's output has in a bundle: `outputs/`, then its path
/// relative to the outputs directory as bytes, with a `/` after a directory. Packing and
/// extraction build names by this one rule, so that both hash the same bytes.
fn entry_name(rel: &Path, dir: bool) -> PathBuf {
    let mut name = OsString::from("outputs");
    for c in rel.components() {
        name.push("/");
        name.push(c.as_os_str());
    }
    if dir {
        name.push("/");
    }
    PathBuf::from(name)
}

/// The mode a packed regular file gets: executable or not, nothing else.
fn file_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
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
        let meta = std::fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = header(EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, entry_name(rel, true), io::empty())?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let mut h = header(EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, entry_name(rel, false), &target)?;
        } else if ft.is_file() {
            let mut h = header(EntryType::Regular, file_mode(meta.mode()), meta.len());
            b.append_data(&mut h, entry_name(rel, false), open_nofollow(&path)?)?;
        }
        // Sockets, FIFOs and devices a job leaves in /outputs are not results.
    }
    Ok(())
}

/// Opens a regular file for reading, failing rather than following a link put in its
/// place.
fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// A writer that only hashes what it is given.
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

/// The result hash of `r`: sha256 of the deterministic part (exit code, stdout, outputs).
pub fn result_hash(r: &Results) -> Result<B256, BundleError> {
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
        let back = extract(&bundle, &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES, None).unwrap().results;
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
        let back = extract(&tmp.path().join("c.tar"), &tmp.path().join("x"), limit, None).unwrap().results;
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
        let back =
            extract(&tmp.path().join("b.tar"), &tmp.path().join("x"), DEFAULT_MAX_BUNDLE_BYTES, None).unwrap().results;
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
